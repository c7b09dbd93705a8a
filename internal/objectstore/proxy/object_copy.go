package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// copyFrom is PUT with X-Copy-From: <container>/<object> (and optionally
// X-Copy-From-Account): the new object is the source's data with its
// metadata, overridden by the request's, as Swift's copy middleware does.
// The caller needs read access to the source too.
func (p *Proxy) copyFrom(q *request) error {
	if q.r.ContentLength > 0 {
		return errText(http.StatusBadRequest, "Copy requests require a zero byte body")
	}
	src, err := copyPeer(q, q.r.Header.Get("X-Copy-From"), "X-Copy-From-Account", "X-Copy-From")
	if err != nil {
		return err
	}
	if err := p.authorizePeer(q, src, http.MethodGet); err != nil {
		return err
	}
	return p.copyObject(q, src, [3]string{q.account, q.container, q.object})
}

// copyTo is COPY with Destination: <container>/<object> (and optionally
// Destination-Account); the caller needs read access to the source, which
// authenticate checked, and write access to the destination.
func (p *Proxy) copyTo(q *request) error {
	dest := q.r.Header.Get("Destination")
	if dest == "" {
		return errText(http.StatusPreconditionFailed, "You must provide a Destination header")
	}
	dst, err := copyPeer(q, dest, "Destination-Account", "Destination")
	if err != nil {
		return err
	}
	if err := p.authorizePeer(q, dst, http.MethodPut); err != nil {
		return err
	}
	return p.copyObject(q, [3]string{q.account, q.container, q.object}, dst)
}

// copyPeer parses the other end of a copy from its "<container>/<object>"
// header and the optional account header.
func copyPeer(q *request, v, accountHeader, what string) ([3]string, error) {
	c, o, ok := splitCopyPath(v)
	if !ok {
		return [3]string{}, errText(http.StatusPreconditionFailed, what+" header must be of the form <container name>/<object name>")
	}
	acct := q.account
	if a := q.r.Header.Get(accountHeader); a != "" {
		acct = a
	}
	return [3]string{acct, c, o}, nil
}

// authorizePeer checks that q's caller may do method on the other end of
// a copy, which must also satisfy the name constraints.
func (p *Proxy) authorizePeer(q *request, names [3]string, method string) error {
	peer := &request{w: q.w, r: q.r, transID: q.transID, ident: q.ident}
	if err := p.parsePath(peer, "/v1/"+names[0]+"/"+names[1]+"/"+names[2]); err != nil {
		return err
	}
	// A temp URL for reading authorizes what serving its object takes
	// within the account (a DLO's segment listing, an SLO's segments), or
	// within the container when signed with a container key, as Swift's
	// tempurl authorizes the request's subrequests. Writes through a temp
	// URL (copies, versioning) still need rights on the other end.
	if q.signed && names[0] == q.account && (q.r.Method == http.MethodGet || q.r.Method == http.MethodHead) &&
		(q.signedContainer == "" || names[1] == q.signedContainer) {
		return nil
	}
	ok, err := p.allowed(peer, method, names[1])
	if err != nil {
		return err
	}
	if !ok {
		return p.deny(q)
	}
	return nil
}

// splitCopyPath parses "[/]container/object", URL-encoded or not.
func splitCopyPath(v string) (container, object string, ok bool) {
	if u, err := url.PathUnescape(v); err == nil {
		v = u
	}
	container, object, ok = strings.Cut(strings.TrimPrefix(v, "/"), "/")
	return container, object, ok && container != "" && object != ""
}

// openSource reads the newest copy of an object to copy it; rng, when
// set, is the one byte range of it to read.
func (p *Proxy) openSource(q *request, src [3]string, rng string) (*http.Response, error) {
	srcNames := "/" + src[0] + "/" + src[1] + "/" + src[2]
	h := p.backendHeaders(q, "")
	if rng != "" {
		h.Set("Range", rng)
	}
	pl, err := p.objectPlace(q, src[0], src[1], src[2])
	if err != nil {
		return nil, err
	}
	resp, err := p.readNewest(q.ctx(), pl, http.MethodGet, srcNames, "", h)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && !(rng != "" && resp.StatusCode == http.StatusPartialContent) {
		discard(resp)
		return nil, errStatus(resp.StatusCode)
	}
	return resp, nil
}

