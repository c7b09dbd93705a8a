package fake

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// Snapshot implements hypervisor.Driver. It writes a small file naming
// the guest and its boot count, so tests can tell snapshots apart; it is
// not a disk image.
func (d *Driver) Snapshot(ctx context.Context, uuid, dst string) error {
	var content string
	err := d.act(ctx, "snapshot", uuid, func(g *guest) error {
		if root := g.spec.Disks[0]; root.Volume != nil {
			return fmt.Errorf("snapshot %s: the root disk is volume %s, which only the volume service can snapshot: %w", uuid, root.Volume.VolumeID, hypervisor.ErrInvalidState)
		}
		content = fmt.Sprintf("fake snapshot of %s after boot %d\n", uuid, g.boots)
		return nil
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, []byte(content), 0o640); err != nil {
		return fmt.Errorf("snapshot %s: %w", uuid, err)
	}
	return nil
}

// Resize implements hypervisor.Driver.
func (d *Driver) Resize(ctx context.Context, uuid string, to hypervisor.Resize) error {
	if err := to.Validate(); err != nil {
		return fmt.Errorf("resize %s: %w", uuid, err)
	}
	return d.act(ctx, "resize", uuid, func(g *guest) error {
		if g.preResize != nil {
			if g.spec.VCPUs == to.VCPUs && g.spec.MemoryMiB == to.MemoryMiB {
				return nil
			}
			return fmt.Errorf("resize %s: a previous resize awaits confirmation: %w", uuid, hypervisor.ErrInvalidState)
		}
		if g.state == hypervisor.Suspended {
			return fmt.Errorf("resize %s: %w", uuid, &hypervisor.StateError{Op: "resize", State: g.state})
		}
		old := g.spec
		old.Disks = append([]hypervisor.Disk(nil), g.spec.Disks...)
		g.preResize = &old
		g.spec.Disks = append([]hypervisor.Disk(nil), g.spec.Disks...)
		g.spec.VCPUs, g.spec.MemoryMiB = to.VCPUs, to.MemoryMiB
		// A volume root is the storage host's: never resized here.
		if root := g.spec.Disks[0]; root.Volume == nil && to.RootBytes > root.SizeBytes {
			g.spec.Disks[0].SizeBytes = to.RootBytes
		}
		d.rebootIfUp(g)
		return nil
	})
}

// rebootIfUp restarts a guest that has a process, as a change that needs
// a new machine does; a shut-off guest stays off.
func (d *Driver) rebootIfUp(g *guest) {
	if g.pid != 0 {
		d.boot(g)
	}
}

// ConfirmResize implements hypervisor.Driver.
func (d *Driver) ConfirmResize(ctx context.Context, uuid string) error {
	return d.act(ctx, "confirm_resize", uuid, func(g *guest) error {
		g.preResize = nil
		return nil
	})
}

// RevertResize implements hypervisor.Driver.
func (d *Driver) RevertResize(ctx context.Context, uuid string) error {
	return d.act(ctx, "revert_resize", uuid, func(g *guest) error {
		if g.preResize == nil {
			return nil
		}
		g.spec, g.preResize = *g.preResize, nil
		d.rebootIfUp(g)
		return nil
	})
}

// Rescue implements hypervisor.Driver.
func (d *Driver) Rescue(ctx context.Context, uuid string, image *hypervisor.Image, timeout time.Duration) error {
	if image == nil || image.Checksum == "" {
		return fmt.Errorf("rescue %s: a rescue image with a checksum is required", uuid)
	}
	return d.act(ctx, "rescue", uuid, func(g *guest) error {
		if g.state == hypervisor.Suspended {
			return fmt.Errorf("rescue %s: %w", uuid, &hypervisor.StateError{Op: "rescue", State: g.state})
		}
		if g.rescue != nil && g.pid != 0 {
			return nil
		}
		g.rescue = image
		d.boot(g)
		g.console = append(g.console, fmt.Sprintf("rescue boot from image %s\n", image.ID)...)
		return nil
	})
}

// Unrescue implements hypervisor.Driver.
func (d *Driver) Unrescue(ctx context.Context, uuid string) error {
	return d.act(ctx, "unrescue", uuid, func(g *guest) error {
		if g.rescue == nil {
			return nil
		}
		g.rescue = nil
		d.boot(g)
		return nil
	})
}

// Rescued reports the rescue image of a rescued guest, nil otherwise.
func (d *Driver) Rescued(uuid string) *hypervisor.Image {
	d.mu.Lock()
	defer d.mu.Unlock()
	if g := d.guests[uuid]; g != nil {
		return g.rescue
	}
	return nil
}

// Spec returns a guest's current spec, as a hard reboot would build it.
func (d *Driver) Spec(uuid string) (hypervisor.Spec, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[uuid]
	if g == nil {
		return hypervisor.Spec{}, fmt.Errorf("instance %s: %w", uuid, hypervisor.ErrNotFound)
	}
	s := g.spec
	s.NICs = append([]hypervisor.NIC(nil), g.spec.NICs...)
	s.Disks = append([]hypervisor.Disk(nil), g.spec.Disks...)
	return s, nil
}

// AttachInterface implements hypervisor.Driver.
func (d *Driver) AttachInterface(ctx context.Context, uuid string, nic hypervisor.NIC) error {
	if err := nic.Validate(); err != nil {
		return fmt.Errorf("attach interface to %s: %w", uuid, err)
	}
	return d.act(ctx, "attach_interface", uuid, func(g *guest) error {
		if g.state == hypervisor.Suspended {
			return fmt.Errorf("attach interface to %s: %w", uuid, &hypervisor.StateError{Op: "attach interface", State: g.state})
		}
		for _, n := range g.spec.NICs {
			if n.TapName == nic.TapName {
				return nil
			}
		}
		g.spec.NICs = append(append([]hypervisor.NIC(nil), g.spec.NICs...), nic)
		return nil
	})
}

// DetachInterface implements hypervisor.Driver.
func (d *Driver) DetachInterface(ctx context.Context, uuid, tapName string) error {
	return d.act(ctx, "detach_interface", uuid, func(g *guest) error {
		switch g.state {
		case hypervisor.Suspended, hypervisor.Paused:
			return fmt.Errorf("detach interface from %s: %w", uuid, &hypervisor.StateError{Op: "detach interface", State: g.state})
		}
		var keep []hypervisor.NIC
		for _, n := range g.spec.NICs {
			if n.TapName != tapName {
				keep = append(keep, n)
			}
		}
		g.spec.NICs = keep
		return nil
	})
}

// InjectNMI implements hypervisor.Driver.
func (d *Driver) InjectNMI(ctx context.Context, uuid string) error {
	return d.act(ctx, "inject_nmi", uuid, func(g *guest) error {
		if g.pid == 0 {
			return fmt.Errorf("inject nmi %s: %w", uuid, &hypervisor.StateError{Op: "trigger crash dump", State: g.state})
		}
		g.nmis++
		g.console = append(g.console, "NMI received: crash dump\n"...)
		return nil
	})
}

// AttachVolume implements hypervisor.Driver. The fake keeps the volume
// disk in the guest's spec, as the real driver's saved spec does, and
// refuses what the real driver refuses.
func (d *Driver) AttachVolume(ctx context.Context, uuid string, disk hypervisor.Disk) error {
	if disk.Volume == nil {
		return fmt.Errorf("attach volume to %s: disk %q has no volume", uuid, disk.Name)
	}
	if err := disk.Volume.Validate(); err != nil {
		return fmt.Errorf("attach volume to %s: %w", uuid, err)
	}
	volID := disk.Volume.VolumeID
	return d.act(ctx, "attach_volume", uuid, func(g *guest) error {
		if g.state == hypervisor.Suspended {
			return fmt.Errorf("attach volume to %s: %w", uuid, &hypervisor.StateError{Op: "attach volume", State: g.state})
		}
		for _, have := range g.spec.Disks {
			if have.Volume != nil && have.Volume.VolumeID == volID {
				return nil
			}
		}
		for _, have := range g.spec.Disks {
			if have.Name == disk.Name {
				return fmt.Errorf("attach volume to %s: the guest already has a disk named %q", uuid, disk.Name)
			}
			// QEMU names a volume's block node after its id's first 8
			// characters; the qemu driver refuses a clash, so the fake does.
			if have.Volume != nil && have.Volume.VolumeID[:8] == volID[:8] {
				return fmt.Errorf("attach volume %s to %s: volume %s starts with the same 8 characters", volID, uuid, have.Volume.VolumeID)
			}
		}
		next := g.spec
		next.Disks = append(append([]hypervisor.Disk(nil), g.spec.Disks...), disk)
		if err := next.Validate(); err != nil {
			return fmt.Errorf("attach volume %s to %s: %w", volID, uuid, err)
		}
		g.spec.Disks = next.Disks
		if g.preResize != nil {
			g.preResize.Disks = append(append([]hypervisor.Disk(nil), g.preResize.Disks...), disk)
		}
		return nil
	})
}

// DetachVolume implements hypervisor.Driver. Like the qemu driver it
// refuses the root disk, and a paused guest, which could not release
// the device.
func (d *Driver) DetachVolume(ctx context.Context, uuid, volumeID string) error {
	return d.act(ctx, "detach_volume", uuid, func(g *guest) error {
		match := func(x hypervisor.Disk) bool { return x.Volume != nil && x.Volume.VolumeID == volumeID }
		idx := -1
		for i, have := range g.spec.Disks {
			if match(have) {
				idx = i
			}
		}
		switch {
		case idx < 0:
			return nil
		case idx == 0:
			return fmt.Errorf("detach volume %s from %s: it is the root disk: %w", volumeID, uuid, hypervisor.ErrInvalidState)
		case g.state == hypervisor.Suspended || g.state == hypervisor.Paused:
			return fmt.Errorf("detach volume from %s: %w", uuid, &hypervisor.StateError{Op: "detach volume", State: g.state})
		}
		g.spec.Disks = withoutDisk(g.spec.Disks, match)
		if g.preResize != nil {
			g.preResize.Disks = withoutDisk(g.preResize.Disks, match)
		}
		return nil
	})
}

// withoutDisk copies disks without those that match, so a spec handed
// out by Spec never changes under its holder.
func withoutDisk(disks []hypervisor.Disk, match func(hypervisor.Disk) bool) []hypervisor.Disk {
	keep := make([]hypervisor.Disk, 0, len(disks))
	for _, x := range disks {
		if !match(x) {
			keep = append(keep, x)
		}
	}
	return keep
}
