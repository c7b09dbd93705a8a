package server

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// TestPutWithNamedTmpFiles runs a PUT, an overwrite and a GET the way a
// filesystem without O_TMPFILE gets them: through named files in the
// device's tmp dir, which must be empty afterwards.
func TestPutWithNamedTmpFiles(t *testing.T) {
	if !tmpfileOK.Load() {
		t.Skip("O_TMPFILE already off here: every other test covers named tmp files")
	}
	tmpfileOK.Store(false)
	defer tmpfileOK.Store(true)
	n := newNode(t)
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), "one", nil), 201, "put")
	ts2 := n.ts()
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", ts2, "two", nil), 201, "overwrite")
	g := do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, "")
	if g.status != 200 || g.body != "two" {
		t.Fatalf("get: %d %q", g.status, g.body)
	}
	if tmp := listDir(t, filepath.Join(n.dev, tmpDir)); len(tmp) != 0 {
		t.Fatalf("tmp files left: %v", tmp)
	}
	if files := listDir(t, n.objDir("0", "a", "c", "o")); len(files) != 1 || files[0] != ts2+".data" {
		t.Fatalf("object files %v", files)
	}
}

// TestDiskWriterWriteBehind writes several write-behind chunks and an odd
// tail, and expects the committed file to hold exactly those bytes.
func TestDiskWriterWriteBehind(t *testing.T) {
	dev := t.TempDir()
	dir := filepath.Join(dev, objectsDir, "0", "abc", "0123456789abcdef0123456789abcabc")
	w, err := newDiskWriterIn(dev, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.abort()
	size := 2*writeBehind + 12345
	if err := w.preallocate(int64(size)); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	for b := want; len(b) > 0; {
		n := min(len(b), 100_000)
		if _, err := w.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	sum := md5.Sum(want)
	if w.etag() != hex.EncodeToString(sum[:]) {
		t.Fatalf("etag %s", w.etag())
	}
	if err := w.commit(map[string]string{"name": "/a/c/o"}, dir, "1.00000.data"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "1.00000.data"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("committed file: %d bytes, err %v", len(got), err)
	}
}

// TestSmallGetChecksBeforeSending corrupts a small object in place: the
// GET must answer 404 before sending any of it, and quarantine the file.
func TestSmallGetChecksBeforeSending(t *testing.T) {
	n := newNode(t)
	ts := n.ts()
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", ts, "hello", nil), 201, "put")
	dir := n.objDir("0", "a", "c", "o")
	f, err := os.OpenFile(filepath.Join(dir, ts+".data"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("j"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	g := do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, "")
	if g.status != 404 || g.body == "jello" {
		t.Fatalf("corrupted object: %d %q", g.status, g.body)
	}
	if q := listDir(t, filepath.Join(n.dev, quarantineDir, objectsDir)); len(q) != 1 {
		t.Fatalf("quarantined: %v", q)
	}
}
