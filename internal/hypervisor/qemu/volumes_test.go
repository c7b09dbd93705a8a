package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu/qmp"
)

// testVolume is a volume connection as the volume service hands it out.
func testVolume(id string) *hypervisor.VolumeConn {
	return &hypervisor.VolumeConn{VolumeID: id, Host: "127.0.0.1", Port: 10809, Export: id + "-x1y2z3w4",
		PSKIdentity: "compute-test", PSKKey: testPSKKey, Discard: true}
}

// shutOffGuest saves a guest's record as Spawn does, without starting
// it: the rules below are about what the driver does to disks and
// records, which needs no QEMU process.
func shutOffGuest(t *testing.T, d *Driver, spec hypervisor.Spec) *record {
	t.Helper()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d.instanceDir(spec.UUID), 0o750); err != nil {
		t.Fatal(err)
	}
	rec := &record{Spec: spec}
	for _, disk := range spec.Disks {
		if disk.Volume != nil {
			rec.Disks = append(rec.Disks, volumeDisk(disk))
			continue
		}
		df := diskFile{Name: disk.Name, Path: filepath.Join(d.instanceDir(spec.UUID), "disk."+disk.Name+".qcow2"), Format: "qcow2", Owned: true}
		if err := d.createBlank(context.Background(), df.Path, disk.SizeBytes); err != nil {
			t.Fatal(err)
		}
		rec.Disks = append(rec.Disks, df)
	}
	if err := d.writeRecord(rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// offlineDriver is a driver for tests that start no guest (TCG forced,
// so no acceleration probe boots).
func offlineDriver(t *testing.T) *Driver {
	t.Helper()
	state, run := testDirs(t)
	return newTestDriver(t, Config{StateDir: state, RunDir: run, VirtType: VirtQEMU})
}

// volumeIDs lists the volumes of a record, checking that the spec and
// the disks QEMU is built from agree.
func volumeIDs(t *testing.T, d *Driver, uuid string) []string {
	t.Helper()
	rec, err := d.readRecord(uuid)
	if err != nil {
		t.Fatal(err)
	}
	var spec, disks []string
	for _, x := range rec.Spec.Disks {
		if x.Volume != nil {
			spec = append(spec, x.Volume.VolumeID)
		}
	}
	for _, x := range rec.Disks {
		if x.Volume != nil {
			disks = append(disks, x.Volume.VolumeID)
		}
	}
	if len(spec) != len(disks) || len(rec.Spec.Disks) != len(rec.Disks) {
		t.Fatalf("record disagrees with itself: spec volumes %v, disks %v", spec, disks)
	}
	for i := range spec {
		if spec[i] != disks[i] {
			t.Fatalf("record disagrees with itself: spec volumes %v, disks %v", spec, disks)
		}
	}
	return disks
}

// TestVolumeAttachDetachShutOff: a shut-off guest only has its record
// changed, both calls are idempotent, and bad requests change nothing.
func TestVolumeAttachDetachShutOff(t *testing.T) {
	d := offlineDriver(t)
	ctx := context.Background()
	uuid := "6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e"
	shutOffGuest(t, d, hypervisor.Spec{UUID: uuid, Name: "vm", VCPUs: 1, MemoryMiB: 64,
		Disks: []hypervisor.Disk{{Name: "root", SizeBytes: 1 << 20}}})
	volA := "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	disk := hypervisor.Disk{Name: "vdb", Volume: testVolume(volA)}
	if err := d.AttachVolume(ctx, uuid, disk); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if err := d.AttachVolume(ctx, uuid, disk); err != nil {
		t.Fatalf("second attach: %v", err)
	}
	if got := volumeIDs(t, d, uuid); len(got) != 1 || got[0] != volA {
		t.Fatalf("volumes %v after attach, want [%s]", got, volA)
	}
	if fi, err := os.Stat(d.recordFile(uuid)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record holding a key: %v, mode %v, want 0600", err, fi.Mode())
	}

	for name, bad := range map[string]hypervisor.Disk{
		"no volume":           {Name: "vdc"},
		"name taken":          {Name: "vdb", Volume: testVolume("11111111-2222-4333-8444-555555555555")},
		"same first 8 chars":  {Name: "vdc", Volume: testVolume(volA[:8] + "-0000-4000-8000-000000000000")},
		"bad key":             {Name: "vdc", Volume: &hypervisor.VolumeConn{VolumeID: "11111111-2222-4333-8444-555555555555", Host: "h", Port: 1, Export: "e", PSKIdentity: "i", PSKKey: "zz"}},
		"comma in identity":   {Name: "vdc", Volume: &hypervisor.VolumeConn{VolumeID: "11111111-2222-4333-8444-555555555555", Host: "h", Port: 1, Export: "e", PSKIdentity: "a,b", PSKKey: testPSKKey}},
		"unknown bus":         {Name: "vdc", Bus: "ide", Volume: testVolume("11111111-2222-4333-8444-555555555555")},
		"name with a comma":   {Name: "vd,c", Volume: testVolume("11111111-2222-4333-8444-555555555555")},
		"image and a volume":  {Name: "vdc", Image: &hypervisor.Image{Path: "/x", Checksum: "ab"}, Volume: testVolume("11111111-2222-4333-8444-555555555555")},
		"invalid volume uuid": {Name: "vdc", Volume: testVolume("../../etc/passwd-0000-4000-8000-00000000")},
	} {
		if err := d.AttachVolume(ctx, uuid, bad); err == nil {
			t.Errorf("%s: attach accepted", name)
		}
		if got := volumeIDs(t, d, uuid); len(got) != 1 {
			t.Fatalf("%s: volumes %v after a refused attach", name, got)
		}
	}
	if err := d.AttachVolume(ctx, "00000000-0000-4000-8000-000000000000", disk); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("attach to an unknown guest: %v, want ErrNotFound", err)
	}

	// A suspended guest's saved machine would not match: refused.
	if err := os.WriteFile(d.stateFile(uuid), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	volB := "11111111-2222-4333-8444-555555555555"
	if err := d.AttachVolume(ctx, uuid, hypervisor.Disk{Name: "vdc", Volume: testVolume(volB)}); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Errorf("attach to a suspended guest: %v, want ErrInvalidState", err)
	}
	if err := d.DetachVolume(ctx, uuid, volA); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Errorf("detach from a suspended guest: %v, want ErrInvalidState", err)
	}
	os.Remove(d.stateFile(uuid))

	// A key directory left by the last boot goes with the volume.
	keyDir := volumePSKDir(d.guestRunDir(uuid), volA)
	if err := writeVolumeKey(keyDir, testVolume(volA)); err != nil {
		t.Fatal(err)
	}
	if err := d.DetachVolume(ctx, uuid, volA); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if got := volumeIDs(t, d, uuid); len(got) != 0 {
		t.Fatalf("volumes %v after detach", got)
	}
	if _, err := os.Stat(keyDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("key directory after detach: %v", err)
	}
	if err := d.DetachVolume(ctx, uuid, volA); err != nil {
		t.Fatalf("detach of a volume the guest no longer has: %v", err)
	}
	if err := d.DetachVolume(ctx, uuid, "not-a-uuid"); err != nil {
		t.Fatalf("detach of a volume the guest never had: %v", err)
	}
}

