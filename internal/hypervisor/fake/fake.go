// Package fake is an in-memory hypervisor.Driver. It follows the same
// state machine and returns the same errors as the qemu driver, but runs
// nothing, so a scale test can put a thousand compute hosts in one process.
// Failures and guest-side events (a crash, a guest powering itself off) are
// injected with Fail and SetState.
package fake

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

var _ hypervisor.Driver = (*Driver)(nil)

// Config sizes the fake host.
type Config struct {
	VCPUs     int
	MemoryMiB int64
	DiskGiB   int64
	// SpawnDelay and ActionDelay make operations take time, to exercise
	// the agent's concurrency; zero by default.
	SpawnDelay, ActionDelay time.Duration
}

type guest struct {
	spec    hypervisor.Spec
	state   hypervisor.PowerState
	pid     int
	console []byte
	boots   int
	// preResize is the spec a pending resize replaced, kept for revert.
	preResize *hypervisor.Spec
	// rescue is the rescue image while the guest is rescued.
	rescue *hypervisor.Image
	nmis   int
}

// Driver is the fake hypervisor. The zero value is not usable; call New.
type Driver struct {
	cfg Config

	mu      sync.Mutex // guards the fields below
	guests  map[string]*guest
	nextPID int
	failOn  map[string]error // op -> error injected once
}

// New returns a fake host with cfg's capacity (defaults: 2 vCPUs,
// 24 GiB of RAM, 100 GiB of disk, like the project's build machines).
func New(cfg Config) *Driver {
	if cfg.VCPUs == 0 {
		cfg.VCPUs = 2
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 24 << 10
	}
	if cfg.DiskGiB == 0 {
		cfg.DiskGiB = 100
	}
	return &Driver{cfg: cfg, guests: map[string]*guest{}, nextPID: 1000, failOn: map[string]error{}}
}

// Fail makes the next call of op ("spawn", "destroy", "reboot",
// "power_off", "power_on", "pause", "unpause", "suspend", "resume",
// "snapshot", "resize", "confirm_resize", "revert_resize", "rescue",
// "unrescue", "attach_interface", "detach_interface", "inject_nmi",
// "attach_volume", "detach_volume") fail
// with err.
func (d *Driver) Fail(op string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failOn[op] = err
}

// SetState forces a guest's power state, as if the guest had done it
// (Shutdown: it powered itself off or its process died; Crashed).
func (d *Driver) SetState(uuid string, s hypervisor.PowerState) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[uuid]
	if g == nil {
		return fmt.Errorf("instance %s: %w", uuid, hypervisor.ErrNotFound)
	}
	g.state = s
	if s != hypervisor.Running && s != hypervisor.Paused {
		g.pid = 0
	}
	return nil
}

