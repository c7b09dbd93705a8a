// Command objbench measures an object store through the Swift v1 API
// (Nimbus's object proxy or a real Swift proxy), with the same client for
// both:
//
//	small  PUT of -objects new objects of -object-size bytes (4 KiB) at each
//	       -concurrency, then GET of the same objects at the same
//	       concurrency (each -get-passes times, 1 by default): ops/s and
//	       p50/p90/p99 latency per phase
//	large  one PUT of -large-size bytes (1 GiB) and one GET of it: MB/s
//
// Authentication is a Keystone v3 password login (-auth-url; the
// object-store endpoint comes from the catalog), a Swift v1.0 login
// (-auth-v1, as tempauth answers it), or a token and storage URL given
// (-token, -storage-url).
//
// Large bodies are streamed from and checked against a deterministic
// pattern, never held in memory. The PUT carries the pattern's MD5 as its
// ETag, so the server checks what it stored (a mismatch is 422); each GET
// body is compared byte for byte with the pattern. Small objects are
// distinct (the index is stamped in the first bytes) and each GET is
// compared with what was written.
//
// Each measurement is one JSON object on stdout; progress goes to stderr.
// With -pids, each result carries the CPU seconds the servers (those PIDs
// and all their descendants) used during it and their summed VmRSS after
// it; for the large test also the peak (VmHWM, reset before the test
// through /proc/PID/clear_refs). With -disk, each result carries the
// write requests and cache flushes that block device completed during
// it (everything on the device, not only the servers'): small-object
// PUTs with fsync are bound by flushes. Any non-2xx answer, transport error or
// wrong body counts as an error, the first few are printed, and the exit
// status is 1.
package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

type config struct {
	authURL, user, password, project, domain string
	authV1, key                              string
	token, storageURL                        string

	tests       string
	concurrency string
	objects     int
	getPasses   int
	objectSize  int
	largeSize   int64
	container   string
	policy      string
	label       string
	pids        string
	disk        string
	timeout     time.Duration
	keep        bool
}

func main() {
	var c config
	flag.StringVar(&c.authURL, "auth-url", "", "Keystone v3 URL (e.g. http://127.0.0.1:5000/v3): password login, object-store endpoint from the catalog")
	flag.StringVar(&c.authV1, "auth-v1", "", "Swift v1.0 auth URL (e.g. http://127.0.0.1:18080/auth/v1.0): X-Auth-User -user, X-Auth-Key -key")
	flag.StringVar(&c.user, "user", "admin", "user name (for -auth-v1: account:user)")
	flag.StringVar(&c.password, "password", os.Getenv("OS_PASSWORD"), "password for -auth-url (default $OS_PASSWORD)")
	flag.StringVar(&c.key, "key", "", "key for -auth-v1")
	flag.StringVar(&c.project, "project", "admin", "project to scope the token to")
	flag.StringVar(&c.domain, "domain", "Default", "domain of the user and the project")
	flag.StringVar(&c.token, "token", "", "X-Auth-Token to use as is (with -storage-url)")
	flag.StringVar(&c.storageURL, "storage-url", "", "account URL, e.g. http://127.0.0.1:8080/v1/AUTH_<project> (overrides the catalog's)")
	flag.StringVar(&c.tests, "tests", "small,large", "comma-separated: small, large")
	flag.StringVar(&c.concurrency, "concurrency", "1,16", "comma-separated concurrencies for the small test")
	flag.IntVar(&c.objects, "objects", 1000, "objects per small test (PUT, then GET each)")
	flag.IntVar(&c.getPasses, "get-passes", 1, "times the small test's GET phase reads each object (a longer GET measurement without more PUTs)")
	flag.IntVar(&c.objectSize, "object-size", 4096, "bytes per small object")
	flag.Int64Var(&c.largeSize, "large-size", 1<<30, "bytes of the large object")
	flag.StringVar(&c.container, "container", "", "container to use (default objbench-<unix time>; created if missing)")
	flag.StringVar(&c.policy, "policy", "", "storage policy of the container, when objbench creates it (X-Storage-Policy)")
	flag.StringVar(&c.label, "label", "", "name of the target in the results (e.g. nimbus, swift)")
	flag.StringVar(&c.pids, "pids", "", "comma-separated server PIDs (descendants included) for CPU and RSS")
	flag.StringVar(&c.disk, "disk", "", "block device holding the servers' data (e.g. vda): count its writes and flushes")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "per-request timeout")
	flag.BoolVar(&c.keep, "keep", false, "keep the large object (it is deleted by default)")
	flag.StringVar(&fsProbeDir, "fs-probe-dir", "", "a directory on the servers' filesystem: time creating files there with each result (fs_probe_ms; they stay there)")
	flag.Parse()
	if flag.NArg() > 0 {
		die("unexpected arguments: %v", flag.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &c); err != nil {
		die("%v", err)
	}
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "objbench: "+format+"\n", args...)
	os.Exit(1)
}

