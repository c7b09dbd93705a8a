package compute

import (
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// Bus subjects of the agent seam. Per-host subjects embed the host name;
// host names are restricted (see validHostName) to characters that are
// safe in a NATS subject token.
const (
	// SubjectHostPrefix + host is the durable command queue of one host.
	SubjectHostPrefix = "compute.host."
	// SubjectConsolePrefix + host answers ConsoleRequest calls.
	SubjectConsolePrefix = "compute.console."
	// SubjectReports carries InstanceReport from agents, durably.
	SubjectReports = "compute.reports"
	// SubjectHeartbeat carries HostReport from agents.
	SubjectHeartbeat = "compute.heartbeat"
)

// HostSubject is the durable command subject of host.
func HostSubject(host string) string { return SubjectHostPrefix + host }

// ConsoleSubject is the console call subject of host.
func ConsoleSubject(host string) string { return SubjectConsolePrefix + host }

// Operations an agent is asked to perform.
const (
	OpBuild         = "build"
	OpDelete        = "delete"
	OpReboot        = "reboot"
	OpStop          = "stop"
	OpStart         = "start"
	OpPause         = "pause"
	OpUnpause       = "unpause"
	OpSuspend       = "suspend"
	OpResume        = "resume"
	OpRebuild       = "rebuild"
	OpResize        = "resize"
	OpConfirmResize = "confirm_resize"
	OpRevertResize  = "revert_resize"
	OpSnapshot      = "snapshot"
	// OpCrashDump asks the guest for a crash dump (an NMI), 2.17.
	OpCrashDump = "trigger_crash_dump"
	// OpAttachInterface and OpDetachInterface hot-plug a port; the API
	// has already created or bound the port in the networking service.
	OpAttachInterface = "attach_interface"
	OpDetachInterface = "detach_interface"
	// OpShelve snapshots the guest into ImageID (already created in the
	// image service) and removes it from the host; unshelving is an
	// OpBuild whose ImageID names that snapshot.
	OpShelve = "shelve"
	// OpRescue boots the guest from a rescue image (ImageID, or its own
	// image) with its disk attached; OpUnrescue returns to normal.
	OpRescue   = "rescue"
	OpUnrescue = "unrescue"
	// OpAttachVolume hot-plugs Command.Volume, whose connection the API
	// has already initialised for this host; OpDetachVolume unplugs
	// Command.Volume.VolumeID. The API finishes both with the volume
	// service once the agent has reported.
	OpAttachVolume = "attach_volume"
	OpDetachVolume = "detach_volume"
)

// Command is one unit of work for a compute agent. Every field the agent
// needs travels in it, because agents never read the database.
type Command struct {
	// ID identifies this command; an agent that sees the same ID twice
	// (at-least-once delivery) must not act twice.
	ID string `json:"id"`
	// Op is one of the Op* constants.
	Op string `json:"op"`
	// RequestID is the API request that caused the command, so the
	// agent's logs and its report can be tied to the instance action.
	RequestID string `json:"request_id"`
	// Instance describes the guest as it should be after the command.
	Instance InstanceSpec `json:"instance"`
	// RebootType is SOFT or HARD for OpReboot.
	RebootType string `json:"reboot_type,omitempty"`
	// NewFlavor is the target flavor of OpResize.
	NewFlavor *FlavorSpec `json:"new_flavor,omitempty"`
	// ImageID is the snapshot image to upload for OpSnapshot and
	// OpShelve, already created (queued) in the image service by the API;
	// for OpBuild it is the image to boot instead of Instance.ImageID
	// (unshelve), and for OpRescue the rescue image.
	ImageID string `json:"image_id,omitempty"`
	// Attempt counts build attempts (1 for the first host).
	Attempt int `json:"attempt,omitempty"`
	// PortID is the port of OpAttachInterface / OpDetachInterface.
	PortID string `json:"port_id,omitempty"`
	// Volume is the volume of OpAttachVolume / OpDetachVolume.
	Volume *VolumeSpec `json:"volume,omitempty"`

	// prepareVolumes (never sent) marks a build whose volumes must be
	// made ready before it goes out.
	prepareVolumes bool
}

// VolumeSpec is one block storage volume of a guest, as the agent needs
// it: where it sits among the guest's disks and how to reach it.
type VolumeSpec struct {
	VolumeID string `json:"volume_id"`
	// Device is the device name the API gave it (/dev/vdb); its base
	// name names the guest's disk.
	Device string `json:"device"`
	// BootIndex 0 makes it the root disk of a volume-backed server; -1
	// (or any other value) is a data disk.
	BootIndex int `json:"boot_index"`
	// Bus is "virtio" or "scsi" (the image's hw_disk_bus).
	Bus string `json:"bus,omitempty"`
	// Conn is the volume service's connection for this host; nil while
	// the API has not initialised it (never in a command to an agent).
	Conn *hypervisor.VolumeConn `json:"conn,omitempty"`
}

// DiskName is the guest disk name of the volume: the device's base name
// ("vdb"), which is unique within a guest.
func (v VolumeSpec) DiskName() string {
	d := v.Device
	for i := len(d) - 1; i >= 0; i-- {
		if d[i] == '/' {
			return d[i+1:]
		}
	}
	return d
}

// FlavorSpec is the hardware a guest gets.
type FlavorSpec struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	VCPUs      int               `json:"vcpus"`
	MemoryMB   int               `json:"memory_mb"`
	RootGB     int               `json:"root_gb"`
	EphemeralG int               `json:"ephemeral_gb"`
	SwapMB     int               `json:"swap_mb"`
	ExtraSpecs map[string]string `json:"extra_specs,omitempty"`
}

