package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// A resize awaiting confirmation keeps, beside the guest's files, the
// record it had (instance.json.pre-resize) and a copy of its root disk
// (disk.root.qcow2.pre-resize); confirm deletes them, revert puts them
// back. They live in the instance directory so Destroy removes them too.
func (d *Driver) preResizeRecord(uuid string) string {
	return d.recordFile(uuid) + ".pre-resize"
}

func preResizeDisk(disk diskFile) string { return disk.Path + ".pre-resize" }

// Resize implements hypervisor.Driver.
func (d *Driver) Resize(ctx context.Context, uuid string, to hypervisor.Resize) error {
	if err := to.Validate(); err != nil {
		return fmt.Errorf("resize %s: %w", uuid, err)
	}
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("resize: %w", err)
	}
	if fileExists(d.preResizeRecord(uuid)) {
		if rec.Spec.VCPUs == to.VCPUs && rec.Spec.MemoryMiB == to.MemoryMiB {
			return nil // a redelivered resize that already happened
		}
		return fmt.Errorf("resize %s: a previous resize awaits confirmation: %w", uuid, hypervisor.ErrInvalidState)
	}
	old := *rec
	old.Spec.Disks = append([]hypervisor.Disk(nil), rec.Spec.Disks...)
	wasRunning, err := d.stopForChange(ctx, "resize", uuid, to.ShutdownTimeout)
	if err != nil {
		return err
	}
	rv := &revert{}
	defer rv.Fail()
	bg := context.WithoutCancel(ctx) // undo must run even when ctx ended
	if wasRunning {
		rv.Add(func() {
			if err := d.start(bg, &old, ""); err != nil {
				d.log.Error("restart guest after failed resize", "uuid", uuid, "err", err)
			}
		})
	}
	oldJSON, err := json.Marshal(&old)
	if err != nil {
		return fmt.Errorf("resize %s: %w", uuid, err)
	}
	if err := os.WriteFile(d.preResizeRecord(uuid), oldJSON, 0o600); err != nil {
		return fmt.Errorf("resize %s: keep old spec: %w", uuid, err)
	}
	rv.Add(func() { os.Remove(d.preResizeRecord(uuid)) })

	root := rec.Disks[0]
	// A root disk that is not the driver's (a volume) is not resized.
	if root.Owned {
		if err := copyFile(root.Path, preResizeDisk(root)); err != nil {
			return fmt.Errorf("resize %s: keep old root disk: %w", uuid, err)
		}
		rv.Add(func() {
			if err := os.Rename(preResizeDisk(root), root.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				d.log.Error("restore root disk after failed resize", "uuid", uuid, "err", err)
			}
		})
		info, err := d.qemuImgInfo(ctx, root.Path)
		if err != nil {
			return fmt.Errorf("resize %s: %w", uuid, err)
		}
		if to.RootBytes > info.VirtualSize {
			out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, "resize", "-q", "-f", root.Format, root.Path, strconv.FormatInt(to.RootBytes, 10)).CombinedOutput()
			if err != nil {
				return fmt.Errorf("resize %s: qemu-img resize: %w: %s", uuid, err, strings.TrimSpace(string(out)))
			}
			rec.Spec.Disks[0].SizeBytes = to.RootBytes
		}
	}
	rec.Spec.VCPUs, rec.Spec.MemoryMiB = to.VCPUs, to.MemoryMiB
	if err := d.writeRecord(rec); err != nil {
		return fmt.Errorf("resize: %w", err)
	}
	rv.Add(func() {
		if err := d.writeRecord(&old); err != nil {
			d.log.Error("restore spec after failed resize", "uuid", uuid, "err", err)
		}
	})
	if wasRunning {
		if err := d.restart(ctx, rec); err != nil {
			return fmt.Errorf("resize: %w", err)
		}
	}
	rv.Release()
	return nil
}

// ConfirmResize implements hypervisor.Driver.
func (d *Driver) ConfirmResize(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("confirm resize: %w", err)
	}
	if root := rec.Disks[0]; root.Owned {
		if err := os.Remove(preResizeDisk(root)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("confirm resize %s: %w", uuid, err)
		}
	}
	if err := os.Remove(d.preResizeRecord(uuid)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("confirm resize %s: %w", uuid, err)
	}
	return nil
}

// RevertResize implements hypervisor.Driver. The guest is stopped at
// once, as Nova destroys the resized domain: it is about to lose every
// change made since the resize.
func (d *Driver) RevertResize(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	if _, err := d.readRecord(uuid); err != nil {
		return fmt.Errorf("revert resize: %w", err)
	}
	b, err := os.ReadFile(d.preResizeRecord(uuid))
	if errors.Is(err, os.ErrNotExist) {
		return nil // reverted already, or never resized
	}
	if err != nil {
		return fmt.Errorf("revert resize %s: %w", uuid, err)
	}
	var old record
	if err := json.Unmarshal(b, &old); err != nil {
		return fmt.Errorf("revert resize %s: corrupt %s: %w", uuid, filepath.Base(d.preResizeRecord(uuid)), err)
	}
	wasRunning, err := d.stopForChange(ctx, "revert resize", uuid, 0)
	if err != nil {
		return err
	}
	root := old.Disks[0]
	if root.Owned {
		if err := os.Rename(preResizeDisk(root), root.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("revert resize %s: restore root disk: %w", uuid, err)
		}
	}
	if err := d.writeRecord(&old); err != nil {
		return fmt.Errorf("revert resize: %w", err)
	}
	os.Remove(d.preResizeRecord(uuid))
	if wasRunning {
		if err := d.restart(ctx, &old); err != nil {
			return fmt.Errorf("revert resize: %w", err)
		}
	}
	return nil
}
