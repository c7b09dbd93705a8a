package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dhcpLease is what guests get; fixed IPs never change, so it only bounds how
// long a stale entry can live.
const dhcpLease = "86400s"

// dhcpSubnets are the subnets the network's DHCP server answers for: IPv4
// subnets with DHCP on, and IPv6 subnets in a DHCPv6 address mode (SLAAC
// subnets need no server, only the router's advertisements).
func dhcpSubnets(n *Network) []Subnet {
	var ss []Subnet
	for _, s := range n.Subnets {
		if s.DHCP && s.CIDR.Addr().Is4() || s.dhcpv6() {
			ss = append(ss, s)
		}
	}
	return ss
}

func (a *Agent) dhcpDir(nsName string) string { return filepath.Join(a.cfg.StateDir, "dhcp", nsName) }

// applyDHCP runs one dnsmasq per network with DHCP subnets, in its own
// namespace with a leg on the network's bridge. It answers only the MACs of
// the network's ports (static ranges), with their fixed IPs, the subnet's
// gateway, DNS servers, host routes (option 121) and MTU (option 26), and
// the ports' extra DHCP options.
func (a *Agent) applyDHCP(ctx context.Context, ix *index, n *Network, links map[string]*link, want, wantNS map[string]bool) error {
	subs := dhcpSubnets(n)
	if len(subs) == 0 {
		return nil
	}
	nsName := a.n.dhcpNS(n.ID)
	wantNS[nsName] = true
	if err := a.ensureNetns(ctx, nsName); err != nil {
		return err
	}
	dns := ns{r: a.cfg.Runner, name: nsName}
	dev := a.n.dhcpIf(n.ID)
	want[dev] = true
	inner := dhcpInnerIf(n.ID)
	var addrs []netip.Prefix
	for _, s := range subs {
		addrs = append(addrs, netip.PrefixFrom(s.DHCPAddress, s.CIDR.Bits()))
	}
	if _, _, err := a.plugNamespace(ctx, dns, dev, inner, a.n.bridge(n.ID), a.networkMTU(n), links, addrs); err != nil {
		return err
	}
	return a.serveDHCP(ctx, ix, n, subs)
}

// serveDHCP brings the network's DHCP server, whose namespace and leg
// applyDHCP has made, to the state's ports: it frees the leases of
// addresses that changed hands, rewrites the hosts and options files and
// reloads (or, when its command line changed, restarts) dnsmasq. It is
// all a change of ports needs (Agent.Update).
func (a *Agent) serveDHCP(ctx context.Context, ix *index, n *Network, subs []Subnet) error {
	nsName := a.n.dhcpNS(n.ID)
	inner := dhcpInnerIf(n.ID)
	dir := a.dhcpDir(nsName)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("dhcp state dir: %w", err)
	}
	// A lease of an address that now belongs to another port (or to none)
	// would make dnsmasq refuse the address to its new owner. Freed
	// before the hosts file names the new owner, so that a DISCOVER
	// racing the reload never meets the old lease.
	stale, err := staleLeases(filepath.Join(dir, "leases"), leaseOwners(ix, n.ID))
	if err != nil {
		return err
	}
	if len(stale) > 0 {
		if err := a.releaseLeases(ctx, nsName, inner, dir, stale); err != nil {
			return err
		}
	}
	hosts, opts := a.dhcpFiles(ix, n, subs)
	changed := false
	for name, content := range map[string][]byte{"hosts": hosts, "opts": opts} {
		c, err := writeIfChanged(filepath.Join(dir, name), content)
		if err != nil {
			return fmt.Errorf("dhcp %s file: %w", name, err)
		}
		changed = changed || c
	}
	// dnsmasq rereads --dhcp-hostsfile and --dhcp-optsfile on SIGHUP.
	return a.reconcileDNSMasq(ctx, nsName, dir, a.dnsmasqArgs(dir, inner, subs, ix, n), changed)
}

