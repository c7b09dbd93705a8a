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
	"strings"
	"time"
)

// dhcpLeaseLine is one IPv4 lease in dnsmasq's lease file:
// "<expiry> <mac> <ip> <hostname> <client-id>".
type dhcpLeaseLine struct {
	mac      string
	ip       netip.Addr
	clientID string // "" when the client sent none ("*")
}

// key identifies a lease across rewrites of the file, which move its
// expiry: its address and MAC.
func (l dhcpLeaseLine) key() string { return l.ip.String() + " " + strings.ToLower(l.mac) }

// releaseWait bounds how long the agent waits for dnsmasq to act on the
// DHCPRELEASEs it was sent before it falls back to a restart. dnsmasq
// rewrites its lease file as soon as it handles one, so this is only
// reached when the release went nowhere.
const releaseWait = time.Second

// staleLeases lists the IPv4 leases in dnsmasq's lease file that no
// longer belong to the port that holds the address now: a deleted port's
// lease, whose address the networking service may give to a new port.
// dnsmasq would refuse that port its fixed IP ("not using configured
// address ... because it is leased to ...") until the old lease expired,
// so the new guest would get no address at all.
func staleLeases(leaseFile string, owner map[netip.Addr]string) ([]dhcpLeaseLine, error) {
	all, err := readLeases(leaseFile)
	if err != nil {
		return nil, err
	}
	var stale []dhcpLeaseLine
	for _, l := range all {
		if !strings.EqualFold(owner[l.ip], l.mac) {
			stale = append(stale, l)
		}
	}
	return stale, nil
}

// readLeases parses the IPv4 leases of a lease file; a missing file has
// none.
func readLeases(leaseFile string) ([]dhcpLeaseLine, error) {
	b, err := os.ReadFile(leaseFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dnsmasq leases: %w", err)
	}
	var out []dhcpLeaseLine
	for _, line := range strings.Split(string(b), "\n") {
		if l, ok := parseLease(line); ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// parseLease parses one line of a lease file; ok is false for anything
// but an IPv4 lease (IPv6 leases and the duid line have other shapes).
func parseLease(line string) (l dhcpLeaseLine, ok bool) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return l, false
	}
	ip, err := netip.ParseAddr(f[2])
	if err != nil || !ip.Is4() {
		return l, false
	}
	l = dhcpLeaseLine{mac: f[1], ip: ip}
	if len(f) >= 5 && f[4] != "*" {
		l.clientID = f[4]
	}
	return l, true
}

// dropLeases rewrites the lease file without the given leases. dnsmasq
// must not be running: it keeps leases in memory and rewrites the file.
func dropLeases(leaseFile string, leases []dhcpLeaseLine) error {
	b, err := os.ReadFile(leaseFile)
	if err != nil {
		return fmt.Errorf("read dnsmasq leases: %w", err)
	}
	drop := map[string]bool{}
	for _, l := range leases {
		drop[l.key()] = true
	}
	var out bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l, ok := parseLease(line); line == "" || ok && drop[l.key()] {
			continue
		}
		out.WriteString(line + "\n")
	}
	tmp := filepath.Join(filepath.Dir(leaseFile), ".leases.tmp")
	if err := os.WriteFile(tmp, out.Bytes(), 0o640); err != nil {
		return fmt.Errorf("write dnsmasq leases: %w", err)
	}
	if err := os.Rename(tmp, leaseFile); err != nil {
		return fmt.Errorf("write dnsmasq leases: %w", err)
	}
	return nil
}

// leaseOwners maps each IPv4 fixed IP of the network's ports to the MAC
// that holds it.
func leaseOwners(ix *index, networkID string) map[netip.Addr]string {
	owner := map[netip.Addr]string{}
	for _, p := range ix.st.Ports {
		if p.NetworkID != networkID {
			continue
		}
		for _, ip := range p.FixedIPs {
			if ip.Is4() {
				owner[ip] = p.MAC.String()
			}
		}
	}
	return owner
}

