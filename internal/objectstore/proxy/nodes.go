package proxy

import (
	"iter"
	"sync"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// errorLimiter is Swift's error limiting: a node that keeps failing
// (connection errors, timeouts, 5xx) is skipped for a while, so one dead
// disk does not add a timeout to every request that maps to it. A node
// that says it is out of space (507) is suppressed at once.
type errorLimiter struct {
	limit    int
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	nodes map[string]*nodeErrors // guarded by mu, keyed by ip:port/device
}

type nodeErrors struct {
	count int
	last  time.Time
}

func newErrorLimiter(limit int, interval time.Duration) *errorLimiter {
	return &errorLimiter{limit: limit, interval: interval, now: time.Now, nodes: map[string]*nodeErrors{}}
}

func nodeKey(d ring.Device) string { return d.Host() + "/" + d.Name }

// failed records one error against d.
func (l *errorLimiter) failed(d ring.Device) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(d)
	e.count++
	e.last = l.now()
}

// suppress takes d out of use for a full interval.
func (l *errorLimiter) suppress(d ring.Device) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(d)
	e.count = l.limit + 1
	e.last = l.now()
}

func (l *errorLimiter) entry(d ring.Device) *nodeErrors {
	k := nodeKey(d)
	e := l.nodes[k]
	if e == nil {
		e = &nodeErrors{}
		l.nodes[k] = e
	}
	return e
}

// limited reports whether d is suppressed; an interval without errors
// forgives it.
func (l *errorLimiter) limited(d ring.Device) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.nodes[nodeKey(d)]
	if e == nil {
		return false
	}
	if l.now().Sub(e.last) > l.interval {
		delete(l.nodes, nodeKey(d))
		return false
	}
	return e.count > l.limit
}

// placement is where a name lives: its ring, partition and primaries,
// and for objects the storage policy whose ring that is.
type placement struct {
	ring      *ring.Ring
	part      int
	primaries []ring.Device
	policy    string // X-Backend-Storage-Policy-Index; "" for accounts and containers
}

func place(r *ring.Ring, account, container, object string) placement {
	part, nodes := r.GetNodes(account, container, object)
	return placement{ring: r, part: part, primaries: nodes}
}

// quorum is the majority of replicas a write needs, as Swift's
// quorum_size for replicated policies.
func (pl placement) quorum() int { return len(pl.primaries)/2 + 1 }

// nodeLimit is how many nodes one request may try.
func (p *Proxy) nodeLimit(pl placement) int {
	if p.cfg.RequestNodeCount > 0 {
		return p.cfg.RequestNodeCount
	}
	return 2 * len(pl.primaries)
}

// nodes yields the primaries and then handoffs that are not error
// limited, at most nodeLimit in all.
func (p *Proxy) nodes(pl placement) iter.Seq[ring.Device] {
	limit := p.nodeLimit(pl)
	return func(yield func(ring.Device) bool) {
		n := 0
		for _, d := range pl.primaries {
			if n >= limit {
				return
			}
			if p.limiter.limited(d) {
				continue
			}
			n++
			if !yield(d) {
				return
			}
		}
		for d := range p.handoffNodes(pl, limit-n) {
			if !yield(d) {
				return
			}
		}
	}
}

// handoffNodes yields up to max handoffs that are not error limited.
func (p *Proxy) handoffNodes(pl placement, max int) iter.Seq[ring.Device] {
	return func(yield func(ring.Device) bool) {
		if max <= 0 {
			return
		}
		n := 0
		for d := range pl.ring.GetMoreNodes(pl.part) {
			if p.limiter.limited(d) {
				continue
			}
			n++
			if !yield(d) || n >= max {
				return
			}
		}
	}
}

// handoffs hands out the handoff nodes of a write to whichever of its
// slots needs a replacement for a failed primary, each node once.
type handoffs struct {
	mu   sync.Mutex
	next func() (ring.Device, bool) // guarded by mu
	stop func()
}

func (p *Proxy) newHandoffs(pl placement) *handoffs {
	next, stop := iter.Pull(p.handoffNodes(pl, p.nodeLimit(pl)-len(pl.primaries)))
	return &handoffs{next: next, stop: stop}
}

func (h *handoffs) take() (ring.Device, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.next()
}

func (h *handoffs) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stop()
}
