package netagent

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
)

// post creates a resource the agent reads with raw calls and returns it.
func post(t *testing.T, c *gophercloud.ServiceClient, key string, body map[string]any, path ...string) map[string]any {
	t.Helper()
	var out map[string]map[string]any
	if _, err := c.Post(context.Background(), c.ServiceURL(path...), map[string]any{key: body}, &out, nil); err != nil {
		t.Fatalf("create %s: %v", key, err)
	}
	return out[key]
}

// TestSyncCarriesIPv6AndMetering: an IPv6 DHCPv6-stateful subnet reaches
// the data plane with its modes and a DHCP address (the agent's DHCP port
// gets one on it), the router gets a leg address on it, and the project's
// metering label with its rules (excluded included) meters the router.
func TestSyncCarriesIPv6AndMetering(t *testing.T) {
	ctx := context.Background()
	c := newNetworking(t)
	_, priv := newTopology(t, c, "203.0.113.0/24")
	yes := true
	v6, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: priv.ID, CIDR: "2001:db8:5::/64", IPVersion: 6, EnableDHCP: &yes,
		IPv6AddressMode: "dhcpv6-stateful", IPv6RAMode: "dhcpv6-stateful"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	pages, err := routers.List(c, routers.ListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := routers.ExtractRouters(pages)
	if _, err := routers.AddInterface(ctx, c, rs[0].ID, routers.AddInterfaceOpts{SubnetID: v6.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	label := post(t, c, "metering_label", map[string]any{"name": "traffic"}, "metering", "metering-labels")
	for _, r := range []map[string]any{
		{"metering_label_id": label["id"], "direction": "ingress", "remote_ip_prefix": "0.0.0.0/0"},
		{"metering_label_id": label["id"], "direction": "egress", "remote_ip_prefix": "203.0.113.0/24", "excluded": true},
	} {
		post(t, c, "metering_label_rule", r, "metering", "metering-label-rules")
	}

	rec := &recorder{}
	a := New(Config{Host: Host{Name: "host-1", ExternalMode: dataplane.ExternalRouted, Uplink: "eth0"}, Client: c, Dataplane: rec,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st := rec.states[0]
	var sub dataplane.Subnet
	for _, n := range st.Networks {
		for _, s := range n.Subnets {
			if s.ID == v6.ID {
				sub = s
			}
		}
	}
	if sub.IPv6AddressMode != dataplane.IPv6DHCPv6Stateful || sub.IPv6RAMode != dataplane.IPv6DHCPv6Stateful || !sub.DHCP ||
		!sub.DHCPAddress.Is6() || sub.Gateway != netip.MustParseAddr("2001:db8:5::1") {
		t.Fatalf("IPv6 subnet in the state: %+v", sub)
	}
	dr := st.Routers[0]
	var v4, v6leg bool
	for _, itf := range dr.Interfaces {
		v4 = v4 || itf.IP == netip.MustParseAddr("10.0.0.1")
		v6leg = v6leg || itf.IP == netip.MustParseAddr("2001:db8:5::1")
	}
	if !v4 || !v6leg {
		t.Fatalf("router interfaces %+v, want the IPv4 and the IPv6 gateway", dr.Interfaces)
	}
	if len(dr.MeteringLabels) != 1 || dr.MeteringLabels[0].ID != label["id"] || len(dr.MeteringLabels[0].Rules) != 2 {
		t.Fatalf("metering labels %+v", dr.MeteringLabels)
	}
	excluded := 0
	for _, r := range dr.MeteringLabels[0].Rules {
		if r.Excluded && r.RemoteIPPrefix == netip.MustParsePrefix("203.0.113.0/24") && r.Direction == dataplane.Egress {
			excluded++
		}
	}
	if excluded != 1 {
		t.Fatalf("metering rules %+v, want the excluded one", dr.MeteringLabels[0].Rules)
	}
}
