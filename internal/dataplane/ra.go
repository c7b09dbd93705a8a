package dataplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// raInterval is the longest gap between unsolicited router advertisements
// (guests that just came up solicit one and are answered at once).
const raInterval = "30"

func (a *Agent) raDir(nsName string) string { return filepath.Join(a.cfg.StateDir, "ra", nsName) }

// raSubnet is a subnet a router advertises on one of its legs.
type raSubnet struct {
	sub   Subnet
	iface string
	mtu   int
}

// raSubnets lists the router's IPv6 subnets whose ipv6_ra_mode is set: as
// in Neutron, the router (not the DHCP server) advertises them, so the
// guests' default route points at the router's link-local address.
func (a *Agent) raSubnets(ix *index, r *Router) []raSubnet {
	var out []raSubnet
	for _, itf := range r.Interfaces {
		n := ix.networks[itf.NetworkID]
		sub, _ := n.subnetFor(itf.IP)
		if sub.CIDR.Addr().Is6() && sub.IPv6RAMode != "" {
			out = append(out, raSubnet{sub: sub, iface: routerInnerIf(n.ID), mtu: a.networkMTU(n)})
		}
	}
	return out
}

// applyRA runs dnsmasq as the router's RA daemon when one of its subnets
// wants advertisements, and stops it otherwise.
func (a *Agent) applyRA(ctx context.Context, ix *index, r *Router, rns string) error {
	subs := a.raSubnets(ix, r)
	dir := a.raDir(rns)
	if len(subs) == 0 {
		return stopDNSMasq(dir)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("ra state dir: %w", err)
	}
	return a.reconcileDNSMasq(ctx, rns, dir, a.raArgs(dir, subs), false)
}

// raArgs renders the RA daemon's command line. dnsmasq derives the RA flags
// from each range's mode: ra-only sets A (slaac), ra-stateless sets A and
// O (dhcpv6-stateless), a static range sets M without A
// (dhcpv6-stateful). The last two would also make this dnsmasq a DHCPv6
// server; the router's ip6 table drops DHCPv6 requests to it, so only the
// DHCP namespace answers (router6Ruleset).
func (a *Agent) raArgs(dir string, subs []raSubnet) []string {
	var ifaces []string
	for _, s := range subs {
		if !slices.Contains(ifaces, s.iface) {
			ifaces = append(ifaces, s.iface)
		}
	}
	args := append(a.dnsmasqBaseArgs(dir, ifaces...), "--enable-ra")
	for _, s := range subs {
		args = append(args, "--ra-param="+s.iface+",mtu:"+strconv.Itoa(s.mtu)+","+raInterval)
		mode := map[IPv6Mode]string{IPv6SLAAC: "ra-only", IPv6DHCPv6Stateless: "ra-stateless", IPv6DHCPv6Stateful: "static"}[s.sub.IPv6RAMode]
		args = append(args, fmt.Sprintf("--dhcp-range=%s,%s,%d,%s", s.sub.CIDR.Masked().Addr(), mode, s.sub.CIDR.Bits(), dhcpLease))
	}
	return dedupe(args)
}

// router6Ruleset is the router namespace's ip6 table: the RA daemon must not
// answer DHCPv6 (the DHCP namespace does), and IPv6 is otherwise routed as
// it is, with no translation.
func (a *Agent) router6Ruleset() string {
	t := a.n.tableRouter6()
	var b strings.Builder
	fmt.Fprintf(&b, "table ip6 %s\ndelete table ip6 %s\ntable ip6 %s {\n", t, t, t)
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	b.WriteString("\t\tudp dport 547 counter drop\n")
	b.WriteString("\t}\n}\n")
	return b.String()
}
