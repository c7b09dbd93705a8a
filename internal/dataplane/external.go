package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// routeProto marks the host routes the agent owns (iproute2 route protocol
// number; 0-4 are the kernel's, well-known daemons use 8-19 and 42-192).
const routeProto = "151"

// proxyRecordFile lists the proxy ARP entries the agent added to uplinks,
// which it does not own and so cannot recognise by name.
const proxyRecordFile = "proxy-arp.json"

type proxyEntry struct {
	IP  string `json:"ip"`
	Dev string `json:"dev"`
}

// floatingOn lists the addresses routers hold on an external network:
// gateway IPs and floating IPs.
func floatingOn(ix *index, netID string) (gws, fips []netip.Addr) {
	for _, r := range ix.st.Routers {
		if r.Gateway == nil || r.Gateway.NetworkID != netID {
			continue
		}
		gws = append(gws, r.Gateway.IP)
		for _, f := range r.FloatingIPs {
			fips = append(fips, f.IP)
		}
	}
	return gws, fips
}

// applyExternal configures the host side of routed and host-ip external
// networks: the host's address on the external bridge (routed), per-address
// routes and proxy ARP on the uplink (host-ip), and forwarding.
func (a *Agent) applyExternal(ctx context.Context, ix *index) error {
	var wantRoutes []string
	var wantProxy []proxyEntry
	forwarding := false
	for i := range ix.st.Networks {
		n := &ix.st.Networks[i]
		if n.External == nil || n.External.Mode == ExternalBridged {
			continue
		}
		forwarding = true
		br := a.n.bridge(n.ID)
		gws, fips := floatingOn(ix, n.ID)
		switch n.External.Mode {
		case ExternalRouted:
			// The host is the gateway of the floating CIDR.
			var addrs []netip.Prefix
			for _, s := range n.Subnets {
				if s.Gateway.IsValid() && s.Gateway.Is4() {
					addrs = append(addrs, netip.PrefixFrom(s.Gateway, s.CIDR.Bits()))
				}
			}
			if _, _, err := a.host.setAddrs(ctx, br, addrs); err != nil {
				return err
			}
			if err := a.host.sysctl(ctx, "net.ipv4.conf."+br+".proxy_arp", "0"); err != nil {
				return err
			}
		case ExternalHostIP:
			// The external subnet overlaps the uplink's: the bridge gets no
			// address, the host answers routers' ARP by proxy and routes
			// each router address to the bridge.
			if _, _, err := a.host.setAddrs(ctx, br, nil); err != nil {
				return err
			}
			if err := a.host.sysctl(ctx, "net.ipv4.conf."+br+".proxy_arp", "1"); err != nil {
				return err
			}
			for _, ip := range append(gws, fips...) {
				wantRoutes = append(wantRoutes, ip.String()+"/32 "+br)
			}
			for _, ip := range fips {
				wantProxy = append(wantProxy, proxyEntry{IP: ip.String(), Dev: n.External.Uplink})
			}
		}
	}
	if forwarding {
		// Routing between the external bridges and the uplink is the
		// point of these modes; the host must forward.
		if err := a.host.sysctl(ctx, "net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
	}
	if err := a.setHostRoutes(ctx, wantRoutes); err != nil {
		return err
	}
	return a.setProxyARP(ctx, wantProxy)
}

func (a *Agent) setHostRoutes(ctx context.Context, want []string) error {
	have, err := a.host.routes(ctx, routeProto)
	if err != nil {
		return err
	}
	haveSet := map[string]bool{}
	for _, h := range have {
		k := h.key()
		haveSet[strings.Fields(k)[0]+" "+h.Dev] = true
	}
	for _, w := range want {
		if haveSet[w] {
			continue
		}
		f := strings.Fields(w)
		if _, err := a.host.ip(ctx, "route", "replace", f[0], "dev", f[1], "proto", routeProto); err != nil {
			return err
		}
	}
	for _, h := range have {
		k := strings.Fields(h.key())[0] + " " + h.Dev
		if !slices.Contains(want, k) {
			if _, err := a.host.ip(ctx, "route", "del", h.Dst, "dev", h.Dev, "proto", routeProto); err != nil && !isNotFound(err) {
				return err
			}
		}
	}
	return nil
}

func (a *Agent) setProxyARP(ctx context.Context, want []proxyEntry) error {
	path := filepath.Join(a.cfg.StateDir, proxyRecordFile)
	var had []proxyEntry
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &had); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	sort.Slice(want, func(i, j int) bool { return want[i].IP+want[i].Dev < want[j].IP+want[j].Dev })
	// Record before adding, so a crash in between still lets the next
	// Apply remove what we added.
	union := slices.Clone(want)
	for _, h := range had {
		if !slices.Contains(union, h) {
			union = append(union, h)
		}
	}
	if err := writeJSON(path, union); err != nil {
		return err
	}
	for _, w := range want {
		if _, err := a.host.ip(ctx, "neigh", "replace", "proxy", w.IP, "dev", w.Dev); err != nil {
			return err
		}
	}
	for _, h := range had {
		if !slices.Contains(want, h) {
			if _, err := a.host.ip(ctx, "neigh", "del", "proxy", h.IP, "dev", h.Dev); err != nil && !isNotFound(err) {
				a.log.Warn("remove proxy arp entry", "ip", h.IP, "dev", h.Dev, "err", err)
			}
		}
	}
	return writeJSON(path, want)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// externalTable renders the host's inet table for routed and host-ip
// external networks: masquerade to the host's own address on the way out
// (host-ip keeps floating IPs as they are: the cloud gave them to the host),
// no cloud metadata for routers, no new connections from routers to the
// host itself.
func (a *Agent) externalTable(ix *index) string {
	var b strings.Builder
	var fw, in, nat []string
	for _, n := range ix.st.Networks {
		if n.External == nil || n.External.Mode == ExternalBridged {
			continue
		}
		br := a.n.bridge(n.ID)
		fw = append(fw, fmt.Sprintf("iifname %q ip daddr { %s } counter drop", br, strings.Join(cloudMetadata, ", ")))
		in = append(in, fmt.Sprintf("iifname %q ct state new counter drop", br))
		switch n.External.Mode {
		case ExternalRouted:
			nat = append(nat, fmt.Sprintf("iifname %q oifname %q masquerade", br, n.External.Uplink))
		case ExternalHostIP:
			_, fips := floatingOn(ix, n.ID)
			if len(fips) > 0 {
				ps := make([]netip.Prefix, len(fips))
				for i, f := range fips {
					ps[i] = netip.PrefixFrom(f, 32)
				}
				nat = append(nat, fmt.Sprintf("iifname %q oifname %q ip saddr != { %s } masquerade", br, n.External.Uplink, joinPrefixes(normalizePrefixes(ps))))
			} else {
				nat = append(nat, fmt.Sprintf("iifname %q oifname %q masquerade", br, n.External.Uplink))
			}
		}
	}
	if len(fw) == 0 {
		return ""
	}
	t := a.n.tableHost()
	fmt.Fprintf(&b, "table inet %s {\n", t)
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	for _, r := range fw {
		b.WriteString("\t\t" + r + "\n")
	}
	b.WriteString("\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	for _, r := range in {
		b.WriteString("\t\t" + r + "\n")
	}
	b.WriteString("\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	for _, r := range nat {
		b.WriteString("\t\t" + r + "\n")
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

type nftTables struct {
	Nftables []struct {
		Table *struct {
			Family string `json:"family"`
			Name   string `json:"name"`
		} `json:"table"`
	} `json:"nftables"`
}

// applyHostTables replaces the agent's host tables in one nftables
// transaction and deletes any other table carrying the prefix.
func (a *Agent) applyHostTables(ctx context.Context, ix *index) error {
	type table struct{ family, name, body string }
	var tables []table
	if len(ix.st.Ports) > 0 {
		tables = append(tables, table{"bridge", a.n.tableL2(), a.antispoofTable(ix)})
	}
	// The security group table also holds the per-network conntrack
	// zones, which matter even without a secured port.
	if slices.ContainsFunc(ix.st.Networks, func(n Network) bool { return n.External == nil }) {
		tables = append(tables, table{"inet", a.n.tableSG(), a.secgroupTable(ix)})
	}
	if body := a.externalTable(ix); body != "" {
		tables = append(tables, table{"inet", a.n.tableHost(), body})
	}
	out, err := a.host.exec(ctx, nil, "nft", "-j", "list", "tables")
	if err != nil {
		return err
	}
	var have nftTables
	if err := json.Unmarshal(out, &have); err != nil {
		return fmt.Errorf("parse nft tables: %w", err)
	}
	var script strings.Builder
	for _, e := range have.Nftables {
		if e.Table == nil || !strings.HasPrefix(e.Table.Name, a.n.prefix+"_") {
			continue
		}
		if !slices.ContainsFunc(tables, func(t table) bool { return t.family == e.Table.Family && t.name == e.Table.Name }) {
			fmt.Fprintf(&script, "delete table %s %s\n", e.Table.Family, e.Table.Name)
		}
	}
	for _, t := range tables {
		// "table" adds it if missing so that "delete" cannot fail; the
		// three lines are one transaction, so there is no moment without
		// rules.
		fmt.Fprintf(&script, "table %s %s\ndelete table %s %s\n%s", t.family, t.name, t.family, t.name, t.body)
	}
	if script.Len() == 0 {
		return nil
	}
	_, err = a.host.exec(ctx, []byte(script.String()), "nft", "-f", "-")
	return err
}
