package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/swiftfmt"
)

// Large objects (DLO and SLO) read as the concatenation of byte ranges of
// other objects. This file serves such a concatenation, with single and
// multiple byte ranges, for both kinds.

// piece is bytes first..last (inclusive) of one stored object.
type piece struct {
	container, object string
	first, last       int64
	data              []byte // an SLO inline data segment, instead of an object
}

func (pc piece) size() int64 { return pc.last - pc.first + 1 }

// maxRanges bounds the ranges of one request; past it Swift ignores the
// Range header and answers the whole object, which HTTP allows.
const maxRanges = 50

// parseByteRanges parses a Range header against an object of size bytes.
// ranges is nil when the header is to be ignored (not a byte range, bad
// syntax, too many ranges); ok is false when it is well-formed but no
// range can be satisfied (416).
func parseByteRanges(header string, size int64) (ranges [][2]int64, ok bool) {
	spec, isBytes := strings.CutPrefix(strings.TrimSpace(header), "bytes=")
	if !isBytes {
		return nil, true
	}
	specs := strings.Split(spec, ",")
	if len(specs) > maxRanges {
		return nil, true
	}
	for _, s := range specs {
		a, b, found := strings.Cut(strings.TrimSpace(s), "-")
		if !found || (a == "" && b == "") {
			return nil, true
		}
		var first, last int64
		if a == "" {
			n, err := strconv.ParseInt(b, 10, 64)
			if err != nil || n < 0 {
				return nil, true
			}
			if n == 0 || size == 0 {
				continue // "-0" selects nothing
			}
			first, last = max(size-n, 0), size-1
		} else {
			n, err := strconv.ParseInt(a, 10, 64)
			if err != nil || n < 0 {
				return nil, true
			}
			first, last = n, size-1
			if b != "" {
				if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
					return nil, true
				}
				last = min(last, size-1)
			}
			if first >= size {
				continue
			}
		}
		ranges = append(ranges, [2]int64{first, last})
	}
	return ranges, len(ranges) > 0
}

// serveAssembled answers a GET or HEAD of a large object made of pieces:
// the manifest's headers mh (less its own length and ETag), the large
// object's etag, and the body or the ranges the client asked for.
func (p *Proxy) serveAssembled(q *request, mh http.Header, etag string, pieces []piece) error {
	var total int64
	for _, pc := range pieces {
		total += pc.size()
	}
	h := q.w.Header()
	for k, vs := range mh {
		switch k {
		case "Content-Length", "Etag", "Content-Range", "Accept-Ranges":
			continue
		}
		if clientVisible(k, q.owner) {
			h[k] = vs
		}
	}
	h.Set("Etag", `"`+etag+`"`)
	h.Set("Accept-Ranges", "bytes")
	// Conditions are about the large object, whose ETag only the proxy
	// knows (Swift answers them with a conditional response here too).
	lastMod, _ := http.ParseTime(mh.Get("Last-Modified"))
	switch swiftfmt.CheckConditions(q.r.Header, etag, lastMod) {
	case http.StatusNotModified:
		q.w.WriteHeader(http.StatusNotModified)
		return nil
	case http.StatusPreconditionFailed:
		return errStatus(http.StatusPreconditionFailed)
	}
	ranges := [][2]int64{{0, total - 1}}
	status := http.StatusOK
	if rg := q.r.Header.Get("Range"); rg != "" {
		rs, ok := parseByteRanges(rg, total)
		if !ok {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", total))
			return errStatus(http.StatusRequestedRangeNotSatisfiable)
		}
		if rs != nil {
			ranges, status = rs, http.StatusPartialContent
		}
	}
	if status == http.StatusOK || len(ranges) == 1 {
		r := ranges[0]
		if status == http.StatusPartialContent {
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", r[0], r[1], total))
		}
		h.Set("Content-Length", strconv.FormatInt(r[1]-r[0]+1, 10))
		if q.r.Method == http.MethodHead {
			q.w.WriteHeader(status)
			return nil
		}
		first, err := p.openFirstSegment(q, pieces, r[0], r[1])
		if err != nil {
			return err
		}
		q.w.WriteHeader(status)
		return p.writePieces(q, pieces, r[0], r[1], first)
	}
	return p.serveByteRanges(q, pieces, ranges, total)
}

