package dataplane

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// protocolNames maps Neutron's protocol numbers to nftables' names.
var protocolNames = map[string]string{
	"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "132": "sctp",
	"icmpv6": "ipv6-icmp", "any": "",
}

// nftProtocol normalises a rule's protocol: "" (any), a known name, or a
// number 0-255.
func nftProtocol(proto string, et EtherType) (string, error) {
	p := strings.ToLower(proto)
	if n, ok := protocolNames[p]; ok {
		p = n
	}
	if p == "icmp" && et == IPv6 {
		p = "ipv6-icmp"
	}
	switch p {
	case "", "tcp", "udp", "sctp", "icmp", "ipv6-icmp", "dccp", "udplite", "gre", "esp", "ah":
		return p, nil
	}
	if n, err := strconv.Atoi(p); err == nil && n >= 0 && n <= 255 {
		return p, nil
	}
	return "", fmt.Errorf("unsupported protocol %q", proto)
}

// ruleMatch renders one security group rule as an nftables match (without
// the verdict).
func (a *Agent) ruleMatch(r SecurityGroupRule) string {
	var m []string
	fam, saddr, daddr := "ipv4", "ip saddr", "ip daddr"
	if r.EtherType == IPv6 {
		fam, saddr, daddr = "ipv6", "ip6 saddr", "ip6 daddr"
	}
	m = append(m, "meta nfproto "+fam)
	remote := saddr
	if r.Direction == Egress {
		remote = daddr
	}
	if r.RemoteIPPrefix.IsValid() {
		m = append(m, remote+" "+r.RemoteIPPrefix.Masked().String())
	}
	if r.RemoteGroupID != "" {
		m = append(m, remote+" @"+sgSetName(r.RemoteGroupID, r.EtherType))
	}
	proto, _ := nftProtocol(r.Protocol, r.EtherType)
	switch proto {
	case "":
	case "tcp", "udp", "sctp", "dccp", "udplite":
		if r.PortMin != nil || r.PortMax != nil {
			lo, hi := 1, 65535
			if r.PortMin != nil {
				lo = *r.PortMin
			}
			if r.PortMax != nil {
				hi = *r.PortMax
			}
			if lo == hi {
				m = append(m, fmt.Sprintf("%s dport %d", proto, lo))
			} else {
				m = append(m, fmt.Sprintf("%s dport %d-%d", proto, lo, hi))
			}
		} else {
			m = append(m, "meta l4proto "+proto)
		}
	case "icmp", "ipv6-icmp":
		kw := "icmp"
		if proto == "ipv6-icmp" {
			kw = "icmpv6"
		}
		m = append(m, "meta l4proto "+proto)
		if r.PortMin != nil && *r.PortMin >= 0 {
			m = append(m, fmt.Sprintf("%s type %d", kw, *r.PortMin))
			if r.PortMax != nil && *r.PortMax >= 0 {
				m = append(m, fmt.Sprintf("%s code %d", kw, *r.PortMax))
			}
		}
	default:
		m = append(m, "meta l4proto "+proto)
	}
	return strings.Join(m, " ")
}

func sgSetName(groupID string, et EtherType) string {
	if et == IPv6 {
		return "sg_" + shortID(groupID) + "_v6"
	}
	return "sg_" + shortID(groupID) + "_v4"
}

// conntrackZones gives each network's bridge its own conntrack zone, so that
// overlapping tenant CIDRs never share connection state. Zones derive from
// the network ID (stable across restarts and unrelated changes); clashes
// are resolved by probing in ID order.
func conntrackZones(nets []Network) map[string]uint16 {
	ids := make([]string, 0, len(nets))
	for _, n := range nets {
		ids = append(ids, n.ID)
	}
	sort.Strings(ids)
	used := map[uint16]bool{}
	zones := map[string]uint16{}
	for _, id := range ids {
		h := fnv.New32a()
		h.Write([]byte(id))
		z := uint16(h.Sum32()%65000) + 100 // keep clear of small zones others use
		for used[z] {
			z++
			if z == 0 {
				z = 100
			}
		}
		used[z] = true
		zones[id] = z
	}
	return zones
}

