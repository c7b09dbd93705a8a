package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu/qmp"
)

// Snapshot implements hypervisor.Driver. The root disk is an overlay on a
// cached base, so the image is made with qemu-img convert, which flattens
// the chain into one standalone qcow2. A running guest's vCPUs are
// stopped for the copy: QEMU drains and flushes every disk when it stops
// (vm_stop), so the file on the host is consistent while the copy reads
// it (-U: QEMU keeps its write lock). This was preferred to a live
// blockdev-backup job because it needs no job bookkeeping or cleanup of
// half-made targets if the agent dies, and root disks here are small;
// the pause lasts as long as the copy.
func (d *Driver) Snapshot(ctx context.Context, uuid, dst string) error {
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	root := rec.Disks[0]
	if root.Volume != nil {
		// Nova snapshots the volume through Cinder and makes an image
		// that points at it; the driver cannot read the volume's bytes.
		return fmt.Errorf("snapshot %s: the root disk is volume %s, which only the volume service can snapshot: %w", uuid, root.Volume.VolumeID, hypervisor.ErrInvalidState)
	}
	if d.livePID(uuid) > 0 {
		mon, err := d.monitor(ctx, uuid)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		defer mon.Close()
		resume, err := pauseForCopy(ctx, mon)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", uuid, err)
		}
		defer resume()
	}
	tmp := dst + ".part"
	defer os.Remove(tmp)
	out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, "convert", "-U", "-f", root.Format, "-O", "qcow2", root.Path, tmp).CombinedOutput()
	if err != nil {
		return fmt.Errorf("snapshot %s: qemu-img convert: %w: %s", uuid, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("snapshot %s: %w", uuid, err)
	}
	return nil
}

// pauseForCopy stops a running guest's vCPUs and returns what continues
// them; a guest already paused is left paused.
func pauseForCopy(ctx context.Context, mon *qmp.Monitor) (resume func(), err error) {
	st, err := mon.QueryStatus(ctx)
	if err != nil {
		return nil, err
	}
	if st.Status != "running" {
		return func() {}, nil
	}
	if err := mon.Stop(ctx); err != nil {
		return nil, err
	}
	// The guest must run again even when the copy was cancelled.
	return func() { mon.Cont(context.WithoutCancel(ctx)) }, nil
}
