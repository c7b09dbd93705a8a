// Command loadgen measures a Keystone-compatible identity endpoint (Nimbus
// or the reference Keystone) with nothing but the standard library, so the
// same client judges both:
//
//	issue        repeated project-scoped password logins of one user
//	             (POST /v3/auth/tokens)
//	validate     GET /v3/auth/tokens with X-Auth-Token = an admin token and
//	             X-Subject-Token = the user's token
//	first-login  creates -users fresh users through the admin API and times
//	             each one's first login (a miss of any in-memory password
//	             verification cache, so a full KDF run), then a second one
//
// issue and validate run -concurrency workers for -duration after a
// -warmup that is not recorded, and report throughput, p50/p90/p99 latency
// and errors as text on stderr and one JSON object on stdout. Any non-2xx
// answer or transport error counts as an error, is printed (the first few)
// and makes the exit status 1.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	url         string
	user        string
	password    string
	project     string
	domain      string
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	mode        string
	timeout     time.Duration
	nocatalog   bool
	label       string
	pids        string

	adminUser     string
	adminPassword string
	adminProject  string
	role          string
	users         int
	keepUsers     bool
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:5000/v3", "identity endpoint (with or without /v3)")
	flag.StringVar(&o.user, "user", "bench", "user name for issue/validate")
	flag.StringVar(&o.password, "password", "", "the user's password")
	flag.StringVar(&o.project, "project", "bench", "project name to scope tokens to (also where first-login users get -role)")
	flag.StringVar(&o.domain, "domain", "Default", "domain name of the user and the project")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured time per test")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unrecorded load before the measurement")
	flag.IntVar(&o.concurrency, "concurrency", 1, "concurrent workers, each with its own keep-alive connection")
	flag.StringVar(&o.mode, "mode", "issue", "issue | validate | first-login")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "per-request timeout")
	flag.BoolVar(&o.nocatalog, "nocatalog", false, "ask for tokens without the catalog (?nocatalog)")
	flag.StringVar(&o.label, "label", "", "name of the target in the report (e.g. nimbus, keystone)")
	flag.StringVar(&o.pids, "pids", "", "comma-separated server PIDs whose CPU time (with their descendants') is reported")
	flag.StringVar(&o.adminUser, "admin-user", "admin", "admin user (validate: X-Auth-Token; first-login: creates users)")
	flag.StringVar(&o.adminPassword, "admin-password", os.Getenv("OS_PASSWORD"), "admin password (default $OS_PASSWORD)")
	flag.StringVar(&o.adminProject, "admin-project", "admin", "admin project name")
	flag.StringVar(&o.role, "role", "member", "role first-login users get on -project")
	flag.IntVar(&o.users, "users", 20, "first-login: how many fresh users")
	flag.BoolVar(&o.keepUsers, "keep-users", false, "first-login: do not delete the created users")
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected arguments: %v", flag.Args())
	}
	if o.concurrency < 1 {
		fatalf("-concurrency must be at least 1")
	}
	o.url = normalizeURL(o.url)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := newClient(&o)
	var err error
	switch o.mode {
	case "issue", "validate":
		err = runLoad(ctx, c, &o)
	case "first-login":
		err = runFirstLogin(ctx, c, &o)
	default:
		err = fmt.Errorf("unknown -mode %q (issue, validate or first-login)", o.mode)
	}
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(1)
}

func normalizeURL(u string) string {
	u = strings.TrimRight(u, "/")
	if !strings.HasSuffix(u, "/v3") {
		u += "/v3"
	}
	return u
}

// ---------------------------------------------------------------- client

// client is one keep-alive pool shared by all workers; it counts the TCP
// connections it dials so a report shows whether they were reused.
type client struct {
	http  *http.Client
	base  string
	dials atomic.Int64
}

func newClient(o *options) *client {
	c := &client{base: o.url}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	idle := 2*o.concurrency + 8
	tr := &http.Transport{
		Proxy: nil, // loopback only: never an HTTP(S)_PROXY from the environment
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c.dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: o.timeout,
	}
	c.http = &http.Client{Transport: tr, Timeout: o.timeout}
	return c
}

// httpError is a non-2xx answer.
type httpError struct {
	method, path string
	status       int
	body         string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.path, e.status, e.body)
}

