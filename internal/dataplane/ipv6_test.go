package dataplane

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// enableIPv6 turns IPv6 back on for a stand-in guest's eth0 (newNetns turns
// it off), without duplicate address detection so that the link-local
// address is usable at once, and lets the kernel take router
// advertisements, as a VM's would.
func enableIPv6(t testing.TB, netns string) {
	t.Helper()
	run(t, netns, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.accept_dad=0", "net.ipv6.conf.eth0.accept_ra=1",
		"net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.eth0.disable_ipv6=0")
}

// waitForAddr waits until netns's eth0 holds want as a global address.
func waitForAddr(netns string, want netip.Addr, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if out, err := tryRun(netns, "ip", "-6", "addr", "show", "dev", "eth0", "scope", "global"); err == nil &&
			strings.Contains(out, " "+want.String()+"/") {
			return true
		}
	}
	return false
}

// eui64 is the SLAAC address of mac in a /64, as the network service
// computes it for the port's fixed IP.
func eui64(pfx netip.Prefix, mac string) netip.Addr {
	m := []byte(mac)
	hw := make([]byte, 0, 6)
	for _, part := range strings.Split(string(m), ":") {
		b, _ := strconv.ParseUint(part, 16, 8)
		hw = append(hw, byte(b))
	}
	a := pfx.Masked().Addr().As16()
	copy(a[8:], []byte{hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]})
	return netip.AddrFrom16(a)
}

// dhcpv6Lease runs ISC dhclient -6 once in netns; its script puts the
// leased address on eth0. It returns dhclient's output and stops the
// daemon dhclient leaves behind (by the pid it recorded).
func dhcpv6Lease(t testing.TB, netns string) string {
	t.Helper()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	out, err := tryRun(netns, "dhclient", "-6", "-1", "-v", "-pf", pidFile, "-lf", filepath.Join(dir, "leases"), "eth0")
	if b, rerr := os.ReadFile(pidFile); rerr == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	if err != nil {
		return out + err.Error()
	}
	return out
}

