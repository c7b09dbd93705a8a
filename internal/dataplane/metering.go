package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// MeteringLabel is a Neutron metering label as it applies to one router:
// the traffic its rules select through the router's external gateway is
// counted, in packets and bytes, in one counter per (router, label).
type MeteringLabel struct {
	ID    string         `json:"id"`
	Rules []MeteringRule `json:"rules,omitempty"`
}

// MeteringRule selects traffic for a label, as Neutron's metering agent
// does: ingress is what enters through the gateway (remote = source),
// egress what leaves through it (remote = destination). Source and
// destination prefixes, when set, match in either direction. An excluded
// rule keeps what it matches out of the label, whatever the other rules
// say.
type MeteringRule struct {
	Direction           Direction    `json:"direction"`
	RemoteIPPrefix      netip.Prefix `json:"remote_ip_prefix,omitzero"`
	SourceIPPrefix      netip.Prefix `json:"source_ip_prefix,omitzero"`
	DestinationIPPrefix netip.Prefix `json:"destination_ip_prefix,omitzero"`
	Excluded            bool         `json:"excluded"`
}

// MeteringCount is one label's traffic through one router since the label
// was first applied there (counters survive Apply and agent restarts, not
// the router namespace).
type MeteringCount struct {
	RouterID string `json:"router_id"`
	LabelID  string `json:"label_id"`
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
}

func validateMetering(labels []MeteringLabel) error {
	seen := map[string]bool{}
	for _, l := range labels {
		if l.ID == "" || seen[l.ID] {
			return fmt.Errorf("duplicate or empty metering label %q", l.ID)
		}
		seen[l.ID] = true
		for _, r := range l.Rules {
			if r.Direction != Ingress && r.Direction != Egress {
				return fmt.Errorf("metering label %s: bad direction %q", l.ID, r.Direction)
			}
			if _, err := meteringFamily(r); err != nil {
				return fmt.Errorf("metering label %s: %w", l.ID, err)
			}
		}
	}
	return nil
}

// meteringFamily is the nftables address keyword of a rule's prefixes ("ip"
// or "ip6"), "" when it has none; prefixes of both families are an error.
func meteringFamily(r MeteringRule) (string, error) {
	fam := ""
	for _, p := range []netip.Prefix{r.RemoteIPPrefix, r.SourceIPPrefix, r.DestinationIPPrefix} {
		if !p.IsValid() {
			continue
		}
		f := "ip"
		if p.Addr().Is6() {
			f = "ip6"
		}
		if fam != "" && fam != f {
			return "", fmt.Errorf("rule mixes IPv4 and IPv6 prefixes")
		}
		fam = f
	}
	return fam, nil
}

// meteringMatch renders the nftables match of one rule on the gateway leg gw.
func meteringMatch(r MeteringRule, gw string) string {
	fam, _ := meteringFamily(r)
	m := []string{fmt.Sprintf("iifname %q", gw)}
	remote := "saddr"
	if r.Direction == Egress {
		m[0] = fmt.Sprintf("oifname %q", gw)
		remote = "daddr"
	}
	for _, sel := range []struct {
		p   netip.Prefix
		dir string
	}{{r.RemoteIPPrefix, remote}, {r.SourceIPPrefix, "saddr"}, {r.DestinationIPPrefix, "daddr"}} {
		if sel.p.IsValid() {
			m = append(m, fmt.Sprintf("%s %s %s", fam, sel.dir, sel.p.Masked()))
		}
	}
	return strings.Join(m, " ")
}

func meteringCounter(labelID string) string { return "l_" + shortID(labelID) }

