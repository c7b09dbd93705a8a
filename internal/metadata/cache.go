package metadata

import (
	"sync"
	"time"
)

// ttlCache keeps answers briefly: cloud-init fetches dozens of paths in a
// burst, and each would otherwise cost the same database and networking
// API calls. Short enough that a changed instance shows soon.
type ttlCache[K comparable, V any] struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[K]ttlEntry[V] // guarded by mu
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, now: time.Now, entries: map[K]ttlEntry[V]{}}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || c.now().After(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) put(k K, v V) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	// Drop what has expired so that the map holds only the guests that
	// asked recently.
	for k, e := range c.entries {
		if now.After(e.expires) {
			delete(c.entries, k)
		}
	}
	c.entries[k] = ttlEntry[V]{v: v, expires: now.Add(c.ttl)}
}
