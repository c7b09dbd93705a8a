package dataplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The simulated VPC. Everything is a private range inside namespaces this
// test creates:
//
//	10.201.0.0/24  the VPC subnet: host .2 (eth0), host's second NIC .4
//	               (eth1, bridged mode only), outside .3
//	10.202.0.0/24  floating CIDR of routed mode; the host is .1
//	192.168.10.0/24 the project's tenant network behind router r1
const (
	vpcHostIP  = "10.201.0.2"
	vpcHost1IP = "10.201.0.4"
	vpcOutIP   = "10.201.0.3"
	hostMAC    = "02:00:0a:c9:00:02"
	host1MAC   = "02:00:0a:c9:00:04"
	outMAC     = "02:00:0a:c9:00:03"
)

type vpcEnv struct {
	prefix, vpc, host, out, ga1, ga2 string
	agent                            *Agent
	fip                              string
	gwIP                             string
}

// vpcRules is the VPC's anti-spoofing, as Alibaba Cloud and AWS enforce it:
// on each port only the (MAC, IP) pairs the VPC assigned to that
// interface, plus, for the host, what the operator registered (the routed
// CIDR of a route entry, or the secondary IPs of host-ip mode). Everything
// else from that port is dropped and counted. The outside also plays the
// cloud's metadata service, which the VPC answers from its own addresses.
func vpcRules(hostExtra []string) string {
	hostIPs := strings.Join(append([]string{vpcHostIP}, hostExtra...), ", ")
	port := func(name, mac, ips string) string {
		return fmt.Sprintf(`	chain %s {
		ether saddr %s ether type arp arp saddr ether %s arp saddr ip { %s } return
		ether saddr %s ether type ip ip saddr { %s } return
		ether type { ip, arp } counter name "spoofed" drop
		drop
	}
`, name, mac, mac, ips, mac, ips)
	}
	return `table bridge vpc {
	counter spoofed {
	}
	chain prerouting {
		type filter hook prerouting priority -300; policy accept;
		iifname "vp-host" jump host
		iifname "vp-host1" jump host1
		iifname "vp-out" jump outside
	}
` + port("host", hostMAC, hostIPs) + port("host1", host1MAC, vpcHost1IP) + port("outside", outMAC, vpcOutIP+", 100.100.100.200, 169.254.169.254") + "}\n"
}

func spoofedCount(t testing.TB, vpcNS string) int {
	t.Helper()
	out := run(t, vpcNS, "nft", "list", "counter", "bridge", "vpc", "spoofed")
	m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no spoofed counter in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func newVPC(t testing.TB, mode ExternalMode) *vpcEnv {
	t.Helper()
	requireHost(t)
	p := testPrefix(t)
	e := &vpcEnv{prefix: p}
	e.vpc = newNetns(t, p+"-vpc")
	e.host = newNetns(t, p+"-host")
	e.out = newNetns(t, p+"-out")
	e.ga1 = newNetns(t, p+"-ga1")
	e.ga2 = newNetns(t, p+"-ga2")

	run(t, e.vpc, "ip", "link", "add", "vpc0", "type", "bridge")
	run(t, e.vpc, "ip", "link", "set", "vpc0", "up")
	plug := func(vpcEnd, otherNS, otherEnd, mac string) {
		run(t, e.vpc, "ip", "link", "add", vpcEnd, "type", "veth", "peer", "name", otherEnd, "netns", otherNS)
		run(t, e.vpc, "ip", "link", "set", vpcEnd, "master", "vpc0", "up")
		run(t, otherNS, "ip", "link", "set", otherEnd, "address", mac, "up")
	}
	plug("vp-host", e.host, "eth0", hostMAC)
	if mode == ExternalBridged {
		// The host's second NIC, the classic provider-network uplink. Only
		// plugged when used: an address-less NIC on the same subnet would
		// answer ARP for the host's address (Linux's default arp_ignore=0).
		plug("vp-host1", e.host, "eth1", host1MAC)
	}
	plug("vp-out", e.out, "eth0", outMAC)

	var extra []string
	switch mode {
	case ExternalRouted:
		extra = []string{"10.202.0.0/24"} // the VPC route entry, next hop: host
		e.fip, e.gwIP = "10.202.0.20", "10.202.0.10"
	case ExternalHostIP:
		extra = []string{"10.201.0.100"} // secondary IP assigned to the host's NIC
		e.fip, e.gwIP = "10.201.0.100", "10.201.0.99"
	case ExternalBridged:
		e.fip, e.gwIP = "10.201.0.102", "10.201.0.98"
	}
	runStdin(t, e.vpc, vpcRules(extra), "nft", "-f", "-")

	run(t, e.host, "ip", "addr", "add", vpcHostIP+"/24", "dev", "eth0")
	run(t, e.host, "ip", "route", "add", "default", "via", vpcOutIP)
	// The host reaches its cloud's metadata service; guests must not.
	run(t, e.host, "ip", "route", "add", "100.100.100.200", "via", vpcOutIP)
	run(t, e.host, "ip", "route", "add", "169.254.169.254", "via", vpcOutIP)

	run(t, e.out, "ip", "addr", "add", vpcOutIP+"/24", "dev", "eth0")
	run(t, e.out, "ip", "addr", "add", "100.100.100.200/32", "dev", "lo")
	run(t, e.out, "ip", "addr", "add", "169.254.169.254/32", "dev", "lo")
	if mode == ExternalRouted {
		// The one route the operator adds: floating CIDR → this host.
		run(t, e.out, "ip", "route", "add", "10.202.0.0/24", "via", vpcHostIP)
	}
	echoServer(t, e.out, vpcOutIP+":7001")
	echoServer(t, e.out, "100.100.100.200:80")
	echoServer(t, e.out, "169.254.169.254:80")
	echoServer(t, e.out, "169.254.169.254:8080")

	e.agent = newTestAgent(t, p, e.host, func(c *Config) {
		c.MetadataHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "nimbus-metadata %s %s", r.Header.Get("X-Forwarded-For"), r.Header.Get(MetadataRouterHeader))
		})
	})
	apply(t, e.agent, e.state(mode))
	guestIP(t, e.ga1, "192.168.10.11/24", "192.168.10.1")
	guestIP(t, e.ga2, "192.168.10.12/24", "192.168.10.1")
	echoServer(t, e.ga1, ":7000")
	return e
}