func (d *Driver) delay(ctx context.Context, dl time.Duration) error {
	if dl <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(dl)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// act runs f on uuid's guest under the lock after the injected failure
// and delay, if any.
func (d *Driver) act(ctx context.Context, op, uuid string, f func(g *guest) error) error {
	if err := d.delay(ctx, d.cfg.ActionDelay); err != nil {
		return fmt.Errorf("%s %s: %w", op, uuid, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.failOn[op]; err != nil {
		delete(d.failOn, op)
		return fmt.Errorf("%s %s: %w", op, uuid, err)
	}
	g := d.guests[uuid]
	if g == nil {
		return fmt.Errorf("%s %s: %w", op, uuid, hypervisor.ErrNotFound)
	}
	return f(g)
}

func (d *Driver) boot(g *guest) {
	d.nextPID++
	g.pid = d.nextPID
	g.state = hypervisor.Running
	g.boots++
	g.console = append(g.console, fmt.Sprintf("fake boot %d of %s\n%s login: \n", g.boots, g.spec.UUID, g.spec.Name)...)
}

func (d *Driver) info(g *guest) hypervisor.Info {
	i := hypervisor.Info{
		UUID: g.spec.UUID, Name: g.spec.Name, State: g.state, PID: g.pid,
		VCPUs: g.spec.VCPUs, MemoryMiB: g.spec.MemoryMiB,
	}
	if g.pid != 0 {
		// Nothing listens there: fake guests have no consoles to
		// connect to, only addresses to hand out.
		i.VNC, i.Serial = "127.0.0.1:5900", "127.0.0.1:10000"
	}
	// The fake has no hypervisor to ask: its spec is what it has.
	for _, disk := range g.spec.Disks {
		if disk.Volume != nil {
			i.Volumes = append(i.Volumes, disk.Volume.VolumeID)
		}
	}
	return i
}

// Spawn implements hypervisor.Driver.
func (d *Driver) Spawn(ctx context.Context, spec hypervisor.Spec) (hypervisor.Info, error) {
	if err := spec.Validate(); err != nil {
		return hypervisor.Info{}, fmt.Errorf("spawn: %w", err)
	}
	if spec.Name == "" {
		spec.Name = spec.UUID
	}
	if err := d.delay(ctx, d.cfg.SpawnDelay); err != nil {
		return hypervisor.Info{}, fmt.Errorf("spawn %s: %w", spec.UUID, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.failOn["spawn"]; err != nil {
		delete(d.failOn, "spawn")
		return hypervisor.Info{}, fmt.Errorf("spawn %s: %w", spec.UUID, err)
	}
	if g := d.guests[spec.UUID]; g != nil {
		if g.pid != 0 {
			return d.info(g), fmt.Errorf("spawn %s: %w", spec.UUID, hypervisor.ErrExists)
		}
		d.boot(g)
		return d.info(g), nil
	}
	g := &guest{spec: spec}
	d.guests[spec.UUID] = g
	d.boot(g)
	return d.info(g), nil
}

// Destroy implements hypervisor.Driver.
func (d *Driver) Destroy(ctx context.Context, uuid string) error {
	err := d.act(ctx, "destroy", uuid, func(g *guest) error {
		delete(d.guests, uuid)
		return nil
	})
	if err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
		return err
	}
	return nil
}

// Reboot implements hypervisor.Driver.
func (d *Driver) Reboot(ctx context.Context, uuid string, kind hypervisor.RebootKind) error {
	return d.act(ctx, "reboot", uuid, func(g *guest) error {
		if g.state == hypervisor.Running && kind == hypervisor.RebootSoft {
			g.console = append(g.console, "ACPI power button: rebooting\n"...)
		}
		d.boot(g)
		return nil
	})
}

// PowerOff implements hypervisor.Driver.
func (d *Driver) PowerOff(ctx context.Context, uuid string, timeout time.Duration) error {
	return d.act(ctx, "power_off", uuid, func(g *guest) error {
		g.state, g.pid = hypervisor.Shutdown, 0
		return nil
	})
}

// PowerOn implements hypervisor.Driver.
func (d *Driver) PowerOn(ctx context.Context, uuid string) error {
	return d.act(ctx, "power_on", uuid, func(g *guest) error {
		switch g.state {
		case hypervisor.Running, hypervisor.Paused:
			return nil
		case hypervisor.Suspended:
			g.state = hypervisor.Running
			d.nextPID++
			g.pid = d.nextPID
			return nil
		}
		d.boot(g)
		return nil
	})
}

// Pause implements hypervisor.Driver.
func (d *Driver) Pause(ctx context.Context, uuid string) error {
	return d.transition(ctx, "pause", uuid, hypervisor.Running, hypervisor.Paused)
}

// Unpause implements hypervisor.Driver.
func (d *Driver) Unpause(ctx context.Context, uuid string) error {
	return d.transition(ctx, "unpause", uuid, hypervisor.Paused, hypervisor.Running)
}

func (d *Driver) transition(ctx context.Context, op, uuid string, from, to hypervisor.PowerState) error {
	return d.act(ctx, op, uuid, func(g *guest) error {
		if g.state == to {
			return nil
		}
		if g.state != from {
			return fmt.Errorf("%s %s: %w", op, uuid, &hypervisor.StateError{Op: op, State: g.state})
		}
		g.state = to
		return nil
	})
}

// Suspend implements hypervisor.Driver.
func (d *Driver) Suspend(ctx context.Context, uuid string) error {
	return d.act(ctx, "suspend", uuid, func(g *guest) error {
		switch g.state {
		case hypervisor.Suspended:
			return nil
		case hypervisor.Running, hypervisor.Paused:
			g.state, g.pid = hypervisor.Suspended, 0
			return nil
		}
		return fmt.Errorf("suspend %s: %w", uuid, &hypervisor.StateError{Op: "suspend", State: g.state})
	})
}

// Resume implements hypervisor.Driver.
func (d *Driver) Resume(ctx context.Context, uuid string) error {
	return d.act(ctx, "resume", uuid, func(g *guest) error {
		switch g.state {
		case hypervisor.Running:
			return nil
		case hypervisor.Suspended:
			g.state = hypervisor.Running
			d.nextPID++
			g.pid = d.nextPID
			return nil
		}
		return fmt.Errorf("resume %s: %w", uuid, &hypervisor.StateError{Op: "resume", State: g.state})
	})
}

// GetState implements hypervisor.Driver.
func (d *Driver) GetState(ctx context.Context, uuid string) (hypervisor.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[uuid]
	if g == nil {
		return hypervisor.Info{}, fmt.Errorf("instance %s: %w", uuid, hypervisor.ErrNotFound)
	}
	return d.info(g), nil
}

// List implements hypervisor.Driver; guests are sorted by UUID.
func (d *Driver) List(ctx context.Context) ([]hypervisor.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]hypervisor.Info, 0, len(d.guests))
	for _, g := range d.guests {
		out = append(out, d.info(g))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out, nil
}

// ConsoleLog implements hypervisor.Driver.
func (d *Driver) ConsoleLog(ctx context.Context, uuid string, maxBytes int) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.guests[uuid]
	if g == nil {
		return nil, fmt.Errorf("console log %s: %w", uuid, hypervisor.ErrNotFound)
	}
	b := g.console
	if maxBytes > 0 && len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	return append([]byte(nil), b...), nil
}

// Capacity implements hypervisor.Driver.
func (d *Driver) Capacity(ctx context.Context) (hypervisor.Capacity, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := hypervisor.Capacity{
		VCPUs: d.cfg.VCPUs, MemoryMiB: d.cfg.MemoryMiB, DiskGiB: d.cfg.DiskGiB,
		HypervisorType: "fake", HypervisorVersion: 1000, VirtType: "fake",
	}
	var disk int64
	for _, g := range d.guests {
		c.VCPUsUsed += g.spec.VCPUs
		c.MemoryMiBUsed += int64(g.spec.MemoryMiB)
		for _, dk := range g.spec.Disks {
			if dk.Path == "" {
				disk += dk.SizeBytes
			}
		}
	}
	c.DiskGiBUsed = (disk + 1<<30 - 1) >> 30
	return c, nil
}

// Close implements hypervisor.Driver; the fake has nothing to stop, and
// its guests stay, as real guests outlive their agent.
func (d *Driver) Close() error { return nil }
