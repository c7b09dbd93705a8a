package proxy

import (
	"net/http"
	"strconv"
)

// slotHeaders makes one copy of base per replica of a write.
func slotHeaders(base http.Header, n int) []http.Header {
	out := make([]http.Header, n)
	for i := range out {
		out[i] = base.Clone()
	}
	return out
}

// spreadUpdates names, in each slot's <prefix>-Host, -Partition and
// -Device headers, the servers that slot's storage server must tell
// about the write (container servers for an object, account servers for
// a container), as Swift's proxy does: target i goes to slot i mod the
// slot count, so every target hears from exactly one node and, with more
// targets than slots, some slots carry comma-separated lists.
func spreadUpdates(slots []http.Header, prefix string, targets placement) {
	for i, d := range targets.primaries {
		h := slots[i%len(slots)]
		add := func(k, v string) {
			if cur := h.Get(k); cur != "" {
				v = cur + "," + v
			}
			h.Set(k, v)
		}
		add(prefix+"-Host", d.Host())
		add(prefix+"-Device", d.Name)
		h.Set(prefix+"-Partition", strconv.Itoa(targets.part))
	}
}

// bySlot adapts per-slot headers to write's callback.
func bySlot(slots []http.Header) func(int) http.Header {
	return func(i int) http.Header { return slots[i] }
}
