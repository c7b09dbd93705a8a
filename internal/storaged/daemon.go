// Package storaged supervises the one qemu-storage-daemon (QSD) of a
// storage host and speaks QMP to it. QSD serves the host's volumes to
// compute hosts over NBD with TLS-PSK; it is a daemon of its own, so it
// keeps serving while the volume agent restarts (as guests outlive the
// compute agent), and the next agent adopts it through its pidfile and
// QMP socket instead of starting a second one.
//
// The package knows block nodes, exports and keys, not volumes: naming
// and the state of record belong to the volume agent.
package storaged

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/atomicfile"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu/qmp"
)

// ErrNotRunning is returned for commands while no daemon is connected.
var ErrNotRunning = errors.New("storage daemon is not running")

// Config describes the daemon of one storage host.
type Config struct {
	// RunDir holds the daemon's QMP socket, pidfile, log and TLS-PSK key
	// file. It must not contain a comma (QEMU's option separator).
	RunDir string
	// NBDAddress and NBDPort are where the NBD server listens.
	NBDAddress string
	NBDPort    int
	// Binary is the qemu-storage-daemon executable (default from PATH).
	Binary string
	Log    *slog.Logger
}

// Daemon is a connection to a running qemu-storage-daemon. Its methods
// are safe for concurrent use.
type Daemon struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	mon     *qmp.Monitor              // guarded by mu; nil while disconnected
	pid     int                       // guarded by mu
	waiters map[chan qmp.Event]string // guarded by mu; event name each waits for
}

// Object ids inside the daemon; fixed, so an adopted daemon is
// recognised by them.
const (
	tlsObjectID = "nimbus-tls"
	monitorID   = "nimbus-qmp"
)

// Open connects to the host's daemon, adopting a running one or starting
// a new one. started says a new process was started, whose exports and
// nodes the caller must add again.
func Open(ctx context.Context, cfg Config) (d *Daemon, started bool, err error) {
	if cfg.RunDir == "" || strings.Contains(cfg.RunDir, ",") {
		return nil, false, fmt.Errorf("storage daemon: run dir %q is empty or has a comma", cfg.RunDir)
	}
	if net.ParseIP(cfg.NBDAddress) == nil {
		return nil, false, fmt.Errorf("storage daemon: NBD address %q is not an IP address", cfg.NBDAddress)
	}
	if cfg.NBDPort < 1 || cfg.NBDPort > 65535 {
		return nil, false, fmt.Errorf("storage daemon: NBD port %d out of range", cfg.NBDPort)
	}
	if cfg.Binary == "" {
		cfg.Binary = "qemu-storage-daemon"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	d = &Daemon{cfg: cfg, log: cfg.Log, waiters: map[chan qmp.Event]string{}}
	if err := os.MkdirAll(d.pskDir(), 0o700); err != nil {
		return nil, false, fmt.Errorf("storage daemon: %w", err)
	}
	if _, err := os.Stat(d.keysPath()); errors.Is(err, os.ErrNotExist) {
		if err := atomicfile.Write(d.keysPath(), nil, 0o600); err != nil {
			return nil, false, fmt.Errorf("storage daemon: %w", err)
		}
	}
	started, err = d.connect(ctx)
	if err != nil {
		return nil, false, err
	}
	return d, started, nil
}

func (d *Daemon) socketPath() string { return filepath.Join(d.cfg.RunDir, "qsd.qmp") }
func (d *Daemon) pidPath() string    { return filepath.Join(d.cfg.RunDir, "qsd.pid") }
func (d *Daemon) logPath() string    { return filepath.Join(d.cfg.RunDir, "qsd.log") }
func (d *Daemon) pskDir() string     { return filepath.Join(d.cfg.RunDir, "psk") }
func (d *Daemon) keysPath() string   { return filepath.Join(d.pskDir(), "keys.psk") }

// PID is the daemon's process id, 0 while disconnected.
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pid
}