// do sends one request, reads the whole body (so the connection can be
// reused) and returns it with the headers; a non-2xx status is an error.
func (c *client) do(ctx context.Context, method, path string, hdr map[string]string, body []byte) (http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	data, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet := strings.TrimSpace(string(data))
		if len(snippet) > 300 {
			snippet = snippet[:300] + "..."
		}
		return resp.Header, data, &httpError{method: method, path: path, status: resp.StatusCode, body: snippet}
	}
	if rerr != nil {
		return nil, nil, fmt.Errorf("%s %s: read body: %w", method, path, rerr)
	}
	return resp.Header, data, nil
}

type ref struct {
	ID     string `json:"id,omitempty"`
	Name   string `json:"name,omitempty"`
	Domain *ref   `json:"domain,omitempty"`
}

// passwordAuthBody is a project-scoped password login by names.
func passwordAuthBody(user, password, domain, project string) []byte {
	type pw struct {
		User struct {
			Name     string `json:"name"`
			Domain   ref    `json:"domain"`
			Password string `json:"password"`
		} `json:"user"`
	}
	var p pw
	p.User.Name, p.User.Domain, p.User.Password = user, ref{Name: domain}, password
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": p},
		"scope":    map[string]any{"project": ref{Name: project, Domain: &ref{Name: domain}}},
	}}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return b
}

func (o *options) tokensPath() string {
	if o.nocatalog {
		return "/auth/tokens?nocatalog"
	}
	return "/auth/tokens"
}

// login returns a token for a project-scoped password login.
func (c *client) login(ctx context.Context, o *options, user, password, project string) (string, error) {
	h, _, err := c.do(ctx, http.MethodPost, o.tokensPath(), nil, passwordAuthBody(user, password, o.domain, project))
	if err != nil {
		return "", fmt.Errorf("login as %s: %w", user, err)
	}
	tok := h.Get("X-Subject-Token")
	if tok == "" {
		return "", fmt.Errorf("login as %s: no X-Subject-Token in the answer", user)
	}
	return tok, nil
}

// ---------------------------------------------------------------- issue / validate

// result is the JSON line of an issue or validate run.
type result struct {
	Label       string  `json:"label,omitempty"`
	Mode        string  `json:"mode"`
	URL         string  `json:"url"`
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"`
	Requests    int     `json:"requests"`
	Errors      int64   `json:"errors"`
	RPS         float64 `json:"rps"`
	MeanMS      float64 `json:"mean_ms"`
	P50MS       float64 `json:"p50_ms"`
	P90MS       float64 `json:"p90_ms"`
	P99MS       float64 `json:"p99_ms"`
	MaxMS       float64 `json:"max_ms"`
	// Dials is how many TCP connections were opened during the measured
	// phase: about -concurrency with working keep-alive, one per request
	// when the server closes connections.
	Dials int64 `json:"dials"`
	// Client and server CPU seconds spent in the measured phase (the
	// load generator shares the machine's cores with the server).
	ClientCPUS    float64 `json:"client_cpu_s"`
	ServerCPUS    float64 `json:"server_cpu_s,omitempty"`
	ServerCPUMSPR float64 `json:"server_cpu_ms_per_req,omitempty"`
	Load1Start    float64 `json:"load1_start"`
	Load1End      float64 `json:"load1_end"`
	NoCatalog     bool    `json:"nocatalog,omitempty"`
	Time          string  `json:"time"`
}

type errorLog struct {
	count  atomic.Int64
	mu     sync.Mutex
	shown  int
	byKind map[string]int
}

func (e *errorLog) add(err error) {
	e.count.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byKind == nil {
		e.byKind = map[string]int{}
	}
	kind := "transport"
	var he *httpError
	if errors.As(err, &he) {
		kind = "HTTP " + strconv.Itoa(he.status)
	}
	e.byKind[kind]++
	if e.shown < 5 {
		e.shown++
		fmt.Fprintf(os.Stderr, "loadgen: ERROR: %v\n", err)
	}
}