func (e *vpcEnv) state(mode ExternalMode) State {
	ext := Network{ID: "ext", External: &External{Mode: mode, Uplink: "eth0"}}
	switch mode {
	case ExternalRouted:
		ext.Type = NetworkLocal
		ext.Subnets = []Subnet{{ID: "ext-v4", CIDR: prefix("10.202.0.0/24"), Gateway: addr("10.202.0.1")}}
	case ExternalHostIP:
		ext.Type = NetworkLocal
		ext.Subnets = []Subnet{{ID: "ext-v4", CIDR: prefix("10.201.0.0/24"), Gateway: addr("10.201.0.1")}}
	case ExternalBridged:
		ext.Type = NetworkFlat
		ext.PhysicalInterface = "eth1"
		ext.Subnets = []Subnet{{ID: "ext-v4", CIDR: prefix("10.201.0.0/24"), Gateway: addr("10.201.0.1")}}
	}
	return State{
		Networks: []Network{ext, {
			ID: "net-a", Type: NetworkLocal,
			Subnets: []Subnet{{ID: "sub-a", CIDR: prefix("192.168.10.0/24"), Gateway: addr("192.168.10.1")}},
		}},
		SecurityGroups: []SecurityGroup{{ID: "default", Rules: []SecurityGroupRule{
			{Direction: Egress, EtherType: IPv4},
			{Direction: Ingress, EtherType: IPv4, Protocol: "icmp"},
			{Direction: Ingress, EtherType: IPv4, Protocol: "tcp", PortMin: intp(7000), PortMax: intp(7000)},
		}}},
		Ports: []Port{
			{ID: "pa1", NetworkID: "net-a", MAC: mac("fa:16:3e:00:00:11"), FixedIPs: []netip.Addr{addr("192.168.10.11")},
				PortSecurity: true, SecurityGroups: []string{"default"}, Netns: e.ga1},
			{ID: "pa2", NetworkID: "net-a", MAC: mac("fa:16:3e:00:00:12"), FixedIPs: []netip.Addr{addr("192.168.10.12")},
				PortSecurity: true, SecurityGroups: []string{"default"}, Netns: e.ga2},
		},
		Routers: []Router{{
			ID:          "r1",
			Gateway:     &RouterGateway{NetworkID: "ext", IP: addr(e.gwIP), SNAT: true},
			Interfaces:  []RouterInterface{{NetworkID: "net-a", IP: addr("192.168.10.1")}},
			FloatingIPs: []FloatingIP{{IP: addr(e.fip), FixedIP: addr("192.168.10.11")}},
		}},
	}
}

