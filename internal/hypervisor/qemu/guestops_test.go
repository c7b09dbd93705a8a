package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// TestGuestOperations walks one booted guest through the operations that
// change it beyond its power state, checking each against QEMU itself:
// NIC hot-plug (query-pci, the saved spec, kept across restarts) and
// unplug, a snapshot that is
// a standalone qcow2 of the root disk's size, a resize (new vCPUs and memory
// in query-cpus-fast and query-memory-size-summary, a bigger root disk), its revert and a
// confirmed second resize, rescue (the rescue disk boots first, the root
// disk follows) and unrescue, and a crash-dump NMI; finally a new guest
// boots from the snapshot. One guest serves all
// of them to keep TCG boots few.
func TestGuestOperations(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	qcow2, kernel, sum := guestImage(t)
	state, run := testDirs(t)
	d := newTestDriver(t, Config{StateDir: state, RunDir: run, ProbeKernel: kernel})
	ctx := context.Background()
	uuid := newUUID(t)
	spec := guestSpec(t, uuid)
	if _, err := d.Spawn(ctx, spec); err != nil {
		t.Fatalf("spawn: %v", err)
	}
	waitConsole(t, d, uuid, " login: ", 1, bootTimeout)

	// Hot-plug a NIC and take it out again.
	nic := hypervisor.NIC{TapName: tap(t), MAC: "fa:16:3e:aa:bb:01"}
	if err := d.AttachInterface(ctx, uuid, nic); err != nil {
		t.Fatalf("attach interface: %v", err)
	}
	if !pciDevices(t, d, uuid)[nicID(nic.TapName)] {
		t.Fatalf("hot-plugged NIC %s not on the PCI bus", nicID(nic.TapName))
	}
	if rec, _ := d.readRecord(uuid); len(rec.Spec.NICs) != 1 || rec.Spec.NICs[0] != nic {
		t.Fatalf("saved spec NICs %+v, want the attached one", rec.Spec.NICs)
	}
	if err := d.AttachInterface(ctx, uuid, nic); err != nil {
		t.Fatalf("second attach of the same NIC: %v", err)
	}

	// Snapshot of the running guest: standalone, the root disk's size,
	// and the guest runs on.
	snap := filepath.Join(t.TempDir(), "snap.qcow2")
	if err := d.Snapshot(ctx, uuid, snap); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	wantState(t, d, uuid, hypervisor.Running)
	var info struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
		Backing     string `json:"backing-filename"`
	}
	out, err := exec.Command("qemu-img", "info", "--output=json", snap).Output()
	if err != nil || json.Unmarshal(out, &info) != nil {
		t.Fatalf("qemu-img info: %v: %s", err, out)
	}
	if info.Format != "qcow2" || info.Backing != "" || info.VirtualSize != 128<<20 {
		t.Fatalf("snapshot %+v, want a standalone qcow2 of 128 MiB", info)
	}
	if out, err := exec.Command("qemu-img", "check", snap).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check: %v: %s", err, out)
	}
	if _, err := os.Stat(qcow2); err != nil {
		t.Fatal(err)
	}

	// Resize, revert, resize again and confirm.
	to := hypervisor.Resize{VCPUs: 2, MemoryMiB: 384, RootBytes: 256 << 20}
	if err := d.Resize(ctx, uuid, to); err != nil {
		t.Fatalf("resize: %v", err)
	}
	wantState(t, d, uuid, hypervisor.Running)
	wantMachine(t, d, uuid, 2, 384, 256<<20)
	if !pciDevices(t, d, uuid)[nicID(nic.TapName)] {
		t.Fatal("the hot-plugged NIC is gone after the resize's restart")
	}
	if err := d.Resize(ctx, uuid, hypervisor.Resize{VCPUs: 1, MemoryMiB: 512}); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("resize while one awaits confirmation: %v, want ErrInvalidState", err)
	}
	if err := d.RevertResize(ctx, uuid); err != nil {
		t.Fatalf("revert resize: %v", err)
	}
	wantState(t, d, uuid, hypervisor.Running)
	wantMachine(t, d, uuid, 1, 256, 128<<20)
	if err := d.Resize(ctx, uuid, to); err != nil {
		t.Fatalf("second resize: %v", err)
	}
	if err := d.ConfirmResize(ctx, uuid); err != nil {
		t.Fatalf("confirm resize: %v", err)
	}
	wantMachine(t, d, uuid, 2, 384, 256<<20)
	if left, _ := filepath.Glob(filepath.Join(d.instanceDir(uuid), "*.pre-resize")); len(left) != 0 {
		t.Fatalf("confirm left %v", left)
	}

	// Rescue from the guest image: two boots of the same image, the
	// rescue disk first.
	boots := countConsole(t, d, uuid, " login: ")
	img := &hypervisor.Image{ID: "nimbus-guest", Path: qcow2, Checksum: sum, Algorithm: "sha256"}
	if err := d.Rescue(ctx, uuid, img, 0); err != nil {
		t.Fatalf("rescue: %v", err)
	}
	if got := blockDevices(t, d, uuid); len(got) < 2 || got[0] != "drive-rescue" || got[1] != "drive-root" {
		t.Fatalf("rescued guest's drives %v, want drive-rescue then drive-root", got)
	}
	waitConsole(t, d, uuid, " login: ", boots+1, bootTimeout)
	// The NIC attached before the resizes' restarts is still there (it
	// is in the saved spec); the booted guest releases it on request.
	if err := d.DetachInterface(ctx, uuid, nic.TapName); err != nil {
		t.Fatalf("detach interface: %v", err)
	}
	if pciDevices(t, d, uuid)[nicID(nic.TapName)] {
		t.Fatal("detached NIC still on the PCI bus")
	}
	if rec, _ := d.readRecord(uuid); len(rec.Spec.NICs) != 0 {
		t.Fatalf("saved spec NICs %+v after detach", rec.Spec.NICs)
	}
	if err := d.Unrescue(ctx, uuid); err != nil {
		t.Fatalf("unrescue: %v", err)
	}
	if got := blockDevices(t, d, uuid); got[0] != "drive-root" {
		t.Fatalf("unrescued guest's drives %v", got)
	}
	if pciDevices(t, d, uuid)[nicID(nic.TapName)] {
		t.Fatal("the detached NIC came back after unrescue")
	}
	if _, err := os.Stat(filepath.Join(d.instanceDir(uuid), "disk.rescue.qcow2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rescue disk left behind: %v", err)
	}

	if err := d.InjectNMI(ctx, uuid); err != nil {
		t.Fatalf("inject nmi: %v", err)
	}
	if err := d.PowerOff(ctx, uuid, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.InjectNMI(ctx, uuid); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("nmi to a shut-off guest: %v, want ErrInvalidState", err)
	}

	// The snapshot is an image a new guest boots from.
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(b)
	other := newUUID(t)
	ospec := guestSpec(t, other)
	ospec.Disks[0].Image = &hypervisor.Image{ID: "snapshot", Path: snap, Checksum: hex.EncodeToString(digest[:]), Algorithm: "sha256"}
	if _, err := d.Spawn(ctx, ospec); err != nil {
		t.Fatalf("spawn from the snapshot: %v", err)
	}
	waitConsole(t, d, other, " login: ", 1, bootTimeout)
	if err := d.Destroy(ctx, other); err != nil {
		t.Fatal(err)
	}
}