// NetworkRequest is one entry of a server's requested networks.
type NetworkRequest struct {
	NetworkID string `json:"network_id,omitempty"`
	PortID    string `json:"port_id,omitempty"`
	FixedIP   string `json:"fixed_ip,omitempty"`
	Tag       string `json:"tag,omitempty"`
}

// InstanceSpec is what an agent needs to build or change a guest.
type InstanceSpec struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Hostname  string `json:"hostname"`
	ProjectID string `json:"project_id"`
	UserID    string `json:"user_id"`
	ImageID   string `json:"image_id"`
	// ImageProperties are the image's properties (hw_*, os_*), taken by
	// the API when the server was created.
	ImageProperties map[string]string `json:"image_properties,omitempty"`
	Flavor          FlavorSpec        `json:"flavor"`
	// Networks is "auto", "none" or empty with Requested filled in.
	Networks       string           `json:"networks,omitempty"`
	Requested      []NetworkRequest `json:"requested_networks,omitempty"`
	SecurityGroups []string         `json:"security_groups,omitempty"`
	KeyName        string           `json:"key_name,omitempty"`
	KeyData        string           `json:"key_data,omitempty"`
	// UserData is base64, as the API received it.
	UserData         string            `json:"user_data,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	ConfigDrive      bool              `json:"config_drive"`
	AdminPass        string            `json:"admin_pass,omitempty"`
	AvailabilityZone string            `json:"availability_zone"`
	LaunchIndex      int               `json:"launch_index"`
	// Volumes are the block storage volumes attached to the guest (the
	// root disk among them when one has BootIndex 0), with their
	// connections, so that a build, rebuild or re-adoption has them.
	Volumes []VolumeSpec `json:"volumes,omitempty"`
}

// Power states, as Nova numbers them.
const (
	PowerNoState   = 0
	PowerRunning   = 1
	PowerPaused    = 3
	PowerShutdown  = 4
	PowerCrashed   = 6
	PowerSuspended = 7
)

// InstanceReport is an agent's account of what happened to a guest.
type InstanceReport struct {
	// CommandID is the command this report answers ("" for unsolicited
	// reports such as a guest that died).
	CommandID string `json:"command_id,omitempty"`
	Op        string `json:"op,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Host      string `json:"host"`
	// InstanceID is the server's id.
	InstanceID string `json:"instance_id"`
	// Success says whether Op completed.
	Success bool `json:"success"`
	// VMState and PowerState are the guest's state now; empty VMState
	// keeps the recorded one.
	VMState    string `json:"vm_state,omitempty"`
	PowerState int    `json:"power_state"`
	// Addresses are the guest's ports by network name, for the servers
	// "addresses" attribute.
	Addresses map[string][]Address `json:"addresses,omitempty"`
	// Fault describes a failure.
	Fault *Fault `json:"fault,omitempty"`
	// VolumeID is the volume of an OpAttachVolume / OpDetachVolume.
	VolumeID string `json:"volume_id,omitempty"`
	// Reschedule asks the scheduler to try the build on another host:
	// this host could not build it, but another might.
	Reschedule bool `json:"reschedule,omitempty"`
	// Deleted confirms OpDelete: the guest and everything it held on the
	// host are gone, so its claim can be released.
	Deleted bool      `json:"deleted,omitempty"`
	At      time.Time `json:"at"`
}