func runLoad(ctx context.Context, c *client, o *options) error {
	if o.password == "" {
		return errors.New("-password is required")
	}
	var op func(ctx context.Context) error
	switch o.mode {
	case "issue":
		body := passwordAuthBody(o.user, o.password, o.domain, o.project)
		path := o.tokensPath()
		op = func(ctx context.Context) error {
			h, _, err := c.do(ctx, http.MethodPost, path, nil, body)
			if err == nil && h.Get("X-Subject-Token") == "" {
				err = errors.New("POST /auth/tokens: 2xx without X-Subject-Token")
			}
			return err
		}
		// One login first, so the user's first (uncached) password
		// verification is not part of the measurement.
		if _, err := c.login(ctx, o, o.user, o.password, o.project); err != nil {
			return err
		}
	case "validate":
		if o.adminPassword == "" {
			return errors.New("-admin-password (or $OS_PASSWORD) is required for -mode validate")
		}
		admin, err := c.login(ctx, o, o.adminUser, o.adminPassword, o.adminProject)
		if err != nil {
			return err
		}
		subject, err := c.login(ctx, o, o.user, o.password, o.project)
		if err != nil {
			return err
		}
		hdr := map[string]string{"X-Auth-Token": admin, "X-Subject-Token": subject}
		path := o.tokensPath()
		op = func(ctx context.Context) error {
			_, _, err := c.do(ctx, http.MethodGet, path, hdr, nil)
			return err
		}
	}

	if o.warmup > 0 {
		var werrs errorLog
		phase(ctx, o.concurrency, o.warmup, op, &werrs, false)
		if n := werrs.count.Load(); n > 0 {
			fmt.Fprintf(os.Stderr, "loadgen: %d errors during warm-up\n", n)
		}
	}

	pids := serverPIDs(o.pids)
	srv0 := cpuOfTree(pids)
	cli0 := selfCPU()
	load0 := load1()
	dials0 := c.dials.Load()
	var errs errorLog
	start := time.Now()
	lat := phase(ctx, o.concurrency, o.duration, op, &errs, true)
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	r := result{
		Label: o.label, Mode: o.mode, URL: o.url, Concurrency: o.concurrency,
		DurationS: round(elapsed.Seconds(), 3), Requests: len(lat), Errors: errs.count.Load(),
		Dials: c.dials.Load() - dials0, ClientCPUS: round(selfCPU()-cli0, 3),
		Load1Start: load0, Load1End: load1(), NoCatalog: o.nocatalog,
		Time: start.UTC().Format(time.RFC3339),
	}
	r.RPS = round(float64(len(lat))/elapsed.Seconds(), 1)
	if len(lat) > 0 {
		slices.Sort(lat)
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		r.MeanMS = ms(sum / time.Duration(len(lat)))
		r.P50MS, r.P90MS, r.P99MS = ms(pct(lat, 0.50)), ms(pct(lat, 0.90)), ms(pct(lat, 0.99))
		r.MaxMS = ms(lat[len(lat)-1])
	}
	if len(pids) > 0 {
		r.ServerCPUS = round(cpuOfTree(pids)-srv0, 3)
		if len(lat) > 0 {
			r.ServerCPUMSPR = round(r.ServerCPUS*1000/float64(len(lat)), 3)
		}
	}

	name := o.label
	if name == "" {
		name = o.url
	}
	fmt.Fprintf(os.Stderr, "%s %s c=%d: %d ok in %.1fs = %.1f req/s; latency mean %.2f p50 %.2f p90 %.2f p99 %.2f max %.2f ms; errors %d; %d connections dialed; CPU s: client %.2f",
		name, o.mode, o.concurrency, r.Requests, r.DurationS, r.RPS, r.MeanMS, r.P50MS, r.P90MS, r.P99MS, r.MaxMS, r.Errors, r.Dials, r.ClientCPUS)
	if len(pids) > 0 {
		fmt.Fprintf(os.Stderr, ", server %.2f (%.3f ms/req)", r.ServerCPUS, r.ServerCPUMSPR)
	}
	fmt.Fprintf(os.Stderr, "; load1 %.2f→%.2f\n", r.Load1Start, r.Load1End)
	emit(r)
	if r.Errors > 0 {
		errs.mu.Lock()
		fmt.Fprintf(os.Stderr, "loadgen: FAILED: %d of %d requests failed %v\n", r.Errors, int64(r.Requests)+r.Errors, errs.byKind)
		errs.mu.Unlock()
		os.Exit(1)
	}
	return nil
}

