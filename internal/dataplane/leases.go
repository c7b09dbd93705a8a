package dataplane

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// staleLeases lists the IPv4 leases in dnsmasq's lease file that no
// longer belong to the port that holds the address now: a deleted port's
// lease, whose address the networking service may give to a new port.
// dnsmasq would refuse that port its fixed IP ("not using configured
// address ... because it is leased to ...") until the old lease expired,
// so the new guest would get no address at all. Neutron releases such
// leases with dhcp_release; here the agent drops them from the file.
func staleLeases(leaseFile string, owner map[netip.Addr]string) ([]string, error) {
	b, err := os.ReadFile(leaseFile)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dnsmasq leases: %w", err)
	}
	var stale []string
	for _, line := range strings.Split(string(b), "\n") {
		// "<expiry> <mac> <ip> <hostname> <client-id>"; IPv6 leases and
		// the duid line have other shapes and stay.
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		ip, err := netip.ParseAddr(f[2])
		if err != nil || !ip.Is4() {
			continue
		}
		if !strings.EqualFold(owner[ip], f[1]) {
			stale = append(stale, line)
		}
	}
	return stale, nil
}

// dropLeases rewrites the lease file without the given lines. dnsmasq
// must not be running: it keeps leases in memory and rewrites the file.
func dropLeases(leaseFile string, lines []string) error {
	b, err := os.ReadFile(leaseFile)
	if err != nil {
		return fmt.Errorf("read dnsmasq leases: %w", err)
	}
	drop := map[string]bool{}
	for _, l := range lines {
		drop[l] = true
	}
	var out bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line != "" && !drop[line] {
			out.WriteString(line + "\n")
		}
	}
	tmp := filepath.Join(filepath.Dir(leaseFile), ".leases.tmp")
	if err := os.WriteFile(tmp, out.Bytes(), 0o640); err != nil {
		return fmt.Errorf("write dnsmasq leases: %w", err)
	}
	return os.Rename(tmp, leaseFile)
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