// nftCounter is a named counter as `nft -j list table` shows it.
type nftCounter struct {
	Name    string `json:"name"`
	Comment string `json:"comment"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// meteringTable renders the router's metering table: a named counter per
// label (its comment names router and label, so counters can be read back
// without the State) and the chains of meteringChains. carry holds the
// values to start the counters at. The fp_ counter's name is a digest of
// everything but the values, so an unchanged table is recognised by one
// listing.
func (a *Agent) meteringTable(r *Router, carry map[string]nftCounter) (script, fingerprint string) {
	t := a.n.tableMetering()
	chains := meteringChains(r)
	digest := []string{r.ID, chains}
	var counters strings.Builder
	for _, l := range r.MeteringLabels {
		name := meteringCounter(l.ID)
		fmt.Fprintf(&counters, "\tcounter %s {\n\t\tcomment %q\n\t\tpackets %d bytes %d\n\t}\n",
			name, r.ID+" "+l.ID, carry[name].Packets, carry[name].Bytes)
		digest = append(digest, l.ID)
	}
	fingerprint = "fp_" + shortID(digest...)
	script = fmt.Sprintf("table inet %s\ndelete table inet %s\ntable inet %s {\n\tcounter %s {\n\t}\n%s%s}\n",
		t, t, t, fingerprint, counters.String(), chains)
	return script, fingerprint
}

// meteringChains renders one chain per label, excluded rules first, each
// counting rule ending in return so a packet counts once per label. They
// hook forward after the router's own filter, so dropped traffic is not
// counted.
func meteringChains(r *Router) string {
	gw := routerInnerGw(r.ID)
	var b strings.Builder
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter + 10; policy accept;\n")
	for _, l := range r.MeteringLabels {
		fmt.Fprintf(&b, "\t\tjump label_%s\n", shortID(l.ID))
	}
	b.WriteString("\t}\n")
	for _, l := range r.MeteringLabels {
		fmt.Fprintf(&b, "\tchain label_%s {\n", shortID(l.ID))
		for _, excluded := range []bool{true, false} {
			for _, rule := range l.Rules {
				if rule.Excluded != excluded {
					continue
				}
				verdict := fmt.Sprintf("counter name %q return", meteringCounter(l.ID))
				if excluded {
					verdict = "return"
				}
				fmt.Fprintf(&b, "\t\t%s %s\n", meteringMatch(rule, gw), verdict)
			}
		}
		b.WriteString("\t}\n")
	}
	return b.String()
}

// applyMetering converges the router's metering table. Counting goes on
// through changes: the table is only replaced when its rules change, and
// then with every label's counter carried over (what the router forwards
// between the reading and the replacement, a few milliseconds, is lost).
func (a *Agent) applyMetering(ctx context.Context, rn ns, r *Router) error {
	t := a.n.tableMetering()
	if r.Gateway == nil || len(r.MeteringLabels) == 0 {
		// Neutron meters the gateway only: without one there is nothing
		// to count.
		if a.unmetered[rn.name] {
			return nil
		}
		if _, err := rn.exec(ctx, []byte(fmt.Sprintf("table inet %s\ndelete table inet %s\n", t, t)), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("remove metering table: %w", err)
		}
		a.unmetered[rn.name] = true
		return nil
	}
	delete(a.unmetered, rn.name)
	have, err := readCounters(ctx, rn, t)
	if err != nil {
		return err
	}
	script, fp := a.meteringTable(r, have)
	if _, ok := have[fp]; ok {
		return nil
	}
	if _, err := rn.exec(ctx, []byte(script), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("load metering table: %w", err)
	}
	return nil
}

// readCounters lists the named counters of an inet table in a namespace;
// a missing table has none.
func readCounters(ctx context.Context, in ns, table string) (map[string]nftCounter, error) {
	out, err := in.exec(ctx, nil, "nft", "-j", "list", "table", "inet", table)
	if err != nil {
		if isNotFound(err) {
			return map[string]nftCounter{}, nil
		}
		return nil, fmt.Errorf("list %s in %s: %w", table, in.name, err)
	}
	var doc struct {
		Nftables []struct {
			Counter *nftCounter `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("parse %s in %s: %w", table, in.name, err)
	}
	cs := map[string]nftCounter{}
	for _, e := range doc.Nftables {
		if e.Counter != nil {
			cs[e.Counter.Name] = *e.Counter
		}
	}
	return cs, nil
}

// MeteringCounters reads every metering counter on the host: per router
// and label, the packets and bytes counted so far. It reads the kernel's
// counters (not the last State), so it works right after a restart; an
// operator sees the same with `ip netns exec <prefix>-r-… nft list table
// inet <prefix>_metering`.
func (a *Agent) MeteringCounters(ctx context.Context) ([]MeteringCount, error) {
	nss, err := listNetns(ctx, a.cfg.Runner)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []MeteringCount
	for _, name := range nss {
		if kind, ok := a.n.ownsNS(name); !ok || kind != 'r' {
			continue
		}
		cs, err := readCounters(ctx, ns{r: a.cfg.Runner, name: name}, a.n.tableMetering())
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if router, label, ok := strings.Cut(c.Comment, " "); ok {
				out = append(out, MeteringCount{RouterID: router, LabelID: label, Packets: c.Packets, Bytes: c.Bytes})
			}
		}
	}
	return out, nil
}
