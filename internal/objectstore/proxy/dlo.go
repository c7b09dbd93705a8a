package proxy

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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
// The manifest itself has no data, so a ranged GET of it is 416 and is
// expanded too.
func isDLO(q *request, resp *http.Response) bool {
	if resp.Header.Get("X-Object-Manifest") == "" || q.r.URL.Query().Get("multipart-manifest") == "get" {
		return false
	}
	return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable
}

// serveDLO answers a GET or HEAD of a DLO manifest whose answer was mh.
func (p *Proxy) serveDLO(q *request, mh http.Header) error {
	cont, prefix, ok := strings.Cut(mh.Get("X-Object-Manifest"), "/")
	if u, err := url.PathUnescape(cont); err == nil {
		cont = u
	}
	if u, err := url.PathUnescape(prefix); err == nil {
		prefix = u
	}
	if !ok || cont == "" {
		return errText(http.StatusBadRequest, "X-Object-Manifest must be in the format container/prefix")
	}
	// Listing the segments is a listing of their container, which the
	// caller must be allowed to do, as in Swift.
	if err := p.authorizePeer(q, [3]string{q.account, cont, ""}, http.MethodGet); err != nil {
		return err
	}
	segs, err := p.listSegments(q, cont, prefix)
	if err != nil {
		return err
	}
	var total int64
	sum := md5.New()
	for _, s := range segs {
		total += s.Bytes
		sum.Write([]byte(s.Hash))
	}
	h := q.w.Header()
	for k, vs := range mh {
		if clientVisible(k, q.owner) && k != "Content-Length" && k != "Etag" && k != "Content-Range" {
			h[k] = vs
		}
	}
	h.Set("Etag", `"`+hex.EncodeToString(sum.Sum(nil))+`"`)
	start, end, status := int64(0), total-1, http.StatusOK
	// Several ranges at once are answered with the whole object, which
	// HTTP allows; Swift would send multipart/byteranges.
	if rg := q.r.Header.Get("Range"); rg != "" && total > 0 && !strings.Contains(rg, ",") {
		s, e, ok := singleRange(rg, total)
		if !ok {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", total))
			return errStatus(http.StatusRequestedRangeNotSatisfiable)
		}
		start, end, status = s, e, http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, e, total))
	}
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	q.w.WriteHeader(status)
	if q.r.Method == http.MethodHead {
		return nil
	}
	return p.streamSegments(q, cont, segs, start, end)
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
		out = append(out, page...)
		if len(page) < p.cfg.Constraints.ContainerListingLimit || len(page) == 0 {
			return out, nil
		}
		marker = page[len(page)-1].Name
	}
}

// streamSegments writes bytes start..end of the concatenated segments.
// Headers are out already, so a failure cuts the connection.
func (p *Proxy) streamSegments(q *request, cont string, segs []segment, start, end int64) error {
	var off int64
	for _, s := range segs {
		lo, hi := off, off+s.Bytes-1
		off += s.Bytes
		if s.Bytes == 0 || hi < start || lo > end {
			continue
		}
		from, to := max(start, lo)-lo, min(end, hi)-lo
		h := p.backendHeaders(q, "")
		h.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
		names := "/" + q.account + "/" + cont + "/" + s.Name
		resp, err := p.read(q.ctx(), place(p.rings.object, q.account, cont, s.Name), http.MethodGet, names, "", h)
		if err == nil && resp.StatusCode/100 != 2 {
			discard(resp)
			err = fmt.Errorf("segment %s: status %d", names, resp.StatusCode)
		}
		if err == nil {
			_, err = io.CopyN(q.w, resp.Body, to-from+1)
			resp.Body.Close()
		}
		if err != nil {
			p.log.Warn("dlo segment read failed", "trans_id", q.transID, "segment", names, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
	return nil
}

// singleRange parses one byte range ("a-b", "a-", "-n") against size;
// ok is false when it cannot be satisfied.
func singleRange(h string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found {
		return 0, size - 1, true // not a byte range: the whole object
	}
	a, b, _ := strings.Cut(spec, "-")
	switch {
	case a == "":
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size - 1, true
	default:
		s, err := strconv.ParseInt(a, 10, 64)
		if err != nil || s >= size {
			return 0, 0, false
		}
		e := size - 1
		if b != "" {
			if e, err = strconv.ParseInt(b, 10, 64); err != nil || e < s {
				return 0, 0, false
			}
			e = min(e, size-1)
		}
		return s, e, true
	}
}