func metadataGet(netns string) (string, error) {
	client := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return DialInNetns(ctx, netns, network, a)
		}},
	}
	resp, err := client.Get("http://169.254.169.254/latest/meta-data/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestVPC is issue 4's centerpiece: the same guest, router and floating IP
// on a VPC that drops foreign MAC/IP pairs. routed and host-ip work and
// never put a foreign pair on the wire; bridged is dropped, which is the
// problem Nimbus exists to solve.
func TestVPC(t *testing.T) {
	t.Parallel()
	for _, mode := range []ExternalMode{ExternalRouted, ExternalHostIP} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newVPC(t, mode)

			if !canPing(e.out, e.fip) {
				t.Errorf("outside cannot ping the floating IP %s", e.fip)
			}
			src, err := tcpEcho(e.out, e.fip+":7000", 5*time.Second)
			if err != nil {
				t.Errorf("outside → floating IP %s tcp: %v", e.fip, err)
			} else if src.String() != vpcOutIP {
				t.Errorf("guest saw the outside as %s, want %s (DNAT must keep the source)", src, vpcOutIP)
			}

			// A guest without a floating IP leaves as the host.
			src, err = tcpEcho(e.ga2, vpcOutIP+":7001", 5*time.Second)
			if err != nil {
				t.Errorf("guest without floating IP → outside: %v", err)
			} else if src.String() != vpcHostIP {
				t.Errorf("outside saw %s, want the host's own %s", src, vpcHostIP)
			}
			// A guest with one: routed masquerades to the host as well;
			// host-ip keeps the floating IP, which the cloud gave the host.
			want := vpcHostIP
			if mode == ExternalHostIP {
				want = e.fip
			}
			src, err = tcpEcho(e.ga1, vpcOutIP+":7001", 5*time.Second)
			if err != nil {
				t.Errorf("guest with floating IP → outside: %v", err)
			} else if src.String() != want {
				t.Errorf("outside saw %s, want %s", src, want)
			}
			if !canPing(e.ga2, vpcOutIP) {
				t.Errorf("guest cannot ping the outside")
			}

			// The cloud's own metadata is never reachable through NAT;
			// 169.254.169.254 is answered by Nimbus.
			for _, cloud := range []string{"100.100.100.200:80", "169.254.169.254:8080"} {
				if _, err := tcpEcho(e.ga2, cloud, 2*time.Second); err == nil {
					t.Errorf("guest reached the cloud metadata at %s", cloud)
				}
			}
			// The path itself works: the host reaches it.
			if _, err := tcpEcho(e.host, "100.100.100.200:80", 2*time.Second); err != nil {
				t.Errorf("host cannot reach its cloud metadata: %v", err)
			}
			body, err := metadataGet(e.ga2)
			if err != nil {
				t.Errorf("guest metadata: %v", err)
			} else if body != "nimbus-metadata 192.168.10.12 r1" {
				t.Errorf("guest metadata answered %q, want Nimbus's proxy", body)
			}

			if n := spoofedCount(t, e.vpc); n != 0 {
				t.Errorf("VPC dropped %d frames with a foreign MAC/IP from the host", n)
			}

			// Disassociating the floating IP cuts its open connections;
			// associating it again restores reachability.
			lc, err := dialLines(e.out, e.fip+":7000")
			if err != nil {
				t.Fatalf("open a connection to the floating IP: %v", err)
			}
			defer lc.c.Close()
			if err := lc.exchange("one", 3*time.Second); err != nil {
				t.Fatalf("exchange through the floating IP: %v", err)
			}
			without := e.state(mode)
			without.Routers[0].FloatingIPs = nil
			apply(t, e.agent, without)
			if err := lc.exchange("two", 2*time.Second); err == nil {
				t.Errorf("connection through a disassociated floating IP still works")
			}
			if _, err := tcpEcho(e.out, e.fip+":7000", 2*time.Second); err == nil {
				t.Errorf("disassociated floating IP still reachable")
			}
			apply(t, e.agent, e.state(mode))
			if _, err := tcpEcho(e.out, e.fip+":7000", 5*time.Second); err != nil {
				t.Errorf("re-associated floating IP unreachable: %v", err)
			}
		})
	}

	t.Run("bridged", func(t *testing.T) {
		t.Parallel()
		e := newVPC(t, ExternalBridged)
		before := spoofedCount(t, e.vpc)
		if canPing(e.out, e.fip) {
			t.Errorf("outside pinged floating IP %s through a VPC that should drop it", e.fip)
		}
		if _, err := tcpEcho(e.out, e.fip+":7000", 2*time.Second); err == nil {
			t.Errorf("outside reached the floating IP over tcp")
		}
		if _, err := tcpEcho(e.ga2, vpcOutIP+":7001", 2*time.Second); err == nil {
			t.Errorf("guest reached the outside through bridged SNAT")
		}
		if after := spoofedCount(t, e.vpc); after <= before {
			t.Errorf("VPC spoof drop counter did not grow (%d → %d)", before, after)
		}

		// The same network on an L2 that does not check (on premises)
		// works: the drop was the VPC's, not a broken data plane.
		run(t, e.vpc, "nft", "delete", "table", "bridge", "vpc")
		if !canPing(e.out, e.fip) {
			t.Errorf("bridged floating IP unreachable even without anti-spoofing")
		}
		if _, err := tcpEcho(e.out, e.fip+":7000", 5*time.Second); err != nil {
			t.Errorf("bridged floating IP tcp without anti-spoofing: %v", err)
		}
	})
}
