// Package fakeagent is a compute agent without guests: it speaks the
// agent side of the compute bus seam (see package compute) and moves
// servers through their life cycle at once, so the API, scheduler and
// clients can be tested end to end, and the control plane benchmarked
// with many hosts, without QEMU. It sits beside the real agent and
// consumes exactly the same messages.
package fakeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// Config describes the pretend host.
type Config struct {
	Host             string
	AvailabilityZone string
	VCPUs            int
	MemoryMB         int
	LocalGB          int
	Architecture     string
	HypervisorType   string
	// Heartbeat is the interval between reports; 0 means 10s.
	Heartbeat time.Duration
	// Delay is how long each command takes.
	Delay time.Duration
	// FailBuild, when set, decides whether a build fails on this host:
	// a non-nil fault fails it, and reschedule asks for another host.
	FailBuild func(spec compute.InstanceSpec) (fault *compute.Fault, reschedule bool)
	// FailVolume, when set, decides whether an attach or detach of a
	// volume fails on this host (a non-nil fault fails it).
	FailVolume func(cmd compute.Command) *compute.Fault
	// Network is the network name addresses are reported under.
	Network string
	Log     *slog.Logger
}

// Loss is how a command is lost, as it would be by a host that dies.
type Loss int

const (
	// Keep carries the command out and reports it.
	Keep Loss = iota
	// LoseCommand drops the command before the host acts on it.
	LoseCommand
	// LoseReport carries the command out and drops its report.
	LoseReport
)

// Agent is a running fake agent.
type Agent struct {
	cfg  Config
	bus  *bus.Bus
	log  *slog.Logger
	subs []*bus.Subscription

	mu     sync.Mutex
	seen   map[string]bool   // guarded by mu; command ids handled
	guests map[string]string // guarded by mu; instance id -> vm_state
	// flavors are the guests' flavors, for diagnostics; guarded by mu.
	flavors map[string]compute.FlavorSpec
	nextIP  int                        // guarded by mu
	cmds    []compute.Command          // guarded by mu; every command, in order
	stop    context.CancelFunc         // guarded by mu
	done    chan struct{}              // guarded by mu
	paused  map[string]chan struct{}   // guarded by mu; instance -> release
	hold    func(compute.Command) bool // guarded by mu
	lose    func(compute.Command) Loss // guarded by mu
	// volumes are the volume ids each guest has; guarded by mu.
	volumes map[string][]string
	// busy counts each guest's commands in progress; guarded by mu.
	busy map[string]int
	// order serialises the commands of one instance, as a real agent
	// must: a delete never overtakes the build it follows.
	order map[string]*sync.Mutex // guarded by mu
}

