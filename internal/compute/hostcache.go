package compute

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// hostCacheTTL bounds how old the scheduler's view of hosts and usage may
// get before a claim reloads it whole. It only matters for what this
// process cannot see change: heartbeats (liveness, reported capacity),
// zone moves, and claims and releases made by other replicas.
const hostCacheTTL = 2 * time.Second

// hostCache is the scheduler's view of the hosts and of what allocations
// hold on each, kept between claims so that a claim at 1,000 hosts and
// 10,000 servers does not read every host row and sum every allocation
// under the write lock (that was O(servers) per boot).
//
// It is a hint for choosing, never the authority: claim re-reads the
// chosen host's row and re-sums its allocations from compute_allocations
// inside the claim's serialised transaction before writing, so a stale
// view can make a worse choice but never an overcommit. What it may get
// wrong is refreshed cheaply: the host a claim used is re-summed at the
// next claim (its transaction may have rolled back), a release anywhere
// in the process reloads the usage, the whole view is reloaded after
// hostCacheTTL, and a claim that finds no host reloads before it gives up.
type hostCache struct {
	mu       sync.Mutex       // serialises claims' use of the fields below
	loadedAt time.Time        // guarded by mu; zero: never loaded
	hosts    []host           // guarded by mu; in seq order, as allHosts
	index    map[string]int   // guarded by mu; host name -> position in hosts
	used     map[string]usage // guarded by mu
	dirty    map[string]bool  // guarded by mu; hosts whose usage is re-read before use
	releases uint64           // guarded by mu; allocReleases when used was loaded

	// summed is the hosts whose usage the current claim has read from
	// the database (all: every host). Claims hold the claims' lock, so no
	// other claim adds to them until it ends, and recheck need not sum
	// them again. Guarded by mu.
	summed    map[string]bool
	summedAll bool

	// stale asks the next claim for a whole reload; set without mu, by
	// operator changes to hosts, so they apply at once rather than after
	// hostCacheTTL.
	stale atomic.Bool
}

// invalidate makes the next claim reload the whole view.
func (c *hostCache) invalidate() { c.stale.Store(true) }

// allocReleases counts releases of allocations in this process, so host
// caches know their usage may be too high without release needing to
// know which cache (or database) it affects.
var allocReleases atomic.Uint64

// hostCaches holds one cache per database, keyed weakly so that a closed
// and dropped database (tests open hundreds) takes its cache with it. The
// cache describes the database, not the Service, so services sharing a
// database share it.
var hostCaches struct {
	sync.Mutex
	m map[weak.Pointer[store.DB]]*hostCache // guarded by the embedded mutex
}

// hostCacheOf returns the host cache of db, creating it on first use.
func hostCacheOf(db *store.DB) *hostCache {
	key := weak.Make(db)
	hostCaches.Lock()
	defer hostCaches.Unlock()
	if c, ok := hostCaches.m[key]; ok {
		return c
	}
	if hostCaches.m == nil {
		hostCaches.m = map[weak.Pointer[store.DB]]*hostCache{}
	}
	c := &hostCache{}
	hostCaches.m[key] = c
	runtime.AddCleanup(db, func(k weak.Pointer[store.DB]) {
		hostCaches.Lock()
		delete(hostCaches.m, k)
		hostCaches.Unlock()
	}, key)
	return c
}

// fresh brings the view up to date for a claim: a whole reload when it is
// old or never loaded, else the usage when something was released, else
// just the hosts marked dirty. It reports whether it reloaded the hosts.
func (c *hostCache) fresh(ctx context.Context, s *Service, q store.Querier) (bool, error) {
	c.summed, c.summedAll = map[string]bool{}, false
	if c.stale.Swap(false) || c.loadedAt.IsZero() || time.Since(c.loadedAt) > hostCacheTTL {
		return true, c.reload(ctx, s, q)
	}
	if r := allocReleases.Load(); r != c.releases {
		used, err := s.hostUsage(ctx, q)
		if err != nil {
			return false, err
		}
		c.used, c.dirty, c.releases, c.summedAll = used, map[string]bool{}, r, true
		return false, nil
	}
	if len(c.dirty) == 0 {
		return false, nil
	}
	names := make([]string, 0, len(c.dirty))
	for h := range c.dirty {
		names = append(names, h)
	}
	fresh, err := usageOfHosts(ctx, q, names)
	if err != nil {
		return false, err
	}
	for _, h := range names {
		c.used[h] = fresh[h]
		c.summed[h] = true
	}
	clear(c.dirty)
	return false, nil
}

// reload reads every host and the usage of every host.
func (c *hostCache) reload(ctx context.Context, s *Service, q store.Querier) error {
	// Read the counter first: a release after this point reloads again.
	r := allocReleases.Load()
	hosts, err := s.allHosts(ctx, q)
	if err != nil {
		return err
	}
	used, err := s.hostUsage(ctx, q)
	if err != nil {
		return err
	}
	c.hosts, c.used, c.releases, c.loadedAt, c.summedAll = hosts, used, r, time.Now(), true
	c.index = make(map[string]int, len(hosts))
	for i, h := range hosts {
		c.index[h.Host] = i
	}
	c.dirty = map[string]bool{}
	return nil
}

// recheck reads one host's row, and its usage unless this claim has read
// it already, from the database and puts them in the view; ok is false
// when the host no longer exists.
func (c *hostCache) recheck(ctx context.Context, q store.Querier, name string) (host, usage, bool, error) {
	h, err := store.QueryOne(ctx, q, scanHost, `SELECT `+hostCols+` FROM compute_hosts WHERE host = ?`, name)
	if isNoRows(err) {
		c.loadedAt = time.Time{} // deleted: the next claim reloads without it
		return h, usage{}, false, nil
	}
	if err != nil {
		return h, usage{}, false, fmt.Errorf("recheck host %s: %w", name, err)
	}
	if !c.summedAll && !c.summed[name] {
		u, err := usageOfHosts(ctx, q, []string{name})
		if err != nil {
			return h, usage{}, false, err
		}
		c.used[name] = u[name]
		c.summed[name] = true
		delete(c.dirty, name)
	}
	if i, ok := c.index[name]; ok {
		c.hosts[i] = h
	} else {
		c.index[name] = len(c.hosts)
		c.hosts = append(c.hosts, h)
	}
	return h, c.used[name], true, nil
}

// usageOfHosts sums the allocations of some hosts, through the
// (host, …) index: O(their allocations), not O(all allocations).
func usageOfHosts(ctx context.Context, q store.Querier, hosts []string) (map[string]usage, error) {
	args := make([]any, len(hosts))
	for i, h := range hosts {
		args[i] = h
	}
	rows, err := q.Query(ctx, `SELECT host, SUM(vcpus), SUM(memory_mb), SUM(disk_gb), COUNT(DISTINCT instance_id)
		FROM compute_allocations WHERE host IN (`+placeholders(len(hosts))+`) GROUP BY host`, args...)
	if err != nil {
		return nil, fmt.Errorf("usage of hosts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]usage, len(hosts))
	for rows.Next() {
		var h string
		var u usage
		if err := rows.Scan(&h, &u.VCPUs, &u.MemoryMB, &u.DiskGB, &u.Instances); err != nil {
			return nil, fmt.Errorf("usage of hosts: %w", err)
		}
		out[h] = u
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage of hosts: %w", err)
	}
	return out, nil
}

// placeholders returns n comma-separated "?" for an IN list.
func placeholders(n int) string {
	if n == 0 {
		return "NULL" // IN (NULL) matches nothing
	}
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
