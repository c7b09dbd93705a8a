package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Write replaces the content and mode, leaves no temporary file behind,
// and on failure (here: a directory where the file should go) leaves the
// old content and no temporary file either.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys")
	for _, content := range []string{"first", "second, longer", ""} {
		if err := Write(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(sub, []byte("not a dir"), 0o600); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 2 {
		t.Fatalf("dir holds %v (%v), want only keys and sub", ents, err)
	}
}
