package proxy

import (
	"errors"
	"net/http"
	"sync"
	"time"
)

// info is what the proxy knows of an account or container: whether it
// exists and its headers (ACLs, counts, metadata). Authorization and
// object writes need it on almost every request, so it is cached briefly,
// as Swift caches it in memcache.
type info struct {
	exists bool
	header http.Header
}

// infoCache caches infos by "account" or "account/container".
type infoCache struct {
	ttl time.Duration

	mu sync.Mutex
	m  map[string]cachedInfo // guarded by mu
}

type cachedInfo struct {
	info
	until time.Time
}

// infoCacheLimit bounds the cache; it is cleared when full, which is
// cheap compared with tracking recency for a 10 s cache.
const infoCacheLimit = 100_000

func newInfoCache(ttl time.Duration) *infoCache {
	return &infoCache{ttl: ttl, m: map[string]cachedInfo{}}
}

func (c *infoCache) get(key string) (info, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || time.Now().After(e.until) {
		return info{}, false
	}
	return e.info, true
}

func (c *infoCache) put(key string, in info) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= infoCacheLimit {
		c.m = map[string]cachedInfo{}
	}
	c.m[key] = cachedInfo{info: in, until: time.Now().Add(c.ttl)}
}

// drop forgets key after a write through this proxy changed it.
func (c *infoCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

// accountInfo is the account's info, from the cache or a HEAD.
func (p *Proxy) accountInfo(q *request, account string) (info, error) {
	return p.lookup(q, account, place(p.rings.account, account, "", ""), "/"+account)
}

// containerInfo is the container's info, from the cache or a HEAD.
func (p *Proxy) containerInfo(q *request, account, container string) (info, error) {
	return p.lookup(q, account+"/"+container, place(p.rings.container, account, container, ""), "/"+account+"/"+container)
}

func (p *Proxy) lookup(q *request, key string, pl placement, names string) (info, error) {
	if in, ok := p.infos.get(key); ok {
		return in, nil
	}
	resp, err := p.read(q.ctx(), pl, http.MethodHead, names, "", p.backendHeaders(q, ""))
	var se *swiftError
	switch {
	case errors.As(err, &se) && se.status == http.StatusNotFound:
		in := info{}
		p.infos.put(key, in)
		return in, nil
	case err != nil:
		return info{}, err
	}
	discard(resp)
	in := info{exists: resp.StatusCode/100 == 2, header: resp.Header}
	p.infos.put(key, in)
	return in, nil
}
