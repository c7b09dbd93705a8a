package computeagent

import (
	"context"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// Block storage volumes of guests. The compute API has reserved each
// volume and initialised its connection for this host before a command
// names it, so the agent only plugs and unplugs disks; the API finishes
// with the volume service once it hears the report.

// volumeDisk is the guest disk of a volume.
func volumeDisk(v compute.VolumeSpec) (hypervisor.Disk, error) {
	if v.Conn == nil {
		return hypervisor.Disk{}, fmt.Errorf("volume %s has no connection for this host", v.VolumeID)
	}
	conn := *v.Conn
	if conn.VolumeID == "" {
		conn.VolumeID = v.VolumeID
	}
	if conn.VolumeID != v.VolumeID {
		return hypervisor.Disk{}, fmt.Errorf("volume %s: its connection is for volume %s", v.VolumeID, conn.VolumeID)
	}
	if err := conn.Validate(); err != nil {
		return hypervisor.Disk{}, err
	}
	name := v.DiskName()
	if name == "" {
		name = "vol-" + v.VolumeID[:8]
	}
	return hypervisor.Disk{Name: name, Volume: &conn, Bus: v.Bus}, nil
}

// rootVolume is the volume a volume-backed guest boots from, if any.
func rootVolume(inst compute.InstanceSpec) *compute.VolumeSpec {
	for k := range inst.Volumes {
		if inst.Volumes[k].BootIndex == 0 {
			return &inst.Volumes[k]
		}
	}
	return nil
}

// attachVolume hot-plugs (or, for a shut-off guest, records) the volume
// of cmd.Volume. The driver completes a half-done attach, so a command
// delivered again after a crash is safe.
func (a *Agent) attachVolume(ctx context.Context, cmd compute.Command) compute.InstanceReport {
	id := cmd.Instance.ID
	if cmd.Volume == nil {
		return a.volumeReport(a.failed(ctx, cmd.Op, id, errors.New("no volume in the command")), cmd)
	}
	disk, err := volumeDisk(*cmd.Volume)
	if err == nil {
		err = a.cfg.Driver.AttachVolume(ctx, id, disk)
	}
	if err != nil {
		return a.volumeReport(a.failed(ctx, cmd.Op, id, fmt.Errorf("attach volume %s: %w", cmd.Volume.VolumeID, err)), cmd)
	}
	return a.volumeReport(a.succeeded(ctx, cmd, ""), cmd)
}

// detachVolume unplugs the volume of cmd.Volume; a volume the guest does
// not have is already detached.
func (a *Agent) detachVolume(ctx context.Context, cmd compute.Command) compute.InstanceReport {
	id := cmd.Instance.ID
	if cmd.Volume == nil {
		return a.volumeReport(a.failed(ctx, cmd.Op, id, errors.New("no volume in the command")), cmd)
	}
	err := a.cfg.Driver.DetachVolume(ctx, id, cmd.Volume.VolumeID)
	if errors.Is(err, hypervisor.ErrNotFound) {
		err = nil // no guest, no disk: nothing holds the volume here
	}
	if err != nil {
		return a.volumeReport(a.failed(ctx, cmd.Op, id, fmt.Errorf("detach volume %s: %w", cmd.Volume.VolumeID, err)), cmd)
	}
	return a.volumeReport(a.succeeded(ctx, cmd, ""), cmd)
}

// volumeReport names the command's volume in its report.
func (a *Agent) volumeReport(rep compute.InstanceReport, cmd compute.Command) compute.InstanceReport {
	if cmd.Volume != nil {
		rep.VolumeID = cmd.Volume.VolumeID
	}
	return rep
}
