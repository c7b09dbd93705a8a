package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu/qmp"
)

// A guest may not release a disk at once: under TCG a guest still
// booting has not yet set up ACPI hot-unplug, and an event it misses
// is lost. So device_del is sent again with a growing wait (step, 2
// steps, ... up to maxWait), as Nova's libvirt driver retries a detach
// (device_detach_attempts = 8). Variables, so tests can shorten them.
var (
	volumeUnplugAttempts = 8
	volumeUnplugStep     = 5 * time.Second
	volumeUnplugMaxWait  = 20 * time.Second
)

// AttachVolume implements hypervisor.Driver. A running or paused guest
// gets the disk over QMP (key file, TLS credentials, NBD node, device),
// each step only if QEMU does not have it yet, so an attach interrupted
// by a crash completes when it is repeated; a step that fails undoes
// those this call made. A shut-off guest only has its record changed:
// the next start builds the disk from it.
func (d *Driver) AttachVolume(ctx context.Context, uuid string, disk hypervisor.Disk) error {
	if disk.Volume == nil {
		return fmt.Errorf("attach volume to %s: disk %q has no volume", uuid, disk.Name)
	}
	if err := disk.Volume.Validate(); err != nil {
		return fmt.Errorf("attach volume to %s: %w", uuid, err)
	}
	volID := disk.Volume.VolumeID
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("attach volume: %w", err)
	}
	df, have := recordVolume(rec, volID)
	if !have {
		if err := checkNewVolume(rec, disk); err != nil {
			return fmt.Errorf("attach volume %s to %s: %w", volID, uuid, err)
		}
		df = volumeDisk(disk)
	}
	mon, err := d.liveMonitor(ctx, "attach volume", uuid)
	if err != nil {
		return err
	}
	if mon != nil {
		defer mon.Close()
		if err := d.plugVolume(ctx, mon, uuid, df); err != nil {
			return fmt.Errorf("attach volume %s to %s: %w", volID, uuid, err)
		}
	}
	if have {
		return nil
	}
	add := func(r *record) {
		r.Spec.Disks = append(r.Spec.Disks, disk)
		r.Disks = append(r.Disks, df)
	}
	add(rec)
	if err := d.writeRecord(rec); err != nil {
		if mon != nil {
			if uerr := d.unplugVolume(context.WithoutCancel(ctx), mon, uuid, df); uerr != nil {
				d.log.Error("unplug volume after failed attach", "uuid", uuid, "volume", volID, "err", uerr)
			}
		}
		return fmt.Errorf("attach volume: %w", err)
	}
	if err := d.changePreResize(uuid, add); err != nil {
		d.log.Warn("attach volume: the spec kept for a resize revert lacks it", "uuid", uuid, "volume", volID, "err", err)
	}
	return nil
}

// DetachVolume implements hypervisor.Driver. A running guest is asked to
// release the disk (device_del, re-sent while it has not), then the NBD
// node, the credentials and the key file go, and last the record: an
// interrupted detach is repeated from what is left. A paused guest is
// refused, as it cannot release the device. The root disk is refused:
// a guest cannot run without it (Nova refuses it too). A volume the
// record lacks may still be in QEMU, hot-plugged by an attach that
// crashed before saving the record; that is removed too.
func (d *Driver) DetachVolume(ctx context.Context, uuid, volumeID string) error {
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("detach volume: %w", err)
	}
	df, have := recordVolume(rec, volumeID)
	if !have {
		if err := d.removeStrayVolume(ctx, rec, volumeID); err != nil {
			return fmt.Errorf("detach volume %s from %s: %w", volumeID, uuid, err)
		}
		return nil
	}
	if df.Name == rec.Disks[0].Name {
		return fmt.Errorf("detach volume %s from %s: it is the root disk: %w", volumeID, uuid, hypervisor.ErrInvalidState)
	}
	mon, err := d.liveMonitor(ctx, "detach volume", uuid)
	if err != nil {
		return err
	}
	if mon != nil {
		defer mon.Close()
		if st, err := mon.QueryStatus(ctx); err != nil {
			return fmt.Errorf("detach volume from %s: %w", uuid, err)
		} else if stateFromQMP(st.Status) == hypervisor.Paused {
			return fmt.Errorf("detach volume %s from %s: %w", volumeID, uuid, &hypervisor.StateError{Op: "detach volume", State: hypervisor.Paused})
		}
		if err := d.unplugVolume(ctx, mon, uuid, df); err != nil {
			return fmt.Errorf("detach volume %s from %s: %w", volumeID, uuid, err)
		}
	} else if err := os.RemoveAll(volumePSKDir(d.guestRunDir(uuid), volumeID)); err != nil {
		return fmt.Errorf("detach volume %s from %s: %w", volumeID, uuid, err)
	}
	remove := func(r *record) {
		r.Spec.Disks = dropVolume(r.Spec.Disks, func(x hypervisor.Disk) bool { return x.Volume != nil && x.Volume.VolumeID == volumeID })
		r.Disks = dropVolume(r.Disks, func(x diskFile) bool { return x.Volume != nil && x.Volume.VolumeID == volumeID })
	}
	remove(rec)
	if err := d.writeRecord(rec); err != nil {
		return fmt.Errorf("detach volume: %w", err)
	}
	if err := d.changePreResize(uuid, remove); err != nil {
		d.log.Warn("detach volume: the spec kept for a resize revert still has it", "uuid", uuid, "volume", volumeID, "err", err)
	}
	return nil
}

