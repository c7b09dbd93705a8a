package qemu

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// A volume disk is three QEMU pieces: TLS-PSK client credentials (an
// object), an NBD block node that uses them, and the guest's device on
// that node. The same pieces are built on the command line at boot and
// over QMP for a hot-plug, with the same ids, so a detach finds them
// whichever way they came. The ids carry the first 8 characters of the
// volume id (id8) because QEMU limits a node name to 31 characters;
// AttachVolume refuses a second volume with the same id8 on one guest.

func volumeNodeName(volumeID string) string { return "vol-" + volumeID[:8] }
func volumeCredsID(volumeID string) string  { return "tls-vol-" + volumeID[:8] }
func volumeDeviceID(volumeID string) string { return "disk-" + volumeID[:8] }

// nbdReconnectDelay is how long, in seconds, QEMU holds a volume's
// requests while it reconnects to a storage daemon that went away (a
// restart), before failing them to the guest.
const nbdReconnectDelay = 10

// guestRunDir holds a guest's run files that are not sockets: the key
// files of its volumes, which QEMU's tls-creds-psk can only read from a
// directory. It is under RunDir (a tmpfs) and cleared by a host reboot;
// the keys are written again from the saved spec (instance.json, 0600)
// before every start.
func (d *Driver) guestRunDir(uuid string) string { return filepath.Join(d.cfg.RunDir, uuid) }

// volumePSKDir is the directory tls-creds-psk reads keys.psk from.
func volumePSKDir(guestRun, volumeID string) string {
	return filepath.Join(guestRun, "psk-"+volumeID[:8])
}

// volumeDisk is the record entry of a volume disk of the spec.
func volumeDisk(disk hypervisor.Disk) diskFile {
	return diskFile{Name: disk.Name, Volume: disk.Volume, Bus: disk.Bus, ReadOnly: disk.ReadOnly || disk.Volume.ReadOnly}
}

// volumeCredsProps are the TLS-PSK client credentials of a volume, as
// object-add takes them. The key stays in dir/keys.psk.
func volumeCredsProps(c *hypervisor.VolumeConn, dir string) map[string]any {
	return map[string]any{
		"qom-type": "tls-creds-psk", "id": volumeCredsID(c.VolumeID),
		"endpoint": "client", "dir": dir, "username": c.PSKIdentity,
	}
}

// volumeBlockdev is the NBD node of a volume disk, as blockdev-add (and
// -blockdev in JSON form) takes it.
func volumeBlockdev(df diskFile) map[string]any {
	c := df.Volume
	discard := "ignore"
	if c.Discard {
		discard = "unmap"
	}
	return map[string]any{
		"driver": "nbd", "node-name": volumeNodeName(c.VolumeID),
		"server":          map[string]any{"type": "inet", "host": c.Host, "port": strconv.Itoa(c.Port)},
		"export":          c.Export,
		"tls-creds":       volumeCredsID(c.VolumeID),
		"reconnect-delay": nbdReconnectDelay,
		"read-only":       df.ReadOnly,
		"discard":         discard,
	}
}

// volumeDeviceProps is the guest device of a volume disk, as device_add
// takes it. The serial is the volume id: virtio-blk shows the guest its
// first 20 characters (/dev/disk/by-id/virtio-<20>), as on Nova.
func volumeDeviceProps(df diskFile) map[string]any {
	id := df.Volume.VolumeID
	p := map[string]any{"driver": "virtio-blk-pci", "id": volumeDeviceID(id), "drive": volumeNodeName(id), "serial": id}
	if df.Bus == "scsi" {
		p["driver"], p["bus"] = "scsi-hd", scsiController+".0"
	}
	return p
}

// volumeArgs is the command line of a volume disk; boot marks the root.
func volumeArgs(df diskFile, guestRun string, boot bool) []string {
	c := df.Volume
	// A map of strings, numbers and bools always marshals.
	blockdev, _ := json.Marshal(volumeBlockdev(df))
	return []string{
		"-object", fmt.Sprintf("tls-creds-psk,id=%s,endpoint=client,dir=%s,username=%s",
			volumeCredsID(c.VolumeID), optEscape(volumePSKDir(guestRun, c.VolumeID)), c.PSKIdentity),
		"-blockdev", string(blockdev),
		"-device", diskDeviceArg(df.Bus, volumeNodeName(c.VolumeID), volumeDeviceID(c.VolumeID), c.VolumeID, boot),
	}
}

// writeVolumeKey writes dir/keys.psk ("identity:hexkey", the format of
// QEMU's tls-creds-psk), readable by the agent's user only, replacing
// what was there in one rename.
func writeVolumeKey(dir string, c *hypervisor.VolumeConn) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("volume %s: key directory: %w", c.VolumeID, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("volume %s: key directory: %w", c.VolumeID, err)
	}
	path := filepath.Join(dir, "keys.psk")
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("volume %s: key file: %w", c.VolumeID, err)
	}
	_, werr := f.WriteString(c.PSKIdentity + ":" + strings.ToLower(c.PSKKey) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("volume %s: key file: %w", c.VolumeID, werr)
	}
	return nil
}

// syncVolumeKeys makes a guest's run directory hold the key file of
// every volume in disks and no other, before QEMU starts: keys of
// volumes detached while the agent was down (or by a detach interrupted
// after the guest released the disk) do not linger.
func syncVolumeKeys(guestRun string, disks []diskFile) error {
	keep := map[string]bool{}
	for _, df := range disks {
		if df.Volume == nil {
			continue
		}
		dir := volumePSKDir(guestRun, df.Volume.VolumeID)
		if err := writeVolumeKey(dir, df.Volume); err != nil {
			return err
		}
		keep[filepath.Base(dir)] = true
	}
	entries, err := os.ReadDir(guestRun)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("volume keys: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "psk-") && !keep[e.Name()] {
			if err := os.RemoveAll(filepath.Join(guestRun, e.Name())); err != nil {
				return fmt.Errorf("volume keys: remove stale %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}
