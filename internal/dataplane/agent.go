package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
)

// Config is how one host's agent is set up; the network service sends the
// State, the operator sets the Config.
type Config struct {
	// Prefix starts every name the agent owns (links, namespaces, tables):
	// 1-4 lowercase characters, default DefaultPrefix. Two agents on one
	// host (a developer's `nimbus up` and a test run) need two prefixes.
	Prefix string
	// HostNetns is the namespace the agent treats as "the host"; empty for
	// the agent's own namespace. Tests set it to a namespace they built.
	HostNetns string
	// VTEP is this host's VXLAN tunnel endpoint address.
	VTEP netip.Addr
	// UnderlayDevice carries VXLAN (optional) and UnderlayMTU is its MTU
	// (default 1500); VXLAN networks get UnderlayMTU-50.
	UnderlayDevice string
	UnderlayMTU    int
	// MetadataPort is where router namespaces redirect guests'
	// 169.254.169.254:80 (default 9697). When MetadataHandler is set, the
	// agent serves it there inside every router namespace, with the
	// guest's address in X-Forwarded-For and the router in
	// X-Nimbus-Router-ID; the compute service provides the handler.
	MetadataPort    int
	MetadataHandler http.Handler
	// StateDir holds DHCP server files and the agent's records of what it
	// added to interfaces it does not own (proxy ARP entries).
	StateDir string
	// Cloud is the public cloud the host runs in (DetectPublicCloud); Apply
	// warns about bridged external networks there.
	Cloud PublicCloud
	// DNSMasq is the dnsmasq binary (default "dnsmasq").
	DNSMasq string
	Runner  Runner
	Logger  *slog.Logger
}

// Agent reconciles one host. It is safe for concurrent use; Applies are
// serialised.
type Agent struct {
	cfg  Config
	n    names
	host ns
	log  *slog.Logger

	mu       sync.Mutex                 // serialises Apply and Close
	metadata map[string]*metadataServer // router ns → server; guarded by mu
	// unmetered: router namespaces whose metering table this agent has
	// removed, so Apply need not remove it again; guarded by mu.
	unmetered map[string]bool
}

// New checks cfg and returns an agent. It touches nothing on the host.
func New(cfg Config) (*Agent, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if err := checkPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.UnderlayMTU == 0 {
		cfg.UnderlayMTU = 1500
	}
	if cfg.MetadataPort == 0 {
		cfg.MetadataPort = 9697
	}
	if cfg.DNSMasq == "" {
		cfg.DNSMasq = "dnsmasq"
	}
	if cfg.Runner == nil {
		cfg.Runner = ExecRunner{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StateDir == "" {
		return nil, errors.New("dataplane: StateDir is required")
	}
	return &Agent{
		cfg:       cfg,
		n:         names{cfg.Prefix},
		host:      ns{r: cfg.Runner, name: cfg.HostNetns},
		log:       cfg.Logger.With("component", "dataplane"),
		metadata:  map[string]*metadataServer{},
		unmetered: map[string]bool{},
	}, nil
}

// Apply converges the host to st. It validates st first and changes nothing
// when st is invalid (ErrInvalidState). On a host error it stops and
// returns; the next Apply picks up where it left off.
func (a *Agent) Apply(ctx context.Context, st State) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ix, err := validate(&st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(a.cfg.StateDir), 0o750); err != nil {
		return fmt.Errorf("dataplane state dir: %w", err)
	}
	links, err := a.host.links(ctx)
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	if err := a.checkHost(ctx, ix); err != nil {
		return err
	}
	for _, n := range st.Networks {
		if n.External != nil && n.External.Mode == ExternalBridged && a.cfg.Cloud != CloudNone {
			a.log.Warn("bridged external network on a public-cloud VM: the VPC drops the router's and floating IPs' own MAC addresses; use routed or host-ip",
				"network", n.ID, "cloud", a.cfg.Cloud)
		}
	}
	want := map[string]bool{} // owned host links that should exist
	for _, p := range st.Ports {
		want[a.n.port(p.ID)] = true
	}
	// Filtering is in place before a port is plugged, and a port leaves
	// before its rules do: no moment with an unfiltered guest.
	if err := a.unplugPorts(ctx, links, want); err != nil {
		return fmt.Errorf("remove ports: %w", err)
	}
	if err := a.applyHostTables(ctx, ix); err != nil {
		return fmt.Errorf("host nftables: %w", err)
	}
	for i := range st.Networks {
		if err := a.applyNetwork(ctx, ix, &st.Networks[i], links, want); err != nil {
			return fmt.Errorf("network %s: %w", st.Networks[i].ID, err)
		}
	}
	for i := range st.Ports {
		if err := a.applyPort(ctx, ix, &st.Ports[i], links, want); err != nil {
			return fmt.Errorf("port %s: %w", st.Ports[i].ID, err)
		}
	}
	wantNS := map[string]bool{}
	for i := range st.Routers {
		if err := a.applyRouter(ctx, ix, &st.Routers[i], links, want, wantNS); err != nil {
			return fmt.Errorf("router %s: %w", st.Routers[i].ID, err)
		}
	}
	for i := range st.Networks {
		if err := a.applyDHCP(ctx, ix, &st.Networks[i], links, want, wantNS); err != nil {
			return fmt.Errorf("dhcp for network %s: %w", st.Networks[i].ID, err)
		}
	}
	if err := a.applyExternal(ctx, ix); err != nil {
		return fmt.Errorf("external networks: %w", err)
	}
	if err := a.collect(ctx, want, wantNS); err != nil {
		return fmt.Errorf("remove leftovers: %w", err)
	}
	return nil
}

// Close stops the agent's in-namespace servers. It leaves the host's
// networking as it is: a restarted agent reconciles it.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.metadata {
		s.close()
		delete(a.metadata, k)
	}
	return nil
}

