// Package qemu is the hypervisor driver that runs each guest as its own
// qemu-system-x86_64 process, without libvirt, and controls it over QMP.
//
// Files, per guest (the UUID names them all):
//
//	StateDir/instances/<uuid>/instance.json   the spec, VNC display, disks
//	StateDir/instances/<uuid>/disk.<name>.qcow2  overlays and blank disks
//	StateDir/instances/<uuid>/config.iso      the config drive
//	StateDir/instances/<uuid>/console.log     serial console (bounded)
//	StateDir/instances/<uuid>/suspend.state   saved memory while suspended
//	StateDir/instances/<uuid>/qemu.log        QEMU's own messages (-D)
//	StateDir/_base/<algo>-<checksum>          verified base images
//	RunDir/<uuid>.pid                          pidfile
//	RunDir/<uuid>.qmp, RunDir/<uuid>.qms       QMP sockets: actions, status
//	RunDir/<uuid>/psk-<id8>/keys.psk          TLS-PSK key of each volume
//
// Volumes are not files here: QEMU reaches them over NBD with TLS-PSK
// (volume_conn.go), and the driver never creates, copies, resizes or
// deletes them.
//
// QEMU daemonizes, so guests outlive the agent. The driver keeps no state
// that matters in memory: GetState and List read the instance files, the
// pidfile (checking /proc that the pid is still this guest's QEMU) and
// QMP, so a new Driver on the same directories re-adopts every running
// guest, and a guest whose process died is reported shut down. QEMU locks
// its pidfile, so even two agents racing cannot start one guest twice.
// RunDir should be on a tmpfs (/run) so a host reboot clears stale
// pidfiles; unix socket paths are limited to 108 bytes, so keep it short.
package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu/qmp"
	"golang.org/x/sys/unix"
)

var _ hypervisor.Driver = (*Driver)(nil)

// Config configures a Driver.
type Config struct {
	// StateDir holds instance files and the base-image cache.
	StateDir string
	// RunDir holds pidfiles and QMP sockets (default /run/nimbus/qemu).
	RunDir string
	// QEMU, QEMUImg and GenISOImage are the programs used (defaults:
	// qemu-system-x86_64, qemu-img, genisoimage, looked up in PATH).
	QEMU, QEMUImg, GenISOImage string
	// VirtType forces "kvm" or "qemu" (TCG), like Nova's virt_type;
	// empty means decide by a boot probe at New.
	VirtType string
	// ProbeKernel is the kernel the acceleration probe boots; empty tries
	// /boot/vmlinuz-$(uname -r) and /boot/vmlinuz. scripts/build-guest-image.sh
	// writes one next to the guest image (nimbus-guest.vmlinuz).
	ProbeKernel string
	// ProbeTimeout bounds the KVM boot probe (default 10s).
	ProbeTimeout time.Duration
	// SoftRebootTimeout bounds the ACPI shutdown of a soft reboot before
	// it turns hard (default 120s, Nova's wait_soft_reboot_seconds).
	SoftRebootTimeout time.Duration
	// ConsoleLogMax bounds each console log (default 1 MiB); older output
	// is dropped, as virtlogd's rotation would.
	ConsoleLogMax int64
	// VNCDisplayBase is the first VNC display (port 5900+n) handed out.
	// The display also numbers the guest's serial console port
	// (serialPortBase+n), so one allocation covers both.
	VNCDisplayBase int
	Logger         *slog.Logger
}

// Driver runs guests as QEMU processes. Create it with New.
type Driver struct {
	cfg         Config
	virtType    string
	qemuVersion int // Nova's encoding: major*1e6 + minor*1e3 + micro
	log         *slog.Logger

	mu     sync.Mutex             // guards locks, qlocks, vnc and bases
	locks  map[string]*sync.Mutex // per guest: one action at a time
	qlocks map[string]*sync.Mutex // per guest: one status query at a time
	vnc    map[string]int         // display handed to each guest, until its record shows it
	bases  map[string]*sync.Mutex // per base image file
	closed chan struct{}
	wg     sync.WaitGroup
}

