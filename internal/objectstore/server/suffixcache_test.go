package server

import (
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// suffixHashesNow is ObjectSuffixHashes of partition 1 of n's device.
func suffixHashesNow(t *testing.T, n *node) map[string]string {
	t.Helper()
	h, err := ObjectSuffixHashes(n.dev, 0, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// uncachedSuffixHashes recomputes every suffix of partition 1, bypassing
// the cache: what the cache must agree with.
func uncachedSuffixHashes(t *testing.T, n *node) map[string]string {
	t.Helper()
	dir := partDir(n.dev, 0, 1)
	ents, _ := os.ReadDir(dir)
	out := map[string]string{}
	for _, e := range ents {
		h, err := suffixHash(filepath.Join(dir, e.Name()), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if h != "" {
			out[e.Name()] = h
		}
	}
	return out
}

// Every kind of change made through the server moves the cached hashes
// exactly as a recomputation would.
func TestSuffixHashCacheFollowsWrites(t *testing.T) {
	n := newNode(t)
	check := func(what string) map[string]string {
		t.Helper()
		got, want := suffixHashesNow(t, n), uncachedSuffixHashes(t, n)
		if !maps.Equal(got, want) {
			t.Fatalf("after %s: cached hashes %v, recomputed %v", what, got, want)
		}
		return got
	}
	for _, o := range []string{"o1", "o2", "o3"} {
		expectStatus(t, n.putObject(t, "/sda/1/a/c/"+o, n.ts(), "v1", nil), http.StatusCreated, "put")
	}
	first := check("three puts")
	if len(first) == 0 {
		t.Fatal("no suffix hashes after three puts")
	}
	suf := filepath.Base(filepath.Dir(n.objDir("1", "a", "c", "o1")))

	steps := []struct {
		what string
		do   func()
	}{
		{"an overwrite", func() {
			expectStatus(t, n.putObject(t, "/sda/1/a/c/o1", n.ts(), "v2", nil), http.StatusCreated, "overwrite")
		}},
		{"a POST", func() {
			expectStatus(t, do(t, http.MethodPost, n.objURL+"/sda/1/a/c/o1", map[string]string{"X-Timestamp": n.ts(), "X-Object-Meta-K": "v"}, ""), http.StatusAccepted, "post")
		}},
		{"a DELETE", func() {
			expectStatus(t, do(t, http.MethodDelete, n.objURL+"/sda/1/a/c/o1", map[string]string{"X-Timestamp": n.ts()}, ""), http.StatusNoContent, "delete")
		}},
		{"a quarantine", func() { n.obj.quarantine(n.dev, n.objDir("1", "a", "c", "o1"), "", "test") }},
	}
	prev := first[suf]
	for _, s := range steps {
		s.do()
		if got := check(s.what)[suf]; got == prev {
			t.Fatalf("%s did not change the hash of suffix %s", s.what, suf)
		} else {
			prev = got
		}
	}

	if err := RemoveObjectPartition(n.dev, 0, 1); err != nil {
		t.Fatal(err)
	}
	if h := suffixHashesNow(t, n); len(h) != 0 {
		t.Fatalf("hashes after the partition was removed: %v", h)
	}
	expectStatus(t, n.putObject(t, "/sda/1/a/c/o3", n.ts(), "back", nil), http.StatusCreated, "put after removal")
	check("a put into the removed partition")
}

// A computation that overlaps a write to its suffix must not keep its
// result: it may have listed the dir before the write.
func TestSuffixHashCacheDropsResultRacingAWrite(t *testing.T) {
	c := &suffixCache{parts: map[string]*partHashes{}}
	part := "/dev/x/objects/7"
	hashDir := part + "/abc/" + "0123456789abcdef0123456789abcabc"
	now := time.Now()

	snap := c.snapshot(part, 1, []string{"abc", "def"}, now)
	c.invalidateHashDir(hashDir) // a write lands while it lists
	c.store(part, snap, map[string]string{"abc": "stale", "def": "d1"}, true, now)
	s := c.snapshot(part, 1, []string{"abc", "def"}, now)
	if _, ok := s.hashes["abc"]; ok {
		t.Fatal("kept the hash of a suffix written during its computation")
	}
	if s.hashes["def"] != "d1" {
		t.Fatalf("def = %q, want the computed d1", s.hashes["def"])
	}

	// The same for a partition removed during the computation.
	c.invalidatePartition(part)
	if s := c.snapshot(part, 1, []string{"abc", "def"}, now); len(s.hashes) != 0 {
		t.Fatalf("hashes kept after the partition was removed: %v", s.hashes)
	}
	snap = c.snapshot(part, 1, []string{"def"}, now)
	c.invalidatePartition(part)
	c.store(part, snap, map[string]string{"def": "old"}, true, now)
	if s := c.snapshot(part, 1, []string{"def"}, now); len(s.hashes) != 0 {
		t.Fatalf("kept a result computed across a partition removal: %v", s.hashes)
	}

	// Paths outside an objects tree are not partitions.
	c.invalidateHashDir("/dev/x/async_pending/abc/0123456789abcdef0123456789abcabc-1.00000")
	if len(c.parts) != 1 {
		t.Fatalf("an async pending path made a cache entry: %v", slices.Collect(maps.Keys(c.parts)))
	}
}

// A change made behind the server's back (by hand, or a disk that lost a
// file) shows once the partition's entry expires, and not before: the
// cache really is used.
func TestSuffixHashCacheExpires(t *testing.T) {
	n := newNode(t)
	expectStatus(t, n.putObject(t, "/sda/1/a/c/o", n.ts(), "v1", nil), http.StatusCreated, "put")
	before := suffixHashesNow(t, n)
	dir := n.objDir("1", "a", "c", "o")
	files := listDir(t, dir)
	if len(files) != 1 {
		t.Fatalf("hash dir holds %v", files)
	}
	if err := os.Remove(filepath.Join(dir, files[0])); err != nil {
		t.Fatal(err)
	}
	if got := suffixHashesNow(t, n); !maps.Equal(got, before) {
		t.Fatalf("hashes changed without a write or an expiry: %v, cached %v", got, before)
	}
	part := partDir(n.dev, 0, 1)
	suffixHashCache.mu.Lock()
	suffixHashCache.parts[part].expires = time.Now().Add(-time.Second)
	suffixHashCache.mu.Unlock()
	if got := suffixHashesNow(t, n); len(got) != 0 {
		t.Fatalf("after expiry the hashes still show the removed file: %v", got)
	}
}

// A partition dir replaced as a whole (a device restored from an older
// copy) is recomputed, though no write of this process touched it.
func TestSuffixHashCacheNoticesAReplacedPartition(t *testing.T) {
	n := newNode(t)
	expectStatus(t, n.putObject(t, "/sda/1/a/c/o", n.ts(), "v1", nil), http.StatusCreated, "put v1")
	old := suffixHashesNow(t, n)
	part := partDir(n.dev, 0, 1)
	backup := filepath.Join(n.root, "backup")
	copyTree(t, part, backup)
	expectStatus(t, n.putObject(t, "/sda/1/a/c/o", n.ts(), "v2", nil), http.StatusCreated, "put v2")
	if maps.Equal(suffixHashesNow(t, n), old) {
		t.Fatal("the overwrite did not change the hashes")
	}
	if err := os.RemoveAll(part); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backup, part); err != nil {
		t.Fatal(err)
	}
	if got := suffixHashesNow(t, n); !maps.Equal(got, old) {
		t.Fatalf("hashes of the restored partition: %v, want those of its copy %v", got, old)
	}
}