// checkHost fails with a message naming the missing capability.
func (a *Agent) checkHost(ctx context.Context, ix *index) error {
	needBrNF := false
	for _, p := range ix.st.Ports {
		if p.PortSecurity {
			needBrNF = true
		}
	}
	if !needBrNF {
		return nil
	}
	v, err := a.host.sysctlGet(ctx, "net.bridge.bridge-nf-call-iptables")
	if err != nil {
		// Built as a module on most distributions; load it like Neutron's
		// linuxbridge agent does, then look again.
		_, _ = a.cfg.Runner.Run(ctx, "", nil, "modprobe", "br_netfilter")
		v, err = a.host.sysctlGet(ctx, "net.bridge.bridge-nf-call-iptables")
	}
	if err != nil {
		return fmt.Errorf("security groups need br_netfilter (net.bridge.bridge-nf-call-iptables): %w", err)
	}
	if v != "1" {
		// Like Neutron's linuxbridge agent: bridged traffic must reach
		// the inet hooks for stateful filtering.
		if err := a.host.sysctl(ctx, "net.bridge.bridge-nf-call-iptables", "1"); err != nil {
			return fmt.Errorf("enable bridge-nf-call-iptables: %w", err)
		}
		if err := a.host.sysctl(ctx, "net.bridge.bridge-nf-call-ip6tables", "1"); err != nil {
			return fmt.Errorf("enable bridge-nf-call-ip6tables: %w", err)
		}
	}
	return nil
}

// collect removes owned links, namespaces and records that st no longer has.
func (a *Agent) collect(ctx context.Context, want, wantNS map[string]bool) error {
	// Refresh: applying may have created links the initial listing lacks.
	links, err := a.host.links(ctx)
	if err != nil {
		return err
	}
	// Bridges last, so their ports are gone first (not required by the
	// kernel, but it keeps flat NICs released in a predictable order).
	var bridges []string
	for name, l := range links {
		if !a.n.ownsLink(name) || want[name] {
			continue
		}
		if l.LinkInfo.Kind == "bridge" {
			bridges = append(bridges, name)
			continue
		}
		if err := a.delLink(ctx, name); err != nil {
			return err
		}
	}
	for _, b := range bridges {
		if err := a.delLink(ctx, b); err != nil {
			return err
		}
	}
	nss, err := listNetns(ctx, a.cfg.Runner)
	if err != nil {
		return err
	}
	for _, name := range nss {
		if _, ok := a.n.ownsNS(name); !ok || wantNS[name] {
			continue
		}
		// A DHCP namespace has its DHCP server, a router its RA daemon.
		for _, dir := range []string{a.dhcpDir(name), a.raDir(name)} {
			if err := stopDNSMasq(dir); err != nil {
				return fmt.Errorf("namespace %s: %w", name, err)
			}
		}
		delete(a.unmetered, name)
		if s := a.metadata[name]; s != nil {
			s.close()
			delete(a.metadata, name)
		}
		if _, err := a.cfg.Runner.Run(ctx, "", nil, "ip", "netns", "del", name); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// unplugPorts removes the devices of ports the state no longer has.
func (a *Agent) unplugPorts(ctx context.Context, links map[string]*link, want map[string]bool) error {
	for name := range links {
		if a.n.ownsLink(name) && name[len(a.n.prefix)] == kindPort && !want[name] {
			if err := a.delLink(ctx, name); err != nil {
				return err
			}
			delete(links, name)
		}
	}
	return nil
}

func (a *Agent) delLink(ctx context.Context, name string) error {
	if _, err := a.host.ip(ctx, "link", "del", name); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}
