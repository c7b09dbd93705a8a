package server

import (
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// patternReader yields size bytes of a repeating pattern without holding
// them in memory.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(b))
	if n > p.left {
		n = p.left
	}
	for i := range b[:n] {
		b[i] = byte(i % 251)
	}
	p.left -= n
	return int(n), nil
}

// TestObjectStreamingMemory pushes 64 MiB through PUT and GET and checks the
// process allocated a small fraction of that: neither direction buffers
// the object.
func TestObjectStreamingMemory(t *testing.T) {
	n := newNode(t)
	const size = 64 << 20
	h := md5.New()
	io.Copy(h, &patternReader{left: size})
	want := hex.EncodeToString(h.Sum(nil))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest("PUT", n.objURL+"/sda/0/a/c/big", &patternReader{left: size})
	req.ContentLength = size
	req.Header.Set("X-Timestamp", n.ts())
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 || res.Header.Get("Etag") != want {
		t.Fatalf("put: %d %s", res.StatusCode, res.Header.Get("Etag"))
	}
	res, err = http.Get(n.objURL + "/sda/0/a/c/big")
	if err != nil {
		t.Fatal(err)
	}
	gh := md5.New()
	got, _ := io.Copy(gh, res.Body)
	res.Body.Close()
	runtime.ReadMemStats(&after)
	if got != size || hex.EncodeToString(gh.Sum(nil)) != want {
		t.Fatalf("get: %d bytes", got)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("moving 2 x 64 MiB allocated %d bytes", alloc)
	}
}

// Ranges of an object above copyBody's large-buffer size come back byte
// for byte, across the buffer's boundaries.
func TestLargeObjectRanges(t *testing.T) {
	n := newNode(t)
	const size = 3 << 20
	body, _ := io.ReadAll(&patternReader{left: size})
	expectStatus(t, n.putObject(t, "/sda/0/a/c/big", n.ts(), string(body), nil), 201, "put")
	r := do(t, "GET", n.objURL+"/sda/0/a/c/big", map[string]string{"Range": "bytes=100000-2500000"}, "")
	expectStatus(t, r, 206, "single range")
	if r.body != string(body[100000:2500001]) {
		t.Fatalf("single range: %d bytes, wrong content", len(r.body))
	}
	r = do(t, "GET", n.objURL+"/sda/0/a/c/big", map[string]string{"Range": "bytes=0-299999,1048000-2200000"}, "")
	expectStatus(t, r, 206, "two ranges")
	for _, part := range [][2]int{{0, 300000}, {1048000, 2200001}} {
		if !strings.Contains(r.body, string(body[part[0]:part[1]])) {
			t.Fatalf("multipart answer lacks bytes %d-%d", part[0], part[1]-1)
		}
	}
	if g := do(t, "GET", n.objURL+"/sda/0/a/c/big", nil, ""); g.body != string(body) {
		t.Fatalf("whole object: %d bytes, wrong content", len(g.body))
	}
}
