package hypervisor

import "context"

// Diagnostics is what a driver can tell about one running guest, shaped
// after Nova's driver-neutral server diagnostics (API microversion 2.48):
// counters are cumulative since the guest's process started, and nil
// where the driver cannot know.
type Diagnostics struct {
	State PowerState `json:"state"`
	// Hypervisor is the acceleration ("kvm" or "qemu"); HypervisorOS the
	// host's operating system.
	Hypervisor   string `json:"hypervisor"`
	HypervisorOS string `json:"hypervisor_os"`
	// UptimeSeconds since the guest's process started; nil when stopped.
	UptimeSeconds *int64 `json:"uptime,omitempty"`
	ConfigDrive   bool   `json:"config_drive"`
	// MemoryMaxMiB is the guest's memory, MemoryUsedMiB what its process
	// holds on the host (resident).
	MemoryMaxMiB  int         `json:"memory_max_mib"`
	MemoryUsedMiB *int64      `json:"memory_used_mib,omitempty"`
	CPUs          []CPUStats  `json:"cpus"`
	NICs          []NICStats  `json:"nics"`
	Disks         []DiskStats `json:"disks"`
}

// CPUStats is one virtual CPU: the host CPU time its thread used.
type CPUStats struct {
	ID     int    `json:"id"`
	TimeNS *int64 `json:"time_ns,omitempty"`
}

// NICStats are a guest interface's counters as the guest sees them
// (received is what the host's tap sent).
type NICStats struct {
	MAC       string `json:"mac"`
	Device    string `json:"device"`
	RxOctets  *int64 `json:"rx_octets,omitempty"`
	RxPackets *int64 `json:"rx_packets,omitempty"`
	RxErrors  *int64 `json:"rx_errors,omitempty"`
	RxDrop    *int64 `json:"rx_drop,omitempty"`
	TxOctets  *int64 `json:"tx_octets,omitempty"`
	TxPackets *int64 `json:"tx_packets,omitempty"`
	TxErrors  *int64 `json:"tx_errors,omitempty"`
	TxDrop    *int64 `json:"tx_drop,omitempty"`
}

// DiskStats are one disk's I/O counters. Device is the guest's name for
// it (vda, vdb, ...).
type DiskStats struct {
	Device        string `json:"device"`
	ReadBytes     *int64 `json:"read_bytes,omitempty"`
	ReadRequests  *int64 `json:"read_requests,omitempty"`
	WriteBytes    *int64 `json:"write_bytes,omitempty"`
	WriteRequests *int64 `json:"write_requests,omitempty"`
	Errors        *int64 `json:"errors,omitempty"`
}

// Diagnoser is a driver that can report Diagnostics. It is separate from
// Driver because nothing in a guest's life depends on it: an agent whose
// driver lacks it answers that diagnostics are not available.
type Diagnoser interface {
	// Diagnostics of a guest the driver knows; ErrNotFound otherwise.
	Diagnostics(ctx context.Context, uuid string) (Diagnostics, error)
}
