package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Symlinks (Swift's symlink middleware): a zero-byte object whose system
// metadata names another object, which GET and HEAD read instead. The
// target is "<container>/<object>" in the link's account unless the link
// names another; a static link also records the target's ETag and size,
// and reading it fails with 409 if the target has changed since.
// ?symlink=get reads the link itself. Links to links are followed up to
// symloop_max hops, as Swift bounds them.

const (
	symlinkTargetHeader        = "X-Symlink-Target"
	symlinkTargetAccountHeader = "X-Symlink-Target-Account"
	symlinkTargetEtagHeader    = "X-Symlink-Target-Etag"
	symlinkTargetBytesHeader   = "X-Symlink-Target-Bytes"

	symlinkTargetSysmeta        = "X-Object-Sysmeta-Symlink-Target"
	symlinkTargetAccountSysmeta = "X-Object-Sysmeta-Symlink-Target-Account"
	symlinkTargetEtagSysmeta    = "X-Object-Sysmeta-Symlink-Target-Etag"
	symlinkTargetBytesSysmeta   = "X-Object-Sysmeta-Symlink-Target-Bytes"
	// symloopExtendSysmeta marks a link whose hop does not count against
	// symloop_max (Swift sets it for links middlewares make themselves).
	symloopExtendSysmeta = "X-Object-Sysmeta-Symloop-Extend"

	// defaultSymloopMax is Swift's DEFAULT_SYMLOOP_MAX.
	defaultSymloopMax = 2
	// md5OfEmpty is the ETag of a link's empty body, which its container
	// listing row's hash starts with.
	md5OfEmpty = "d41d8cd98f00b204e9800998ecf8427e"
)

// symlinkHeaders pairs each client-facing header with the system metadata
// that stores it.
var symlinkHeaders = [][2]string{
	{symlinkTargetHeader, symlinkTargetSysmeta},
	{symlinkTargetAccountHeader, symlinkTargetAccountSysmeta},
	{symlinkTargetEtagHeader, symlinkTargetEtagSysmeta},
	{symlinkTargetBytesHeader, symlinkTargetBytesSysmeta},
}

// symlinkWalk is the state of following links for one client request.
type symlinkWalk struct {
	hops int
	// etag is the ETag the previous (static) link expects of its target.
	etag string
	// lastPath is the path of the last target, Content-Location of the
	// answer.
	lastPath string
}

// swiftQuote is Python's urllib quote with "/" safe, the form Swift
// stores link targets in (and answers them in).
func swiftQuote(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~/", c) >= 0 {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "%%%02X", c)
		}
	}
	return sb.String()
}

