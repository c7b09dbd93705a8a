package fake

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

func volume(id string) *hypervisor.VolumeConn {
	return &hypervisor.VolumeConn{VolumeID: id, Host: "10.0.0.7", Port: 10809, Export: id + "-x",
		PSKIdentity: "compute-1", PSKKey: "00112233445566778899aabbccddeeff"}
}

func volumeIDs(t *testing.T, d *Driver, uuid string) []string {
	t.Helper()
	s, err := d.Spec(uuid)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range s.Disks {
		if x.Volume != nil {
			ids = append(ids, x.Volume.VolumeID)
		}
	}
	return ids
}

// TestVolumes: the fake keeps volumes in the spec under the qemu
// driver's rules: idempotent attach and detach, a clash of names or of
// QEMU node names refused, no detach of the root disk or from a paused
// guest, a pending resize's revert keeping what was attached meanwhile.
func TestVolumes(t *testing.T) {
	ctx := context.Background()
	d := New(Config{})
	s := spec(1)
	if _, err := d.Spawn(ctx, s); err != nil {
		t.Fatal(err)
	}
	a := "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	disk := hypervisor.Disk{Name: "vdb", Volume: volume(a)}
	for range 2 {
		if err := d.AttachVolume(ctx, s.UUID, disk); err != nil {
			t.Fatalf("attach: %v", err)
		}
	}
	if got := volumeIDs(t, d, s.UUID); len(got) != 1 || got[0] != a {
		t.Fatalf("volumes %v, want [%s]", got, a)
	}
	for name, bad := range map[string]hypervisor.Disk{
		"name taken":         {Name: "vdb", Volume: volume("11111111-2222-4333-8444-555555555555")},
		"same first 8 chars": {Name: "vdc", Volume: volume(a[:8] + "-0000-4000-8000-000000000000")},
		"unknown bus":        {Name: "vdc", Bus: "ide", Volume: volume("11111111-2222-4333-8444-555555555555")},
		"no volume":          {Name: "vdc"},
	} {
		if err := d.AttachVolume(ctx, s.UUID, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if got := volumeIDs(t, d, s.UUID); len(got) != 1 {
		t.Fatalf("volumes %v after refused attaches", got)
	}

	if err := d.Pause(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}
	if err := d.DetachVolume(ctx, s.UUID, a); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("detach from a paused guest: %v, want ErrInvalidState", err)
	}
	if err := d.Unpause(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}

	// Attached during a pending resize, it survives the revert.
	if err := d.DetachVolume(ctx, s.UUID, a); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if err := d.Resize(ctx, s.UUID, hypervisor.Resize{VCPUs: 2, MemoryMiB: 1024}); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachVolume(ctx, s.UUID, disk); err != nil {
		t.Fatal(err)
	}
	if err := d.RevertResize(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}
	if got := volumeIDs(t, d, s.UUID); len(got) != 1 || got[0] != a {
		t.Fatalf("volumes %v after revert, want [%s]", got, a)
	}
	if err := d.DetachVolume(ctx, s.UUID, a); err != nil {
		t.Fatal(err)
	}
	if err := d.DetachVolume(ctx, s.UUID, a); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	if got := volumeIDs(t, d, s.UUID); len(got) != 0 {
		t.Fatalf("volumes %v after detach", got)
	}
}

// TestBootFromVolume: a guest whose root is a volume cannot be
// snapshotted by the driver, keeps its root through a resize, and cannot
// lose it to a detach.
func TestBootFromVolume(t *testing.T) {
	ctx := context.Background()
	d := New(Config{})
	s := spec(2)
	root := "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	s.Disks = []hypervisor.Disk{{Name: "vda", SizeBytes: 1 << 30, Volume: volume(root)}}
	if _, err := d.Spawn(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := d.Snapshot(ctx, s.UUID, filepath.Join(t.TempDir(), "snap")); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Errorf("snapshot: %v, want ErrInvalidState", err)
	}
	if err := d.DetachVolume(ctx, s.UUID, root); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Errorf("detach of the root volume: %v, want ErrInvalidState", err)
	}
	if err := d.Resize(ctx, s.UUID, hypervisor.Resize{VCPUs: 2, MemoryMiB: 1024, RootBytes: 20 << 30}); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Spec(s.UUID); got.Disks[0].SizeBytes != 1<<30 || got.Disks[0].Volume == nil {
		t.Errorf("root after resize: %+v", got.Disks[0])
	}
}

// TestInfoVolumes: GetState and List name the volumes the guest has, so
// the agent's sync reports them; a detached one is gone from both.
func TestInfoVolumes(t *testing.T) {
	ctx := context.Background()
	d := New(Config{})
	s := spec(1)
	if _, err := d.Spawn(ctx, s); err != nil {
		t.Fatal(err)
	}
	a := "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	if err := d.AttachVolume(ctx, s.UUID, hypervisor.Disk{Name: "vdb", Volume: volume(a)}); err != nil {
		t.Fatal(err)
	}
	info, err := d.GetState(ctx, s.UUID)
	if err != nil || len(info.Volumes) != 1 || info.Volumes[0] != a {
		t.Fatalf("GetState volumes %v (%v), want [%s]", info.Volumes, err, a)
	}
	list, err := d.List(ctx)
	if err != nil || len(list) != 1 || len(list[0].Volumes) != 1 || list[0].Volumes[0] != a {
		t.Fatalf("List %+v (%v)", list, err)
	}
	if err := d.DetachVolume(ctx, s.UUID, a); err != nil {
		t.Fatal(err)
	}
	if info, _ := d.GetState(ctx, s.UUID); len(info.Volumes) != 0 {
		t.Fatalf("volumes after detach %v", info.Volumes)
	}
}
