package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func fakeAgent(t *testing.T, replies map[string][]byte) (*Agent, *RecordingRunner) {
	t.Helper()
	rr := &RecordingRunner{Replies: map[string][]byte{
		"nft -j list tables":                           []byte(`{"nftables":[]}`),
		"sysctl -n net.bridge.bridge-nf-call-iptables": []byte("1\n"),
	}}
	for k, v := range replies {
		rr.Replies[k] = v
	}
	a, err := New(Config{Prefix: "nb", StateDir: t.TempDir(), Runner: rr})
	if err != nil {
		t.Fatal(err)
	}
	return a, rr
}

// TestVLANCommands covers the VLAN path by the commands it issues (this
// machine has no 8021q): a tagged sub-interface of the provider NIC in the
// network's bridge, created once, recreated when its tag changes.
func TestVLANCommands(t *testing.T) {
	st := State{Networks: []Network{{ID: "prov", Type: NetworkVLAN, SegmentationID: 100, PhysicalInterface: "eth9"}}}
	br, vl := names{"nb"}.bridge("prov"), names{"nb"}.vlan("prov")

	a, rr := fakeAgent(t, nil)
	if err := a.Apply(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ip link add " + br + " type bridge stp_state 0 forward_delay 0",
		"ip link set " + br + " mtu 1500 up",
		"ip link add link eth9 name " + vl + " type vlan protocol 802.1Q id 100",
		"ip link set " + vl + " master " + br + " mtu 1500 up",
	} {
		if !slices.Contains(rr.Commands, want) {
			t.Errorf("missing command %q in\n%s", want, strings.Join(rr.Commands, "\n"))
		}
	}

	// Already there: nothing is created or changed.
	have := `[{"ifname":"` + br + `","mtu":1500,"flags":["UP"],"linkinfo":{"info_kind":"bridge"}},
	{"ifname":"` + vl + `","mtu":1500,"flags":["UP"],"master":"` + br + `","link":"eth9","linkinfo":{"info_kind":"vlan","info_data":{"id":100}}}]`
	a, rr = fakeAgent(t, map[string][]byte{"ip -j -d link show": []byte(have)})
	if err := a.Apply(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	for _, c := range rr.Commands {
		if strings.Contains(c, " add ") || strings.Contains(c, " set ") || strings.Contains(c, " del ") {
			t.Errorf("idempotent apply issued %q", c)
		}
	}

	// Wrong tag: replaced.
	a, rr = fakeAgent(t, map[string][]byte{"ip -j -d link show": []byte(strings.Replace(have, `"id":100`, `"id":200`, 1))})
	if err := a.Apply(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	del := slices.Index(rr.Commands, "ip link del "+vl)
	add := slices.Index(rr.Commands, "ip link add link eth9 name "+vl+" type vlan protocol 802.1Q id 100")
	if del < 0 || add < del {
		t.Errorf("vlan with the wrong tag not replaced:\n%s", strings.Join(rr.Commands, "\n"))
	}

	// Bad input changes nothing.
	a, rr = fakeAgent(t, nil)
	bad := State{Networks: []Network{{ID: "prov", Type: NetworkVLAN, SegmentationID: 5000, PhysicalInterface: "eth9"}}}
	if err := a.Apply(context.Background(), bad); err == nil || len(rr.Commands) != 0 {
		t.Errorf("vlan 5000: err=%v, commands=%v", err, rr.Commands)
	}
}

// TestVXLANBetweenHosts: two hosts joined only by an underlay link carry
// one tenant network over VXLAN with static flood entries (no multicast, no
// learning); guests on either host reach each other, the MTU is the
// underlay's minus 50 and a full-size packet passes unfragmented.
func TestVXLANBetweenHosts(t *testing.T) {
	t.Parallel()
	requireHost(t)
	p := testPrefix(t)
	h1, h2 := newNetns(t, p+"-h1"), newNetns(t, p+"-h2")
	g1, g2 := newNetns(t, p+"-g1"), newNetns(t, p+"-g2")
	run(t, h1, "ip", "link", "add", "under0", "mtu", "1400", "type", "veth", "peer", "name", "under0", "mtu", "1400", "netns", h2)
	run(t, h1, "ip", "addr", "add", "10.98.0.1/24", "dev", "under0")
	run(t, h2, "ip", "addr", "add", "10.98.0.2/24", "dev", "under0")
	run(t, h1, "ip", "link", "set", "under0", "up")
	run(t, h2, "ip", "link", "set", "under0", "up")

	net := func(peer string) Network {
		return Network{ID: "tenant", Type: NetworkVXLAN, SegmentationID: 7777, VXLANPeers: []netip.Addr{addr(peer)},
			Subnets: []Subnet{{ID: "s", CIDR: prefix("10.93.0.0/24")}}}
	}
	a1 := newTestAgent(t, p, h1, func(c *Config) { c.VTEP = addr("10.98.0.1"); c.UnderlayDevice = "under0"; c.UnderlayMTU = 1400 })
	a2 := newTestAgent(t, testPrefix(t), h2, func(c *Config) { c.VTEP = addr("10.98.0.2"); c.UnderlayDevice = "under0"; c.UnderlayMTU = 1400 })
	apply(t, a1, State{Networks: []Network{net("10.98.0.2")}, Ports: []Port{{ID: "v1", NetworkID: "tenant", MAC: mac("fa:16:3e:00:05:01"), FixedIPs: []netip.Addr{addr("10.93.0.1")}, Netns: g1}}})
	apply(t, a2, State{Networks: []Network{net("10.98.0.1")}, Ports: []Port{{ID: "v2", NetworkID: "tenant", MAC: mac("fa:16:3e:00:05:02"), FixedIPs: []netip.Addr{addr("10.93.0.2")}, Netns: g2}}})
	guestIP(t, g1, "10.93.0.1/24", "")
	guestIP(t, g2, "10.93.0.2/24", "")

	if out := run(t, g1, "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "mtu 1350") {
		t.Errorf("guest MTU is not underlay-50: %s", out)
	}
	if !canPing(g1, "10.93.0.2") {
		t.Fatalf("guests on two hosts cannot reach each other over vxlan")
	}
	// 1350 - 28 bytes of IP+ICMP header, don't fragment.
	if _, err := tryRun(g1, "ping", "-n", "-q", "-c", "2", "-W", "1", "-M", "do", "-s", "1322", "10.93.0.2"); err != nil {
		t.Errorf("full-MTU packet did not cross: %v", err)
	}
	echoServer(t, g2, ":7000")
	if _, err := tcpEcho(g1, "10.93.0.2:7000", 3*time.Second); err != nil {
		t.Errorf("tcp over vxlan: %v", err)
	}
	// Without the peer entry, nothing crosses: the FDB is the only path.
	apply(t, a1, State{Networks: []Network{{ID: "tenant", Type: NetworkVXLAN, SegmentationID: 7777,
		Subnets: []Subnet{{ID: "s", CIDR: prefix("10.93.0.0/24")}}}},
		Ports: []Port{{ID: "v1", NetworkID: "tenant", MAC: mac("fa:16:3e:00:05:01"), FixedIPs: []netip.Addr{addr("10.93.0.1")}, Netns: g1}}})
	run(t, g1, "ip", "neigh", "flush", "all")
	run(t, "", "bridge", "-n", h1, "fdb", "flush", "dev", a1.n.vxlan("tenant"), "dynamic")
	if canPing(g1, "10.93.0.2") {
		t.Errorf("guests still reach each other with no vxlan peers programmed")
	}
}

// TestBridgedGratuitousARP: in bridged mode a floating IP that appears on a
// router's gateway is announced with a gratuitous ARP; in routed mode it is
// not (nothing of the router reaches the physical L2).
func TestBridgedGratuitousARP(t *testing.T) {
	for _, mode := range []ExternalMode{ExternalBridged, ExternalRouted} {
		ext := Network{ID: "ext", Type: NetworkFlat, PhysicalInterface: "eth1", External: &External{Mode: mode, Uplink: "eth0"},
			Subnets: []Subnet{{ID: "e", CIDR: prefix("203.0.113.0/24"), Gateway: addr("203.0.113.1")}}}
		st := State{
			Networks: []Network{ext, {ID: "t", Type: NetworkLocal, Subnets: []Subnet{{ID: "s", CIDR: prefix("10.0.0.0/24")}}}},
			Routers: []Router{{ID: "r", Gateway: &RouterGateway{NetworkID: "ext", IP: addr("203.0.113.10"), SNAT: true},
				Interfaces:  []RouterInterface{{NetworkID: "t", IP: addr("10.0.0.1")}},
				FloatingIPs: []FloatingIP{{IP: addr("203.0.113.20"), FixedIP: addr("10.0.0.5")}}}},
		}
		a, rr := fakeAgent(t, map[string][]byte{"ip -j -d link show": []byte(`[{"ifname":"eth1","mtu":1500,"flags":["UP"]}]`)})
		if err := a.Apply(context.Background(), st); err != nil {
			t.Fatal(err)
		}
		garp := "[" + a.n.routerNS("r") + "] arping -U -c 1 -I " + routerInnerGw("r") + " 203.0.113.20"
		if got := slices.Contains(rr.Commands, garp); got != (mode == ExternalBridged) {
			t.Errorf("%s: gratuitous ARP sent=%v\n%s", mode, got, strings.Join(rr.Commands, "\n"))
		}
		enslave := "ip link set eth1 master " + a.n.bridge("ext")
		if got := slices.Contains(rr.Commands, enslave); got != (mode == ExternalBridged) {
			t.Errorf("%s: physical NIC enslaved=%v", mode, got)
		}
	}
}

// TestInvalidStateTouchesNothing: bad input is refused whole, before a
// single host command.
func TestInvalidStateTouchesNothing(t *testing.T) {
	okNet := Network{ID: "n", Type: NetworkLocal, Subnets: []Subnet{{ID: "s", CIDR: prefix("10.0.0.0/24"), Gateway: addr("10.0.0.1")}}}
	ext := Network{ID: "e", Type: NetworkLocal, External: &External{Mode: ExternalRouted, Uplink: "eth0"},
		Subnets: []Subnet{{ID: "es", CIDR: prefix("203.0.113.0/24")}}}
	port := Port{ID: "p", NetworkID: "n", MAC: mac("fa:16:3e:00:00:01")}
	with := func(f func(*Port)) []Port { p := port; f(&p); return []Port{p} }
	cases := map[string]State{
		"unknown type":          {Networks: []Network{{ID: "n", Type: "gre"}}},
		"vxlan vni 0":           {Networks: []Network{{ID: "n", Type: NetworkVXLAN}}},
		"flat without nic":      {Networks: []Network{{ID: "n", Type: NetworkFlat}}},
		"bad nic name":          {Networks: []Network{{ID: "n", Type: NetworkFlat, PhysicalInterface: "eth0; rm -rf /"}}},
		"duplicate network":     {Networks: []Network{okNet, okNet}},
		"gateway outside":       {Networks: []Network{{ID: "n", Type: NetworkLocal, Subnets: []Subnet{{ID: "s", CIDR: prefix("10.0.0.0/24"), Gateway: addr("10.1.0.1")}}}}},
		"dhcp without address":  {Networks: []Network{{ID: "n", Type: NetworkLocal, Subnets: []Subnet{{ID: "s", CIDR: prefix("10.0.0.0/24"), DHCP: true}}}}},
		"routed without uplink": {Networks: []Network{{ID: "e", Type: NetworkLocal, External: &External{Mode: ExternalRouted}}}},
		"bridged on vxlan":      {Networks: []Network{{ID: "e", Type: NetworkVXLAN, SegmentationID: 1, External: &External{Mode: ExternalBridged}}}},
		"port on unknown net":   {Ports: []Port{port}},
		"port ip outside":       {Networks: []Network{okNet}, Ports: with(func(p *Port) { p.FixedIPs = []netip.Addr{addr("10.9.9.9")} })},
		"port unknown group":    {Networks: []Network{okNet}, Ports: with(func(p *Port) { p.SecurityGroups = []string{"nope"} })},
		"port without mac":      {Networks: []Network{okNet}, Ports: with(func(p *Port) { p.MAC = nil })},
		"dhcp opt newline": {Networks: []Network{okNet}, Ports: with(func(p *Port) {
			p.ExtraDHCPOpts = []DHCPOption{{Name: "x", Value: "a\ndhcp-range=evil"}}
		})},
		"gateway not external": {Networks: []Network{okNet}, Routers: []Router{{ID: "r", Gateway: &RouterGateway{NetworkID: "n", IP: addr("10.0.0.5")}}}},
		"fip without gateway":  {Networks: []Network{okNet}, Routers: []Router{{ID: "r", FloatingIPs: []FloatingIP{{IP: addr("203.0.113.5"), FixedIP: addr("10.0.0.5")}}}}},
		"fip outside external": {Networks: []Network{okNet, ext}, Routers: []Router{{ID: "r", Gateway: &RouterGateway{NetworkID: "e", IP: addr("203.0.113.2")},
			FloatingIPs: []FloatingIP{{IP: addr("198.51.100.5"), FixedIP: addr("10.0.0.5")}}}}},
		"two legs on one net": {Networks: []Network{okNet}, Routers: []Router{{ID: "r", Interfaces: []RouterInterface{{NetworkID: "n", IP: addr("10.0.0.1")}, {NetworkID: "n", IP: addr("10.0.0.2")}}}}},
		"bad rule protocol":   {SecurityGroups: []SecurityGroup{{ID: "g", Rules: []SecurityGroupRule{{Direction: Ingress, EtherType: IPv4, Protocol: "tcp; drop"}}}}},
	}
	for name, st := range cases {
		a, rr := fakeAgent(t, nil)
		err := a.Apply(context.Background(), st)
		if !errors.Is(err, ErrInvalidState) {
			t.Errorf("%s: err = %v, want ErrInvalidState", name, err)
		}
		if len(rr.Commands) != 0 {
			t.Errorf("%s: ran %v", name, rr.Commands)
		}
	}
}