// removeStrayVolume removes what QEMU has of a volume the record lacks.
// The pieces are named after the id's first 8 characters, so nothing is
// touched when a recorded volume shares them: those are its pieces.
func (d *Driver) removeStrayVolume(ctx context.Context, rec *record, volumeID string) error {
	if !validInstanceName(volumeID) { // a UUID: never a guest's volume otherwise
		return nil
	}
	for _, df := range rec.Disks {
		if df.Volume != nil && volumeNodeName(df.Volume.VolumeID) == volumeNodeName(volumeID) {
			return nil
		}
	}
	uuid := rec.Spec.UUID
	info, err := d.getState(ctx, uuid)
	if err != nil {
		return err
	}
	if info.PID == 0 {
		return os.RemoveAll(volumePSKDir(d.guestRunDir(uuid), volumeID))
	}
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		return err
	}
	defer mon.Close()
	stray := diskFile{Volume: &hypervisor.VolumeConn{VolumeID: volumeID}}
	devices, err := mon.QOMList(ctx, "/machine/peripheral")
	if err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	if hasChild(devices, volumeDeviceID(volumeID)) {
		if st, err := mon.QueryStatus(ctx); err != nil {
			return err
		} else if stateFromQMP(st.Status) == hypervisor.Paused {
			return &hypervisor.StateError{Op: "detach volume", State: hypervisor.Paused}
		}
	}
	d.log.Info("removing a volume the record lacks from the guest", "uuid", uuid, "volume", volumeID)
	return d.unplugVolume(ctx, mon, uuid, stray)
}

// recordVolume finds the volume's disk in the record.
func recordVolume(rec *record, volumeID string) (diskFile, bool) {
	for _, df := range rec.Disks {
		if df.Volume != nil && df.Volume.VolumeID == volumeID {
			return df, true
		}
	}
	return diskFile{}, false
}

// checkNewVolume refuses a disk that cannot join the guest's: a bad name
// or bus (the spec's own rules), or a volume whose QEMU ids would be
// another volume's.
func checkNewVolume(rec *record, disk hypervisor.Disk) error {
	spec := rec.Spec
	spec.Disks = append(append([]hypervisor.Disk(nil), rec.Spec.Disks...), disk)
	if err := spec.Validate(); err != nil {
		return err
	}
	for _, df := range rec.Disks {
		if df.Name == disk.Name {
			return fmt.Errorf("the guest already has a disk named %q", disk.Name)
		}
		if df.Volume != nil && volumeNodeName(df.Volume.VolumeID) == volumeNodeName(disk.Volume.VolumeID) {
			return fmt.Errorf("volume %s is attached and starts with the same 8 characters; QEMU's node names cannot tell them apart", df.Volume.VolumeID)
		}
	}
	return nil
}

func dropVolume[T any](disks []T, match func(T) bool) []T {
	out := make([]T, 0, len(disks))
	for _, x := range disks {
		if !match(x) {
			out = append(out, x)
		}
	}
	return out
}

