// Package netagent is a host's networking agent: it reads the host's share
// of the networking service's state through the networking API (as the
// service's own service user) and has the data plane (internal/dataplane)
// apply it — whenever the service announces a change, and periodically to
// repair drift. Like Neutron's DHCP agent it also creates the network:dhcp
// port of each network that serves DHCP, so that the DHCP server has an
// address of its own.
//
// Reading through the public API rather than the database keeps the
// agent on the far side of the same contract every client uses: an agent
// never touches the database (docs/ARCHITECTURE), and a host needs only
// the API's address and a service user.
package netagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/gophercloud/gophercloud/v2/pagination"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
)

// Applier converges the host to a state (dataplane.Agent).
type Applier interface {
	Apply(ctx context.Context, st dataplane.State) error
}

// Updater is an Applier that can also converge incrementally: Update does
// only what changed since its last successful pass, and ApplyYielding is a
// full Apply that stops once the guest ports are done when yield says
// so, returning dataplane.ErrYielded (dataplane.Agent). The agent uses
// Update for the changes it is told about, so that a new port is not
// plugged only after a full pass over the host, and lets its full passes
// (the first sync, which converges a restarted agent whatever happened
// while it was down, and the periodic resync that repairs drift) yield
// to a change that arrives meanwhile; a yielded pass is run again next.
type Updater interface {
	Applier
	Update(ctx context.Context, st dataplane.State) error
	ApplyYielding(ctx context.Context, st dataplane.State, yield func() bool) error
}

// kickSettle is how long a kicked sync waits before reading, so that a
// burst of changes (a router with its interfaces and floating IPs) is
// read in one pass. Short: a new port's sync is on the path of every
// server boot, and a change that lands after the read kicks again.
const kickSettle = 10 * time.Millisecond

// Config configures an agent.
type Config struct {
	Host Host
	// Client is a networking v2 client with admin rights (all projects).
	Client *gophercloud.ServiceClient
	// Dataplane applies the state.
	Dataplane Applier
	// Resync is how often the whole state is applied even without news
	// (default one minute): drift on the host gets repaired.
	Resync time.Duration
	// Report, when set, is called every ReportInterval (default 30 s,
	// well inside Neutron's 75 s agent_down_time) with whether the last
	// sync worked: the heartbeat that lists this host's agents in the
	// networking API.
	Report         func(ctx context.Context, healthy bool)
	ReportInterval time.Duration
	// RoutedCIDRs, when set, is told after every successful sync which
	// external IPv4 CIDRs this host routes (routed mode): the VPC route
	// controller points them at this host.
	RoutedCIDRs func(ctx context.Context, cidrs []netip.Prefix)
	// PortsUp, when set, is told after every successful sync which ports
	// this host has wired (taps on their bridges, filters in place): the
	// networking service marks them ACTIVE and the host's others DOWN.
	PortsUp func(ctx context.Context, ids []string)
	Log     *slog.Logger
}

// Agent syncs one host.
type Agent struct {
	cfg  Config
	kick chan struct{}

	mu       sync.Mutex
	lastErr  error // guarded by mu
	lastSync time.Time
}

