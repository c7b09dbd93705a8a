package netagent

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
)

// Device owners the agent gives meaning to (Neutron's names).
const (
	ownerDHCP            = "network:dhcp"
	ownerRouterInterface = "network:router_interface"
)

// network is a network as the API shows it with the provider and
// external-net extensions.
type network struct {
	ID              string `json:"id"`
	NetworkType     string `json:"provider:network_type"`
	PhysicalNetwork string `json:"provider:physical_network"`
	SegmentationID  *int   `json:"provider:segmentation_id"`
	External        bool   `json:"router:external"`
	MTU             int    `json:"mtu"`
}

// port is a port with the binding, port-security and extra-DHCP-options
// extensions.
type port struct {
	ID                  string `json:"id"`
	NetworkID           string `json:"network_id"`
	MACAddress          string `json:"mac_address"`
	DeviceOwner         string `json:"device_owner"`
	DeviceID            string `json:"device_id"`
	HostID              string `json:"binding:host_id"`
	PortSecurityEnabled *bool  `json:"port_security_enabled"`
	FixedIPs            []struct {
		SubnetID  string `json:"subnet_id"`
		IPAddress string `json:"ip_address"`
	} `json:"fixed_ips"`
	AllowedAddressPairs []struct {
		IPAddress  string `json:"ip_address"`
		MACAddress string `json:"mac_address"`
	} `json:"allowed_address_pairs"`
	SecurityGroups []string `json:"security_groups"`
	ExtraDHCPOpts  []struct {
		OptName  string `json:"opt_name"`
		OptValue string `json:"opt_value"`
	} `json:"extra_dhcp_opts"`
}

// Snapshot is what the agent read from the networking API in one pass.
type Snapshot struct {
	Networks       []network
	Subnets        []subnets.Subnet
	Ports          []port
	SecurityGroups []groups.SecGroup
	Routers        []routers.Router
	FloatingIPs    []floatingips.FloatingIP
	MeteringLabels []meteringLabel
	MeteringRules  []meteringRule
	Hosting        Hosting
}

// Host describes the host the state is built for.
type Host struct {
	// Name is the host's binding:host_id.
	Name string
	// ExternalMode and Uplink apply to every external network.
	ExternalMode dataplane.ExternalMode
	Uplink       string
	// PhysicalInterfaces maps physical network names to host NICs for flat
	// and VLAN networks; a network on an unmapped one is left out.
	PhysicalInterfaces map[string]string
}

// Build turns a snapshot into the data plane state of host h. This agent
// is the host's L2 agent for the ports bound to it, and its DHCP and L3
// agent for every network and router (one network node per cloud, for
// now). IPv6 subnets are routed (never translated), advertised by the
// router when ipv6_ra_mode is set and served by DHCPv6 in the DHCPv6
// address modes, as Neutron's L3 and DHCP agents do; routers are metered
// by their project's and the shared metering labels.
func Build(snap Snapshot, h Host, log *slog.Logger) dataplane.State {
	subnetsByNet := map[string][]subnets.Subnet{}
	for _, sn := range snap.Subnets {
		subnetsByNet[sn.NetworkID] = append(subnetsByNet[sn.NetworkID], sn)
	}
	dhcpAddr := map[string]netip.Addr{} // subnet → DHCP port address
	for _, p := range snap.Ports {
		// Only this host's own DHCP ports, on networks it serves: another
		// host's DHCP server has its own address on the same network.
		if p.DeviceOwner != ownerDHCP || p.HostID != h.Name || !snap.Hosting.DHCPNetworks[p.NetworkID] {
			continue
		}
		for _, f := range p.FixedIPs {
			if a, err := netip.ParseAddr(f.IPAddress); err == nil {
				dhcpAddr[f.SubnetID] = a
			}
		}
	}

	var st dataplane.State
	included := map[string]bool{}
	for _, n := range snap.Networks {
		dn, ok := buildNetwork(n, subnetsByNet[n.ID], dhcpAddr, h, log)
		if ok {
			if dn.Type == dataplane.NetworkVXLAN {
				dn.VXLANPeers = snap.Hosting.Peers
			}
			st.Networks = append(st.Networks, dn)
			included[n.ID] = true
		}
	}

	usedGroups := map[string]bool{}
	for _, p := range snap.Ports {
		if p.HostID != h.Name || !included[p.NetworkID] || isNetworkOwned(p.DeviceOwner) {
			continue
		}
		dp, err := buildPort(p)
		if err != nil {
			log.Warn("port left out of the data plane", "port_id", p.ID, "err", err)
			continue
		}
		st.Ports = append(st.Ports, dp)
		for _, g := range dp.SecurityGroups {
			usedGroups[g] = true
		}
	}
	// Remote groups name groups whose members must be known too.
	for _, g := range snap.SecurityGroups {
		if usedGroups[g.ID] {
			for _, r := range g.Rules {
				if r.RemoteGroupID != "" {
					usedGroups[r.RemoteGroupID] = true
				}
			}
		}
	}
	for _, g := range snap.SecurityGroups {
		if usedGroups[g.ID] {
			st.SecurityGroups = append(st.SecurityGroups, buildGroup(g))
		}
	}

	for _, r := range snap.Routers {
		if !snap.Hosting.Routers[r.ID] {
			continue // another host's L3 agent runs it
		}
		if dr, ok := buildRouter(r, snap, included); ok {
			st.Routers = append(st.Routers, dr)
		}
	}
	return st
}

