package dataplane

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var countersRE = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// snapshot renders everything an agent with this prefix owns, in a stable
// form: links with their kind/master/MTU/VNI, flood entries, addresses and
// routes in its namespaces, host routes it owns and all its nftables rules
// (counters zeroed).
func snapshot(t testing.TB, p, host string) string {
	t.Helper()
	var lines []string
	var links []*link
	if err := json.Unmarshal([]byte(run(t, "", "ip", "-n", host, "-j", "-d", "link", "show")), &links); err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if !strings.HasPrefix(l.Name, p) {
			continue
		}
		lines = append(lines, fmt.Sprintf("link %s kind=%s master=%s mtu=%d up=%v id=%d", l.Name, l.LinkInfo.Kind, l.Master, l.MTU, l.up(), l.LinkInfo.Data.ID))
		if l.LinkInfo.Kind == "vxlan" {
			for _, fl := range strings.Split(run(t, "", "bridge", "-n", host, "fdb", "show", "dev", l.Name), "\n") {
				if strings.HasPrefix(fl, "00:00:00:00:00:00") {
					lines = append(lines, "fdb "+l.Name+" "+fl)
				}
			}
		}
	}
	for _, r := range strings.Split(run(t, "", "ip", "-n", host, "route", "show", "proto", routeProto), "\n") {
		if r != "" {
			lines = append(lines, "hostroute "+r)
		}
	}
	for _, a := range strings.Split(run(t, "", "ip", "-n", host, "-o", "-4", "addr", "show"), "\n") {
		if f := strings.Fields(a); len(f) > 3 && strings.HasPrefix(f[1], p) {
			lines = append(lines, "hostaddr "+f[1]+" "+f[3])
		}
	}
	lines = append(lines, strings.Split("hostnft "+countersRE.ReplaceAllString(run(t, host, "nft", "list", "ruleset"), "counter"), "\n")...)
	for _, line := range strings.Split(run(t, "", "ip", "netns", "list"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], p+"-") || !regexp.MustCompile(`-[rd]-`).MatchString(f[0]) {
			continue
		}
		n := f[0]
		lines = append(lines, "netns "+n)
		for _, a := range strings.Split(run(t, "", "ip", "-n", n, "-o", "-4", "addr", "show"), "\n") {
			if f := strings.Fields(a); len(f) > 3 {
				lines = append(lines, n+" addr "+f[1]+" "+f[3])
			}
		}
		for _, r := range strings.Split(run(t, "", "ip", "-n", n, "route", "show"), "\n") {
			if r != "" {
				lines = append(lines, n+" route "+r)
			}
		}
		for _, r := range strings.Split(countersRE.ReplaceAllString(run(t, n, "nft", "list", "ruleset"), "counter"), "\n") {
			lines = append(lines, n+" nft "+r)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func diffLines(a, b string) string {
	as, bs := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		as[l] = true
	}
	for _, l := range strings.Split(b, "\n") {
		bs[l] = true
	}
	var d []string
	for l := range as {
		if !bs[l] {
			d = append(d, "- "+l)
		}
	}
	for l := range bs {
		if !as[l] {
			d = append(d, "+ "+l)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

// TestReconcile: applying twice changes nothing; damage to what Nimbus owns
// is repaired and strays carrying its prefix are removed; a restarted agent
// converges to the same host without breaking an open connection; the
// empty state leaves nothing behind.
func TestReconcile(t *testing.T) {
	t.Parallel()
	requireHost(t)
	p := testPrefix(t)
	host := newNetns(t, p+"-host")
	g1 := newNetns(t, p+"-g1")
	g2 := newNetns(t, p+"-g2")
	run(t, host, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	run(t, host, "ip", "addr", "add", "10.205.0.1/24", "dev", "eth0")
	run(t, host, "ip", "link", "set", "eth0", "up")
	run(t, host, "ip", "link", "set", "eth0p", "up")

	st := State{
		Networks: []Network{
			{ID: "ext", Type: NetworkLocal, External: &External{Mode: ExternalHostIP, Uplink: "eth0"},
				Subnets: []Subnet{{ID: "ext-v4", CIDR: prefix("10.205.0.0/24"), Gateway: addr("10.205.0.254")}}},
			{ID: "net", Type: NetworkVXLAN, SegmentationID: 5001, VXLANPeers: []netip.Addr{addr("10.99.0.2"), addr("10.99.0.3")},
				Subnets: []Subnet{{ID: "sub", CIDR: prefix("10.92.0.0/24"), Gateway: addr("10.92.0.1"), DHCP: true, DHCPAddress: addr("10.92.0.2")}}},
		},
		SecurityGroups: []SecurityGroup{{ID: "sg", Rules: []SecurityGroupRule{
			{Direction: Egress, EtherType: IPv4},
			{Direction: Ingress, EtherType: IPv4, Protocol: "tcp", PortMin: intp(7000), PortMax: intp(7000), RemoteGroupID: "sg"},
		}}},
		Ports: []Port{
			{ID: "p1", NetworkID: "net", MAC: mac("fa:16:3e:00:04:01"), FixedIPs: []netip.Addr{addr("10.92.0.11")}, PortSecurity: true, SecurityGroups: []string{"sg"}, Netns: g1},
			{ID: "p2", NetworkID: "net", MAC: mac("fa:16:3e:00:04:02"), FixedIPs: []netip.Addr{addr("10.92.0.12")}, PortSecurity: true, SecurityGroups: []string{"sg"}, Netns: g2},
			{ID: "p3", NetworkID: "net", MAC: mac("fa:16:3e:00:04:03"), FixedIPs: []netip.Addr{addr("10.92.0.13")}},
		},
		Routers: []Router{{ID: "r", Gateway: &RouterGateway{NetworkID: "ext", IP: addr("10.205.0.50"), SNAT: true},
			Interfaces:  []RouterInterface{{NetworkID: "net", IP: addr("10.92.0.1")}},
			Routes:      []Route{{Destination: prefix("172.30.0.0/16"), NextHop: addr("10.92.0.200")}},
			FloatingIPs: []FloatingIP{{IP: addr("10.205.0.51"), FixedIP: addr("10.92.0.11")}},
		}},
	}
	cfg := func(c *Config) { c.VTEP = addr("10.99.0.1") }
	agent := newTestAgent(t, p, host, cfg)
	stateDir := agent.cfg.StateDir
	apply(t, agent, st)
	want := snapshot(t, p, host)
	for _, must := range []string{"fdb " + agent.n.vxlan("net") + " 00:00:00:00:00:00 dst 10.99.0.2", "hostroute 10.205.0.51 dev " + agent.n.bridge("ext"),
		"netns " + agent.n.routerNS("r"), "netns " + agent.n.dhcpNS("net"), "mtu=1450"} {
		if !strings.Contains(want, must) {
			t.Errorf("state lacks %q:\n%s", must, want)
		}
	}
	apply(t, agent, st)
	if got := snapshot(t, p, host); got != want {
		t.Fatalf("second apply changed the host:\n%s", diffLines(want, got))
	}

	guestIP(t, g1, "10.92.0.11/24", "")
	guestIP(t, g2, "10.92.0.12/24", "")
	echoServer(t, g2, ":7000")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := DialInNetns(ctx, g1, "tcp", "10.92.0.12:7000")
	if err != nil {
		t.Fatalf("guest to guest: %v", err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	exchange := func(msg string) error {
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(conn, msg+"\n"); err != nil {
			return err
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasSuffix(line, msg+"\n") {
			return fmt.Errorf("echo %q", line)
		}
		return nil
	}
	if err := exchange("before"); err != nil {
		t.Fatalf("exchange: %v", err)
	}

	// Damage.
	sgChain := "ingress_" + shortID("p2")
	rules := run(t, host, "nft", "-a", "list", "chain", "inet", agent.n.tableSG(), sgChain)
	m := regexp.MustCompile(`tcp dport 7000 accept # handle (\d+)`).FindStringSubmatch(rules)
	if m == nil {
		t.Fatalf("no tcp rule in %s", rules)
	}
	run(t, host, "nft", "delete", "rule", "inet", agent.n.tableSG(), sgChain, "handle", m[1])
	run(t, host, "ip", "link", "add", p+"bdeadbeef", "type", "bridge")
	run(t, host, "ip", "link", "add", p+"tdeadbeef", "type", "veth", "peer", "name", p+"tfeedf00d")
	run(t, "", "bridge", "-n", host, "fdb", "del", "00:00:00:00:00:00", "dev", agent.n.vxlan("net"), "dst", "10.99.0.3")
	run(t, "", "bridge", "-n", host, "fdb", "append", "00:00:00:00:00:00", "dev", agent.n.vxlan("net"), "dst", "10.99.0.9")
	run(t, "", "ip", "-n", agent.n.routerNS("r"), "addr", "add", "10.92.0.99/24", "dev", routerInnerIf("net"))
	run(t, "", "ip", "-n", agent.n.routerNS("r"), "route", "del", "172.30.0.0/16")
	run(t, "", "ip", "-n", host, "link", "set", agent.n.port("p3"), "nomaster")
	run(t, "", "ip", "-n", host, "link", "set", agent.n.bridge("net"), "mtu", "1300")
	run(t, "", "ip", "-n", host, "route", "del", "10.205.0.51/32")
	run(t, "", "ip", "netns", "add", p+"-r-deadbeef")
	run(t, host, "nft", "add", "table", "inet", p+"_stray")
	if got := snapshot(t, p, host); got == want {
		t.Fatalf("damage did not show in the snapshot")
	}
	apply(t, agent, st)
	if got := snapshot(t, p, host); got != want {
		t.Errorf("apply did not repair the host:\n%s", diffLines(want, got))
	}

	// A restarted agent (new process, same prefix and state dir).
	agent.Close()
	agent2, err := New(Config{Prefix: p, HostNetns: host, StateDir: stateDir, VTEP: addr("10.99.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer agent2.Close()
	apply(t, agent2, st)
	if got := snapshot(t, p, host); got != want {
		t.Errorf("restarted agent changed the host:\n%s", diffLines(want, got))
	}
	if err := exchange("after"); err != nil {
		t.Errorf("open connection broken by the restart: %v", err)
	}

	// Nothing Nimbus-owned survives the empty state; the operator's
	// interfaces stay.
	apply(t, agent2, State{})
	if left := ownedLeft(t, p, host); len(left) > 0 {
		t.Errorf("empty state left: %v", left)
	}
	if out := run(t, host, "ip", "neigh", "show", "proxy"); strings.Contains(out, "10.205.0.51") {
		t.Errorf("proxy ARP entry left: %s", out)
	}
	if out := run(t, host, "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "eth0") {
		t.Errorf("operator's eth0 removed")
	}
}
