package consoleproxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu"
)

// TestRealGuestConsoles boots the test guest under QEMU and reaches its
// consoles the way a browser and a serial client do: through the proxy,
// with a token. The VNC websocket carries QEMU's RFB banner; the serial
// websocket carries the guest's login prompt, and a newline typed into it
// makes the guest print the prompt again. The console log still records
// everything. Like the qemu driver's tests it needs root and the guest
// image (scripts/build-guest-image.sh), and fails rather than skips.
func TestRealGuestConsoles(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("the real-guest console test must run as root (the guest image build needs loop devices)")
	}
	qcow2, kernel, sum := buildGuestImage(t)
	run, err := os.MkdirTemp("", "ncp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	ctx := context.Background()
	d, err := qemu.New(ctx, qemu.Config{StateDir: t.TempDir(), RunDir: run, ProbeKernel: kernel})
	if err != nil {
		t.Fatal(err)
	}
	uuid := "7c0d5e2a-4b1f-4e8a-9c3d-" + fmt.Sprintf("%012x", time.Now().UnixNano()&0xffffffffffff)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Destroy(ctx, uuid); err != nil {
			t.Errorf("destroy: %v", err)
		}
		d.Close()
	})
	info, err := d.Spawn(ctx, hypervisor.Spec{
		UUID: uuid, Name: "instance-console", VCPUs: 1, MemoryMiB: 256,
		Disks: []hypervisor.Disk{{Name: "root", SizeBytes: 128 << 20,
			Image: &hypervisor.Image{ID: "nimbus-guest", Path: qcow2, Checksum: sum, Algorithm: "sha256"}}},
	})
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	targets := map[string]Target{}
	for typ, addr := range map[string]string{"novnc": info.VNC, "serial": info.Serial} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s console address %q: %v", typ, addr, err)
		}
		p, _ := strconv.Atoi(port)
		targets[typ+"-token"] = Target{InstanceID: uuid, Type: typ, Host: host, Port: p}
	}

	// Serial first: output nobody reads from the socket is not replayed.
	serialProxy := testProxy(t, ctx, "serial", targets, nil)
	serial, resp := dialWS(t, serialProxy.URL+"/?token=serial-token", nil)
	if serial == nil {
		t.Fatalf("serial handshake: %s", resp.Status)
	}
	serial.conn.SetDeadline(time.Now().Add(4 * time.Minute)) // TCG on a busy host
	waitFor := func(want string) []byte {
		t.Helper()
		var seen []byte
		for !bytes.Contains(seen, []byte(want)) {
			f, err := serial.tryRead()
			if err != nil {
				t.Fatalf("serial console: %v; got so far:\n%s", err, seen)
			}
			seen = append(seen, f.payload...)
		}
		return seen
	}

	vncProxy := testProxy(t, ctx, "novnc", targets, nil)
	vnc, resp := dialWS(t, vncProxy.URL+"/?token=novnc-token", map[string][]string{"Sec-Websocket-Protocol": {"binary"}})
	if vnc == nil {
		t.Fatalf("vnc handshake: %s", resp.Status)
	}
	if got := vnc.readData(len(rfbBanner)); string(got) != rfbBanner {
		t.Fatalf("VNC banner through the proxy: %q", got)
	}

	waitFor(" login: ")
	serial.send(opText, []byte("\r"), true)
	waitFor(" login: ")
	log, err := d.ConsoleLog(ctx, uuid, 0)
	if err != nil || !bytes.Contains(log, []byte(" login: ")) {
		t.Fatalf("console log while the serial console is connected (%v):\n%s", err, log)
	}
}

// buildGuestImage builds (or reuses) the test guest as the qemu driver's
// tests do, in $NIMBUS_GUEST_IMAGE_DIR or $TMPDIR/nimbus-guest-image.
func buildGuestImage(t *testing.T) (qcow2, kernel, sha256 string) {
	t.Helper()
	dir := os.Getenv("NIMBUS_GUEST_IMAGE_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "nimbus-guest-image")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "build-guest-image.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(script, dir).CombinedOutput(); err != nil {
		t.Fatalf("cannot build the guest image (install the packages with `scripts/install-deps.sh test` as root): %s %s: %v\n%s", script, dir, err, out)
	}
	sum, err := os.ReadFile(filepath.Join(dir, "nimbus-guest.sha256"))
	if err != nil {
		t.Fatalf("guest image checksum: %v", err)
	}
	return filepath.Join(dir, "nimbus-guest.qcow2"), filepath.Join(dir, "nimbus-guest.vmlinuz"), strings.Fields(string(sum))[0]
}
