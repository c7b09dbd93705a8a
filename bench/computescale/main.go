// Command computescale holds the compute benchmarks (docs/performance.md,
// "Compute"; run by scripts/bench-compute.sh). -mode boot times real
// guests on a running `nimbus up` (see runBoot). -mode scale, the
// default, measures the control plane at scale without guests: it runs
// `nimbus serve` with the identity, image, network and compute roles
// (compute API and scheduler) on SQLite, free loopback ports and no agents, registers -hosts fake compute hosts on
// the cloud's bus (package fakeagent: each reports capacity and beats
// like a real agent, and answers commands at once), then boots -servers
// servers through the API with gophercloud and prints one JSON line:
//
//   - boots per second from the first POST /servers to the last server
//     ACTIVE (the server's own launched_at), and the POST /servers
//     latency and POST → ACTIVE latency percentiles;
//   - GET /servers/detail latency at that many servers: the default page
//     (Nimbus, like Nova, caps a page at osapi_max_limit = 1000), with
//     limit=1000, and the whole list following the next links;
//   - VmRSS of the nimbus process idle with the hosts registered, after
//     the boots, and its peak (VmHWM).
//
// Servers are created with networks "none" (microversion 2.37): the fake
// agent creates no ports (port creation is the agent's job), so the
// networking service is out of the measurement either way.
//
// The fake agents run in this process, not in nimbus, so their memory and
// CPU are not counted against the control plane; the embedded NATS server
// (with one durable consumer per host) is in the nimbus process and is,
// unless -own-nats moves it here (needed beyond ~1,000 hosts).
// Everything stays on 127.0.0.1; the nimbus process is stopped and its
// data dir removed at the end.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/hypervisors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/quotasets"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/pagination"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

type options struct {
	nimbus      string
	hosts       int
	servers     int
	concurrency int
	flavor      string
	heartbeat   time.Duration
	detailCalls int
	cpuProfile  string
	profileSecs int
	keep        bool
	ownNATS     bool
	logFile     string
}

func main() {
	var o options
	var b bootOptions
	mode := flag.String("mode", "scale", "scale: fake hosts and many servers on `nimbus serve`; boot: real guests on a running `nimbus up`")
	flag.StringVar(&o.nimbus, "nimbus", "bin/nimbus", "scale: nimbus binary to run as `nimbus serve`")
	flag.IntVar(&o.hosts, "hosts", 1000, "scale: fake compute hosts")
	flag.IntVar(&o.servers, "servers", 10000, "scale: servers to boot")
	flag.IntVar(&o.concurrency, "concurrency", 32, "scale: concurrent POST /servers clients")
	flag.StringVar(&o.flavor, "flavor", "42", "scale: flavor of every server (42 is m1.nano)")
	flag.DurationVar(&o.heartbeat, "heartbeat", 10*time.Second, "scale: fake hosts' heartbeat interval (Nova's report_interval is 10 s)")
	flag.IntVar(&o.detailCalls, "detail-calls", 20, "scale: GET /servers/detail calls per variant")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "scale: write a CPU profile of nimbus taken during the boots (net/http/pprof) to this file")
	flag.IntVar(&o.profileSecs, "profile-seconds", 20, "scale: length of that profile")
	flag.BoolVar(&o.keep, "keep", false, "scale: keep nimbus's data dir")
	flag.StringVar(&o.logFile, "log", "", "scale: nimbus's log (default: in its data dir, removed at the end)")
	flag.BoolVar(&o.ownNATS, "own-nats", false, "scale: run the bus in this process (NIMBUS_NATS) with no cap on consumers per stream, "+
		"instead of nimbus's embedded one, whose nats-server default caps a stream at 1,000 consumers (one per compute host)")
	flag.StringVar(&b.authURL, "auth-url", "", "boot: identity v3 URL")
	passwordFile := flag.String("password-file", "", "boot: file holding the admin password")
	flag.StringVar(&b.region, "region", "RegionOne", "boot: region")
	flag.IntVar(&b.n, "n", 5, "boot: servers to boot, one after another")
	flag.StringVar(&b.image, "image", "nimbus-guest", "boot: image name or id")
	flag.StringVar(&b.flavor, "boot-flavor", "1", "boot: flavor (1 is m1.tiny, as in the Nova reference)")
	flag.StringVar(&b.network, "network", "private", "boot: network name")
	flag.StringVar(&b.dnsmasqGlob, "dnsmasq-log", "", "boot: glob of the network agent's dnsmasq logs (DATA/dataplane/dhcp/*/dnsmasq.log)")
	flag.Int64Var(&b.started, "started-ns", 0, "boot: when nimbus was exec'd (Unix ns), to time the cold start; 0 skips it")
	flag.DurationVar(&b.timeout, "timeout", 3*time.Minute, "boot: per server, to ACTIVE and to the lease")
	flag.DurationVar(&b.poll, "poll", 50*time.Millisecond, "boot: GET /servers/{id} interval while waiting for ACTIVE")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	var err error
	switch *mode {
	case "scale":
		err = run(context.Background(), o)
	case "boot":
		var pw []byte
		if pw, err = os.ReadFile(*passwordFile); err == nil {
			b.password = strings.TrimSpace(string(pw))
			err = runBoot(context.Background(), b)
		}
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "computescale:", err)
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "computescale: "+format+"\n", args...)
}

