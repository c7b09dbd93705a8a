package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/ctxio"
)

// cache is Glance's image cache: whole copies of image data on this API
// node's disk, so that images kept in a remote store (S3, HTTP) are read
// from there once and then served locally. Images get in when they are
// downloaded whole or when an admin queues them (PUT /v2/cache/{id},
// fetched at once in the background); the least recently used leave when
// the cache is over its size. The cache is per node, like Glance's: its
// state is the directory, plus hit counts kept in memory.
type cache struct {
	dir     string
	maxSize int64

	mu     sync.Mutex
	hits   map[string]int64     // guarded by mu
	access map[string]time.Time // guarded by mu
	queue  []string             // guarded by mu: ids waiting to be fetched
	busy   map[string]bool      // guarded by mu: ids being fetched or teed
}

func newCache(dir string, maxSize int64) (*cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	// Temp files of fills a crash cut short are never completed.
	if tmps, err := filepath.Glob(filepath.Join(dir, ".tmp-*")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	return &cache{dir: dir, maxSize: maxSize, hits: map[string]int64{}, access: map[string]time.Time{}, busy: map[string]bool{}}, nil
}

func (c *cache) path(id string) string { return filepath.Join(c.dir, id) }

// open returns the cached copy of an image of the given size, or nil.
// A copy of another size is stale (the image cannot change, so it is
// damaged) and is dropped.
func (c *cache) open(id string, size int64) *os.File {
	f, err := os.Open(c.path(id))
	if err != nil {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		f.Close()
		c.remove(id)
		return nil
	}
	c.mu.Lock()
	c.hits[id]++
	c.access[id] = time.Now()
	c.mu.Unlock()
	return f
}

// begin reserves id for one fill at a time; false when it is being
// filled already.
func (c *cache) begin(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy[id] {
		return false
	}
	c.busy[id] = true
	return true
}

func (c *cache) end(id string) {
	c.mu.Lock()
	delete(c.busy, id)
	c.queue = slices.DeleteFunc(c.queue, func(q string) bool { return q == id })
	c.mu.Unlock()
}

// fill copies r (size bytes of image id) into the cache.
func (c *cache) fill(ctx context.Context, id string, r io.Reader, size int64) error {
	if size > c.maxSize {
		return fmt.Errorf("image %s (%d bytes) is larger than the cache", id, size)
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-"+id+"-")
	if err != nil {
		return fmt.Errorf("cache %s: %w", id, err)
	}
	n, err := io.Copy(tmp, ctxio.Reader(ctx, r))
	if err == nil && n != size {
		err = fmt.Errorf("got %d of %d bytes", n, size)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Cached and out of the queue in one step: a listing that sees
		// the file never also sees the image queued.
		c.mu.Lock()
		if err = os.Rename(tmp.Name(), c.path(id)); err == nil {
			c.queue = slices.DeleteFunc(c.queue, func(q string) bool { return q == id })
			c.access[id] = time.Now()
		}
		c.mu.Unlock()
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache %s: %w", id, err)
	}
	c.evict(id)
	return nil
}

// evict removes the least recently used entries, other than keep, until
// the cache fits its size.
func (c *cache) evict(keep string) {
	entries := c.list()
	var total int64
	for _, e := range entries {
		total += e.size
	}
	slices.SortFunc(entries, func(a, b cacheEntry) int { return a.lastAccessed.Compare(b.lastAccessed) })
	for _, e := range entries {
		if total <= c.maxSize {
			return
		}
		if e.id != keep {
			c.remove(e.id)
			total -= e.size
		}
	}
}

func (c *cache) remove(id string) {
	os.Remove(c.path(id))
	c.mu.Lock()
	delete(c.hits, id)
	delete(c.access, id)
	c.mu.Unlock()
}

// enqueue adds id to the queue unless it is cached or queued.
func (c *cache) enqueue(id string) {
	if _, err := os.Stat(c.path(id)); err == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.queue, id) {
		c.queue = append(c.queue, id)
	}
}

func (c *cache) dequeue(id string) {
	c.mu.Lock()
	c.queue = slices.DeleteFunc(c.queue, func(q string) bool { return q == id })
	c.mu.Unlock()
}

type cacheEntry struct {
	id                         string
	size                       int64
	hits                       int64
	lastAccessed, lastModified time.Time
}

// list returns the cached images.
func (c *cache) list() []cacheEntry {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return nil
	}
	var out []cacheEntry
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		e := cacheEntry{id: de.Name(), size: fi.Size(), hits: c.hits[de.Name()], lastModified: fi.ModTime(), lastAccessed: c.access[de.Name()]}
		if e.lastAccessed.IsZero() {
			e.lastAccessed = e.lastModified
		}
		out = append(out, e)
	}
	return out
}

func (c *cache) queued() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.queue)
}

