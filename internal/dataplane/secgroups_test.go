package dataplane

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// sgEnv is one tenant network on a host namespace with stand-in guests:
//
//	client  .10  group "clients" (egress anywhere, no ingress)
//	other   .11  no group memberships that servers trust
//	web     .20  group "web": icmp from anyone, tcp 7000 from "clients"
//	closed  .21  group "closed": no ingress rules
//	open    .22  port security off
type sgEnv struct {
	host   string
	agent  *Agent
	guests map[string]string // port id → netns
	st     State
}

func newSGEnv(t testing.TB) *sgEnv {
	t.Helper()
	requireHost(t)
	p := testPrefix(t)
	e := &sgEnv{host: newNetns(t, p+"-host"), guests: map[string]string{}}
	e.agent = newTestAgent(t, p, e.host, nil)
	ips := map[string]string{"client": "10.90.0.10", "other": "10.90.0.11", "web": "10.90.0.20", "closed": "10.90.0.21", "open": "10.90.0.22"}
	groups := map[string][]string{"client": {"clients"}, "other": {"others"}, "web": {"web"}, "closed": {"closed"}}
	egressAll := SecurityGroupRule{Direction: Egress, EtherType: IPv4}
	e.st = State{
		Networks: []Network{{ID: "net", Type: NetworkLocal, Subnets: []Subnet{{ID: "sub", CIDR: prefix("10.90.0.0/24")}}}},
		SecurityGroups: []SecurityGroup{
			{ID: "clients", Rules: []SecurityGroupRule{egressAll}},
			{ID: "others", Rules: []SecurityGroupRule{egressAll}},
			{ID: "web", Rules: []SecurityGroupRule{egressAll,
				{Direction: Ingress, EtherType: IPv4, Protocol: "icmp", PortMin: intp(8)},
				{Direction: Ingress, EtherType: IPv4, Protocol: "tcp", PortMin: intp(7000), PortMax: intp(7000), RemoteGroupID: "clients"},
			}},
			{ID: "closed", Rules: []SecurityGroupRule{egressAll}},
		},
	}
	i := 0
	for _, id := range []string{"client", "other", "web", "closed", "open"} {
		i++
		gns := newNetns(t, p+"-"+id)
		e.guests[id] = gns
		e.st.Ports = append(e.st.Ports, Port{
			ID: id, NetworkID: "net", MAC: mac("fa:16:3e:00:01:0" + string(rune('0'+i))),
			FixedIPs:     []netip.Addr{addr(ips[id])},
			PortSecurity: id != "open", SecurityGroups: groups[id], Netns: gns,
		})
	}
	apply(t, e.agent, e.st)
	for id, gns := range e.guests {
		guestIP(t, gns, ips[id]+"/24", "")
		echoServer(t, gns, ":7000")
		echoServer(t, gns, ":7001")
	}
	return e
}

func tcpOK(from, to string) bool {
	_, err := tcpEcho(from, to, 1500*time.Millisecond)
	return err == nil
}

// TestSecurityGroups: an allowed port answers, a denied one does not,
// remote groups expand to their members, replies are allowed statefully,
// spoofed sources are dropped, and port security off means no filtering.
func TestSecurityGroups(t *testing.T) {
	t.Parallel()
	e := newSGEnv(t)
	g := e.guests
	checks := []struct {
		name     string
		from, to string
		want     bool
	}{
		{"client→web tcp 7000 (remote group clients)", g["client"], "10.90.0.20:7000", true},
		{"client→web tcp 7001 (no rule)", g["client"], "10.90.0.20:7001", false},
		{"other→web tcp 7000 (not in clients)", g["other"], "10.90.0.20:7000", false},
		{"client→closed tcp 7000 (no ingress rules)", g["client"], "10.90.0.21:7000", false},
		{"web→client tcp 7000 (client has no ingress)", g["web"], "10.90.0.10:7000", false},
		{"client→open tcp 7001 (port security off)", g["client"], "10.90.0.22:7001", true},
	}
	for _, c := range checks {
		if got := tcpOK(c.from, c.to); got != c.want {
			t.Errorf("%s: connected=%v, want %v", c.name, got, c.want)
		}
	}
	if !canPing(g["other"], "10.90.0.20") {
		t.Errorf("icmp echo to web (allowed from anyone) failed")
	}
	if canPing(g["other"], "10.90.0.21") {
		t.Errorf("icmp echo to closed succeeded")
	}

	// Spoofing from the client: another IP, then another MAC.
	run(t, g["client"], "ip", "addr", "add", "10.90.0.50/24", "dev", "eth0")
	if _, err := tryRun(g["client"], "ping", "-n", "-q", "-c", "2", "-W", "1", "-I", "10.90.0.50", "10.90.0.22"); err == nil {
		t.Errorf("spoofed source IP 10.90.0.50 reached the open port")
	}
	if !tcpOK(g["client"], "10.90.0.22:7001") {
		t.Errorf("client lost its own address after trying a spoofed one")
	}
	run(t, g["client"], "ip", "addr", "del", "10.90.0.50/24", "dev", "eth0")
	run(t, g["client"], "ip", "link", "set", "eth0", "address", "fa:16:3e:99:99:99")
	run(t, g["client"], "ip", "neigh", "flush", "all")
	if tcpOK(g["client"], "10.90.0.22:7001") {
		t.Errorf("spoofed source MAC reached the open port")
	}
	// The open port may spoof: no filtering at all.
	run(t, g["open"], "ip", "addr", "add", "10.90.0.51/24", "dev", "eth0")
	if _, err := tryRun(g["open"], "ping", "-n", "-q", "-c", "2", "-W", "1", "-I", "10.90.0.51", "10.90.0.20"); err != nil {
		t.Errorf("port without port security could not send from another address: %v", err)
	}

	// A rule change is enforced by the next Apply.
	e.st.SecurityGroups[3].Rules = append(e.st.SecurityGroups[3].Rules,
		SecurityGroupRule{Direction: Ingress, EtherType: IPv4, Protocol: "tcp", PortMin: intp(7000), PortMax: intp(7000), RemoteIPPrefix: prefix("10.90.0.0/24")})
	apply(t, e.agent, e.st)
	if !tcpOK(g["other"], "10.90.0.21:7000") {
		t.Errorf("new ingress rule on closed not enforced")
	}
}

