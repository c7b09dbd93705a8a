package qemu

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

const bootTimeout = 3 * time.Minute // TCG on a shared, often overloaded 2-core machine

// TestGuestLifecycle boots the test image under the probed accelerator
// with a config drive and a NIC on a tap, and walks it through Nova's
// actions, checking each against the guest's own console:
// the login prompt, the hostname/keys/user data taken from the config
// drive, pause/unpause, suspend to disk and resume (the resumed guest
// answers the ACPI button without having rebooted), ACPI power-off,
// power-on, a soft (ACPI) reboot, a hard reboot, and destroy (process and
// files gone).
func TestGuestLifecycle(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	_, kernel, _ := guestImage(t)
	state, run := testDirs(t)
	d := newTestDriver(t, Config{StateDir: state, RunDir: run, ProbeKernel: kernel, SoftRebootTimeout: 60 * time.Second})
	t.Logf("virt_type %s", d.VirtType())
	ctx := context.Background()

	uuid := newUUID(t)
	spec := guestSpec(t, uuid)
	spec.NICs = []hypervisor.NIC{{TapName: tap(t), MAC: "fa:16:3e:12:34:56"}}
	spec.ConfigDrive = &hypervisor.ConfigDrive{Files: map[string][]byte{
		"openstack/latest/meta_data.json": []byte(`{"uuid": "` + uuid + `", "name": "lifecycle", "hostname": "nimbus-lifecycle.novalocal",
  "public_keys": {"k1": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvO6nK3mFq2Xb4bP8rJr3k2Yd6cJYyFq0f2m5Zq2k9P test@nimbus\n"},
  "keys": [{"name": "k1", "type": "ssh", "data": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvO6nK3mFq2Xb4bP8rJr3k2Yd6cJYyFq0f2m5Zq2k9P test@nimbus\n"}]}`),
		"openstack/latest/user_data":         []byte("#!/bin/sh\necho user-data-ran-$((6*7))\n"),
		"openstack/latest/network_data.json": []byte(`{"links": [], "networks": [], "services": []}`),
	}}
	start := time.Now()
	info, err := d.Spawn(ctx, spec)
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	if info.State != hypervisor.Running || info.PID == 0 || !strings.HasPrefix(info.VNC, "127.0.0.1:59") {
		t.Fatalf("spawn info %+v", info)
	}
	log := waitConsole(t, d, uuid, " login: ", 1, bootTimeout)
	t.Logf("login prompt after %s", time.Since(start))
	for _, want := range []string{
		"metadata source: config drive",
		"hostname nimbus-lifecycle",
		"instance " + uuid,
		"installed 1 SSH key(s)",
		"user_data: user-data-ran-42",
		"nimbus-lifecycle login:",
		"root partition grown to 127 MiB", // the 64 MiB image on a 128 MiB disk
	} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("console lacks %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("console:\n%s", log)
	}
	if _, err := d.Spawn(ctx, spec); !errors.Is(err, hypervisor.ErrExists) {
		t.Fatalf("second spawn: %v, want ErrExists", err)
	}
	waitConsole(t, d, uuid, "root file system grown to", 1, bootTimeout)
	// VNC answers on localhost with the RFB banner, for the console proxy.
	conn, err := net.DialTimeout("tcp", info.VNC, 5*time.Second)
	if err != nil {
		t.Fatalf("vnc %s: %v", info.VNC, err)
	}
	banner := make([]byte, 12)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadFull(conn, banner)
	conn.Close()
	if err != nil || !bytes.HasPrefix(banner, []byte("RFB 003.")) {
		t.Fatalf("vnc banner %q: %v", banner, err)
	}

	if err := d.Pause(ctx, uuid); err != nil {
		t.Fatal(err)
	}
	wantState(t, d, uuid, hypervisor.Paused)
	if err := d.Unpause(ctx, uuid); err != nil {
		t.Fatal(err)
	}
	wantState(t, d, uuid, hypervisor.Running)

	// Suspend to disk: no process, a state file; resume restores it.
	if err := d.Suspend(ctx, uuid); err != nil {
		t.Fatalf("suspend: %v", err)
	}
	if s := wantState(t, d, uuid, hypervisor.Suspended); s.PID != 0 {
		t.Fatalf("suspended guest has pid %d", s.PID)
	}
	if err := d.Unpause(ctx, uuid); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("unpause a suspended guest: %v, want ErrInvalidState", err)
	}
	if err := d.Resume(ctx, uuid); err != nil {
		t.Fatalf("resume: %v", err)
	}
	wantState(t, d, uuid, hypervisor.Running)

	// Power off through ACPI. The restored guest is alive, not rebooted:
	// it answers the button, and no second boot shows on its console.
	if err := d.PowerOff(ctx, uuid, 2*time.Minute); err != nil {
		t.Fatalf("power off: %v", err)
	}
	log = waitConsole(t, d, uuid, "ACPI power button", 1, time.Second)
	if n := bytes.Count(log, []byte("SYSLINUX")); n != 1 {
		t.Fatalf("%d boots, want 1 (resume must not reboot); console:\n%s", n, log)
	}
	off := wantState(t, d, uuid, hypervisor.Shutdown)
	if off.PID != 0 || off.VNC != "" {
		t.Fatalf("shut-off guest %+v", off)
	}
	if err := d.Pause(ctx, uuid); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("pause a shut-off guest: %v, want ErrInvalidState", err)
	}

	// Power on from the same disk.
	if err := d.PowerOn(ctx, uuid); err != nil {
		t.Fatalf("power on: %v", err)
	}
	waitConsole(t, d, uuid, " login: ", 2, bootTimeout)
	on := wantState(t, d, uuid, hypervisor.Running)

	// Soft reboot: the guest sees the ACPI button, powers off, and a new
	// QEMU boots it again.
	if err := d.Reboot(ctx, uuid, hypervisor.RebootSoft); err != nil {
		t.Fatalf("soft reboot: %v", err)
	}
	waitConsole(t, d, uuid, "ACPI power button", 2, time.Second)
	if re := wantState(t, d, uuid, hypervisor.Running); re.PID == on.PID {
		t.Fatalf("soft reboot kept pid %d", on.PID)
	}
	waitConsole(t, d, uuid, "SYSLINUX", 3, bootTimeout)

	// Hard reboot: a new QEMU, whatever the guest was doing.
	if err := d.Reboot(ctx, uuid, hypervisor.RebootHard); err != nil {
		t.Fatalf("hard reboot: %v", err)
	}
	last := wantState(t, d, uuid, hypervisor.Running)
	if err := d.Destroy(ctx, uuid); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if pidIsGuest(last.PID, uuid) {
		t.Fatalf("pid %d still running after destroy", last.PID)
	}
	if _, err := d.GetState(ctx, uuid); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("state after destroy: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(state, "instances", uuid)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("instance dir left after destroy: %v", err)
	}
	if err := d.Destroy(ctx, uuid); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
}

