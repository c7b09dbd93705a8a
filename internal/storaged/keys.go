package storaged

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/atomicfile"
)

// SetKeys makes keys (TLS-PSK identity → hex key) the whole set the NBD
// server accepts. The file is replaced atomically; gnutls reads it at
// every handshake (checked with QEMU 7.2), so a key works, or stops
// working, from the next connection on, and sessions already open keep
// going.
func (d *Daemon) SetKeys(keys map[string]string) error {
	ids := make([]string, 0, len(keys))
	for id, key := range keys {
		if id == "" || strings.ContainsAny(id, ":\n\r \t") || key == "" || strings.ContainsAny(key, ":\n\r \t") {
			return fmt.Errorf("set TLS-PSK keys: malformed identity or key for %q", id)
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id + ":" + keys[id] + "\n")
	}
	if err := atomicfile.Write(d.keysPath(), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("set TLS-PSK keys: %w", err)
	}
	return nil
}
