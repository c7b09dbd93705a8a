// Package node runs one Swift storage node: the account, container and
// object servers of internal/objectstore/server on their own listeners,
// and the node's consistency daemons — object updater and auditor,
// container updater, the object, container and account replicators, the
// object expirer and container sync — on intervals. `nimbus storage`
// runs one per storage host; `nimbus up` runs one inside the cloud, on
// device directories in its data dir, and builds its rings on first
// start.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/containersync"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/expirer"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/reaper"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/replicator"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// Ring file names in a ring directory, as `nimbus ring rebalance` writes
// them.
const (
	AccountRing   = "account.ring.gz"
	ContainerRing = "container.ring.gz"
	ObjectRing    = "object.ring.gz"
)

// Config configures a storage node.
type Config struct {
	// DevicesRoot holds one directory per device.
	DevicesRoot string
	// RingDir holds account.ring.gz, container.ring.gz and object.ring.gz.
	RingDir string
	// HashPathPrefix and HashPathSuffix are the cluster secret.
	HashPathPrefix, HashPathSuffix string
	// Policies are the cluster's storage policies; policy N's object
	// ring is object-N.ring.gz in RingDir. Nil is Swift's lone Policy-0.
	Policies *policy.Policies
	// Bind is the address the servers listen on; IP is this node's
	// address in the rings (Bind when empty).
	Bind, IP string
	// ObjectPort, ContainerPort and AccountPort are the servers' ports.
	// 0 takes the port the ring gives this node, or a free one.
	ObjectPort, ContainerPort, AccountPort int
	// MountCheck refuses devices that are not mount points.
	MountCheck bool
	// Intervals of the daemons; zero takes each daemon's default.
	ReplicationInterval, ExpirerInterval, UpdaterInterval, AuditorInterval time.Duration
	// ContainerSyncInterval is the pause between container sync passes
	// (Swift's 300 s when zero).
	ContainerSyncInterval time.Duration
	// ReaperInterval is the pause between account reaper passes (1 h
	// when zero); ReaperDelay how long a deleted account keeps its data.
	ReaperInterval, ReaperDelay time.Duration
	// SyncRealms and AllowedSyncHosts decide where containers may sync to
	// (see containersync.ValidateSyncTo); the proxies need the same.
	SyncRealms       *containersync.Realms
	AllowedSyncHosts []string
	// Logger receives operational logs.
	Logger *slog.Logger
}

// Node is a running storage node.
type Node struct {
	cfg        Config
	Objects    *server.ObjectServer
	Containers *server.ContainerServer
	Accounts   *server.AccountServer
	// Replicators and the expirer, for one-pass runs (tests, tooling).
	ObjectReplicator *replicator.Objects // policy 0's
	// PolicyReplicators replicate every policy's objects, by index
	// (ObjectReplicator is PolicyReplicators[0]).
	PolicyReplicators   map[int]*replicator.Objects
	ContainerReplicator *replicator.Databases
	AccountReplicator   *replicator.Databases
	Expirer             *expirer.Expirer
	Reaper              *reaper.Reaper
	ContainerSync       *containersync.Syncer
	// ObjectHost, ContainerHost and AccountHost are the servers'
	// ip:port as in the rings.
	ObjectHost, ContainerHost, AccountHost string

	servers []*http.Server
	// local serves requests for the node's own servers in the process
	// (Transport, and the servers' own container and account updates).
	local  *localServers
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Listeners are a node's three server sockets, opened before the rings
// exist so that a first start can put the real ports in them.
type Listeners struct {
	Object, Container, Account net.Listener
}

// Close closes the listeners not yet handed to Start.
func (l *Listeners) Close() {
	for _, ln := range []net.Listener{l.Object, l.Container, l.Account} {
		if ln != nil {
			ln.Close()
		}
	}
}

// Ports are the ports of the listeners.
func (l *Listeners) Ports() (object, container, account int) {
	p := func(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }
	return p(l.Object), p(l.Container), p(l.Account)
}

// Listen opens the node's sockets. A port of 0 is the port the ring in
// RingDir gives this node's IP, if there is such a ring, else a free one,
// so that a node restarted with "any port" keeps the ports its ring names.
func Listen(cfg Config) (*Listeners, error) {
	ip := cfg.IP
	if ip == "" {
		ip = cfg.Bind
	}
	l := &Listeners{}
	for _, s := range []struct {
		ln   *net.Listener
		port int
		ring string
	}{{&l.Object, cfg.ObjectPort, ObjectRing}, {&l.Container, cfg.ContainerPort, ContainerRing}, {&l.Account, cfg.AccountPort, AccountRing}} {
		port := s.port
		if port == 0 {
			port = ringPort(filepath.Join(cfg.RingDir, s.ring), ip)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Bind, strconv.Itoa(port)))
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("storage node %s listener: %w", s.ring, err)
		}
		*s.ln = ln
	}
	return l, nil
}