// openFirstSegment opens the first object segment that bytes start..end
// of pieces read, before the status is sent: as Swift's large object
// middlewares do, a first segment that is gone or unreadable answers 409
// instead of a 200 whose body is cut short (later segments can still
// only cut the connection). nil when the range starts in inline data.
func (p *Proxy) openFirstSegment(q *request, pieces []piece, start, end int64) (*http.Response, error) {
	parts := slicePieces(pieces, start, end)
	if len(parts) == 0 || parts[0].data != nil {
		return nil, nil
	}
	resp, err := p.openSegment(q, parts[0])
	if err != nil {
		p.log.Info("large object's first segment unreadable", "trans_id", q.transID, "err", err)
		return nil, errStatus(http.StatusConflict)
	}
	return resp, nil
}

// openSegment GETs the bytes pc names of an object segment, failing
// unless its object servers answer 2xx.
func (p *Proxy) openSegment(q *request, pc piece) (*http.Response, error) {
	h := p.backendHeaders(q, "")
	h.Set("Range", fmt.Sprintf("bytes=%d-%d", pc.first, pc.last))
	names := "/" + q.account + "/" + pc.container + "/" + pc.object
	resp, err := p.readLinked(q, [3]string{q.account, pc.container, pc.object}, http.MethodGet, h)
	if err == nil && resp.StatusCode/100 != 2 {
		discard(resp)
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil {
		return nil, fmt.Errorf("large object segment %s: %w", names, err)
	}
	return resp, nil
}

// serveByteRanges answers several ranges as multipart/byteranges, laid
// out as Swift's object servers do.
func (p *Proxy) serveByteRanges(q *request, pieces []piece, ranges [][2]int64, total int64) error {
	var rb [12]byte
	_, _ = rand.Read(rb[:])
	boundary := hex.EncodeToString(rb[:])
	h := q.w.Header()
	ct := h.Get("Content-Type")
	partHead := func(r [2]int64) string {
		return "--" + boundary + "\r\nContent-Type: " + ct + "\r\nContent-Range: " +
			fmt.Sprintf("bytes %d-%d/%d", r[0], r[1], total) + "\r\n\r\n"
	}
	closing := "--" + boundary + "--"
	length := int64(len(closing))
	for _, r := range ranges {
		length += int64(len(partHead(r))) + r[1] - r[0] + 1 + 2
	}
	h.Set("Content-Type", "multipart/byteranges;boundary="+boundary)
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if q.r.Method == http.MethodHead {
		q.w.WriteHeader(http.StatusPartialContent)
		return nil
	}
	first, err := p.openFirstSegment(q, pieces, ranges[0][0], ranges[0][1])
	if err != nil {
		return err
	}
	q.w.WriteHeader(http.StatusPartialContent)
	for i, r := range ranges {
		if _, err := io.WriteString(q.w, partHead(r)); err != nil {
			panic(http.ErrAbortHandler)
		}
		if i > 0 {
			first = nil
		}
		if err := p.writePieces(q, pieces, r[0], r[1], first); err != nil {
			return err
		}
		if _, err := io.WriteString(q.w, "\r\n"); err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	_, _ = io.WriteString(q.w, closing)
	return nil
}

// writePieces writes bytes start..end of the concatenated pieces. The
// headers are out already, so a failure can only cut the connection.
func (p *Proxy) writePieces(q *request, pieces []piece, start, end int64, first *http.Response) error {
	if err := p.copyPieces(q, q.w, pieces, start, end, first); err != nil {
		p.log.Warn("large object segment read failed", "trans_id", q.transID, "err", err)
		// The status is out; a cut connection is the only signal left.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// copyPieces writes bytes start..end of the concatenation of pieces to w,
// reading each segment range from its object servers; first, when not
// nil, is the first of them opened already.
func (p *Proxy) copyPieces(q *request, w io.Writer, pieces []piece, start, end int64, first *http.Response) error {
	if first != nil {
		// Whatever stops the copy early, the opened body is closed.
		defer first.Body.Close()
	}
	for i, pc := range slicePieces(pieces, start, end) {
		if pc.data != nil {
			if _, err := w.Write(pc.data[pc.first : pc.last+1]); err != nil {
				return fmt.Errorf("large object data segment: %w", err)
			}
			continue
		}
		resp := first
		if i > 0 || first == nil {
			var err error
			if resp, err = p.openSegment(q, pc); err != nil {
				return err
			}
		}
		_, err := io.CopyN(w, resp.Body, pc.size())
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("large object segment /%s/%s/%s: %w", q.account, pc.container, pc.object, err)
		}
	}
	return nil
}
