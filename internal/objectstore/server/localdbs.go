package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// EachLocalDB calls fn with every database of kind (KindAccount or
// KindContainer) on the devices r places on host (ip:port as the ring has
// it), under root: what the background daemons of one node walk. A device
// directory that is missing is not mounted here and is skipped; a device
// that cannot be listed is logged and skipped. It stops when ctx ends.
func EachLocalDB(ctx context.Context, r *ring.Ring, root, host, kind string, log *slog.Logger, fn func(dev ring.Device, db DBFile)) {
	for _, d := range r.Devices() {
		if d.Host() != host {
			continue
		}
		dev := filepath.Join(root, d.Name)
		if fi, err := os.Stat(dev); err != nil || !fi.IsDir() {
			continue
		}
		dbs, err := ListDBs(dev, kind)
		if err != nil {
			log.Error("list databases", "kind", kind, "device", d.Name, "err", err)
			continue
		}
		for _, f := range dbs {
			if ctx.Err() != nil {
				return
			}
			fn(d, f)
		}
	}
}

// RunEvery calls pass at once and then every interval until ctx ends:
// the loop of a node's background daemons. A pass that outlasts the
// interval is followed by the next at once.
func RunEvery(ctx context.Context, interval time.Duration, pass func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
