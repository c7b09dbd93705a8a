// Package hypervisor defines what a compute agent asks of the thing that
// runs guests on its host, in the terms of Nova's virt driver
// (nova/virt/driver.py: spawn, destroy, reboot, power_off, power_on, pause,
// suspend, get_info, list_instances, get_console_output,
// get_available_resource), but as a small Go interface.
//
// Two implementations sit under it: package qemu runs each guest as its own
// qemu-system-x86_64 process driven over QMP, and package fake keeps guests
// in memory so that a scale test can run a thousand hosts in one process.
// The compute agent depends on this package only, never on either driver.
package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Driver runs guests on one host. Every method is safe for concurrent use
// and addresses a guest by its instance UUID. Methods are idempotent where
// the agent may repeat them after a crash (Spawn of a running guest,
// Destroy of a missing one), because bus delivery is at-least-once.
type Driver interface {
	// Spawn creates the guest's disks and config drive and starts it.
	// If the guest already exists and is running it returns ErrExists
	// with the guest's Info: a guest is never started twice.
	Spawn(ctx context.Context, spec Spec) (Info, error)
	// Destroy stops the guest at once (no ACPI) and deletes its disks,
	// config drive, console log and run files. A missing guest is not
	// an error.
	Destroy(ctx context.Context, uuid string) error
	// Reboot restarts the guest. RebootSoft asks the guest to shut down
	// through ACPI and waits up to the driver's soft reboot timeout,
	// then falls back to a hard reboot, as Nova does; RebootHard stops
	// the guest's process and starts a new one from the saved spec.
	Reboot(ctx context.Context, uuid string, kind RebootKind) error
	// PowerOff shuts the guest down: through ACPI first when timeout is
	// positive, then by force when it has not stopped in time (Nova's
	// clean shutdown). A timeout of zero forces at once.
	PowerOff(ctx context.Context, uuid string, timeout time.Duration) error
	// PowerOn boots a shut-off guest from its existing disks. A suspended
	// guest is resumed instead. A running guest is left alone.
	PowerOn(ctx context.Context, uuid string) error
	// Pause stops the guest's vCPUs; its memory stays in the host's RAM.
	Pause(ctx context.Context, uuid string) error
	// Unpause continues a paused guest.
	Unpause(ctx context.Context, uuid string) error
	// Suspend saves the guest's memory and device state to disk and stops
	// its process (Nova's libvirt managed save), freeing the host's RAM.
	Suspend(ctx context.Context, uuid string) error
	// Resume restores a suspended guest from its saved state.
	Resume(ctx context.Context, uuid string) error
	// GetState reports a guest's power state as it is now (the driver
	// asks the hypervisor; it does not remember). ErrNotFound when the
	// host has no such guest.
	GetState(ctx context.Context, uuid string) (Info, error)
	// List reports every guest this host has, running or not. After an
	// agent restart it is how running guests are found again.
	List(ctx context.Context) ([]Info, error)
	// ConsoleLog returns the tail of the guest's serial console, at most
	// maxBytes (0: all the driver keeps).
	ConsoleLog(ctx context.Context, uuid string, maxBytes int) ([]byte, error)
	// Capacity reports the host's resources for the scheduler.
	Capacity(ctx context.Context) (Capacity, error)

	// Snapshot writes a standalone qcow2 image (no backing file) of the
	// guest's root disk to dst, as of one instant: a running guest's
	// vCPUs are stopped for the copy, so the image is crash-consistent,
	// as Nova's libvirt snapshot without quiescing is. The guest returns
	// to the power state it had.
	Snapshot(ctx context.Context, uuid, dst string) error
	// Resize gives a guest new vCPUs, memory and a root disk at least
	// to.RootBytes large (disks never shrink), as Nova's same-host
	// resize: the guest is shut down (cleanly within to.ShutdownTimeout),
	// its root disk and spec are kept for RevertResize, and it is started
	// again if it was running. On failure the guest is as it was.
	Resize(ctx context.Context, uuid string, to Resize) error
	// ConfirmResize drops what Resize kept for a revert. Without a
	// pending resize it does nothing.
	ConfirmResize(ctx context.Context, uuid string) error
	// RevertResize stops the guest, puts back the root disk and spec
	// Resize kept, and starts it again if it was running. Without a
	// pending resize it does nothing.
	RevertResize(ctx context.Context, uuid string) error
	// Rescue shuts the guest down (cleanly within timeout) and boots it
	// from a fresh disk made from image, with its own disks attached
	// after it, so a user can repair a guest that no longer boots.
	Rescue(ctx context.Context, uuid string, image *Image, timeout time.Duration) error
	// Unrescue stops the rescue boot, deletes the rescue disk and boots
	// the guest from its own disks. A guest not rescued is left alone.
	Unrescue(ctx context.Context, uuid string) error
	// AttachInterface adds a NIC, hot-plugged into a running or paused
	// guest, and keeps it in the saved spec so that every later boot has
	// it. Attaching a NIC the guest has is a no-op.
	AttachInterface(ctx context.Context, uuid string, nic NIC) error
	// DetachInterface removes the NIC on tap tapName: a running guest is
	// asked to release the device and the call waits until it has. A NIC
	// the guest does not have is not an error.
	DetachInterface(ctx context.Context, uuid, tapName string) error
	// InjectNMI sends the guest a non-maskable interrupt, which a guest
	// configured for it answers with a kernel crash dump (Nova's
	// trigger_crash_dump). The guest must have a running process.
	InjectNMI(ctx context.Context, uuid string) error
	// AttachVolume adds disk (whose Volume is set) to the guest: hot-plugged
	// into a running or paused guest, and kept in the saved spec so that
	// every later boot has it; a shut-off guest only has its spec changed.
	// Attaching a volume the guest already has completes whatever an
	// interrupted attach left undone, and is otherwise a no-op.
	AttachVolume(ctx context.Context, uuid string, disk Disk) error
	// DetachVolume removes the volume's disk: a running guest is asked to
	// release the device and the call waits until it has, then the
	// connection to the storage host is closed and the spec saved. A
	// volume the guest does not have is not an error.
	DetachVolume(ctx context.Context, uuid, volumeID string) error

	// Close stops the driver's own background work when the agent stops.
	// Guests keep running: a new driver re-adopts them.
	Close() error
}

