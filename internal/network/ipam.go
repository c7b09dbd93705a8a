package network

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// ipRange is an inclusive address range: an allocation pool.
type ipRange struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

func (p ipRange) String() string { return p.Start + "-" + p.End }

func (p ipRange) bounds() (netip.Addr, netip.Addr, error) {
	a, err := netip.ParseAddr(p.Start)
	if err != nil {
		return a, a, err
	}
	b, err := netip.ParseAddr(p.End)
	if err != nil {
		return a, b, err
	}
	return a.Unmap(), b.Unmap(), nil
}

// parseCIDR reads a subnet CIDR as Neutron accepts it: a prefix with a
// length; host bits are dropped (10.0.0.5/24 is 10.0.0.0/24).
func parseCIDR(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") || strings.TrimSpace(s) != s {
		return netip.Prefix{}, fmt.Errorf("'%s' is not a valid IP subnet", s)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("'%s' is not a valid IP subnet", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("'%s' is not a valid IP subnet", s)
	}
	return p.Masked(), nil
}

func ipVersion(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// lastAddr is the last address of a prefix (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			if i*8+bit >= bits {
				b[i] |= 0x80 >> bit
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// usableRange is the range of addresses hosts may have: without the
// network address, and for IPv4 without the broadcast address (except
// for /31 and /32, which have neither).
func usableRange(p netip.Prefix) (netip.Addr, netip.Addr) {
	first, last := p.Addr(), lastAddr(p)
	if p.Addr().Is4() && p.Bits() >= 31 {
		return first, last
	}
	first = first.Next()
	if p.Addr().Is4() {
		last = last.Prev()
	}
	return first, last
}

// defaultPools are the allocation pools of a subnet created without
// them: its usable range minus the gateway.
func defaultPools(p netip.Prefix, gateway *netip.Addr) []ipRange {
	first, last := usableRange(p)
	if first.Compare(last) > 0 {
		return []ipRange{}
	}
	if gateway == nil || !p.Contains(*gateway) || gateway.Compare(first) < 0 || gateway.Compare(last) > 0 {
		return []ipRange{{first.String(), last.String()}}
	}
	var out []ipRange
	g := *gateway
	if g.Compare(first) > 0 {
		out = append(out, ipRange{first.String(), g.Prev().String()})
	}
	if g.Compare(last) < 0 {
		out = append(out, ipRange{g.Next().String(), last.String()})
	}
	return orEmpty(out)
}

// validatePools checks allocation pools as Neutron does: well formed,
// inside the subnet's usable range, not overlapping each other, not
// containing the gateway.
func validatePools(p netip.Prefix, pools []ipRange, gateway *netip.Addr) error {
	first, last := usableRange(p)
	type rng struct{ a, b netip.Addr }
	var seen []rng
	for _, pool := range pools {
		a, b, err := pool.bounds()
		if err != nil || a.Is4() != p.Addr().Is4() || a.Is4() != b.Is4() || a.Compare(b) > 0 {
			return nerr(400, "InvalidAllocationPool", "The allocation pool %s is not valid.", pool)
		}
		if !p.Contains(a) || !p.Contains(b) || a.Compare(first) < 0 || b.Compare(last) > 0 {
			return nerr(400, "OutOfBoundsAllocationPool", "The allocation pool %s spans beyond the subnet cidr %s.", pool, p)
		}
		for j, o := range seen {
			if a.Compare(o.b) <= 0 && o.a.Compare(b) <= 0 {
				return nerr(409, "OverlappingAllocationPools", "Found overlapping allocation pools: %s %s for subnet %s.", pools[j], pool, p)
			}
		}
		seen = append(seen, rng{a, b})
		if gateway != nil && gateway.Compare(a) >= 0 && gateway.Compare(b) <= 0 {
			return nerr(409, "GatewayConflictWithAllocationPools", "Gateway ip %s conflicts with allocation pool %s.", *gateway, pool)
		}
	}
	return nil
}

// autoAddressMode reports whether a subnet's hosts configure their own
// addresses (SLAAC), so that ports get the EUI-64 address of their MAC.
func (sn *subnet) autoAddress() bool {
	m := deref(sn.IPv6AddressMode)
	return sn.IPVersion == 6 && (m == "slaac" || m == "dhcpv6-stateless")
}

// eui64 is the SLAAC address of a MAC in a /64.
func eui64(p netip.Prefix, mac string) (netip.Addr, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return netip.Addr{}, fmt.Errorf("invalid mac %q", mac)
	}
	b := p.Addr().As16()
	b[8], b[9], b[10] = hw[0]^0x02, hw[1], hw[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = hw[3], hw[4], hw[5]
	return netip.AddrFrom16(b), nil
}

// allocatedIPs returns the addresses in use on a subnet.
func allocatedIPs(ctx context.Context, q store.Querier, subnetID string) (map[netip.Addr]bool, error) {
	ips, err := store.QueryStrings(ctx, q, `SELECT ip_address FROM ip_allocations WHERE subnet_id = ?`, subnetID)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]bool, len(ips))
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			out[a] = true
		}
	}
	return out, nil
}

