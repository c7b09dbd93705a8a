package imagestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newFS(t *testing.T) (*Filesystem, string) {
	t.Helper()
	dir := t.TempDir()
	fs, err := NewFilesystem("file", dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs, dir
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestFilesystemPutGetDelete(t *testing.T) {
	fs, dir := newFS(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	loc, n, err := fs.Put(ctx, "img1", bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("put: %v %d", err, n)
	}
	if loc.Store != "file" || !strings.HasPrefix(loc.URL, "file://") {
		t.Fatalf("location %+v", loc)
	}
	if got := entries(t, dir); len(got) != 1 || got[0] != "img1" {
		t.Fatalf("dir holds %v", got)
	}
	rc, err := fs.Get(ctx, loc, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
	rc, err = fs.Get(ctx, loc, 5, 7)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if string(got) != "5678901" {
		t.Fatalf("range read %q", got)
	}
	if err := fs.Delete(ctx, loc); err != nil {
		t.Fatal(err)
	}
	if err := fs.Delete(ctx, loc); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := fs.Get(ctx, loc, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestFilesystemPutFailureLeavesNothing(t *testing.T) {
	fs, dir := newFS(t)
	if _, _, err := fs.Put(context.Background(), "img", &failingReader{n: 100000}); err == nil {
		t.Fatal("put of a failing reader succeeded")
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("left behind %v", got)
	}
}

func TestFilesystemPutCancelled(t *testing.T) {
	fs, dir := newFS(t)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	go func() {
		pw.Write(make([]byte, 1000))
		cancel()
		pw.Write(make([]byte, 1000))
		pw.Close()
	}()
	_, _, err := fs.Put(ctx, "img", pr)
	pr.Close() // unblocks the writer
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("put after cancel: %v", err)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("left behind %v", got)
	}
}

func TestFilesystemRefusesForeignLocations(t *testing.T) {
	fs, _ := newFS(t)
	ctx := context.Background()
	for _, u := range []string{"file:///etc/passwd", "http://x/y", "file://" + fs.dir + "/../x"} {
		if _, err := fs.Get(ctx, Location{Store: "file", URL: u}, 0, -1); err == nil {
			t.Errorf("get %s succeeded", u)
		}
	}
	if _, _, err := fs.Put(ctx, "../evil", strings.NewReader("x")); err == nil {
		t.Error("put with a path id succeeded")
	}
}

func TestFilesystemRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	stale, fresh := filepath.Join(dir, ".tmp-a-1"), filepath.Join(dir, ".tmp-b-2")
	for _, p := range []string{stale, fresh, filepath.Join(dir, "img")} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := NewFilesystem("file", dir); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, dir); len(got) != 2 || got[0] != ".tmp-b-2" || got[1] != "img" {
		t.Fatalf("after start: %v", got)
	}
}
