package image

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func withCache(t *testing.T) func(*Config) {
	return func(cfg *Config) {
		cfg.CacheDir = filepath.Join(t.TempDir(), "cache")
		cfg.CachePrefetchInterval = 50 * time.Millisecond
	}
}

func cachedIDs(h *harness) []string {
	h.t.Helper()
	var ids []string
	for _, e := range h.json("admin", "GET", "/v2/cache", nil, http.StatusOK)["cached_images"].([]any) {
		ids = append(ids, e.(map[string]any)["image_id"].(string))
	}
	return ids
}

func waitCached(t *testing.T, h *harness, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, c := range cachedIDs(h) {
			if c == id {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s never cached", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestImageCacheAPI(t *testing.T) {
	h := newHarnessWith(t, withCache(t))
	h.json("a", "GET", "/v2/cache", nil, http.StatusForbidden)
	h.json("admin", "PUT", "/v2/cache/00000000-0000-0000-0000-000000000000", nil, http.StatusNotFound)
	queued := h.create("admin", map[string]any{"name": "q", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.json("admin", "PUT", "/v2/cache/"+queued, nil, http.StatusBadRequest)

	data := bytes.Repeat([]byte("cached "), 10000)
	id := h.create("admin", map[string]any{"name": "c", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("admin", id, data, http.StatusNoContent)
	h.json("admin", "PUT", "/v2/cache/"+id, nil, http.StatusAccepted)
	waitCached(t, h, id)
	if q := h.json("admin", "GET", "/v2/cache", nil, http.StatusOK)["queued_images"].([]any); len(q) != 0 {
		t.Fatalf("a cached image stays queued: %v", q)
	}

	// The cached copy serves downloads, also when the store lost its copy.
	if err := os.Remove(filepath.Join(h.dataDir, id)); err != nil {
		t.Fatal(err)
	}
	status, _, got := h.do("admin", "GET", "/v2/images/"+id+"/file", nil)
	if status != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("download from the cache: %d, %d bytes", status, len(got))
	}
	status, _, got = h.do("admin", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=7-13")
	if status != http.StatusPartialContent || string(got) != "cached " {
		t.Fatalf("ranged download from the cache: %d %q", status, got)
	}
	list := h.json("admin", "GET", "/v2/cache", nil, http.StatusOK)["cached_images"].([]any)
	if hits := list[0].(map[string]any)["hits"]; hits != float64(2) {
		t.Fatalf("hits %v, want 2", hits)
	}

	status, _, _ = h.do("admin", "DELETE", "/v2/cache", nil, "X-Image-Cache-Clear-Target", "invalid")
	if status != http.StatusBadRequest {
		t.Fatalf("invalid clear target: %d", status)
	}
	h.json("admin", "DELETE", "/v2/cache", nil, http.StatusNoContent)
	if ids := cachedIDs(h); len(ids) != 0 {
		t.Fatalf("cache after clear: %v", ids)
	}
}

func TestDownloadFillsCache(t *testing.T) {
	h := newHarnessWith(t, func(cfg *Config) {
		withCache(t)(cfg)
		cfg.CacheMaxSize = 250_000
	})
	small := bytes.Repeat([]byte("s"), 100_000)
	a := h.create("a", map[string]any{"name": "a", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("a", a, small, http.StatusNoContent)
	// A partial download does not fill the cache; a whole one does.
	h.do("a", "GET", "/v2/images/"+a+"/file", nil, "Range", "bytes=0-9")
	if ids := cachedIDs(h); len(ids) != 0 {
		t.Fatalf("a ranged download cached %v", ids)
	}
	h.do("a", "GET", "/v2/images/"+a+"/file", nil)
	waitCached(t, h, a)
	// Two more images overflow the cache: the least recently used goes.
	b := h.create("a", map[string]any{"name": "b", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("a", b, small, http.StatusNoContent)
	c := h.create("a", map[string]any{"name": "c", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("a", c, small, http.StatusNoContent)
	h.do("a", "GET", "/v2/images/"+b+"/file", nil)
	waitCached(t, h, b)
	h.do("a", "GET", "/v2/images/"+c+"/file", nil)
	waitCached(t, h, c)
	ids := cachedIDs(h)
	if len(ids) != 2 {
		t.Fatalf("cache holds %v, want the two most recent of %s %s %s", ids, a, b, c)
	}
	for _, id := range ids {
		if id == a {
			t.Fatalf("the least recently used image stayed: %v", ids)
		}
	}
	// Deleting an image drops its cached copy.
	h.json("a", "DELETE", "/v2/images/"+b, nil, http.StatusNoContent)
	for _, id := range cachedIDs(h) {
		if id == b {
			t.Fatal("a deleted image stays cached")
		}
	}
}

// Queued images wait for the prefetcher, as in Glance: until it runs the
// queue shows them.
func TestCacheQueueWaitsForPrefetcher(t *testing.T) {
	h := newHarnessWith(t, func(cfg *Config) {
		cfg.CacheDir = filepath.Join(t.TempDir(), "cache")
		cfg.CachePrefetchInterval = time.Hour
	})
	id := h.create("admin", map[string]any{"name": "c", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("admin", id, []byte("data"), http.StatusNoContent)
	h.json("admin", "PUT", "/v2/cache/"+id, nil, http.StatusAccepted)
	h.json("admin", "PUT", "/v2/cache/"+id, nil, http.StatusAccepted) // queued once
	got := h.json("admin", "GET", "/v2/cache", nil, http.StatusOK)
	if q := got["queued_images"].([]any); len(q) != 1 || q[0] != id || len(got["cached_images"].([]any)) != 0 {
		t.Fatalf("cache listing right after queueing: %v", got)
	}
	status, _, _ := h.do("admin", "DELETE", "/v2/cache", nil, "X-Image-Cache-Clear-Target", "queue")
	if status != http.StatusNoContent {
		t.Fatalf("clear the queue: %d", status)
	}
	if q := h.json("admin", "GET", "/v2/cache", nil, http.StatusOK)["queued_images"].([]any); len(q) != 0 {
		t.Fatalf("queue after clearing it: %v", q)
	}
}