// reconcileDNSMasq keeps one dnsmasq with exactly args running in nsName,
// its files in dir: it starts a missing one, restarts one whose command
// line differs, and sends SIGHUP when reload says its files changed.
func (a *Agent) reconcileDNSMasq(ctx context.Context, nsName, dir string, args []string, reload bool) error {
	pid, cmdline := runningPid(filepath.Join(dir, "pid"))
	switch {
	case pid > 0 && cmdline == strings.Join(args, "\x00"):
		if reload {
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				return fmt.Errorf("reload dnsmasq %d in %s: %w", pid, nsName, err)
			}
		}
		return nil
	case pid > 0:
		if err := stopPid(pid); err != nil {
			return fmt.Errorf("stop outdated dnsmasq %d in %s: %w", pid, nsName, err)
		}
	}
	return a.startDNSMasq(ctx, nsName, dir, args)
}

// dnsmasqBaseArgs are what every dnsmasq the agent runs shares: no DNS, no
// host files, its files under dir, bound to ifaces only.
func (a *Agent) dnsmasqBaseArgs(dir string, ifaces ...string) []string {
	args := []string{a.cfg.DNSMasq,
		"--conf-file=/dev/null", "--no-hosts", "--no-resolv", "--port=0",
		"--pid-file=" + filepath.Join(dir, "pid"),
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"),
	}
	for _, i := range ifaces {
		args = append(args, "--interface="+i)
	}
	return append(args, "--except-interface=lo", "--bind-interfaces",
		"--log-facility="+filepath.Join(dir, "dnsmasq.log"),
		// The files live under the agent's root-only state directory and
		// are reread on SIGHUP, so dnsmasq keeps its user; the namespace
		// holds nothing else.
		"--user=root", "--group=root")
}

func (a *Agent) dnsmasqArgs(dir, iface string, subs []Subnet, ix *index, n *Network) []string {
	args := append(a.dnsmasqBaseArgs(dir, iface),
		"--dhcp-hostsfile="+filepath.Join(dir, "hosts"),
		"--dhcp-optsfile="+filepath.Join(dir, "opts"),
		"--dhcp-authoritative", "--log-dhcp")
	// Ports with extra options are tagged by MAC on the command line, not
	// with set: in the hosts file: dnsmasq 2.90 (Debian 12) crashes on
	// SIGHUP when a hosts-file entry with a set: tag has a lease. A change
	// in which ports carry extra options therefore restarts dnsmasq; fixed
	// IP changes only reload it.
	for _, p := range ix.st.Ports {
		if p.NetworkID == n.ID && len(p.ExtraDHCPOpts) > 0 {
			args = append(args, "--dhcp-mac=set:port"+shortID(p.ID)+","+p.MAC.String())
		}
	}
	for i, s := range subs {
		if s.CIDR.Addr().Is6() {
			// Static: only hosts file entries get addresses (stateful);
			// stateless clients still get their options. No RAs from
			// here: the router sends them (applyRA).
			args = append(args, fmt.Sprintf("--dhcp-range=set:subnet%d,%s,static,%d,%s", i, s.CIDR.Masked().Addr(), s.CIDR.Bits(), dhcpLease))
			continue
		}
		mask := netip.PrefixFrom(s.CIDR.Addr(), s.CIDR.Bits())
		args = append(args, fmt.Sprintf("--dhcp-range=set:subnet%d,%s,static,%s,%s", i, s.CIDR.Masked().Addr(), netmask(mask), dhcpLease))
	}
	return args
}

func netmask(p netip.Prefix) string {
	var m [4]byte
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(m).String()
}