// TestIPv6: a router routes between two IPv6 subnets of one router and
// advertises them as Neutron's ipv6_ra_mode says: a SLAAC guest configures
// its address from the router's RA and pings the gateway; a DHCPv6-stateful
// guest gets exactly its fixed IP from the DHCP namespace (and no SLAAC
// address); the two reach each other through the router. A second Apply
// changes nothing, and dropping the RA mode stops the RA daemon.
func TestIPv6(t *testing.T) {
	t.Parallel()
	requireHost(t)
	for _, tool := range []string{"dnsmasq", "dhclient"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("TestIPv6 needs %s (scripts/install-deps.sh test): %v", tool, err)
		}
	}
	p := testPrefix(t)
	host := newNetns(t, p+"-host")
	ga := newNetns(t, p+"-ga")
	gb := newNetns(t, p+"-gb")
	agent := newTestAgent(t, p, host, nil)
	const macA, macB = "fa:16:3e:00:06:01", "fa:16:3e:00:06:02"
	slaacIP := eui64(prefix("2001:db8:a::/64"), macA)
	fixedB := addr("2001:db8:b::10")
	st := State{
		Networks: []Network{
			{ID: "net-a", Type: NetworkVXLAN, SegmentationID: 61, Subnets: []Subnet{
				{ID: "a4", CIDR: prefix("10.94.0.0/24"), Gateway: addr("10.94.0.1")},
				{ID: "a6", CIDR: prefix("2001:db8:a::/64"), Gateway: addr("2001:db8:a::1"), IPv6RAMode: IPv6SLAAC, IPv6AddressMode: IPv6SLAAC},
			}},
			{ID: "net-b", Type: NetworkVXLAN, SegmentationID: 62, Subnets: []Subnet{
				{ID: "b6", CIDR: prefix("2001:db8:b::/64"), Gateway: addr("2001:db8:b::1"), DHCP: true, DHCPAddress: addr("2001:db8:b::2"),
					IPv6RAMode: IPv6DHCPv6Stateful, IPv6AddressMode: IPv6DHCPv6Stateful},
			}},
		},
		SecurityGroups: []SecurityGroup{{ID: "sg", Rules: []SecurityGroupRule{
			{Direction: Egress, EtherType: IPv6},
			{Direction: Ingress, EtherType: IPv6, Protocol: "ipv6-icmp"},
		}}},
		Ports: []Port{
			{ID: "pa", NetworkID: "net-a", MAC: mac(macA), FixedIPs: []netip.Addr{slaacIP}, PortSecurity: true, SecurityGroups: []string{"sg"}, Netns: ga},
			{ID: "pb", NetworkID: "net-b", MAC: mac(macB), FixedIPs: []netip.Addr{fixedB}, PortSecurity: true, SecurityGroups: []string{"sg"}, Netns: gb},
		},
		Routers: []Router{{ID: "r6", Interfaces: []RouterInterface{
			{NetworkID: "net-a", IP: addr("10.94.0.1")},
			{NetworkID: "net-a", IP: addr("2001:db8:a::1")},
			{NetworkID: "net-b", IP: addr("2001:db8:b::1")},
		}}},
	}
	apply(t, agent, st)
	enableIPv6(t, ga)
	enableIPv6(t, gb)

	if !waitForAddr(ga, slaacIP, 15*time.Second) {
		t.Fatalf("SLAAC guest has no %s from the router's RA:\n%s", slaacIP, run(t, ga, "ip", "-6", "addr"))
	}
	if !canPing(ga, "2001:db8:a::1") {
		t.Errorf("SLAAC guest cannot ping its gateway 2001:db8:a::1")
	}
	if out := dhcpv6Lease(t, gb); !waitForAddr(gb, fixedB, 5*time.Second) {
		t.Fatalf("DHCPv6-stateful guest did not get %s: %s\n%s", fixedB, out, run(t, gb, "ip", "-6", "addr"))
	}
	if addrs := run(t, gb, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"); strings.Count(addrs, "inet6 ") != 1 {
		t.Errorf("stateful guest has addresses besides its fixed IP (the RA must not offer SLAAC):\n%s", addrs)
	}
	// The stateful guest's default route comes from the RA, too.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if out, _ := tryRun(gb, "ip", "-6", "route", "show", "default"); strings.Contains(out, "via fe80:") {
			break
		}
	}
	if !canPing(ga, fixedB.String()) || !canPing(gb, slaacIP.String()) {
		t.Errorf("guests on two IPv6 subnets behind one router do not reach each other\nga routes:\n%s\ngb routes:\n%s",
			run(t, ga, "ip", "-6", "route"), run(t, gb, "ip", "-6", "route"))
	}

	// Idempotent: the RA daemon and its namespace's addresses stay.
	rns := agent.n.routerNS("r6")
	raPid, _ := runningPid(filepath.Join(agent.raDir(rns), "pid"))
	leg := run(t, rns, "ip", "-o", "addr", "show", "dev", routerInnerIf("net-a"))
	apply(t, agent, st)
	if pid, _ := runningPid(filepath.Join(agent.raDir(rns), "pid")); pid != raPid || pid == 0 {
		t.Errorf("RA daemon %d → %d on a no-change Apply", raPid, pid)
	}
	if again := run(t, rns, "ip", "-o", "addr", "show", "dev", routerInnerIf("net-a")); again != leg {
		t.Errorf("router leg changed on a no-change Apply:\n%s\n→\n%s", leg, again)
	}
	for _, want := range []string{"10.94.0.1/24", "2001:db8:a::1/64"} {
		if !strings.Contains(leg, want) {
			t.Errorf("router leg on net-a lacks %s:\n%s", want, leg)
		}
	}

	// No RA mode left: no RA daemon.
	for i := range st.Networks {
		for j := range st.Networks[i].Subnets {
			st.Networks[i].Subnets[j].IPv6RAMode = ""
		}
	}
	apply(t, agent, st)
	if pid, _ := runningPid(filepath.Join(agent.raDir(rns), "pid")); pid != 0 {
		t.Errorf("RA daemon %d still runs with no subnet to advertise", pid)
	}
	apply(t, agent, State{})
	if left := ownedLeft(t, p, host); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
