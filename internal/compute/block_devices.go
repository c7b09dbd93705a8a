package compute

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Where a block device mapping stands on the compute side. A volume is
// reserved in the volume service from bdmReserved on; its connection is
// initialised for the server's host from bdmAttaching on.
const (
	// bdmCreating: the volume of an image→volume or blank→volume mapping
	// is being made by the volume service; the build waits for it.
	bdmCreating = "creating"
	// bdmReserved: reserved (attaching in the volume service), not yet
	// connected to a host.
	bdmReserved = "reserved"
	// bdmAttaching: connected to the host; the agent is plugging it.
	bdmAttaching = "attaching"
	bdmAttached  = "attached"
	// bdmDetaching: the agent is unplugging it.
	bdmDetaching = "detaching"
)

// What a mapping still owes the volume service (the settle column); the
// report that decided it commits first, the calls follow (settleVolumes).
const (
	settleNone = ""
	// settleAttach: os-attach, then the mapping is attached.
	settleAttach = "attach"
	// settleUnattach: the plug failed: terminate_connection, unreserve,
	// and the mapping goes.
	settleUnattach = "unattach"
	// settleDetach: unplugged: terminate_connection, os-detach, and the
	// mapping goes.
	settleDetach = "detach"
	// settleRoll: the unplug failed: roll_detaching, back to attached.
	settleRoll = "roll"
	// settleRelease: the server is gone (or its build failed for good):
	// the volume is let go whatever its state, and deleted when
	// delete_on_termination says so.
	settleRelease = "release"
)

// blockDevice is a row of compute_block_devices.
type blockDevice struct {
	ID                  string
	InstanceID          string
	VolumeID            string
	ProjectID           string
	Device              string
	BootIndex           int
	SourceType          string
	ImageID             string
	VolumeSize          int
	DeleteOnTermination bool
	Tag                 *string
	DiskBus             string
	Status              string
	Settle              string
	Host                string
	ConnectionInfo      *string
	// CommandID is the attach or detach command the mapping waits on.
	CommandID string
	CreatedAt string
	UpdatedAt string
}

const blockDeviceCols = `id, instance_id, volume_id, project_id, device, boot_index, source_type, image_id, volume_size,
	delete_on_termination, tag, disk_bus, status, settle, host, connection_info, command_id, created_at, updated_at`

func scanBlockDevice(row store.Scanner) (blockDevice, error) {
	var b blockDevice
	var dot int
	err := row.Scan(&b.ID, &b.InstanceID, &b.VolumeID, &b.ProjectID, &b.Device, &b.BootIndex, &b.SourceType, &b.ImageID,
		&b.VolumeSize, &dot, &b.Tag, &b.DiskBus, &b.Status, &b.Settle, &b.Host, &b.ConnectionInfo, &b.CommandID, &b.CreatedAt, &b.UpdatedAt)
	b.DeleteOnTermination = dot == 1
	return b, err
}

func insertBlockDevice(ctx context.Context, tx *store.Tx, b blockDevice) error {
	if _, err := tx.Exec(ctx, `INSERT INTO compute_block_devices (`+blockDeviceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.InstanceID, b.VolumeID, b.ProjectID, b.Device, b.BootIndex, b.SourceType, b.ImageID, b.VolumeSize,
		boolInt(b.DeleteOnTermination), b.Tag, b.DiskBus, b.Status, b.Settle, b.Host, b.ConnectionInfo, b.CommandID, b.CreatedAt, b.UpdatedAt); err != nil {
		return fmt.Errorf("record volume %s of server %s: %w", b.VolumeID, b.InstanceID, err)
	}
	return nil
}

// blockDevicesOf lists a server's volumes, the root first, then by device.
func blockDevicesOf(ctx context.Context, q store.Querier, instanceID string) ([]blockDevice, error) {
	list, err := store.QueryAll(ctx, q, scanBlockDevice, `SELECT `+blockDeviceCols+` FROM compute_block_devices WHERE instance_id = ?`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("volumes of server %s: %w", instanceID, err)
	}
	sortBlockDevices(list)
	return list, nil
}

func sortBlockDevices(list []blockDevice) {
	sort.Slice(list, func(a, b int) bool {
		if (list[a].BootIndex == 0) != (list[b].BootIndex == 0) {
			return list[a].BootIndex == 0
		}
		if len(list[a].Device) != len(list[b].Device) {
			return len(list[a].Device) < len(list[b].Device)
		}
		return list[a].Device < list[b].Device
	})
}