// changePreResize applies a disk change to the record a pending resize
// keeps for its revert, so a revert does not bring back a detached
// volume or lose an attached one. Without a pending resize it does
// nothing.
func (d *Driver) changePreResize(uuid string, change func(*record)) error {
	path := d.preResizeRecord(uuid)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var old record
	if err := json.Unmarshal(b, &old); err != nil {
		return fmt.Errorf("corrupt %s: %w", path, err)
	}
	change(&old)
	if b, err = json.Marshal(&old); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// plugVolume hot-plugs a volume disk into a live guest.
func (d *Driver) plugVolume(ctx context.Context, mon *qmp.Monitor, uuid string, df diskFile) error {
	id := df.Volume.VolumeID
	rv := &revert{}
	defer rv.Fail()
	bg := context.WithoutCancel(ctx) // undo must run even when ctx ended
	dir := volumePSKDir(d.guestRunDir(uuid), id)
	hadDir := fileExists(dir)
	if err := writeVolumeKey(dir, df.Volume); err != nil {
		return err
	}
	if !hadDir {
		rv.Add(func() { os.RemoveAll(dir) })
	}
	objects, err := mon.QOMList(ctx, "/objects")
	if err != nil {
		return fmt.Errorf("list objects: %w", err)
	}
	if !hasChild(objects, volumeCredsID(id)) {
		if err := mon.ObjectAdd(ctx, volumeCredsProps(df.Volume, dir)); err != nil {
			return fmt.Errorf("add TLS credentials: %w", err)
		}
		rv.Add(func() { mon.ObjectDel(bg, volumeCredsID(id)) })
	}
	nodes, err := mon.QueryNamedBlockNodes(ctx)
	if err != nil {
		return fmt.Errorf("list block nodes: %w", err)
	}
	if !hasNode(nodes, volumeNodeName(id)) {
		if err := mon.BlockdevAdd(ctx, volumeBlockdev(df)); err != nil {
			return fmt.Errorf("connect to NBD export on %s:%d: %w", df.Volume.Host, df.Volume.Port, err)
		}
		rv.Add(func() { mon.BlockdevDel(bg, volumeNodeName(id)) })
	}
	devices, err := mon.QOMList(ctx, "/machine/peripheral")
	if err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	if df.Bus == "scsi" && !hasChild(devices, scsiController) {
		// Left in place on failure: an empty controller is harmless, and
		// the next SCSI disk uses it.
		if err := mon.DeviceAdd(ctx, map[string]any{"driver": "virtio-scsi-pci", "id": scsiController}); err != nil {
			return fmt.Errorf("add SCSI controller: %w", err)
		}
	}
	if !hasChild(devices, volumeDeviceID(id)) {
		if err := mon.DeviceAdd(ctx, volumeDeviceProps(df)); err != nil {
			return fmt.Errorf("add disk device: %w", err)
		}
	}
	rv.Release()
	return nil
}

// unplugVolume removes a volume disk from a live guest, each piece only
// if QEMU still has it.
func (d *Driver) unplugVolume(ctx context.Context, mon *qmp.Monitor, uuid string, df diskFile) error {
	id := df.Volume.VolumeID
	devices, err := mon.QOMList(ctx, "/machine/peripheral")
	if err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	if hasChild(devices, volumeDeviceID(id)) {
		if err := d.deleteDevice(ctx, mon, uuid, volumeDeviceID(id)); err != nil {
			return err
		}
	}
	nodes, err := mon.QueryNamedBlockNodes(ctx)
	if err != nil {
		return fmt.Errorf("list block nodes: %w", err)
	}
	if hasNode(nodes, volumeNodeName(id)) {
		if err := mon.BlockdevDel(ctx, volumeNodeName(id)); err != nil {
			return fmt.Errorf("close NBD connection: %w", err)
		}
	}
	objects, err := mon.QOMList(ctx, "/objects")
	if err != nil {
		return fmt.Errorf("list objects: %w", err)
	}
	if hasChild(objects, volumeCredsID(id)) {
		if err := mon.ObjectDel(ctx, volumeCredsID(id)); err != nil {
			return fmt.Errorf("remove TLS credentials: %w", err)
		}
	}
	if err := os.RemoveAll(volumePSKDir(d.guestRunDir(uuid), id)); err != nil {
		return fmt.Errorf("remove key file: %w", err)
	}
	return nil
}

// deleteDevice asks the guest to release device id and waits for QEMU's
// DEVICE_DELETED, asking again with a growing wait while the guest has
// not. A request QEMU refuses because one is pending still counts: the
// wait goes on.
func (d *Driver) deleteDevice(ctx context.Context, mon *qmp.Monitor, uuid, id string) error {
	for attempt := 1; ; attempt++ {
		err := mon.DeviceDel(ctx, id)
		switch {
		case qmp.IsDeviceNotFound(err):
			return nil // released between two requests
		case err != nil && attempt == 1:
			return fmt.Errorf("release disk %s: %w", id, err)
		}
		wait := min(time.Duration(attempt)*volumeUnplugStep, volumeUnplugMaxWait)
		err = waitDeviceDeleted(ctx, mon, id, wait)
		if err == nil || ctx.Err() != nil || errors.Is(err, qmp.ErrClosed) {
			return err
		}
		if attempt == volumeUnplugAttempts {
			return fmt.Errorf("after %d requests: %w", attempt, err)
		}
		d.log.Info("guest has not released the disk yet; asking again", "uuid", uuid, "device", id, "attempt", attempt)
	}
}

// hasChild reports whether a qom-list answer has the child object name.
func hasChild(props []qmp.QOMProperty, name string) bool {
	for _, p := range props {
		if p.Name == name && strings.HasPrefix(p.Type, "child<") {
			return true
		}
	}
	return false
}

func hasNode(nodes []qmp.BlockNode, name string) bool {
	for _, n := range nodes {
		if n.NodeName == name {
			return true
		}
	}
	return false
}
