package qemu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// launch is everything the QEMU command line is built from. Keeping it a
// plain value makes the command line a pure function, golden-tested in
// cmdline_test.go.
type launch struct {
	UUID      string
	Name      string
	VCPUs     int
	MemoryMiB int
	VirtType  string // VirtKVM or VirtQEMU
	Disks     []diskFile
	ConfigISO string // "" for none
	NICs      []hypervisor.NIC
	PIDFile   string
	QMPSocket string
	// StatusSocket is a second QMP monitor for state queries, so that
	// GetState answers while a long action holds the first one.
	StatusSocket string
	ConsoleLog   string
	// QEMULog receives QEMU's own messages (-D): a daemonized QEMU has no
	// stderr, and "why did this guest die" must be answerable.
	QEMULog    string
	VNCDisplay int
	// SerialPort is the localhost TCP port of the serial console, which
	// the serial console proxy connects to.
	SerialPort int
	// Incoming is a saved-state file to restore (resume from suspend).
	Incoming string
	// Kernel, when set, is started directly (-kernel), with Initrd and
	// Cmdline; the disks' boot loader is not used.
	Kernel  string
	Initrd  string
	Cmdline string
	// PSKDir is the guest's own run directory, under which each volume's
	// TLS-PSK key file is (psk-<id8>/keys.psk): QEMU reads the key from
	// there, so it is never on the command line.
	PSKDir string
}

// diskFile is one disk as attached: the file and its format, or the
// network volume.
type diskFile struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Format   string `json:"format"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Owned disks are the driver's (overlays, blank disks) and are
	// deleted with the guest; volumes are not.
	Owned bool `json:"owned"`
	// Volume, instead of Path, is a volume reached over NBD; the driver
	// never creates, copies, resizes or deletes it.
	Volume *hypervisor.VolumeConn `json:"volume,omitempty"`
	// Bus is "scsi" for a disk on the virtio-scsi controller; empty or
	// "virtio" is virtio-blk.
	Bus string `json:"bus,omitempty"`
}

// qemuArgs builds the command line of one guest: a daemonized process with
// a pidfile (which QEMU locks, so a second QEMU for the same guest fails to
// start), QMP on a unix socket, the serial console on a localhost TCP
// port and appended to a file, VNC on localhost, virtio disks and NICs on
// existing taps.
func qemuArgs(l launch) []string {
	accel := "tcg"
	if l.VirtType == VirtKVM {
		accel = "kvm"
	}
	args := []string{
		"-name", "guest=" + optEscape(l.Name) + ",debug-threads=on",
		"-uuid", l.UUID,
		"-machine", "pc,accel=" + accel + ",usb=off,dump-guest-core=off",
	}
	// Like Nova: host-model CPU under KVM, QEMU's default model under TCG.
	if l.VirtType == VirtKVM {
		args = append(args, "-cpu", "host")
	}
	args = append(args,
		"-smp", fmt.Sprintf("%d,sockets=%d,cores=1,threads=1", l.VCPUs, l.VCPUs),
		"-m", strconv.Itoa(l.MemoryMiB),
		"-nodefaults", "-no-user-config",
		"-daemonize", "-pidfile", l.PIDFile, "-D", l.QEMULog,
		"-chardev", "socket,id=qmp,path="+optEscape(l.QMPSocket)+",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		"-chardev", "socket,id=qmp-status,path="+optEscape(l.StatusSocket)+",server=on,wait=off",
		"-mon", "chardev=qmp-status,mode=control",
		// A socket chardev for the serial console proxy; logfile= keeps
		// the console log whether or not anyone is connected (QEMU
		// drops output nobody reads from the socket, never from the log).
		"-chardev", fmt.Sprintf("socket,id=serial0,host=127.0.0.1,port=%d,server=on,wait=off,logfile=%s,logappend=on", l.SerialPort, optEscape(l.ConsoleLog)),
		"-device", "isa-serial,chardev=serial0",
		"-vnc", fmt.Sprintf("127.0.0.1:%d", l.VNCDisplay),
		"-device", "VGA",
		"-rtc", "base=utc",
		"-boot", "strict=on",
		"-msg", "timestamp=on",
	)
	if hasSCSIDisk(l.Disks) {
		args = append(args, "-device", "virtio-scsi-pci,id="+scsiController)
	}
	for i, d := range l.Disks {
		if d.Volume != nil {
			args = append(args, volumeArgs(d, l.PSKDir, i == 0)...)
			continue
		}
		drive := fmt.Sprintf("file=%s,format=%s,if=none,id=drive-%s,cache=writeback,discard=unmap", optEscape(d.Path), d.Format, d.Name)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		args = append(args, "-drive", drive, "-device", diskDeviceArg(d.Bus, "drive-"+d.Name, "disk-"+d.Name, "", i == 0))
	}
	if l.ConfigISO != "" {
		args = append(args,
			"-drive", "file="+optEscape(l.ConfigISO)+",format=raw,if=none,id=drive-config,readonly=on",
			"-device", "virtio-blk-pci,drive=drive-config,id=disk-config")
	}
	for _, n := range l.NICs {
		// romfile= skips the iPXE option ROM: guests boot from disk, and
		// loading the ROM costs boot time under TCG. The ids derive from
		// the tap, not the NIC's position, so a hot-unplug finds the
		// device whatever was attached or detached before it.
		args = append(args,
			"-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", netdevID(n.TapName), n.TapName),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,id=%s,mac=%s,romfile=", netdevID(n.TapName), nicID(n.TapName), strings.ToLower(n.MAC)))
	}
	if l.Kernel != "" {
		// Plain file names: QEMU does not parse these as option lists.
		args = append(args, "-kernel", l.Kernel)
		if l.Initrd != "" {
			args = append(args, "-initrd", l.Initrd)
		}
		args = append(args, "-append", l.Cmdline)
	}
	if l.Incoming != "" {
		args = append(args, "-incoming", "exec:cat "+shellQuote(l.Incoming))
	}
	return args
}

// scsiController is the id of the virtio-scsi controller that disks with
// Bus "scsi" sit on (an image's hw_disk_bus=scsi, hw_scsi_model=virtio-scsi).
const scsiController = "scsi0"

func hasSCSIDisk(disks []diskFile) bool {
	for _, d := range disks {
		if d.Bus == "scsi" {
			return true
		}
	}
	return false
}

// diskDeviceArg is the -device of a disk on its bus; the first disk boots.
func diskDeviceArg(bus, drive, id, serial string, boot bool) string {
	dev := "virtio-blk-pci,"
	if bus == "scsi" {
		dev = "scsi-hd,bus=" + scsiController + ".0,"
	}
	dev += "drive=" + drive + ",id=" + id
	if serial != "" {
		dev += ",serial=" + serial
	}
	if boot {
		dev += ",bootindex=1"
	}
	return dev
}

// netdevID and nicID name a NIC's QEMU backend and device after its tap
// (tap names are unique on the host and valid QEMU ids once prefixed).
func netdevID(tap string) string { return "net-" + tap }
func nicID(tap string) string    { return "nic-" + tap }

// optEscape doubles commas, QEMU's escape inside option values.
func optEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// shellQuote quotes s for /bin/sh, which runs QEMU's exec: migration URIs.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
