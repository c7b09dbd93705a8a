package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/agents"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
)

// bootOptions configure -mode boot: real guests on an existing cloud
// (`nimbus up` with its agents, started by scripts/bench-compute.sh).
type bootOptions struct {
	authURL, password, region string
	n                         int
	image, flavor, network    string
	// dnsmasqGlob finds the DHCP servers' logs (dnsmasq --log-dhcp) of
	// the cloud's network agent.
	dnsmasqGlob string
	// started is when the cloud's process was exec'd (Unix ns), for the
	// cold start figures; 0 skips them.
	started int64
	timeout time.Duration
	poll    time.Duration
}

// runBoot boots o.n servers one after another, each deleted before the
// next, and prints one JSON line. For each it times, from just before
// POST /servers:
//
//   - ACTIVE: GET /servers/{id} polled every o.poll;
//   - the DHCP lease: the DHCPACK for the guest's MAC appearing in
//     dnsmasq's log, which is tailed every 10 ms (dnsmasq's own
//     timestamps have whole seconds only), so this figure is late by at
//     most 10 ms plus the write;
//   - the guest's "nimbus-init: eth0 lease" line in the console log API,
//     polled every 250 ms: what a user sees, later than the ACK by the
//     guest applying the address plus the poll.
//
// The first server also caches the image on the host; the others boot
// from the cache, so they are reported apart.
func runBoot(ctx context.Context, o bootOptions) error {
	result := map[string]any{"mode": "compute-boot", "servers": o.n, "image": o.image, "flavor": o.flavor, "network": o.network,
		"load_start": loadavg()}
	cc, nc, coldStart, err := waitCloud(ctx, o)
	if err != nil {
		return err
	}
	if o.image, err = imageID(ctx, cc.ProviderClient, o.region, o.image); err != nil {
		return err
	}
	for k, v := range coldStart {
		result[k] = v
	}
	netID, err := networkID(ctx, nc, o.network)
	if err != nil {
		return err
	}
	var runs []map[string]any
	var active, ack, console []time.Duration
	for i := range o.n {
		r, err := bootOne(ctx, cc, o, netID, fmt.Sprintf("bench-boot-%d", i))
		if err != nil {
			return fmt.Errorf("server %d: %w", i, err)
		}
		progress("server %d: ACTIVE %.2f s, DHCPACK %.2f s, console lease line %.2f s", i, r.active.Seconds(), r.ack.Seconds(), r.console.Seconds())
		runs = append(runs, map[string]any{"active_s": round(r.active.Seconds(), 3), "dhcpack_s": round(r.ack.Seconds(), 3),
			"console_lease_s": round(r.console.Seconds(), 3), "post_ms": round(float64(r.post)/1e6, 1), "load": loadavg()})
		if i > 0 {
			active, ack, console = append(active, r.active), append(ack, r.ack), append(console, r.console)
		}
	}
	result["runs"] = runs
	result["cached_active"] = stats(active)
	result["cached_dhcpack"] = stats(ack)
	result["cached_console_lease"] = stats(console)
	result["load_end"] = loadavg()
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
	return nil
}

