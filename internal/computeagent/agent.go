package computeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// Config describes one host's agent.
type Config struct {
	// Host is the host's name: the compute.host.<Host> queue, the name
	// the scheduler places servers on, and the binding:host_id of the
	// ports of its guests (so it must equal the networking agent's).
	Host             string
	AvailabilityZone string
	Bus              *bus.Bus
	Driver           hypervisor.Driver
	// Image is an image v2 client (service user) for image metadata and
	// downloads; Network a networking v2 client with admin rights.
	Image   *gophercloud.ServiceClient
	Network *gophercloud.ServiceClient
	// ImageCacheDir holds downloaded images, one file per checksum.
	ImageCacheDir string
	// TapPrefix is the networking data plane's device prefix: a port's
	// tap is dataplane.PortDevice(TapPrefix, portID). Default
	// dataplane.DefaultPrefix, as the data plane's.
	TapPrefix string
	// TapExists reports whether a network device exists; the default
	// looks in /sys/class/net.
	TapExists func(name string) bool
	// TapTimeout bounds the wait for the networking agent to create a
	// port's tap (default 60s); a build that runs out is rescheduled.
	TapTimeout time.Duration
	// ShutdownTimeout is how long a stop waits for an ACPI shutdown
	// before forcing it (default 60s, Nova's shutdown_timeout).
	ShutdownTimeout time.Duration
	// Heartbeat is the interval between HostReports (default 10s).
	Heartbeat time.Duration
	// PowerSync is the interval of the power-state sync (default 10s).
	PowerSync time.Duration
	// SyncTimeout bounds the start-up sync call, retries included
	// (default 30s). When the API cannot be reached the agent adopts
	// every guest it finds and destroys nothing.
	SyncTimeout time.Duration
	// ForceConfigDrive gives every guest a config drive (Nova's
	// force_config_drive).
	ForceConfigDrive bool
	// Concurrency bounds the commands run at once (default 8).
	Concurrency int
	// Architecture is reported to the scheduler (default: this machine's,
	// in Nova's spelling); HostIP is shown in the hypervisor views.
	Architecture string
	HostIP       string
	// Allocation ratios the host asks for; 0 takes the API's defaults.
	CPUAllocationRatio, RAMAllocationRatio, DiskAllocationRatio float64
	Log                                                         *slog.Logger
}

// Agent is a running compute agent.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	subs []*bus.Subscription

	mu     sync.Mutex
	seen   map[string]bool            // guarded by mu; command ids reported
	order  []string                   // guarded by mu; seen ids, oldest first
	guests map[string]*guest          // guarded by mu; instance id -> what we know
	queues map[string][]chan struct{} // guarded by mu; instance id -> waiting commands, head runs
	images map[string]*sync.Mutex     // guarded by mu; cache file -> download lock
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// guest is the agent's knowledge of one instance on this host.
type guest struct {
	spec  compute.InstanceSpec
	vm    string // vm_state the API was last told
	power int    // power_state the API was last told
}

// seenLimit bounds the remembered command ids; redeliveries come within
// seconds, so the most recent ones are all that matter.
const seenLimit = 10000

