// Package volumeagent is the agent of a storage host: it keeps the host's
// volumes and snapshots as qcow2 files, serves them to compute hosts
// through the host's qemu-storage-daemon (package storaged), and does the
// volume API's bidding over the bus (package agentproto). It never
// touches the database: it is told what to do and reports what happened,
// and on start it reconciles what the daemon serves with what it
// recorded, so nothing is lost or leaked across restarts of either.
package volumeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/storaged"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// Config describes one storage host's agent.
type Config struct {
	// Host names the storage host: its command and export subjects, and
	// the host part of its volumes' host@backend#pool.
	Host string
	// Zone is the host's availability zone.
	Zone string
	Bus  *bus.Bus
	// StateDir holds the volume and snapshot files, the export records
	// and the storage daemon's run directory.
	StateDir string
	// NBDAddress and NBDPort are where the storage daemon serves volumes;
	// compute hosts must reach them.
	NBDAddress string
	NBDPort    int
	// MaxOverSubscription is reported with the capacity (default 10).
	MaxOverSubscription float64
	// Image is an image v2 client (service user) for volumes made from
	// images and uploads to images; nil fails those operations.
	Image *gophercloud.ServiceClient
	// ObjectStore is an object storage (Swift) client whose Endpoint is
	// the API root without an account (http://proxy:8080/v1/), for
	// backups; its token serves backup commands that carry none. Nil
	// fails backup operations.
	ObjectStore *gophercloud.ServiceClient
	// Heartbeat is the interval between heartbeats (default
	// agentproto.HeartbeatEvery); HealthCheck between checks that the
	// storage daemon lives (default 2s).
	Heartbeat   time.Duration
	HealthCheck time.Duration
	// Concurrency bounds the commands run at once (default 4).
	Concurrency int
	// DaemonBinary is the qemu-storage-daemon executable (default PATH).
	DaemonBinary string
	Log          *slog.Logger
}

// Agent is a running volume agent.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	qsd  *storaged.Daemon
	subs []*bus.Subscription

	// ops is held shared by every volume operation and exclusively by
	// the start-up reconciliation, which must see the daemon and records
	// at rest.
	ops sync.RWMutex

	mu      sync.Mutex
	exports []export                 // guarded by mu; persisted in exports.json
	busy    map[string]chan struct{} // guarded by mu; volume/snapshot id -> closed when free

	stop context.CancelFunc
	done sync.WaitGroup
}

// Start brings the storage daemon up (adopting a running one), reconciles
// its exports with the records, removes half-made files, then serves
// commands and export calls and runs the heartbeat and health loops
// until Stop.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Host == "" || cfg.Bus == nil || cfg.StateDir == "" {
		return nil, errors.New("volume agent: host, bus and state dir are required")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = agentproto.HeartbeatEvery
	}
	if cfg.HealthCheck <= 0 {
		cfg.HealthCheck = 2 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.MaxOverSubscription < 1 {
		cfg.MaxOverSubscription = 10
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{cfg: cfg, log: log.With("host", cfg.Host), busy: map[string]chan struct{}{}}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("volume agent: %w", err)
	}
	if err := a.removeParts(); err != nil {
		return nil, fmt.Errorf("volume agent: %w", err)
	}
	if err := a.loadExports(); err != nil {
		return nil, fmt.Errorf("volume agent: %w", err)
	}
	qsd, started, err := storaged.Open(ctx, storaged.Config{RunDir: filepath.Join(cfg.StateDir, "run"),
		NBDAddress: cfg.NBDAddress, NBDPort: cfg.NBDPort, Binary: cfg.DaemonBinary, Log: a.log.With("component", "qsd")})
	if err != nil {
		return nil, fmt.Errorf("volume agent: %w", err)
	}
	a.qsd = qsd
	if err := a.reconcile(ctx); err != nil {
		// Serve anyway: the health loop retries, and a volume whose
		// export failed gets an error when it is asked for.
		a.log.Warn("reconcile exports", "err", err, "daemon_started", started)
	}
	cmds, err := bus.Consume(ctx, cfg.Bus, agentproto.HostSubject(cfg.Host), a.handle,
		bus.WithConcurrency(cfg.Concurrency), bus.WithRetryDelay(time.Second))
	if err != nil {
		qsd.Close()
		return nil, fmt.Errorf("volume agent %s: %w", cfg.Host, err)
	}
	conns, err := bus.Handle(cfg.Bus, agentproto.ConnSubject(cfg.Host), "", a.conn)
	if err != nil {
		_ = cmds.Unsubscribe()
		qsd.Close()
		return nil, fmt.Errorf("volume agent %s: %w", cfg.Host, err)
	}
	a.subs = []*bus.Subscription{cmds, conns}
	if err := a.Beat(ctx); err != nil {
		a.log.Warn("first heartbeat", "err", err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	a.every(loopCtx, cfg.Heartbeat, "heartbeat", a.Beat)
	a.every(loopCtx, cfg.HealthCheck, "storage daemon health", a.checkDaemon)
	a.log.Info("volume agent running", "exports", len(a.exports), "daemon_pid", qsd.PID(), "daemon_started", started)
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

// Stop stops serving. The storage daemon keeps running, so attached
// volumes keep working; the next agent adopts it.
func (a *Agent) Stop() error {
	var errs []error
	for _, s := range a.subs {
		errs = append(errs, s.Unsubscribe())
	}
	a.subs = nil
	if a.stop != nil {
		a.stop()
		a.done.Wait()
		a.stop = nil
	}
	if a.qsd != nil {
		errs = append(errs, a.qsd.Close())
	}
	return errors.Join(errs...)
}

// DaemonPID is the storage daemon's process id (for diagnostics).
func (a *Agent) DaemonPID() int { return a.qsd.PID() }

// checkDaemon restarts a storage daemon that died (or reconnects to one
// whose monitor dropped) and puts every recorded export back under the
// same name, so NBD clients that reconnect find their export again. It
// does not wait for long operations (an image download) to finish:
// clients only wait for the reconnect delay.
func (a *Agent) checkDaemon(ctx context.Context) error {
	re, err := a.qsd.Ensure(ctx)
	if err != nil || !re {
		return err
	}
	a.log.Warn("storage daemon was gone; restarted or reconnected", "pid", a.qsd.PID())
	return a.restoreExports(ctx)
}

// lock serialises the operations on the given volumes and snapshots
// (taken in a fixed order, so two multi-id operations cannot deadlock)
// and holds reconciliation off until unlock.
func (a *Agent) lock(ctx context.Context, ids ...string) (unlock func(), err error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	a.ops.RLock()
	var held []string
	release := func() {
		a.mu.Lock()
		for _, id := range held {
			close(a.busy[id])
			delete(a.busy, id)
		}
		a.mu.Unlock()
		a.ops.RUnlock()
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		for {
			a.mu.Lock()
			ch, taken := a.busy[id]
			if !taken {
				a.busy[id] = make(chan struct{})
				held = append(held, id)
				a.mu.Unlock()
				break
			}
			a.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				release()
				return nil, ctx.Err()
			}
		}
	}
	return release, nil
}

// removeParts deletes files a crash left half-made: their operations are
// redelivered and start again from nothing.
func (a *Agent) removeParts() error {
	entries, err := os.ReadDir(a.cfg.StateDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".part") || strings.Contains(n, ".tmp-")) {
			a.log.Info("removing a half-made file", "file", n)
			if err := removeFile(filepath.Join(a.cfg.StateDir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}