func TestRuleRendering(t *testing.T) {
	a := &Agent{n: names{"nb"}}
	cases := []struct {
		r    SecurityGroupRule
		want string
	}{
		{SecurityGroupRule{Direction: Ingress, EtherType: IPv4}, "meta nfproto ipv4"},
		{SecurityGroupRule{Direction: Ingress, EtherType: IPv4, Protocol: "tcp", PortMin: intp(22), PortMax: intp(22)}, "meta nfproto ipv4 tcp dport 22"},
		{SecurityGroupRule{Direction: Ingress, EtherType: IPv4, Protocol: "6", PortMin: intp(1000), PortMax: intp(2000), RemoteIPPrefix: prefix("10.0.0.0/8")},
			"meta nfproto ipv4 ip saddr 10.0.0.0/8 tcp dport 1000-2000"},
		{SecurityGroupRule{Direction: Egress, EtherType: IPv4, Protocol: "udp", RemoteIPPrefix: prefix("192.0.2.1/32")}, "meta nfproto ipv4 ip daddr 192.0.2.1/32 meta l4proto udp"},
		{SecurityGroupRule{Direction: Ingress, EtherType: IPv4, Protocol: "icmp", PortMin: intp(8), PortMax: intp(0)}, "meta nfproto ipv4 meta l4proto icmp icmp type 8 icmp code 0"},
		{SecurityGroupRule{Direction: Ingress, EtherType: IPv6, Protocol: "icmp"}, "meta nfproto ipv6 meta l4proto ipv6-icmp"},
		{SecurityGroupRule{Direction: Ingress, EtherType: IPv6, Protocol: "tcp", RemoteGroupID: "g"}, "meta nfproto ipv6 ip6 saddr @" + sgSetName("g", IPv6) + " meta l4proto tcp"},
		{SecurityGroupRule{Direction: Ingress, EtherType: IPv4, Protocol: "112"}, "meta nfproto ipv4 meta l4proto 112"},
	}
	for _, c := range cases {
		if got := a.ruleMatch(c.r); got != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.r, got, c.want)
		}
	}
	for _, bad := range []SecurityGroupRule{
		{Direction: "sideways", EtherType: IPv4},
		{Direction: Ingress, EtherType: "IPv5"},
		{Direction: Ingress, EtherType: IPv4, Protocol: "bogus"},
		{Direction: Ingress, EtherType: IPv4, RemoteIPPrefix: prefix("2001:db8::/32")},
	} {
		if err := validateRule(bad); err == nil {
			t.Errorf("rule %+v accepted", bad)
		}
	}
	got := normalizePrefixes([]netip.Prefix{prefix("10.0.0.5/32"), prefix("10.0.0.0/28"), prefix("10.0.0.0/28"), prefix("10.1.0.1/32")})
	if s := joinPrefixes(got); s != "10.0.0.0/28, 10.1.0.1" {
		t.Errorf("normalizePrefixes = %s", s)
	}
	if !strings.HasPrefix(PortDevice("nb", "x"), "nbt") || len(PortDevice("abcd", "x")) > 15 {
		t.Errorf("bad device name %s", PortDevice("abcd", "x"))
	}
}