// controller is the `nimbus serve` process under test.
type controller struct {
	cmd      *exec.Cmd
	dir      string
	identity string
	nats     string
	debug    string
	password string
	// natsServer is the bus of -own-nats, nil when nimbus embeds it.
	natsServer *server.Server
}

// startNATS runs a JetStream server as an operator of a large cloud
// would (its own NATS, not the one nimbus embeds), with the per-stream
// consumer cap lifted: every compute host has a durable consumer on the
// one work-queue stream, so nats-server's default of 1,000 consumers per
// stream is a limit on hosts.
func startNATS(port int, dir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true,
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1}})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats server: not ready after 10 s")
	}
	return ns, nil
}

// freePorts reserves n loopback ports and releases them for nimbus. A
// port could be taken by someone else in between; then nimbus fails to
// start and says so, which is better than meeting another engineer's cloud
// on a fixed port.
func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// startController runs `nimbus serve` with the control-plane roles the
// benchmark exercises. The ports are chosen here, not by nimbus (port 0),
// because `nimbus serve` does not print its bus URL.
func startController(ctx context.Context, bin, logFile string, ownNATS bool) (*controller, error) {
	dir, err := os.MkdirTemp("", "computescale.")
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	p, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	c := &controller{dir: dir, identity: fmt.Sprintf("http://127.0.0.1:%d/v3", p[0]), nats: fmt.Sprintf("nats://127.0.0.1:%d", p[5]),
		debug: fmt.Sprintf("127.0.0.1:%d", p[6])}
	if logFile == "" {
		logFile = filepath.Join(dir, "nimbus.log")
	}
	logf, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, "serve", "--roles=identity,image,network,compute", "--data-dir", filepath.Join(dir, "data"))
	c.cmd.Env = append(os.Environ(),
		"NIMBUS_IDENTITY_PORT="+strconv.Itoa(p[0]), "NIMBUS_IMAGE_PORT="+strconv.Itoa(p[1]), "NIMBUS_NETWORK_PORT="+strconv.Itoa(p[2]),
		"NIMBUS_COMPUTE_PORT="+strconv.Itoa(p[3]), "NIMBUS_METADATA_PORT="+strconv.Itoa(p[4]), "NIMBUS_NATS_PORT="+strconv.Itoa(p[5]),
		"NIMBUS_DEBUG_ADDR="+c.debug, "NIMBUS_COMPUTE_AGENT=off", "NIMBUS_NETWORK_AGENT=off", "NIMBUS_LOG_LEVEL=warn", "NIMBUS_SEED=0")
	if ownNATS {
		ns, err := startNATS(p[5], filepath.Join(dir, "nats"))
		if err != nil {
			return nil, err
		}
		c.natsServer = ns
		c.cmd.Env = append(c.cmd.Env, "NIMBUS_NATS="+c.nats)
	}
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		pw, err := os.ReadFile(filepath.Join(dir, "data", "admin-password"))
		if err == nil {
			resp, err := http.Get(c.identity)
			if err == nil {
				resp.Body.Close()
				c.password = strings.TrimSpace(string(pw))
				return c, nil
			}
		}
		if time.Now().After(deadline) || c.cmd.ProcessState != nil {
			c.stop(false)
			return nil, fmt.Errorf("nimbus serve did not come up in 60 s (log in %s)", logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *controller) stop(keep bool) {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
	if c.natsServer != nil {
		c.natsServer.Shutdown()
	}
	if keep {
		progress("kept %s", c.dir)
		return
	}
	os.RemoveAll(c.dir)
}

// statusMiB reads a field (VmRSS, VmHWM) of /proc/PID/status in MiB.
func statusMiB(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return round(float64(kb)/1024, 1)
		}
	}
	return 0
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func round(x float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// stats summarises latencies in milliseconds (nearest-rank percentiles).
func stats(d []time.Duration) map[string]any {
	if len(d) == 0 {
		return map[string]any{"count": 0}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	pct := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		return round(float64(s[max(0, min(i, len(s)-1))])/1e6, 2)
	}
	return map[string]any{"count": len(s), "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": round(float64(s[len(s)-1])/1e6, 2)}
}

func run(ctx context.Context, o options) error {
	result := map[string]any{"mode": "compute-scale", "hosts": o.hosts, "servers": o.servers, "concurrency": o.concurrency,
		"flavor": o.flavor, "networks": "none", "own_nats": o.ownNATS, "heartbeat_s": o.heartbeat.Seconds(), "load_start": loadavg()}
	progress("starting %s serve", o.nimbus)
	ctrl, err := startController(ctx, o.nimbus, o.logFile, o.ownNATS)
	if err != nil {
		return err
	}
	defer ctrl.stop(o.keep)
	pid := ctrl.cmd.Process.Pid
	result["rss_start_mib"] = statusMiB(pid, "VmRSS")

	b, err := bus.Connect(ctx, bus.Config{URL: ctrl.nats, Name: "computescale"})
	if err != nil {
		return fmt.Errorf("connect to the bus: %w", err)
	}
	defer b.Close()
	progress("registering %d fake hosts", o.hosts)
	t0 := time.Now()
	agents, err := startAgents(ctx, b, o)
	defer func() {
		for _, a := range agents {
			_ = a.Stop()
		}
	}()
	if err != nil {
		return err
	}

	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: ctrl.identity, Username: "admin",
		Password: ctrl.password, DomainName: "Default", TenantName: "admin", AllowReauth: true})
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	// One transport for every worker, with enough idle connections that
	// the measurement reuses them instead of dialling.
	provider.HTTPClient = http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2*o.concurrency + 8}}
	cc, err := openstack.NewComputeV2(provider, gophercloud.EndpointOpts{})
	if err != nil {
		return fmt.Errorf("compute client: %w", err)
	}
	cc.Microversion = "2.37" // networks "none"
	if err := waitHosts(ctx, cc, o.hosts); err != nil {
		return err
	}
	result["hosts_up_s"] = round(time.Since(t0).Seconds(), 2)
	imageID, err := prepare(ctx, provider, cc)
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	result["rss_idle_hosts_mib"] = statusMiB(pid, "VmRSS")
	result["load_boot"] = loadavg()

	var prof chan error
	if o.cpuProfile != "" {
		prof = make(chan error, 1)
		go func() { prof <- fetchProfile(ctrl.debug, o.cpuProfile, o.profileSecs) }()
	}
	progress("booting %d servers, %d at a time", o.servers, o.concurrency)
	boot, err := bootAll(ctx, cc, imageID, o)
	if err != nil {
		return err
	}
	for k, v := range boot {
		result[k] = v
	}
	result["load_after_boot"] = loadavg()
	if prof != nil {
		if err := <-prof; err != nil {
			return err
		}
	}
	result["rss_after_boot_mib"] = statusMiB(pid, "VmRSS")

	progress("GET /servers/detail at %d servers, %d calls per variant", o.servers, o.detailCalls)
	for _, v := range []struct{ name, query string }{{"detail_default", ""}, {"detail_limit1000", "?limit=1000"}} {
		d, n, err := timeDetail(ctx, cc, v.query, o.detailCalls, false)
		if err != nil {
			return err
		}
		s := stats(d)
		s["servers_per_call"] = n
		result[v.name] = s
	}
	d, n, err := timeDetail(ctx, cc, "", max(1, o.detailCalls/4), true)
	if err != nil {
		return err
	}
	s := stats(d)
	s["servers_per_call"] = n
	result["detail_all_pages"] = s
	result["load_end"] = loadavg()
	result["rss_end_mib"] = statusMiB(pid, "VmRSS")
	result["rss_peak_mib"] = statusMiB(pid, "VmHWM")
	result["bench_process_rss_mib"] = statusMiB(os.Getpid(), "VmRSS")
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
	return nil
}

