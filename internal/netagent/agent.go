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
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
)

// Applier converges the host to a state (dataplane.Agent).
type Applier interface {
	Apply(ctx context.Context, st dataplane.State) error
}

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
// and reports every ReportInterval.
func (a *Agent) Run(ctx context.Context) {
	if a.cfg.Report != nil {
		go a.report(ctx)
	}
	t := time.NewTicker(a.cfg.Resync)
	defer t.Stop()
	for first := true; ; first = false {
		err := a.Sync(ctx)
		a.mu.Lock()
		a.lastErr, a.lastSync = err, time.Now()
		a.mu.Unlock()
		if first && a.cfg.Report != nil {
			a.cfg.Report(ctx, err == nil) // announce the agent at once
		}
		if err != nil && ctx.Err() == nil {
			a.cfg.Log.Error("network agent sync", "host", a.cfg.Host.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
			// Let a burst of changes (a router with its interfaces and
			// floating IPs) land before reading.
			time.Sleep(50 * time.Millisecond)
		case <-t.C:
		}
	}
}

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

// Sync reads the state, adds missing DHCP ports and applies the result.
func (a *Agent) Sync(ctx context.Context) error {
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
	if err := a.cfg.Dataplane.Apply(ctx, st); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
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

// read lists everything the host state is built from.
func (a *Agent) read(ctx context.Context) (Snapshot, error) {
	c := a.cfg.Client
	var snap Snapshot
	pages, err := networks.List(c, networks.ListOpts{}).AllPages(ctx)
	if err == nil {
		err = networks.ExtractNetworksInto(pages, &snap.Networks)
	}
	if err != nil {
		return snap, fmt.Errorf("list networks: %w", err)
	}
	if pages, err = subnets.List(c, subnets.ListOpts{}).AllPages(ctx); err == nil {
		snap.Subnets, err = subnets.ExtractSubnets(pages)
	}
	if err != nil {
		return snap, fmt.Errorf("list subnets: %w", err)
	}
	if pages, err = ports.List(c, ports.ListOpts{}).AllPages(ctx); err == nil {
		err = ports.ExtractPortsInto(pages, &snap.Ports)
	}
	if err != nil {
		return snap, fmt.Errorf("list ports: %w", err)
	}
	if pages, err = groups.List(c, groups.ListOpts{}).AllPages(ctx); err == nil {
		snap.SecurityGroups, err = groups.ExtractGroups(pages)
	}
	if err != nil {
		return snap, fmt.Errorf("list security groups: %w", err)
	}
	if pages, err = routers.List(c, routers.ListOpts{}).AllPages(ctx); err == nil {
		snap.Routers, err = routers.ExtractRouters(pages)
	}
	if err != nil {
		return snap, fmt.Errorf("list routers: %w", err)
	}
	if pages, err = floatingips.List(c, floatingips.ListOpts{}).AllPages(ctx); err == nil {
		snap.FloatingIPs, err = floatingips.ExtractFloatingIPs(pages)
	}
	if err != nil {
		return snap, fmt.Errorf("list floating ips: %w", err)
	}
	if snap.Hosting, err = readHosting(ctx, c, a.cfg.Host.Name); err != nil {
		return snap, err
	}
	return snap, readMetering(ctx, c, &snap)
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