// Start registers the host with one heartbeat, then serves commands and
// keeps beating until Stop.
func Start(ctx context.Context, b *bus.Bus, cfg Config) (*Agent, error) {
	if cfg.Host == "" {
		return nil, errors.New("fakeagent: no host name")
	}
	if cfg.VCPUs == 0 {
		cfg.VCPUs = 2
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 24 * 1024
	}
	if cfg.LocalGB == 0 {
		cfg.LocalGB = 200
	}
	if cfg.Architecture == "" {
		cfg.Architecture = "x86_64"
	}
	if cfg.HypervisorType == "" {
		cfg.HypervisorType = "QEMU"
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Network == "" {
		cfg.Network = "private"
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{cfg: cfg, bus: b, log: log.With("fakeagent", cfg.Host), seen: map[string]bool{}, guests: map[string]string{}, flavors: map[string]compute.FlavorSpec{},
		paused: map[string]chan struct{}{}, order: map[string]*sync.Mutex{}, volumes: map[string][]string{}, busy: map[string]int{}}
	cmds, err := bus.Consume(ctx, b, compute.HostSubject(cfg.Host), a.handle, bus.WithConcurrency(16), bus.WithRetryDelay(50*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("fakeagent %s: %w", cfg.Host, err)
	}
	console, err := bus.Handle(b, compute.ConsoleSubject(cfg.Host), "", a.console)
	if err != nil {
		_ = cmds.Unsubscribe()
		return nil, fmt.Errorf("fakeagent %s: %w", cfg.Host, err)
	}
	diag, err := bus.Handle(b, compute.DiagnosticsSubject(cfg.Host), "", a.diagnostics)
	if err != nil {
		_ = cmds.Unsubscribe()
		_ = console.Unsubscribe()
		return nil, fmt.Errorf("fakeagent %s: %w", cfg.Host, err)
	}
	a.subs = []*bus.Subscription{cmds, console, diag}
	if err := a.Beat(ctx); err != nil {
		_ = a.Stop()
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.mu.Lock()
	a.stop, a.done = cancel, done
	a.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-t.C:
				if err := a.Beat(loopCtx); err != nil && loopCtx.Err() == nil {
					a.log.Warn("heartbeat", "err", err)
				}
			}
		}
	}()
	return a, nil
}

// Stop stops serving; the host goes down once its heartbeats age out.
func (a *Agent) Stop() error {
	a.mu.Lock()
	stop, done := a.stop, a.done
	a.stop = nil
	for _, ch := range a.paused {
		close(ch)
	}
	a.paused = map[string]chan struct{}{}
	a.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	var errs []error
	for _, s := range a.subs {
		errs = append(errs, s.Unsubscribe())
	}
	return errors.Join(errs...)
}

// Beat sends one heartbeat, with the guests' volumes as the real agent
// reports them.
func (a *Agent) Beat(ctx context.Context) error {
	a.mu.Lock()
	running := len(a.guests)
	guests := make([]compute.GuestVolumes, 0, len(a.guests))
	for id := range a.guests {
		guests = append(guests, compute.GuestVolumes{InstanceID: id, Volumes: append([]string(nil), a.volumes[id]...), Busy: a.busy[id] > 0})
	}
	for id, n := range a.busy {
		if _, ok := a.guests[id]; !ok && n > 0 {
			guests = append(guests, compute.GuestVolumes{InstanceID: id, Busy: true})
		}
	}
	a.mu.Unlock()
	return bus.Publish(ctx, a.bus, compute.SubjectHeartbeat, compute.HostReport{
		Host: a.cfg.Host, AvailabilityZone: a.cfg.AvailabilityZone, VCPUs: a.cfg.VCPUs, MemoryMB: a.cfg.MemoryMB,
		LocalGB: a.cfg.LocalGB, HypervisorType: a.cfg.HypervisorType, HypervisorVersion: 8002000,
		HypervisorHostname: a.cfg.Host, HostIP: "127.0.0.1", Architecture: a.cfg.Architecture, RunningVMs: running,
		Guests: guests, GuestsListed: true, At: time.Now(),
	})
}

// Lose makes the commands for which lose says so go missing, so tests
// can play a host that died mid-command; nil loses nothing.
func (a *Agent) Lose(lose func(compute.Command) Loss) {
	a.mu.Lock()
	a.lose = lose
	a.mu.Unlock()
}

// Volumes returns the volume ids the host's guest has.
func (a *Agent) Volumes(instanceID string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.volumes[instanceID]...)
}

// Hold makes commands for which hold returns true wait until Release,
// so tests can observe transitional states.
func (a *Agent) Hold(hold func(compute.Command) bool) {
	a.mu.Lock()
	a.hold = hold
	a.mu.Unlock()
}

// Release lets held commands of an instance go on.
func (a *Agent) Release(instanceID string) {
	a.mu.Lock()
	ch := a.paused[instanceID]
	delete(a.paused, instanceID)
	a.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// Commands returns every command received, in order.
func (a *Agent) Commands() []compute.Command {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]compute.Command(nil), a.cmds...)
}

// Guests returns the guests the host has, with their states.
func (a *Agent) Guests() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]string{}
	for k, v := range a.guests {
		out[k] = v
	}
	return out
}

