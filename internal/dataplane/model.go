package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// NetworkType is a network's provider:network_type.
type NetworkType string

// Network types the data plane implements.
const (
	NetworkFlat  NetworkType = "flat"
	NetworkVLAN  NetworkType = "vlan"
	NetworkVXLAN NetworkType = "vxlan"
	// NetworkLocal is a bridge that never leaves the host.
	NetworkLocal NetworkType = "local"
)

// ExternalMode says how an external network meets the host's uplink.
type ExternalMode string

// External network modes (see issue 4, "External network modes").
const (
	// ExternalRouted keeps the external network on a host-internal bridge.
	// The host is the gateway of its CIDR, routes it, and masquerades
	// everything that leaves to its own address; the operator adds one VPC
	// route (floating CIDR → host) for inbound traffic.
	ExternalRouted ExternalMode = "routed"
	// ExternalHostIP also keeps the external network host-internal, but each
	// floating IP is a secondary address the cloud gave the host's uplink:
	// the host answers for it on the uplink (proxy ARP) and routes it to the
	// router, which translates 1:1. No VPC route is needed.
	ExternalHostIP ExternalMode = "host-ip"
	// ExternalBridged is the classic provider network: the external bridge
	// enslaves a physical interface and router gateways and floating IPs
	// appear on that L2 with their own MAC addresses.
	ExternalBridged ExternalMode = "bridged"
)

// State is everything the host should have. Apply converges to it as a whole:
// what is not in the State and is owned by Nimbus is removed.
type State struct {
	Networks       []Network       `json:"networks,omitempty"`
	Ports          []Port          `json:"ports,omitempty"`
	SecurityGroups []SecurityGroup `json:"security_groups,omitempty"`
	Routers        []Router        `json:"routers,omitempty"`
}

// Network is one L2 segment.
type Network struct {
	ID             string      `json:"id"`
	Type           NetworkType `json:"type"`
	SegmentationID int         `json:"segmentation_id,omitempty"`
	// PhysicalInterface is the host NIC a flat or VLAN network is bridged
	// to, or the underlay device of a VXLAN network (optional there).
	PhysicalInterface string `json:"physical_interface,omitempty"`
	// MTU of the network; 0 derives it: the underlay MTU, minus 50 for VXLAN.
	MTU     int      `json:"mtu,omitempty"`
	Subnets []Subnet `json:"subnets,omitempty"`
	// VXLANPeers are the remote VTEPs that carry this network; the agent
	// programs one flood entry per peer (no multicast, no learning).
	VXLANPeers []netip.Addr `json:"vxlan_peers,omitempty"`
	// External is set for router:external networks.
	External *External `json:"external,omitempty"`
}

// External describes how an external network leaves the host.
type External struct {
	Mode ExternalMode `json:"mode"`
	// Uplink is the host interface that carries the host's own address,
	// used by the routed and host-ip modes (masquerade, proxy ARP). The
	// bridged mode uses the network's PhysicalInterface instead.
	Uplink string `json:"uplink,omitempty"`
}

// Subnet is an IP range on a network.
type Subnet struct {
	ID         string       `json:"id"`
	CIDR       netip.Prefix `json:"cidr"`
	Gateway    netip.Addr   `json:"gateway,omitzero"`
	DNS        []netip.Addr `json:"dns,omitempty"`
	HostRoutes []Route      `json:"host_routes,omitempty"`
	DHCP       bool         `json:"dhcp"`
	// DHCPAddress is the DHCP server's address on this subnet (Neutron's
	// network:dhcp port); required when DHCP is on for IPv4 and for the
	// DHCPv6 address modes.
	DHCPAddress netip.Addr `json:"dhcp_address,omitzero"`
	// IPv6RAMode and IPv6AddressMode are Neutron's ipv6_ra_mode and
	// ipv6_address_mode: the router advertises the subnet when RAMode is
	// set, the DHCP server answers DHCPv6 when AddressMode is one of the
	// DHCPv6 modes (and DHCP is on). Empty on IPv4 subnets.
	IPv6RAMode      IPv6Mode `json:"ipv6_ra_mode,omitempty"`
	IPv6AddressMode IPv6Mode `json:"ipv6_address_mode,omitempty"`
}

