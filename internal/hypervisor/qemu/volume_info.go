package qemu

import (
	"context"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu/qmp"
)

// The volumes a guest really has, for hypervisor.Info.Volumes. The
// compute API decides from them how an attach or detach whose report was
// lost ended, so the saved record alone is not enough for a running
// guest: an attach that crashed after the record was written but before
// QEMU connected, or a detach that closed the connection and died before
// saving, would be misread. A volume counts when the record has it and
// QEMU has its NBD node.

// recordVolumeIDs lists the volumes of the guest's saved record.
func recordVolumeIDs(rec *record) []string {
	var ids []string
	for _, df := range rec.Disks {
		if df.Volume != nil {
			ids = append(ids, df.Volume.VolumeID)
		}
	}
	return ids
}

// liveVolumes lists the recorded volumes whose NBD node the running
// guest's QEMU has. A node the record lacks (a half-done attach) is not
// listed: the guest would lose it at its next boot, so it is not the
// guest's volume yet.
func liveVolumes(ctx context.Context, mon *qmp.Monitor, rec *record) ([]string, error) {
	ids := recordVolumeIDs(rec)
	if len(ids) == 0 {
		return nil, nil // nothing to ask QEMU about
	}
	nodes, err := mon.QueryNamedBlockNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list block nodes: %w", err)
	}
	var out []string
	for _, id := range ids {
		if hasNode(nodes, volumeNodeName(id)) {
			out = append(out, id)
		}
	}
	return out, nil
}