// New prepares the directories, decides the accelerator (probing unless
// cfg.VirtType forces it) and starts the console log janitor. It does not
// touch running guests: they are found again by List and GetState.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("qemu driver: StateDir is required")
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/run/nimbus/qemu"
	}
	// A unix socket path has at most 107 bytes: RunDir/<uuid>.qmp must fit.
	if abs, err := filepath.Abs(cfg.RunDir); err == nil {
		cfg.RunDir = abs
	}
	if n := len(cfg.RunDir) + 1 + 36 + len(".qmp"); n > 107 {
		return nil, fmt.Errorf("qemu driver: RunDir %q is too long for QMP sockets (%d bytes, limit 107): use a short path such as /run/nimbus/qemu", cfg.RunDir, n)
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	if cfg.QEMUImg == "" {
		cfg.QEMUImg = "qemu-img"
	}
	if cfg.GenISOImage == "" {
		cfg.GenISOImage = "genisoimage"
	}
	for _, p := range []*string{&cfg.QEMU, &cfg.QEMUImg} {
		path, err := exec.LookPath(*p)
		if err != nil {
			return nil, fmt.Errorf("qemu driver: %s not found (install qemu-system-x86 and qemu-utils): %w", *p, err)
		}
		*p = path
	}
	if path, err := exec.LookPath(cfg.GenISOImage); err == nil {
		cfg.GenISOImage = path
	} // else: only config drives fail, with a clear error then
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 10 * time.Second
	}
	if cfg.SoftRebootTimeout <= 0 {
		cfg.SoftRebootTimeout = 120 * time.Second
	}
	if cfg.ConsoleLogMax <= 0 {
		cfg.ConsoleLogMax = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Driver{
		cfg:    cfg,
		log:    cfg.Logger.With("driver", "qemu"),
		locks:  map[string]*sync.Mutex{},
		qlocks: map[string]*sync.Mutex{},
		vnc:    map[string]int{},
		bases:  map[string]*sync.Mutex{},
		closed: make(chan struct{}),
	}
	for _, dir := range []string{d.instancesDir(), d.baseDir(), cfg.RunDir} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("qemu driver: %w", err)
		}
	}
	if v, err := d.readVersion(ctx); err != nil {
		return nil, err
	} else {
		d.qemuVersion = v
	}
	switch cfg.VirtType {
	case VirtKVM, VirtQEMU:
		d.virtType = cfg.VirtType
		d.log.Info("acceleration forced by configuration", "virt_type", d.virtType)
	case "":
		kernel := cfg.ProbeKernel
		if kernel == "" {
			kernel = DefaultProbeKernel()
		}
		vt, kvmErr, err := ChooseAccel(ctx, cfg.QEMU, kernel, cfg.RunDir, cfg.ProbeTimeout, false)
		if err != nil {
			return nil, fmt.Errorf("qemu driver: %w", err)
		}
		d.virtType = vt
		if kvmErr != nil {
			d.log.Warn("KVM cannot run guests here; using TCG (software emulation)", "probe_error", kvmErr)
		} else {
			d.log.Info("KVM boot probe succeeded", "virt_type", vt)
		}
	default:
		return nil, fmt.Errorf("qemu driver: virt_type %q: want kvm or qemu", cfg.VirtType)
	}
	d.wg.Add(1)
	go d.janitor()
	return d, nil
}

// DefaultProbeKernel is the host kernel the acceleration probe boots
// when none is configured (/boot/vmlinuz-$(uname -r), then
// /boot/vmlinuz), or "" when the host has neither (containers, some
// cloud images).
func DefaultProbeKernel() string {
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var b []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		if p := "/boot/vmlinuz-" + string(b); fileExists(p) {
			return p
		}
	}
	if fileExists("/boot/vmlinuz") {
		return "/boot/vmlinuz"
	}
	return ""
}

// VirtType is the accelerator in use: "kvm" or "qemu" (TCG).
func (d *Driver) VirtType() string { return d.virtType }

// Close stops the driver's background work. Guests keep running.
func (d *Driver) Close() error {
	select {
	case <-d.closed:
	default:
		close(d.closed)
	}
	d.wg.Wait()
	return nil
}

var versionRE = regexp.MustCompile(`version (\d+)\.(\d+)\.(\d+)`)

