package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// guestImage builds the test guest with scripts/build-guest-image.sh, once
// per test binary, into a cache directory that outlives the run
// ($NIMBUS_GUEST_IMAGE_DIR, default $TMPDIR/nimbus-guest-image), so only
// the first run pays for the build. A missing tool or package fails the
// test with the script's message: these tests must not pass by skipping.
var (
	imageOnce sync.Once
	imageDir  string
	imageErr  error
)

func guestImage(t testing.TB) (qcow2, kernel, sha256 string) {
	t.Helper()
	imageOnce.Do(func() {
		imageDir = os.Getenv("NIMBUS_GUEST_IMAGE_DIR")
		if imageDir == "" {
			imageDir = filepath.Join(os.TempDir(), "nimbus-guest-image")
		}
		root, err := moduleRoot()
		if err != nil {
			imageErr = err
			return
		}
		cmd := exec.Command(filepath.Join(root, "scripts", "build-guest-image.sh"), imageDir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			imageErr = fmt.Errorf("scripts/build-guest-image.sh %s: %v\n%s", imageDir, err, out)
		}
	})
	if imageErr != nil {
		t.Fatalf("cannot build the guest image (install the packages with `scripts/install-deps.sh test` as root): %v", imageErr)
	}
	sum, err := os.ReadFile(filepath.Join(imageDir, "nimbus-guest.sha256"))
	if err != nil {
		t.Fatalf("guest image checksum: %v", err)
	}
	return filepath.Join(imageDir, "nimbus-guest.qcow2"), filepath.Join(imageDir, "nimbus-guest.vmlinuz"), strings.Fields(string(sum))[0]
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// requireRoot fails (not skips) without root: the qemu driver's tests
// need taps and loop devices, and `make test` runs as root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the qemu driver tests must run as root (taps, loop devices for the image build)")
	}
}

// testDirs returns a state dir and a short run dir (unix socket paths are
// limited to 108 bytes), both removed after the test.
func testDirs(t testing.TB) (state, run string) {
	t.Helper()
	run, err := os.MkdirTemp("", "nq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	return t.TempDir(), run
}

// newTestDriver makes a driver and registers a cleanup that destroys every
// guest it knows of and, as a last resort, SIGKILLs any QEMU whose pidfile
// is in its run dir, so no QEMU outlives a failed test.
func newTestDriver(t testing.TB, cfg Config) *Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("new driver: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if infos, err := d.List(ctx); err == nil {
			for _, i := range infos {
				d.Destroy(ctx, i.UUID)
			}
		}
		killAll(cfg.RunDir)
		d.Close()
	})
	return d
}

func killAll(runDir string) {
	pids, _ := filepath.Glob(filepath.Join(runDir, "*.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		uuid := strings.TrimSuffix(filepath.Base(p), ".pid")
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pidIsGuest(pid, uuid) {
			syscall.Kill(pid, syscall.SIGKILL)
			waitGone(context.Background(), pid, uuid, 10*time.Second)
		}
	}
}

func newUUID(t testing.TB) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// tap creates a tap device for a guest NIC, removed after the test. Like
// the network agent's taps it is up and has no address; nothing else on
// the host sees its traffic.
func tap(t testing.TB) string {
	t.Helper()
	var b [3]byte
	rand.Read(b[:])
	name := fmt.Sprintf("nqt%x", b)
	if out, err := exec.Command("ip", "tuntap", "add", "dev", name, "mode", "tap").CombinedOutput(); err != nil {
		t.Fatalf("ip tuntap add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	if out, err := exec.Command("ip", "link", "set", name, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s up: %v: %s", name, err, out)
	}
	return name
}

// waitConsole waits until the guest's console log holds want at least n
// times, and returns the log.
func waitConsole(t testing.TB, d *Driver, uuid, want string, n int, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := d.ConsoleLog(context.Background(), uuid, 0)
		if err != nil {
			t.Fatalf("console log: %v", err)
		}
		if bytes.Count(b, []byte(want)) >= n {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q (x%d) on the console of %s within %s; console:\n%s", want, n, uuid, timeout, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func wantState(t testing.TB, d *Driver, uuid string, want hypervisor.PowerState) hypervisor.Info {
	t.Helper()
	info, err := d.GetState(context.Background(), uuid)
	if err != nil {
		t.Fatalf("get state: %v", err)
	}
	if info.State != want {
		t.Fatalf("state %v, want %v (%+v)", info.State, want, info)
	}
	return info
}

func guestSpec(t testing.TB, uuid string) hypervisor.Spec {
	qcow2, _, sum := guestImage(t)
	return hypervisor.Spec{
		UUID: uuid, Name: "instance-" + uuid[:8], VCPUs: 1, MemoryMiB: 256,
		Disks: []hypervisor.Disk{{
			Name:      "root",
			Image:     &hypervisor.Image{ID: "nimbus-guest", Path: qcow2, Checksum: sum, Algorithm: "sha256"},
			SizeBytes: 128 << 20,
		}},
	}
}