// ringPort is the port of the first device of ip in the ring at path, or
// 0. Only the device list is read, so any hash path will do.
func ringPort(path, ip string) int {
	r, err := ring.Load(path, ring.HashPath{Suffix: "-"})
	if err != nil {
		return 0
	}
	for _, d := range r.Devices() {
		if d.IP == ip {
			return d.Port
		}
	}
	return 0
}

// Start serves the node on ls (which it takes over) and starts its
// daemons. The rings must exist in RingDir.
func Start(cfg Config, ls *Listeners) (_ *Node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IP == "" {
		cfg.IP = cfg.Bind
	}
	if cfg.Policies == nil {
		cfg.Policies = policy.Legacy()
	}
	log := cfg.Logger.With("service", "storage")
	defer func() {
		if err != nil {
			ls.Close()
		}
	}()
	// Container and account updates to this node's own servers stay in
	// the process (see localServers).
	local := &localServers{}
	scfg := server.Config{DevicesRoot: cfg.DevicesRoot, MountCheck: cfg.MountCheck, HashPathPrefix: cfg.HashPathPrefix,
		HashPathSuffix: cfg.HashPathSuffix, Policies: cfg.Policies, UpdaterInterval: cfg.UpdaterInterval, AuditorInterval: cfg.AuditorInterval, Logger: log,
		Client: &http.Client{Transport: &localTransport{servers: local, next: server.NewClient().Transport}}}
	entries, err := os.ReadDir(cfg.DevicesRoot)
	if err != nil {
		return nil, fmt.Errorf("storage node devices: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := server.CheckXattr(filepath.Join(cfg.DevicesRoot, e.Name())); err != nil {
				return nil, fmt.Errorf("storage device %s: %w", e.Name(), err)
			}
		}
	}
	hp := ring.HashPath{Prefix: cfg.HashPathPrefix, Suffix: cfg.HashPathSuffix}
	var rings [3]*ring.Ring
	for i, name := range []string{ObjectRing, ContainerRing, AccountRing} {
		if rings[i], err = ring.Load(filepath.Join(cfg.RingDir, name), hp); err != nil {
			return nil, fmt.Errorf("storage node: %w", err)
		}
	}
	// Every policy but 0 has its own object ring beside policy 0's.
	policyRings := map[int]*ring.Ring{}
	allRings := rings[:]
	for _, pol := range cfg.Policies.All() {
		if pol.Index == 0 {
			continue
		}
		r, err := ring.Load(filepath.Join(cfg.RingDir, policy.RingFile(pol.Index)), hp)
		if err != nil {
			return nil, fmt.Errorf("storage node: storage policy %d (%s): %w", pol.Index, pol.Name, err)
		}
		policyRings[pol.Index] = r
		allRings = append(allRings, r)
	}
	op, cp, ap := ls.Ports()
	host := func(p int) string { return net.JoinHostPort(cfg.IP, strconv.Itoa(p)) }
	n := &Node{cfg: cfg, ObjectHost: host(op), ContainerHost: host(cp), AccountHost: host(ap), local: local}
	if n.Objects, err = server.NewObjectServer(scfg); err != nil {
		return nil, err
	}
	if n.Containers, err = server.NewContainerServer(scfg); err != nil {
		return nil, err
	}
	if n.Accounts, err = server.NewAccountServer(scfg); err != nil {
		n.Containers.Close()
		return nil, err
	}
	rc := func(r *ring.Ring, local string) replicator.Config {
		return replicator.Config{DevicesRoot: cfg.DevicesRoot, Ring: r, LocalHost: local, Interval: cfg.ReplicationInterval, Logger: log}
	}
	// One object replicator per policy, each walking its objects-N dirs
	// with its ring, as Swift's replicator does.
	n.PolicyReplicators = map[int]*replicator.Objects{}
	for _, pol := range cfg.Policies.All() {
		if err != nil {
			break
		}
		r := rings[0]
		if pol.Index != 0 {
			r = policyRings[pol.Index]
		}
		c := rc(r, n.ObjectHost)
		c.Policy = pol.Index
		n.PolicyReplicators[pol.Index], err = replicator.NewObjects(c)
	}
	n.ObjectReplicator = n.PolicyReplicators[0]
	if err == nil {
		if n.ContainerReplicator, err = replicator.NewDatabases(server.KindContainer, rc(rings[1], n.ContainerHost)); err == nil {
			n.AccountReplicator, err = replicator.NewDatabases(server.KindAccount, rc(rings[2], n.AccountHost))
		}
	}
	if err == nil {
		n.Expirer, err = expirer.New(expirer.Config{DevicesRoot: cfg.DevicesRoot, ContainerRing: rings[1], ObjectRing: rings[0],
			PolicyRings: policyRings, LocalHost: n.ContainerHost, Interval: cfg.ExpirerInterval, Logger: log})
	}
	if err == nil {
		n.Reaper, err = reaper.New(reaper.Config{DevicesRoot: cfg.DevicesRoot, AccountRing: rings[2], ContainerRing: rings[1],
			ObjectRing: rings[0], PolicyRings: policyRings, LocalHost: n.AccountHost, Interval: cfg.ReaperInterval,
			Delay: cfg.ReaperDelay, Logger: log})
	}
	if err == nil {
		n.ContainerSync, err = containersync.New(containersync.Config{DevicesRoot: cfg.DevicesRoot, ContainerRing: rings[1],
			ObjectRing: rings[0], PolicyRings: policyRings, LocalHost: n.ContainerHost, Realms: cfg.SyncRealms, AllowedSyncHosts: cfg.AllowedSyncHosts,
			Interval: cfg.ContainerSyncInterval, Logger: log})
	}
	if err != nil {
		n.Containers.Close()
		n.Accounts.Close()
		return nil, err
	}
	local.mu.Lock()
	local.handlers = map[string]http.Handler{n.ObjectHost: n.Objects, n.ContainerHost: n.Containers, n.AccountHost: n.Accounts}
	local.mu.Unlock()
	n.serve(ls.Object, n.Objects, log)
	n.serve(ls.Container, n.Containers, log)
	n.serve(ls.Account, n.Accounts, log)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	runs := []func(context.Context){
		n.Objects.RunUpdater, n.Objects.RunAuditor, n.Containers.RunUpdater,
		n.ContainerReplicator.Run, n.AccountReplicator.Run, n.Expirer.Run, n.Reaper.Run, n.ContainerSync.Run,
		func(ctx context.Context) { reloadRings(ctx, allRings, log) },
	}
	for _, r := range n.PolicyReplicators {
		runs = append(runs, r.Run)
	}
	for _, run := range runs {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			run(ctx)
		}()
	}
	log.Info("storage node serving", "object", n.ObjectHost, "container", n.ContainerHost, "account", n.AccountHost,
		"devices", cfg.DevicesRoot)
	return n, nil
}

// reloadRings picks up rings the operator copies in, as the proxy does.
func reloadRings(ctx context.Context, rings []*ring.Ring, log *slog.Logger) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, r := range rings {
			if changed, err := r.Reload(); err != nil {
				log.Error("ring reload failed; keeping the loaded ring", "ring", r.Path(), "err", err)
			} else if changed {
				log.Info("ring reloaded", "ring", r.Path(), "build_version", r.BuildVersion())
			}
		}
	}
}

// serve serves h on ln with no whole-request timeouts: object bodies
// stream for as long as they take.
func (n *Node) serve(ln net.Listener, h http.Handler, log *slog.Logger) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	n.servers = append(n.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("storage server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// Close stops the servers (letting requests in flight finish until ctx
// ends) and the daemons, and closes the databases.
func (n *Node) Close(ctx context.Context) error {
	n.local.close()
	var errs []error
	for _, s := range n.servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	n.cancel()
	n.wg.Wait()
	errs = append(errs, n.Containers.Close(), n.Accounts.Close())
	return errors.Join(errs...)
}
