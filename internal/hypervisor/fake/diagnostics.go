package fake

import (
	"context"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// Diagnostics implements hypervisor.Diagnoser: the guest's shape from its
// spec and, as nothing runs, no counters.
func (d *Driver) Diagnostics(_ context.Context, uuid string) (hypervisor.Diagnostics, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.guests[uuid]
	if !ok {
		return hypervisor.Diagnostics{}, fmt.Errorf("instance %s: %w", uuid, hypervisor.ErrNotFound)
	}
	out := hypervisor.Diagnostics{State: g.state, Hypervisor: "fake", HypervisorOS: "linux",
		ConfigDrive: g.spec.ConfigDrive != nil, MemoryMaxMiB: g.spec.MemoryMiB}
	for i := range g.spec.VCPUs {
		out.CPUs = append(out.CPUs, hypervisor.CPUStats{ID: i})
	}
	for _, n := range g.spec.NICs {
		out.NICs = append(out.NICs, hypervisor.NICStats{MAC: n.MAC, Device: n.TapName})
	}
	for i := range g.spec.Disks {
		out.Disks = append(out.Disks, hypervisor.DiskStats{Device: fmt.Sprintf("vd%c", 'a'+i%26)})
	}
	return out, nil
}