// New returns an agent; Run starts it.
func New(cfg Config) *Agent {
	if cfg.Resync <= 0 {
		cfg.Resync = time.Minute
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Agent{cfg: cfg, kick: make(chan struct{}, 1)}
}

// Kick asks for a sync soon; kicks that arrive during one coalesce.
func (a *Agent) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Run syncs at once, on every kick and every Resync until ctx ends,
// and reports every ReportInterval. The first sync and the resyncs are
// full passes; a kick's sync is incremental when the data plane is an
// Updater (see there), and a full pass yields to a kick and runs again
// after it.
func (a *Agent) Run(ctx context.Context) {
	if a.cfg.Report != nil {
		go a.report(ctx)
	}
	t := time.NewTicker(a.cfg.Resync)
	defer t.Stop()
	// owed: a full pass yielded to a change and is still to be done.
	full, owed := true, false
	for first := true; ; first = false {
		err := a.sync(ctx, full)
		switch {
		case errors.Is(err, dataplane.ErrYielded):
			err, owed = nil, true
		case full:
			owed = false // done, or failed: the resync tries again
		}
		a.mu.Lock()
		a.lastErr, a.lastSync = err, time.Now()
		a.mu.Unlock()
		if first && a.cfg.Report != nil {
			a.cfg.Report(ctx, err == nil) // announce the agent at once
		}
		if err != nil && ctx.Err() == nil {
			a.cfg.Log.Error("network agent sync", "host", a.cfg.Host.Name, "err", err)
		}
		var ok bool
		if full, ok = a.next(ctx, t.C, owed); !ok {
			return
		}
	}
}

// next waits for what to do next: an incremental pass for a change, a
// full one at the resync, or, when a yielded full pass is owed, that one
// at once unless a change is waiting. It reports false when ctx ends.
func (a *Agent) next(ctx context.Context, resync <-chan time.Time, owed bool) (full, ok bool) {
	if owed && !a.kicked() {
		return true, ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false, false
	case <-a.kick:
		time.Sleep(kickSettle)
		return false, true
	case <-resync:
		return true, true
	}
}

// kicked reports whether a change is waiting: a full pass yields to it.
func (a *Agent) kicked() bool { return len(a.kick) > 0 }

func (a *Agent) report(ctx context.Context) {
	t := time.NewTicker(a.cfg.ReportInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if last, err := a.Status(); !last.IsZero() {
			a.cfg.Report(ctx, err == nil)
		}
	}
}

// Status is the outcome of the last sync.
func (a *Agent) Status() (time.Time, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastSync, a.lastErr
}

// Sync reads the state, adds missing DHCP ports and applies the result
// with a full Apply.
func (a *Agent) Sync(ctx context.Context) error { return a.sync(ctx, true) }

// sync is Sync; when full is false and the data plane is an Updater, the
// result is applied incrementally.
func (a *Agent) sync(ctx context.Context, full bool) error {
	start := time.Now()
	snap, err := a.read(ctx)
	if err != nil {
		return err
	}
	created, err := a.ensureDHCPPorts(ctx, snap)
	if err != nil {
		return err
	}
	if created {
		if snap, err = a.read(ctx); err != nil {
			return err
		}
	}
	st := Build(snap, a.cfg.Host, a.cfg.Log)
	apply := a.cfg.Dataplane.Apply
	if u, ok := a.cfg.Dataplane.(Updater); ok {
		apply = u.Update
		if full {
			apply = func(ctx context.Context, st dataplane.State) error { return u.ApplyYielding(ctx, st, a.kicked) }
		}
	}
	read := time.Since(start)
	if err := apply(ctx, st); errors.Is(err, dataplane.ErrYielded) {
		// The ports are done; routers and the rest come with the pass
		// that is run again after the waiting change.
		a.cfg.Log.Debug("network agent full pass yielded to a change", "read_ms", read.Milliseconds())
		return err
	} else if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	a.cfg.Log.Debug("network agent synced", "full", full, "read_ms", read.Milliseconds(),
		"apply_ms", (time.Since(start) - read).Milliseconds(), "ports", len(st.Ports))
	if a.cfg.PortsUp != nil {
		up := make([]string, 0, len(st.Ports))
		for _, p := range st.Ports {
			up = append(up, p.ID)
		}
		a.cfg.PortsUp(ctx, up)
	}
	if a.cfg.RoutedCIDRs != nil && a.cfg.Host.ExternalMode == dataplane.ExternalRouted {
		a.cfg.RoutedCIDRs(ctx, routedCIDRs(st))
	}
	return nil
}

// routedCIDRs are the IPv4 subnets of the external networks in a state.
func routedCIDRs(st dataplane.State) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range st.Networks {
		if n.External == nil {
			continue
		}
		for _, sn := range n.Subnets {
			out = append(out, sn.CIDR)
		}
	}
	return out
}

// read lists everything the host state is built from. The lists are
// independent, so they are asked for at once: a sync waits for the
// slowest list rather than for the sum of all of them.
func (a *Agent) read(ctx context.Context) (Snapshot, error) {
	c := a.cfg.Client
	var snap Snapshot
	reads := []func() error{
		listInto(ctx, "list networks", networks.List(c, networks.ListOpts{}), extractInto[network](networks.ExtractNetworksInto), &snap.Networks),
		listInto(ctx, "list subnets", subnets.List(c, subnets.ListOpts{}), subnets.ExtractSubnets, &snap.Subnets),
		listInto(ctx, "list ports", ports.List(c, ports.ListOpts{}), extractInto[port](ports.ExtractPortsInto), &snap.Ports),
		listInto(ctx, "list security groups", groups.List(c, groups.ListOpts{}), groups.ExtractGroups, &snap.SecurityGroups),
		listInto(ctx, "list routers", routers.List(c, routers.ListOpts{}), routers.ExtractRouters, &snap.Routers),
		listInto(ctx, "list floating ips", floatingips.List(c, floatingips.ListOpts{}), floatingips.ExtractFloatingIPs, &snap.FloatingIPs),
		func() (err error) {
			snap.Hosting, err = readHosting(ctx, c, a.cfg.Host.Name)
			return err
		},
		func() error { return readMetering(ctx, c, &snap) },
	}
	errs := make([]error, len(reads))
	var wg sync.WaitGroup
	for i, r := range reads {
		wg.Go(func() { errs[i] = r() })
	}
	wg.Wait()
	return snap, errors.Join(errs...)
}