// blockDevicesOfServers is blockDevicesOf for a page of servers.
func blockDevicesOfServers(ctx context.Context, q store.Querier, ids []string) (map[string][]blockDevice, error) {
	out := map[string][]blockDevice{}
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		list, err := store.QueryAll(ctx, q, scanBlockDevice, `SELECT `+blockDeviceCols+` FROM compute_block_devices WHERE instance_id IN (`+placeholders(len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("volumes of servers: %w", err)
		}
		for _, b := range list {
			out[b.InstanceID] = append(out[b.InstanceID], b)
		}
	}
	for _, l := range out {
		sortBlockDevices(l)
	}
	return out, nil
}

// conn is the mapping's stored connection, nil before it has one.
func (b blockDevice) conn() *hypervisor.VolumeConn {
	if b.ConnectionInfo == nil || *b.ConnectionInfo == "" {
		return nil
	}
	c := fromJSON[hypervisor.VolumeConn](*b.ConnectionInfo)
	return &c
}

// spec is the mapping as an agent sees it.
func (b blockDevice) spec() VolumeSpec {
	return VolumeSpec{VolumeID: b.VolumeID, Device: b.Device, BootIndex: b.BootIndex, Bus: b.DiskBus, Conn: b.conn()}
}

// isRoot reports whether the mapping is a volume-backed server's root.
func (b blockDevice) isRoot() bool { return b.BootIndex == 0 }

// attachmentView is one entry of os-volume_attachments. Before 2.89 its
// id is the volume's id, as Nova's.
func attachmentView(r *http.Request, b blockDevice) map[string]any {
	out := map[string]any{"id": b.VolumeID, "volumeId": b.VolumeID, "serverId": b.InstanceID, "device": b.Device}
	if at(r, 70) {
		out["tag"] = b.Tag
	}
	if at(r, 79) {
		out["delete_on_termination"] = b.DeleteOnTermination
	}
	return out
}

// volumesAttachedView is os-extended-volumes:volumes_attached.
func volumesAttachedView(r *http.Request, list []blockDevice) []any {
	out := make([]any, 0, len(list))
	for _, b := range list {
		v := map[string]any{"id": b.VolumeID}
		if at(r, 3) {
			v["delete_on_termination"] = b.DeleteOnTermination
		}
		out = append(out, v)
	}
	return out
}

// devicePattern is a device name the API hands out or accepts:
// /dev/vdb, /dev/sdc, up to two letters.
var devicePattern = regexp.MustCompile(`^/dev/(vd|sd|xvd|hd)[a-z]{1,2}$`)

// busPrefix is the device name prefix of a disk bus.
func busPrefix(bus string) string {
	if bus == "scsi" {
		return "sd"
	}
	return "vd"
}

// diskBusOf is the bus a server's volumes use: the image's hw_disk_bus
// when it is scsi, virtio otherwise.
func diskBusOf(imageProps map[string]string) string {
	if imageProps["hw_disk_bus"] == "scsi" {
		return "scsi"
	}
	return "virtio"
}

// usedDevices are the device names a server's disks take: its local
// root (unless a volume is the root), ephemeral and swap disks, in that
// order after the root, and its volumes.
func usedDevices(i instance, bdms []blockDevice, prefix string) map[string]bool {
	used := map[string]bool{deviceName(prefix, 0): true} // the root, local or a volume
	for _, b := range bdms {
		used[b.Device] = true
	}
	k := 1
	f := i.flavorSpec()
	if f.EphemeralG > 0 {
		used[deviceName(prefix, k)] = true
		k++
	}
	if f.SwapMB > 0 {
		used[deviceName(prefix, k)] = true
	}
	return used
}

// deviceName is the k-th device of a bus: vda, vdb, ... vdz, vdaa ...
func deviceName(prefix string, k int) string {
	if k < 26 {
		return "/dev/" + prefix + string(rune('a'+k))
	}
	return "/dev/" + prefix + string(rune('a'+k/26-1)) + string(rune('a'+k%26))
}

// nextDevice picks the first free device name after the root.
func nextDevice(used map[string]bool, prefix string) (string, error) {
	for k := 1; k < 26*27; k++ {
		if d := deviceName(prefix, k); !used[d] {
			return d, nil
		}
	}
	return "", api.BadRequest("No free disk device names for prefix '%s'", prefix)
}
