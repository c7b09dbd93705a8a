package fake

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// TestGuestOperations: the fake follows the qemu driver's rules for the
// operations beyond power actions, so agent tests on it mean something.
func TestGuestOperations(t *testing.T) {
	ctx := context.Background()
	d := New(Config{})
	s := spec(1)
	if _, err := d.Spawn(ctx, s); err != nil {
		t.Fatal(err)
	}
	id := s.UUID

	snap := filepath.Join(t.TempDir(), "snap")
	if err := d.Snapshot(ctx, id, snap); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if b, err := os.ReadFile(snap); err != nil || !strings.Contains(string(b), "fake snapshot of "+id) {
		t.Fatalf("snapshot file %q: %v", b, err)
	}

	// Resize restarts a running guest; revert brings the old spec back.
	to := hypervisor.Resize{VCPUs: 2, MemoryMiB: 2048, RootBytes: 20 << 30}
	if err := d.Resize(ctx, id, to); err != nil {
		t.Fatalf("resize: %v", err)
	}
	if info, _ := d.GetState(ctx, id); info.VCPUs != 2 || info.MemoryMiB != 2048 || info.State != hypervisor.Running {
		t.Fatalf("after resize: %+v", info)
	}
	if got, _ := d.Spec(id); got.Disks[0].SizeBytes != 20<<30 {
		t.Fatalf("root disk after resize: %d", got.Disks[0].SizeBytes)
	}
	if err := d.Resize(ctx, id, to); err != nil {
		t.Fatalf("redelivered resize: %v", err)
	}
	if err := d.Resize(ctx, id, hypervisor.Resize{VCPUs: 4, MemoryMiB: 4096}); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("resize while one is pending: %v, want ErrInvalidState", err)
	}
	if err := d.RevertResize(ctx, id); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if got, _ := d.Spec(id); got.VCPUs != 1 || got.MemoryMiB != 512 || got.Disks[0].SizeBytes != 1<<30 {
		t.Fatalf("after revert: %+v", got)
	}
	if err := d.RevertResize(ctx, id); err != nil {
		t.Fatalf("second revert: %v", err)
	}
	// A stopped guest is resized but stays stopped; confirm keeps it.
	if err := d.PowerOff(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Resize(ctx, id, to); err != nil {
		t.Fatalf("resize stopped: %v", err)
	}
	if err := d.ConfirmResize(ctx, id); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	if info, _ := d.GetState(ctx, id); info.State != hypervisor.Shutdown || info.MemoryMiB != 2048 {
		t.Fatalf("stopped guest after resize and confirm: %+v", info)
	}
	if err := d.RevertResize(ctx, id); err != nil {
		t.Fatal(err)
	}
	if info, _ := d.GetState(ctx, id); info.MemoryMiB != 2048 {
		t.Fatalf("a revert after the confirm changed the guest: %+v", info)
	}

	// Rescue boots the guest (even a stopped one); unrescue boots it
	// normally again.
	img := &hypervisor.Image{ID: "rescue", Path: "/rescue", Checksum: "cd"}
	if err := d.Rescue(ctx, id, img, 0); err != nil {
		t.Fatalf("rescue: %v", err)
	}
	if info, _ := d.GetState(ctx, id); info.State != hypervisor.Running || d.Rescued(id) != img {
		t.Fatalf("rescued guest: %+v", info)
	}
	if err := d.Unrescue(ctx, id); err != nil || d.Rescued(id) != nil {
		t.Fatalf("unrescue: %v", err)
	}

	// NICs are kept in the spec; attach and detach are idempotent.
	nic := hypervisor.NIC{TapName: "tap1", MAC: "fa:16:3e:00:00:09"}
	for range 2 {
		if err := d.AttachInterface(ctx, id, nic); err != nil {
			t.Fatalf("attach: %v", err)
		}
	}
	if got, _ := d.Spec(id); len(got.NICs) != 1 || got.NICs[0] != nic {
		t.Fatalf("NICs after attach: %+v", got.NICs)
	}
	if err := d.AttachInterface(ctx, id, hypervisor.NIC{TapName: "bad,tap", MAC: nic.MAC}); err == nil {
		t.Fatal("attach of an invalid tap accepted")
	}
	for range 2 {
		if err := d.DetachInterface(ctx, id, nic.TapName); err != nil {
			t.Fatalf("detach: %v", err)
		}
	}
	if got, _ := d.Spec(id); len(got.NICs) != 0 {
		t.Fatalf("NICs after detach: %+v", got.NICs)
	}

	if err := d.InjectNMI(ctx, id); err != nil {
		t.Fatalf("nmi: %v", err)
	}
	if err := d.Suspend(ctx, id); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"nmi":    d.InjectNMI(ctx, id),
		"resize": d.Resize(ctx, id, hypervisor.Resize{VCPUs: 1, MemoryMiB: 512}),
		"rescue": d.Rescue(ctx, id, img, 0),
		"attach": d.AttachInterface(ctx, id, nic),
	} {
		if !errors.Is(err, hypervisor.ErrInvalidState) {
			t.Errorf("%s of a suspended guest: %v, want ErrInvalidState", name, err)
		}
	}
	d.Fail("snapshot", errors.New("disk on fire"))
	if err := d.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.Snapshot(ctx, id, snap); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("injected snapshot failure: %v", err)
	}
	if err := d.Snapshot(ctx, "00000000-0000-4000-8000-999999999999", snap); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("snapshot of a missing guest: %v, want ErrNotFound", err)
	}
}
