package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newInlineNode is a node that keeps objects up to 64 KiB inline.
func newInlineNode(t *testing.T) *node {
	t.Helper()
	n := newNode(t)
	n.cfg.InlineMax = 64 << 10
	var err error
	if n.obj, err = NewObjectServer(n.cfg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.obj)
	t.Cleanup(srv.Close)
	n.objURL = srv.URL
	return n
}

// inlineRow reads a file of the hash dir straight from the store.
func inlineRow(t *testing.T, dir, name string) (map[string]string, []byte, error) {
	t.Helper()
	st, place, err := inlineStoreOf(dir)
	if err != nil || st == nil {
		t.Fatalf("no inline store for %s: %v", dir, err)
	}
	return st.file(place.hash, name)
}

func TestInlineObjectLifecycle(t *testing.T) {
	n := newInlineNode(t)
	p := "/sda/0/a/c/o"
	dir := n.objDir("0", "a", "c", "o")
	t1, t2, t3, t4 := n.ts(), n.ts(), n.ts(), n.ts()
	expectStatus(t, n.putObject(t, p, t1, "first body", map[string]string{"X-Object-Meta-Color": "red"}), 201, "put")
	// No hash dir, no file: the object is a row.
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("hash dir of an inline object: %v", err)
	}
	md, body, err := inlineRow(t, dir, t1+".data")
	if err != nil || string(body) != "first body" || md["X-Object-Meta-Color"] != "red" || md["ETag"] != md5hex("first body") {
		t.Fatalf("row: %v %q %v", md, body, err)
	}
	g := do(t, "GET", n.objURL+p, nil, "")
	expectStatus(t, g, 200, "get")
	if g.body != "first body" || g.header.Get("X-Object-Meta-Color") != "red" || g.header.Get("Etag") != md5hex("first body") {
		t.Fatalf("get: %q %v", g.body, g.header)
	}
	r := do(t, "GET", n.objURL+p, map[string]string{"Range": "bytes=6-9"}, "")
	expectStatus(t, r, 206, "range")
	if r.body != "body" {
		t.Fatalf("range body %q", r.body)
	}
	// A POST's .meta is a file beside the row, and both merge.
	expectStatus(t, do(t, "POST", n.objURL+p, map[string]string{"X-Timestamp": t2, "X-Object-Meta-Shape": "round"}, ""), 202, "post")
	h := do(t, "HEAD", n.objURL+p, nil, "")
	if h.header.Get("X-Object-Meta-Shape") != "round" || h.header.Get("X-Object-Meta-Color") != "" || h.header.Get("Content-Length") != "10" {
		t.Fatalf("head after post: %v", h.header)
	}
	// An overwrite replaces the row; the old one is gone once committed.
	expectStatus(t, n.putObject(t, p, t3, "second", nil), 201, "overwrite")
	if files := listDir(t, dir); len(files) != 1 || files[0] != t3+".data" {
		t.Fatalf("after overwrite: %v", files)
	}
	if g := do(t, "GET", n.objURL+p, nil, ""); g.body != "second" {
		t.Fatalf("after overwrite: %q", g.body)
	}
	// An older write loses.
	expectStatus(t, n.putObject(t, p, t2, "stale", nil), 409, "older put")
	// DELETE leaves a tombstone, and the row goes.
	expectStatus(t, do(t, "DELETE", n.objURL+p, map[string]string{"X-Timestamp": t4}, ""), 204, "delete")
	expectStatus(t, do(t, "GET", n.objURL+p, nil, ""), 404, "get deleted")
	if files := listDir(t, dir); len(files) != 1 || files[0] != t4+".ts" {
		t.Fatalf("after delete: %v", files)
	}
	// Objects above the limit, and chunked ones, stay files.
	big := strings.Repeat("x", 64<<10+1)
	t5 := n.ts()
	expectStatus(t, n.putObject(t, "/sda/0/a/c/big", t5, big, nil), 201, "big put")
	if _, err := os.Stat(filepath.Join(n.objDir("0", "a", "c", "big"), t5+".data")); err != nil {
		t.Fatalf("large object not a file: %v", err)
	}
}

