package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

const vxlanPort = 4789

// vxlanOverhead is what VXLAN over IPv4 adds: outer IP 20 + UDP 8 + VXLAN 8
// + inner Ethernet 14.
const vxlanOverhead = 50

func (a *Agent) networkMTU(n *Network) int {
	if n.MTU > 0 {
		return n.MTU
	}
	if n.Type == NetworkVXLAN {
		return a.cfg.UnderlayMTU - vxlanOverhead
	}
	return a.cfg.UnderlayMTU
}

// bridgesPhysical reports whether the network's bridge enslaves its
// physical interface (flat and bridged-external networks do; routed and
// host-ip external networks never leave the host).
func bridgesPhysical(n *Network) bool {
	if n.External != nil && n.External.Mode != ExternalBridged {
		return false
	}
	return n.Type == NetworkFlat
}

func (a *Agent) applyNetwork(ctx context.Context, ix *index, n *Network, links map[string]*link, want map[string]bool) error {
	mtu := a.networkMTU(n)
	br := a.n.bridge(n.ID)
	want[br] = true
	if err := a.ensureBridge(ctx, br, mtu, links); err != nil {
		return err
	}
	switch {
	case n.Type == NetworkVXLAN:
		vx := a.n.vxlan(n.ID)
		want[vx] = true
		if err := a.ensureVXLAN(ctx, vx, n, links); err != nil {
			return err
		}
		if err := a.ensurePortOf(ctx, vx, br, mtu, links); err != nil {
			return err
		}
		return a.ensureFDB(ctx, vx, n.VXLANPeers)
	case n.Type == NetworkVLAN:
		vl := a.n.vlan(n.ID)
		want[vl] = true
		if err := a.ensureVLAN(ctx, vl, n, links); err != nil {
			return err
		}
		return a.ensurePortOf(ctx, vl, br, mtu, links)
	case bridgesPhysical(n):
		// The NIC is the operator's; we only set its master and state.
		// MTU stays as the operator set it.
		l, ok := links[n.PhysicalInterface]
		if !ok {
			return fmt.Errorf("physical interface %s not found", n.PhysicalInterface)
		}
		if l.Master != br {
			if _, err := a.host.ip(ctx, "link", "set", n.PhysicalInterface, "master", br); err != nil {
				return err
			}
		}
		if !l.up() {
			if _, err := a.host.ip(ctx, "link", "set", n.PhysicalInterface, "up"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *Agent) ensureBridge(ctx context.Context, br string, mtu int, links map[string]*link) error {
	l, ok := links[br]
	if ok && l.LinkInfo.Kind != "bridge" {
		if err := a.delLink(ctx, br); err != nil {
			return err
		}
		ok = false
	}
	if !ok {
		// No STP and no forward delay: a bridge per network is a leaf.
		if _, err := a.host.ip(ctx, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0"); err != nil {
			return err
		}
		// Bridges carry no IPv6 of their own unless we give them one.
		_ = a.host.sysctl(ctx, "net.ipv6.conf."+br+".disable_ipv6", "1")
	}
	if !ok || l.MTU != mtu || !l.up() {
		if _, err := a.host.ip(ctx, "link", "set", br, "mtu", strconv.Itoa(mtu), "up"); err != nil {
			return err
		}
	}
	return nil
}

// ensurePortOf enslaves dev to br with mtu and brings it up.
func (a *Agent) ensurePortOf(ctx context.Context, dev, br string, mtu int, links map[string]*link) error {
	l := links[dev]
	if l != nil && l.Master == br && l.MTU == mtu && l.up() {
		return nil
	}
	_, err := a.host.ip(ctx, "link", "set", dev, "master", br, "mtu", strconv.Itoa(mtu), "up")
	return err
}

func (a *Agent) vxlanArgs(vx string, n *Network) []string {
	args := []string{"link", "add", vx, "type", "vxlan", "id", strconv.Itoa(n.SegmentationID)}
	if a.cfg.VTEP.IsValid() {
		args = append(args, "local", a.cfg.VTEP.String())
	}
	dev := n.PhysicalInterface
	if dev == "" {
		dev = a.cfg.UnderlayDevice
	}
	if dev != "" {
		args = append(args, "dev", dev)
	}
	// Static forwarding only: no multicast group, no learning; the service
	// programs the peers.
	return append(args, "dstport", strconv.Itoa(vxlanPort), "nolearning")
}

func (a *Agent) ensureVXLAN(ctx context.Context, vx string, n *Network, links map[string]*link) error {
	// A VNI is unique on the host (per UDP port). A device of ours left by
	// a deleted network whose VNI has been given to a new one would make
	// the creation fail, and with it every Apply, since leftovers go
	// only at the end of one: remove it first.
	for name, l := range links {
		if name != vx && a.n.ownsLink(name) && l.LinkInfo.Kind == "vxlan" && l.LinkInfo.Data.ID == n.SegmentationID {
			if err := a.delLink(ctx, name); err != nil {
				return err
			}
			delete(links, name)
		}
	}
	if l, ok := links[vx]; ok {
		d := l.LinkInfo.Data
		local := ""
		if a.cfg.VTEP.IsValid() {
			local = a.cfg.VTEP.String()
		}
		if l.LinkInfo.Kind == "vxlan" && d.ID == n.SegmentationID && d.Local == local &&
			d.Port == vxlanPort && d.Learning != nil && !*d.Learning {
			return nil
		}
		if err := a.delLink(ctx, vx); err != nil {
			return err
		}
		delete(links, vx)
	}
	_, err := a.host.ip(ctx, a.vxlanArgs(vx, n)...)
	return err
}

func (a *Agent) ensureVLAN(ctx context.Context, vl string, n *Network, links map[string]*link) error {
	if l, ok := links[vl]; ok {
		if l.LinkInfo.Kind == "vlan" && l.LinkInfo.Data.ID == n.SegmentationID && l.Link == n.PhysicalInterface {
			return nil
		}
		if err := a.delLink(ctx, vl); err != nil {
			return err
		}
		delete(links, vl)
	}
	_, err := a.host.ip(ctx, "link", "add", "link", n.PhysicalInterface, "name", vl,
		"type", "vlan", "protocol", "802.1Q", "id", strconv.Itoa(n.SegmentationID))
	return err
}

type fdbEntry struct {
	MAC string `json:"mac"`
	Dst string `json:"dst"`
}

// ensureFDB makes the all-zeros (flood) entries of vx exactly the peers:
// broadcast and unknown unicast go to every peer by head-end replication.
func (a *Agent) ensureFDB(ctx context.Context, vx string, peers []netip.Addr) error {
	out, err := a.host.bridge(ctx, "-j", "fdb", "show", "dev", vx)
	if err != nil {
		return err
	}
	var entries []fdbEntry
	if len(strings.TrimSpace(string(out))) > 0 {
		if err := json.Unmarshal(out, &entries); err != nil {
			return fmt.Errorf("parse fdb: %w", err)
		}
	}
	have := map[string]bool{}
	for _, e := range entries {
		if e.MAC == "00:00:00:00:00:00" && e.Dst != "" {
			have[e.Dst] = true
		}
	}
	wantSet := map[string]bool{}
	for _, p := range peers {
		wantSet[p.String()] = true
		if !have[p.String()] {
			if _, err := a.host.bridge(ctx, "fdb", "append", "00:00:00:00:00:00", "dev", vx, "dst", p.String()); err != nil {
				return err
			}
		}
	}
	for dst := range have {
		if !wantSet[dst] {
			if _, err := a.host.bridge(ctx, "fdb", "del", "00:00:00:00:00:00", "dev", vx, "dst", dst); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *Agent) applyPort(ctx context.Context, ix *index, p *Port, links map[string]*link, want map[string]bool) error {
	n := ix.networks[p.NetworkID]
	mtu := a.networkMTU(n)
	dev := a.n.port(p.ID)
	want[dev] = true
	br := a.n.bridge(n.ID)
	if p.Netns == "" {
		if l, ok := links[dev]; ok && l.LinkInfo.Kind != "tun" {
			if err := a.delLink(ctx, dev); err != nil {
				return err
			}
			delete(links, dev)
		}
		if _, ok := links[dev]; !ok {
			if _, err := a.host.ip(ctx, "tuntap", "add", "dev", dev, "mode", "tap"); err != nil {
				return err
			}
			delete(links, dev)
		}
		return a.ensurePortOf(ctx, dev, br, mtu, links)
	}
	inner := p.NetnsIfName
	if inner == "" {
		inner = "eth0"
	}
	if err := a.ensureVeth(ctx, dev, p.Netns, inner, mtu, links); err != nil {
		return err
	}
	guest := ns{r: a.cfg.Runner, name: p.Netns}
	if _, err := guest.ip(ctx, "link", "set", inner, "address", p.MAC.String(), "mtu", strconv.Itoa(mtu), "up"); err != nil {
		return err
	}
	return a.ensurePortOf(ctx, dev, br, mtu, links)
}

// ensureVeth makes a veth pair with dev in the host namespace and inner in
// the named namespace target, recreating it when either end is missing.
func (a *Agent) ensureVeth(ctx context.Context, dev, target, inner string, mtu int, links map[string]*link) error {
	other := ns{r: a.cfg.Runner, name: target}
	l, ok := links[dev]
	if ok {
		peer, err := other.ip(ctx, "-j", "link", "show", "dev", inner)
		if l.LinkInfo.Kind != "veth" || err != nil || len(peer) == 0 {
			if err := a.delLink(ctx, dev); err != nil {
				return err
			}
			delete(links, dev)
			ok = false
		}
	}
	if ok {
		return nil
	}
	delete(links, dev)
	_, err := a.host.ip(ctx, "link", "add", dev, "mtu", strconv.Itoa(mtu), "type", "veth",
		"peer", "name", inner, "netns", target)
	return err
}

type netnsEntry struct {
	Name string `json:"name"`
}

func listNetns(ctx context.Context, r Runner) ([]string, error) {
	out, err := r.Run(ctx, "", nil, "ip", "-j", "netns", "list")
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil
	}
	var es []netnsEntry
	if err := json.Unmarshal(out, &es); err != nil {
		return nil, fmt.Errorf("parse netns list: %w", err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name)
	}
	return names, nil
}

// ensureNetns creates a named namespace with lo up.
func (a *Agent) ensureNetns(ctx context.Context, name string) error {
	nss, err := listNetns(ctx, a.cfg.Runner)
	if err != nil {
		return err
	}
	for _, n := range nss {
		if n == name {
			return nil
		}
	}
	if _, err := a.cfg.Runner.Run(ctx, "", nil, "ip", "netns", "add", name); err != nil {
		return err
	}
	in := ns{r: a.cfg.Runner, name: name}
	if _, err := in.ip(ctx, "link", "set", "lo", "up"); err != nil {
		return err
	}
	// Before any leg exists, so every leg inherits it: the agent sets the
	// namespace's IPv6 addresses and routes itself, and an address learnt
	// from a router advertisement would be one it did not ask for.
	_, err = in.exec(ctx, nil, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.all.accept_ra=0")
	return err
}