func (a *Agent) handle(ctx context.Context, cmd compute.Command) error {
	a.mu.Lock()
	if a.seen[cmd.ID] {
		a.mu.Unlock()
		return nil
	}
	lock := a.order[cmd.Instance.ID]
	if lock == nil {
		lock = &sync.Mutex{}
		a.order[cmd.Instance.ID] = lock
	}
	a.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	a.mu.Lock()
	if a.seen[cmd.ID] {
		// A redelivery that waited for the first delivery to finish.
		a.mu.Unlock()
		return nil
	}
	a.cmds = append(a.cmds, cmd)
	loss := Keep
	if a.lose != nil {
		loss = a.lose(cmd)
	}
	if loss == LoseCommand {
		a.seen[cmd.ID] = true
		a.mu.Unlock()
		return nil
	}
	var wait chan struct{}
	if a.hold != nil && a.hold(cmd) {
		wait = make(chan struct{})
		a.paused[cmd.Instance.ID] = wait
	}
	a.busy[cmd.Instance.ID]++
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.busy[cmd.Instance.ID]--; a.busy[cmd.Instance.ID] <= 0 {
			delete(a.busy, cmd.Instance.ID)
		}
		a.mu.Unlock()
	}()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if a.cfg.Delay > 0 {
		time.Sleep(a.cfg.Delay)
	}
	rep := a.apply(cmd)
	if loss == LoseReport {
		a.mu.Lock()
		a.seen[cmd.ID] = true
		a.mu.Unlock()
		return nil
	}
	rep.CommandID, rep.Op, rep.RequestID, rep.Host, rep.InstanceID, rep.At = cmd.ID, cmd.Op, cmd.RequestID, a.cfg.Host, cmd.Instance.ID, time.Now()
	if cmd.Volume != nil {
		rep.VolumeID = cmd.Volume.VolumeID
	}
	if err := bus.CastDurable(ctx, a.bus, compute.SubjectReports, rep); err != nil {
		return err // redelivered, and reported then
	}
	// Only a reported command counts as done; the API ignores a second
	// report of the same command, so a redelivery after a lost ack is safe.
	a.mu.Lock()
	a.seen[cmd.ID] = true
	a.mu.Unlock()
	return nil
}

// apply pretends to carry out a command and says how the guest is now.
func (a *Agent) apply(cmd compute.Command) compute.InstanceReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := cmd.Instance.ID
	ok := func(vm string, power int) compute.InstanceReport {
		if vm == "" {
			delete(a.guests, id)
			delete(a.flavors, id)
			delete(a.volumes, id)
		} else {
			a.guests[id] = vm
			a.flavors[id] = cmd.Instance.Flavor
		}
		return compute.InstanceReport{Success: true, VMState: vm, PowerState: power}
	}
	switch cmd.Op {
	case compute.OpBuild:
		if a.cfg.FailBuild != nil {
			if f, again := a.cfg.FailBuild(cmd.Instance); f != nil {
				return compute.InstanceReport{Success: false, Fault: f, Reschedule: again}
			}
		}
		a.nextIP++
		rep := ok("active", compute.PowerRunning)
		a.volumes[id] = nil
		for _, v := range cmd.Instance.Volumes {
			a.volumes[id] = append(a.volumes[id], v.VolumeID)
		}
		rep.Addresses = map[string][]compute.Address{a.cfg.Network: {{
			Addr: fmt.Sprintf("10.0.%d.%d", a.nextIP/250, a.nextIP%250+2), Version: 4,
			MAC: fmt.Sprintf("fa:16:3e:00:%02x:%02x", a.nextIP/256, a.nextIP%256), Type: "fixed",
		}}}
		return rep
	case compute.OpShelve:
		return ok("", compute.PowerNoState)
	case compute.OpRescue:
		return ok("rescued", compute.PowerRunning)
	case compute.OpUnrescue:
		return ok("active", compute.PowerRunning)
	case compute.OpDelete:
		rep := ok("", compute.PowerNoState)
		rep.Deleted = true
		return rep
	case compute.OpStop:
		return ok("stopped", compute.PowerShutdown)
	case compute.OpStart, compute.OpReboot, compute.OpUnpause, compute.OpResume, compute.OpRebuild,
		compute.OpConfirmResize, compute.OpRevertResize:
		return ok("active", compute.PowerRunning)
	case compute.OpPause:
		return ok("paused", compute.PowerPaused)
	case compute.OpSuspend:
		return ok("suspended", compute.PowerSuspended)
	case compute.OpResize:
		return ok("resized", compute.PowerRunning)
	case compute.OpAttachVolume, compute.OpDetachVolume:
		vm := a.guests[id]
		if vm == "" {
			vm = "active"
		}
		if cmd.Volume == nil {
			return compute.InstanceReport{Success: false, VMState: vm, Fault: &compute.Fault{Code: 400, Message: cmd.Op + " without a volume"}}
		}
		if a.cfg.FailVolume != nil {
			if f := a.cfg.FailVolume(cmd); f != nil {
				return compute.InstanceReport{Success: false, PowerState: powerOf(vm), Fault: f}
			}
		}
		vols := slices.DeleteFunc(a.volumes[id], func(v string) bool { return v == cmd.Volume.VolumeID })
		if cmd.Op == compute.OpAttachVolume {
			vols = append(vols, cmd.Volume.VolumeID)
		}
		a.volumes[id] = vols
		return ok(vm, powerOf(vm))
	case compute.OpSnapshot, compute.OpCrashDump, compute.OpAttachInterface, compute.OpDetachInterface:
		vm := a.guests[id]
		if vm == "" {
			vm = "active"
		}
		return ok(vm, compute.PowerRunning)
	}
	return compute.InstanceReport{Success: false, Fault: &compute.Fault{Code: 500, Message: "unknown operation " + cmd.Op}}
}