// IPv6Mode is a value of ipv6_ra_mode / ipv6_address_mode.
type IPv6Mode string

// IPv6 modes, as Neutron names them.
const (
	IPv6SLAAC           IPv6Mode = "slaac"
	IPv6DHCPv6Stateful  IPv6Mode = "dhcpv6-stateful"
	IPv6DHCPv6Stateless IPv6Mode = "dhcpv6-stateless"
)

// dhcpv6 reports whether the DHCP server answers DHCPv6 on the subnet.
func (s Subnet) dhcpv6() bool {
	return s.DHCP && s.CIDR.Addr().Is6() &&
		(s.IPv6AddressMode == IPv6DHCPv6Stateful || s.IPv6AddressMode == IPv6DHCPv6Stateless)
}

// Route is a destination and a next hop.
type Route struct {
	Destination netip.Prefix `json:"destination"`
	NextHop     netip.Addr   `json:"nexthop"`
}

// Port is a guest's attachment to a network.
type Port struct {
	ID        string           `json:"id"`
	NetworkID string           `json:"network_id"`
	MAC       net.HardwareAddr `json:"mac"`
	FixedIPs  []netip.Addr     `json:"fixed_ips,omitempty"`
	// AllowedAddressPairs let the port also send from these (MAC, prefix)
	// pairs; an empty MAC means the port's own.
	AllowedAddressPairs []AddressPair `json:"allowed_address_pairs,omitempty"`
	PortSecurity        bool          `json:"port_security"`
	SecurityGroups      []string      `json:"security_groups,omitempty"`
	ExtraDHCPOpts       []DHCPOption  `json:"extra_dhcp_opts,omitempty"`
	// Netns, when set, plugs the port as a veth pair whose far end is moved
	// into this existing namespace and named NetnsIfName (default eth0),
	// carrying the port's MAC. This is how tests stand in for guests, and
	// how containers would attach. When empty the agent creates a tap named
	// PortDevice(prefix, ID) for the hypervisor to open.
	Netns       string `json:"netns,omitempty"`
	NetnsIfName string `json:"netns_ifname,omitempty"`
}

// AddressPair is one allowed_address_pairs entry.
type AddressPair struct {
	MAC net.HardwareAddr `json:"mac_address,omitempty"`
	IP  netip.Prefix     `json:"ip_address"`
}

// DHCPOption is one extra_dhcp_opts entry (dnsmasq option name or number).
type DHCPOption struct {
	Name  string `json:"opt_name"`
	Value string `json:"opt_value"`
}

// SecurityGroup is a named set of allow rules.
type SecurityGroup struct {
	ID    string              `json:"id"`
	Rules []SecurityGroupRule `json:"rules,omitempty"`
}

// Direction of a security group rule, seen from the port.
type Direction string

// Directions.
const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// EtherType of a security group rule.
type EtherType string

// Ether types.
const (
	IPv4 EtherType = "IPv4"
	IPv6 EtherType = "IPv6"
)

// SecurityGroupRule allows one kind of traffic. Fields follow Neutron: for
// ICMP, PortMin is the type and PortMax the code (-1 or 0 with ... unset).
type SecurityGroupRule struct {
	Direction Direction `json:"direction"`
	EtherType EtherType `json:"ethertype"`
	// Protocol is "", a name (tcp, udp, icmp, ipv6-icmp, sctp…) or a number.
	Protocol string `json:"protocol,omitempty"`
	// PortMin/PortMax: nil means any. For ICMP: type and code.
	PortMin        *int         `json:"port_range_min,omitempty"`
	PortMax        *int         `json:"port_range_max,omitempty"`
	RemoteIPPrefix netip.Prefix `json:"remote_ip_prefix,omitzero"`
	RemoteGroupID  string       `json:"remote_group_id,omitempty"`
}