// Start re-adopts the host's guests, then serves its commands and
// console calls and runs the heartbeat and power-sync loops until Stop.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Host == "" || cfg.Bus == nil || cfg.Driver == nil {
		return nil, errors.New("compute agent: host, bus and driver are required")
	}
	if cfg.TapExists == nil {
		cfg.TapExists = func(name string) bool {
			_, err := os.Stat(filepath.Join("/sys/class/net", name))
			return err == nil
		}
	}
	if cfg.TapPrefix == "" {
		cfg.TapPrefix = dataplane.DefaultPrefix
	}
	if cfg.TapTimeout <= 0 {
		cfg.TapTimeout = time.Minute
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = time.Minute
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.PowerSync <= 0 {
		cfg.PowerSync = 10 * time.Second
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 30 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Architecture == "" {
		cfg.Architecture = novaArch(runtime.GOARCH)
	}
	if cfg.HostIP == "" {
		cfg.HostIP = hostIP(net.InterfaceAddrs)
	}
	if cfg.ImageCacheDir == "" {
		cfg.ImageCacheDir = filepath.Join(os.TempDir(), "nimbus-images")
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{cfg: cfg, log: log.With("host", cfg.Host), seen: map[string]bool{}, guests: map[string]*guest{},
		queues: map[string][]chan struct{}{}, images: map[string]*sync.Mutex{}}
	a.adopt(ctx)
	cmds, err := bus.Consume(ctx, cfg.Bus, compute.HostSubject(cfg.Host), a.handle,
		bus.WithConcurrency(cfg.Concurrency), bus.WithRetryDelay(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("compute agent %s: %w", cfg.Host, err)
	}
	console, err := bus.Handle(cfg.Bus, compute.ConsoleSubject(cfg.Host), "", a.console)
	if err != nil {
		_ = cmds.Unsubscribe()
		return nil, fmt.Errorf("compute agent %s: %w", cfg.Host, err)
	}
	diag, err := bus.Handle(cfg.Bus, compute.DiagnosticsSubject(cfg.Host), "", a.diagnostics)
	if err != nil {
		_ = cmds.Unsubscribe()
		_ = console.Unsubscribe()
		return nil, fmt.Errorf("compute agent %s: %w", cfg.Host, err)
	}
	events, err := bus.Subscribe(cfg.Bus, compute.SubjectEventsPrefix+cfg.Host, "", a.externalEvent)
	if err != nil {
		_ = cmds.Unsubscribe()
		_ = console.Unsubscribe()
		_ = diag.Unsubscribe()
		return nil, fmt.Errorf("compute agent %s: %w", cfg.Host, err)
	}
	a.subs = []*bus.Subscription{cmds, console, diag, events}
	if err := a.Beat(ctx); err != nil {
		_ = a.Stop()
		return nil, fmt.Errorf("compute agent %s: first heartbeat: %w", cfg.Host, err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	a.every(loopCtx, cfg.Heartbeat, "heartbeat", a.Beat)
	a.every(loopCtx, cfg.PowerSync, "power sync", a.SyncPowerStates)
	a.log.Info("compute agent running", "guests", len(a.guests))
	return a, nil
}

func (a *Agent) every(ctx context.Context, d time.Duration, what string, f func(context.Context) error) {
	a.done.Add(1)
	go func() {
		defer a.done.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := f(ctx); err != nil && ctx.Err() == nil {
					a.log.Warn(what, "err", err)
				}
			}
		}
	}()
}

// Stop stops serving. Guests keep running, and the driver stays open:
// it belongs to the caller.
func (a *Agent) Stop() error {
	if a.stop != nil {
		a.stop()
		a.done.Wait()
		a.stop = nil
	}
	var errs []error
	for _, s := range a.subs {
		errs = append(errs, s.Unsubscribe())
	}
	a.subs = nil
	return errors.Join(errs...)
}

// Beat sends one heartbeat with the driver's capacity.
func (a *Agent) Beat(ctx context.Context) error {
	c, err := a.cfg.Driver.Capacity(ctx)
	if err != nil {
		return fmt.Errorf("capacity: %w", err)
	}
	running := 0
	busyBefore := a.busyGuests()
	list, err := a.cfg.Driver.List(ctx)
	var guests []compute.GuestVolumes
	if err == nil {
		running = len(list)
		guests = guestVolumes(list, busyBefore, a.busyGuests())
	} else {
		a.log.Warn("list guests for the heartbeat", "err", err)
	}
	return bus.Publish(ctx, a.cfg.Bus, compute.SubjectHeartbeat, compute.HostReport{
		Guests: guests, GuestsListed: err == nil,
		Host: a.cfg.Host, AvailabilityZone: a.cfg.AvailabilityZone,
		VCPUs: c.VCPUs, MemoryMB: int(c.MemoryMiB), LocalGB: int(c.DiskGiB),
		CPUAllocationRatio: a.cfg.CPUAllocationRatio, RAMAllocationRatio: a.cfg.RAMAllocationRatio,
		DiskAllocationRatio: a.cfg.DiskAllocationRatio,
		HypervisorType:      c.HypervisorType, HypervisorVersion: c.HypervisorVersion,
		HypervisorHostname: a.cfg.Host, HostIP: a.cfg.HostIP, Architecture: a.cfg.Architecture,
		RunningVMs: running, At: time.Now().UTC(),
	})
}

// novaArch spells a Go architecture as Nova's (and the image property
// hw_architecture) does.
func novaArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	}
	return goarch
}

// handle runs one command: once per id, in order per instance.
func (a *Agent) handle(ctx context.Context, cmd compute.Command) error {
	if a.wasSeen(cmd.ID) {
		return nil
	}
	release, err := a.enter(ctx, cmd.Instance.ID)
	if err != nil {
		return err // redelivered
	}
	defer release()
	if a.wasSeen(cmd.ID) {
		return nil // a redelivery that waited behind the first delivery
	}
	log := a.log.With("instance", cmd.Instance.ID, "op", cmd.Op, "command", cmd.ID, "request_id", cmd.RequestID)
	rep := a.run(ctx, log, cmd)
	rep.CommandID, rep.Op, rep.RequestID, rep.Host, rep.InstanceID, rep.At = cmd.ID, cmd.Op, cmd.RequestID, a.cfg.Host, cmd.Instance.ID, time.Now().UTC()
	if rep.Fault != nil {
		log.Warn("command failed", "fault", rep.Fault.Message, "reschedule", rep.Reschedule)
	} else {
		log.Info("command done", "vm_state", rep.VMState, "power_state", rep.PowerState)
	}
	if err := bus.CastDurable(ctx, a.cfg.Bus, compute.SubjectReports, rep); err != nil {
		// Redelivered and run again; every operation is idempotent, and
		// the API ignores a second report of the same command.
		return fmt.Errorf("report %s: %w", cmd.ID, err)
	}
	a.markSeen(cmd.ID)
	return nil
}

func (a *Agent) wasSeen(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[id]
}

func (a *Agent) markSeen(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id == "" || a.seen[id] {
		return
	}
	a.seen[id] = true
	a.order = append(a.order, id)
	if len(a.order) > seenLimit {
		delete(a.seen, a.order[0])
		a.order = a.order[1:]
	}
}

// enter queues behind the running commands of instance id, in arrival
// order, and returns when it is this command's turn.
func (a *Agent) enter(ctx context.Context, id string) (release func(), err error) {
	ch := make(chan struct{})
	a.mu.Lock()
	q := append(a.queues[id], ch)
	a.queues[id] = q
	if len(q) == 1 {
		close(ch)
	}
	a.mu.Unlock()
	release = func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		q := a.queues[id]
		for i, c := range q {
			if c == ch {
				q = append(q[:i:i], q[i+1:]...)
				break
			}
		}
		if len(q) == 0 {
			delete(a.queues, id)
			return
		}
		a.queues[id] = q
		select {
		case <-q[0]:
		default:
			close(q[0])
		}
	}
	select {
	case <-ch:
		return release, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// busy reports whether a command of instance id is running or waiting.
func (a *Agent) busy(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queues[id]) > 0
}

func (a *Agent) setGuest(spec compute.InstanceSpec, vm string, power int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.guests[spec.ID] = &guest{spec: spec, vm: vm, power: power}
}

func (a *Agent) forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.guests, id)
}

// hostIP is the address the hypervisor views show when none is
// configured, as Nova's my_ip: the host's first global unicast IPv4
// address (else IPv6), or 127.0.0.1 on a host with none. Nova's
// responses always carry an IP there; "" fails their schema.
func hostIP(addrs func() ([]net.Addr, error)) string {
	list, err := addrs()
	if err != nil {
		return "127.0.0.1"
	}
	var v6 string
	for _, a := range list {
		n, ok := a.(*net.IPNet)
		if !ok || !n.IP.IsGlobalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP.String()
		}
		if v6 == "" {
			v6 = n.IP.String()
		}
	}
	if v6 != "" {
		return v6
	}
	return "127.0.0.1"
}
