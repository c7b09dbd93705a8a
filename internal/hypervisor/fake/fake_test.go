package fake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

func spec(n int) hypervisor.Spec {
	return hypervisor.Spec{
		UUID:      fmt.Sprintf("00000000-0000-4000-8000-%012d", n),
		Name:      fmt.Sprintf("instance-%08x", n),
		VCPUs:     1,
		MemoryMiB: 512,
		Disks:     []hypervisor.Disk{{Name: "root", SizeBytes: 1 << 30, Image: &hypervisor.Image{ID: "img", Path: "/img", Checksum: "ab"}}},
	}
}

// TestLifecycle walks one guest through every transition and the invalid
// ones, which must fail with ErrInvalidState as the qemu driver's do.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	d := New(Config{})
	s := spec(1)
	info, err := d.Spawn(ctx, s)
	if err != nil || info.State != hypervisor.Running || info.PID == 0 {
		t.Fatalf("spawn: %+v %v", info, err)
	}
	if _, err := d.Spawn(ctx, s); !errors.Is(err, hypervisor.ErrExists) {
		t.Fatalf("second spawn: %v, want ErrExists", err)
	}
	step := func(name string, f func() error, want hypervisor.PowerState) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := d.GetState(ctx, s.UUID)
		if err != nil || got.State != want {
			t.Fatalf("after %s: state %v (%v), want %v", name, got.State, err, want)
		}
	}
	step("pause", func() error { return d.Pause(ctx, s.UUID) }, hypervisor.Paused)
	if err := d.Suspend(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}
	if err := d.Pause(ctx, s.UUID); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("pause suspended: %v, want ErrInvalidState", err)
	}
	step("resume", func() error { return d.Resume(ctx, s.UUID) }, hypervisor.Running)
	step("soft reboot", func() error { return d.Reboot(ctx, s.UUID, hypervisor.RebootSoft) }, hypervisor.Running)
	step("power off", func() error { return d.PowerOff(ctx, s.UUID, time.Second) }, hypervisor.Shutdown)
	if err := d.Unpause(ctx, s.UUID); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("unpause shut-off guest: %v, want ErrInvalidState", err)
	}
	if err := d.Resume(ctx, s.UUID); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("resume shut-off guest: %v, want ErrInvalidState", err)
	}
	step("power on", func() error { return d.PowerOn(ctx, s.UUID) }, hypervisor.Running)
	if err := d.SetState(s.UUID, hypervisor.Crashed); err != nil {
		t.Fatal(err)
	}
	step("hard reboot of a crashed guest", func() error { return d.Reboot(ctx, s.UUID, hypervisor.RebootHard) }, hypervisor.Running)
	log, err := d.ConsoleLog(ctx, s.UUID, 0)
	if err != nil || len(log) == 0 {
		t.Fatalf("console log: %q %v", log, err)
	}
	if err := d.Destroy(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(ctx, s.UUID); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if _, err := d.GetState(ctx, s.UUID); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("state after destroy: %v, want ErrNotFound", err)
	}
}

func TestFailureInjectionAndValidation(t *testing.T) {
	ctx := context.Background()
	d := New(Config{})
	boom := errors.New("boom")
	d.Fail("spawn", boom)
	if _, err := d.Spawn(ctx, spec(2)); !errors.Is(err, boom) {
		t.Fatalf("spawn: %v, want injected error", err)
	}
	if _, err := d.Spawn(ctx, spec(2)); err != nil {
		t.Fatalf("spawn after the injected failure: %v", err)
	}
	bad := spec(3)
	bad.UUID = "../etc"
	if _, err := d.Spawn(ctx, bad); err == nil {
		t.Fatal("spawn with a bad uuid succeeded")
	}
	if err := d.Pause(ctx, spec(4).UUID); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("pause unknown: %v", err)
	}
}

// TestThousandHosts runs 1,000 fake hosts with 10 guests each, spawned
// concurrently, and checks capacity accounting: the scale the compute
// service's benchmarks need.
func TestThousandHosts(t *testing.T) {
	ctx := context.Background()
	hosts := make([]*Driver, 1000)
	for i := range hosts {
		hosts[i] = New(Config{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(hosts))
	for h, d := range hosts {
		wg.Add(1)
		go func(h int, d *Driver) {
			defer wg.Done()
			for g := 0; g < 10; g++ {
				if _, err := d.Spawn(ctx, spec(h*10+g)); err != nil {
					errs <- err
					return
				}
			}
		}(h, d)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, d := range hosts {
		l, _ := d.List(ctx)
		total += len(l)
		c, _ := d.Capacity(ctx)
		if c.VCPUsUsed != 10 || c.MemoryMiBUsed != 5120 || c.DiskGiBUsed != 10 {
			t.Fatalf("capacity %+v", c)
		}
	}
	if total != 10000 {
		t.Fatalf("%d guests, want 10000", total)
	}
}