// Router is a namespace routing between tenant networks and one external
// network.
type Router struct {
	ID          string            `json:"id"`
	Gateway     *RouterGateway    `json:"external_gateway,omitempty"`
	Interfaces  []RouterInterface `json:"interfaces,omitempty"`
	Routes      []Route           `json:"routes,omitempty"`
	FloatingIPs []FloatingIP      `json:"floating_ips,omitempty"`
	// MeteringLabels count the traffic through the router's external
	// gateway (see metering.go); the caller picks the labels that apply
	// (the router's project's and the shared ones).
	MeteringLabels []MeteringLabel `json:"metering_labels,omitempty"`
}

// RouterGateway is the router's leg on an external network.
type RouterGateway struct {
	NetworkID string     `json:"network_id"`
	IP        netip.Addr `json:"ip"`
	SNAT      bool       `json:"enable_snat"`
	// IPv6 is the gateway's address on an IPv6 subnet of the external
	// network, if it has one. IPv6 is routed, never translated: the router
	// only holds the address and a default route via that subnet's
	// gateway.
	IPv6 netip.Addr `json:"ipv6,omitzero"`
}

// RouterInterface is the router's address on a tenant subnet (usually the
// subnet's gateway IP). A network with an IPv4 and an IPv6 subnet has two
// entries; they share one leg on the network.
type RouterInterface struct {
	NetworkID string     `json:"network_id"`
	IP        netip.Addr `json:"ip"`
}

// FloatingIP maps an external address 1:1 to a fixed IP behind the router.
type FloatingIP struct {
	IP      netip.Addr `json:"floating_ip_address"`
	FixedIP netip.Addr `json:"fixed_ip_address"`
}

// ErrInvalidState wraps every validation failure; Apply changes nothing on
// the host when it returns it.
var ErrInvalidState = errors.New("invalid data plane state")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidState, fmt.Sprintf(format, args...))
}

// index is a validated State with lookups, built once per Apply.
type index struct {
	st       *State
	networks map[string]*Network
	sgs      map[string]*SecurityGroup
	// sgMembers: security group id → addresses of its member ports.
	sgMembers map[string][]netip.Prefix
}

func (n *Network) subnetFor(ip netip.Addr) (Subnet, bool) {
	for _, s := range n.Subnets {
		if s.CIDR.Contains(ip) {
			return s, true
		}
	}
	return Subnet{}, false
}