func run(ctx context.Context, c *config) error {
	concs, err := parseInts(c.concurrency)
	if err != nil {
		return fmt.Errorf("-concurrency: %w", err)
	}
	maxConc := slices.Max(concs)
	sw, err := connect(ctx, c, maxConc)
	if err != nil {
		return err
	}
	if c.container == "" {
		c.container = "objbench-" + strconv.FormatInt(time.Now().Unix(), 10)
	}
	var hdr http.Header
	if c.policy != "" {
		hdr = http.Header{"X-Storage-Policy": {c.policy}}
	}
	if _, err := sw.call(ctx, http.MethodPut, "/"+c.container, nil, hdr); err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	if c.policy != "" {
		// An existing container keeps its policy; the results must not
		// claim one that was not used.
		req, err := sw.request(ctx, http.MethodHead, "/"+c.container, nil, 0)
		if err != nil {
			return err
		}
		resp, err := sw.send(req)
		if err != nil {
			return fmt.Errorf("HEAD container: %w", err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Storage-Policy"); !strings.EqualFold(got, c.policy) {
			return fmt.Errorf("container %s has storage policy %q, not %q", c.container, got, c.policy)
		}
	}
	fmt.Fprintf(os.Stderr, "%s: %s/%s\n", c.label, sw.base, c.container)
	srv := newServerSet(c.pids)
	failed := false
	for _, t := range strings.Split(c.tests, ",") {
		switch strings.TrimSpace(t) {
		case "small":
			for _, n := range concs {
				ok, err := smallTest(ctx, sw, c, srv, n)
				if err != nil {
					return err
				}
				failed = failed || !ok
			}
		case "large":
			if err := largeTest(ctx, sw, c, srv); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown test %q (small, large)", t)
		}
	}
	if failed {
		return errors.New("some requests failed")
	}
	return nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ---------------------------------------------------------------- Swift client

// swiftClient sends requests under one account URL with one token, over a
// keep-alive pool sized for the highest concurrency. It counts the TCP
// connections it dials, so a result shows whether they were reused.
type swiftClient struct {
	http  *http.Client
	base  string
	token string
	dials atomic.Int64
}

func connect(ctx context.Context, c *config, conc int) (*swiftClient, error) {
	sw := &swiftClient{base: strings.TrimRight(c.storageURL, "/"), token: c.token}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		Proxy: nil, // loopback only: never a proxy from the environment
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			sw.dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost:   conc + 4,
		DisableCompression:    true,
		ResponseHeaderTimeout: c.timeout,
		// Large buffers keep the client's system calls few: it shares
		// the cores with the servers it measures.
		WriteBufferSize: 256 << 10,
		ReadBufferSize:  256 << 10,
	}
	sw.http = &http.Client{Transport: tr, Timeout: c.timeout}
	var err error
	switch {
	case c.token != "":
	case c.authV1 != "":
		err = sw.loginV1(ctx, c)
	case c.authURL != "":
		err = sw.loginV3(ctx, c)
	default:
		err = errors.New("give -auth-url, -auth-v1, or -token with -storage-url")
	}
	if err != nil {
		return nil, err
	}
	if sw.base == "" {
		return nil, errors.New("no storage URL (-storage-url, or an object-store endpoint in the catalog)")
	}
	return sw, nil
}

// loginV1 is Swift's v1.0 auth (tempauth, swauth): the token and the
// storage URL come back as headers.
func (sw *swiftClient) loginV1(ctx context.Context, c *config) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.authV1, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-User", c.user)
	req.Header.Set("X-Auth-Key", c.key)
	resp, err := sw.http.Do(req)
	if err != nil {
		return fmt.Errorf("v1 auth: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("v1 auth: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("v1 auth: %s", resp.Status)
	}
	sw.token = resp.Header.Get("X-Auth-Token")
	if sw.base == "" {
		sw.base = strings.TrimRight(resp.Header.Get("X-Storage-Url"), "/")
	}
	return nil
}

// loginV3 is a project-scoped Keystone password login; the account URL is
// the catalog's public object-store endpoint.
func (sw *swiftClient) loginV3(ctx context.Context, c *config) error {
	type named struct {
		Name   string `json:"name"`
		Domain *named `json:"domain,omitempty"`
	}
	var auth struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User struct {
						named
						Password string `json:"password"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope struct {
				Project named `json:"project"`
			} `json:"scope"`
		} `json:"auth"`
	}
	id := &auth.Auth.Identity
	id.Methods = []string{"password"}
	id.Password.User.named = named{Name: c.user, Domain: &named{Name: c.domain}}
	id.Password.User.Password = c.password
	auth.Auth.Scope.Project = named{Name: c.project, Domain: &named{Name: c.domain}}
	body, err := json.Marshal(&auth)
	if err != nil {
		return err
	}
	u := strings.TrimRight(c.authURL, "/")
	if !strings.HasSuffix(u, "/v3") {
		u += "/v3"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+"/auth/tokens", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := sw.http.Do(req)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("login: %s: %s", resp.Status, msg)
	}
	// encoding/json matches the lower-case keys to these fields.
	var tok struct {
		Token struct{ Catalog []catalogService }
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	sw.token = resp.Header.Get("X-Subject-Token")
	if sw.base == "" {
		sw.base = objectStoreURL(tok.Token.Catalog)
	}
	return nil
}

// catalogService is one service of a Keystone token's catalog.
type catalogService struct {
	Type      string
	Endpoints []struct{ Interface, URL string }
}

// objectStoreURL is the public object-store endpoint of a catalog, or "".
func objectStoreURL(catalog []catalogService) string {
	for _, s := range catalog {
		if s.Type != "object-store" {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Interface == "public" {
				return strings.TrimRight(e.URL, "/")
			}
		}
	}
	return ""
}

// statusError is a non-2xx answer.
type statusError struct {
	method, path, status, body string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %s: %s", e.method, e.path, e.status, e.body)
}

// request builds a request for path under the account with the token.
func (sw *swiftClient) request(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, sw.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Auth-Token", sw.token)
	if body != nil {
		req.ContentLength = size
	}
	return req, nil
}

// send does req and returns the response with a 2xx status; any other
// answer is drained, closed and returned as a *statusError.
func (sw *swiftClient) send(req *http.Request) (*http.Response, error) {
	resp, err := sw.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, &statusError{req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(msg))}
	}
	return resp, nil
}

// call sends a request with an in-memory body and returns the whole
// response body.
func (sw *swiftClient) call(ctx context.Context, method, path string, body []byte, hdr http.Header) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := sw.request(ctx, method, path, rd, int64(len(body)))
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := sw.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// ---------------------------------------------------------------- small objects

// failures keeps the count and the first few of a phase's errors.
type failures struct {
	mu    sync.Mutex // guards n and first
	n     int
	first []string
}

func (f *failures) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.first) < 5 {
		f.first = append(f.first, err.Error())
		fmt.Fprintln(os.Stderr, "objbench: error:", err)
	}
}

// smallBody is object i's content: the pattern's first size bytes with i
// stamped at the start, so that no two objects are alike.
func smallBody(p *pattern, i, size int) []byte {
	b := make([]byte, size)
	copy(b, p.block)
	var stamp [8]byte
	binary.LittleEndian.PutUint64(stamp[:], uint64(i)+1)
	copy(b, stamp[:])
	return b
}

// smallTest PUTs c.objects new objects with conc workers, then GETs them.
func smallTest(ctx context.Context, sw *swiftClient, c *config, srv *serverSet, conc int) (bool, error) {
	p := newPattern()
	prefix := fmt.Sprintf("small-c%d/", conc)
	// Warm-up, not recorded: a connection per worker and the code paths hot.
	warm := prefix + "warmup-"
	var errs failures
	fan(conc, 2*conc, func(i int) time.Duration {
		if _, err := sw.call(ctx, http.MethodPut, "/"+c.container+"/"+warm+strconv.Itoa(i), smallBody(p, i, c.objectSize), nil); err != nil {
			errs.add(err)
		}
		return 0
	})
	if errs.n > 0 {
		return false, fmt.Errorf("warm-up failed: %s", errs.first[0])
	}
	ok := true
	for _, op := range []string{http.MethodPut, http.MethodGet} {
		var errs failures
		n := c.objects
		if op == http.MethodGet {
			n *= max(1, c.getPasses)
		}
		fmt.Fprintf(os.Stderr, "%s: %s %d x %d B at c=%d\n", c.label, op, n, c.objectSize, conc)
		cpu0, dials0, self0, disk0 := srv.cpu(), sw.dials.Load(), selfCPU(), readDiskStat(c.disk)
		start := time.Now()
		lat := fan(conc, n, func(i int) time.Duration {
			i %= c.objects
			t0 := time.Now()
			path := "/" + c.container + "/" + prefix + strconv.Itoa(i)
			want := smallBody(p, i, c.objectSize)
			var err error
			if op == http.MethodPut {
				_, err = sw.call(ctx, op, path, want, nil)
			} else {
				var got []byte
				if got, err = sw.call(ctx, op, path, nil, nil); err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("GET %s: %d bytes, not the %d written", path, len(got), len(want))
				}
			}
			if err != nil {
				errs.add(err)
				return -1
			}
			return time.Since(t0)
		})
		elapsed := time.Since(start)
		done := slices.DeleteFunc(lat, func(d time.Duration) bool { return d < 0 })
		slices.Sort(done)
		res := result{
			"test": "small", "op": strings.ToLower(op), "label": c.label, "concurrency": conc,
			"objects": c.objects, "requests": n, "object_bytes": c.objectSize, "seconds": round(elapsed.Seconds(), 3),
			"ops_per_s": round(float64(len(done))/elapsed.Seconds(), 1),
			"p50_ms":    msAt(done, 0.50), "p90_ms": msAt(done, 0.90), "p99_ms": msAt(done, 0.99), "max_ms": msAt(done, 1),
			"errors": errs.n, "dials": sw.dials.Load() - dials0, "client_cpu_s": round(selfCPU()-self0, 3),
		}
		srv.describe(res, cpu0, len(done))
		disk0.describe(res, readDiskStat(c.disk), len(done))
		res.emit()
		ok = ok && errs.n == 0
	}
	return ok, nil
}

// fan runs op(0..n-1) on conc workers and returns each call's duration.
func fan(conc, n int, op func(i int) time.Duration) []time.Duration {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				lat[i] = op(i)
			}
		}()
	}
	wg.Wait()
	return lat
}

// msAt is the q-quantile (nearest rank) of sorted durations, in ms.
func msAt(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(q*float64(len(sorted))+0.999999) - 1
	k = max(0, min(k, len(sorted)-1))
	return round(sorted[k].Seconds()*1000, 3)
}

func round(x float64, places int) float64 {
	s := strconv.FormatFloat(x, 'f', places, 64)
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

// ---------------------------------------------------------------- large object

// pattern is an endless deterministic byte stream: a random 1 MiB block
// repeated, with each repetition's number in its first 8 bytes, so no two
// blocks are alike and a store that deduplicates or compresses gains
// nothing. Content at an offset is computed, never stored.
type pattern struct {
	block []byte
	stamp int64 // number of the block whose stamp is in block; -1 at first
}

const patternBlock = 1 << 20

func newPattern() *pattern {
	r := rand.New(rand.NewPCG(7, 11))
	b := make([]byte, patternBlock)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return &pattern{block: b, stamp: -1}
}

// at returns the pattern from offset off to the end of its block. The
// slice is valid until the next call.
func (p *pattern) at(off int64) []byte {
	if n := off / patternBlock; n != p.stamp {
		binary.LittleEndian.PutUint64(p.block, uint64(n))
		p.stamp = n
	}
	return p.block[off%patternBlock:]
}

// patternReader reads the first size bytes of a pattern.
type patternReader struct {
	p         *pattern
	off, size int64
}

func (r *patternReader) Read(b []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	src := r.p.at(r.off)
	if left := r.size - r.off; int64(len(src)) > left {
		src = src[:left]
	}
	n := copy(b, src)
	r.off += int64(n)
	return n, nil
}

// patternChecker compares what is written to it with the pattern.
type patternChecker struct {
	p   *pattern
	off int64
}

var errMismatch = errors.New("body differs from what was written")

func (w *patternChecker) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		want := w.p.at(w.off)
		n := min(len(want), len(b)-done)
		if !bytes.Equal(b[done:done+n], want[:n]) {
			return done, fmt.Errorf("at byte %d: %w", w.off, errMismatch)
		}
		done += n
		w.off += int64(n)
	}
	return done, nil
}

// largeTest PUTs one c.largeSize object streamed from the pattern with its
// MD5 as ETag, then GETs it and compares it with the pattern.
func largeTest(ctx context.Context, sw *swiftClient, c *config, srv *serverSet) error {
	p := newPattern()
	sum := md5.New()
	if _, err := io.Copy(sum, &patternReader{p: p, size: c.largeSize}); err != nil {
		return err
	}
	etag := hex.EncodeToString(sum.Sum(nil))
	path := "/" + c.container + "/large-" + strconv.FormatInt(c.largeSize, 10)
	if !c.keep {
		defer sw.call(context.WithoutCancel(ctx), http.MethodDelete, path, nil, nil)
	}
	for _, op := range []string{http.MethodPut, http.MethodGet} {
		srv.resetPeak()
		fmt.Fprintf(os.Stderr, "%s: %s %d MiB\n", c.label, op, c.largeSize>>20)
		cpu0, self0, disk0 := srv.cpu(), selfCPU(), readDiskStat(c.disk)
		start := time.Now()
		n, err := sw.transfer(ctx, op, path, p, c.largeSize, etag)
		elapsed := time.Since(start)
		if err != nil {
			return fmt.Errorf("large %s: %w", op, err)
		}
		res := result{
			"test": "large", "op": strings.ToLower(op), "label": c.label, "bytes": n,
			"seconds":  round(elapsed.Seconds(), 3),
			"mb_per_s": round(float64(n)/1e6/elapsed.Seconds(), 1), "mib_per_s": round(float64(n)/(1<<20)/elapsed.Seconds(), 1),
			"client_cpu_s": round(selfCPU()-self0, 3),
		}
		srv.describe(res, cpu0, 0)
		disk0.describe(res, readDiskStat(c.disk), 0)
		res.emit()
	}
	return nil
}

// diskStat is what a block device completed so far; nil without -disk
// or when its stat file cannot be read.
type diskStat struct{ writes, flushes int64 }

// readDiskStat reads /sys/class/block/DEV/stat (a disk or a partition):
// field 5 is completed writes, field 16 completed flushes (Linux 5.5+).
func readDiskStat(dev string) *diskStat {
	if dev == "" {
		return nil
	}
	b, err := os.ReadFile("/sys/class/block/" + dev + "/stat")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	if len(f) < 16 {
		return nil
	}
	w, err1 := strconv.ParseInt(f[4], 10, 64)
	fl, err2 := strconv.ParseInt(f[15], 10, 64)
	if err1 != nil || err2 != nil {
		return nil
	}
	return &diskStat{writes: w, flushes: fl}
}

// describe adds the device's writes and flushes since d to res, and per
// operation when ops > 0.
func (d *diskStat) describe(res result, now *diskStat, ops int) {
	if d == nil || now == nil {
		return
	}
	res["disk_writes"], res["disk_flushes"] = now.writes-d.writes, now.flushes-d.flushes
	if ops > 0 {
		res["disk_flushes_per_op"] = round(float64(now.flushes-d.flushes)/float64(ops), 2)
	}
}

// transfer PUTs the pattern's first size bytes with ETag etag, or GETs the
// object and checks it against the pattern; it returns the bytes moved.
func (sw *swiftClient) transfer(ctx context.Context, method, path string, p *pattern, size int64, etag string) (int64, error) {
	var body io.Reader
	if method == http.MethodPut {
		body = &patternReader{p: p, size: size}
	}
	req, err := sw.request(ctx, method, path, body, size)
	if err != nil {
		return 0, err
	}
	if method == http.MethodPut {
		req.Header.Set("ETag", etag)
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := sw.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if method == http.MethodPut {
		io.Copy(io.Discard, resp.Body)
		if got := strings.Trim(resp.Header.Get("Etag"), `"`); got != etag {
			return 0, fmt.Errorf("PUT %s: ETag %q, sent %q", path, got, etag)
		}
		return size, nil
	}
	n, err := io.CopyBuffer(&patternChecker{p: p}, resp.Body, make([]byte, 256<<10))
	if err != nil {
		return n, fmt.Errorf("GET %s: %w", path, err)
	}
	if n != size {
		return n, fmt.Errorf("GET %s: %d bytes, not %d", path, n, size)
	}
	return n, nil
}