// extractInto adapts an Extract…Into function, which fills a slice of
// the caller's own type (with the extensions' fields), to listInto.
func extractInto[T any](extract func(pagination.Page, any) error) func(pagination.Page) ([]T, error) {
	return func(p pagination.Page) ([]T, error) {
		var v []T
		err := extract(p, &v)
		return v, err
	}
}

// listInto returns a read of every page of a list into out.
func listInto[T any](ctx context.Context, what string, pager pagination.Pager, extract func(pagination.Page) (T, error), out *T) func() error {
	return func() error {
		pages, err := pager.AllPages(ctx)
		if err == nil {
			*out, err = extract(pages)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
}

// dhcpDeviceID names this host's DHCP port on a network, as Neutron's
// DHCP agent does (dhcp<host uuid>-<network id>).
func (a *Agent) dhcpDeviceID(networkID string) string {
	return "dhcp-" + a.cfg.Host.Name + "-" + networkID
}

// ensureDHCPPorts creates this host's DHCP port on every network it
// serves (Hosting) with a subnet that serves DHCP (servesDHCP) and has no
// address of this host's yet. It reports whether it created any.
func (a *Agent) ensureDHCPPorts(ctx context.Context, snap Snapshot) (bool, error) {
	have := map[string]map[string]bool{} // network → subnets with a DHCP address
	for _, p := range snap.Ports {
		if p.DeviceOwner == ownerDHCP && p.HostID == a.cfg.Host.Name {
			for _, f := range p.FixedIPs {
				if have[p.NetworkID] == nil {
					have[p.NetworkID] = map[string]bool{}
				}
				have[p.NetworkID][f.SubnetID] = true
			}
		}
	}
	want := map[string][]ports.IP{}
	for _, sn := range snap.Subnets {
		if servesDHCP(sn) && snap.Hosting.DHCPNetworks[sn.NetworkID] && !have[sn.NetworkID][sn.ID] {
			want[sn.NetworkID] = append(want[sn.NetworkID], ports.IP{SubnetID: sn.ID})
		}
	}
	var errs []error
	for netID, ips := range want {
		opts := ports.CreateOpts{NetworkID: netID, DeviceOwner: ownerDHCP, DeviceID: a.dhcpDeviceID(netID), FixedIPs: ips}
		p, err := ports.Create(ctx, a.cfg.Client, hostBound{opts, a.cfg.Host.Name}).Extract()
		if err != nil {
			errs = append(errs, fmt.Errorf("create the DHCP port of network %s: %w", netID, err))
			continue
		}
		a.cfg.Log.Info("created DHCP port", "network_id", netID, "port_id", p.ID)
	}
	return len(want) > len(errs), errors.Join(errs...)
}

// servesDHCP reports the subnets the DHCP server needs an address on: IPv4
// with DHCP, and IPv6 in a DHCPv6 address mode (SLAAC needs no server).
func servesDHCP(sn subnets.Subnet) bool {
	if !sn.EnableDHCP {
		return false
	}
	return sn.IPVersion == 4 || sn.IPv6AddressMode == string(dataplane.IPv6DHCPv6Stateful) || sn.IPv6AddressMode == string(dataplane.IPv6DHCPv6Stateless)
}

// hostBound adds binding:host_id to a port create request.
type hostBound struct {
	ports.CreateOpts
	host string
}

func (h hostBound) ToPortCreateMap() (map[string]any, error) {
	m, err := h.CreateOpts.ToPortCreateMap()
	if err != nil {
		return nil, err
	}
	m["port"].(map[string]any)["binding:host_id"] = h.host
	return m, nil
}
