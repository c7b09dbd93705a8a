package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/bufpool"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/swiftfmt"
)

// byteRange is an inclusive-exclusive span [start, end) of an object.
type byteRange struct{ start, end int64 }

// maxRanges caps a multi-range request; beyond it the whole object is sent,
// as Swift does for abusive Range headers.
const maxRanges = 100

// parseRange interprets a Range header against size. ok=false means the
// header is absent or malformed and must be ignored (200 with the whole
// object); an empty result with ok=true means unsatisfiable (416).
func parseRange(h string, size int64) (rs []byteRange, ok bool) {
	if h == "" {
		return nil, false
	}
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found {
		return nil, false
	}
	parts := strings.Split(spec, ",")
	if len(parts) > maxRanges {
		return nil, false
	}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		first, last, dash := strings.Cut(p, "-")
		if !dash || (first == "" && last == "") {
			return nil, false
		}
		var r byteRange
		if first == "" {
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return nil, false
			}
			if n == 0 {
				continue // suffix of zero bytes is unsatisfiable
			}
			r = byteRange{start: max(size-n, 0), end: size}
		} else {
			s, err := strconv.ParseInt(first, 10, 64)
			if err != nil || s < 0 {
				return nil, false
			}
			e := size
			if last != "" {
				l, err := strconv.ParseInt(last, 10, 64)
				if err != nil || l < s {
					return nil, false
				}
				e = min(l+1, size)
			}
			if s >= size {
				continue
			}
			r = byteRange{start: s, end: e}
		}
		rs = append(rs, r)
	}
	return rs, true
}

// checkConditions evaluates the request's conditional headers against the
// object (swiftfmt.CheckConditions). lastMod is already rounded up to a
// whole second.
func checkConditions(r *http.Request, etag string, lastMod time.Time) error {
	if status := swiftfmt.CheckConditions(r.Header, etag, lastMod); status != 0 {
		return httpErr(status, "")
	}
	return nil
}

// serveBody writes the object body: whole, one range (206) or several
// (206 multipart/byteranges). Headers other than the body's own must already
// be set. It streams from f, so memory use does not depend on size.
func serveBody(w http.ResponseWriter, r *http.Request, f io.ReadSeeker, size int64, contentType string) error {
	h := w.Header()
	rs, ok := parseRange(r.Header.Get("Range"), size)
	if r.Header.Get("If-Range") != "" && ok {
		// If-Range: serve ranges only when the validator still matches.
		ir := r.Header.Get("If-Range")
		if t, err := http.ParseTime(ir); err == nil {
			if lm, err := http.ParseTime(h.Get("Last-Modified")); err != nil || !lm.Equal(t) {
				ok = false
			}
		} else if !swiftfmt.ETagMatches(ir, h.Get("ETag")) {
			ok = false
		}
	}
	switch {
	case !ok:
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return nil
		}
		return copyBody(w, f, size)
	case len(rs) == 0:
		return httpErrHeaders(http.StatusRequestedRangeNotSatisfiable, http.Header{"Content-Range": {fmt.Sprintf("bytes */%d", size)}})
	case len(rs) == 1:
		br := rs[0]
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.start, br.end-1, size))
		h.Set("Content-Length", strconv.FormatInt(br.end-br.start, 10))
		w.WriteHeader(http.StatusPartialContent)
		if r.Method == http.MethodHead {
			return nil
		}
		if _, err := f.Seek(br.start, io.SeekStart); err != nil {
			return err
		}
		return copyBody(w, f, br.end-br.start)
	}
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	boundary := hex.EncodeToString(rb[:])
	partHeader := func(br byteRange) string {
		return fmt.Sprintf("--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n", boundary, contentType, br.start, br.end-1, size)
	}
	total := int64(0)
	for _, br := range rs {
		total += int64(len(partHeader(br))) + br.end - br.start + 2
	}
	closing := "--" + boundary + "--"
	total += int64(len(closing))
	h.Set("Content-Type", "multipart/byteranges;boundary="+boundary)
	h.Set("Content-Length", strconv.FormatInt(total, 10))
	w.WriteHeader(http.StatusPartialContent)
	if r.Method == http.MethodHead {
		return nil
	}
	for _, br := range rs {
		if _, err := io.WriteString(w, partHeader(br)); err != nil {
			return err
		}
		if _, err := f.Seek(br.start, io.SeekStart); err != nil {
			return err
		}
		if err := copyBody(w, f, br.end-br.start); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, closing)
	return err
}

// copyBody sends the next n bytes of f to w through a pooled buffer: 64
// KiB, or 256 KiB for a body of more than a megabyte. io.Copy's 32 KiB
// steps made a 1 GiB GET 32,768 hand-overs to the proxy (each a pipe
// write and a wake-up of its reader, or a socket write); with 256 KiB
// steps here and in the proxy it took a third less CPU and ran 1.5×
// as fast (docs/performance.md).
func copyBody(w io.Writer, f io.Reader, n int64) error {
	pool := bufpool.For(n)
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	_, err := io.CopyBuffer(writerOnly{w}, io.LimitReader(f, n), *bp)
	return err
}

// writerOnly hides a writer's ReadFrom, so that io.CopyBuffer uses the
// buffer it is given.
type writerOnly struct{ io.Writer }
