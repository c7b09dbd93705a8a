// Package fakeagent is a volume agent without volume files: it speaks the
// agent side of agentproto and does every command at once in memory, so
// the volume API, the compute service's volume flows and clients can be
// tested end to end without qemu-storage-daemon. It consumes exactly the
// messages the real agent does.
package fakeagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// Config describes the pretend storage host.
type Config struct {
	Host string
	Zone string
	// TotalGB is the pool's size (100 when 0); the over-subscription
	// ratio is 10.
	TotalGB float64
	// Heartbeat is the interval between heartbeats (HeartbeatEvery when 0).
	Heartbeat time.Duration
	// NBDHost and NBDPort are put in the connections it hands out
	// (127.0.0.1:10809 when empty).
	NBDHost string
	NBDPort int
	// Fail, when set, decides whether a command fails: a non-empty
	// fault fails it.
	Fail func(cmd agentproto.Command) string
	// ImageMetadata gives the volume_image_metadata of a volume made
	// from an image ({"image_id": id} when nil).
	ImageMetadata func(imageID string) map[string]string
	Log           *slog.Logger
}

// Agent is a running fake volume agent.
type Agent struct {
	cfg  Config
	bus  *bus.Bus
	log  *slog.Logger
	subs []*bus.Subscription

	mu        sync.Mutex
	volumes   map[string]int // guarded by mu; volume id -> size in GiB
	snapshots map[string]int // guarded by mu; snapshot id -> size
	// exports are the live exports, by volume id and initiator.
	exports map[[2]string]hypervisor.VolumeConn // guarded by mu
	// backups are the pretend backups' sizes in GiB by where their
	// objects would be (account/container/prefix).
	backups map[string]int       // guarded by mu
	cmds    []agentproto.Command // guarded by mu; every command, in order
	stop    context.CancelFunc   // guarded by mu
	done    chan struct{}        // guarded by mu
}