// normalizePrefixes drops duplicates and prefixes covered by others, which
// nftables rejects as overlapping elements of an interval set.
func normalizePrefixes(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		p = p.Masked()
		covered := false
		for _, q := range ps {
			q = q.Masked()
			if q != p && q.Bits() < p.Bits() && q.Contains(p.Addr()) {
				covered = true
				break
			}
		}
		if !covered && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		if p.IsSingleIP() {
			s[i] = p.Addr().String()
		} else {
			s[i] = p.String()
		}
	}
	return strings.Join(s, ", ")
}

// portSources is what a port may send from: (MAC → prefixes) per family.
type portSources struct {
	macs []string
	v4   map[string][]netip.Prefix
	v6   map[string][]netip.Prefix
}

func sourcesOf(p *Port) portSources {
	s := portSources{v4: map[string][]netip.Prefix{}, v6: map[string][]netip.Prefix{}}
	add := func(mac net.HardwareAddr, pfx netip.Prefix) {
		m := mac.String()
		if !slices.Contains(s.macs, m) {
			s.macs = append(s.macs, m)
		}
		if pfx.Addr().Is4() {
			s.v4[m] = append(s.v4[m], pfx)
		} else {
			s.v6[m] = append(s.v6[m], pfx)
		}
	}
	s.macs = append(s.macs, p.MAC.String())
	for _, ip := range p.FixedIPs {
		add(p.MAC, netip.PrefixFrom(ip, ip.BitLen()))
	}
	for _, ap := range p.AllowedAddressPairs {
		mac := ap.MAC
		if len(mac) == 0 {
			mac = p.MAC
		}
		add(mac, ap.IP)
	}
	return s
}