// TestReadopt kills the "agent" (drops the driver) while a guest runs: a
// new driver on the same directories finds it running with the same pid,
// refuses to start it twice, reports it shut off once its QEMU dies, and
// can power it on again.
func TestReadopt(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	state, run := testDirs(t)
	cfg := Config{StateDir: state, RunDir: run, VirtType: VirtQEMU}
	d1 := newTestDriver(t, cfg)
	ctx := context.Background()
	uuid := newUUID(t)
	spec := guestSpec(t, uuid)
	info, err := d1.Spawn(ctx, spec)
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	d1.Close() // the agent goes away; its guests must not

	d2 := newTestDriver(t, cfg)
	list, err := d2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].UUID != uuid || list[0].State != hypervisor.Running || list[0].PID != info.PID {
		t.Fatalf("re-adopted %+v, want %s running as pid %d", list, uuid, info.PID)
	}
	if _, err := d2.Spawn(ctx, spec); !errors.Is(err, hypervisor.ErrExists) {
		t.Fatalf("spawn after re-adoption: %v, want ErrExists", err)
	}
	// The re-adopted guest is fully controllable.
	waitConsole(t, d2, uuid, " login: ", 1, bootTimeout)
	if err := d2.Pause(ctx, uuid); err != nil {
		t.Fatal(err)
	}
	wantState(t, d2, uuid, hypervisor.Paused)

	// Its QEMU dies behind the agent's back: reported shut off.
	syscall.Kill(info.PID, syscall.SIGKILL)
	if !waitGone(ctx, info.PID, uuid, 10*time.Second) {
		t.Fatal("qemu did not die")
	}
	wantState(t, d2, uuid, hypervisor.Shutdown)
	if err := d2.PowerOn(ctx, uuid); err != nil {
		t.Fatalf("power on: %v", err)
	}
	on := wantState(t, d2, uuid, hypervisor.Running)
	if on.PID == info.PID {
		t.Fatal("same pid after power on")
	}
}

