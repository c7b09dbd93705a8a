package proxy

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Dynamic Large Objects (Swift's dlo middleware): an object whose
// X-Object-Manifest is "<container>/<prefix>" reads as the concatenation,
// in name order, of the objects in that container whose names start with
// the prefix. ?multipart-manifest=get reads the manifest itself.

// segment is one entry of a segment container listing.
type segment struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
	Hash  string `json:"hash"`
}

// isDLO reports whether a GET or HEAD answer is a DLO manifest to expand.
// A ranged GET of the manifest's own (small or empty) body is 206 or 416
// and is expanded too, the range applying to the large object; so are 412 and 304, which the object server decided
// against the manifest's own ETag: the conditions apply to the large
// object's, which serveAssembled checks, as Swift's dlo middleware does.
func isDLO(q *request, resp *http.Response) bool {
	if resp.Header.Get("X-Object-Manifest") == "" || q.r.URL.Query().Get("multipart-manifest") == "get" {
		return false
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable,
		http.StatusPreconditionFailed, http.StatusNotModified:
		return true
	}
	return false
}

// serveDLO answers a GET or HEAD of a DLO manifest whose answer was mh.
func (p *Proxy) serveDLO(q *request, mh http.Header) error {
	etag, pieces, err := p.dloPieces(q, mh)
	if err != nil {
		return err
	}
	// Swift's dlo middleware serves single ranges only and answers a
	// multi-range request with the whole object (200), which HTTP allows.
	if strings.Contains(q.r.Header.Get("Range"), ",") {
		q.r.Header.Del("Range")
	}
	return p.serveAssembled(q, mh, etag, pieces)
}

// dloPieces lists the segments of the DLO whose manifest headers are mh:
// the large object's ETag (md5 of the segments' ETags) and its pieces.
func (p *Proxy) dloPieces(q *request, mh http.Header) (string, []piece, error) {
	cont, prefix, ok := strings.Cut(mh.Get("X-Object-Manifest"), "/")
	if u, err := url.PathUnescape(cont); err == nil {
		cont = u
	}
	if u, err := url.PathUnescape(prefix); err == nil {
		prefix = u
	}
	if !ok || cont == "" {
		return "", nil, errText(http.StatusBadRequest, "X-Object-Manifest must be in the format container/prefix")
	}
	// Listing the segments is a listing of their container, which the
	// caller must be allowed to do, as in Swift.
	if err := p.authorizePeer(q, [3]string{q.account, cont, ""}, http.MethodGet); err != nil {
		return "", nil, err
	}
	segs, err := p.listSegments(q, cont, prefix)
	if err != nil {
		return "", nil, err
	}
	sum := md5.New()
	var pieces []piece
	for _, s := range segs {
		sum.Write([]byte(s.Hash))
		if s.Bytes > 0 {
			pieces = append(pieces, piece{container: cont, object: s.Name, first: 0, last: s.Bytes - 1})
		}
	}
	return hex.EncodeToString(sum.Sum(nil)), pieces, nil
}

// listSegments lists every object of cont starting with prefix, page by
// page.
func (p *Proxy) listSegments(q *request, cont, prefix string) ([]segment, error) {
	pl := place(p.rings.container, q.account, cont, "")
	var out []segment
	marker := ""
	for {
		v := url.Values{"format": {"json"}, "prefix": {prefix}, "marker": {marker}}
		resp, err := p.read(q.ctx(), pl, http.MethodGet, "/"+q.account+"/"+cont, v.Encode(), p.backendHeaders(q, ""))
		if err != nil {
			return nil, err
		}
		var page []segment
		if resp.StatusCode == http.StatusOK {
			err = json.NewDecoder(resp.Body).Decode(&page)
		}
		discard(resp)
		if err != nil {
			return nil, fmt.Errorf("dlo segment listing of %s: %w", cont, err)
		}
		for i := range page {
			versionLinkSegment(&page[i])
		}
		out = append(out, page...)
		if len(page) < p.cfg.Constraints.ContainerListingLimit || len(page) == 0 {
			return out, nil
		}
		marker = page[len(page)-1].Name
	}
}