// connect adopts the daemon named by the pidfile when it answers QMP,
// else kills whatever is left of it and starts a new one.
func (d *Daemon) connect(ctx context.Context) (started bool, err error) {
	if pid := d.pidFromFile(); pid > 0 && isStorageDaemon(pid, d.socketPath()) {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		mon, err := qmp.Dial(dctx, d.socketPath())
		cancel()
		if err == nil {
			d.attach(mon, pid)
			d.log.Info("storage daemon adopted", "pid", pid)
			return false, nil
		}
		// Alive but deaf (a hung process, or its monitor taken): a new
		// daemon is the only way to serve again; NBD clients reconnect.
		d.log.Warn("storage daemon does not answer QMP; restarting it", "pid", pid, "err", err)
		killAndWait(pid)
	}
	if err := d.spawn(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// spawn starts a daemonized qemu-storage-daemon; it returns once the
// daemon is listening and its monitor is connected.
func (d *Daemon) spawn(ctx context.Context) error {
	_ = os.Remove(d.socketPath())
	_ = os.Remove(d.pidPath())
	logf, err := os.OpenFile(d.logPath(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("storage daemon log: %w", err)
	}
	defer logf.Close()
	// --daemonize: the parent exits once the NBD server listens, so a
	// bind error is reported here and the daemon is nobody's child.
	cmd := exec.CommandContext(ctx, d.cfg.Binary, d.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("start qemu-storage-daemon: %w: %s", err, bytes.TrimSpace(tail(d.logPath(), 2048)))
	}
	pid := d.pidFromFile()
	if pid <= 0 {
		return fmt.Errorf("start qemu-storage-daemon: no pid in %s", d.pidPath())
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mon, err := qmp.Dial(dctx, d.socketPath())
	if err != nil {
		killAndWait(pid)
		return fmt.Errorf("start qemu-storage-daemon: %w", err)
	}
	d.attach(mon, pid)
	d.log.Info("storage daemon started", "pid", pid, "nbd", net.JoinHostPort(d.cfg.NBDAddress, strconv.Itoa(d.cfg.NBDPort)))
	return nil
}

// args is the daemon's command line: a TLS-PSK server credential over the
// key file (gnutls reads the file at each handshake, so keys added or
// removed later take effect without touching the daemon), the NBD server
// requiring it, and the QMP monitor.
func (d *Daemon) args() []string {
	return []string{
		"--object", "tls-creds-psk,id=" + tlsObjectID + ",endpoint=server,dir=" + d.pskDir(),
		"--nbd-server", "addr.type=inet,addr.host=" + d.cfg.NBDAddress + ",addr.port=" + strconv.Itoa(d.cfg.NBDPort) +
			",tls-creds=" + tlsObjectID,
		"--chardev", "socket,id=" + monitorID + ",path=" + d.socketPath() + ",server=on,wait=off",
		"--monitor", "chardev=" + monitorID,
		"--pidfile", d.pidPath(),
		"--daemonize",
	}
}

// attach makes mon the daemon's monitor and fans its events out to
// waiters.
func (d *Daemon) attach(mon *qmp.Monitor, pid int) {
	d.mu.Lock()
	d.mon, d.pid = mon, pid
	d.mu.Unlock()
	go func() {
		for ev := range mon.Events() {
			d.mu.Lock()
			for ch, name := range d.waiters {
				if name == ev.Name {
					select {
					case ch <- ev:
					default: // the waiter re-checks the daemon's state anyway
					}
				}
			}
			d.mu.Unlock()
		}
	}()
}

// Healthy reports whether the daemon process lives and its monitor is
// connected.
func (d *Daemon) Healthy() bool {
	d.mu.Lock()
	mon, pid := d.mon, d.pid
	d.mu.Unlock()
	if mon == nil || !isStorageDaemon(pid, d.socketPath()) {
		return false
	}
	select {
	case <-mon.Done():
		return false
	default:
		return true
	}
}

// Ensure reconnects to (or restarts) a daemon that died or whose monitor
// dropped. reconnected says the caller must reconcile nodes and exports,
// which a new process has none of.
func (d *Daemon) Ensure(ctx context.Context) (reconnected bool, err error) {
	if d.Healthy() {
		return false, nil
	}
	d.detach()
	if _, err := d.connect(ctx); err != nil {
		return false, fmt.Errorf("storage daemon: %w", err)
	}
	return true, nil
}

func (d *Daemon) detach() {
	d.mu.Lock()
	mon := d.mon
	d.mon, d.pid = nil, 0
	d.mu.Unlock()
	if mon != nil {
		mon.Close()
	}
}

// Close disconnects from the daemon, which keeps running and serving.
func (d *Daemon) Close() error {
	d.detach()
	return nil
}

// Shutdown stops the daemon itself (host decommission and tests): every
// NBD client is disconnected.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	mon, pid := d.mon, d.pid
	d.mu.Unlock()
	if mon != nil {
		_ = mon.Quit(ctx)
	}
	d.detach()
	if pid > 0 {
		deadline := time.Now().Add(5 * time.Second)
		for processAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if processAlive(pid) {
			killAndWait(pid)
		}
	}
	_ = os.Remove(d.pidPath())
	return nil
}

// execute runs one QMP command on the current monitor.
func (d *Daemon) execute(ctx context.Context, command string, args, result any) error {
	d.mu.Lock()
	mon := d.mon
	d.mu.Unlock()
	if mon == nil {
		return ErrNotRunning
	}
	return mon.Execute(ctx, command, args, result)
}

// waitFor registers interest in events named name; call cancel when done.
func (d *Daemon) waitFor(name string) (ch chan qmp.Event, cancel func()) {
	ch = make(chan qmp.Event, 16)
	d.mu.Lock()
	d.waiters[ch] = name
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		delete(d.waiters, ch)
		d.mu.Unlock()
	}
}

func (d *Daemon) pidFromFile() int {
	b, err := os.ReadFile(d.pidPath())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// isStorageDaemon tells our daemon from a process that reused its pid:
// its command line names qemu-storage-daemon and our socket.
func isStorageDaemon(pid int, socket string) bool {
	if !processAlive(pid) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("qemu-storage-daemon")) && bytes.Contains(b, []byte("path="+socket+","))
}

// processAlive is true for a running process (not a zombie).
func processAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}

func killAndWait(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 250 && processAlive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// tail returns the last n bytes of a file, for error messages.
func tail(path string, n int64) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return b
}