// phase runs op in n workers until d has passed and returns the latencies
// of the successful calls (when record is set). Calls that fail are counted
// in errs and not in the latencies.
func phase(ctx context.Context, n int, d time.Duration, op func(context.Context) error, errs *errorLog, record bool) []time.Duration {
	deadline := time.Now().Add(d)
	per := make([][]time.Duration, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			if record {
				lat = make([]time.Duration, 0, 1<<14)
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				err := op(ctx)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					errs.add(err)
					continue
				}
				if record {
					lat = append(lat, time.Since(t0))
				}
			}
			per[w] = lat
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range per {
		all = append(all, l...)
	}
	return all
}

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
}

// ---------------------------------------------------------------- first-login

type firstLoginResult struct {
	Label        string  `json:"label,omitempty"`
	Mode         string  `json:"mode"`
	URL          string  `json:"url"`
	Users        int     `json:"users"`
	Errors       int     `json:"errors"`
	CreateMeanMS float64 `json:"user_create_mean_ms"`
	CreateP50MS  float64 `json:"user_create_p50_ms"`
	FirstMeanMS  float64 `json:"first_login_mean_ms"`
	FirstP50MS   float64 `json:"first_login_p50_ms"`
	FirstP90MS   float64 `json:"first_login_p90_ms"`
	FirstMinMS   float64 `json:"first_login_min_ms"`
	FirstMaxMS   float64 `json:"first_login_max_ms"`
	SecondMeanMS float64 `json:"second_login_mean_ms"`
	SecondP50MS  float64 `json:"second_login_p50_ms"`
	Load1Start   float64 `json:"load1_start"`
	Load1End     float64 `json:"load1_end"`
	Time         string  `json:"time"`
}

// runFirstLogin creates fresh users with -role on -project, then logs each
// in twice, one at a time: the first login has to run the password KDF, the
// second may be served from a verification cache if the server has one.
func runFirstLogin(ctx context.Context, c *client, o *options) error {
	if o.adminPassword == "" {
		return errors.New("-admin-password (or $OS_PASSWORD) is required for -mode first-login")
	}
	if o.users < 1 {
		return errors.New("-users must be at least 1")
	}
	admin, err := c.login(ctx, o, o.adminUser, o.adminPassword, o.adminProject)
	if err != nil {
		return err
	}
	auth := map[string]string{"X-Auth-Token": admin}
	domainID, err := c.findID(ctx, auth, "domains", url.Values{"name": {o.domain}})
	if err != nil {
		return err
	}
	projectID, err := c.findID(ctx, auth, "projects", url.Values{"name": {o.project}, "domain_id": {domainID}})
	if err != nil {
		return err
	}
	roleID, err := c.findID(ctx, auth, "roles", url.Values{"name": {o.role}})
	if err != nil {
		return err
	}

	load0 := load1()
	start := time.Now()
	prefix := fmt.Sprintf("bench-fl-%d-", start.UnixNano()%1_000_000_000)
	password := "Bench-first-login-" + strconv.FormatInt(start.UnixNano(), 36)
	var ids []string
	defer func() {
		if o.keepUsers {
			return
		}
		for _, id := range ids {
			if _, _, err := c.do(context.Background(), http.MethodDelete, "/users/"+id, auth, nil); err != nil {
				fmt.Fprintf(os.Stderr, "loadgen: cleanup: %v\n", err)
			}
		}
	}()
	var create, first, second []time.Duration
	errCount := 0
	for i := range o.users {
		body, _ := json.Marshal(map[string]any{"user": map[string]any{
			"name": prefix + strconv.Itoa(i), "domain_id": domainID, "password": password, "enabled": true,
		}})
		t0 := time.Now()
		_, data, err := c.do(ctx, http.MethodPost, "/users", auth, body)
		if err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		create = append(create, time.Since(t0))
		var u struct {
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		}
		if err := json.Unmarshal(data, &u); err != nil || u.User.ID == "" {
			return fmt.Errorf("create user: no id in %q", data)
		}
		ids = append(ids, u.User.ID)
		if _, _, err := c.do(ctx, http.MethodPut, "/projects/"+projectID+"/users/"+u.User.ID+"/roles/"+roleID, auth, nil); err != nil {
			return fmt.Errorf("grant role: %w", err)
		}
	}
	for i := range o.users {
		name := prefix + strconv.Itoa(i)
		for pass, into := range []*[]time.Duration{&first, &second} {
			t0 := time.Now()
			_, err := c.login(ctx, o, name, password, o.project)
			d := time.Since(t0)
			if err != nil {
				errCount++
				fmt.Fprintf(os.Stderr, "loadgen: ERROR: login %d of %s: %v\n", pass+1, name, err)
				continue
			}
			*into = append(*into, d)
		}
	}
	r := firstLoginResult{Label: o.label, Mode: o.mode, URL: o.url, Users: o.users, Errors: errCount,
		Load1Start: load0, Load1End: load1(), Time: start.UTC().Format(time.RFC3339)}
	r.CreateMeanMS, r.CreateP50MS, _, _, _ = summary(create)
	r.FirstMeanMS, r.FirstP50MS, r.FirstP90MS, r.FirstMinMS, r.FirstMaxMS = summary(first)
	r.SecondMeanMS, r.SecondP50MS, _, _, _ = summary(second)
	name := o.label
	if name == "" {
		name = o.url
	}
	fmt.Fprintf(os.Stderr, "%s first-login, %d fresh users: user create mean %.1f p50 %.1f ms; first login mean %.1f p50 %.1f p90 %.1f (min %.1f, max %.1f) ms; second login mean %.1f p50 %.1f ms; errors %d\n",
		name, r.Users, r.CreateMeanMS, r.CreateP50MS, r.FirstMeanMS, r.FirstP50MS, r.FirstP90MS, r.FirstMinMS, r.FirstMaxMS, r.SecondMeanMS, r.SecondP50MS, r.Errors)
	emit(r)
	if errCount > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: FAILED: %d logins failed\n", errCount)
		if !o.keepUsers {
			for _, id := range ids {
				_, _, _ = c.do(context.Background(), http.MethodDelete, "/users/"+id, auth, nil)
			}
		}
		os.Exit(1)
	}
	return nil
}

