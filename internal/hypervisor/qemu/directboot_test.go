package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// TestDirectBoot boots the test guest from its kernel and initramfs
// (Spec.Boot, as for an image with kernel_id and ramdisk_id) and checks
// that the disk's boot loader was not involved: extlinux announces itself
// on the serial console, a direct boot does not, and the guest still
// reaches its agent and login prompt from the same disk. The running
// guest's diagnostics are checked on the way.
func TestDirectBoot(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	_, probe, _ := guestImage(t)
	state, run := testDirs(t)
	d := newTestDriver(t, Config{StateDir: state, RunDir: run, ProbeKernel: probe})
	ctx := context.Background()

	uuid := newUUID(t)
	spec := guestSpec(t, uuid)
	cmdline, err := os.ReadFile(filepath.Join(imageDir, "nimbus-guest.cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	spec.Boot = &hypervisor.DirectBoot{
		Kernel:  cachedImage(t, "kernel", filepath.Join(imageDir, "nimbus-guest.vmlinux")),
		Ramdisk: ptr(cachedImage(t, "ramdisk", filepath.Join(imageDir, "nimbus-guest.initrd"))),
		Cmdline: strings.TrimSpace(string(cmdline)),
	}
	start := time.Now()
	if _, err := d.Spawn(ctx, spec); err != nil {
		t.Fatalf("spawn: %v", err)
	}
	log := waitConsole(t, d, uuid, " login: ", 1, bootTimeout)
	t.Logf("login prompt after %s (direct boot)", time.Since(start))
	if bytes.Contains(log, []byte("SYSLINUX")) {
		t.Errorf("the disk's boot loader ran; console:\n%s", log)
	}
	if !bytes.Contains(log, []byte("nimbus-init: up in")) {
		t.Errorf("the guest agent did not finish; console:\n%s", log)
	}
	// The running guest's diagnostics come from the host's counters: it
	// has run, read its disk and used memory.
	diag, err := d.Diagnostics(ctx, uuid)
	if err != nil {
		t.Fatalf("diagnostics: %v", err)
	}
	if diag.State != hypervisor.Running || diag.UptimeSeconds == nil || diag.MemoryMaxMiB != 256 ||
		diag.MemoryUsedMiB == nil || *diag.MemoryUsedMiB <= 0 || len(diag.CPUs) != 1 || diag.CPUs[0].TimeNS == nil || *diag.CPUs[0].TimeNS <= 0 ||
		len(diag.Disks) != 1 || diag.Disks[0].Device != "vda" || diag.Disks[0].ReadBytes == nil || *diag.Disks[0].ReadBytes <= 0 {
		t.Errorf("diagnostics of a booted guest: %+v", diag)
	}
	rec, err := d.readRecord(uuid)
	if err != nil {
		t.Fatal(err)
	}
	if k, i, c := rec.directBoot(); !strings.HasPrefix(k, d.baseDir()) || !strings.HasPrefix(i, d.baseDir()) || c != spec.Boot.Cmdline {
		t.Errorf("saved direct boot %q %q %q: want the cached kernel and ramdisk and %q", k, i, c, spec.Boot.Cmdline)
	}
	// A rescued guest boots the rescue disk's own loader.
	rec.Rescue = &diskFile{Name: "rescue", Path: "/r.qcow2", Format: "qcow2"}
	if k, i, c := rec.directBoot(); k != "" || i != "" || c != "" {
		t.Errorf("rescued guest boots %q %q %q, want its rescue disk", k, i, c)
	}
}

// TestDirectBootRejectsBadSpec: a kernel without a checksum, or a command
// line that would split QEMU's argument, is refused before anything runs.
func TestDirectBootRejectsBadSpec(t *testing.T) {
	base := hypervisor.Spec{UUID: "6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e", VCPUs: 1, MemoryMiB: 64,
		Disks: []hypervisor.Disk{{Name: "root", SizeBytes: 1 << 20}}}
	for name, boot := range map[string]*hypervisor.DirectBoot{
		"kernel without checksum": {Kernel: hypervisor.Image{Path: "/k"}},
		"ramdisk without path":    {Kernel: hypervisor.Image{Path: "/k", Checksum: "ab"}, Ramdisk: &hypervisor.Image{Checksum: "cd"}},
		"newline in command line": {Kernel: hypervisor.Image{Path: "/k", Checksum: "ab"}, Cmdline: "root=/dev/vda\ninit=/x"},
		"NUL in the command line": {Kernel: hypervisor.Image{Path: "/k", Checksum: "ab"}, Cmdline: "a\x00b"},
	} {
		spec := base
		spec.Boot = boot
		if err := spec.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := base
	ok.Boot = &hypervisor.DirectBoot{Kernel: hypervisor.Image{Path: "/k", Checksum: "ab"}, Cmdline: "root=/dev/vda1 rw"}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid direct boot refused: %v", err)
	}
}

// cachedImage describes a file as the agent hands images to the driver.
func cachedImage(t testing.TB, id, path string) hypervisor.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%s (scripts/build-guest-image.sh writes it): %v", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hypervisor.Image{ID: id, Path: path, Checksum: hex.EncodeToString(h.Sum(nil)), Algorithm: "sha256"}
}

func ptr[T any](v T) *T { return &v }