// Address is one IP of a guest.
type Address struct {
	Addr    string `json:"addr"`
	Version int    `json:"version"`
	MAC     string `json:"mac"`
	Type    string `json:"type"` // fixed or floating
	PortID  string `json:"port_id,omitempty"`
}

// Fault is a failure recorded on a server, as Nova's instance fault.
type Fault struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details string `json:"details,omitempty"`
}

// HostReport is a compute agent's periodic heartbeat: who it is and what
// it has. Used resources are not reported; the scheduler computes them
// from its own allocations, so claims and capacity cannot disagree.
type HostReport struct {
	Host             string `json:"host"`
	AvailabilityZone string `json:"availability_zone,omitempty"`
	VCPUs            int    `json:"vcpus"`
	MemoryMB         int    `json:"memory_mb"`
	LocalGB          int    `json:"local_gb"`
	// Allocation ratios the host asks for; 0 takes the service defaults.
	CPUAllocationRatio  float64 `json:"cpu_allocation_ratio,omitempty"`
	RAMAllocationRatio  float64 `json:"ram_allocation_ratio,omitempty"`
	DiskAllocationRatio float64 `json:"disk_allocation_ratio,omitempty"`
	// HypervisorType is "QEMU" (or "fake"); Architecture "x86_64", ...
	HypervisorType     string `json:"hypervisor_type"`
	HypervisorVersion  int    `json:"hypervisor_version"`
	HypervisorHostname string `json:"hypervisor_hostname,omitempty"`
	HostIP             string `json:"host_ip,omitempty"`
	Architecture       string `json:"architecture,omitempty"`
	// RunningVMs is for the hypervisor views only.
	RunningVMs int `json:"running_vms"`
	// Guests, when GuestsListed, is every guest the host has with the
	// volumes it really has (hypervisor.Info.Volumes): the sync the API
	// settles an attach or detach from when the command's report never
	// came (volume_watchdog.go). Not listed (the driver could not list
	// its guests, or an agent that does not know how): nothing is said.
	Guests       []GuestVolumes `json:"guests,omitempty"`
	GuestsListed bool           `json:"guests_listed,omitempty"`
	At           time.Time      `json:"at"`
}

// GuestVolumes is one guest of a HostReport and its volumes.
type GuestVolumes struct {
	InstanceID string   `json:"instance_id"`
	Volumes    []string `json:"volumes,omitempty"`
	// Busy: a command of the guest was running or waiting on the agent
	// while the list was taken, so its volumes may be changing and its
	// report is still to come.
	Busy bool `json:"busy,omitempty"`
	// Unknown: the hypervisor did not answer for the guest.
	Unknown bool `json:"unknown,omitempty"`
}

// ConsoleRequest asks an agent for a guest's console.
type ConsoleRequest struct {
	InstanceID string `json:"instance_id"`
	// Type is "log" for the console log, or "novnc" / "serial".
	Type string `json:"type"`
	// Length is the number of trailing log lines wanted; 0 is all.
	Length int `json:"length,omitempty"`
}

// ConsoleReply is the agent's answer to a ConsoleRequest.
type ConsoleReply struct {
	Output string `json:"output,omitempty"`
	// Host and Port locate a VNC or serial console for the proxy.
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
}

// SubjectSync answers SyncRequest calls: an agent starting up asks which
// guests it should be running, so it can re-adopt them, finish pending
// deletes and remove leftovers.
const SubjectSync = "compute.sync"

// SyncRequest asks for the desired state of one host.
type SyncRequest struct {
	Host string `json:"host"`
}

// SyncReply lists the guests a host should have, with the state each
// should be in (active, stopped, paused, suspended, resized, error).
type SyncReply struct {
	Instances []SyncInstance `json:"instances"`
}

// SyncInstance is one guest in a SyncReply.
type SyncInstance struct {
	Instance InstanceSpec `json:"instance"`
	VMState  string       `json:"vm_state"`
	// TaskState is the operation in flight, if any ("deleting" means the
	// guest must go).
	TaskState string `json:"task_state,omitempty"`
}
