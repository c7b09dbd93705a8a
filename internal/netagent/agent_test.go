package netagent

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	neutron "github.com/nimbus-cloud/nimbus/internal/network"
	"github.com/nimbus-cloud/nimbus/internal/policy"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// adminToken is the one token the test networking service knows.
var adminToken = apitest.Tokens{"admin-token": {UserID: "u-admin", ProjectID: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	Roles: []api.Role{{Name: "admin"}, {Name: "member"}, {Name: "reader"}}}}

// recorder stands in for the data plane and keeps what it was asked.
type recorder struct {
	mu     sync.Mutex
	states []dataplane.State
}

func (r *recorder) Apply(_ context.Context, st dataplane.State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, st)
	return nil
}

// newNetworking serves a real networking service on a temp database and
// returns an admin client for it.
func newNetworking(t *testing.T) *gophercloud.ServiceClient {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "nimbus.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	enf, err := policy.NewEnforcer(neutron.DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := &api.Service{Name: "network", Errors: neutron.Errors, Tokens: adminToken, Policy: api.PolicyAuthorizer{Enforcer: enf}, Log: log}
	n, err := neutron.New(ctx, neutron.Config{}, db, svc, log)
	if err != nil {
		t.Fatal(err)
	}
	// host-1's agents report before anything exists, so that the service
	// schedules every network's DHCP and every router on them; host-2 is
	// a second hypervisor whose VTEP host-1 floods to.
	for _, rep := range []neutron.AgentReport{
		{AgentType: neutron.AgentDHCP, Host: "host-1"}, {AgentType: neutron.AgentL3, Host: "host-1"},
		{AgentType: neutron.AgentLinuxBridge, Host: "host-1", Configurations: map[string]any{"tunneling_ip": "192.0.2.1"}},
		{AgentType: neutron.AgentLinuxBridge, Host: "host-2", Configurations: map[string]any{"tunneling_ip": "192.0.2.2"}},
	} {
		if _, err := n.ReportAgent(ctx, rep); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	pc := &gophercloud.ProviderClient{TokenID: "admin-token", HTTPClient: *srv.Client()}
	return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: srv.URL + "/v2.0/", ResourceBase: srv.URL + "/v2.0/"}
}