// TestVolumeRootDiskRules: a guest whose root disk is a volume keeps the
// driver's hands off it: no snapshot, no detach, no resize of it, and
// Destroy leaves it alone (it only removes the guest's own files).
func TestVolumeRootDiskRules(t *testing.T) {
	d := offlineDriver(t)
	ctx := context.Background()
	uuid := "6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e"
	root := "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	shutOffGuest(t, d, hypervisor.Spec{UUID: uuid, Name: "vm", VCPUs: 1, MemoryMiB: 64,
		Disks: []hypervisor.Disk{{Name: "vda", SizeBytes: 10 << 30, Volume: testVolume(root)}}})

	if err := d.Snapshot(ctx, uuid, filepath.Join(t.TempDir(), "snap.qcow2")); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Errorf("snapshot of a volume-backed guest: %v, want ErrInvalidState", err)
	}
	if err := d.DetachVolume(ctx, uuid, root); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Errorf("detach of the root volume: %v, want ErrInvalidState", err)
	}
	if c, err := d.Capacity(ctx); err != nil || c.DiskGiBUsed != 0 {
		t.Errorf("capacity %+v, %v: a volume takes no local disk", c, err)
	}

	// Resize: new vCPUs and memory, the volume untouched; the revert
	// keeps a volume attached while the resize was pending.
	cwd, _ := os.Getwd()
	if err := d.Resize(ctx, uuid, hypervisor.Resize{VCPUs: 2, MemoryMiB: 128, RootBytes: 20 << 30}); err != nil {
		t.Fatalf("resize: %v", err)
	}
	rec, _ := d.readRecord(uuid)
	if rec.Spec.VCPUs != 2 || rec.Spec.Disks[0].SizeBytes != 10<<30 || rec.Disks[0].Volume == nil {
		t.Fatalf("after resize: spec %+v disks %+v", rec.Spec, rec.Disks)
	}
	data := "11111111-2222-4333-8444-555555555555"
	if err := d.AttachVolume(ctx, uuid, hypervisor.Disk{Name: "vdb", Volume: testVolume(data)}); err != nil {
		t.Fatalf("attach during a pending resize: %v", err)
	}
	if err := d.RevertResize(ctx, uuid); err != nil {
		t.Fatalf("revert resize: %v", err)
	}
	if got := volumeIDs(t, d, uuid); len(got) != 2 || got[0] != root || got[1] != data {
		t.Fatalf("volumes %v after revert, want the root and the one attached meanwhile", got)
	}
	if rec, _ := d.readRecord(uuid); rec.Spec.VCPUs != 1 {
		t.Fatalf("revert kept %d vCPUs", rec.Spec.VCPUs)
	}
	if err := d.Resize(ctx, uuid, hypervisor.Resize{VCPUs: 2, MemoryMiB: 128, RootBytes: 20 << 30}); err != nil {
		t.Fatalf("second resize: %v", err)
	}
	if err := d.ConfirmResize(ctx, uuid); err != nil {
		t.Fatalf("confirm resize: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(cwd, "*.pre-resize")); len(left) != 0 {
		t.Fatalf("confirm resize touched %v", left)
	}

	keyDir := volumePSKDir(d.guestRunDir(uuid), data)
	if err := writeVolumeKey(keyDir, testVolume(data)); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(ctx, uuid); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	for _, p := range []string{d.instanceDir(uuid), d.guestRunDir(uuid)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after destroy: %v", p, err)
		}
	}
}