// isNetworkOwned reports ports the data plane makes itself (router legs,
// DHCP servers, floating IP placeholders) rather than plugs for a guest.
func isNetworkOwned(owner string) bool {
	return len(owner) > len("network:") && owner[:len("network:")] == "network:"
}

func buildNetwork(n network, sns []subnets.Subnet, dhcpAddr map[string]netip.Addr, h Host, log *slog.Logger) (dataplane.Network, bool) {
	dn := dataplane.Network{ID: n.ID, Type: dataplane.NetworkType(n.NetworkType), MTU: n.MTU}
	if n.SegmentationID != nil {
		dn.SegmentationID = *n.SegmentationID
	}
	switch dn.Type {
	case dataplane.NetworkVXLAN, dataplane.NetworkLocal:
	case dataplane.NetworkFlat, dataplane.NetworkVLAN:
		if !n.External || h.ExternalMode == dataplane.ExternalBridged {
			nic, ok := h.PhysicalInterfaces[n.PhysicalNetwork]
			if !ok {
				log.Debug("network on an unmapped physical network left out", "network_id", n.ID, "physical_network", n.PhysicalNetwork)
				return dn, false
			}
			dn.PhysicalInterface = nic
		}
	default:
		log.Warn("network of an unknown type left out", "network_id", n.ID, "type", n.NetworkType)
		return dn, false
	}
	if n.External {
		dn.External = &dataplane.External{Mode: h.ExternalMode, Uplink: h.Uplink}
		if h.ExternalMode != dataplane.ExternalBridged {
			// Routed and host-ip external networks never touch a NIC or
			// the overlay, whatever type they were created with (an
			// external network made without provider attributes is a
			// tenant-type VXLAN one): each host routes them locally.
			dn.Type, dn.SegmentationID, dn.PhysicalInterface = dataplane.NetworkLocal, 0, ""
		}
	}
	for _, sn := range sns {
		ds, err := buildSubnet(sn, dhcpAddr[sn.ID])
		if err != nil {
			log.Warn("subnet left out of the data plane", "subnet_id", sn.ID, "err", err)
			continue
		}
		dn.Subnets = append(dn.Subnets, ds)
	}
	return dn, true
}

func buildSubnet(sn subnets.Subnet, dhcp netip.Addr) (dataplane.Subnet, error) {
	cidr, err := netip.ParsePrefix(sn.CIDR)
	if err != nil {
		return dataplane.Subnet{}, fmt.Errorf("cidr: %w", err)
	}
	ds := dataplane.Subnet{ID: sn.ID, CIDR: cidr, DHCP: sn.EnableDHCP && dhcp.IsValid(), DHCPAddress: dhcp,
		IPv6RAMode: dataplane.IPv6Mode(sn.IPv6RAMode), IPv6AddressMode: dataplane.IPv6Mode(sn.IPv6AddressMode)}
	if sn.GatewayIP != "" {
		if ds.Gateway, err = netip.ParseAddr(sn.GatewayIP); err != nil {
			return ds, fmt.Errorf("gateway: %w", err)
		}
	}
	for _, d := range sn.DNSNameservers {
		if a, err := netip.ParseAddr(d); err == nil {
			ds.DNS = append(ds.DNS, a)
		}
	}
	for _, r := range sn.HostRoutes {
		dst, err1 := netip.ParsePrefix(r.DestinationCIDR)
		hop, err2 := netip.ParseAddr(r.NextHop)
		if err1 == nil && err2 == nil {
			ds.HostRoutes = append(ds.HostRoutes, dataplane.Route{Destination: dst, NextHop: hop})
		}
	}
	return ds, nil
}

