package dataplane

import (
	"net/netip"
	"testing"
	"time"
)

// TestOverlappingProjectsIsolated: two projects use the same CIDR on their
// own networks and routers. Neither reaches the other's guests, both reach
// the outside through SNAT, and neither can open connections to the host.
func TestOverlappingProjectsIsolated(t *testing.T) {
	t.Parallel()
	requireHost(t)
	p := testPrefix(t)
	host := newNetns(t, p+"-host")
	out := newNetns(t, p+"-out")
	a1 := newNetns(t, p+"-a1")
	b1 := newNetns(t, p+"-b1")
	b2 := newNetns(t, p+"-b2")
	run(t, host, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", out)
	run(t, host, "ip", "addr", "add", "10.204.0.1/24", "dev", "eth0")
	run(t, host, "ip", "link", "set", "eth0", "up")
	run(t, host, "ip", "route", "add", "default", "via", "10.204.0.2")
	run(t, out, "ip", "addr", "add", "10.204.0.2/24", "dev", "eth0")
	run(t, out, "ip", "link", "set", "eth0", "up")
	echoServer(t, out, "10.204.0.2:7001")

	agent := newTestAgent(t, p, host, nil)
	tenant := func(id string) Network {
		return Network{ID: id, Type: NetworkVXLAN, SegmentationID: 100 + len(id),
			Subnets: []Subnet{{ID: id + "-v4", CIDR: prefix("192.168.20.0/24"), Gateway: addr("192.168.20.1")}}}
	}
	port := func(id, netID, m, ip, gns string) Port {
		return Port{ID: id, NetworkID: netID, MAC: mac(m), FixedIPs: []netip.Addr{addr(ip)}, Netns: gns,
			PortSecurity: true, SecurityGroups: []string{"open"}}
	}
	st := State{
		Networks: []Network{
			{ID: "ext", Type: NetworkLocal, External: &External{Mode: ExternalRouted, Uplink: "eth0"},
				Subnets: []Subnet{{ID: "ext-v4", CIDR: prefix("10.203.0.0/24"), Gateway: addr("10.203.0.1")}}},
			tenant("proj-a"), tenant("proj-bb"),
		},
		SecurityGroups: []SecurityGroup{{ID: "open", Rules: []SecurityGroupRule{
			{Direction: Ingress, EtherType: IPv4}, {Direction: Egress, EtherType: IPv4}}}},
		Ports: []Port{
			port("a1", "proj-a", "fa:16:3e:00:02:01", "192.168.20.10", a1),
			port("b1", "proj-bb", "fa:16:3e:00:02:02", "192.168.20.10", b1),
			port("b2", "proj-bb", "fa:16:3e:00:02:03", "192.168.20.11", b2),
		},
		Routers: []Router{
			{ID: "ra", Gateway: &RouterGateway{NetworkID: "ext", IP: addr("10.203.0.10"), SNAT: true},
				Interfaces: []RouterInterface{{NetworkID: "proj-a", IP: addr("192.168.20.1")}}},
			{ID: "rb", Gateway: &RouterGateway{NetworkID: "ext", IP: addr("10.203.0.11"), SNAT: true},
				Interfaces: []RouterInterface{{NetworkID: "proj-bb", IP: addr("192.168.20.1")}}},
		},
	}
	apply(t, agent, st)
	for _, g := range []struct{ ns, ip string }{{a1, "192.168.20.10/24"}, {b1, "192.168.20.10/24"}, {b2, "192.168.20.11/24"}} {
		guestIP(t, g.ns, g.ip, "192.168.20.1")
	}
	echoServer(t, a1, ":7000") // b1 listens on nothing: reaching it is refused

	if !canPing(a1, "192.168.20.1") || !canPing(b2, "192.168.20.1") {
		t.Fatalf("guests cannot reach their own routers")
	}
	if canPing(a1, "192.168.20.11") {
		t.Errorf("project A reached project B's 192.168.20.11")
	}
	if _, err := tcpEcho(b2, "192.168.20.10:7000", 2*time.Second); err == nil {
		t.Errorf("project B's guest reached project A's echo server at the overlapping address")
	}
	for name, g := range map[string]string{"a1": a1, "b1": b1} {
		src, err := tcpEcho(g, "10.204.0.2:7001", 5*time.Second)
		if err != nil {
			t.Errorf("%s → outside: %v", name, err)
		} else if src != addr("10.204.0.1") {
			t.Errorf("%s left as %s, want the host 10.204.0.1", name, src)
		}
	}
	if canPing(a1, "10.203.0.1") || canPing(a1, "10.204.0.1") {
		t.Errorf("a guest opened a connection to the host itself")
	}
}