// TestBaseImageCache: a base image is verified against its checksum and
// written once; a wrong checksum fails the spawn and leaves nothing behind.
func TestBaseImageCache(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	state, run := testDirs(t)
	d := newTestDriver(t, Config{StateDir: state, RunDir: run, VirtType: VirtQEMU})
	ctx := context.Background()

	bad := guestSpec(t, newUUID(t))
	bad.Disks[0].Image.Checksum = strings.Repeat("0", 64)
	if _, err := d.Spawn(ctx, bad); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("spawn with a wrong checksum: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "instances", bad.UUID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed spawn left its instance dir: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(state, "_base")); len(left) != 0 {
		t.Fatalf("failed verification left files in the cache: %v", left)
	}

	img := guestSpec(t, newUUID(t)).Disks[0].Image
	p1, err := d.ensureBase(img)
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(p1)
	p2, err := d.ensureBase(img)
	if err != nil || p2 != p1 {
		t.Fatalf("second ensureBase: %s %v", p2, err)
	}
	st2, _ := os.Stat(p2)
	if !st1.ModTime().Equal(st2.ModTime()) || st2.Mode().Perm() != 0o444 {
		t.Fatalf("base rewritten or writable: %v %v", st2.ModTime(), st2.Mode())
	}

	blank := bad
	blank.UUID = newUUID(t)
	blank.Disks = []hypervisor.Disk{{Name: "root", SizeBytes: 1 << 20}}
	blank.Disks[0].Image = nil
	if _, err := d.Spawn(ctx, blank); err != nil {
		t.Fatalf("spawn a blank disk: %v", err)
	}
	if err := d.Destroy(ctx, blank.UUID); err != nil {
		t.Fatal(err)
	}
	c, err := d.Capacity(ctx)
	if err != nil || c.VCPUs < 1 || c.MemoryMiB < 256 || c.DiskGiB < 1 || c.HypervisorType != "QEMU" || c.VirtType != VirtQEMU {
		t.Fatalf("capacity %+v %v", c, err)
	}
}

// TestConsoleLogBounded: trimming keeps the newest output, from a line
// start, under the bound.
func TestConsoleLogBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	var b bytes.Buffer
	for i := 0; b.Len() < 5000; i++ {
		b.WriteString("line " + strings.Repeat("x", i%50) + "\n")
	}
	b.WriteString("newest\n")
	os.WriteFile(p, b.Bytes(), 0o644)
	if err := trimLog(p, 1000); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if len(got) > 1000 || !bytes.HasSuffix(got, []byte("newest\n")) || !bytes.HasPrefix(got, []byte("line ")) {
		t.Fatalf("trimmed log (%d bytes): %q", len(got), got)
	}
}
