package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// rescueDiskName names the rescue disk (disk.rescue.qcow2, drive-rescue);
// the agent's own disks are root, ephemeral0 and swap.
const rescueDiskName = "rescue"

// Rescue implements hypervisor.Driver: the rescue disk is a fresh overlay
// on the rescue image, recorded in the guest's record so that a hard
// reboot or an agent restart keeps the guest rescued until Unrescue.
func (d *Driver) Rescue(ctx context.Context, uuid string, image *hypervisor.Image, timeout time.Duration) error {
	if image == nil || image.Path == "" || image.Checksum == "" {
		return fmt.Errorf("rescue %s: a rescue image with a path and a checksum is required", uuid)
	}
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("rescue: %w", err)
	}
	if rec.Rescue != nil {
		if d.livePID(uuid) > 0 {
			return nil // a redelivered rescue
		}
		return d.restart(ctx, rec)
	}
	base, err := d.ensureBase(image)
	if err != nil {
		return fmt.Errorf("rescue %s: %w", uuid, err)
	}
	wasRunning, err := d.stopForChange(ctx, "rescue", uuid, timeout)
	if err != nil {
		return err
	}
	rv := &revert{}
	defer rv.Fail()
	bg := context.WithoutCancel(ctx)
	if wasRunning {
		orig := *rec
		rv.Add(func() {
			if err := d.start(bg, &orig, ""); err != nil {
				d.log.Error("restart guest after failed rescue", "uuid", uuid, "err", err)
			}
		})
	}
	disk := diskFile{Name: rescueDiskName, Path: filepath.Join(d.instanceDir(uuid), "disk."+rescueDiskName+".qcow2"), Format: "qcow2", Owned: true}
	os.Remove(disk.Path) // left by an interrupted rescue: start it afresh
	if err := d.createOverlay(ctx, base, disk.Path, 0); err != nil {
		return fmt.Errorf("rescue %s: %w", uuid, err)
	}
	rv.Add(func() { os.Remove(disk.Path) })
	rescued := *rec
	rescued.Rescue = &disk
	if err := d.writeRecord(&rescued); err != nil {
		return fmt.Errorf("rescue: %w", err)
	}
	rv.Add(func() {
		if err := d.writeRecord(rec); err != nil {
			d.log.Error("restore record after failed rescue", "uuid", uuid, "err", err)
		}
	})
	if err := d.restart(ctx, &rescued); err != nil {
		return fmt.Errorf("rescue: %w", err)
	}
	rv.Release()
	return nil
}

// Unrescue implements hypervisor.Driver. The rescue boot is stopped at
// once, as Nova destroys the rescue domain.
func (d *Driver) Unrescue(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("unrescue: %w", err)
	}
	if rec.Rescue == nil {
		return nil
	}
	if err := d.stopProcess(ctx, uuid); err != nil {
		return fmt.Errorf("unrescue: %w", err)
	}
	disk := rec.Rescue
	rec.Rescue = nil
	if err := d.writeRecord(rec); err != nil {
		return fmt.Errorf("unrescue: %w", err)
	}
	if err := os.Remove(disk.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("remove rescue disk", "uuid", uuid, "err", err)
	}
	if err := d.restart(ctx, rec); err != nil {
		return fmt.Errorf("unrescue: %w", err)
	}
	return nil
}