// antispoofTable renders the bridge-family table that runs before
// br_netfilter on every frame a secured port sends: only its MACs, only its
// addresses (and DHCP discovery from 0.0.0.0), no DHCP, DHCPv6 or router
// advertisement service, no other ethertypes.
func (a *Agent) antispoofTable(ix *index) string {
	t := a.n.tableL2()
	var b strings.Builder
	fmt.Fprintf(&b, "table bridge %s {\n", t)
	b.WriteString("\tchain prerouting {\n\t\ttype filter hook prerouting priority -300; policy accept;\n")
	for _, p := range ix.st.Ports {
		// goto, not jump: a frame the port chain lets through (return)
		// ends here with the policy, and never meets the catch-all below.
		if p.PortSecurity {
			fmt.Fprintf(&b, "\t\tiifname %q goto port_%s\n", a.n.port(p.ID), shortID(p.ID))
		} else {
			fmt.Fprintf(&b, "\t\tiifname %q accept\n", a.n.port(p.ID))
		}
	}
	// A port device the state does not (yet or any more) know sends nothing.
	fmt.Fprintf(&b, "\t\tiifname \"%s%c*\" counter drop\n", a.n.prefix, kindPort)
	b.WriteString("\t}\n")
	for i := range ix.st.Ports {
		p := &ix.st.Ports[i]
		if !p.PortSecurity {
			continue
		}
		src := sourcesOf(p)
		fmt.Fprintf(&b, "\tchain port_%s {\n", shortID(p.ID))
		fmt.Fprintf(&b, "\t\tether saddr != { %s } counter drop\n", strings.Join(src.macs, ", "))
		b.WriteString("\t\tether type ip udp sport 67 counter drop\n")
		b.WriteString("\t\tether type ip6 icmpv6 type nd-router-advert counter drop\n")
		b.WriteString("\t\tether type ip6 udp sport 547 counter drop\n")
		b.WriteString("\t\tether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 return\n")
		for _, mac := range src.macs {
			v4 := normalizePrefixes(src.v4[mac])
			if len(v4) > 0 {
				fmt.Fprintf(&b, "\t\tether type arp ether saddr %s arp saddr ether %s arp saddr ip { 0.0.0.0, %s } return\n", mac, mac, joinPrefixes(v4))
				fmt.Fprintf(&b, "\t\tether type ip ether saddr %s ip saddr { %s } return\n", mac, joinPrefixes(v4))
			}
			// Link-local and DAD (::) are always allowed from the port's
			// own MACs; global IPv6 only from its addresses.
			v6 := normalizePrefixes(append(slices.Clone(src.v6[mac]), netip.MustParsePrefix("fe80::/64"), netip.MustParsePrefix("::/128")))
			fmt.Fprintf(&b, "\t\tether type ip6 ether saddr %s ip6 saddr { %s } return\n", mac, joinPrefixes(v6))
		}
		b.WriteString("\t\tcounter drop\n\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// secgroupTable renders the inet-family table that conntracks each network
// in its own zone and applies each secured port's security groups, seen
// from the port: egress on frames it sends (ether saddr), ingress on frames
// it receives (ether daddr). Nothing is allowed unless a rule says so,
// except replies and DHCP/neighbour discovery.
func (a *Agent) secgroupTable(ix *index) string {
	t := a.n.tableSG()
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", t)
	// Remote-group sets.
	var used []string
	for _, g := range ix.st.SecurityGroups {
		for _, r := range g.Rules {
			if r.RemoteGroupID != "" && !slices.Contains(used, r.RemoteGroupID) {
				used = append(used, r.RemoteGroupID)
			}
		}
	}
	sort.Strings(used)
	for _, gid := range used {
		var v4, v6 []netip.Prefix
		for _, p := range ix.sgMembers[gid] {
			if p.Addr().Is4() {
				v4 = append(v4, p)
			} else {
				v6 = append(v6, p)
			}
		}
		for _, fam := range []struct {
			et   EtherType
			typ  string
			elts []netip.Prefix
		}{{IPv4, "ipv4_addr", v4}, {IPv6, "ipv6_addr", v6}} {
			fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n", sgSetName(gid, fam.et), fam.typ)
			if elts := normalizePrefixes(fam.elts); len(elts) > 0 {
				fmt.Fprintf(&b, "\t\telements = { %s }\n", joinPrefixes(elts))
			}
			b.WriteString("\t}\n")
		}
	}
	zones := conntrackZones(ix.st.Networks)
	b.WriteString("\tchain zones {\n\t\ttype filter hook prerouting priority raw; policy accept;\n")
	for _, n := range ix.st.Networks {
		// External bridges carry routed traffic whose replies come back
		// through the uplink, in the default zone: leave them there.
		if n.External == nil {
			fmt.Fprintf(&b, "\t\tiifname %q ct zone set %d\n", a.n.bridge(n.ID), zones[n.ID])
		}
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	for _, p := range ix.st.Ports {
		if p.PortSecurity {
			fmt.Fprintf(&b, "\t\tether saddr %s jump egress_%s\n", p.MAC, shortID(p.ID))
			fmt.Fprintf(&b, "\t\tether daddr %s jump ingress_%s\n", p.MAC, shortID(p.ID))
		}
	}
	b.WriteString("\t}\n")
	for _, p := range ix.st.Ports {
		if !p.PortSecurity {
			continue
		}
		var in, out []string
		for _, gid := range p.SecurityGroups {
			for _, r := range ix.sgs[gid].Rules {
				if r.Direction == Ingress {
					in = append(in, a.ruleMatch(r))
				} else {
					out = append(out, a.ruleMatch(r))
				}
			}
		}
		id := shortID(p.ID)
		fmt.Fprintf(&b, "\tchain egress_%s {\n", id)
		b.WriteString("\t\tct state established,related return\n\t\tct state invalid counter drop\n")
		b.WriteString("\t\tudp sport 68 udp dport 67 return\n")
		// DHCPv6 and MLD as Neutron's firewall allows them: guests
		// join their solicited-node groups before SLAAC.
		b.WriteString("\t\tmeta nfproto ipv6 udp sport 546 udp dport 547 return\n")
		b.WriteString("\t\ticmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } return\n")
		for _, m := range dedupe(out) {
			fmt.Fprintf(&b, "\t\t%s return\n", m)
		}
		b.WriteString("\t\tcounter drop\n\t}\n")
		fmt.Fprintf(&b, "\tchain ingress_%s {\n", id)
		b.WriteString("\t\tct state established,related accept\n\t\tct state invalid counter drop\n")
		b.WriteString("\t\tudp sport 67 udp dport 68 accept\n")
		b.WriteString("\t\tmeta nfproto ipv6 udp sport 547 udp dport 546 accept\n")
		b.WriteString("\t\ticmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept\n")
		for _, m := range dedupe(in) {
			fmt.Fprintf(&b, "\t\t%s accept\n", m)
		}
		b.WriteString("\t\tcounter drop\n\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func dedupe(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