// ---------------------------------------------------------------- results and servers

// result is one measurement, printed as a JSON line.
type result map[string]any

func (r result) emit() {
	r["load"] = loadAvg()
	r["cpu_probe_ms"], r["memory_probe_ms"] = cpuProbe()
	if fsProbeDir != "" {
		r["fs_probe_ms"] = fsProbe(fsProbeDir)
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

// cpuProbe times fixed work on one core, in ms: integer work in
// registers, and a chase through 16 MiB of memory in random order (the
// speed of the caches and memory, which other tenants of a host share).
// On this shared virtual machine the Python interpreter was once seen to
// run at half speed for an hour while the register loop did not move; a
// run's figures compare only with runs at similar probe values.
func cpuProbe() (compute, memory float64) {
	start := time.Now()
	x := uint64(88172645463325252)
	for range 50_000_000 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	runtime.KeepAlive(x) // the loop's result is used, so it stays
	compute = round(time.Since(start).Seconds()*1000, 1)
	chase := chaseTable()
	start = time.Now()
	p := uint32(0)
	for range 2_000_000 {
		p = chase[p]
	}
	runtime.KeepAlive(p)
	return compute, round(time.Since(start).Seconds()*1000, 1)
}

// fsProbeDir is where fsProbe creates its files (-fs-probe-dir).
var fsProbeDir string

// fsProbe times creating 100 directories with a 4 KiB file each in a
// new directory under dir, in ms; -1 if that failed. Measured here: on
// ext4 without a journal, for minutes after a large delete (a data dir
// or a test's temp dirs removed) every inode the filesystem allocates
// costs two to three times its usual CPU, and small PUTs slow down with
// it (the kernel avoids reusing recently freed inodes there, and checks
// each candidate it passes over). A small-PUT figure compares only with
// runs at similar fs_probe_ms. The probe's files stay (about 800 KiB per
// probe, for the caller to remove at the end): removing them would make
// the next probe, and the next test, pay for the delete.
func fsProbe(dir string) float64 {
	d, err := os.MkdirTemp(dir, "fsprobe-")
	if err != nil {
		return -1
	}
	buf := make([]byte, 4096)
	start := time.Now()
	for i := range 100 {
		sub := filepath.Join(d, strconv.Itoa(i))
		if os.Mkdir(sub, 0o700) != nil || os.WriteFile(filepath.Join(sub, "f"), buf, 0o600) != nil {
			return -1
		}
	}
	return round(time.Since(start).Seconds()*1000, 1)
}

// chaseTable is one random cycle through 4 Mi entries, built once.
//
// It lives outside the Go heap, in an anonymous mapping: as a 16 MiB live
// object in the heap it raised the garbage collector's heap goal by as
// much, so that between two collections the client's allocations ran
// through 16 MiB of pages the runtime kept handing back to the kernel and
// faulting in again. For the first seconds of the phase after the first
// probe, a 4 KiB GET at c=1 cost the client twice its CPU (a quarter of
// it clearing fresh pages), and the measured GET rate fell by a third.
// The cycle is made in place (Sattolo's shuffle), without a permutation
// to throw away.
var chaseTable = sync.OnceValue(func() []uint32 {
	const n = 4 << 20
	mem, err := syscall.Mmap(-1, 0, n*4, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		die("memory probe: mmap: %v", err)
	}
	next := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(mem))), n)
	for i := range next {
		next[i] = uint32(i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := n - 1; i > 0; i-- {
		j := r.IntN(i)
		next[i], next[j] = next[j], next[i]
	}
	return next
})

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// ticks is USER_HZ, the unit of CPU times in /proc/PID/stat (100 on Linux).
const ticks = 100

// selfCPU is this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// serverSet is the server processes under test: the -pids and, looked up
// anew each time, all their descendants (Swift's workers).
type serverSet struct{ roots []int }

func newServerSet(pids string) *serverSet {
	s := &serverSet{}
	for _, f := range strings.Split(pids, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			s.roots = append(s.roots, n)
		}
	}
	return s
}

