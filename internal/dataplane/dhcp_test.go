package dataplane

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDHCP: a guest's DHCP client gets its fixed IP, gateway, DNS, host
// routes (option 121), MTU (option 26) and an extra option; a host not in
// the state gets nothing; changes reach a running dnsmasq without a restart.
func TestDHCP(t *testing.T) {
	t.Parallel()
	requireHost(t)
	for _, tool := range []string{"dnsmasq", "busybox", "dhcp_release"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("TestDHCP needs %s (scripts/install-deps.sh test): %v", tool, err)
		}
	}
	p := testPrefix(t)
	host := newNetns(t, p+"-host")
	g1 := newNetns(t, p+"-g1")
	stranger := newNetns(t, p+"-g2")
	agent := newTestAgent(t, p, host, nil)
	st := State{
		Networks: []Network{{ID: "net", Type: NetworkVXLAN, SegmentationID: 42, Subnets: []Subnet{{
			ID: "sub", CIDR: prefix("10.91.0.0/24"), Gateway: addr("10.91.0.1"), DHCP: true, DHCPAddress: addr("10.91.0.2"),
			DNS:        []netip.Addr{addr("10.91.0.53")},
			HostRoutes: []Route{{Destination: prefix("172.31.7.0/24"), NextHop: addr("10.91.0.254")}},
		}}}},
		Ports: []Port{
			{ID: "g1", NetworkID: "net", MAC: mac("fa:16:3e:00:03:01"), FixedIPs: []netip.Addr{addr("10.91.0.31")}, Netns: g1,
				PortSecurity: true, ExtraDHCPOpts: []DHCPOption{{Name: "domain-name", Value: "nimbus.test"}}},
			{ID: "g2", NetworkID: "net", MAC: mac("fa:16:3e:00:03:02"), Netns: stranger},
		},
	}
	apply(t, agent, st)

	lease := func(gns string) map[string]string { return udhcpLease(t, gns) }
	env := lease(g1)
	for k, want := range map[string]string{
		"ip": "10.91.0.31", "router": "10.91.0.1", "dns": "10.91.0.53", "mtu": "1450", "subnet": "255.255.255.0",
		"staticroutes": "172.31.7.0/24 10.91.0.254 0.0.0.0/0 10.91.0.1", "domain": "nimbus.test",
	} {
		if got := strings.TrimSpace(env[k]); got != want {
			t.Errorf("lease %s = %q, want %q (lease %v)", k, got, want, env)
		}
	}
	if env := lease(stranger); len(env) != 0 {
		t.Errorf("a port without a fixed IP got a lease: %v", env)
	}

	// A new fixed IP reaches the running server (SIGHUP, same process).
	pidFile := filepath.Join(agent.dhcpDir(agent.n.dhcpNS("net")), "pid")
	pid, _ := runningPid(pidFile)
	st.Ports[1].FixedIPs = []netip.Addr{addr("10.91.0.32")}
	apply(t, agent, st)
	if env := lease(stranger); env["ip"] != "10.91.0.32" {
		t.Errorf("after adding a fixed IP the lease is %v", env)
	}
	if pid2, _ := runningPid(pidFile); pid2 != pid || pid == 0 {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(pidFile), "dnsmasq.log"))
		pf, _ := os.ReadFile(pidFile)
		t.Errorf("dnsmasq restarted (%d → %d) for a hosts change; pid file %q; log:\n%s", pid, pid2, pf, log)
	}

	// A deleted port's address given to another port: the old lease must
	// not keep the new owner from getting it (TestDHCPLeaseReuse: without
	// a restart). Here the server restarts anyway: the ports with extra
	// options are on its command line.
	st.Ports = []Port{st.Ports[1]}
	st.Ports[0].FixedIPs = []netip.Addr{addr("10.91.0.31")}
	apply(t, agent, st)
	if env := lease(stranger); env["ip"] != "10.91.0.31" {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(pidFile), "dnsmasq.log"))
		t.Errorf("the reused address was not leased to its new port: %v; log:\n%s", env, lastLines(log, 8))
	}

	// Turning DHCP off stops the server and removes its namespace.
	st.Networks[0].Subnets[0].DHCP = false
	apply(t, agent, st)
	if pid, _ := runningPid(pidFile); pid != 0 {
		t.Errorf("dnsmasq %d still running after DHCP was disabled", pid)
	}
	for _, l := range ownedLeft(t, p, host) {
		if strings.HasPrefix(l, "netns "+p+"-d-") {
			t.Errorf("left behind: %s", l)
		}
	}
}