func TestSyncBuildsTheHostState(t *testing.T) {
	ctx := context.Background()
	c := newNetworking(t)
	ext, priv := newTopology(t, c, "203.0.113.0/24")
	here, err := ports.Create(ctx, c, hostBound{ports.CreateOpts{NetworkID: priv.ID, Name: "guest"}, "host-1"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ports.Create(ctx, c, hostBound{ports.CreateOpts{NetworkID: priv.ID, Name: "elsewhere"}, "host-2"}).Extract(); err != nil {
		t.Fatal(err)
	}
	fip, err := floatingips.Create(ctx, c, floatingips.CreateOpts{FloatingNetworkID: ext.ID, PortID: here.ID}).Extract()
	if err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	var routed []netip.Prefix
	a := New(Config{Host: Host{Name: "host-1", ExternalMode: dataplane.ExternalRouted, Uplink: "eth0"}, Client: c, Dataplane: rec,
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		RoutedCIDRs: func(_ context.Context, cidrs []netip.Prefix) { routed = cidrs }})
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st := rec.states[0]
	if len(routed) != 1 || routed[0] != netip.MustParsePrefix("203.0.113.0/24") {
		t.Fatalf("routed CIDRs %v, want the external subnet", routed)
	}

	// Both networks; the private one with DHCP from the port the agent made.
	if len(st.Networks) != 2 {
		t.Fatalf("networks %+v", st.Networks)
	}
	var pn, en dataplane.Network
	for _, n := range st.Networks {
		switch n.ID {
		case priv.ID:
			pn = n
		case ext.ID:
			en = n
		}
	}
	if pn.Type != dataplane.NetworkVXLAN || pn.SegmentationID == 0 || len(pn.Subnets) != 1 || !pn.Subnets[0].DHCP ||
		!pn.Subnets[0].DHCPAddress.IsValid() || pn.Subnets[0].Gateway != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("private network %+v", pn)
	}
	if !slices.Equal(pn.VXLANPeers, []netip.Addr{netip.MustParseAddr("192.0.2.2")}) {
		t.Fatalf("VXLAN peers %v, want host-2's VTEP only", pn.VXLANPeers)
	}
	if en.External == nil || en.External.Mode != dataplane.ExternalRouted || en.External.Uplink != "eth0" || en.Type != dataplane.NetworkLocal {
		t.Fatalf("external network %+v (a routed external network never touches a NIC)", en)
	}
	dhcpPorts, err := ports.List(c, ports.ListOpts{DeviceOwner: ownerDHCP}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := ports.ExtractPorts(dhcpPorts); len(all) != 1 || all[0].FixedIPs[0].IPAddress != pn.Subnets[0].DHCPAddress.String() {
		t.Fatalf("DHCP ports %+v, DHCP address %s", all, pn.Subnets[0].DHCPAddress)
	}
	// Only this host's guest port, with its default security group.
	if len(st.Ports) != 1 || st.Ports[0].ID != here.ID || !st.Ports[0].PortSecurity || len(st.Ports[0].SecurityGroups) != 1 {
		t.Fatalf("ports %+v", st.Ports)
	}
	if len(st.SecurityGroups) != 1 || st.SecurityGroups[0].ID != st.Ports[0].SecurityGroups[0] || len(st.SecurityGroups[0].Rules) == 0 {
		t.Fatalf("security groups %+v", st.SecurityGroups)
	}
	// The router with its gateway, its interface and the floating IP.
	if len(st.Routers) != 1 {
		t.Fatalf("routers %+v", st.Routers)
	}
	dr := st.Routers[0]
	if dr.Gateway == nil || dr.Gateway.NetworkID != ext.ID || !dr.Gateway.SNAT || len(dr.Interfaces) != 1 ||
		dr.Interfaces[0].IP != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("router %+v", dr)
	}
	if len(dr.FloatingIPs) != 1 || dr.FloatingIPs[0].IP.String() != fip.FloatingIP || dr.FloatingIPs[0].FixedIP.String() != here.FixedIPs[0].IPAddress {
		t.Fatalf("floating IPs %+v", dr.FloatingIPs)
	}

	// A second sync adds no second DHCP port and yields the same state.
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.states[1]; len(got.Ports) != 1 || len(got.Networks) != 2 {
		t.Fatalf("second sync %+v", got)
	}
	dhcpPorts, _ = ports.List(c, ports.ListOpts{DeviceOwner: ownerDHCP}).AllPages(ctx)
	if all, _ := ports.ExtractPorts(dhcpPorts); len(all) != 1 {
		t.Fatalf("%d DHCP ports after two syncs", len(all))
	}
}

func TestBuildLeavesOutWhatTheHostCannotCarry(t *testing.T) {
	vid := 100
	snap := Snapshot{
		Networks: []network{
			{ID: "flat-unmapped", NetworkType: "flat", PhysicalNetwork: "datacentre"},
			{ID: "vlan-mapped", NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: &vid},
			{ID: "gre", NetworkType: "gre"},
		},
		Ports: []port{
			{ID: "p-unmapped", NetworkID: "flat-unmapped", MACAddress: "fa:16:3e:00:00:01", HostID: "h"},
			{ID: "p-vlan", NetworkID: "vlan-mapped", MACAddress: "fa:16:3e:00:00:02", HostID: "h", PortSecurityEnabled: new(bool),
				SecurityGroups: []string{"sg"}},
			{ID: "p-badmac", NetworkID: "vlan-mapped", MACAddress: "not-a-mac", HostID: "h"},
		},
		SecurityGroups: []groups.SecGroup{{ID: "sg"}},
	}
	st := Build(snap, Host{Name: "h", PhysicalInterfaces: map[string]string{"physnet1": "eth1"}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(st.Networks) != 1 || st.Networks[0].ID != "vlan-mapped" || st.Networks[0].PhysicalInterface != "eth1" || st.Networks[0].SegmentationID != 100 {
		t.Fatalf("networks %+v", st.Networks)
	}
	if len(st.Ports) != 1 || st.Ports[0].ID != "p-vlan" || st.Ports[0].PortSecurity || len(st.Ports[0].SecurityGroups) != 0 {
		t.Fatalf("ports %+v (port security off carries no groups)", st.Ports)
	}
	if slices.ContainsFunc(st.SecurityGroups, func(g dataplane.SecurityGroup) bool { return g.ID == "sg" }) {
		t.Fatalf("a group no included port uses is in the state: %+v", st.SecurityGroups)
	}
}

// newTopology creates what a project typically has: an external network
// (extCIDR, no DHCP), a private network 10.0.0.0/24 with DHCP and DNS, and
// a router between them.
func newTopology(t *testing.T, c *gophercloud.ServiceClient, extCIDR string) (ext, priv *networks.Network) {
	t.Helper()
	ctx := context.Background()
	yes := true
	ext, err := networks.Create(ctx, c, externalNet{networks.CreateOpts{Name: "public"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: ext.ID, CIDR: extCIDR, IPVersion: 4, EnableDHCP: new(bool)}).Extract(); err != nil {
		t.Fatal(err)
	}
	priv, err = networks.Create(ctx, c, networks.CreateOpts{Name: "private"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	sn, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: priv.ID, CIDR: "10.0.0.0/24", IPVersion: 4, EnableDHCP: &yes,
		DNSNameservers: []string{"10.0.0.2"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	r, err := routers.Create(ctx, c, routers.CreateOpts{Name: "r1", GatewayInfo: &routers.GatewayInfo{NetworkID: ext.ID}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := routers.AddInterface(ctx, c, r.ID, routers.AddInterfaceOpts{SubnetID: sn.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	return ext, priv
}

// externalNet creates a router:external network.
type externalNet struct{ networks.CreateOpts }

func (e externalNet) ToNetworkCreateMap() (map[string]any, error) {
	m, err := e.CreateOpts.ToNetworkCreateMap()
	if err != nil {
		return nil, err
	}
	n := m["network"].(map[string]any)
	n["router:external"] = true
	n["provider:network_type"] = "flat"
	n["provider:physical_network"] = "public"
	return m, nil
}

// TestBuildHostsOnlyWhatIsScheduledHere: routers and DHCP servers the
// service scheduled on another host are not built here, so that their
// addresses exist once on the overlay.
func TestBuildHostsOnlyWhatIsScheduledHere(t *testing.T) {
	ctx := context.Background()
	c := newNetworking(t)
	_, priv := newTopology(t, c, "203.0.113.0/24")
	a := New(Config{Host: Host{Name: "host-3", ExternalMode: dataplane.ExternalRouted, Uplink: "eth0"}, Client: c, Dataplane: &recorder{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	snap, err := a.read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if created, err := a.ensureDHCPPorts(ctx, snap); err != nil || created {
		t.Fatalf("host-3 made a DHCP port for a network host-1 serves (created %v, err %v)", created, err)
	}
	st := Build(snap, a.cfg.Host, a.cfg.Log)
	if len(st.Routers) != 0 {
		t.Fatalf("host-3 builds host-1's routers: %+v", st.Routers)
	}
	for _, n := range st.Networks {
		if n.ID == priv.ID && (len(n.Subnets) != 1 || n.Subnets[0].DHCP) {
			t.Fatalf("host-3 serves DHCP on %+v", n)
		}
	}
	if got := st.Networks; len(got) == 0 {
		t.Fatal("host-3 has no networks: its guests could not be plugged")
	}
}

// TestRoutedExternalNetworkOfAnyType: in routed and host-ip modes an
// external network is local to each host whatever type it was created
// with; before, a VXLAN external network (one made without provider
// attributes) was refused by the data plane and with it the host's whole
// state.
func TestRoutedExternalNetworkOfAnyType(t *testing.T) {
	vni, vid := 99, 7
	snap := Snapshot{Networks: []network{
		{ID: "ext-vxlan", NetworkType: "vxlan", SegmentationID: &vni, External: true},
		{ID: "ext-vlan", NetworkType: "vlan", PhysicalNetwork: "physnet1", SegmentationID: &vid, External: true},
	}}
	for _, mode := range []dataplane.ExternalMode{dataplane.ExternalRouted, dataplane.ExternalHostIP} {
		st := Build(snap, Host{Name: "h", ExternalMode: mode, Uplink: "eth0"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if len(st.Networks) != 2 {
			t.Fatalf("%s: networks %+v", mode, st.Networks)
		}
		for _, n := range st.Networks {
			if n.Type != dataplane.NetworkLocal || n.SegmentationID != 0 || n.PhysicalInterface != "" || n.External == nil {
				t.Fatalf("%s: external network %+v, want a local one", mode, n)
			}
		}
	}
}

// passRecorder stands in for an incremental data plane (an Updater) and
// reports each pass it was asked for.
type passRecorder struct {
	passes chan pass
	hold   atomic.Bool
}

type pass struct {
	full, yielded bool
	st            dataplane.State
}

func (r *passRecorder) Apply(_ context.Context, st dataplane.State) error {
	r.passes <- pass{full: true, st: st}
	return nil
}

func (r *passRecorder) Update(_ context.Context, st dataplane.State) error {
	r.passes <- pass{st: st}
	return nil
}

// ApplyYielding is a full pass; the first one after hold is set takes
// until a change is waiting and then yields to it.
func (r *passRecorder) ApplyYielding(_ context.Context, st dataplane.State, yield func() bool) error {
	if r.hold.CompareAndSwap(true, false) {
		for !yield() {
			time.Sleep(time.Millisecond)
		}
		r.passes <- pass{full: true, st: st, yielded: true}
		return dataplane.ErrYielded
	}
	return r.Apply(context.Background(), st)
}

// TestKickUpdates: the agent's first sync and its periodic resync are
// full Applies (they converge a restarted agent and repair drift), while
// the changes it is told about are applied with Update, so that a new
// port is wired without a full pass over the host.
func TestKickUpdates(t *testing.T) {
	c := newNetworking(t)
	_, priv := newTopology(t, c, "203.0.113.0/24")
	a, next := runRecorded(t, c, false)
	ctx := context.Background()
	if p := next(); !p.full {
		t.Error("the first sync was not a full Apply")
	}
	port, err := ports.Create(ctx, c, hostBound{ports.CreateOpts{NetworkID: priv.ID, Name: "guest"}, "host-1"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	a.Kick()
	p := next()
	if p.full {
		t.Error("a kicked sync was a full Apply, not an Update")
	}
	if !slices.ContainsFunc(p.st.Ports, func(dp dataplane.Port) bool { return dp.ID == port.ID }) {
		t.Errorf("the kicked sync's state lacks the new port %s: %+v", port.ID, p.st.Ports)
	}

}

// runRecorded runs an agent for host-1 on c with a passRecorder as its
// data plane (the first full pass held until a change comes, if hold)
// and returns it with a function that waits for its next pass.
func runRecorded(t *testing.T, c *gophercloud.ServiceClient, hold bool) (*Agent, func() pass) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rec := &passRecorder{passes: make(chan pass, 16)}
	rec.hold.Store(hold)
	a := New(Config{Host: Host{Name: "host-1", ExternalMode: dataplane.ExternalRouted, Uplink: "eth0"}, Client: c, Dataplane: rec,
		Resync: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, func() pass {
		t.Helper()
		select {
		case p := <-rec.passes:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("no pass within 10s")
		}
		return pass{}
	}
}

// TestFullPassYieldsToKick: a full pass (here the agent's first) that is
// under way when a change comes yields to it once the ports are done:
// the change is applied with Update next, then the full pass again.
func TestFullPassYieldsToKick(t *testing.T) {
	c := newNetworking(t)
	_, priv := newTopology(t, c, "203.0.113.0/24")
	a, next := runRecorded(t, c, true)
	port, err := ports.Create(context.Background(), c, hostBound{ports.CreateOpts{NetworkID: priv.ID, Name: "guest"}, "host-1"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	a.Kick()
	if p := next(); !p.full || !p.yielded {
		t.Fatalf("pass %+v, want the full pass yielding", p)
	}
	p := next()
	if p.full || !slices.ContainsFunc(p.st.Ports, func(dp dataplane.Port) bool { return dp.ID == port.ID }) {
		t.Errorf("after the yield: full=%v with ports %+v, want an Update with port %s", p.full, p.st.Ports, port.ID)
	}
	if p := next(); !p.full || p.yielded {
		t.Errorf("pass %+v, want the yielded full pass run again to the end", p)
	}
	if _, err := a.Status(); err != nil {
		t.Errorf("status after a yield: %v", err)
	}
}