// qmpQuery runs one query on the guest's QMP.
func qmpQuery(t *testing.T, d *Driver, uuid, command string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	if err := mon.Execute(ctx, command, nil, out); err != nil {
		t.Fatalf("%s: %v", command, err)
	}
}

// pciDevices are the qdev ids on the guest's PCI bus 0.
func pciDevices(t *testing.T, d *Driver, uuid string) map[string]bool {
	t.Helper()
	var buses []struct {
		Devices []struct {
			QdevID string `json:"qdev_id"`
		} `json:"devices"`
	}
	qmpQuery(t, d, uuid, "query-pci", &buses)
	out := map[string]bool{}
	for _, b := range buses {
		for _, dev := range b.Devices {
			out[dev.QdevID] = true
		}
	}
	return out
}

// blockDevices are the guest's drives in the order QEMU has them.
func blockDevices(t *testing.T, d *Driver, uuid string) []string {
	t.Helper()
	var blocks []struct {
		Device string `json:"device"`
	}
	qmpQuery(t, d, uuid, "query-block", &blocks)
	var out []string
	for _, b := range blocks {
		out = append(out, b.Device)
	}
	return out
}

// wantMachine checks the running guest's vCPUs, memory and its root
// disk's size.
func wantMachine(t *testing.T, d *Driver, uuid string, vcpus, memMiB int, rootBytes int64) {
	t.Helper()
	var cpus []struct {
		Index int `json:"cpu-index"`
	}
	qmpQuery(t, d, uuid, "query-cpus-fast", &cpus)
	if len(cpus) != vcpus {
		t.Errorf("guest has %d vCPUs, want %d", len(cpus), vcpus)
	}
	var mem struct {
		Base int64 `json:"base-memory"`
	}
	qmpQuery(t, d, uuid, "query-memory-size-summary", &mem)
	if mem.Base != int64(memMiB)<<20 {
		t.Errorf("guest memory %d bytes, want %d MiB", mem.Base, memMiB)
	}
	rec, err := d.readRecord(uuid)
	if err != nil {
		t.Fatal(err)
	}
	info, err := d.qemuImgInfo(context.Background(), rec.Disks[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if info.VirtualSize != rootBytes {
		t.Errorf("root disk %d bytes, want %d", info.VirtualSize, rootBytes)
	}
	if rec.Spec.MemoryMiB != memMiB {
		t.Errorf("saved spec memory %d MiB, want %d", rec.Spec.MemoryMiB, memMiB)
	}
}

func countConsole(t *testing.T, d *Driver, uuid, s string) int {
	t.Helper()
	b, err := d.ConsoleLog(context.Background(), uuid, 0)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(s))
}