// startAgents registers the fake hosts, several at a time: each creates
// a durable consumer on the bus, which takes a round trip to the server.
func startAgents(ctx context.Context, b *bus.Bus, o options) ([]*fakeagent.Agent, error) {
	agents := make([]*fakeagent.Agent, o.hosts)
	errs := make([]error, o.hosts)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range o.hosts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			agents[i], errs[i] = fakeagent.Start(ctx, b, fakeagent.Config{Host: fmt.Sprintf("scale-%05d", i), VCPUs: 64,
				MemoryMB: 256 << 10, LocalGB: 10 << 10, Heartbeat: o.heartbeat, HypervisorType: "fake"})
		})
	}
	wg.Wait()
	started := slices.DeleteFunc(agents, func(a *fakeagent.Agent) bool { return a == nil })
	if err := errors.Join(errs...); err != nil {
		return started, fmt.Errorf("start fake hosts: %w", err)
	}
	return started, nil
}

// waitHosts waits until the compute API lists n hypervisors up, that is
// until the scheduler can place on every fake host.
func waitHosts(ctx context.Context, cc *gophercloud.ServiceClient, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		up, err := hypervisorsUp(ctx, cc)
		if err != nil {
			return err
		}
		if up >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d fake hosts up after 2 minutes", up, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// hypervisorsUp counts the hypervisors the compute API lists as up.
func hypervisorsUp(ctx context.Context, cc *gophercloud.ServiceClient) (int, error) {
	pages, err := hypervisors.List(cc, nil).AllPages(ctx)
	if err != nil {
		return 0, fmt.Errorf("list hypervisors: %w", err)
	}
	list, err := hypervisors.ExtractHypervisors(pages)
	if err != nil {
		return 0, fmt.Errorf("list hypervisors: %w", err)
	}
	up := 0
	for _, h := range list {
		if h.State == "up" {
			up++
		}
	}
	return up, nil
}

// prepare lifts the admin project's compute quotas (the run boots far
// more servers than the defaults allow) and uploads a tiny image to boot.
func prepare(ctx context.Context, provider *gophercloud.ProviderClient, cc *gophercloud.ServiceClient) (string, error) {
	ic, err := openstack.NewIdentityV3(provider, gophercloud.EndpointOpts{})
	if err != nil {
		return "", fmt.Errorf("identity client: %w", err)
	}
	pages, err := projects.List(ic, projects.ListOpts{Name: "admin"}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("find project admin: %w", err)
	}
	ps, err := projects.ExtractProjects(pages)
	if err != nil || len(ps) != 1 {
		return "", fmt.Errorf("find project admin: %d found (%v)", len(ps), err)
	}
	unlimited := -1
	if _, err := quotasets.Update(ctx, cc, ps[0].ID, quotasets.UpdateOpts{Instances: &unlimited, Cores: &unlimited, RAM: &unlimited}).Extract(); err != nil {
		return "", fmt.Errorf("lift compute quotas: %w", err)
	}
	gc, err := openstack.NewImageV2(provider, gophercloud.EndpointOpts{})
	if err != nil {
		return "", fmt.Errorf("image client: %w", err)
	}
	im, err := images.Create(ctx, gc, images.CreateOpts{Name: "computescale", DiskFormat: "raw", ContainerFormat: "bare"}).Extract()
	if err != nil {
		return "", fmt.Errorf("create image: %w", err)
	}
	if err := imagedata.Upload(ctx, gc, im.ID, strings.NewReader(strings.Repeat("x", 4096))).ExtractErr(); err != nil {
		return "", fmt.Errorf("upload image: %w", err)
	}
	return im.ID, nil
}

// bootAll creates the servers with o.concurrency workers, then waits for
// every one to leave BUILD. The end time is the latest launched_at the
// API reports, not the moment the poll noticed, so the poll interval does
// not bias the rate.
func bootAll(ctx context.Context, cc *gophercloud.ServiceClient, imageID string, o options) (map[string]any, error) {
	sent := make([]time.Time, o.servers)
	ids := make([]string, o.servers)
	post := make([]time.Duration, o.servers)
	errs := make([]error, o.servers)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range o.concurrency {
		wg.Go(func() {
			for i := range next {
				sent[i] = time.Now()
				s, err := servers.Create(ctx, cc, servers.CreateOpts{Name: fmt.Sprintf("scale-%05d", i), ImageRef: imageID,
					FlavorRef: o.flavor, Networks: "none"}, nil).Extract()
				post[i] = time.Since(sent[i])
				if err != nil {
					errs[i] = fmt.Errorf("server %d: %w", i, err)
					continue
				}
				ids[i] = s.ID
			}
		})
	}
	for i := range o.servers {
		next <- i
	}
	close(next)
	wg.Wait()
	posted := time.Since(start)
	// A failed POST is counted and shown, not fatal: a handful of errors
	// in ten thousand is itself a result, and the rest still measures.
	var failed []string
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err.Error())
		}
	}
	for _, e := range failed[:min(len(failed), 3)] {
		progress("%s", e)
	}
	created := o.servers - len(failed)
	if created == 0 {
		return nil, errors.New("create servers: every POST failed")
	}
	progress("posted %d servers in %s (%d failed); waiting for ACTIVE", o.servers, posted.Round(time.Millisecond), len(failed))
	for {
		// One page only: its marker may leave BUILD before the next
		// request, and an unknown marker is a 400, as in Nova.
		building := false
		err := servers.List(cc, servers.ListOpts{Status: "BUILD", Limit: 1}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
			empty, err := p.IsEmpty()
			building = !empty
			return false, err
		})
		if err != nil {
			return nil, fmt.Errorf("list servers in BUILD: %w", err)
		}
		if !building {
			break
		}
		if time.Since(start) > posted+10*time.Minute {
			// Counted below as not ACTIVE; the rest is still a result.
			progress("servers still in BUILD 10 minutes after the last POST")
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	pages, err := servers.List(cc, nil).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	all, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	sentByID := make(map[string]time.Time, len(ids))
	for i, id := range ids {
		if id != "" {
			sentByID[id] = sent[i]
		}
	}
	var toActive []time.Duration
	var last time.Time
	notActive := 0
	for _, s := range all {
		t0, ok := sentByID[s.ID]
		if !ok {
			continue
		}
		if s.Status != "ACTIVE" || s.LaunchedAt.IsZero() {
			notActive++
			continue
		}
		toActive = append(toActive, s.LaunchedAt.Sub(t0))
		if s.LaunchedAt.After(last) {
			last = s.LaunchedAt
		}
	}
	if len(toActive) == 0 {
		return nil, fmt.Errorf("no server ACTIVE (%d in another state)", notActive)
	}
	wall := last.Sub(start)
	return map[string]any{
		"post_errors":       len(failed),
		"post_error_sample": failed[:min(len(failed), 3)],
		"not_active":        notActive,
		"boot_wall_s":       round(wall.Seconds(), 2),
		"boots_per_s":       round(float64(len(toActive))/wall.Seconds(), 1),
		"posts_per_s":       round(float64(created)/posted.Seconds(), 1),
		"post_servers":      stats(post),
		"post_to_active":    stats(toActive),
		"servers_listed":    len(all),
	}, nil
}

