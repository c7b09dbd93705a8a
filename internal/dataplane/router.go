package dataplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// cloudMetadata are the host cloud's own metadata services. Guests must
// never reach them through a router's NAT: they would read the host's
// credentials. 169.254.0.0/16 covers AWS, GCP and Azure; Alibaba Cloud
// uses 100.100.100.200.
var cloudMetadata = []string{"169.254.0.0/16", "100.100.100.200"}

const guestMetadataAddr = "169.254.169.254"

func (a *Agent) applyRouter(ctx context.Context, ix *index, r *Router, links map[string]*link, want, wantNS map[string]bool) (rerr error) {
	rns := a.n.routerNS(r.ID)
	wantNS[rns] = true
	if err := a.ensureNetns(ctx, rns); err != nil {
		return err
	}
	rn := ns{r: a.cfg.Runner, name: rns}
	// IPv6 is routed like IPv4 (never translated). Forwarding also makes
	// the kernel ignore router advertisements on the router's legs.
	if _, err := rn.exec(ctx, nil, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"); err != nil {
		return fmt.Errorf("router forwarding: %w", err)
	}
	legs := routerLegs(ix, r)
	for _, netID := range slices.Sorted(maps.Keys(legs)) {
		n := ix.networks[netID]
		dev := a.n.routerIf(r.ID, n.ID)
		want[dev] = true
		if _, _, err := a.plugNamespace(ctx, rn, dev, routerInnerIf(n.ID), a.n.bridge(n.ID), a.networkMTU(n), links, legs[netID]); err != nil {
			return fmt.Errorf("interface on %s: %w", n.ID, err)
		}
	}
	var routes []string
	if gw := r.Gateway; gw != nil {
		n := ix.networks[gw.NetworkID]
		sub, _ := n.subnetFor(gw.IP)
		dev := a.n.routerGw(r.ID)
		want[dev] = true
		inner := routerInnerGw(r.ID)
		addrs := []netip.Prefix{netip.PrefixFrom(gw.IP, sub.CIDR.Bits())}
		if sub6, ok := n.subnetFor(gw.IPv6); ok {
			addrs = append(addrs, netip.PrefixFrom(gw.IPv6, sub6.CIDR.Bits()))
			if sub6.Gateway.IsValid() {
				routes = append(routes, "::/0 "+sub6.Gateway.String()+" "+inner)
			}
		}
		for _, f := range r.FloatingIPs {
			addrs = append(addrs, netip.PrefixFrom(f.IP, 32))
		}
		added, removed, err := a.plugNamespace(ctx, rn, dev, inner, a.n.bridge(n.ID), a.networkMTU(n), links, addrs)
		if err != nil {
			return fmt.Errorf("gateway on %s: %w", n.ID, err)
		}
		// A disassociated floating IP must not keep carrying the
		// connections it had: forget their NAT state once the new rules
		// are in, so no packet re-creates it with the old translation.
		defer func() {
			if rerr == nil {
				rerr = a.forgetConnections(ctx, rn, removed)
			}
		}()
		if n.External.Mode == ExternalBridged {
			// Tell the L2 that the address now lives here (a floating IP
			// moved between routers, or the router was rebuilt).
			for _, p := range added {
				if _, err := rn.exec(ctx, nil, "arping", "-U", "-c", "1", "-I", inner, p.Addr().String()); err != nil {
					a.log.Warn("gratuitous arp", "router", r.ID, "ip", p.Addr(), "err", err)
				}
			}
		}
		if sub.Gateway.IsValid() {
			routes = append(routes, "0.0.0.0/0 "+sub.Gateway.String()+" "+inner)
		}
	}
	for _, rt := range r.Routes {
		dev, err := a.routeDev(ix, r, rt.NextHop)
		if err != nil {
			return err
		}
		routes = append(routes, rt.Destination.Masked().String()+" "+rt.NextHop.String()+" "+dev)
	}
	if err := a.setRoutes(ctx, rn, routes); err != nil {
		return err
	}
	// One transaction for both families' tables.
	rules := a.routerRuleset(ix, r) + a.router6Ruleset()
	if _, err := rn.exec(ctx, []byte(rules), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("router nftables: %w", err)
	}
	if err := a.applyRA(ctx, ix, r, rns); err != nil {
		return fmt.Errorf("router advertisements: %w", err)
	}
	if err := a.applyMetering(ctx, rn, r); err != nil {
		return fmt.Errorf("metering: %w", err)
	}
	return a.ensureMetadata(ctx, rns, r.ID)
}

// routerLegs groups a router's interface addresses by network: one leg per
// network carries the gateway addresses of all its subnets (IPv4 and
// IPv6), as Neutron's router port carries several fixed IPs.
func routerLegs(ix *index, r *Router) map[string][]netip.Prefix {
	legs := map[string][]netip.Prefix{}
	for _, itf := range r.Interfaces {
		sub, _ := ix.networks[itf.NetworkID].subnetFor(itf.IP)
		legs[itf.NetworkID] = append(legs[itf.NetworkID], netip.PrefixFrom(itf.IP, sub.CIDR.Bits()))
	}
	return legs
}