// Errors the agent maps onto instance faults and API status codes.
var (
	// ErrNotFound: the host has no guest with that UUID.
	ErrNotFound = errors.New("guest not found")
	// ErrExists: Spawn of a guest that is already running.
	ErrExists = errors.New("guest already exists")
	// ErrInvalidState: the action makes no sense in the guest's current
	// power state (pause a shut-off guest, resume one never suspended).
	ErrInvalidState = errors.New("invalid guest state for this action")
)

// StateError carries the state that made an action invalid; it matches
// ErrInvalidState with errors.Is.
type StateError struct {
	Op    string
	State PowerState
}

// Error names the action and the state that forbade it.
func (e *StateError) Error() string {
	return fmt.Sprintf("%s: guest is %s", e.Op, e.State)
}

// Is makes errors.Is(err, ErrInvalidState) true.
func (e *StateError) Is(target error) bool { return target == ErrInvalidState }

// PowerState is a guest's power state, with Nova's numeric values
// (nova/compute/power_state.py) so that reports map onto the API's
// OS-EXT-STS:power_state unchanged.
type PowerState int

// Nova's power states.
const (
	NoState   PowerState = 0
	Running   PowerState = 1
	Paused    PowerState = 3
	Shutdown  PowerState = 4
	Crashed   PowerState = 6
	Suspended PowerState = 7
)

// String is the state in the words of Nova's power_state names.
func (s PowerState) String() string {
	switch s {
	case NoState:
		return "pending"
	case Running:
		return "running"
	case Paused:
		return "paused"
	case Shutdown:
		return "shutdown"
	case Crashed:
		return "crashed"
	case Suspended:
		return "suspended"
	}
	return fmt.Sprintf("power-state-%d", int(s))
}

// RebootKind is Nova's reboot type.
type RebootKind string

// Reboot kinds, spelled as Nova's API spells them.
const (
	RebootSoft RebootKind = "SOFT"
	RebootHard RebootKind = "HARD"
)