// diagnostics answers as a guest of the fake hypervisor would: its
// flavor's shape (one root disk) and, as nothing runs, no counters.
func (a *Agent) diagnostics(_ context.Context, req compute.DiagnosticsRequest) (hypervisor.Diagnostics, error) {
	a.mu.Lock()
	vm, ok := a.guests[req.InstanceID]
	f := a.flavors[req.InstanceID]
	a.mu.Unlock()
	if !ok {
		return hypervisor.Diagnostics{}, fmt.Errorf("no guest %s on %s", req.InstanceID, a.cfg.Host)
	}
	state := hypervisor.Running
	switch vm {
	case "stopped":
		state = hypervisor.Shutdown
	case "paused":
		state = hypervisor.Paused
	case "suspended":
		state = hypervisor.Suspended
	}
	d := hypervisor.Diagnostics{State: state, Hypervisor: "fake", HypervisorOS: "linux", MemoryMaxMiB: f.MemoryMB,
		Disks: []hypervisor.DiskStats{{Device: "vda"}}}
	for i := range f.VCPUs {
		d.CPUs = append(d.CPUs, hypervisor.CPUStats{ID: i})
	}
	return d, nil
}

func (a *Agent) console(_ context.Context, req compute.ConsoleRequest) (compute.ConsoleReply, error) {
	a.mu.Lock()
	_, ok := a.guests[req.InstanceID]
	a.mu.Unlock()
	if !ok {
		return compute.ConsoleReply{}, fmt.Errorf("no guest %s on %s", req.InstanceID, a.cfg.Host)
	}
	switch req.Type {
	case "serial":
		return compute.ConsoleReply{Host: "127.0.0.1", Port: 10000}, nil
	case "log", "":
	default:
		return compute.ConsoleReply{Host: "127.0.0.1", Port: 5900}, nil
	}
	lines := []string{"fake guest " + req.InstanceID + " booting", "Sending discover...", "Lease of 10.0.0.2 obtained", "login:"}
	if req.Length > 0 && req.Length < len(lines) {
		lines = lines[len(lines)-req.Length:]
	}
	return compute.ConsoleReply{Output: strings.Join(lines, "\n") + "\n"}, nil
}

// powerOf is the power state of a guest in vm_state vm.
func powerOf(vm string) int {
	switch vm {
	case "stopped":
		return compute.PowerShutdown
	case "paused":
		return compute.PowerPaused
	case "suspended":
		return compute.PowerSuspended
	}
	return compute.PowerRunning
}
