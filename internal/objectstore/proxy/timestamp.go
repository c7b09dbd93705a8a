package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// clock hands out X-Timestamps. Swift's proxy assigns every write its
// timestamp so that storage servers order concurrent writes by when the
// cluster accepted them; handing out strictly increasing values keeps two
// writes through one proxy in the same 10 µs from tying.
type clock struct {
	mu   sync.Mutex
	last int64 // guarded by mu: last ticks handed out (1e-5 s)
}

// now returns the next timestamp in Swift's normal form
// ("1700000000.12345").
func (c *clock) now() string {
	t := time.Now().UnixNano() / 10_000
	c.mu.Lock()
	if t <= c.last {
		t = c.last + 1
	}
	c.last = t
	c.mu.Unlock()
	return fmt.Sprintf("%010d.%05d", t/100000, t%100000)
}

// newTransID makes an X-Trans-Id as Swift's look: "tx", 21 random hex
// digits, "-" and the hex unix time, so operators can grep logs on every
// node for one request.
func newTransID() string {
	var b [11]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("tx%s-%010x", hex.EncodeToString(b[:])[:21], time.Now().Unix())
}