// Spec is everything a driver needs to build one guest. It is saved by
// the driver so that PowerOn, a hard reboot and re-adoption after an agent
// restart can rebuild the same guest without asking anyone.
type Spec struct {
	// UUID is the instance UUID; it names every file of the guest.
	UUID string `json:"uuid"`
	// Name is the hypervisor-side name (Nova's instance-0000000a).
	Name      string `json:"name"`
	VCPUs     int    `json:"vcpus"`
	MemoryMiB int    `json:"memory_mib"`
	// Disks in boot order: the first one is the root disk.
	Disks []Disk `json:"disks"`
	// NICs are attached in order (eth0, eth1, ...).
	NICs []NIC `json:"nics,omitempty"`
	// ConfigDrive, when set, is attached as a read-only ISO 9660 disk
	// labelled config-2.
	ConfigDrive *ConfigDrive `json:"config_drive,omitempty"`
	// Boot, when set, starts the guest's kernel directly instead of the
	// root disk's boot loader.
	Boot *DirectBoot `json:"boot,omitempty"`
}

// DirectBoot is a kernel started by the hypervisor itself, as Nova does
// for an image with kernel_id and ramdisk_id properties (AMI-style
// images). Besides running guests whose disks have no boot loader, it
// is much faster under emulation: the firmware and boot loader are
// skipped, and an uncompressed kernel with a PVH entry point skips its
// own decompression too (seconds of emulated CPU under TCG).
type DirectBoot struct {
	Kernel Image `json:"kernel"`
	// Ramdisk is the initramfs; nil boots the kernel without one.
	Ramdisk *Image `json:"ramdisk,omitempty"`
	// Cmdline is the kernel command line (the image's os_command_line).
	Cmdline string `json:"cmdline,omitempty"`
}

