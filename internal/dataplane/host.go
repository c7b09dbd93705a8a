package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// link is the part of `ip -j -d link show` the agent reads.
type link struct {
	Name     string   `json:"ifname"`
	MTU      int      `json:"mtu"`
	Flags    []string `json:"flags"`
	Master   string   `json:"master"`
	Address  string   `json:"address"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			ID       int    `json:"id"`
			Local    string `json:"local"`
			Port     int    `json:"port"`
			Learning *bool  `json:"learning"`
			Protocol string `json:"protocol"`
		} `json:"info_data"`
	} `json:"linkinfo"`
	Link string `json:"link"` // lower device (vlan, vxlan dev)
}

func (l *link) up() bool {
	for _, f := range l.Flags {
		if f == "UP" {
			return true
		}
	}
	return false
}

// ns is a namespace the agent acts in: the host namespace ("" or
// Config.HostNetns) or a router/DHCP namespace. Every method shells out
// through the Runner, scoping `ip`/`bridge` with -n and other tools with
// `ip netns exec`.
type ns struct {
	r    Runner
	name string // "" = the agent's own namespace
}

func (n ns) ipArgs(tool string, args ...string) []string {
	if n.name == "" {
		return append([]string{tool}, args...)
	}
	return append([]string{tool, "-n", n.name}, args...)
}

func (n ns) ip(ctx context.Context, args ...string) ([]byte, error) {
	return n.r.Run(ctx, "", nil, n.ipArgs("ip", args...)...)
}

func (n ns) bridge(ctx context.Context, args ...string) ([]byte, error) {
	return n.r.Run(ctx, "", nil, n.ipArgs("bridge", args...)...)
}

// exec runs any other tool inside the namespace.
func (n ns) exec(ctx context.Context, stdin []byte, argv ...string) ([]byte, error) {
	return n.r.Run(ctx, n.name, stdin, argv...)
}

func (n ns) sysctl(ctx context.Context, key, value string) error {
	_, err := n.exec(ctx, nil, "sysctl", "-q", "-w", key+"="+value)
	return err
}

func (n ns) sysctlGet(ctx context.Context, key string) (string, error) {
	out, err := n.exec(ctx, nil, "sysctl", "-n", key)
	return strings.TrimSpace(string(out)), err
}

func (n ns) links(ctx context.Context) (map[string]*link, error) {
	out, err := n.ip(ctx, "-j", "-d", "link", "show")
	if err != nil {
		return nil, err
	}
	var ls []*link
	if len(out) > 0 {
		if err := json.Unmarshal(out, &ls); err != nil {
			return nil, fmt.Errorf("parse ip link: %w", err)
		}
	}
	m := make(map[string]*link, len(ls))
	for _, l := range ls {
		m[l.Name] = l
	}
	return m, nil
}

type addrInfo struct {
	Name  string `json:"ifname"`
	Addrs []struct {
		Family string `json:"family"`
		Local  string `json:"local"`
		Prefix int    `json:"prefixlen"`
		Scope  string `json:"scope"`
	} `json:"addr_info"`
}

// addrs lists the IPv4 addresses and global IPv6 addresses on dev; IPv6
// link-local addresses belong to the kernel and are left alone.
func (n ns) addrs(ctx context.Context, dev string) ([]netip.Prefix, error) {
	out, err := n.ip(ctx, "-j", "addr", "show", "dev", dev)
	if err != nil {
		return nil, err
	}
	var infos []addrInfo
	if err := json.Unmarshal(out, &infos); err != nil {
		return nil, fmt.Errorf("parse ip addr: %w", err)
	}
	var ps []netip.Prefix
	for _, i := range infos {
		for _, a := range i.Addrs {
			if a.Family != "inet" && (a.Family != "inet6" || a.Scope != "global") {
				continue
			}
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue
			}
			ps = append(ps, netip.PrefixFrom(addr, a.Prefix))
		}
	}
	return ps, nil
}

// setAddrs makes dev carry exactly want (IPv4 and global IPv6); it reports
// which addresses were newly added and which were removed.
func (n ns) setAddrs(ctx context.Context, dev string, want []netip.Prefix) (added, removed []netip.Prefix, err error) {
	have, err := n.addrs(ctx, dev)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range want {
		if !containsPrefix(have, w) {
			args := []string{"addr", "replace", w.String(), "dev", dev}
			if w.Addr().Is6() {
				// Addresses the network service assigned are unique by
				// construction; waiting out duplicate address detection
				// would only keep dnsmasq and routes off them for a second.
				args = append(args, "nodad")
			}
			if _, err := n.ip(ctx, args...); err != nil {
				return nil, nil, err
			}
			added = append(added, w)
		}
	}
	for _, h := range have {
		if !containsPrefix(want, h) {
			if _, err := n.ip(ctx, "addr", "del", h.String(), "dev", dev); err != nil {
				return nil, nil, err
			}
			removed = append(removed, h)
		}
	}
	return added, removed, nil
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

type routeInfo struct {
	Dst     string `json:"dst"`
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
	v6      bool
}

// routes lists IPv4 routes of one protocol in the main table.
func (n ns) routes(ctx context.Context, proto string) ([]routeInfo, error) {
	return n.routesOf(ctx, "-4", proto)
}

// routesOf lists the routes of one family ("-4" or "-6") and protocol in
// the main table.
func (n ns) routesOf(ctx context.Context, family, proto string) ([]routeInfo, error) {
	out, err := n.ip(ctx, "-j", family, "route", "show", "proto", proto)
	if err != nil {
		return nil, err
	}
	var rs []routeInfo
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("parse ip %s route: %w", family, err)
	}
	for i := range rs {
		rs[i].v6 = family == "-6"
	}
	return rs, nil
}

func (r routeInfo) key() string {
	dst := r.Dst
	switch {
	case dst == "default" && r.v6:
		dst = "::/0"
	case dst == "default":
		dst = "0.0.0.0/0"
	case !strings.Contains(dst, "/") && r.v6:
		dst += "/128"
	case !strings.Contains(dst, "/"):
		dst += "/32"
	}
	return dst + " " + r.Gateway + " " + r.Dev
}

func isNotFound(err error) bool {
	var ce *CommandError
	if !errors.As(err, &ce) {
		return false
	}
	s := ce.Stderr
	return strings.Contains(s, "does not exist") || strings.Contains(s, "Cannot find device") ||
		strings.Contains(s, "No such file") || strings.Contains(s, "No such process")
}