// An object stored inline on one device and as a file on another must
// give the same suffix hashes, or replication would push it forever.
func TestInlineSuffixHashesMatchFiles(t *testing.T) {
	in, files := newInlineNode(t), newNode(t)
	for i, name := range []string{"o1", "o2", "o3", "o4"} {
		ts := in.ts()
		body := strings.Repeat("b", i*100)
		for _, n := range []*node{in, files} {
			expectStatus(t, n.putObject(t, "/sda/1/a/c/"+name, ts, body, nil), 201, "put "+name)
		}
	}
	ts := in.ts()
	for _, n := range []*node{in, files} {
		expectStatus(t, do(t, "DELETE", n.objURL+"/sda/1/a/c/o2", map[string]string{"X-Timestamp": ts}, ""), 204, "delete")
	}
	a, err := ObjectSuffixHashes(in.dev, 0, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ObjectSuffixHashes(files.dev, 0, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 4 || len(a) != len(b) {
		t.Fatalf("suffixes: inline %v, files %v", a, b)
	}
	for s, h := range b {
		if a[s] != h {
			t.Fatalf("suffix %s: inline %s, files %s", s, a[s], h)
		}
	}
	if parts, err := ObjectPartitions(in.dev, 0); err != nil || len(parts) != 1 || parts[0] != 1 {
		t.Fatalf("partitions %v %v", parts, err)
	}
	// The files replication would push are the same, and read the same.
	hash := hashPath("pre", "suf", "a", "c", "o1")
	fa, err := ObjectSuffixFiles(in.dev, 0, 1, []string{hash[29:]})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := ObjectSuffixFiles(files.dev, 0, 1, []string{hash[29:]})
	if err != nil || len(fa[hash]) != 1 || len(fb[hash]) != 1 || fa[hash][0] != fb[hash][0] {
		t.Fatalf("suffix files: inline %v, files %v (%v)", fa, fb, err)
	}
	of, err := OpenObjectFile(in.dev, 0, 1, hash, fa[hash][0])
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	if b, _ := io.ReadAll(of.Body); string(b) != "" || of.Size != 0 || of.Metadata["name"] != "/a/c/o1" {
		t.Fatalf("pushed file: %q %d %v", b, of.Size, of.Metadata)
	}
	// Handing off the partition removes its rows too.
	if err := RemoveObjectPartition(in.dev, 0, 1); err != nil {
		t.Fatal(err)
	}
	if h, err := ObjectSuffixHashes(in.dev, 0, 1, time.Hour); err != nil || len(h) != 0 {
		t.Fatalf("after removal: %v %v", h, err)
	}
}

// A pushed small .data lands in the receiver's inline store.
func TestInlineSyncReceives(t *testing.T) {
	from, to := newNode(t), newInlineNode(t)
	ts := from.ts()
	expectStatus(t, from.putObject(t, "/sda/1/a/c/o", ts, "replicated", map[string]string{"X-Object-Meta-K": "v"}), 201, "put")
	hash := hashPath("pre", "suf", "a", "c", "o")
	of, err := OpenObjectFile(from.dev, 0, 1, hash, ts+".data")
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	req, _ := http.NewRequest(MethodSync, to.objURL+"/sda/1/"+hash+"/"+ts+".data", of.Body)
	req.ContentLength = of.Size
	req.Header.Set(SyncMetadataHeader, encodeSyncMetadata(t, of.Metadata))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("sync: %d", resp.StatusCode)
	}
	dir := to.objDir("1", "a", "c", "o")
	if _, body, err := inlineRow(t, dir, ts+".data"); err != nil || string(body) != "replicated" {
		t.Fatalf("received row: %q %v", body, err)
	}
	g := do(t, "GET", to.objURL+"/sda/1/a/c/o", nil, "")
	if g.body != "replicated" || g.header.Get("X-Object-Meta-K") != "v" {
		t.Fatalf("get: %q %v", g.body, g.header)
	}
}

// corruptRow changes an inline object's stored bytes, as a bad disk would.
func corruptRow(t *testing.T, dir, name, body string) {
	t.Helper()
	st, place, err := inlineStoreOf(dir)
	if err != nil || st == nil {
		t.Fatalf("no inline store: %v", err)
	}
	if _, err := st.w.Exec(`UPDATE inline_file SET body = ? WHERE hash = ? AND name = ?`, []byte(body), place.hash, name); err != nil {
		t.Fatal(err)
	}
}

func TestInlineQuarantine(t *testing.T) {
	n := newInlineNode(t)
	ts := n.ts()
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", ts, "abcdef", nil), 201, "put")
	dir := n.objDir("0", "a", "c", "o")
	corruptRow(t, dir, ts+".data", "abcdeX")
	expectStatus(t, do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, ""), 404, "corrupt read")
	if _, _, err := inlineRow(t, dir, ts+".data"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("quarantined row still in the store: %v", err)
	}
	q := filepath.Join(n.dev, "quarantined", "objects", filepath.Base(dir), ts+".data")
	if b, err := os.ReadFile(q); err != nil || string(b) != "abcdeX" {
		t.Fatalf("quarantined copy: %q %v", b, err)
	}
	if md, err := readMetadata(q); err != nil || md["ETag"] != md5hex("abcdef") {
		t.Fatalf("quarantined metadata: %v %v", md, err)
	}

	// The auditor finds a corrupt row that no one reads.
	ts2 := n.ts()
	expectStatus(t, n.putObject(t, "/sda/3/a/c/bad", ts2, "precious", nil), 201, "put bad")
	expectStatus(t, n.putObject(t, "/sda/3/a/c/good", n.ts(), "fine", nil), 201, "put good")
	badDir := n.objDir("3", "a", "c", "bad")
	corruptRow(t, badDir, ts2+".data", "PRECIOUS")
	st, err := n.obj.AuditOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 2 || st.Quarantined != 1 || st.Bytes != int64(len("PRECIOUS")+len("fine")) {
		t.Fatalf("audit: %+v", st)
	}
	expectStatus(t, do(t, "GET", n.objURL+"/sda/3/a/c/bad", nil, ""), 404, "audited bad")
	expectStatus(t, do(t, "GET", n.objURL+"/sda/3/a/c/good", nil, ""), 200, "audited good")
	// A good copy pushed later is served again.
	expectStatus(t, n.putObject(t, "/sda/3/a/c/bad", ts2, "precious", nil), 201, "restore")
	expectStatus(t, do(t, "GET", n.objURL+"/sda/3/a/c/bad", nil, ""), 200, "restored")
}

// encodeSyncMetadata is the SYNC header a replicator sends for md.
func encodeSyncMetadata(t *testing.T, md map[string]string) string {
	t.Helper()
	b, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