// waitCloud logs in as soon as the cloud lets it and, when o.started is
// set, times the cold start as the Nova reference was timed: to the
// first server list, and to the compute host and the networking agents
// (DHCP, L3, Linux bridge) all reporting alive.
func waitCloud(ctx context.Context, o bootOptions) (cc, nc *gophercloud.ServiceClient, cold map[string]any, err error) {
	deadline := time.Now().Add(3 * time.Minute)
	since := func() float64 { return round(time.Since(time.Unix(0, o.started)).Seconds(), 3) }
	cold = map[string]any{}
	for {
		cc, nc, err = clients(ctx, o)
		if err == nil {
			_, err = servers.List(cc, nil).AllPages(ctx)
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, nil, nil, fmt.Errorf("no server list after 3 minutes: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o.started != 0 {
		cold["cold_first_server_list_s"] = since()
	}
	for {
		ok, err := agentsUp(ctx, cc, nc)
		if err != nil {
			return nil, nil, nil, err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return nil, nil, nil, errors.New("compute and networking agents not all up after 3 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o.started != 0 {
		cold["cold_agents_up_s"] = since()
	}
	return cc, nc, cold, nil
}

func clients(ctx context.Context, o bootOptions) (cc, nc *gophercloud.ServiceClient, err error) {
	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: o.authURL, Username: "admin",
		Password: o.password, DomainName: "Default", TenantName: "admin", AllowReauth: true})
	if err != nil {
		return nil, nil, fmt.Errorf("log in: %w", err)
	}
	eo := gophercloud.EndpointOpts{Region: o.region}
	if cc, err = openstack.NewComputeV2(provider, eo); err != nil {
		return nil, nil, fmt.Errorf("compute client: %w", err)
	}
	if nc, err = openstack.NewNetworkV2(provider, eo); err != nil {
		return nil, nil, fmt.Errorf("network client: %w", err)
	}
	return cc, nc, nil
}

// agentsUp reports whether a hypervisor is up and the DHCP, L3 and Linux
// bridge agents are alive: then a server can boot and get its lease.
func agentsUp(ctx context.Context, cc, nc *gophercloud.ServiceClient) (bool, error) {
	hv, err := hypervisorsUp(ctx, cc)
	if err != nil || hv == 0 {
		return false, err
	}
	pages, err := agents.List(nc, nil).AllPages(ctx)
	if err != nil {
		return false, fmt.Errorf("list network agents: %w", err)
	}
	list, err := agents.ExtractAgents(pages)
	if err != nil {
		return false, fmt.Errorf("list network agents: %w", err)
	}
	alive := map[string]bool{}
	for _, a := range list {
		alive[a.AgentType] = alive[a.AgentType] || a.Alive
	}
	return alive["DHCP agent"] && alive["L3 agent"] && alive["Linux bridge agent"], nil
}

// imageID resolves an image name to its id, as the CLI does before it
// calls POST /servers.
func imageID(ctx context.Context, provider *gophercloud.ProviderClient, region, name string) (string, error) {
	ic, err := openstack.NewImageV2(provider, gophercloud.EndpointOpts{Region: region})
	if err != nil {
		return "", fmt.Errorf("image client: %w", err)
	}
	pages, err := images.List(ic, images.ListOpts{Name: name}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("find image %s: %w", name, err)
	}
	list, err := images.ExtractImages(pages)
	if err != nil || len(list) != 1 {
		return name, nil // not a name: perhaps an id, which POST /servers will check
	}
	return list[0].ID, nil
}

func networkID(ctx context.Context, nc *gophercloud.ServiceClient, name string) (string, error) {
	pages, err := networks.List(nc, networks.ListOpts{Name: name}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("find network %s: %w", name, err)
	}
	list, err := networks.ExtractNetworks(pages)
	if err != nil || len(list) != 1 {
		return "", fmt.Errorf("find network %s: %d found (%v)", name, len(list), err)
	}
	return list[0].ID, nil
}

type bootTimes struct {
	post, active, ack, console time.Duration
}

func bootOne(ctx context.Context, cc *gophercloud.ServiceClient, o bootOptions, netID, name string) (bootTimes, error) {
	var bt bootTimes
	acks := newLogTail(o.dnsmasqGlob, "DHCPACK")
	stopTail := acks.run(10 * time.Millisecond)
	defer stopTail()
	t0 := time.Now()
	s, err := servers.Create(ctx, cc, servers.CreateOpts{Name: name, ImageRef: o.image, FlavorRef: o.flavor,
		Networks: []servers.Network{{UUID: netID}}}, nil).Extract()
	bt.post = time.Since(t0)
	if err != nil {
		return bt, fmt.Errorf("create: %w", err)
	}
	defer deleteServer(ctx, cc, s.ID)
	deadline := t0.Add(o.timeout)
	var mac string
	for {
		got, err := servers.Get(ctx, cc, s.ID).Extract()
		if err != nil {
			return bt, fmt.Errorf("get: %w", err)
		}
		if got.Status == "ACTIVE" {
			bt.active = time.Since(t0)
			mac = macOf(got.Addresses)
			break
		}
		if got.Status == "ERROR" || time.Now().After(deadline) {
			return bt, fmt.Errorf("server %s is %s (fault %+v)", s.ID, got.Status, got.Fault)
		}
		time.Sleep(o.poll)
	}
	if mac == "" {
		return bt, fmt.Errorf("server %s has no MAC address in %v", s.ID, "addresses")
	}
	for bt.ack == 0 || bt.console == 0 {
		if bt.ack == 0 {
			if at, ok := acks.find(mac); ok {
				bt.ack = at.Sub(t0)
			}
		}
		if bt.console == 0 {
			out, err := servers.ShowConsoleOutput(ctx, cc, s.ID, servers.ShowConsoleOutputOpts{Length: 50}).Extract()
			if err == nil && strings.Contains(out, "nimbus-init: eth0 lease") {
				bt.console = time.Since(t0)
			}
		}
		if time.Now().After(deadline) {
			tail, _ := servers.ShowConsoleOutput(ctx, cc, s.ID, servers.ShowConsoleOutputOpts{Length: 15}).Extract()
			return bt, fmt.Errorf("server %s: no lease after %s (DHCPACK for %s seen: %v; console line seen: %v); console ends:\n%s",
				s.ID, o.timeout, mac, bt.ack > 0, bt.console > 0, tail)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return bt, nil
}

// macOf finds the first MAC in a server's "addresses".
func macOf(addresses map[string]any) string {
	for _, v := range addresses {
		list, _ := v.([]any)
		for _, a := range list {
			m, _ := a.(map[string]any)
			if mac, ok := m["OS-EXT-IPS-MAC:mac_addr"].(string); ok && mac != "" {
				return strings.ToLower(mac)
			}
		}
	}
	return ""
}

// deleteServer deletes a server and waits until it is gone, so that the
// next boot starts on a quiet host and no guest is left behind.
func deleteServer(ctx context.Context, cc *gophercloud.ServiceClient, id string) {
	if err := servers.Delete(ctx, cc, id).ExtractErr(); err != nil {
		progress("delete %s: %v", id, err)
		return
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := servers.Get(ctx, cc, id).Extract(); gophercloud.ResponseCodeIs(err, 404) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	progress("server %s not gone 2 minutes after its delete", id)
}

// logTail follows log files matching a glob from their current end and
// keeps, with the time it first saw it, every new line that holds a
// marker.
type logTail struct {
	glob, marker string

	mu      sync.Mutex
	offsets map[string]int64 // guarded by mu; file -> bytes consumed
	lines   []seenLine       // guarded by mu
}

type seenLine struct {
	at   time.Time
	text string
}

func newLogTail(glob, marker string) *logTail {
	t := &logTail{glob: glob, marker: marker, offsets: map[string]int64{}}
	files, _ := filepath.Glob(glob)
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			t.offsets[f] = st.Size()
		}
	}
	return t
}

// run polls every interval until the returned stop is called.
func (t *logTail) run(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			t.poll()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (t *logTail) poll() {
	files, _ := filepath.Glob(t.glob)
	for _, name := range files {
		t.mu.Lock()
		off := t.offsets[name] // a file that appeared since is read from its start
		t.mu.Unlock()
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		if _, err := f.Seek(off, 0); err == nil {
			r := bufio.NewReader(f)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					break // a partial line is read again next time
				}
				off += int64(len(line))
				if strings.Contains(line, t.marker) {
					t.mu.Lock()
					t.lines = append(t.lines, seenLine{at: time.Now(), text: strings.ToLower(line)})
					t.mu.Unlock()
				}
			}
		}
		f.Close()
		t.mu.Lock()
		t.offsets[name] = off
		t.mu.Unlock()
	}
}

// find returns when the first line containing s was seen.
func (t *logTail) find(s string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.lines {
		if strings.Contains(l.text, s) {
			return l.at, true
		}
	}
	return time.Time{}, false
}
