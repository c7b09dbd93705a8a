package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAuditorQuarantinesCorruptObject(t *testing.T) {
	n := newNode(t)
	ts := n.ts()
	expectStatus(t, n.putObject(t, "/sda/3/a/c/bad", ts, "precious data", nil), 201, "put bad")
	expectStatus(t, n.putObject(t, "/sda/3/a/c/good", n.ts(), "fine data", nil), 201, "put good")
	expectStatus(t, n.putObject(t, "/sda/3/a/c/nometa", n.ts(), "lost xattr", nil), 201, "put nometa")
	badDir := n.objDir("3", "a", "c", "bad")
	// Flip bytes in place: same size, metadata intact, checksum wrong.
	f, err := os.OpenFile(filepath.Join(badDir, ts+".data"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("PRECIOUS"), 0)
	f.Close()
	nmDir := n.objDir("3", "a", "c", "nometa")
	nm := filepath.Join(nmDir, listDir(t, nmDir)[0])
	if err := unix.Removexattr(nm, metadataKey); err != nil {
		t.Fatal(err)
	}
	st, err := n.obj.AuditOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 3 || st.Quarantined != 2 {
		t.Fatalf("audit stats %+v", st)
	}
	expectStatus(t, do(t, "GET", n.objURL+"/sda/3/a/c/bad", nil, ""), 404, "corrupt object no longer served")
	expectStatus(t, do(t, "GET", n.objURL+"/sda/3/a/c/nometa", nil, ""), 404, "object without metadata")
	expectStatus(t, do(t, "GET", n.objURL+"/sda/3/a/c/good", nil, ""), 200, "good object")
	q := filepath.Join(n.dev, "quarantined", "objects", filepath.Base(badDir), ts+".data")
	if b, err := os.ReadFile(q); err != nil || !strings.HasPrefix(string(b), "PRECIOUS") {
		t.Fatalf("quarantined copy: %v %q", err, b)
	}
	// A good copy written later (by replication) is served again.
	expectStatus(t, n.putObject(t, "/sda/3/a/c/bad", ts, "precious data", nil), 201, "restore")
	expectStatus(t, do(t, "GET", n.objURL+"/sda/3/a/c/bad", nil, ""), 200, "restored")
}

func TestGetQuarantinesCorruptObject(t *testing.T) {
	n := newNode(t)
	ts := n.ts()
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", ts, "abcdef", nil), 201, "put")
	dir := n.objDir("0", "a", "c", "o")
	os.WriteFile(filepath.Join(dir, ts+".data"), []byte("abcdeX"), 0o600) // truncates; xattr stays on the inode
	do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, "")
	expectStatus(t, do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, ""), 404, "second read after checksum failure")
	if ents := listDir(t, filepath.Join(n.dev, "quarantined", "objects")); len(ents) != 1 {
		t.Fatalf("quarantine %v", ents)
	}
}

func TestAuditorRateLimit(t *testing.T) {
	n := newNode(t)
	n.obj.cfg.AuditorBytesPerSecond = 256 * 1024
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), strings.Repeat("x", 128*1024), nil), 201, "put")
	start := time.Now()
	if _, err := n.obj.AuditOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("128 KiB audited at 256 KiB/s in %v", el)
	}
}

// A streamed GET (an object larger than serveWhole reads at once) is
// hashed on the way out: a good object stays, a corrupted one (same size,
// a byte changed in its last chunk) is quarantined once it was sent.
func TestStreamedGetQuarantinesCorruptObject(t *testing.T) {
	n := newNode(t)
	body := strings.Repeat("0123456789abcdef", 40<<10) // 640 KiB: several chunks
	for _, name := range []string{"good", "bad"} {
		expectStatus(t, n.putObject(t, "/sda/0/a/c/"+name, n.ts(), body, nil), 201, "put "+name)
	}
	for range 2 {
		if r := do(t, "GET", n.objURL+"/sda/0/a/c/good", nil, ""); r.status != 200 || r.body != body {
			t.Fatalf("GET good: %d, %d bytes", r.status, len(r.body))
		}
	}
	dir := n.objDir("0", "a", "c", "bad")
	data, err := filepath.Glob(filepath.Join(dir, "*.data"))
	if err != nil || len(data) != 1 {
		t.Fatalf("data files %v, %v", data, err)
	}
	f, err := os.OpenFile(data[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), int64(len(body)-10)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if r := do(t, "GET", n.objURL+"/sda/0/a/c/bad", nil, ""); r.status != 200 || len(r.body) != len(body) {
		t.Fatalf("first GET of the corrupted object: %d, %d bytes", r.status, len(r.body))
	}
	expectStatus(t, do(t, "GET", n.objURL+"/sda/0/a/c/bad", nil, ""), 404, "second read after checksum failure")
	expectStatus(t, do(t, "GET", n.objURL+"/sda/0/a/c/good", nil, ""), 200, "the good object")
	if ents := listDir(t, filepath.Join(n.dev, "quarantined", "objects")); len(ents) != 1 {
		t.Fatalf("quarantine %v", ents)
	}
}