// allocateIP gives a port an address on a subnet: the one asked for, or
// the lowest free address of the subnet's pools. The insert is guarded
// by the (subnet_id, ip_address) key: a concurrent allocation of the same
// address fails there and the caller's transaction runs again.
func allocateIP(ctx context.Context, tx *store.Tx, sn *subnet, portID, mac string, want *netip.Addr, routerPort bool) (string, error) {
	p, err := netip.ParsePrefix(sn.CIDR)
	if err != nil {
		return "", fmt.Errorf("subnet %s has a corrupt cidr %q", sn.ID, sn.CIDR)
	}
	if tx.Dialect() == store.Postgres {
		// Allocations on one subnet take turns, so that concurrent
		// requests do not all pick the same lowest free address and
		// retry; the key below still guards SQLite and any other path.
		if _, err := tx.Exec(ctx, `SELECT id FROM subnets WHERE id = ? FOR UPDATE`, sn.ID); err != nil {
			return "", err
		}
	}
	used, err := allocatedIPs(ctx, tx, sn.ID)
	if err != nil {
		return "", err
	}
	var addr netip.Addr
	switch {
	case want != nil:
		a := want.Unmap()
		if !p.Contains(a) {
			return "", nerr(400, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", a)
		}
		if sn.autoAddress() && !routerPort {
			return "", invalidInput("IPv6 address %s cannot be directly assigned to a port on subnet %s as the subnet is configured for automatic addresses", a, sn.ID)
		}
		first, last := usableRange(p)
		if a.Compare(first) < 0 || a.Compare(last) > 0 {
			return "", nerr(400, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", a)
		}
		gw := sn.gateway()
		if used[a] || (gw != nil && *gw == a && !routerPort) {
			return "", nerr(409, "IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", a, sn.ID)
		}
		addr = a
	case sn.autoAddress():
		a, err := eui64(p, mac)
		if err != nil {
			return "", err
		}
		if used[a] {
			return "", nerr(409, "IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", a, sn.ID)
		}
		addr = a
	default:
		found := false
		for _, pool := range sn.Pools {
			lo, hi, err := pool.bounds()
			if err != nil {
				continue
			}
			for a := lo; a.IsValid() && a.Compare(hi) <= 0; a = a.Next() {
				if !used[a] {
					addr, found = a, true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			return "", nerr(409, "IpAddressGenerationFailure", "No more IP addresses available for subnet %s.", sn.ID)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ip_allocations (subnet_id, ip_address, port_id, network_id) VALUES (?, ?, ?, ?)`,
		sn.ID, addr.String(), portID, sn.NetworkID); err != nil {
		if store.IsConflict(err) {
			return "", store.ErrRetry
		}
		return "", err
	}
	return addr.String(), nil
}

// randomMAC returns a MAC with OpenStack's base_mac prefix fa:16:3e.
func randomMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", b[0], b[1], b[2])
}

// normalMAC validates and lower-cases a MAC address given by a client.
func normalMAC(s string) (string, bool) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 || hw[0]&1 == 1 || hw.String() == "00:00:00:00:00:00" {
		return "", false
	}
	return hw.String(), true
}