// summary returns mean, p50, p90, min and max in milliseconds.
func summary(d []time.Duration) (mean, p50, p90, lo, hi float64) {
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	return ms(sum / time.Duration(len(s))), ms(pct(s, 0.5)), ms(pct(s, 0.9)), ms(s[0]), ms(s[len(s)-1])
}

// findID returns the id of the only (or first) member of a collection that
// matches the query, e.g. GET /v3/roles?name=member.
func (c *client) findID(ctx context.Context, auth map[string]string, collection string, q url.Values) (string, error) {
	_, data, err := c.do(ctx, http.MethodGet, "/"+collection+"?"+q.Encode(), auth, nil)
	if err != nil {
		return "", err
	}
	var list map[string]json.RawMessage
	if err := json.Unmarshal(data, &list); err != nil {
		return "", fmt.Errorf("GET /%s: %w", collection, err)
	}
	var items []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(list[collection], &items); err != nil {
		return "", fmt.Errorf("GET /%s: %w", collection, err)
	}
	if len(items) == 0 {
		return "", fmt.Errorf("GET /%s?%s: nothing found", collection, q.Encode())
	}
	return items[0].ID, nil
}

// ---------------------------------------------------------------- /proc

func load1() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func serverPIDs(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			fatalf("-pids: %q is not a PID", f)
		}
		out = append(out, n)
	}
	return out
}

// procStat returns a process's parent PID and CPU seconds (utime+stime)
// from /proc/PID/stat. The clock tick is assumed to be Linux's USER_HZ=100.
func procStat(pid int) (ppid int, cpu float64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return ppid, (ut + st) / 100, true
}

// cpuOfTree sums the CPU seconds of the given processes and all their
// live descendants.
func cpuOfTree(roots []int) float64 {
	if len(roots) == 0 {
		return 0
	}
	children := map[int][]int{}
	cpu := map[int]float64{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, c, ok := procStat(pid); ok {
			children[ppid] = append(children[ppid], pid)
			cpu[pid] = c
		}
	}
	total := 0.0
	seen := map[int]bool{}
	stack := slices.Clone(roots)
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		total += cpu[p]
		stack = append(stack, children[p]...)
	}
	return total
}