func buildPort(p port) (dataplane.Port, error) {
	mac, err := net.ParseMAC(p.MACAddress)
	if err != nil {
		return dataplane.Port{}, fmt.Errorf("mac: %w", err)
	}
	dp := dataplane.Port{ID: p.ID, NetworkID: p.NetworkID, MAC: mac, PortSecurity: p.PortSecurityEnabled == nil || *p.PortSecurityEnabled,
		SecurityGroups: slices.Clone(p.SecurityGroups)}
	for _, f := range p.FixedIPs {
		if a, err := netip.ParseAddr(f.IPAddress); err == nil {
			dp.FixedIPs = append(dp.FixedIPs, a)
		}
	}
	for _, pair := range p.AllowedAddressPairs {
		pfx, err := parsePrefixOrAddr(pair.IPAddress)
		if err != nil {
			return dp, fmt.Errorf("allowed address pair %q: %w", pair.IPAddress, err)
		}
		ap := dataplane.AddressPair{IP: pfx}
		if pair.MACAddress != "" {
			if ap.MAC, err = net.ParseMAC(pair.MACAddress); err != nil {
				return dp, fmt.Errorf("allowed address pair mac: %w", err)
			}
		}
		dp.AllowedAddressPairs = append(dp.AllowedAddressPairs, ap)
	}
	for _, o := range p.ExtraDHCPOpts {
		dp.ExtraDHCPOpts = append(dp.ExtraDHCPOpts, dataplane.DHCPOption{Name: o.OptName, Value: o.OptValue})
	}
	if !dp.PortSecurity {
		dp.SecurityGroups = nil
	}
	return dp, nil
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func buildGroup(g groups.SecGroup) dataplane.SecurityGroup {
	dg := dataplane.SecurityGroup{ID: g.ID}
	for _, r := range g.Rules {
		dr := dataplane.SecurityGroupRule{
			Direction: dataplane.Direction(r.Direction), EtherType: dataplane.EtherType(r.EtherType),
			Protocol: r.Protocol, RemoteGroupID: r.RemoteGroupID,
		}
		// The API shows an absent port or ICMP type/code as 0 here; a
		// range of 0-0 is "any" for every protocol Neutron accepts it on.
		if r.PortRangeMin != 0 || r.PortRangeMax != 0 {
			lo, hi := r.PortRangeMin, r.PortRangeMax
			dr.PortMin, dr.PortMax = &lo, &hi
		}
		if r.RemoteIPPrefix != "" {
			if p, err := parsePrefixOrAddr(r.RemoteIPPrefix); err == nil {
				dr.RemoteIPPrefix = p
			}
		}
		dg.Rules = append(dg.Rules, dr)
	}
	return dg
}

func buildRouter(r routers.Router, snap Snapshot, included map[string]bool) (dataplane.Router, bool) {
	dr := dataplane.Router{ID: r.ID, Gateway: buildGateway(r.GatewayInfo, included)}
	for _, p := range snap.Ports {
		if p.DeviceOwner != ownerRouterInterface || p.DeviceID != r.ID || !included[p.NetworkID] {
			continue
		}
		for _, f := range p.FixedIPs {
			if a, err := netip.ParseAddr(f.IPAddress); err == nil {
				dr.Interfaces = append(dr.Interfaces, dataplane.RouterInterface{NetworkID: p.NetworkID, IP: a})
			}
		}
	}
	for _, rt := range r.Routes {
		dst, err1 := netip.ParsePrefix(rt.DestinationCIDR)
		hop, err2 := netip.ParseAddr(rt.NextHop)
		if err1 == nil && err2 == nil && dst.Addr().Is4() == hop.Is4() {
			dr.Routes = append(dr.Routes, dataplane.Route{Destination: dst, NextHop: hop})
		}
	}
	if dr.Gateway != nil {
		dr.MeteringLabels = routerLabels(r, snap)
	}
	if dr.Gateway != nil {
		for _, f := range snap.FloatingIPs {
			if f.RouterID != r.ID || f.PortID == "" {
				continue
			}
			fip, err1 := netip.ParseAddr(f.FloatingIP)
			fixed, err2 := netip.ParseAddr(f.FixedIP)
			if err1 == nil && err2 == nil {
				dr.FloatingIPs = append(dr.FloatingIPs, dataplane.FloatingIP{IP: fip, FixedIP: fixed})
			}
		}
	}
	if dr.Gateway == nil && len(dr.Interfaces) == 0 {
		return dr, false
	}
	return dr, true
}

// buildGateway is the router's external leg: it needs an IPv4 address
// (SNAT and floating IPs are IPv4) and also carries the first IPv6 one, if
// the external network has an IPv6 subnet.
func buildGateway(gw routers.GatewayInfo, included map[string]bool) *dataplane.RouterGateway {
	if gw.NetworkID == "" || !included[gw.NetworkID] {
		return nil
	}
	dg := &dataplane.RouterGateway{NetworkID: gw.NetworkID, SNAT: gw.EnableSNAT == nil || *gw.EnableSNAT}
	for _, f := range gw.ExternalFixedIPs {
		a, err := netip.ParseAddr(f.IPAddress)
		switch {
		case err != nil:
		case a.Is4() && !dg.IP.IsValid():
			dg.IP = a
		case a.Is6() && !dg.IPv6.IsValid():
			dg.IPv6 = a
		}
	}
	if !dg.IP.IsValid() {
		return nil
	}
	return dg
}