// Disk is one block device of a guest.
type Disk struct {
	// Name is unique within the guest ("root", "ephemeral0") and names
	// the disk's file.
	Name string `json:"name"`
	// Image is the base image of a copy-on-write disk; nil for a blank
	// disk.
	Image *Image `json:"image,omitempty"`
	// SizeBytes is the disk's virtual size; a disk from an image larger
	// than this keeps the image's size. Zero keeps the image's size.
	SizeBytes int64 `json:"size_bytes,omitempty"`
	// Path, instead of Image, attaches an existing file or block device
	// as it is (a volume); the driver never deletes it.
	Path     string `json:"path,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Volume, instead of Image or Path, is a block storage volume reached
	// over the network (NBD with TLS-PSK from the storage host's
	// qemu-storage-daemon). The driver never deletes it.
	Volume *VolumeConn `json:"volume,omitempty"`
	// Bus is the disk's bus: "virtio" (the default, virtio-blk) or "scsi"
	// (a virtio-scsi controller), as an image's hw_disk_bus asks.
	Bus string `json:"bus,omitempty"`
}

// VolumeConn is how a guest reaches one volume: Cinder's connection_info
// of driver_volume_type "nbd", as the volume service's
// os-initialize_connection answers it for this host.
type VolumeConn struct {
	// VolumeID is the volume's UUID. It is the disk's serial, so the guest
	// sees /dev/disk/by-id/virtio-<first 20 characters> as on Nova.
	VolumeID string `json:"volume_id"`
	// Host and Port are the storage host's NBD server.
	Host string `json:"host"`
	Port int    `json:"port"`
	// Export is the NBD export's name; it carries a random part, so it
	// cannot be guessed from the volume id.
	Export string `json:"export"`
	// PSKIdentity and PSKKey (hex) are the TLS pre-shared key of this
	// attachment, as Cinder's iSCSI connection_info carries CHAP secrets.
	PSKIdentity string `json:"tls_psk_identity"`
	PSKKey      string `json:"tls_psk_key"`
	// ReadOnly attaches the volume read-only (access_mode "ro").
	ReadOnly bool `json:"read_only,omitempty"`
	// Discard passes the guest's discards through to the volume.
	Discard bool `json:"discard,omitempty"`
}

// Validate checks a connection before its fields become QEMU options.
func (c *VolumeConn) Validate() error {
	switch {
	case !validUUID(c.VolumeID):
		return fmt.Errorf("volume connection: invalid volume id %q", c.VolumeID)
	case c.Host == "" || strings.ContainsAny(c.Host, ",= \x00\n/"):
		return fmt.Errorf("volume %s: invalid NBD host %q", c.VolumeID, c.Host)
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("volume %s: invalid NBD port %d", c.VolumeID, c.Port)
	case c.Export == "" || len(c.Export) > 4096 || strings.ContainsAny(c.Export, "\x00\n"):
		return fmt.Errorf("volume %s: invalid NBD export name", c.VolumeID)
	case !validPSKIdentity(c.PSKIdentity):
		return fmt.Errorf("volume %s: invalid TLS-PSK identity %q", c.VolumeID, c.PSKIdentity)
	case !validHexKey(c.PSKKey):
		return fmt.Errorf("volume %s: TLS-PSK key must be 32 to 128 hex digits", c.VolumeID)
	}
	return nil
}

// validPSKIdentity allows what can stand in a keys.psk line
// ("identity:key"): no colon, no whitespace, nothing to escape.
func validPSKIdentity(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func validHexKey(s string) bool {
	if len(s) < 32 || len(s) > 128 || len(s)%2 != 0 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// Image identifies a base image in the host's image cache.
type Image struct {
	// ID is the image service's id, for logs.
	ID string `json:"id"`
	// Path is where the agent has the image's bytes (a download); the
	// driver copies it into its cache, verifying Checksum.
	Path string `json:"path"`
	// Checksum is the hex digest of the image's bytes under Algorithm
	// ("sha256", "sha512" or "md5": Glance's os_hash_value or checksum).
	// It also names the cached base file, so a checksum is required.
	Checksum  string `json:"checksum"`
	Algorithm string `json:"algorithm"`
}

// NIC is a virtio network interface on a tap device that the network agent
// has already created and plugged.
type NIC struct {
	TapName string `json:"tap_name"`
	MAC     string `json:"mac"`
}

// Resize is the target of a resize: the new flavor's vCPUs, memory and
// root disk size.
type Resize struct {
	VCPUs     int `json:"vcpus"`
	MemoryMiB int `json:"memory_mib"`
	// RootBytes is the new root disk's virtual size; a smaller value
	// keeps the disk as it is.
	RootBytes int64 `json:"root_bytes"`
	// ShutdownTimeout bounds the clean shutdown before the change; zero
	// forces it at once.
	ShutdownTimeout time.Duration `json:"shutdown_timeout"`
}

// Validate rejects resize targets no driver can build.
func (r Resize) Validate() error {
	if r.VCPUs < 1 || r.VCPUs > 256 {
		return fmt.Errorf("resize: vcpus %d out of range", r.VCPUs)
	}
	if r.MemoryMiB < 16 {
		return fmt.Errorf("resize: memory %d MiB too small", r.MemoryMiB)
	}
	return nil
}

// ConfigDrive is the content of an OpenStack config drive: paths inside the
// ISO ("openstack/latest/meta_data.json", "openstack/latest/user_data",
// "openstack/latest/network_data.json", "ec2/latest/meta-data.json") to
// their bytes.
type ConfigDrive struct {
	Files map[string][]byte `json:"files"`
}

// Info is a guest as the driver sees it now.
type Info struct {
	UUID  string     `json:"uuid"`
	Name  string     `json:"name"`
	State PowerState `json:"state"`
	// PID is the guest's hypervisor process, 0 when it has none.
	PID       int `json:"pid,omitempty"`
	VCPUs     int `json:"vcpus"`
	MemoryMiB int `json:"memory_mib"`
	// VNC is host:port of the guest's VNC server for the console proxy,
	// empty when the guest is not running.
	VNC string `json:"vnc,omitempty"`
	// Serial is host:port of the guest's serial console as a raw TCP
	// stream, for the serial console proxy; empty when not running. The
	// console log keeps recording what the guest writes either way.
	Serial string `json:"serial,omitempty"`
	// ConsoleLog is the path of the serial console log on the host.
	ConsoleLog string `json:"console_log,omitempty"`
	// Volumes are the ids of the block storage volumes the guest really
	// has: for a running guest, those of its saved spec that the
	// hypervisor has connected; for a guest without a process, those its
	// next boot connects. The compute API settles an attach or detach
	// whose report was lost from it, so a volume is listed only when the
	// driver has checked it. Nil when State is NoState: the hypervisor did
	// not answer, and nothing can be said.
	Volumes []string `json:"volumes,omitempty"`
}

// Capacity is what a host offers the scheduler, as Nova's
// get_available_resource reports it.
type Capacity struct {
	VCPUs     int   `json:"vcpus"`
	MemoryMiB int64 `json:"memory_mib"`
	DiskGiB   int64 `json:"disk_gib"`
	// Used figures are what the driver's guests take now (running or
	// not, as Nova counts them).
	VCPUsUsed     int   `json:"vcpus_used"`
	MemoryMiBUsed int64 `json:"memory_mib_used"`
	DiskGiBUsed   int64 `json:"disk_gib_used"`
	// HypervisorType is "QEMU" (Nova reports QEMU for both kvm and
	// qemu virt types) or "fake"; VirtType is "kvm" or "qemu" (TCG).
	HypervisorType    string `json:"hypervisor_type"`
	HypervisorVersion int    `json:"hypervisor_version"`
	VirtType          string `json:"virt_type"`
}

// Validate rejects specs no driver can build, so that both drivers fail
// the same way on bad input.
func (s *Spec) Validate() error {
	if !validUUID(s.UUID) {
		return fmt.Errorf("invalid instance uuid %q", s.UUID)
	}
	if s.VCPUs < 1 || s.VCPUs > 256 {
		return fmt.Errorf("instance %s: vcpus %d out of range", s.UUID, s.VCPUs)
	}
	if s.MemoryMiB < 16 {
		return fmt.Errorf("instance %s: memory %d MiB too small", s.UUID, s.MemoryMiB)
	}
	if len(s.Disks) == 0 {
		return fmt.Errorf("instance %s: no disks", s.UUID)
	}
	seen := map[string]bool{}
	for _, d := range s.Disks {
		if !validName(d.Name) || seen[d.Name] {
			return fmt.Errorf("instance %s: invalid or duplicate disk name %q", s.UUID, d.Name)
		}
		seen[d.Name] = true
		if d.Image != nil && d.Path != "" {
			return fmt.Errorf("instance %s: disk %s has both an image and a path", s.UUID, d.Name)
		}
		if d.Volume != nil {
			if d.Image != nil || d.Path != "" {
				return fmt.Errorf("instance %s: disk %s is a volume and has an image or a path", s.UUID, d.Name)
			}
			if err := d.Volume.Validate(); err != nil {
				return fmt.Errorf("instance %s: disk %s: %w", s.UUID, d.Name, err)
			}
		}
		if d.Bus != "" && d.Bus != "virtio" && d.Bus != "scsi" {
			return fmt.Errorf("instance %s: disk %s: unknown bus %q", s.UUID, d.Name, d.Bus)
		}
		if d.Image == nil && d.Path == "" && d.Volume == nil && d.SizeBytes <= 0 {
			return fmt.Errorf("instance %s: blank disk %s needs a size", s.UUID, d.Name)
		}
		if d.Image != nil && (d.Image.Checksum == "" || d.Image.Path == "") {
			return fmt.Errorf("instance %s: disk %s: image needs a path and a checksum", s.UUID, d.Name)
		}
	}
	for _, n := range s.NICs {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("instance %s: %w", s.UUID, err)
		}
	}
	if b := s.Boot; b != nil {
		if b.Kernel.Checksum == "" || b.Kernel.Path == "" || (b.Ramdisk != nil && (b.Ramdisk.Checksum == "" || b.Ramdisk.Path == "")) {
			return fmt.Errorf("instance %s: direct boot: kernel and ramdisk need a path and a checksum", s.UUID)
		}
		if strings.ContainsAny(b.Cmdline, "\x00\n") {
			return fmt.Errorf("instance %s: direct boot: kernel command line has a NUL or newline", s.UUID)
		}
	}
	return nil
}

// Validate checks a NIC before its tap name and MAC become QEMU
// arguments (at boot or in a hot-plug).
func (n NIC) Validate() error {
	if n.TapName == "" || len(n.TapName) > 15 || !validName(n.TapName) {
		return fmt.Errorf("invalid tap name %q", n.TapName)
	}
	if !validMAC(n.MAC) {
		return fmt.Errorf("invalid mac %q", n.MAC)
	}
	return nil
}

// validUUID accepts the canonical 36-character form only, because the UUID
// becomes a file name and a QEMU argument.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func validMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i, c := range s {
		if i%3 == 2 {
			if c != ':' {
				return false
			}
		} else if !isHex(c) {
			return false
		}
	}
	return true
}

// validName keeps names safe inside file names and QEMU's comma-separated
// option syntax.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return s != "." && s != ".."
}

func isHex(c rune) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