// routeDev finds the router leg whose subnet holds a static route's next hop.
func (a *Agent) routeDev(ix *index, r *Router, nh netip.Addr) (string, error) {
	for _, itf := range r.Interfaces {
		if s, ok := ix.networks[itf.NetworkID].subnetFor(itf.IP); ok && s.CIDR.Contains(nh) {
			return routerInnerIf(itf.NetworkID), nil
		}
	}
	if gw := r.Gateway; gw != nil {
		for _, ip := range []netip.Addr{gw.IP, gw.IPv6} {
			if s, ok := ix.networks[gw.NetworkID].subnetFor(ip); ok && s.CIDR.Contains(nh) {
				return routerInnerGw(r.ID), nil
			}
		}
	}
	return "", fmt.Errorf("%w: router %s: next hop %s is on none of its subnets", ErrInvalidState, r.ID, nh)
}

// plugNamespace gives a namespace a leg on a bridge: a veth pair whose host
// end is dev (enslaved to br) and whose far end inner carries exactly addrs.
// It returns the addresses that were not there before.
func (a *Agent) plugNamespace(ctx context.Context, in ns, dev, inner, br string, mtu int, links map[string]*link, addrs []netip.Prefix) (added, removed []netip.Prefix, err error) {
	if err := a.ensureVeth(ctx, dev, in.name, inner, mtu, links); err != nil {
		return nil, nil, err
	}
	if err := a.ensurePortOf(ctx, dev, br, mtu, links); err != nil {
		return nil, nil, err
	}
	if _, err := in.ip(ctx, "link", "set", inner, "mtu", strconv.Itoa(mtu), "up"); err != nil {
		return nil, nil, err
	}
	return in.setAddrs(ctx, inner, addrs)
}

// forgetConnections deletes the conntrack entries of addresses a router no
// longer holds, in both directions (DNAT'd inbound, SNAT'd outbound).
func (a *Agent) forgetConnections(ctx context.Context, rn ns, gone []netip.Prefix) error {
	for _, p := range gone {
		ip := p.Addr().String()
		for _, dir := range []string{"--orig-dst", "--reply-dst"} {
			// conntrack exits 1 when nothing matched; only a missing tool
			// is an error worth reporting.
			if _, err := rn.exec(ctx, nil, "conntrack", "-D", dir, ip); err != nil {
				var ce *CommandError
				if errors.As(err, &ce) && strings.Contains(ce.Stderr, "conntrack\" failed") {
					return fmt.Errorf("flush connections of %s (is conntrack installed?): %w", ip, err)
				}
			}
		}
	}
	return nil
}

// setRoutes makes the namespace's proto-static IPv4 and IPv6 routes
// exactly want, each "dst gateway dev".
func (a *Agent) setRoutes(ctx context.Context, in ns, want []string) error {
	have, err := in.routes(ctx, "static")
	if err != nil {
		return err
	}
	have6, err := in.routesOf(ctx, "-6", "static")
	if err != nil {
		return err
	}
	have = append(have, have6...)
	haveSet := map[string]bool{}
	for _, h := range have {
		haveSet[h.key()] = true
	}
	for _, w := range want {
		if haveSet[w] {
			continue
		}
		f := strings.Fields(w)
		if _, err := in.ip(ctx, "route", "replace", f[0], "via", f[1], "dev", f[2], "proto", "static"); err != nil {
			return err
		}
	}
	for _, h := range have {
		if k := h.key(); !slices.Contains(want, k) {
			if _, err := in.ip(ctx, "route", "del", strings.Fields(k)[0], "proto", "static"); err != nil && !isNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// routerRuleset is the whole nftables table of one router namespace,
// replaced atomically on every Apply.
func (a *Agent) routerRuleset(ix *index, r *Router) string {
	t := a.n.tableRouter()
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s\ndelete table ip %s\ntable ip %s {\n", t, t, t)
	qg := routerInnerGw(r.ID)
	port := strconv.Itoa(a.cfg.MetadataPort)

	b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	// The guests' metadata address is answered by the agent's proxy in
	// this namespace, never by the cloud underneath.
	fmt.Fprintf(&b, "\t\tiifname \"qr-*\" ip daddr %s tcp dport 80 redirect to :%s\n", guestMetadataAddr, port)
	for _, f := range r.FloatingIPs {
		fmt.Fprintf(&b, "\t\tip daddr %s dnat to %s\n", f.IP, f.FixedIP)
	}
	b.WriteString("\t}\n")

	b.WriteString("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	if r.Gateway != nil {
		for _, f := range r.FloatingIPs {
			fmt.Fprintf(&b, "\t\toifname %q ip saddr %s snat to %s\n", qg, f.FixedIP, f.IP)
		}
		if r.Gateway.SNAT {
			fmt.Fprintf(&b, "\t\toifname %q snat to %s\n", qg, r.Gateway.IP)
		}
	}
	b.WriteString("\t}\n")

	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tip daddr { %s } counter drop\n", strings.Join(cloudMetadata, ", "))
	b.WriteString("\t}\n")

	// Nothing but guests may reach the metadata proxy.
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname != \"qr-*\" tcp dport %s drop\n", port)
	b.WriteString("\t}\n}\n")
	return b.String()
}