func validate(st *State) (*index, error) {
	ix := &index{st: st, networks: map[string]*Network{}, sgs: map[string]*SecurityGroup{}, sgMembers: map[string][]netip.Prefix{}}
	for i := range st.Networks {
		n := &st.Networks[i]
		if n.ID == "" {
			return nil, invalid("network without id")
		}
		if _, dup := ix.networks[n.ID]; dup {
			return nil, invalid("duplicate network %s", n.ID)
		}
		ix.networks[n.ID] = n
		switch n.Type {
		case NetworkFlat, NetworkLocal:
		case NetworkVLAN:
			if n.SegmentationID < 1 || n.SegmentationID > 4094 {
				return nil, invalid("network %s: vlan id %d out of range", n.ID, n.SegmentationID)
			}
		case NetworkVXLAN:
			if n.SegmentationID < 1 || n.SegmentationID > 1<<24-1 {
				return nil, invalid("network %s: vxlan vni %d out of range", n.ID, n.SegmentationID)
			}
		default:
			return nil, invalid("network %s: unknown type %q", n.ID, n.Type)
		}
		if (n.Type == NetworkFlat || n.Type == NetworkVLAN) && n.PhysicalInterface == "" {
			return nil, invalid("network %s: %s needs a physical interface", n.ID, n.Type)
		}
		if n.PhysicalInterface != "" && !validIfName(n.PhysicalInterface) {
			return nil, invalid("network %s: bad interface name %q", n.ID, n.PhysicalInterface)
		}
		for _, s := range n.Subnets {
			if !s.CIDR.IsValid() {
				return nil, invalid("subnet %s: invalid cidr", s.ID)
			}
			if s.Gateway.IsValid() && !s.CIDR.Contains(s.Gateway) {
				return nil, invalid("subnet %s: gateway %s outside %s", s.ID, s.Gateway, s.CIDR)
			}
			if (s.DHCP && s.CIDR.Addr().Is4() || s.dhcpv6()) && !s.CIDR.Contains(s.DHCPAddress) {
				return nil, invalid("subnet %s: dhcp needs a dhcp address inside %s", s.ID, s.CIDR)
			}
			if err := validateIPv6Modes(s); err != nil {
				return nil, invalid("subnet %s: %v", s.ID, err)
			}
			for _, r := range s.HostRoutes {
				if !r.Destination.IsValid() || !r.NextHop.IsValid() {
					return nil, invalid("subnet %s: bad host route", s.ID)
				}
			}
		}
		if e := n.External; e != nil {
			switch e.Mode {
			case ExternalRouted, ExternalHostIP:
				if e.Uplink == "" || !validIfName(e.Uplink) {
					return nil, invalid("external network %s: mode %s needs an uplink interface", n.ID, e.Mode)
				}
				if n.Type != NetworkLocal && n.Type != NetworkFlat {
					// The network never leaves the host in these modes.
					return nil, invalid("external network %s: mode %s takes a local network, not %s", n.ID, e.Mode, n.Type)
				}
			case ExternalBridged:
				if n.Type != NetworkFlat && n.Type != NetworkVLAN {
					return nil, invalid("external network %s: bridged mode needs a flat or vlan network", n.ID)
				}
			default:
				return nil, invalid("external network %s: unknown mode %q", n.ID, e.Mode)
			}
		}
	}
	for i := range st.SecurityGroups {
		g := &st.SecurityGroups[i]
		if _, dup := ix.sgs[g.ID]; dup || g.ID == "" {
			return nil, invalid("duplicate or empty security group %q", g.ID)
		}
		ix.sgs[g.ID] = g
		for _, r := range g.Rules {
			if err := validateRule(r); err != nil {
				return nil, invalid("security group %s: %v", g.ID, err)
			}
		}
	}
	seenPort := map[string]bool{}
	for i := range st.Ports {
		p := &st.Ports[i]
		if p.ID == "" || seenPort[p.ID] {
			return nil, invalid("duplicate or empty port id %q", p.ID)
		}
		seenPort[p.ID] = true
		n, ok := ix.networks[p.NetworkID]
		if !ok {
			return nil, invalid("port %s: unknown network %s", p.ID, p.NetworkID)
		}
		if len(p.MAC) != 6 {
			return nil, invalid("port %s: bad mac %q", p.ID, p.MAC)
		}
		for _, ip := range p.FixedIPs {
			if _, ok := n.subnetFor(ip); !ok {
				return nil, invalid("port %s: fixed ip %s outside the network's subnets", p.ID, ip)
			}
		}
		if p.NetnsIfName != "" && !validIfName(p.NetnsIfName) {
			return nil, invalid("port %s: bad interface name %q", p.ID, p.NetnsIfName)
		}
		for _, sg := range p.SecurityGroups {
			if _, ok := ix.sgs[sg]; !ok {
				return nil, invalid("port %s: unknown security group %s", p.ID, sg)
			}
			for _, ip := range p.FixedIPs {
				ix.sgMembers[sg] = append(ix.sgMembers[sg], netip.PrefixFrom(ip, ip.BitLen()))
			}
			for _, ap := range p.AllowedAddressPairs {
				ix.sgMembers[sg] = append(ix.sgMembers[sg], ap.IP.Masked())
			}
		}
		for _, opt := range p.ExtraDHCPOpts {
			if strings.ContainsAny(opt.Name+opt.Value, "\n\r") || opt.Name == "" {
				return nil, invalid("port %s: bad extra dhcp option %q", p.ID, opt.Name)
			}
		}
	}
	for _, g := range st.SecurityGroups {
		for _, r := range g.Rules {
			if r.RemoteGroupID != "" {
				if _, ok := ix.sgs[r.RemoteGroupID]; !ok {
					return nil, invalid("security group %s: unknown remote group %s", g.ID, r.RemoteGroupID)
				}
			}
		}
	}
	seenRouter := map[string]bool{}
	for _, r := range st.Routers {
		if r.ID == "" || seenRouter[r.ID] {
			return nil, invalid("duplicate or empty router id %q", r.ID)
		}
		seenRouter[r.ID] = true
		if gw := r.Gateway; gw != nil {
			n, ok := ix.networks[gw.NetworkID]
			if !ok || n.External == nil {
				return nil, invalid("router %s: gateway network %s is not an external network", r.ID, gw.NetworkID)
			}
			if _, ok := n.subnetFor(gw.IP); !ok || !gw.IP.Is4() {
				return nil, invalid("router %s: gateway ip %s not in an IPv4 subnet of %s", r.ID, gw.IP, n.ID)
			}
			if _, ok := n.subnetFor(gw.IPv6); gw.IPv6.IsValid() && (!ok || !gw.IPv6.Is6()) {
				return nil, invalid("router %s: gateway ipv6 %s not in an IPv6 subnet of %s", r.ID, gw.IPv6, n.ID)
			}
		}
		seenSubnet := map[string]bool{}
		for _, itf := range r.Interfaces {
			n, ok := ix.networks[itf.NetworkID]
			if !ok {
				return nil, invalid("router %s: unknown network %s", r.ID, itf.NetworkID)
			}
			sub, ok := n.subnetFor(itf.IP)
			if !ok {
				return nil, invalid("router %s: interface ip %s not in a subnet of %s", r.ID, itf.IP, n.ID)
			}
			// One address per subnet: two would be two gateways.
			if seenSubnet[sub.ID] {
				return nil, invalid("router %s: two interfaces on subnet %s of network %s", r.ID, sub.ID, itf.NetworkID)
			}
			seenSubnet[sub.ID] = true
		}
		if err := validateMetering(r.MeteringLabels); err != nil {
			return nil, invalid("router %s: %v", r.ID, err)
		}
		for _, rt := range r.Routes {
			if !rt.Destination.IsValid() || !rt.NextHop.IsValid() {
				return nil, invalid("router %s: bad route", r.ID)
			}
		}
		for _, f := range r.FloatingIPs {
			if r.Gateway == nil {
				return nil, invalid("router %s: floating ip %s without an external gateway", r.ID, f.IP)
			}
			if !f.IP.Is4() || !f.FixedIP.Is4() {
				return nil, invalid("router %s: floating ip %s → %s must be IPv4", r.ID, f.IP, f.FixedIP)
			}
			if _, ok := ix.networks[r.Gateway.NetworkID].subnetFor(f.IP); !ok {
				return nil, invalid("router %s: floating ip %s outside the external network", r.ID, f.IP)
			}
		}
	}
	return ix, nil
}