func (d *Driver) readVersion(ctx context.Context) (int, error) {
	out, err := exec.CommandContext(ctx, d.cfg.QEMU, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("qemu driver: %s --version: %w", d.cfg.QEMU, exitErr(err))
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return 0, fmt.Errorf("qemu driver: cannot parse version from %q", out)
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	c, _ := strconv.Atoi(m[3])
	return a*1000000 + b*1000 + c, nil
}

func (d *Driver) instancesDir() string           { return filepath.Join(d.cfg.StateDir, "instances") }
func (d *Driver) baseDir() string                { return filepath.Join(d.cfg.StateDir, "_base") }
func (d *Driver) instanceDir(uuid string) string { return filepath.Join(d.instancesDir(), uuid) }
func (d *Driver) pidFile(uuid string) string     { return filepath.Join(d.cfg.RunDir, uuid+".pid") }
func (d *Driver) qmpSocket(uuid string) string   { return filepath.Join(d.cfg.RunDir, uuid+".qmp") }
func (d *Driver) statusSocket(uuid string) string {
	return filepath.Join(d.cfg.RunDir, uuid+".qms")
}
func (d *Driver) consoleLog(uuid string) string {
	return filepath.Join(d.instanceDir(uuid), "console.log")
}
func (d *Driver) stateFile(uuid string) string {
	return filepath.Join(d.instanceDir(uuid), "suspend.state")
}
func (d *Driver) recordFile(uuid string) string {
	return filepath.Join(d.instanceDir(uuid), "instance.json")
}

// lock serialises actions on one guest within this agent.
func (d *Driver) lock(uuid string) func() { return d.lockIn(d.locks, uuid) }

// lockQuery serialises status queries on one guest: its status monitor
// serves one client at a time.
func (d *Driver) lockQuery(uuid string) func() { return d.lockIn(d.qlocks, uuid) }

func (d *Driver) lockIn(m map[string]*sync.Mutex, uuid string) func() {
	d.mu.Lock()
	mu := m[uuid]
	if mu == nil {
		mu = &sync.Mutex{}
		m[uuid] = mu
	}
	d.mu.Unlock()
	mu.Lock()
	return mu.Unlock
}

func (d *Driver) baseLock(path string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	mu := d.bases[path]
	if mu == nil {
		mu = &sync.Mutex{}
		d.bases[path] = mu
	}
	return mu
}

// record is a guest's instance.json: what is needed to start it again.
type record struct {
	Spec       hypervisor.Spec `json:"spec"`
	Disks      []diskFile      `json:"disks"`
	ConfigISO  string          `json:"config_iso,omitempty"`
	VNCDisplay int             `json:"vnc_display"`
	// Rescue is the rescue disk while the guest is rescued: it boots
	// first and the guest's own disks follow it.
	Rescue *diskFile `json:"rescue,omitempty"`
	// Kernel and Initrd are a direct boot's (Spec.Boot) kernel and
	// ramdisk in the base cache, Cmdline its command line; no Kernel
	// boots the first disk.
	Kernel  string `json:"kernel,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}

// directBoot is the kernel, ramdisk and command line QEMU starts, or
// empty strings to boot from disk. A rescued guest boots the rescue
// disk's own loader: the instance's kernel would mount whichever disk
// came first with a command line written for its own.
func (r *record) directBoot() (kernel, initrd, cmdline string) {
	if r.Rescue != nil {
		return "", "", ""
	}
	return r.Kernel, r.Initrd, r.Cmdline
}

// bootDisks are the disks QEMU gets, in boot order.
func (r *record) bootDisks() []diskFile {
	if r.Rescue == nil {
		return r.Disks
	}
	return append([]diskFile{*r.Rescue}, r.Disks...)
}

func (d *Driver) readRecord(uuid string) (*record, error) {
	b, err := os.ReadFile(d.recordFile(uuid))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("instance %s: %w", uuid, hypervisor.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", uuid, err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("instance %s: corrupt instance.json: %w", uuid, err)
	}
	return &r, nil
}

func (d *Driver) writeRecord(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("instance %s: %w", r.Spec.UUID, err)
	}
	path := d.recordFile(r.Spec.UUID)
	tmp := path + ".tmp"
	// 0600: the spec holds the volumes' TLS pre-shared keys.
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("instance %s: %w", r.Spec.UUID, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("instance %s: %w", r.Spec.UUID, err)
	}
	return nil
}

// revert is a stack of undo steps for a multi-step change; Release disarms
// it once the change has fully succeeded.
type revert struct{ undo []func() }

// Add registers the undo of a step that has succeeded.
func (r *revert) Add(f func()) { r.undo = append(r.undo, f) }

// Fail runs the undo steps, newest first; after Release it does nothing.
func (r *revert) Fail() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		r.undo[i]()
	}
}

// Release keeps everything done so far.
func (r *revert) Release() { r.undo = nil }

// Spawn implements hypervisor.Driver.
func (d *Driver) Spawn(ctx context.Context, spec hypervisor.Spec) (hypervisor.Info, error) {
	if err := spec.Validate(); err != nil {
		return hypervisor.Info{}, fmt.Errorf("spawn: %w", err)
	}
	if spec.Name == "" {
		spec.Name = spec.UUID
	}
	defer d.lock(spec.UUID)()
	if pid := d.livePID(spec.UUID); pid > 0 {
		info, _ := d.getState(ctx, spec.UUID)
		return info, fmt.Errorf("spawn %s: pid %d: %w", spec.UUID, pid, hypervisor.ErrExists)
	}
	rv := &revert{}
	defer rv.Fail()

	dir := d.instanceDir(spec.UUID)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return hypervisor.Info{}, fmt.Errorf("spawn %s: %w", spec.UUID, err)
		}
		rv.Add(func() { os.RemoveAll(dir) })
	}
	rec := &record{Spec: spec}
	for _, disk := range spec.Disks {
		df := diskFile{Name: disk.Name, ReadOnly: disk.ReadOnly, Bus: disk.Bus}
		switch {
		case disk.Volume != nil:
			// Reached over the network when QEMU starts; nothing to make.
			df = volumeDisk(disk)
		case disk.Path != "":
			info, err := d.qemuImgInfo(ctx, disk.Path)
			if err != nil {
				return hypervisor.Info{}, fmt.Errorf("spawn %s: disk %s: %w", spec.UUID, disk.Name, err)
			}
			df.Path, df.Format = disk.Path, info.Format
		default:
			df.Path, df.Format, df.Owned = filepath.Join(dir, "disk."+disk.Name+".qcow2"), "qcow2", true
			if fileExists(df.Path) {
				break // a retried build keeps what the first attempt made
			}
			if disk.Image != nil {
				base, err := d.ensureBase(disk.Image)
				if err != nil {
					return hypervisor.Info{}, fmt.Errorf("spawn %s: %w", spec.UUID, err)
				}
				if err := d.createOverlay(ctx, base, df.Path, disk.SizeBytes); err != nil {
					return hypervisor.Info{}, fmt.Errorf("spawn %s: %w", spec.UUID, err)
				}
			} else if err := d.createBlank(ctx, df.Path, disk.SizeBytes); err != nil {
				return hypervisor.Info{}, fmt.Errorf("spawn %s: %w", spec.UUID, err)
			}
			p := df.Path
			rv.Add(func() { os.Remove(p) })
		}
		rec.Disks = append(rec.Disks, df)
	}
	if b := spec.Boot; b != nil {
		var err error
		if rec.Kernel, err = d.ensureBase(&b.Kernel); err != nil {
			return hypervisor.Info{}, fmt.Errorf("spawn %s: kernel: %w", spec.UUID, err)
		}
		if b.Ramdisk != nil {
			if rec.Initrd, err = d.ensureBase(b.Ramdisk); err != nil {
				return hypervisor.Info{}, fmt.Errorf("spawn %s: ramdisk: %w", spec.UUID, err)
			}
		}
		rec.Cmdline = b.Cmdline
	}
	if spec.ConfigDrive != nil {
		rec.ConfigISO = filepath.Join(dir, "config.iso")
		if err := d.buildConfigDrive(ctx, spec.ConfigDrive, rec.ConfigISO); err != nil {
			return hypervisor.Info{}, fmt.Errorf("spawn %s: %w", spec.UUID, err)
		}
	}
	display, err := d.allocVNC(spec.UUID)
	if err != nil {
		return hypervisor.Info{}, fmt.Errorf("spawn %s: %w", spec.UUID, err)
	}
	rec.VNCDisplay = display
	if err := d.writeRecord(rec); err != nil {
		return hypervisor.Info{}, fmt.Errorf("spawn: %w", err)
	}
	rv.Add(func() { os.Remove(d.recordFile(spec.UUID)) })
	rv.Add(func() { os.RemoveAll(d.guestRunDir(spec.UUID)) })
	if err := d.start(ctx, rec, ""); err != nil {
		return hypervisor.Info{}, fmt.Errorf("spawn %s: %w", spec.UUID, err)
	}
	rv.Release()
	return d.getState(ctx, spec.UUID)
}

// start runs QEMU for rec (restoring incoming, a saved state, if set) and
// waits until its QMP answers. On failure nothing is left running. A VNC
// display taken between the check and QEMU's bind (by another guest or
// any other program) is retried on the next free display.
func (d *Driver) start(ctx context.Context, rec *record, incoming string) error {
	for attempt := 0; ; attempt++ {
		err := d.startOnce(ctx, rec, incoming)
		if err == nil || attempt == 4 || !errors.Is(err, errVNCInUse) {
			return err
		}
		d.log.Warn("VNC display taken; retrying on another", "uuid", rec.Spec.UUID, "display", rec.VNCDisplay)
	}
}

// errVNCInUse marks a start that failed because the VNC port (or the
// serial port numbered by the same display) was taken.
var errVNCInUse = errors.New("vnc display in use")

func (d *Driver) startOnce(ctx context.Context, rec *record, incoming string) error {
	uuid := rec.Spec.UUID
	if !consolePortsFree(rec.VNCDisplay) {
		display, err := d.allocVNC(uuid)
		if err != nil {
			return err
		}
		rec.VNCDisplay = display
		if err := d.writeRecord(rec); err != nil {
			return err
		}
	}
	if err := d.waitPIDFileFree(ctx, uuid, 10*time.Second); err != nil {
		return err
	}
	os.Remove(d.qmpSocket(uuid))
	os.Remove(d.statusSocket(uuid))
	if err := syncVolumeKeys(d.guestRunDir(uuid), rec.bootDisks()); err != nil {
		return err
	}
	qemuLog := filepath.Join(d.instanceDir(uuid), "qemu.log")
	kernel, initrd, cmdline := rec.directBoot()
	args := qemuArgs(launch{
		Kernel: kernel, Initrd: initrd, Cmdline: cmdline,
		UUID: uuid, Name: rec.Spec.Name, VCPUs: rec.Spec.VCPUs, MemoryMiB: rec.Spec.MemoryMiB,
		VirtType: d.virtType, Disks: rec.bootDisks(), ConfigISO: rec.ConfigISO, NICs: rec.Spec.NICs,
		PIDFile: d.pidFile(uuid), QMPSocket: d.qmpSocket(uuid), StatusSocket: d.statusSocket(uuid),
		ConsoleLog: d.consoleLog(uuid), QEMULog: qemuLog,
		VNCDisplay: rec.VNCDisplay, SerialPort: serialPort(rec.VNCDisplay), Incoming: incoming,
		PSKDir: d.guestRunDir(uuid),
	})
	// Start-up errors go to a file, not a pipe: with -D the daemonized
	// QEMU keeps its stderr, and a pipe would keep Run waiting for it.
	errPath := filepath.Join(d.instanceDir(uuid), "qemu-start.log")
	errFile, err := os.Create(errPath)
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	defer errFile.Close()
	cmd := exec.CommandContext(ctx, d.cfg.QEMU, args...)
	cmd.Stdout, cmd.Stderr = errFile, errFile
	// Its own session, so signals to the agent's process group (^C,
	// systemd stopping the agent) never reach guests.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	d.log.Info("starting guest", "uuid", uuid, "virt_type", d.virtType, "vnc_display", rec.VNCDisplay)
	if err := cmd.Run(); err != nil {
		// -daemonize: the parent exits non-zero when the guest failed to
		// start; a child that did start is killed via the pidfile. QEMU
		// reports errors on stderr or, with -D, in its log.
		d.killPID(uuid)
		msg := strings.TrimSpace(tail(errPath, 2048) + "\n" + tail(qemuLog, 2048))
		if strings.Contains(msg, "Failed to find an available port") || strings.Contains(msg, "Address already in use") {
			return fmt.Errorf("qemu: %w: %s", errVNCInUse, msg)
		}
		return fmt.Errorf("qemu: %w: %s", err, msg)
	}
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	mon, err := d.dialRetry(mctx, uuid)
	if err != nil {
		d.killPID(uuid)
		return err
	}
	mon.Close()
	return nil
}

// tail returns the last n bytes of a file, or "" if it cannot be read.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// dialRetry connects to a just-started guest's QMP socket.
func (d *Driver) dialRetry(ctx context.Context, uuid string) (*qmp.Monitor, error) {
	for {
		mon, err := qmp.Dial(ctx, d.qmpSocket(uuid))
		if err == nil {
			return mon, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp %s: %w", uuid, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// monitor connects to a running guest's QMP. QEMU serves one client per
// monitor; actions on one guest are serialised by lock, so the agent never
// competes with itself.
func (d *Driver) monitor(ctx context.Context, uuid string) (*qmp.Monitor, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mon, err := qmp.Dial(cctx, d.qmpSocket(uuid))
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", uuid, err)
	}
	return mon, nil
}

// livePID is the pid of uuid's QEMU when that process is alive, else 0.
// The pid from the pidfile must still be a QEMU started with this guest's
// -uuid, so a recycled pid is never mistaken for the guest.
func (d *Driver) livePID(uuid string) int {
	b, err := os.ReadFile(d.pidFile(uuid))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if !pidIsGuest(pid, uuid) {
		return 0
	}
	return pid
}

func pidIsGuest(pid int, uuid string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: a zombie is dead
	// (a daemonized QEMU is reaped by init, which may be slow to do it).
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte("\x00-uuid\x00"+uuid+"\x00"))
}

// waitPIDFileFree waits until no process holds the lock on uuid's
// pidfile. A killed QEMU is multi-threaded: its main thread can look dead
// (a zombie) while other threads still exit holding the pidfile's lock,
// and a new QEMU started then fails with "Cannot lock pid file".
func (d *Driver) waitPIDFileFree(ctx context.Context, uuid string, timeout time.Duration) error {
	f, err := os.OpenFile(d.pidFile(uuid), os.O_RDWR, 0)
	if err != nil {
		return nil // no pidfile, nothing holds it
	}
	defer f.Close()
	deadline := time.Now().Add(timeout)
	for {
		lk := unix.Flock_t{Type: unix.F_WRLCK}
		if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil || lk.Type == unix.F_UNLCK {
			return nil // free (or the kernel cannot say: QEMU will)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("qemu: the previous QEMU of %s still holds its pidfile after %s", uuid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killPID kills uuid's QEMU by its pidfile and waits for it to go.
func (d *Driver) killPID(uuid string) {
	pid := d.livePID(uuid)
	if pid == 0 {
		return
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitGone(context.Background(), pid, uuid, 10*time.Second)
}

// waitGone waits until pid is no longer uuid's live QEMU.
func waitGone(ctx context.Context, pid int, uuid string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for pidIsGuest(pid, uuid) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// stopProcess ends a guest's process: QMP quit (QEMU flushes its disks),
// then SIGKILL if QEMU does not go within a few seconds.
func (d *Driver) stopProcess(ctx context.Context, uuid string) error {
	pid := d.livePID(uuid)
	if pid == 0 {
		return nil
	}
	if mon, err := d.monitor(ctx, uuid); err == nil {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		mon.Quit(qctx)
		cancel()
		mon.Close()
		if waitGone(ctx, pid, uuid, 5*time.Second) {
			return nil
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("instance %s: kill %d: %w", uuid, pid, err)
	}
	if !waitGone(ctx, pid, uuid, 10*time.Second) {
		return fmt.Errorf("instance %s: pid %d did not exit", uuid, pid)
	}
	return nil
}

// Destroy implements hypervisor.Driver.
func (d *Driver) Destroy(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	if err := d.stopProcess(ctx, uuid); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	os.Remove(d.pidFile(uuid))
	os.Remove(d.qmpSocket(uuid))
	os.Remove(d.statusSocket(uuid))
	// The volumes' key files go; the volumes themselves are the storage
	// host's and stay, as do volumes attached by path.
	if err := os.RemoveAll(d.guestRunDir(uuid)); err != nil {
		return fmt.Errorf("destroy %s: %w", uuid, err)
	}
	// Only the driver's own disks go: volumes attached by path stay.
	if err := os.RemoveAll(d.instanceDir(uuid)); err != nil {
		return fmt.Errorf("destroy %s: %w", uuid, err)
	}
	d.mu.Lock()
	delete(d.locks, uuid)
	delete(d.qlocks, uuid)
	delete(d.vnc, uuid)
	d.mu.Unlock()
	return nil
}

// Reboot implements hypervisor.Driver.
func (d *Driver) Reboot(ctx context.Context, uuid string, kind hypervisor.RebootKind) error {
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	if kind == hypervisor.RebootSoft {
		info, err := d.getState(ctx, uuid)
		if err != nil {
			return fmt.Errorf("reboot: %w", err)
		}
		if info.State == hypervisor.Running {
			if clean, err := d.acpiShutdown(ctx, uuid, d.cfg.SoftRebootTimeout); err != nil {
				return fmt.Errorf("reboot %s: %w", uuid, err)
			} else if clean {
				return d.restart(ctx, rec)
			}
			d.log.Warn("soft reboot timed out; rebooting hard", "uuid", uuid, "timeout", d.cfg.SoftRebootTimeout)
		}
	}
	if err := d.stopProcess(ctx, uuid); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return d.restart(ctx, rec)
}

// restart starts a stopped guest from scratch; a saved state is dropped,
// as a reboot discards Nova's managed save.
func (d *Driver) restart(ctx context.Context, rec *record) error {
	os.Remove(d.stateFile(rec.Spec.UUID))
	if err := d.start(ctx, rec, ""); err != nil {
		return fmt.Errorf("start %s: %w", rec.Spec.UUID, err)
	}
	return nil
}

// acpiShutdown presses the power button and waits up to timeout for QEMU
// to exit (the guest powered off). It reports whether it did.
func (d *Driver) acpiShutdown(ctx context.Context, uuid string, timeout time.Duration) (bool, error) {
	pid := d.livePID(uuid)
	if pid == 0 {
		return true, nil
	}
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		return false, err
	}
	defer mon.Close()
	st, err := mon.QueryStatus(ctx)
	if err != nil {
		return false, err
	}
	if st.Status == "paused" {
		// A paused guest cannot see the button.
		if err := mon.Cont(ctx); err != nil {
			return false, err
		}
	}
	if err := mon.SystemPowerdown(ctx); err != nil {
		return false, err
	}
	// The guest may miss a press while it is still booting (before acpid
	// runs), so press again every few seconds, as an impatient user would.
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	press := time.NewTicker(3 * time.Second)
	defer press.Stop()
	for {
		select {
		case <-mon.Done(): // QEMU exits when the guest powers off
			return waitGone(ctx, pid, uuid, 10*time.Second), nil
		case ev, ok := <-mon.Events():
			if ok && ev.Name == "SHUTDOWN" {
				d.log.Info("guest shut down", "uuid", uuid, "data", string(ev.Data))
			}
		case <-press.C:
			mon.SystemPowerdown(ctx)
		case <-deadline.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// PowerOff implements hypervisor.Driver.
func (d *Driver) PowerOff(ctx context.Context, uuid string, timeout time.Duration) error {
	defer d.lock(uuid)()
	if _, err := d.readRecord(uuid); err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	if timeout > 0 {
		clean, err := d.acpiShutdown(ctx, uuid, timeout)
		if err != nil {
			d.log.Warn("clean shutdown failed; forcing", "uuid", uuid, "err", err)
		}
		if clean {
			return nil
		}
	}
	if err := d.stopProcess(ctx, uuid); err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	return nil
}

// PowerOn implements hypervisor.Driver.
func (d *Driver) PowerOn(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("power on: %w", err)
	}
	if d.livePID(uuid) > 0 {
		return nil
	}
	if fileExists(d.stateFile(uuid)) {
		return d.resume(ctx, rec)
	}
	if err := d.start(ctx, rec, ""); err != nil {
		return fmt.Errorf("power on %s: %w", uuid, err)
	}
	return nil
}

// Pause implements hypervisor.Driver.
func (d *Driver) Pause(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	return d.vcpus(ctx, uuid, "pause", false)
}

// Unpause implements hypervisor.Driver.
func (d *Driver) Unpause(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	return d.vcpus(ctx, uuid, "unpause", true)
}

func (d *Driver) vcpus(ctx context.Context, uuid, op string, run bool) error {
	info, err := d.getState(ctx, uuid)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	want, from := hypervisor.Paused, hypervisor.Running
	if run {
		want, from = hypervisor.Running, hypervisor.Paused
	}
	if info.State == want {
		return nil
	}
	if info.State != from {
		return fmt.Errorf("%s %s: %w", op, uuid, &hypervisor.StateError{Op: op, State: info.State})
	}
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer mon.Close()
	if run {
		err = mon.Cont(ctx)
	} else {
		err = mon.Stop(ctx)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, uuid, err)
	}
	return nil
}

// Suspend implements hypervisor.Driver: it stops the vCPUs, migrates the
// guest's state into suspend.state through "exec:cat", then ends QEMU.
// The state file only takes its final name once complete, so a crash
// mid-save leaves a guest that is either still running or cleanly saved.
func (d *Driver) Suspend(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	info, err := d.getState(ctx, uuid)
	if err != nil {
		return fmt.Errorf("suspend: %w", err)
	}
	if info.State == hypervisor.Suspended {
		return nil
	}
	if info.State != hypervisor.Running && info.State != hypervisor.Paused {
		return fmt.Errorf("suspend %s: %w", uuid, &hypervisor.StateError{Op: "suspend", State: info.State})
	}
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		return fmt.Errorf("suspend: %w", err)
	}
	defer mon.Close()
	if err := mon.Stop(ctx); err != nil {
		return fmt.Errorf("suspend %s: %w", uuid, err)
	}
	tmp := d.stateFile(uuid) + ".tmp"
	if err := mon.Migrate(ctx, "exec:cat > "+shellQuote(tmp)); err != nil {
		os.Remove(tmp)
		mon.Cont(ctx)
		return fmt.Errorf("suspend %s: %w", uuid, err)
	}
	for {
		mi, err := mon.QueryMigrate(ctx)
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("suspend %s: %w", uuid, err)
		}
		if mi.Status == "completed" {
			break
		}
		if mi.Status == "failed" || mi.Status == "cancelled" {
			os.Remove(tmp)
			mon.Cont(ctx)
			return fmt.Errorf("suspend %s: saving state %s: %s", uuid, mi.Status, mi.ErrorDesc)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.Rename(tmp, d.stateFile(uuid)); err != nil {
		mon.Cont(ctx)
		return fmt.Errorf("suspend %s: %w", uuid, err)
	}
	mon.Close()
	if err := d.stopProcess(ctx, uuid); err != nil {
		return fmt.Errorf("suspend: %w", err)
	}
	return nil
}

// Resume implements hypervisor.Driver.
func (d *Driver) Resume(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if d.livePID(uuid) > 0 {
		info, _ := d.getState(ctx, uuid)
		if info.State == hypervisor.Running {
			return nil
		}
		return fmt.Errorf("resume %s: %w", uuid, &hypervisor.StateError{Op: "resume", State: info.State})
	}
	if !fileExists(d.stateFile(uuid)) {
		return fmt.Errorf("resume %s: %w", uuid, &hypervisor.StateError{Op: "resume", State: hypervisor.Shutdown})
	}
	return d.resume(ctx, rec)
}

// resume starts QEMU with the saved state as incoming migration, waits
// for it to load, continues the vCPUs and drops the state file.
func (d *Driver) resume(ctx context.Context, rec *record) error {
	uuid := rec.Spec.UUID
	if err := d.start(ctx, rec, d.stateFile(uuid)); err != nil {
		return fmt.Errorf("resume %s: %w", uuid, err)
	}
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		d.killPID(uuid)
		return fmt.Errorf("resume: %w", err)
	}
	defer mon.Close()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for {
		st, err := mon.QueryStatus(lctx)
		if err != nil {
			d.killPID(uuid)
			return fmt.Errorf("resume %s: %w", uuid, err)
		}
		if st.Status == "running" {
			break
		}
		if st.Status == "paused" || st.Status == "postmigrate" || st.Status == "prelaunch" {
			if err := mon.Cont(lctx); err != nil {
				d.killPID(uuid)
				return fmt.Errorf("resume %s: %w", uuid, err)
			}
			break
		}
		if st.Status != "inmigrate" {
			d.killPID(uuid)
			return fmt.Errorf("resume %s: restoring state ended in %q", uuid, st.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Remove(d.stateFile(uuid))
	return nil
}

// GetState implements hypervisor.Driver.
func (d *Driver) GetState(ctx context.Context, uuid string) (hypervisor.Info, error) {
	if !validInstanceName(uuid) {
		return hypervisor.Info{}, fmt.Errorf("instance %q: %w", uuid, hypervisor.ErrNotFound)
	}
	return d.getState(ctx, uuid)
}

func (d *Driver) getState(ctx context.Context, uuid string) (hypervisor.Info, error) {
	rec, err := d.readRecord(uuid)
	if err != nil {
		return hypervisor.Info{}, err
	}
	info := hypervisor.Info{
		UUID: uuid, Name: rec.Spec.Name, VCPUs: rec.Spec.VCPUs, MemoryMiB: rec.Spec.MemoryMiB,
		ConsoleLog: d.consoleLog(uuid), State: hypervisor.Shutdown,
	}
	pid := d.livePID(uuid)
	if pid == 0 {
		if fileExists(d.stateFile(uuid)) {
			info.State = hypervisor.Suspended
		}
		info.Volumes = recordVolumeIDs(rec) // what the next boot connects
		return info, nil
	}
	info.PID = pid
	info.VNC = fmt.Sprintf("127.0.0.1:%d", 5900+rec.VNCDisplay)
	info.Serial = fmt.Sprintf("127.0.0.1:%d", serialPort(rec.VNCDisplay))
	defer d.lockQuery(uuid)()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	mon, err := qmp.Dial(cctx, d.statusSocket(uuid))
	if err != nil {
		// Alive but not answering (starting, or wedged): not a state
		// Nova can act on; power-state sync will look again.
		info.State = hypervisor.NoState
		return info, nil
	}
	defer mon.Close()
	st, err := mon.QueryStatus(cctx)
	if err != nil {
		info.State = hypervisor.NoState
		return info, nil
	}
	info.State = stateFromQMP(st.Status)
	vols, err := liveVolumes(cctx, mon, rec)
	if err != nil {
		// The monitor answered one question and not the next: as wedged
		// as one that answers none.
		d.log.Warn("list the block nodes of a guest", "uuid", uuid, "err", err)
		info.State = hypervisor.NoState
		return info, nil
	}
	info.Volumes = vols
	return info, nil
}

// stateFromQMP maps QEMU's run state to Nova's power state.
func stateFromQMP(status string) hypervisor.PowerState {
	switch status {
	case "running", "debug":
		return hypervisor.Running
	case "paused", "suspended", "postmigrate", "save-vm", "restore-vm", "colo":
		return hypervisor.Paused
	case "shutdown":
		return hypervisor.Shutdown
	case "guest-panicked", "internal-error", "io-error":
		return hypervisor.Crashed
	}
	return hypervisor.NoState // inmigrate, prelaunch, finish-migrate, watchdog
}

// List implements hypervisor.Driver.
func (d *Driver) List(ctx context.Context) ([]hypervisor.Info, error) {
	entries, err := os.ReadDir(d.instancesDir())
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var out []hypervisor.Info
	for _, e := range entries {
		if !e.IsDir() || !validInstanceName(e.Name()) {
			continue
		}
		info, err := d.getState(ctx, e.Name())
		if errors.Is(err, hypervisor.ErrNotFound) {
			continue // a spawn in progress or an interrupted one
		}
		if err != nil {
			return nil, fmt.Errorf("list instances: %w", err)
		}
		out = append(out, info)
	}
	return out, nil
}

func validInstanceName(s string) bool {
	return len(s) == 36 && !strings.ContainsAny(s, "/.")
}

// ConsoleLog implements hypervisor.Driver.
func (d *Driver) ConsoleLog(ctx context.Context, uuid string, maxBytes int) ([]byte, error) {
	if _, err := d.readRecord(uuid); err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	f, err := os.Open(d.consoleLog(uuid))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console log %s: %w", uuid, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("console log %s: %w", uuid, err)
	}
	n := st.Size()
	if maxBytes <= 0 || int64(maxBytes) > d.cfg.ConsoleLogMax {
		maxBytes = int(d.cfg.ConsoleLogMax)
	}
	off := int64(0)
	if n > int64(maxBytes) {
		off = n - int64(maxBytes)
	}
	b := make([]byte, n-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("console log %s: %w", uuid, err)
	}
	return b, nil
}

// janitor keeps console logs bounded. QEMU appends to them (append=on),
// so the driver can shorten a log in place: it keeps the newest half of
// ConsoleLogMax. Output the guest writes during the few microseconds of a
// trim may be lost, which a console log can afford.
func (d *Driver) janitor() {
	defer d.wg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.closed:
			return
		case <-t.C:
		}
		entries, _ := os.ReadDir(d.instancesDir())
		for _, e := range entries {
			if validInstanceName(e.Name()) {
				if err := trimLog(d.consoleLog(e.Name()), d.cfg.ConsoleLogMax); err != nil {
					d.log.Warn("trim console log", "uuid", e.Name(), "err", err)
				}
			}
		}
	}
}

func trimLog(path string, max int64) error {
	st, err := os.Stat(path)
	if err != nil || st.Size() <= max {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	keep := max / 2
	tail := make([]byte, keep)
	if _, err := f.ReadAt(tail, st.Size()-keep); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if i := bytes.IndexByte(tail, '\n'); i >= 0 && i < len(tail)-1 {
		tail = tail[i+1:] // start at a line
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteAt(tail, 0)
	return err
}

// allocVNC picks the lowest display number not recorded for or handed to
// another guest and whose ports (VNC and serial) are free on localhost.
func (d *Driver) allocVNC(uuid string) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	used := map[int]bool{}
	for other, n := range d.vnc {
		if other != uuid {
			used[n] = true
		}
	}
	entries, _ := os.ReadDir(d.instancesDir())
	for _, e := range entries {
		if e.Name() == uuid || !validInstanceName(e.Name()) {
			continue
		}
		if b, err := os.ReadFile(d.recordFile(e.Name())); err == nil {
			var r record
			if json.Unmarshal(b, &r) == nil {
				used[r.VNCDisplay] = true
			}
		}
	}
	for n := d.cfg.VNCDisplayBase; n < d.cfg.VNCDisplayBase+1000 && serialPort(n) < 65536; n++ {
		if !used[n] && consolePortsFree(n) {
			d.vnc[uuid] = n
			return n, nil
		}
	}
	return 0, errors.New("no free VNC display")
}

// serialPortBase numbers guests' serial console TCP ports: display n
// listens on serialPortBase+n. 10000 is the start of Nova's default
// [serial_console] port_range.
const serialPortBase = 10000

// serialPort is the serial console port of the guest on VNC display n.
// Deriving it from the display, rather than allocating it apart, keeps
// the record format and the collision handling of displays unchanged.
func serialPort(display int) int { return serialPortBase + display }

// consolePortsFree reports whether both ports of display are free now.
func consolePortsFree(display int) bool {
	for _, port := range []int{5900 + display, serialPort(display)} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// Capacity implements hypervisor.Driver.
func (d *Driver) Capacity(ctx context.Context) (hypervisor.Capacity, error) {
	c := hypervisor.Capacity{
		VCPUs: runtime.NumCPU(), HypervisorType: "QEMU",
		HypervisorVersion: d.qemuVersion, VirtType: d.virtType,
	}
	mem, err := memTotalMiB()
	if err != nil {
		return c, fmt.Errorf("capacity: %w", err)
	}
	c.MemoryMiB = mem
	var fs syscall.Statfs_t
	if err := syscall.Statfs(d.cfg.StateDir, &fs); err != nil {
		return c, fmt.Errorf("capacity: statfs %s: %w", d.cfg.StateDir, err)
	}
	c.DiskGiB = int64(fs.Blocks) * fs.Bsize >> 30
	entries, _ := os.ReadDir(d.instancesDir())
	var diskBytes int64
	for _, e := range entries {
		if !validInstanceName(e.Name()) {
			continue
		}
		rec, err := d.readRecord(e.Name())
		if err != nil {
			continue
		}
		c.VCPUsUsed += rec.Spec.VCPUs
		c.MemoryMiBUsed += int64(rec.Spec.MemoryMiB)
		for _, disk := range rec.Spec.Disks {
			if disk.Path == "" && disk.Volume == nil { // the driver's own files
				diskBytes += disk.SizeBytes
			}
		}
	}
	c.DiskGiBUsed = (diskBytes + 1<<30 - 1) >> 30
	return c, nil
}

func memTotalMiB() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse MemTotal: %w", err)
			}
			return kb >> 10, nil
		}
	}
	return 0, errors.New("no MemTotal in /proc/meminfo")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