// dhcpReleaseTool is the dhcp_release binary (Debian's dnsmasq-utils),
// or "" when the host has none; looked up once per agent.
func (a *Agent) dhcpReleaseTool() string {
	a.releaseOnce.Do(func() {
		name := a.cfg.DHCPRelease
		if name == "" {
			name = "dhcp_release"
		}
		path, err := exec.LookPath(name)
		if err != nil {
			a.log.Warn("dhcp_release not found (Debian package dnsmasq-utils): a deleted port's DHCP lease is dropped by restarting dnsmasq",
				"err", err)
			return
		}
		a.releasePath = path
	})
	return a.releasePath
}

// releaseLeases frees stale leases of the DHCP server whose files are in
// dir. As Neutron's DHCP agent does, it sends the running dnsmasq a
// DHCPRELEASE for each one from inside its namespace (dhcp_release), so
// the server keeps running and keeps every other lease and the guests'
// renewals flowing. Only when that is impossible (no dhcp_release, no
// running server) or does not take (the lease is still in the file after
// releaseWait) is the server stopped and the lines dropped from its lease
// file, which dnsmasq reads only at start; the caller's
// reconcileDNSMasq then starts it again.
func (a *Agent) releaseLeases(ctx context.Context, nsName, iface, dir string, stale []dhcpLeaseLine) error {
	leaseFile := filepath.Join(dir, "leases")
	pid, _ := runningPid(filepath.Join(dir, "pid"))
	if tool := a.dhcpReleaseTool(); tool != "" && pid > 0 {
		err := a.sendReleases(ctx, nsName, iface, tool, stale)
		if err == nil {
			if stale, err = a.awaitReleased(ctx, leaseFile, stale); err != nil {
				return err
			}
			if len(stale) == 0 {
				return nil
			}
			err = fmt.Errorf("%d leases still held after %s", len(stale), releaseWait)
		}
		a.log.Warn("dhcp_release did not free the leases; restarting dnsmasq to drop them", "namespace", nsName, "err", err)
	}
	if pid > 0 {
		if err := stopPid(pid); err != nil {
			return fmt.Errorf("stop dnsmasq %d in %s to drop stale leases: %w", pid, nsName, err)
		}
	}
	if err := dropLeases(leaseFile, stale); err != nil {
		return err
	}
	a.log.Info("dropped DHCP leases of ports that are gone", "namespace", nsName, "leases", len(stale))
	return nil
}

// sendReleases runs dhcp_release for each lease in the server's
// namespace, with the lease's client id when it has one: dnsmasq matches
// a release to a lease by client id before MAC.
func (a *Agent) sendReleases(ctx context.Context, nsName, iface, tool string, leases []dhcpLeaseLine) error {
	in := ns{r: a.cfg.Runner, name: nsName}
	for _, l := range leases {
		argv := []string{tool, iface, l.ip.String(), l.mac}
		if l.clientID != "" {
			argv = append(argv, l.clientID)
		}
		if _, err := in.exec(ctx, nil, argv...); err != nil {
			return fmt.Errorf("release lease of %s (%s): %w", l.ip, l.mac, err)
		}
	}
	return nil
}

// awaitReleased polls the lease file until none of the leases is in it
// or releaseWait passes, and returns those still there.
func (a *Agent) awaitReleased(ctx context.Context, leaseFile string, leases []dhcpLeaseLine) ([]dhcpLeaseLine, error) {
	deadline := time.Now().Add(releaseWait)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		cur, err := readLeases(leaseFile)
		if err != nil {
			return nil, err
		}
		// By address and MAC, not by line: a renewal rewrites the expiry.
		held := map[string]bool{}
		for _, l := range cur {
			held[l.key()] = true
		}
		var left []dhcpLeaseLine
		for _, l := range leases {
			if held[l.key()] {
				left = append(left, l)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}