func (a *Agent) dhcpFiles(ix *index, n *Network, subs []Subnet) (hosts, opts []byte) {
	var h, o bytes.Buffer
	mtu := a.networkMTU(n)
	for i, s := range subs {
		tag := fmt.Sprintf("tag:subnet%d", i)
		if s.CIDR.Addr().Is6() {
			// Gateway and MTU reach IPv6 guests in the router's RAs.
			if len(s.DNS) > 0 {
				fmt.Fprintf(&o, "%s,option6:dns-server,%s\n", tag, bracketed(s.DNS))
			}
			continue
		}
		if s.Gateway.IsValid() {
			fmt.Fprintf(&o, "%s,option:router,%s\n", tag, s.Gateway)
		} else {
			fmt.Fprintf(&o, "%s,option:router\n", tag)
		}
		if len(s.DNS) > 0 {
			ds := make([]string, len(s.DNS))
			for j, d := range s.DNS {
				ds[j] = d.String()
			}
			fmt.Fprintf(&o, "%s,option:dns-server,%s\n", tag, strings.Join(ds, ","))
		}
		if len(s.HostRoutes) > 0 {
			// Clients that take option 121 ignore option 3 (RFC 3442), so
			// the default route is repeated here.
			var rs []string
			for _, r := range s.HostRoutes {
				rs = append(rs, r.Destination.Masked().String(), r.NextHop.String())
			}
			if s.Gateway.IsValid() {
				rs = append(rs, "0.0.0.0/0", s.Gateway.String())
			}
			fmt.Fprintf(&o, "%s,option:classless-static-route,%s\n", tag, strings.Join(rs, ","))
		}
		fmt.Fprintf(&o, "%s,option:mtu,%d\n", tag, mtu)
	}
	for _, p := range ix.st.Ports {
		if p.NetworkID != n.ID {
			continue
		}
		ptag := "port" + shortID(p.ID)
		if line := hostsLine(p, subs); line != "" {
			h.WriteString(line)
		}
		for _, opt := range p.ExtraDHCPOpts {
			name := opt.Name
			if _, err := strconv.Atoi(name); err != nil {
				name = "option:" + name
			}
			fmt.Fprintf(&o, "tag:%s,%s,%s\n", ptag, name, opt.Value)
		}
	}
	return h.Bytes(), o.Bytes()
}

// hostsLine is the port's one dhcp-host entry: its MAC and every fixed IP
// the server hands out (IPv6 ones in brackets, stateful subnets only). One
// line per MAC, because dnsmasq would treat an IPv6-only line as a known
// host without an IPv4 address and give it no IPv4 lease.
func hostsLine(p Port, subs []Subnet) string {
	var ips []string
	for _, ip := range p.FixedIPs {
		for _, s := range subs {
			switch {
			case !s.CIDR.Contains(ip):
			case ip.Is4():
				ips = append(ips, ip.String())
			case s.IPv6AddressMode == IPv6DHCPv6Stateful:
				ips = append(ips, "["+ip.String()+"]")
			}
		}
	}
	if len(ips) == 0 {
		return ""
	}
	return p.MAC.String() + "," + strings.Join(ips, ",") + "\n"
}

// bracketed renders IPv6 addresses as dnsmasq wants them in option6 values.
func bracketed(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = "[" + ip.String() + "]"
	}
	return strings.Join(s, ",")
}

func writeIfChanged(path string, content []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		return false, nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o640); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

// runningPid returns the dnsmasq recorded in a pid file if it is still that
// process (its command line names the same pid file), with its command line.
func runningPid(pidFile string) (int, string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, ""
	}
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cl, []byte("--pid-file="+pidFile+"\x00")) {
		return 0, ""
	}
	return pid, strings.TrimRight(string(cl), "\x00")
}

func stopPid(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	for range 50 {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Still there after a second (a busy host): kill it. It may have
	// exited since the last look, which is what was wanted.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// startDNSMasq starts dnsmasq as a daemon that outlives the agent: a
// restarted agent finds it through its pid file.
func (a *Agent) startDNSMasq(ctx context.Context, nsName, dir string, args []string) error {
	logf, err := os.OpenFile(filepath.Join(dir, "dnsmasq.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Not through the Runner: dnsmasq forks and keeps its standard
	// streams, so they go to a file rather than a pipe we would wait on.
	cmd := exec.CommandContext(ctx, "ip", slices.Concat([]string{"netns", "exec", nsName}, args)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "dnsmasq.log"))
		return fmt.Errorf("start dnsmasq in %s: %w: %s", nsName, err, lastLines(log, 3))
	}
	if pid, _ := runningPid(filepath.Join(dir, "pid")); pid == 0 {
		return fmt.Errorf("dnsmasq in %s did not stay up", nsName)
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// stopDNSMasq stops the dnsmasq whose files are in dir, if one runs, and
// removes the files: the DHCP server of a namespace being removed, or the
// RA daemon of a router that no longer advertises.
func stopDNSMasq(dir string) error {
	if pid, _ := runningPid(filepath.Join(dir, "pid")); pid > 0 {
		if err := stopPid(pid); err != nil {
			return fmt.Errorf("stop dnsmasq %d: %w", pid, err)
		}
	}
	return os.RemoveAll(dir)
}