func validateRule(r SecurityGroupRule) error {
	if r.Direction != Ingress && r.Direction != Egress {
		return fmt.Errorf("bad direction %q", r.Direction)
	}
	if r.EtherType != IPv4 && r.EtherType != IPv6 {
		return fmt.Errorf("bad ethertype %q", r.EtherType)
	}
	if r.RemoteIPPrefix.IsValid() && r.RemoteIPPrefix.Addr().Is4() != (r.EtherType == IPv4) {
		return fmt.Errorf("remote prefix %s does not match %s", r.RemoteIPPrefix, r.EtherType)
	}
	if _, err := nftProtocol(r.Protocol, r.EtherType); err != nil {
		return err
	}
	return nil
}

// validateIPv6Modes accepts Neutron's combinations: modes only on IPv6
// subnets, and when both are set they agree (the API enforces the same).
func validateIPv6Modes(s Subnet) error {
	for _, m := range []IPv6Mode{s.IPv6RAMode, s.IPv6AddressMode} {
		switch m {
		case "":
		case IPv6SLAAC, IPv6DHCPv6Stateful, IPv6DHCPv6Stateless:
			if s.CIDR.Addr().Is4() {
				return fmt.Errorf("ipv6 mode %q on an IPv4 subnet", m)
			}
		default:
			return fmt.Errorf("unknown ipv6 mode %q", m)
		}
	}
	if s.IPv6RAMode != "" && s.IPv6AddressMode != "" && s.IPv6RAMode != s.IPv6AddressMode {
		return fmt.Errorf("ipv6_ra_mode %s and ipv6_address_mode %s disagree", s.IPv6RAMode, s.IPv6AddressMode)
	}
	return nil
}

func validIfName(s string) bool {
	if s == "" || len(s) > 15 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