// TestSyncVolumeKeys: before a start, every volume has its key file
// (0600, identity:key) and keys of volumes gone from the spec are removed.
func TestSyncVolumeKeys(t *testing.T) {
	run := t.TempDir()
	a, b := testVolume("0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"), testVolume("11111111-2222-4333-8444-555555555555")
	if err := syncVolumeKeys(run, []diskFile{{Name: "vdb", Volume: a}, {Name: "vdc", Volume: b}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(volumePSKDir(run, a.VolumeID), "keys.psk")
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "compute-test:"+testPSKKey+"\n" {
		t.Fatalf("key file %q, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(volumePSKDir(run, a.VolumeID)); fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v, want 0700", fi.Mode().Perm())
	}
	if err := syncVolumeKeys(run, []diskFile{{Name: "root", Path: "/d.qcow2"}, {Name: "vdc", Volume: b}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(volumePSKDir(run, a.VolumeID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key of a detached volume kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(volumePSKDir(run, b.VolumeID), "keys.psk")); err != nil {
		t.Errorf("key of an attached volume: %v", err)
	}
}

// fakeMonitor serves QMP on a unix socket: it greets, accepts the
// capabilities negotiation and lets reply answer every other command
// (it may write events first); a command reply leaves unanswered gets
// an empty success. The driver's monitor on it is returned.
func fakeMonitor(t *testing.T, reply func(w *json.Encoder, command string, id json.RawMessage) (answered bool)) *qmp.Monitor {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}` + "\n"))
		sc := bufio.NewScanner(conn)
		w := json.NewEncoder(conn)
		for sc.Scan() {
			var req struct {
				Execute string          `json:"execute"`
				ID      json.RawMessage `json:"id"`
			}
			if json.Unmarshal(sc.Bytes(), &req) != nil {
				return
			}
			if req.Execute != "qmp_capabilities" && reply(w, req.Execute, req.ID) {
				continue
			}
			w.Encode(map[string]any{"return": map[string]any{}, "id": req.ID})
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mon, err := qmp.Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	return mon
}

// TestDeleteDeviceRetries: a guest that misses the first unplug requests
// (still booting) is asked again with growing waits until it releases
// the disk; one that never does fails after the last attempt.
func TestDeleteDeviceRetries(t *testing.T) {
	step, maxWait := volumeUnplugStep, volumeUnplugMaxWait
	volumeUnplugStep, volumeUnplugMaxWait = 20*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { volumeUnplugStep, volumeUnplugMaxWait = step, maxWait })
	d := &Driver{log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()

	// Released on the third request; the second is refused as pending,
	// as QEMU does for an unplug in progress.
	var n atomic.Int32
	mon := fakeMonitor(t, func(w *json.Encoder, command string, id json.RawMessage) bool {
		if command != "device_del" {
			return false
		}
		switch n.Add(1) {
		case 2:
			w.Encode(map[string]any{"error": map[string]any{"class": "GenericError", "desc": "Device disk-0b1c2d3e is already in the process of unplug"}, "id": id})
			return true
		case 3:
			w.Encode(map[string]any{"event": "DEVICE_DELETED", "data": map[string]any{"device": "disk-0b1c2d3e", "path": "/machine/peripheral/disk-0b1c2d3e"},
				"timestamp": map[string]any{"seconds": 1, "microseconds": 0}})
		}
		return false
	})
	if err := d.deleteDevice(ctx, mon, "u", "disk-0b1c2d3e"); err != nil {
		t.Fatalf("delete device released on the third request: %v", err)
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("%d device_del requests, want 3", got)
	}

	// Never released: every attempt is made, then an error.
	n.Store(0)
	never := fakeMonitor(t, func(w *json.Encoder, command string, id json.RawMessage) bool {
		if command == "device_del" {
			n.Add(1)
		}
		return false
	})
	if err := d.deleteDevice(ctx, never, "u", "disk-0b1c2d3e"); err == nil {
		t.Fatal("a device never released was reported deleted")
	}
	if got := int(n.Load()); got != volumeUnplugAttempts {
		t.Fatalf("%d device_del requests, want %d", got, volumeUnplugAttempts)
	}
}

// TestDeleteDeviceFirstRequestRefused: a refused first request is an
// error at once (nothing is pending to wait for), and a device already
// gone is success.
func TestDeleteDeviceFirstRequestRefused(t *testing.T) {
	d := &Driver{log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	for class, wantErr := range map[string]bool{"GenericError": true, "DeviceNotFound": false} {
		mon := fakeMonitor(t, func(w *json.Encoder, command string, id json.RawMessage) bool {
			w.Encode(map[string]any{"error": map[string]any{"class": class, "desc": "no"}, "id": id})
			return true
		})
		if err := d.deleteDevice(ctx, mon, "u", "disk-0b1c2d3e"); (err != nil) != wantErr {
			t.Errorf("first device_del answered %s: err %v, want error %v", class, err, wantErr)
		}
	}
}