// teeToCache wraps an image's data stream so that a whole download also
// fills the cache; the copy is kept only if the client read it all.
func (s *Service) teeToCache(ctx context.Context, im *image, rc io.ReadCloser) io.ReadCloser {
	c := s.cache
	if c == nil || im.Size == nil || *im.Size > c.maxSize || !c.begin(im.ID) {
		return rc
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.end(im.ID)
		err := c.fill(context.WithoutCancel(ctx), im.ID, pr, *im.Size)
		if err != nil {
			s.log.Debug("image not cached", "image_id", im.ID, "err", err)
		}
		// Unblocks the download's writes if the fill gave up early.
		pr.CloseWithError(errors.New("cache fill ended"))
	}()
	return &teeReadCloser{src: rc, pw: pw, size: *im.Size, done: done}
}

// teeReadCloser copies a download into the cache as the client reads it.
// The cache never fails the download: if it gives up, the download goes
// on alone. Its copy is complete only if the whole image went through.
type teeReadCloser struct {
	src  io.ReadCloser
	pw   *io.PipeWriter // nil once the cache gave up
	n    int64
	size int64
	done chan struct{}
}

func (t *teeReadCloser) Read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	if n > 0 && t.pw != nil {
		if _, werr := t.pw.Write(p[:n]); werr != nil {
			t.pw = nil
		}
		t.n += int64(n)
	}
	return n, err
}

func (t *teeReadCloser) Close() error {
	err := t.src.Close()
	if t.pw != nil {
		if t.n == t.size {
			t.pw.Close()
		} else {
			t.pw.CloseWithError(errors.New("download ended early"))
		}
	}
	<-t.done
	return err
}

// prefetcher fetches the queued images every interval, as Glance's
// cache prefetcher does: queueing is a request for later, and the queue
// shows what is waiting.
func (s *Service) prefetcher(interval time.Duration) {
	defer s.jobs.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			for _, id := range s.cache.queued() {
				s.prefetch(id)
			}
		}
	}
}

// prefetch fetches a queued image into the cache in the background.
func (s *Service) prefetch(id string) {
	c := s.cache
	if !c.begin(id) {
		return
	}
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		defer c.end(id)
		im, err := s.getImage(s.ctx, id)
		if err == nil && (im.Status != "active" || im.Size == nil) {
			err = fmt.Errorf("image is %s", im.Status)
		}
		var rc io.ReadCloser
		if err == nil {
			rc, err = s.openData(s.ctx, im, 0, -1)
		}
		if err == nil {
			err = c.fill(s.ctx, id, rc, *im.Size)
			rc.Close()
		}
		if err != nil {
			s.log.Warn("prefetch into the image cache failed", "image_id", id, "err", err)
		}
	}()
}

// The cache API (Glance 2.14): admins only, by default policy.

func (s *Service) listCache(r *http.Request) (*api.Response, error) {
	if err := s.cacheEnabled(r, "cache_list", nil); err != nil {
		return nil, err
	}
	cached := []map[string]any{}
	for _, e := range s.cache.list() {
		cached = append(cached, map[string]any{
			"image_id": e.id, "hits": e.hits, "size": e.size,
			"last_accessed": float64(e.lastAccessed.UnixNano()) / 1e9, "last_modified": float64(e.lastModified.UnixNano()) / 1e9,
		})
	}
	return api.JSON(http.StatusOK, map[string]any{"cached_images": cached, "queued_images": s.cache.queued()}), nil
}

func (s *Service) queueCache(r *http.Request) (*api.Response, error) {
	id := r.PathValue("image_id")
	if err := s.cacheEnabled(r, "cache_image", &id); err != nil {
		return nil, err
	}
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if im.Status != "active" {
		return nil, api.BadRequest("Image %s is not active (status %s); only active images can be cached.", im.ID, im.Status)
	}
	s.cache.enqueue(im.ID)
	return &api.Response{Status: http.StatusAccepted}, nil
}

func (s *Service) deleteCached(r *http.Request) (*api.Response, error) {
	id := r.PathValue("image_id")
	if err := s.cacheEnabled(r, "cache_delete", &id); err != nil {
		return nil, err
	}
	s.cache.dequeue(id)
	s.cache.remove(id)
	return api.NoContent(), nil
}

func (s *Service) clearCache(r *http.Request) (*api.Response, error) {
	if err := s.cacheEnabled(r, "cache_delete", nil); err != nil {
		return nil, err
	}
	target := r.Header.Get("X-Image-Cache-Clear-Target")
	if target != "" && target != "cache" && target != "queue" && target != "both" {
		return nil, api.BadRequest("If provided, x-image-cache-clear-target must be 'cache', 'queue' or empty for both.")
	}
	if target != "cache" {
		for _, id := range s.cache.queued() {
			s.cache.dequeue(id)
		}
	}
	if target != "queue" {
		for _, e := range s.cache.list() {
			s.cache.remove(e.id)
		}
	}
	return api.NoContent(), nil
}

// cacheEnabled authorizes a cache action; the API is absent (404) when
// the operator runs no cache. A path image id must be a UUID.
func (s *Service) cacheEnabled(r *http.Request, action string, id *string) error {
	if err := s.api.Authorize(r, action, map[string]any{}); err != nil {
		return err
	}
	if s.cache == nil {
		return api.NotFound("The image cache is not enabled.")
	}
	if id != nil {
		u, err := uuid.Parse(*id)
		if err != nil {
			return api.NotFound("No image found with ID %s", *id)
		}
		*id = u.String()
	}
	return nil
}
