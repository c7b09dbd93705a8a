package server

import (
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"
)

// Suffix hashes are cached per partition, as Swift keeps them in
// hashes.pkl, and a write drops the hash of the suffix it changed.
//
// Recomputing a suffix lists every hash dir in it. Without the cache a
// replication pass listed every object on the device, three times (its
// own pass, and the REPLICATE of each peer's pass): under a burst of small
// PUTs the replicator became a third of the node's CPU, and it grows with
// the objects stored rather than the objects changed. With the cache a
// pass lists the partition dirs and only the suffixes written since.
//
// What can change a hash dir without passing here — an operator's hand,
// a disk that loses a file — is found when the partition's cache expires:
// every partition is recomputed in full after suffixCacheTTL (spread over
// the next as much again, so partitions do not all expire in one pass),
// which also bounds how long a quiet suffix keeps a tombstone past
// reclaimAge. The cache lives in memory: a restarted server recomputes
// each partition once.
//
// Ordering: a writer invalidates after its change is visible, and a
// computation keeps its result only if no invalidation of that suffix
// happened since it began, so a hash can never be kept that misses a
// change made before its invalidation.

// suffixCacheTTL is how long a partition's cached hashes are trusted.
const suffixCacheTTL = 30 * time.Minute

// suffixCacheMax bounds the suffix hashes held by the process (about 60
// bytes each); past it whole partitions are dropped, to be recomputed.
const suffixCacheMax = 1 << 20

type suffixCache struct {
	mu    sync.Mutex
	parts map[string]*partHashes // by partition dir
	size  int                    // cached hashes over all parts
}

// partHashes is the cache of one partition dir.
type partHashes struct {
	hashes  map[string]string // suffix → hash; "" for a suffix found empty
	gen     map[string]uint64 // suffix → invalidations seen
	all     uint64            // invalidations of the whole partition
	ino     uint64            // of the partition dir the hashes describe
	expires time.Time
}

// suffixHashCache is the process's cache; object writes of every server
// in the process invalidate it, whichever of them computes.
var suffixHashCache = &suffixCache{parts: map[string]*partHashes{}}

// invalidateHashDir records a change in the hash dir dir
// (<partition>/<suffix>/<hash>). Paths outside an objects tree (async
// pendings, written by the same writer) are ignored.
func (c *suffixCache) invalidateHashDir(dir string) {
	sufDir := filepath.Dir(dir)
	suf := filepath.Base(sufDir)
	if !isHash(filepath.Base(dir)) || !isSuffix(suf) {
		return
	}
	part := filepath.Dir(sufDir)
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parts[part]
	if p == nil {
		// Nothing cached, but a computation may be under way: record
		// the invalidation so that it does not keep its result.
		p = c.newPart(part)
	}
	p.gen[suf]++
	if _, ok := p.hashes[suf]; ok {
		delete(p.hashes, suf)
		c.size--
	}
}

// invalidatePartition drops everything cached for a partition dir (the
// partition was removed).
func (c *suffixCache) invalidatePartition(part string) {
	part = filepath.Clean(part)
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parts[part]
	if p == nil {
		p = c.newPart(part)
	}
	p.all++
	c.size -= len(p.hashes)
	clear(p.hashes)
}

// newPart adds an empty, expired entry for part. c.mu is held.
func (c *suffixCache) newPart(part string) *partHashes {
	if c.size >= suffixCacheMax {
		// Drop partitions (map order: arbitrary) until there is room.
		for k, q := range c.parts {
			c.size -= len(q.hashes)
			delete(c.parts, k)
			if c.size < suffixCacheMax*3/4 {
				break
			}
		}
	}
	p := &partHashes{hashes: map[string]string{}, gen: map[string]uint64{}}
	c.parts[part] = p
	return p
}

// cacheSnapshot is what a computation needs to know of a partition
// before it starts: the hashes it may reuse and the invalidation counts to
// compare with when it stores its results.
type cacheSnapshot struct {
	hashes map[string]string
	gen    map[string]uint64
	all    uint64
}

// snapshot returns the usable hashes of part for the suffixes listed on
// disk (none when the entry expired) and the counts for store. ino is
// the partition dir's inode number: a dir made anew (a device restored
// from a copy) holds what the entry does not know about.
func (c *suffixCache) snapshot(part string, ino uint64, suffixes []string, now time.Time) cacheSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parts[part]
	if p == nil {
		p = c.newPart(part)
	}
	if p.ino != ino {
		p.ino = ino
		p.all++
		c.size -= len(p.hashes)
		clear(p.hashes)
	}
	s := cacheSnapshot{hashes: map[string]string{}, gen: make(map[string]uint64, len(suffixes)), all: p.all}
	fresh := now.Before(p.expires)
	for _, suf := range suffixes {
		s.gen[suf] = p.gen[suf]
		if h, ok := p.hashes[suf]; ok && fresh {
			s.hashes[suf] = h
		}
	}
	return s
}

// store keeps the hashes computed after snap was taken, except those of
// suffixes invalidated meanwhile. full says every suffix on disk was
// recomputed, which restarts the entry's lifetime and drops the hashes of
// suffixes no longer there. (Invalidation counts are never dropped: a
// count that went back to an old value could let a stale result in.)
func (c *suffixCache) store(part string, snap cacheSnapshot, computed map[string]string, full bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parts[part]
	if p == nil || p.all != snap.all {
		return
	}
	for suf, h := range computed {
		if p.gen[suf] != snap.gen[suf] {
			continue
		}
		if _, ok := p.hashes[suf]; !ok {
			c.size++
		}
		p.hashes[suf] = h
	}
	if !full {
		return
	}
	p.expires = now.Add(suffixCacheTTL + rand.N(suffixCacheTTL))
	for suf := range p.hashes {
		if _, ok := computed[suf]; !ok { // its dir is gone
			delete(p.hashes, suf)
			c.size--
		}
	}
}
