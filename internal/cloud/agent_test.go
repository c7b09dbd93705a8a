package cloud_test

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/agents"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/nimbus-cloud/nimbus/internal/cloud"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
)

func TestAgentNeedsTheCloudsBus(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	if _, err := cloud.StartAgent(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "nats") {
		t.Fatalf("agent without a bus URL: %v", err)
	}
}

// TestAgentJoinsTheCloud runs `nimbus agent`'s code on its own data dir,
// joined to a controller only by the bus and the APIs: a subnet created
// through the networking API turns into a DHCP server on the host.
func TestAgentJoinsTheCloud(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the agent drives the Linux data plane and needs root")
	}
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	cfg.Network.Auth.Password = "Neutron-Pass-1"
	// VNIs of their own: VXLAN devices of other tests on this host (other
	// prefixes) may hold the low ones, and one VNI per UDP port is allowed.
	cfg.Network.VXLANRanges = []string{"7300:7399"}
	ctrl := start(t, cfg)

	b := make([]byte, 3)
	rand.Read(b)
	prefix := "a"
	for _, c := range b {
		prefix += string("abcdefghijklmnopqrstuvwxyz"[int(c)%26])
	}
	acfg := testConfig(t, t.TempDir())
	acfg.NATS = ctrl.BusURL()
	acfg.Network.Auth = cfg.Network.Auth
	acfg.Network.Auth.AuthURL = ctrl.IdentityURL + "/v3"
	acfg.Network.Agent.Host = "agent-host"
	acfg.Network.Agent.Prefix = prefix
	acfg.Network.Agent.ExternalMode = "routed"
	acfg.Network.Agent.VTEP = "127.0.0.1"
	agent, err := cloud.StartAgent(ctx, acfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		agent.Close(context.Background())
		// Take down what the agent built on this host.
		if err := cloud.CleanHostNetwork(context.Background(), acfg, nil); err != nil {
			t.Errorf("clean up the agent's host state: %v", err)
		}
	})

	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: ctrl.IdentityURL + "/v3",
		Username: "admin", Password: ctrl.AdminPassword, DomainName: "Default", TenantName: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := openstack.NewNetworkV2(provider, gophercloud.EndpointOpts{Region: cfg.Region})
	if err != nil {
		t.Fatal(err)
	}
	n, err := networks.Create(ctx, nc, networks.CreateOpts{Name: "agent-test"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.77.0.0/24", IPVersion: 4, EnableDHCP: &yes}).Extract(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("ip", "netns", "list").Output()
		if strings.Contains(string(out), prefix+"-d-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no DHCP namespace %s-d-… appeared after the subnet was created:\n%s", prefix, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The host's agents are listed, alive, by the networking API (the
	// first heartbeat follows the first sync, which may still be running).
	for {
		pages, err := agents.List(nc, agents.ListOpts{Host: "agent-host"}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		list, err := agents.ExtractAgents(pages)
		if err != nil {
			t.Fatal(err)
		}
		types := map[string]bool{}
		for _, a := range list {
			if a.Alive {
				types[a.AgentType] = true
			}
		}
		if types["DHCP agent"] && types["L3 agent"] && types["Linux bridge agent"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents of agent-host: %+v", list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A port bound to the host is DOWN until the agent has wired its tap,
	// then ACTIVE, as Neutron's L2 agent reports devices up.
	p, err := ports.Create(ctx, nc, hostPort{ports.CreateOpts{NetworkID: n.ID, DeviceOwner: "compute:nova", DeviceID: "vm-1"}, "agent-host"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	tap := "/sys/class/net/" + dataplane.PortDevice(prefix, p.ID)
	for p.Status != "ACTIVE" {
		if time.Now().After(deadline) {
			t.Fatalf("port bound to agent-host is %s", p.Status)
		}
		time.Sleep(100 * time.Millisecond)
		if p, err = ports.Get(ctx, nc, p.ID).Extract(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(tap); err != nil {
		t.Fatalf("port ACTIVE without its tap: %v", err)
	}
}

// hostPort binds a port to a host on creation (binding:host_id).
type hostPort struct {
	ports.CreateOpts
	host string
}

func (h hostPort) ToPortCreateMap() (map[string]any, error) {
	m, err := h.CreateOpts.ToPortCreateMap()
	if err == nil {
		m["port"].(map[string]any)["binding:host_id"] = h.host
	}
	return m, err
}

// TestComputeAgentBuildsAServer runs nimbus up's roles with the compute
// agent on the fake hypervisor: a server created through the compute API
// goes ACTIVE through the bus and the agent, with a port bound to the host.
func TestComputeAgentBuildsAServer(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	cfg.Compute.Agent.Enabled = config.On
	cfg.Compute.Agent.Driver = "fake"
	cfg.Network.Agent.Host = "fake-host"
	ctrl := start(t, cfg)

	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: ctrl.IdentityURL + "/v3",
		Username: "admin", Password: ctrl.AdminPassword, DomainName: "Default", TenantName: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	eo := gophercloud.EndpointOpts{Region: cfg.Region}
	nc, _ := openstack.NewNetworkV2(provider, eo)
	ic, _ := openstack.NewImageV2(provider, eo)
	cc, err := openstack.NewComputeV2(provider, eo)
	if err != nil {
		t.Fatal(err)
	}
	n, err := networks.Create(ctx, nc, networks.CreateOpts{Name: "private"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	sn, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.9.0.0/24", IPVersion: 4}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	s := cloud.BootTinyServer(ctx, t, ic, cc, servers.CreateOpts{Name: "vm1", FlavorRef: "42",
		Networks: []servers.Network{{UUID: n.ID}}})
	pages, err := ports.List(nc, ports.ListOpts{DeviceID: s.ID}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var bound []struct {
		ID     string `json:"id"`
		HostID string `json:"binding:host_id"`
	}
	if err := ports.ExtractPortsInto(pages, &bound); err != nil || len(bound) != 1 || bound[0].HostID != "fake-host" {
		t.Fatalf("the server's ports %+v (%v), want one bound to fake-host", bound, err)
	}

	// A floating IP given to the server's port shows in its addresses, and
	// goes when it is taken back, as Neutron's network-changed events
	// make Nova show it. (No traffic: the fake hypervisor runs no guest.)
	yes := true
	ext, err := networks.Create(ctx, nc, external.CreateOptsExt{CreateOptsBuilder: networks.CreateOpts{Name: "ext"}, External: &yes}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: ext.ID, CIDR: "192.0.2.0/24", IPVersion: 4}).Extract(); err != nil {
		t.Fatal(err)
	}
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "r1", GatewayInfo: &routers.GatewayInfo{NetworkID: ext.ID}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sn.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	fip, err := floatingips.Create(ctx, nc, floatingips.CreateOpts{FloatingNetworkID: ext.ID, PortID: bound[0].ID}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	floating := func() []string {
		var got struct {
			Addresses map[string][]map[string]any `json:"addresses"`
		}
		if err := servers.Get(ctx, cc, s.ID).ExtractInto(&got); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range got.Addresses["private"] {
			if a["OS-EXT-IPS:type"] == "floating" {
				out = append(out, a["addr"].(string))
			}
		}
		return out
	}
	waitFor(t, "the floating IP in the server's addresses", func() bool {
		f := floating()
		return len(f) == 1 && f[0] == fip.FloatingIP
	})
	// A rebuild reports the server's addresses again: with the floating IP.
	if _, err := servers.Rebuild(ctx, cc, s.ID, servers.RebuildOpts{ImageRef: s.Image["id"].(string)}).Extract(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rebuilt server ACTIVE", func() bool {
		got, err := servers.Get(ctx, cc, s.ID).Extract()
		return err == nil && got.Status == "ACTIVE"
	})
	if f := floating(); len(f) != 1 || f[0] != fip.FloatingIP {
		t.Fatalf("floating IPs after a rebuild: %v, want %s", f, fip.FloatingIP)
	}
	if _, err := floatingips.Update(ctx, nc, fip.ID, floatingips.UpdateOpts{PortID: new(string)}).Extract(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the floating IP gone from the server's addresses", func() bool { return len(floating()) == 0 })
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