// timeDetail times GET /servers/detail calls; with all set, one call is
// the whole list, following the next links as a client must. It returns
// the latencies and the servers each call returned. Bodies are read to
// EOF but not decoded, so client JSON decoding is not in the latency.
func timeDetail(ctx context.Context, cc *gophercloud.ServiceClient, query string, calls int, all bool) ([]time.Duration, int, error) {
	var out []time.Duration
	n := 0
	for range calls {
		t0 := time.Now()
		url := cc.ServiceURL("servers", "detail") + query
		n = 0
		for url != "" {
			resp, err := cc.Get(ctx, url, nil, &gophercloud.RequestOpts{KeepResponseBody: true})
			if err != nil {
				return nil, 0, fmt.Errorf("GET %s: %w", url, err)
			}
			var page struct {
				Servers []struct {
					ID string `json:"id"`
				} `json:"servers"`
				Links []struct {
					Rel  string `json:"rel"`
					Href string `json:"href"`
				} `json:"servers_links"`
			}
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return nil, 0, fmt.Errorf("GET %s: %w", url, err)
			}
			url = ""
			if all {
				if err := json.Unmarshal(data, &page); err != nil {
					return nil, 0, fmt.Errorf("GET servers/detail: %w", err)
				}
				n += len(page.Servers)
				for _, l := range page.Links {
					if l.Rel == "next" {
						url = l.Href
					}
				}
			} else {
				n = strings.Count(string(data), `"OS-EXT-STS:vm_state"`)
			}
		}
		out = append(out, time.Since(t0))
	}
	return out, n, nil
}

// fetchProfile saves a CPU profile of nimbus from its debug listener
// (NIMBUS_DEBUG_ADDR), for `go tool pprof`.
func fetchProfile(addr, file string, secs int) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	return f.Close()
}
