package volumeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// The one backend and pool of a storage host, as Cinder's host string
// host@backend#pool names them.
const (
	backendName = "file"
	poolName    = "default"
)

// Beat publishes the host's capacity and the volumes and snapshots it
// has.
func (a *Agent) Beat(ctx context.Context) error {
	hb, err := a.heartbeat()
	if err != nil {
		return err
	}
	return bus.Publish(ctx, a.cfg.Bus, agentproto.SubjectHeartbeat, hb)
}

// heartbeat measures the pool: the filesystem's size and free space, and
// the virtual sizes of the files on it (sparse, so they may add up to
// more than the filesystem).
func (a *Agent) heartbeat() (agentproto.Heartbeat, error) {
	hb := agentproto.Heartbeat{Host: a.cfg.Host, Backend: backendName, Pool: poolName, Zone: a.cfg.Zone,
		MaxOverSubscription: a.cfg.MaxOverSubscription}
	var st syscall.Statfs_t
	if err := syscall.Statfs(a.cfg.StateDir, &st); err != nil {
		return hb, fmt.Errorf("capacity of %s: %w", a.cfg.StateDir, err)
	}
	hb.TotalGB = float64(st.Blocks) * float64(st.Bsize) / float64(gib)
	hb.FreeGB = float64(st.Bavail) * float64(st.Bsize) / float64(gib)
	entries, err := os.ReadDir(a.cfg.StateDir)
	if err != nil {
		return hb, fmt.Errorf("list volumes: %w", err)
	}
	var provisioned int64
	for _, e := range entries {
		n := e.Name()
		id, isVol := strings.CutPrefix(strings.TrimSuffix(n, ".qcow2"), "volume-")
		sid, isSnap := strings.CutPrefix(strings.TrimSuffix(n, ".qcow2"), "snapshot-")
		if !strings.HasSuffix(n, ".qcow2") || !(isVol && validID(id) || isSnap && validID(sid)) {
			continue
		}
		size, err := qcow2Size(filepath.Join(a.cfg.StateDir, n))
		if err != nil {
			continue // deleted meanwhile
		}
		provisioned += size
		if isVol {
			hb.Volumes = append(hb.Volumes, id)
		} else {
			hb.Snapshots = append(hb.Snapshots, sid)
		}
	}
	hb.ProvisionedGB = float64(provisioned) / float64(gib)
	return hb, nil
}