// swiftUnquote is Python's unquote: invalid escapes stay as they are.
func swiftUnquote(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// symlinkOn reports whether the proxy implements symlinks.
func (p *Proxy) symlinkOn() bool { return !p.cfg.Middlewares.DisableSymlink }

// isSymlinkGet reports whether the client asked for the link itself.
func isSymlinkGet(q *request) bool { return q.r.URL.Query().Get("symlink") == "get" }

// symlinkPut checks a PUT with X-Symlink-Target and turns its headers into
// the link's system metadata and container listing override, then stores
// it as any other object.
func (p *Proxy) symlinkPut(q *request) error {
	h := q.r.Header
	hasBody := q.r.ContentLength > 0
	if q.r.ContentLength < 0 {
		var b [1]byte
		n, _ := io.ReadFull(q.r.Body, b[:])
		hasBody = n > 0
	}
	if hasBody {
		return errText(http.StatusBadRequest, "Symlink requests require a zero byte body")
	}
	const formErr = "X-Symlink-Target header must be of the form <container name>/<object name>"
	raw := swiftUnquote(h.Get(symlinkTargetHeader))
	if strings.HasPrefix(raw, "/") {
		return errText(http.StatusPreconditionFailed, formErr)
	}
	cont, obj, ok := strings.Cut(raw, "/")
	if !ok || cont == "" || obj == "" {
		return errText(http.StatusPreconditionFailed, formErr)
	}
	acct := q.account
	h.Set(symlinkTargetSysmeta, swiftQuote(cont+"/"+obj))
	if vs, ok := h[symlinkTargetAccountHeader]; ok {
		a, err := linkAccount(vs)
		if err != nil {
			return err
		}
		acct = a
		h.Set(symlinkTargetAccountSysmeta, swiftQuote(a))
	}
	if [3]string{acct, cont, obj} == [3]string{q.account, q.container, q.object} {
		return errText(http.StatusBadRequest, "Symlink cannot target itself")
	}
	etag := strings.Trim(h.Get(symlinkTargetEtagHeader), `"`)
	if strings.ContainsAny(etag, `;"\`) {
		return errText(http.StatusBadRequest, "Bad X-Symlink-Target-Etag format")
	}
	if etag == "" && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/symlink")
	}
	if etag != "" {
		if err := p.checkStaticTarget(q, [3]string{acct, cont, obj}, etag); err != nil {
			return err
		}
	}
	setSymlinkOverride(h)
	for _, pair := range symlinkHeaders {
		h.Del(pair[0])
	}
	return p.objectPut(q)
}

// setSymlinkOverride puts a link's target on the ETag its container
// listing row shows (the empty body's, with symlink_* parameters), which
// is where Swift keeps it for listings; other parameters (slo_etag) stay.
func setSymlinkOverride(h http.Header) {
	val, params, _ := strings.Cut(h.Get(etagOverrideSysmeta), ";")
	out := []string{strings.TrimSpace(val)}
	if out[0] == "" {
		out[0] = md5OfEmpty
	}
	for _, prm := range strings.Split(params, ";") {
		if prm = strings.TrimSpace(prm); prm != "" && !strings.HasPrefix(prm, "symlink_") {
			out = append(out, prm)
		}
	}
	out = append(out, "symlink_target="+h.Get(symlinkTargetSysmeta))
	if v := h.Get(symlinkTargetAccountSysmeta); v != "" {
		out = append(out, "symlink_target_account="+v)
	}
	if v := h.Get(symlinkTargetEtagSysmeta); v != "" {
		out = append(out, "symlink_target_etag="+v, "symlink_target_bytes="+h.Get(symlinkTargetBytesSysmeta))
	}
	h.Set(etagOverrideSysmeta, strings.Join(out, "; "))
}

// retargetCopiedLink applies a copy request's X-Symlink-Target-Account to
// a link copied with ?symlink=get (h are the copy's stored headers), as
// Swift's symlink middleware sees the copy as a link PUT.
func retargetCopiedLink(q *request, h http.Header) error {
	vs, ok := q.r.Header[symlinkTargetAccountHeader]
	if !ok || h.Get(symlinkTargetSysmeta) == "" {
		return nil
	}
	a, err := linkAccount(vs)
	if err != nil {
		return err
	}
	h.Set(symlinkTargetAccountSysmeta, swiftQuote(a))
	setSymlinkOverride(h)
	return nil
}

// linkAccount checks an X-Symlink-Target-Account as Swift's
// check_account_format does and returns it unquoted.
func linkAccount(vs []string) (string, error) {
	a := swiftUnquote(strings.Join(vs, ","))
	switch {
	case a == "":
		return "", errText(http.StatusPreconditionFailed, "Account name cannot be empty")
	case strings.Contains(a, "/"):
		return "", errText(http.StatusPreconditionFailed, "Account name cannot contain slashes")
	}
	return a, nil
}

// checkStaticTarget HEADs a static link's target (following static links
// only, as Swift does) and records its ETag and size in the link's
// system metadata: 409 if it does not exist or its ETag is not etag.
func (p *Proxy) checkStaticTarget(q *request, target [3]string, etag string) error {
	walk := &symlinkWalk{etag: etag, lastPath: targetPath(target[0], swiftQuote(target[1]+"/"+target[2]))}
	resp, err := p.walkLinks(q, target, http.MethodHead, walk, true, func(names [3]string) (*http.Response, error) {
		pl, err := p.objectPlace(q, names[0], names[1], names[2])
		if err != nil {
			return nil, err
		}
		return p.readNewest(q.ctx(), pl, http.MethodHead, "/"+names[0]+"/"+names[1]+"/"+names[2], "", p.backendHeaders(q, ""))
	})
	var se *swiftError
	if errors.As(err, &se) && se.status == http.StatusNotFound {
		resp, err = &http.Response{StatusCode: http.StatusNotFound, Body: http.NoBody}, nil
	}
	if err != nil {
		return err
	}
	discard(resp)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return &swiftError{status: http.StatusConflict, body: "X-Symlink-Target does not exist",
			header: http.Header{"Content-Location": {walk.lastPath}}}
	case resp.StatusCode/100 != 2:
		return errStatus(resp.StatusCode)
	}
	if err := checkFinalEtag(resp, walk); err != nil {
		return err
	}
	h := q.r.Header
	if v := resp.Header.Get(etagOverrideSysmeta); v != "" && h.Get(etagOverrideSysmeta) == "" {
		_, params, _ := strings.Cut(v, ";")
		if params != "" {
			h.Set(etagOverrideSysmeta, md5OfEmpty+";"+params)
		}
	}
	if v := resp.Header.Get(sloEtagSysmeta); v != "" && h.Get(etagOverrideSysmeta) == "" {
		h.Set(etagOverrideSysmeta, md5OfEmpty+"; slo_etag="+v)
	}
	size := resp.Header.Get(sloSizeSysmeta)
	if size == "" {
		size = resp.Header.Get("Content-Length")
	}
	h.Set(symlinkTargetBytesSysmeta, size)
	h.Set(symlinkTargetEtagSysmeta, etag)
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", resp.Header.Get("Content-Type"))
	}
	return nil
}

// targetPath is the /v1 path of a link's target, as Content-Location and
// listings show it; target is the stored (quoted) "<container>/<object>".
func targetPath(quotedAccount, target string) string {
	return "/v1/" + quotedAccount + "/" + strings.TrimPrefix(target, "/")
}

// walkLinks reads names with open and, while the answer is a link (a
// static one only when staticOnly), reads its target instead, checking
// each hop's access and Swift's symloop_max and ETag rules. It returns
// the last answer, which is not a link to follow.
func (p *Proxy) walkLinks(q *request, names [3]string, method string, walk *symlinkWalk, staticOnly bool,
	open func([3]string) (*http.Response, error)) (*http.Response, error) {
	for {
		resp, err := open(names)
		if err != nil {
			return nil, err
		}
		next, ok, err := p.symlinkHop(q, names, method, resp, walk, staticOnly)
		if err != nil || !ok {
			if err != nil {
				discard(resp)
			}
			return resp, err
		}
		discard(resp)
		names = next
	}
}

// readLinked reads an object a large object is made of (a segment, a
// nested manifest), through the symlinks it may be, as Swift's large
// object middlewares read theirs through the symlink middleware.
func (p *Proxy) readLinked(q *request, names [3]string, method string, h http.Header) (*http.Response, error) {
	return p.walkLinks(q, names, method, &symlinkWalk{}, false, func(n [3]string) (*http.Response, error) {
		pl, err := p.objectPlace(q, n[0], n[1], n[2])
		if err != nil {
			return nil, err
		}
		return p.read(q.ctx(), pl, method, "/"+n[0]+"/"+n[1]+"/"+n[2], "", h)
	})
}

// symlinkHop decides whether resp, the answer for names, is a link to
// follow; if so it returns its target, which the caller may read by
// method, and advances walk.
func (p *Proxy) symlinkHop(q *request, names [3]string, method string, resp *http.Response, walk *symlinkWalk, staticOnly bool) ([3]string, bool, error) {
	target := resp.Header.Get(symlinkTargetSysmeta)
	linkEtag := resp.Header.Get(symlinkTargetEtagSysmeta)
	if !p.symlinkOn() || target == "" || (staticOnly && linkEtag == "") {
		return [3]string{}, false, nil
	}
	found := linkEtag
	if found == "" {
		found = strings.Trim(resp.Header.Get("Etag"), `"`)
	}
	if walk.etag != "" && walk.etag != found {
		return [3]string{}, false, &swiftError{status: http.StatusConflict, body: "X-Symlink-Target-Etag headers do not match",
			header: http.Header{"Content-Location": {walk.lastPath}}}
	}
	if walk.hops >= p.cfg.Middlewares.SymloopMax {
		q.w.Header().Del("Content-Location")
		return [3]string{}, false, errText(http.StatusConflict,
			fmt.Sprintf("Too many levels of symbolic links, maximum allowed is %d", p.cfg.Middlewares.SymloopMax))
	}
	acct := resp.Header.Get(symlinkTargetAccountSysmeta)
	if acct == "" {
		acct = swiftQuote(names[0])
	}
	walk.lastPath = targetPath(acct, target)
	cont, obj, _ := strings.Cut(swiftUnquote(strings.TrimPrefix(target, "/")), "/")
	next := [3]string{swiftUnquote(acct), cont, obj}
	// A link object versioning made to a version in its account's
	// reserved namespace needs no access beyond the link's own.
	reserved := trueValue(resp.Header.Get(allowReservedSysmeta)) && next[0] == names[0] && strings.HasPrefix(next[1], "\x00")
	if !reserved {
		if err := p.authorizePeer(q, next, method); err != nil {
			return [3]string{}, false, err
		}
	}
	if !trueValue(resp.Header.Get(symloopExtendSysmeta)) {
		walk.hops++
	}
	walk.etag = linkEtag
	return next, true, nil
}

// checkFinalEtag checks the object a static link led to against the ETag
// the link recorded.
func checkFinalEtag(resp *http.Response, walk *symlinkWalk) error {
	final := strings.Trim(resp.Header.Get("Etag"), `"`)
	if final == "" || walk.etag == "" || final == walk.etag {
		return nil
	}
	return &swiftError{status: http.StatusConflict,
		body:   fmt.Sprintf("Object Etag '%s' does not match X-Symlink-Target-Etag header '%s'", final, walk.etag),
		header: http.Header{"Content-Type": {"text/plain"}, "Content-Location": {walk.lastPath}}}
}

// symlinkGet handles the answer to an object GET or HEAD: with
// ?symlink=get it shows a link's metadata as X-Symlink-* headers; for a
// link otherwise it reads the target in place of the link, by calling
// objectGet again for it. done reports whether the request was answered.
func (p *Proxy) symlinkGet(q *request, resp *http.Response) (done bool, err error) {
	if !p.symlinkOn() {
		return false, nil
	}
	if isSymlinkGet(q) {
		for _, pair := range symlinkHeaders {
			if v := resp.Header.Get(pair[1]); v != "" {
				resp.Header.Set(pair[0], v)
			}
		}
		return false, nil
	}
	if q.link == nil {
		q.link = &symlinkWalk{}
	}
	next, ok, err := p.symlinkHop(q, [3]string{q.account, q.container, q.object}, q.r.Method, resp, q.link, false)
	if err != nil {
		discard(resp)
		return true, err
	}
	if ok {
		discard(resp)
		// Whatever the target answers, even an error, says where it
		// came from.
		q.w.Header().Set("Content-Location", q.link.lastPath)
		q.account, q.container, q.object = next[0], next[1], next[2]
		return true, p.objectGet(q)
	}
	if q.link.lastPath == "" {
		return false, nil
	}
	if err := checkFinalEtag(resp, q.link); err != nil {
		discard(resp)
		return true, err
	}
	return false, nil
}

// openCopySource reads the source of a copy as openSource does, following
// it if it is a link unless the client asked for the link itself
// (?symlink=get), as Swift's copy middleware reads its source through the
// symlink middleware.
func (p *Proxy) openCopySource(q *request, src [3]string, rng string) (*http.Response, error) {
	if !p.symlinkOn() || isSymlinkGet(q) {
		return p.openSource(q, src, rng)
	}
	resp, err := p.walkLinks(q, src, http.MethodGet, &symlinkWalk{}, false, func(names [3]string) (*http.Response, error) {
		return p.openSource(q, names, rng)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// symlinkPost answers a POST that landed on a link: Swift applies it to
// the link and answers 307 pointing at the target, whose metadata the
// client meant to change.
func (p *Proxy) symlinkPost(q *request, status int) error {
	if status/100 != 2 {
		return nil
	}
	h := p.backendHeaders(q, "")
	pl, err := p.objectPlace(q, q.account, q.container, q.object)
	if err != nil {
		return fmt.Errorf("check POST target for a symlink: %w", err)
	}
	resp, err := p.readNewest(q.ctx(), pl, http.MethodHead, q.names(), "", h)
	if err != nil {
		return fmt.Errorf("check POST target for a symlink: %w", err)
	}
	discard(resp)
	target := resp.Header.Get(symlinkTargetSysmeta)
	if target == "" {
		return nil
	}
	acct := resp.Header.Get(symlinkTargetAccountSysmeta)
	if acct == "" {
		acct = swiftQuote(q.account)
	}
	hdr := http.Header{"Location": {targetPath(acct, target)}, "Content-Type": {"text/plain"}}
	if v := resp.Header.Get(symlinkTargetEtagSysmeta); v != "" {
		hdr.Set(symlinkTargetEtagHeader, v)
	}
	return &swiftError{status: http.StatusTemporaryRedirect, header: hdr,
		body: "The requested POST was applied to a symlink. POST directly to the target to apply requested metadata."}
}

// symlinkListing rewrites a JSON container listing as Swift's symlink
// middleware does: the symlink_* parameters a link's PUT put on its row's
// hash become symlink_path (the target's /v1 path), symlink_etag and
// symlink_bytes keys. Listings without links pass through untouched.
func (p *Proxy) symlinkListing(q *request, resp *http.Response) error {
	if !p.symlinkOn() || q.r.Method != http.MethodGet || resp.StatusCode/100 != 2 ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read container listing: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if !bytes.Contains(body, []byte("symlink_target=")) {
		return nil
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil // not a listing this middleware understands; pass it on
	}
	for _, it := range items {
		rewriteSymlinkRow(it, q.account)
	}
	out, err := json.Marshal(items)
	if err != nil {
		return fmt.Errorf("encode container listing: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// rewriteSymlinkRow moves one listing row's symlink parameters out of its
// hash; account is the listed account, a link's default target account.
func rewriteSymlinkRow(it map[string]json.RawMessage, account string) {
	var hash string
	if json.Unmarshal(it["hash"], &hash) != nil || !strings.Contains(hash, ";") {
		return
	}
	val, params, _ := strings.Cut(hash, ";")
	kept, target := strings.TrimSpace(val), ""
	for _, prm := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(prm, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "symlink_target":
			target = v
		case "symlink_target_account":
			account = v
		case "symlink_target_etag":
			it["symlink_etag"], _ = json.Marshal(v)
		case "symlink_target_bytes":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				it["symlink_bytes"], _ = json.Marshal(n)
			}
		case "":
		default:
			kept += "; " + k + "=" + v
		}
	}
	it["hash"], _ = json.Marshal(kept)
	if target != "" {
		it["symlink_path"], _ = json.Marshal(targetPath(account, target))
	}
}