// Start registers the host with one heartbeat, then serves commands and
// export calls and keeps beating until Stop.
func Start(ctx context.Context, b *bus.Bus, cfg Config) (*Agent, error) {
	if cfg.Host == "" {
		return nil, errors.New("fakeagent: no host name")
	}
	if cfg.Zone == "" {
		cfg.Zone = "nova"
	}
	if cfg.TotalGB == 0 {
		cfg.TotalGB = 100
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = agentproto.HeartbeatEvery
	}
	if cfg.NBDHost == "" {
		cfg.NBDHost = "127.0.0.1"
	}
	if cfg.NBDPort == 0 {
		cfg.NBDPort = 10809
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{cfg: cfg, bus: b, log: log.With("fakevolumeagent", cfg.Host), volumes: map[string]int{}, snapshots: map[string]int{},
		exports: map[[2]string]hypervisor.VolumeConn{}, backups: map[string]int{}}
	cmds, err := bus.Consume(ctx, b, agentproto.HostSubject(cfg.Host), a.handle, bus.WithConcurrency(8), bus.WithRetryDelay(50*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("fakeagent %s: %w", cfg.Host, err)
	}
	conn, err := bus.Handle(b, agentproto.ConnSubject(cfg.Host), "", a.conn)
	if err != nil {
		_ = cmds.Unsubscribe()
		return nil, fmt.Errorf("fakeagent %s: %w", cfg.Host, err)
	}
	a.subs = []*bus.Subscription{cmds, conn}
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

// Stop ends the agent's subscriptions and heartbeats.
func (a *Agent) Stop() error {
	a.mu.Lock()
	stop, done := a.stop, a.done
	a.stop = nil
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

// Beat publishes one heartbeat.
func (a *Agent) Beat(ctx context.Context) error {
	a.mu.Lock()
	hb := agentproto.Heartbeat{Host: a.cfg.Host, Backend: "file", Pool: "default", Zone: a.cfg.Zone,
		TotalGB: a.cfg.TotalGB, FreeGB: a.cfg.TotalGB, MaxOverSubscription: 10}
	for id, size := range a.volumes {
		hb.ProvisionedGB += float64(size)
		hb.Volumes = append(hb.Volumes, id)
	}
	for id, size := range a.snapshots {
		hb.ProvisionedGB += float64(size)
		hb.Snapshots = append(hb.Snapshots, id)
	}
	a.mu.Unlock()
	sort.Strings(hb.Volumes)
	sort.Strings(hb.Snapshots)
	return bus.Publish(ctx, a.bus, agentproto.SubjectHeartbeat, hb)
}

// Commands returns every command received so far, in order.
func (a *Agent) Commands() []agentproto.Command {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]agentproto.Command(nil), a.cmds...)
}

// Exported reports whether the volume is exported to the initiator.
func (a *Agent) Exported(volumeID, initiator string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.exports[[2]string{volumeID, initiator}]
	return ok
}

// HasVolume reports whether the pretend volume file exists.
func (a *Agent) HasVolume(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.volumes[id]
	return ok
}

func (a *Agent) handle(ctx context.Context, cmd agentproto.Command) error {
	a.mu.Lock()
	a.cmds = append(a.cmds, cmd)
	a.mu.Unlock()
	rep := agentproto.Report{CommandID: cmd.ID, Op: cmd.Op, Host: a.cfg.Host, VolumeID: cmd.VolumeID, SnapshotID: cmd.SnapshotID}
	fault := ""
	if a.cfg.Fail != nil {
		fault = a.cfg.Fail(cmd)
	}
	a.mu.Lock()
	switch cmd.Op {
	case agentproto.OpCreate:
		rep.Status, rep.SizeGB = agentproto.StatusAvailable, cmd.SizeGB
		if fault != "" {
			rep.Status = agentproto.StatusError
			break
		}
		a.volumes[cmd.VolumeID] = cmd.SizeGB
		if cmd.ImageID != "" {
			if a.cfg.ImageMetadata != nil {
				rep.ImageMetadata = a.cfg.ImageMetadata(cmd.ImageID)
			} else {
				rep.ImageMetadata = map[string]string{"image_id": cmd.ImageID}
			}
		}
	case agentproto.OpDelete:
		rep.Status = agentproto.StatusDeleted
		if fault != "" {
			rep.Status = agentproto.StatusErrorDeleting
			break
		}
		delete(a.volumes, cmd.VolumeID)
		for k := range a.exports {
			if k[0] == cmd.VolumeID {
				delete(a.exports, k)
			}
		}
	case agentproto.OpExtend:
		rep.Status, rep.SizeGB = cmd.ReturnStatus, cmd.SizeGB
		if fault != "" {
			rep.Status, rep.SizeGB = agentproto.StatusErrorExtending, a.volumes[cmd.VolumeID]
			break
		}
		a.volumes[cmd.VolumeID] = cmd.SizeGB
	case agentproto.OpSnapshot:
		rep.Status, rep.SizeGB = agentproto.StatusAvailable, a.volumes[cmd.VolumeID]
		if fault != "" {
			rep.Status = agentproto.StatusError
			break
		}
		a.snapshots[cmd.SnapshotID] = a.volumes[cmd.VolumeID]
	case agentproto.OpDeleteSnapshot:
		rep.Status = agentproto.StatusDeleted
		if fault != "" {
			rep.Status = agentproto.StatusErrorDeleting
			break
		}
		delete(a.snapshots, cmd.SnapshotID)
	case agentproto.OpUpload:
		rep.Status = cmd.ReturnStatus
	case agentproto.OpBackup, agentproto.OpRestore, agentproto.OpDeleteBackup:
		a.backupOp(cmd, &rep, fault)
	default:
		a.mu.Unlock()
		return bus.Permanent(fmt.Errorf("fakeagent: unknown operation %q", cmd.Op))
	}
	a.mu.Unlock()
	if fault != "" {
		rep.Fault = fault
	}
	return bus.CastDurable(ctx, a.bus, agentproto.SubjectReports, rep)
}

// backupOp does a backup operation on the pretend objects: a backup
// records the volume's size under its location, a restore needs that
// record and makes (or regrows) the volume, and a delete forgets it.
// Called with mu held.
func (a *Agent) backupOp(cmd agentproto.Command, rep *agentproto.Report, fault string) {
	if cmd.Backup == nil {
		rep.Status, rep.BackupStatus, rep.Fault = agentproto.StatusError, agentproto.StatusError, "no backup location"
		return
	}
	rep.BackupID = cmd.Backup.ID
	key := BackupKey(*cmd.Backup)
	switch cmd.Op {
	case agentproto.OpBackup:
		rep.Status, rep.BackupStatus = cmd.ReturnStatus, agentproto.StatusAvailable
		size, ok := a.volumes[cmd.VolumeID]
		switch {
		case fault != "":
			rep.BackupStatus = agentproto.StatusError
		case !ok:
			rep.BackupStatus = agentproto.StatusError
			rep.Fault = fmt.Sprintf("volume %s is not on this host", cmd.VolumeID)
		default:
			a.backups[key] = size
			rep.ObjectCount, rep.SizeGB = 1+size, size
		}
	case agentproto.OpRestore:
		rep.Status = agentproto.StatusAvailable
		size, ok := a.backups[key]
		switch {
		case fault != "":
			rep.Status = agentproto.StatusErrorRestoring
		case !ok:
			rep.Status = agentproto.StatusErrorRestoring
			rep.Fault = "backup objects not found: " + key
		case size > cmd.SizeGB:
			rep.Status = agentproto.StatusErrorRestoring
			rep.Fault = "the backup is larger than the volume"
		default:
			a.volumes[cmd.VolumeID] = cmd.SizeGB
			rep.SizeGB = cmd.SizeGB
		}
	case agentproto.OpDeleteBackup:
		rep.BackupStatus = agentproto.StatusDeleted
		if fault != "" {
			rep.BackupStatus = agentproto.StatusErrorDeleting
			return
		}
		delete(a.backups, key)
	}
}

// BackupKey is where a backup's objects are, as the fake agent keys them.
func BackupKey(b agentproto.Backup) string { return b.Account + "/" + b.Container + "/" + b.Prefix }

// HasBackup reports whether the pretend objects of a backup exist.
func (a *Agent) HasBackup(b agentproto.Backup) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.backups[BackupKey(b)]
	return ok
}

// conn answers export calls with a made-up connection, the same one for
// the same volume and initiator until it is unexported.
func (a *Agent) conn(_ context.Context, req agentproto.ConnRequest) (agentproto.ConnReply, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := [2]string{req.VolumeID, req.Initiator}
	switch req.Op {
	case agentproto.OpExport:
		if _, ok := a.volumes[req.VolumeID]; !ok {
			return agentproto.ConnReply{}, fmt.Errorf("volume %s does not exist on %s", req.VolumeID, a.cfg.Host)
		}
		if c, ok := a.exports[key]; ok && c.ReadOnly == req.ReadOnly {
			return agentproto.ConnReply{Conn: &c}, nil
		}
		c := hypervisor.VolumeConn{VolumeID: req.VolumeID, Host: a.cfg.NBDHost, Port: a.cfg.NBDPort,
			Export: req.VolumeID + "-" + randomHex(4), PSKIdentity: req.Initiator, PSKKey: randomHex(32),
			ReadOnly: req.ReadOnly, Discard: true}
		a.exports[key] = c
		return agentproto.ConnReply{Conn: &c}, nil
	case agentproto.OpUnexport:
		delete(a.exports, key)
		return agentproto.ConnReply{}, nil
	}
	return agentproto.ConnReply{}, fmt.Errorf("fakeagent: unknown connection operation %q", req.Op)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