// cpuTime is user and system CPU seconds.
type cpuTime struct{ user, sys float64 }

// procInfo is what /proc says about one process.
type procInfo struct {
	ppid int
	cpu  cpuTime // of the process itself
}

func readProc(pid int) (procInfo, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'. Then: state ppid ... utime (14) stime (15).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return procInfo{ppid: ppid, cpu: cpuTime{ut / ticks, st / ticks}}, true
}

// members lists the roots and their living descendants.
func (s *serverSet) members() []int {
	if len(s.roots) == 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pi, ok := readProc(pid); ok {
			children[pi.ppid] = append(children[pi.ppid], pid)
		}
	}
	var out []int
	queue := slices.Clone(s.roots)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}

// cpu is the CPU time used so far by the set (of the processes living
// now; a worker that exited took its time with it).
func (s *serverSet) cpu() cpuTime {
	var total cpuTime
	for _, pid := range s.members() {
		if pi, ok := readProc(pid); ok {
			total.user += pi.cpu.user
			total.sys += pi.cpu.sys
		}
	}
	return total
}

// memory sums VmRSS and VmHWM (KiB) over the set.
func (s *serverSet) memory() (rss, hwm int64) {
	for _, pid := range s.members() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch k {
			case "VmRSS":
				rss += n
			case "VmHWM":
				hwm += n
			}
		}
	}
	return rss, hwm
}

// resetPeak sets each process's VmHWM to its current RSS, so the next
// peak is that of the coming test alone.
func (s *serverSet) resetPeak() {
	for _, pid := range s.members() {
		if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0); err != nil {
			fmt.Fprintf(os.Stderr, "objbench: cannot reset the peak RSS of %d: %v\n", pid, err)
		}
	}
}

// describe adds the servers' CPU since cpu0 (per op when ops > 0; the
// system share is mostly fsync and socket work in the kernel), their
// process count and their memory to r.
func (s *serverSet) describe(r result, cpu0 cpuTime, ops int) {
	if len(s.roots) == 0 {
		return
	}
	now := s.cpu()
	used := now.user + now.sys - cpu0.user - cpu0.sys
	r["server_cpu_s"] = round(used, 3)
	r["server_sys_s"] = round(now.sys-cpu0.sys, 3)
	if ops > 0 {
		r["server_cpu_ms_per_op"] = round(used*1000/float64(ops), 3)
	}
	rss, hwm := s.memory()
	r["server_procs"] = len(s.members())
	r["server_rss_mib"] = round(float64(rss)/1024, 1)
	r["server_peak_rss_mib"] = round(float64(hwm)/1024, 1)
}