// storedHeaders are the headers that store a copy of an object read by
// openSource: its metadata, content type and ETag, which makes the
// object servers verify what they got.
func storedHeaders(resp *http.Response) http.Header {
	h := http.Header{}
	objectMetaHeaders(h, resp.Header)
	for k, vs := range resp.Header {
		if k == sloHeader || strings.HasPrefix(k, "X-Object-Sysmeta-") {
			h[k] = vs
		}
	}
	h.Set("Content-Type", resp.Header.Get("Content-Type"))
	h.Set("Etag", strings.Trim(resp.Header.Get("Etag"), `"`))
	return h
}

// copyObject reads the newest copy of src and stores it as dst.
func (p *Proxy) copyObject(q *request, src, dst [3]string) error {
	// A copy with one byte range copies just those bytes, as Swift's copy
	// middleware does (several ranges would be a multipart body).
	rng := q.r.Header.Get("Range")
	if strings.Contains(rng, ",") {
		rng = ""
	}
	resp, err := p.openCopySource(q, src, rng)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if dst[0] != src[0] && p.multipartManifest(q) == "get" && trueValue(resp.Header.Get(sloHeader)) {
		// The manifest itself goes to another account, where its paths
		// name that account's segments: they are checked there, as
		// Swift's slo checks a manifest PUT.
		body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.Middlewares.SLOMaxManifestSize+1))
		if err != nil {
			return fmt.Errorf("read manifest %s/%s/%s: %w", src[0], src[1], src[2], err)
		}
		if err := p.checkManifestSegments(q, dst[0], body); err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	h := storedHeaders(resp)
	if strings.EqualFold(q.r.Header.Get("X-Fresh-Metadata"), "true") {
		for k := range h {
			if strings.HasPrefix(k, "X-Object-Meta-") {
				delete(h, k)
			}
		}
	}
	h.Del("X-Delete-At")
	if p.symlinkOn() && isSymlinkGet(q) {
		if err := retargetCopiedLink(q, h); err != nil {
			return err
		}
	}
	objectMetaHeaders(h, q.r.Header)
	for _, k := range []string{"Content-Type", "X-Delete-After", "If-None-Match"} {
		if v := q.r.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	extra := http.Header{}
	extra.Set("X-Copied-From", url.PathEscape(src[1])+"/"+(&url.URL{Path: src[2]}).EscapedPath())
	extra.Set("X-Copied-From-Account", url.PathEscape(src[0]))
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		extra.Set("X-Copied-From-Last-Modified", lm)
	}
	// Swift's copy middleware answers with the copy's user metadata (the
	// source's merged with the request's), so clients see what the new
	// object carries without another HEAD.
	for k, vs := range h {
		if strings.HasPrefix(k, "X-Object-Meta-") {
			extra[k] = vs
		}
	}
	switch {
	case isDLO(q, resp):
		_, pieces, err := p.dloPieces(q, resp.Header)
		if err != nil {
			return err
		}
		h.Del("X-Object-Manifest")
		return p.copyLarge(q, dst, h, pieces, extra)
	case p.isSLO(q, resp):
		pieces, err := p.manifestPieces(q, resp)
		if err != nil {
			return err
		}
		for _, k := range []string{sloHeader, sloEtagSysmeta, sloSizeSysmeta} {
			h.Del(k)
		}
		return p.copyLarge(q, dst, h, pieces, extra)
	}
	if resp.StatusCode == http.StatusPartialContent {
		h.Del("Etag") // the source's ETag is not the range's
		dropContainerOverrides(h)
	}
	return p.putObject(q, dst, h, resp.Body, resp.ContentLength, extra)
}

// dropContainerOverrides removes the source's container update overrides
// from a copy that does not keep the source's ETag (a range, a large
// object's data): they describe the source, as Swift's copy middleware
// reasons.
func dropContainerOverrides(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "X-Object-Sysmeta-Container-Update-Override-") {
			delete(h, k)
		}
	}
}

// copyLarge stores the concatenation of a large object's pieces as dst, a
// plain object: as in Swift, a copy of a DLO or SLO is its data, not
// another manifest (?multipart-manifest=get copies the manifest itself).
// h must no longer mark the object as a manifest.
func (p *Proxy) copyLarge(q *request, dst [3]string, h http.Header, pieces []piece, extra http.Header) error {
	var total int64
	for _, pc := range pieces {
		total += pc.size()
	}
	h.Del("Etag") // the object servers compute the data's own
	dropContainerOverrides(h)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(p.copyPieces(q, pw, pieces, 0, total-1, nil)) }()
	defer pr.Close()
	return p.putObject(q, dst, h, pr, total, extra)
}
