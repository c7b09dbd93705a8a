package metadata

import (
	"fmt"
	"net/netip"
	"sort"
)

// NetworkInfo is an instance's view of the networking service: its ports
// and the networks and subnets they are on, keyed by id.
type NetworkInfo struct {
	Ports    []Port
	Networks map[string]Network
	Subnets  map[string]Subnet
	// FloatingIPs maps a fixed IP to the floating IP NATed to it.
	FloatingIPs map[string]string
}

// Port is the part of a networking port the metadata needs.
type Port struct {
	ID          string    `json:"id"`
	NetworkID   string    `json:"network_id"`
	ProjectID   string    `json:"project_id"`
	TenantID    string    `json:"tenant_id"`
	MAC         string    `json:"mac_address"`
	DeviceID    string    `json:"device_id"`
	DeviceOwner string    `json:"device_owner"`
	FixedIPs    []FixedIP `json:"fixed_ips"`
}

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// Network is the part of a network the metadata needs.
type Network struct {
	ID  string `json:"id"`
	MTU int    `json:"mtu"`
}

// Subnet is the part of a subnet the metadata needs.
type Subnet struct {
	ID             string      `json:"id"`
	IPVersion      int         `json:"ip_version"`
	CIDR           string      `json:"cidr"`
	GatewayIP      string      `json:"gateway_ip"`
	EnableDHCP     bool        `json:"enable_dhcp"`
	DNSNameservers []string    `json:"dns_nameservers"`
	HostRoutes     []HostRoute `json:"host_routes"`
}

// HostRoute is a static route a subnet hands out.
type HostRoute struct {
	Destination string `json:"destination"`
	NextHop     string `json:"nexthop"`
}

// firstIPv4 returns the guest's first fixed IPv4 address and the floating
// IP NATed to it, as Nova's EC2 local-ipv4 and public-ipv4.
func (n NetworkInfo) firstIPv4() (fixed, floating string) {
	for _, p := range n.Ports {
		for _, ip := range p.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is4() {
				return ip.IPAddress, n.FloatingIPs[ip.IPAddress]
			}
		}
	}
	return "", ""
}

// networkData is network_data.json: one link per port, one network per
// fixed IP (DHCP where the subnet serves it), and the DNS servers.
func networkData(ni NetworkInfo) map[string]any {
	links, networks, services := []any{}, []any{}, []any{}
	dns := map[string]bool{}
	for _, p := range ni.Ports {
		tap := "tap" + p.ID[:min(11, len(p.ID))] // Nova's link ids
		link := map[string]any{"id": tap, "vif_id": p.ID, "type": "bridge", "ethernet_mac_address": p.MAC}
		if mtu := ni.Networks[p.NetworkID].MTU; mtu > 0 {
			link["mtu"] = mtu
		}
		links = append(links, link)
		for _, ip := range p.FixedIPs {
			sn := ni.Subnets[ip.SubnetID]
			n := map[string]any{"id": fmt.Sprintf("network%d", len(networks)), "link": tap, "network_id": p.NetworkID}
			v6 := sn.IPVersion == 6
			switch {
			case sn.EnableDHCP && !v6:
				n["type"] = "ipv4_dhcp"
			case sn.EnableDHCP && v6:
				n["type"] = "ipv6_dhcp"
			default:
				n["type"] = map[bool]string{false: "ipv4", true: "ipv6"}[v6]
				n["ip_address"] = ip.IPAddress
				if pfx, err := netip.ParsePrefix(sn.CIDR); err == nil {
					n["netmask"] = netmask(pfx)
				}
				n["routes"] = staticRoutes(sn)
			}
			var svc []any
			for _, d := range sn.DNSNameservers {
				svc = append(svc, map[string]any{"type": "dns", "address": d})
				dns[d] = true
			}
			if svc != nil {
				n["services"] = svc
			}
			networks = append(networks, n)
		}
	}
	addrs := make([]string, 0, len(dns))
	for d := range dns {
		addrs = append(addrs, d)
	}
	sort.Strings(addrs)
	for _, d := range addrs {
		services = append(services, map[string]any{"type": "dns", "address": d})
	}
	return map[string]any{"links": links, "networks": networks, "services": services}
}

// staticRoutes are a statically configured subnet's default route and
// host routes, which a guest without DHCP cannot learn otherwise.
func staticRoutes(sn Subnet) []any {
	routes := []any{}
	if sn.GatewayIP != "" {
		anyAddr := map[bool]string{false: "0.0.0.0", true: "::"}[sn.IPVersion == 6]
		routes = append(routes, map[string]any{"network": anyAddr, "netmask": anyAddr, "gateway": sn.GatewayIP})
	}
	for _, r := range sn.HostRoutes {
		if pfx, err := netip.ParsePrefix(r.Destination); err == nil {
			routes = append(routes, map[string]any{"network": pfx.Addr().String(), "netmask": netmask(pfx), "gateway": r.NextHop})
		}
	}
	return routes
}

// netmask spells a prefix length as a mask: 255.255.255.0, or ffff:... for
// IPv6, as Nova writes it.
func netmask(p netip.Prefix) string {
	bits := p.Bits()
	n := p.Addr().BitLen() / 8
	b := make([]byte, n)
	for i := range b {
		switch {
		case bits >= 8:
			b[i], bits = 0xff, bits-8
		case bits > 0:
			b[i], bits = byte(0xff<<(8-bits)), 0
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a.String()
}
