package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
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
	// DHCPRelease is dnsmasq-utils' dhcp_release (default "dhcp_release"
	// on PATH). It frees a deleted port's lease in the running dnsmasq;
	// without it the agent restarts dnsmasq to drop the lease.
	DHCPRelease string
	Runner      Runner
	Logger      *slog.Logger
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
	// applied fingerprints the state of the last Apply or Update that
	// succeeded, so that Update can tell what changed since; zero after a
	// failure, which makes the next Update a full Apply. Guarded by mu.
	applied fingerprint

	releaseOnce sync.Once
	releasePath string // dhcp_release, "" when missing; set by releaseOnce
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
	log := cfg.Logger.With("component", "dataplane")
	if _, ok := cfg.Runner.(timedRunner); !ok {
		cfg.Runner = timedRunner{r: cfg.Runner, log: log}
	}
	return &Agent{
		cfg:       cfg,
		n:         names{cfg.Prefix},
		host:      ns{r: cfg.Runner, name: cfg.HostNetns},
		log:       log,
		metadata:  map[string]*metadataServer{},
		unmetered: map[string]bool{},
	}, nil
}

// Apply converges the host to st. It validates st first and changes nothing
// when st is invalid (ErrInvalidState). On a host error it stops and
// returns; the next Apply picks up where it left off.
func (a *Agent) Apply(ctx context.Context, st State) error {
	return a.ApplyYielding(ctx, st, nil)
}

// ErrYielded is what ApplyYielding returns when it stopped early for
// its caller's sake.
var ErrYielded = errors.New("dataplane: full pass yielded")

// ApplyYielding is Apply for a caller with something more urgent to do:
// once the guest ports' part of the pass is done (filters, port devices,
// DHCP), it asks yield before each further step (routers, external
// networks, leftovers) and, when yield says so, stops with ErrYielded.
// A pass that checks every router on the host then does not hold up a
// new port's Update; the caller runs the full pass again afterwards.
// When st's networks and routers are those the last full pass applied,
// the stopped pass counts as done for Update, since all it skipped was
// re-checking them; otherwise the next Update is a full pass.
func (a *Agent) ApplyYielding(ctx context.Context, st State, yield func() bool) error {
	return a.locked(&st, func(ix *index, fp fingerprint) error {
		err := a.applyAll(ctx, ix, yield)
		if errors.Is(err, ErrYielded) {
			if fp.base == a.applied.base {
				a.applied = fp
			} else {
				a.applied = fingerprint{}
			}
			return err
		}
		return a.record(fp, err)
	})
}

// locked validates st and, holding the agent's lock, runs a pass over it.
func (a *Agent) locked(st *State, pass func(ix *index, fp fingerprint) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ix, err := validate(st)
	if err != nil {
		return err
	}
	return pass(ix, fingerprintOf(st))
}

// Update converges the host to st like Apply, but does only the work that
// st's changes since the last successful Apply or Update call for: none
// when st is the same, and when only ports and security groups changed,
// only what a guest port depends on (host nftables tables, the port
// devices, the DHCP servers' hosts and leases); routers, namespaces and
// external networks, which do not depend on ports, are left as the last
// full pass made them. Anything else, or no successful pass yet, runs a
// full Apply. It is the network agent's path for changes it is told
// about: a new guest's port is plugged in tens of milliseconds instead of
// after every router on the host has been checked. It does not repair
// drift in what it skips; the agent's periodic Apply does.
func (a *Agent) Update(ctx context.Context, st State) error {
	return a.locked(&st, func(ix *index, fp fingerprint) error {
		switch {
		case a.applied.base == "" || fp.base != a.applied.base:
			defer a.logPass("full", time.Now())
			return a.record(fp, a.applyAll(ctx, ix, nil))
		case fp.ports == a.applied.ports:
			return nil
		}
		defer a.logPass("ports", time.Now())
		if err := a.applyPorts(ctx, ix); err != nil {
			// Something the last full pass made is gone (a bridge, a
			// DHCP namespace): a full pass now, not at the next resync.
			a.log.Warn("incremental pass failed; running a full one", "err", err)
			return a.record(fp, a.applyAll(ctx, ix, nil))
		}
		return a.record(fp, nil)
	})
}

// logPass logs (at debug level) how long an Update's pass took.
func (a *Agent) logPass(kind string, start time.Time) {
	a.log.Debug("update pass", "kind", kind, "duration_ms", time.Since(start).Milliseconds())
}

// record remembers what a pass applied, or forgets it when the pass
// failed: the host is then somewhere between two states.
func (a *Agent) record(fp fingerprint, err error) error {
	if err != nil {
		a.applied = fingerprint{}
		return err
	}
	a.applied = fp
	return nil
}

// fingerprint tells two states apart: base covers what routers,
// namespaces and external networks are made from, ports the guest ports
// and the security groups that filter them.
type fingerprint struct{ base, ports string }

