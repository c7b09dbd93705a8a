package network

import (
	"context"
	"net/http"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/quotas"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// client is a gophercloud network client for a token of the harness.
func (h *harness) client(token string) *gophercloud.ServiceClient {
	pc := &gophercloud.ProviderClient{TokenID: token, HTTPClient: *h.srv.Client()}
	return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: h.srv.URL + "/", ResourceBase: h.srv.URL + "/v2.0/", Type: "network"}
}

// TestGophercloud drives the API with gophercloud, one of the clients
// that judge wire compatibility: its result types, its pager following
// Neutron's pagination links, and its error handling by status.
func TestGophercloud(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	a, admin := h.client("a"), h.client("admin")

	up := true
	var made []string
	for _, name := range []string{"n1", "n2", "n3", "n4", "n5"} {
		n, err := networks.Create(ctx, a, networks.CreateOpts{Name: name, AdminStateUp: &up}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		if n.Status != "ACTIVE" || n.ProjectID != projA || n.CreatedAt.IsZero() {
			t.Fatalf("network %+v", n)
		}
		made = append(made, n.ID)
	}
	pages := 0
	var listed []string
	err := networks.List(a, networks.ListOpts{Limit: 2, SortKey: "name", SortDir: "asc"}).EachPage(ctx, func(_ context.Context, p gophercloudPage) (bool, error) {
		pages++
		ns, err := networks.ExtractNetworks(p)
		for _, n := range ns {
			listed = append(listed, n.Name)
		}
		return pages < 10, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 5 || listed[0] != "n1" || listed[4] != "n5" || pages < 3 {
		t.Fatalf("paged listing %v in %d pages", listed, pages)
	}

	sn, err := subnets.Create(ctx, a, subnets.CreateOpts{NetworkID: made[0], CIDR: "192.168.10.0/24", IPVersion: gophercloud.IPv4,
		DNSNameservers: []string{"192.168.10.53"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if sn.GatewayIP != "192.168.10.1" || len(sn.AllocationPools) != 1 || sn.AllocationPools[0].Start != "192.168.10.2" {
		t.Fatalf("subnet %+v", sn)
	}
	_, err = subnets.Create(ctx, a, subnets.CreateOpts{NetworkID: made[0], CIDR: "192.168.10.0/25", IPVersion: gophercloud.IPv4}).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Fatalf("overlapping subnet: %v", err)
	}
	p, err := ports.Create(ctx, a, ports.CreateOpts{NetworkID: made[0], Name: "vm"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.FixedIPs) != 1 || p.FixedIPs[0].IPAddress != "192.168.10.2" || len(p.SecurityGroups) != 1 {
		t.Fatalf("port %+v", p)
	}
	_, err = ports.Create(ctx, a, ports.CreateOpts{NetworkID: made[0], FixedIPs: []ports.IP{{IPAddress: "192.168.10.2"}}}).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		t.Fatalf("address in use: %v", err)
	}
	_, err = networks.Get(ctx, h.client("b"), made[0]).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("other project's network: %v", err)
	}

	sgs, err := groups.List(a, groups.ListOpts{Name: "default"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	def, err := groups.ExtractGroups(sgs)
	if err != nil || len(def) != 1 || len(def[0].Rules) != 4 {
		t.Fatalf("default group %+v %v", def, err)
	}
	rl, err := rules.Create(ctx, a, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: def[0].ID,
		Protocol: rules.ProtocolTCP, PortRangeMin: 22, PortRangeMax: 22, RemoteIPPrefix: "0.0.0.0/0"}).Extract()
	if err != nil || rl.PortRangeMin != 22 || rl.Protocol != "tcp" {
		t.Fatalf("rule %+v %v", rl, err)
	}

	ext := true
	pub, err := networks.Create(ctx, admin, external.CreateOptsExt{CreateOptsBuilder: networks.CreateOpts{Name: "public"}, External: &ext}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subnets.Create(ctx, admin, subnets.CreateOpts{NetworkID: pub.ID, CIDR: "198.51.100.0/24", IPVersion: gophercloud.IPv4}).Extract(); err != nil {
		t.Fatal(err)
	}
	rt, err := routers.Create(ctx, a, routers.CreateOpts{Name: "r", GatewayInfo: &routers.GatewayInfo{NetworkID: pub.ID}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if rt.GatewayInfo.NetworkID != pub.ID || len(rt.GatewayInfo.ExternalFixedIPs) != 1 {
		t.Fatalf("router %+v", rt)
	}
	if _, err := routers.AddInterface(ctx, a, rt.ID, routers.AddInterfaceOpts{SubnetID: sn.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	fip, err := floatingips.Create(ctx, a, floatingips.CreateOpts{FloatingNetworkID: pub.ID, PortID: p.ID}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if fip.RouterID != rt.ID || fip.FixedIP != "192.168.10.2" || fip.FloatingIP == "" {
		t.Fatalf("floating IP %+v", fip)
	}

	if err := attributestags.Add(ctx, a, "networks", made[1], "blue").ExtractErr(); err != nil {
		t.Fatal(err)
	}
	tags, err := attributestags.List(ctx, a, "networks", made[1]).Extract()
	if err != nil || len(tags) != 1 || tags[0] != "blue" {
		t.Fatalf("tags %v %v", tags, err)
	}
	q, err := quotas.Get(ctx, a, projA).Extract()
	if err != nil || q.Network != 100 || q.Port != 500 || q.SecurityGroupRule != 100 {
		t.Fatalf("quota %+v %v", q, err)
	}
}
