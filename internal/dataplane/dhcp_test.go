package dataplane

import (
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
	for _, tool := range []string{"dnsmasq", "busybox"} {
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

	dir := t.TempDir()
	script := filepath.Join(dir, "udhcpc.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > \""+dir+"/lease-$interface-$ip\"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	lease := func(gns string) map[string]string {
		_, _ = tryRun(gns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "4", "-T", "1",
			"-O", "staticroutes", "-O", "mtu", "-O", "domain", "-s", script)
		files, _ := filepath.Glob(filepath.Join(dir, "lease-*"))
		env := map[string]string{}
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					env[k] = v
				}
			}
			os.Remove(f)
		}
		return env
	}
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
	// not keep the new owner from getting it (the server drops it).
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