// udhcpLease runs busybox's DHCP client once on eth0 of namespace gns and
// returns what it was given (its script's environment), or nothing. It
// leaves without releasing, as a guest that is switched off does.
func udhcpLease(t *testing.T, gns string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "udhcpc.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > \""+dir+"/lease\"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _ = tryRun(gns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "4", "-T", "1",
		"-O", "staticroutes", "-O", "mtu", "-O", "domain", "-s", script)
	env := map[string]string{}
	b, _ := os.ReadFile(filepath.Join(dir, "lease"))
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// TestDHCPLeaseReuse: a server's deleted port's address goes to a new
// port in the same Update that removes the old one. With dhcp_release the
// old lease is released in the running dnsmasq (same PID) and the new MAC
// gets the address; without it (Config.DHCPRelease missing) dnsmasq is
// restarted with the lease dropped, and the new MAC gets it too. An agent
// that restarted in between (a new Agent on the same state dir, its first
// pass a full one) finds the running dnsmasq and releases the same way.
func TestDHCPLeaseReuse(t *testing.T) {
	t.Parallel()
	requireHost(t)
	for _, tc := range []struct {
		name, release     string
		restart, newAgent bool
	}{{"dhcp_release", "", false, false}, {"no dhcp_release", "/nonexistent/dhcp_release", true, false},
		{"agent restarted", "", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPrefix(t)
			host := newNetns(t, p+"-host")
			g1 := newNetns(t, p+"-g1")
			g2 := newNetns(t, p+"-g2")
			agent := newTestAgent(t, p, host, func(c *Config) { c.DHCPRelease = tc.release })
			st := State{
				Networks: []Network{{ID: "net", Type: NetworkLocal, Subnets: []Subnet{{
					ID: "sub", CIDR: prefix("10.93.0.0/24"), Gateway: addr("10.93.0.1"), DHCP: true, DHCPAddress: addr("10.93.0.2")}}}},
				Ports: []Port{{ID: "old", NetworkID: "net", MAC: mac("fa:16:3e:00:05:01"), FixedIPs: []netip.Addr{addr("10.93.0.5")}, Netns: g1}},
			}
			ctx := context.Background()
			if err := agent.Update(ctx, st); err != nil {
				t.Fatal(err)
			}
			if env := udhcpLease(t, g1); env["ip"] != "10.93.0.5" {
				t.Fatalf("first port's lease: %v", env)
			}
			dir := agent.dhcpDir(agent.n.dhcpNS("net"))
			pid, _ := runningPid(filepath.Join(dir, "pid"))

			st.Ports = []Port{{ID: "new", NetworkID: "net", MAC: mac("fa:16:3e:00:05:02"), FixedIPs: []netip.Addr{addr("10.93.0.5")}, Netns: g2}}
			if tc.newAgent {
				var err error
				if agent, err = New(agent.cfg); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = agent.Close() })
			}
			if err := agent.Update(ctx, st); err != nil {
				t.Fatal(err)
			}
			leases, _ := os.ReadFile(filepath.Join(dir, "leases"))
			if strings.Contains(string(leases), "fa:16:3e:00:05:01") {
				t.Errorf("the deleted port's lease is still held:\n%s", leases)
			}
			if pid2, _ := runningPid(filepath.Join(dir, "pid")); (pid2 != pid) != tc.restart || pid2 == 0 {
				t.Errorf("dnsmasq %d → %d; want a restart: %v", pid, pid2, tc.restart)
			}
			if env := udhcpLease(t, g2); env["ip"] != "10.93.0.5" {
				log, _ := os.ReadFile(filepath.Join(dir, "dnsmasq.log"))
				t.Errorf("the reused address was not leased to the new MAC: %v; log:\n%s", env, lastLines(log, 8))
			}
		})
	}
}