func fingerprintOf(st *State) fingerprint {
	// The JSON of the state is canonical (fields in declaration order,
	// slices in order) and covers every field that Apply reads. An
	// encoding error cannot happen for these types; an empty fingerprint
	// would only make the next Update a full Apply.
	base, _ := json.Marshal(State{Networks: st.Networks, Routers: st.Routers})
	ports, _ := json.Marshal(State{Ports: st.Ports, SecurityGroups: st.SecurityGroups})
	return fingerprint{base: string(base), ports: string(ports)}
}

// applyAll is a full pass over the validated state. After the guest
// ports' part it stops with ErrYielded when yield (if set) says so.
func (a *Agent) applyAll(ctx context.Context, ix *index, yield func() bool) error {
	yielding := func() bool { return yield != nil && yield() }
	st := ix.st
	if err := os.MkdirAll(filepath.Join(a.cfg.StateDir), 0o750); err != nil {
		return fmt.Errorf("dataplane state dir: %w", err)
	}
	links, err := a.checkedLinks(ctx, ix)
	if err != nil {
		return err
	}
	for _, n := range st.Networks {
		if n.External != nil && n.External.Mode == ExternalBridged && a.cfg.Cloud != CloudNone {
			a.log.Warn("bridged external network on a public-cloud VM: the VPC drops the router's and floating IPs' own MAC addresses; use routed or host-ip",
				"network", n.ID, "cloud", a.cfg.Cloud)
		}
	}
	want := map[string]bool{} // owned host links that should exist
	if err := a.applyGuestPorts(ctx, ix, links, want); err != nil {
		return err
	}
	for i := range st.Networks {
		if err := a.applyNetwork(ctx, ix, &st.Networks[i], links, want); err != nil {
			return fmt.Errorf("network %s: %w", st.Networks[i].ID, err)
		}
	}
	if err := a.plugGuestPorts(ctx, ix, links, want); err != nil {
		return err
	}
	wantNS := map[string]bool{}
	// DHCP before routers: it is what a new guest waits for next.
	for i := range st.Networks {
		if err := a.applyDHCP(ctx, ix, &st.Networks[i], links, want, wantNS); err != nil {
			return fmt.Errorf("dhcp for network %s: %w", st.Networks[i].ID, err)
		}
	}
	for i := range st.Routers {
		if yielding() {
			return ErrYielded
		}
		if err := a.applyRouter(ctx, ix, &st.Routers[i], links, want, wantNS); err != nil {
			return fmt.Errorf("router %s: %w", st.Routers[i].ID, err)
		}
	}
	if yielding() {
		return ErrYielded
	}
	if err := a.applyExternal(ctx, ix); err != nil {
		return fmt.Errorf("external networks: %w", err)
	}
	// Leftovers wait for the full pass the caller runs after a yield.
	if yielding() {
		return ErrYielded
	}
	if err := a.collect(ctx, want, wantNS); err != nil {
		return fmt.Errorf("remove leftovers: %w", err)
	}
	return nil
}

// applyGuestPorts removes the devices of ports st no longer has, then
// replaces the host's nftables tables. Filtering is in place before a
// port is plugged, and a port leaves before its rules do: no moment with
// an unfiltered guest. It marks the ports' devices wanted.
func (a *Agent) applyGuestPorts(ctx context.Context, ix *index, links map[string]*link, want map[string]bool) error {
	for _, p := range ix.st.Ports {
		want[a.n.port(p.ID)] = true
	}
	if err := a.unplugPorts(ctx, links, want); err != nil {
		return fmt.Errorf("remove ports: %w", err)
	}
	if err := a.applyHostTables(ctx, ix); err != nil {
		return fmt.Errorf("host nftables: %w", err)
	}
	return nil
}

// checkedLinks starts a pass: the host's links, and the host checked for
// what the state needs.
func (a *Agent) checkedLinks(ctx context.Context, ix *index) (map[string]*link, error) {
	links, err := a.host.links(ctx)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return links, a.checkHost(ctx, ix)
}

// plugGuestPorts makes every port's device, on its network's bridge.
func (a *Agent) plugGuestPorts(ctx context.Context, ix *index, links map[string]*link, want map[string]bool) error {
	for i := range ix.st.Ports {
		if err := a.applyPort(ctx, ix, &ix.st.Ports[i], links, want); err != nil {
			return fmt.Errorf("port %s: %w", ix.st.Ports[i].ID, err)
		}
	}
	return nil
}

// applyPorts is Update's pass for a state whose networks and routers are
// those of the last full pass: guest ports, their filters and DHCP.
func (a *Agent) applyPorts(ctx context.Context, ix *index) error {
	st := ix.st
	links, err := a.checkedLinks(ctx, ix)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	if err := a.applyGuestPorts(ctx, ix, links, want); err != nil {
		return err
	}
	if err := a.plugGuestPorts(ctx, ix, links, want); err != nil {
		return err
	}
	for i := range st.Networks {
		n := &st.Networks[i]
		if subs := dhcpSubnets(n); len(subs) > 0 {
			if err := a.serveDHCP(ctx, ix, n, subs); err != nil {
				return fmt.Errorf("dhcp for network %s: %w", n.ID, err)
			}
		}
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
