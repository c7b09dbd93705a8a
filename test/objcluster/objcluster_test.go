// Package objcluster runs object storage as a real cluster: three
// `nimbus storage` processes, each a storage host of its own on its own
// loopback address with its own devices, behind a `nimbus serve` proxy
// with identity, placed by rings built with the `nimbus ring` CLI — the
// many-machines layout of docs/object-storage.md on one machine. It
// checks what in-process nodes cannot show: a storage process SIGKILLed
// in the middle of a burst of writes loses no acknowledged object, and
// once restarted it converges through replication alone, as Swift's
// probe tests check it, by asking its servers directly.
package objcluster

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/containers"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/node"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/test/internal/proctest"
)

const (
	// proxyAddr is the proxy's host; the storage hosts are
	// 127.0.0.11, .12 and .13 (all of 127/8 is loopback on Linux).
	proxyAddr     = "127.0.0.10"
	adminPassword = "Objcluster-Admin-1"
	// The cluster secret, the same in every process's config.
	hashPathPrefix, hashPathSuffix = "objcluster-prefix", "objcluster-suffix"
	// 64 partitions: enough that objects spread over every device, few
	// enough that a replication pass is quick.
	partPower = 6
	replicas  = 3

	containerName = "burst"
	objectCount   = 200
	writers       = 8
	// killAfter acknowledged writes, the victim is SIGKILLed: the rest of
	// the burst runs while it is dead.
	killAfter = 50
	victim    = 1 // index in cluster.hosts
)

// devices of every storage host, as directories under its devices root.
var devices = []string{"sda", "sdb"}

// storageHost is one `nimbus storage` process and its devices.
type storageHost struct {
	addr                                   string
	objectPort, containerPort, accountPort int
	dir, config                            string
	proc                                   *proc // the latest process started for it
}

func (h *storageHost) devicesRoot() string { return filepath.Join(h.dir, "devices") }

// cluster is the processes under test and what the test needs to reach
// them directly.
type cluster struct {
	bin, dir, ringDir string
	hosts             []*storageHost
	objectRing        *ring.Ring
	containerRing     *ring.Ring
}

// TestKillStorageNodeDuringWrites is the durability test: no
// acknowledged write is lost when a storage node dies in the middle of a
// burst, and the node converges through replication once it is back.
func TestKillStorageNodeDuringWrites(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	c := &cluster{bin: proctest.BuildNimbus(t), dir: t.TempDir()}
	t.Logf("built nimbus in %s", time.Since(start).Round(time.Millisecond))
	c.ringDir = filepath.Join(c.dir, "rings")
	for i := range 3 {
		addr := fmt.Sprintf("127.0.0.%d", 11+i)
		h := &storageHost{addr: addr, dir: filepath.Join(c.dir, "storage-"+addr),
			objectPort: freePort(t, addr), containerPort: freePort(t, addr), accountPort: freePort(t, addr)}
		for _, d := range devices {
			if err := os.MkdirAll(filepath.Join(h.devicesRoot(), d), 0o750); err != nil {
				t.Fatal(err)
			}
		}
		c.hosts = append(c.hosts, h)
	}
	c.buildRings(t)
	for _, h := range c.hosts {
		c.writeStorageConfig(t, h)
		c.start(t, h)
	}
	identityURL, objectURL := c.startProxy(t)
	t.Logf("cluster up at %s", time.Since(start).Round(time.Millisecond))

	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: identityURL + "/v3",
		Username: "admin", Password: adminPassword, DomainName: "Default", TenantName: "admin"})
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	sc, err := openstack.NewObjectStorageV1(provider, gophercloud.EndpointOpts{Region: "RegionOne"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sc.Endpoint, objectURL) {
		t.Fatalf("catalog object-store endpoint %s is not the proxy's %s", sc.Endpoint, objectURL)
	}
	account := path.Base(strings.TrimSuffix(sc.Endpoint, "/"))
	if err := containers.Create(ctx, sc, containerName, nil).Err; err != nil {
		t.Fatalf("create container: %v", err)
	}

	dead := c.hosts[victim]
	b := runBurst(ctx, t, sc, dead.proc.kill)
	t.Logf("burst done at %s: %d of %d writes acknowledged, %d of them sent after %s was killed; %d refused (503)",
		time.Since(start).Round(time.Millisecond), len(b.acked), objectCount, b.ackedAfterKill, dead.addr, b.refused)
	if b.ackedAfterKill == 0 {
		t.Fatalf("no write was acknowledged while %s was dead: a cluster of three must take writes with one node down", dead.addr)
	}

	// Every acknowledged object is readable, intact, and listed, with one
	// node still dead.
	for name, body := range b.acked {
		checkDownload(ctx, t, sc, name, body)
	}
	proctest.WaitFor(t, 30*time.Second, "the container listing shows every acknowledged object", func() (bool, string) {
		return listingComplete(ctx, sc, b.acked)
	})

	// The dead node missed the writes made while it was down: what it
	// holds afterwards came through replication.
	missed := c.missingOnDisk(t, dead, account, b.acked)
	if missed == 0 {
		t.Fatalf("%s holds every acknowledged object although it was killed after %d of %d writes", dead.addr, killAfter, objectCount)
	}
	t.Logf("%s missed %d objects while dead; reads and listing checked at %s", dead.addr, missed, time.Since(start).Round(time.Millisecond))

	c.start(t, dead)
	restarted := time.Now()
	// Replication brings every primary, the restarted node's included,
	// back to a full copy: each object on each of its three primary
	// devices, and the container's rows in each container replica.
	proctest.WaitFor(t, 45*time.Second, "every primary device holds every acknowledged object", func() (bool, string) {
		return c.objectsConverged(ctx, account, b.acked)
	})
	proctest.WaitFor(t, 45*time.Second, "every container replica lists every acknowledged object", func() (bool, string) {
		return c.containerConverged(ctx, account, b.acked)
	})
	t.Logf("%s converged %s after its restart", dead.addr, time.Since(restarted).Round(time.Millisecond))
	proctest.WaitFor(t, 30*time.Second, "the container listing shows every acknowledged object", func() (bool, string) {
		return listingComplete(ctx, sc, b.acked)
	})
}

// burst is what a burst of writes was told.
type burst struct {
	// acked maps the names of the acknowledged writes to their content.
	acked map[string][]byte
	// ackedAfterKill counts the acknowledged writes sent after the victim
	// had died.
	ackedAfterKill int
	// refused counts the 503s.
	refused int
}

// runBurst PUTs objectCount objects from writers goroutines and calls
// kill, once, after killAfter of them were acknowledged, without pausing
// the writers. A write is acknowledged by a 201 whose ETag is the
// content's MD5; the only other answer allowed is 503 (no quorum while
// the node's death is being noticed).
func runBurst(ctx context.Context, t *testing.T, sc *gophercloud.ServiceClient, kill func()) *burst {
	t.Helper()
	b := &burst{acked: map[string][]byte{}}
	var (
		mu         sync.Mutex // guards b and unexpected
		killed     atomic.Bool
		killOnce   sync.Once
		killDone   = make(chan struct{})
		unexpected []string
	)
	names := make(chan int)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range names {
				name := fmt.Sprintf("obj-%03d", i)
				body := objectBody(i)
				afterKill := killed.Load()
				res := objects.Create(ctx, sc, containerName, name, objects.CreateOpts{
					Content: bytes.NewReader(body), ContentType: "application/octet-stream"})
				mu.Lock()
				switch h, err := res.Extract(); {
				case err == nil && h.ETag == etagOf(body):
					b.acked[name] = body
					if afterKill {
						b.ackedAfterKill++
					}
					if len(b.acked) == killAfter {
						killOnce.Do(func() {
							go func() {
								kill()
								killed.Store(true)
								close(killDone)
							}()
						})
					}
				case err == nil:
					unexpected = append(unexpected, fmt.Sprintf("%s: 201 with ETag %q, want %q", name, h.ETag, etagOf(body)))
				case gophercloud.ResponseCodeIs(err, http.StatusServiceUnavailable):
					b.refused++
				default:
					unexpected = append(unexpected, fmt.Sprintf("%s: %v", name, err))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range objectCount {
		names <- i
	}
	close(names)
	wg.Wait()
	select {
	case <-killDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("the victim was not killed: %d writes acknowledged of %d", len(b.acked), objectCount)
	}
	if len(unexpected) > 0 {
		t.Fatalf("%d writes answered neither 201 nor 503:\n%s", len(unexpected), strings.Join(unexpected, "\n"))
	}
	return b
}

// objectBody is object i's content: distinct per object, a few KiB.
func objectBody(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("object %03d of the burst;", i)), 40+i)
}

func etagOf(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// checkDownload reads name through the proxy and compares it with what
// was acknowledged.
func checkDownload(ctx context.Context, t *testing.T, sc *gophercloud.ServiceClient, name string, want []byte) {
	t.Helper()
	res := objects.Download(ctx, sc, containerName, name, nil)
	got, err := res.ExtractContent()
	if err != nil {
		t.Fatalf("acknowledged object %s: %v", name, err)
	}
	h, err := res.Extract()
	if err != nil {
		t.Fatalf("acknowledged object %s headers: %v", name, err)
	}
	if !bytes.Equal(got, want) || h.ETag != etagOf(want) {
		t.Fatalf("acknowledged object %s reads back %d bytes with ETag %q, want %d bytes with ETag %q",
			name, len(got), h.ETag, len(want), etagOf(want))
	}
}

// listingComplete reports whether the proxy's container listing has every
// acknowledged object with its size and hash.
func listingComplete(ctx context.Context, sc *gophercloud.ServiceClient, acked map[string][]byte) (bool, string) {
	pages, err := objects.List(sc, containerName, objects.ListOpts{}).AllPages(ctx)
	if err != nil {
		return false, err.Error()
	}
	list, err := objects.ExtractInfo(pages)
	if err != nil {
		return false, err.Error()
	}
	listed := map[string]objects.Object{}
	for _, o := range list {
		listed[o.Name] = o
	}
	return compareListing(acked, func(name string) (hash string, size int64, ok bool) {
		o, ok := listed[name]
		return o.Hash, o.Bytes, ok
	})
}

// compareListing checks a listing, looked up by name, against the
// acknowledged objects.
func compareListing(acked map[string][]byte, lookup func(name string) (hash string, size int64, ok bool)) (bool, string) {
	var wrong []string
	for name, body := range acked {
		hash, size, ok := lookup(name)
		switch {
		case !ok:
			wrong = append(wrong, name+" missing")
		case hash != etagOf(body) || size != int64(len(body)):
			wrong = append(wrong, fmt.Sprintf("%s listed with %d bytes, hash %s", name, size, hash))
		}
	}
	slices.Sort(wrong)
	return len(wrong) == 0, fmt.Sprintf("%d of %d acknowledged objects wrong: %s", len(wrong), len(acked), firstFew(wrong))
}

// missingOnDisk counts the acknowledged objects of which h has no copy on
// its primary device, read from its devices while it is down (the
// on-disk layout is Swift's: objects/<part>/<suffix>/<hash>/).
func (c *cluster) missingOnDisk(t *testing.T, h *storageHost, account string, acked map[string][]byte) int {
	t.Helper()
	missing := 0
	for name := range acked {
		part, nodes := c.objectRing.GetNodes(account, containerName, name)
		hash := c.objectRing.HashHex(account, containerName, name)
		for _, d := range nodes {
			if d.IP != h.addr {
				continue
			}
			dir := filepath.Join(h.devicesRoot(), d.Name, "objects", strconv.Itoa(part), hash[29:], hash)
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				missing++
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	return missing
}

// objectsConverged HEADs every acknowledged object on each of its primary
// devices, asking their object servers directly.
func (c *cluster) objectsConverged(ctx context.Context, account string, acked map[string][]byte) (bool, string) {
	var wrong []string
	checked := 0
	for name, body := range acked {
		part, nodes := c.objectRing.GetNodes(account, containerName, name)
		for _, d := range nodes {
			checked++
			resp, err := direct(ctx, http.MethodHead, d, part, account, containerName, name)
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Etag") != etagOf(body) {
				wrong = append(wrong, fmt.Sprintf("%s on %s/%s: %d %s", name, d.IP, d.Name, resp.StatusCode, resp.Header.Get("Etag")))
			}
		}
	}
	slices.Sort(wrong)
	return len(wrong) == 0, fmt.Sprintf("%d of %d replicas missing or wrong: %s", len(wrong), checked, firstFew(wrong))
}

// containerConverged lists the container on each of its primary devices,
// asking their container servers directly.
func (c *cluster) containerConverged(ctx context.Context, account string, acked map[string][]byte) (bool, string) {
	part, nodes := c.containerRing.GetNodes(account, containerName, "")
	var states []string
	for _, d := range nodes {
		resp, err := direct(ctx, http.MethodGet, d, part, account, containerName)
		if err != nil {
			return false, err.Error()
		}
		var rows []struct {
			Name  string `json:"name"`
			Hash  string `json:"hash"`
			Bytes int64  `json:"bytes"`
		}
		err = json.NewDecoder(resp.Body).Decode(&rows)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			return false, fmt.Sprintf("listing on %s/%s: %d %v", d.IP, d.Name, resp.StatusCode, err)
		}
		listed := map[string]int{}
		for i, r := range rows {
			listed[r.Name] = i
		}
		ok, state := compareListing(acked, func(name string) (string, int64, bool) {
			i, ok := listed[name]
			if !ok {
				return "", 0, false
			}
			return rows[i].Hash, rows[i].Bytes, true
		})
		if !ok {
			return false, d.IP + "/" + d.Name + ": " + state
		}
		states = append(states, d.IP+"/"+d.Name+" complete")
	}
	return true, strings.Join(states, ", ")
}

// directClient bounds each direct request, so that a hung storage server
// fails the wait that asked it rather than the whole test run.
var directClient = &http.Client{Timeout: 10 * time.Second}

// direct sends a request to a storage server in Swift's internal protocol,
// /<device>/<partition>/<account>/<container>[/<object>], as a proxy or
// replicator would.
func direct(ctx context.Context, method string, d ring.Device, part int, names ...string) (*http.Response, error) {
	p := "/" + d.Name + "/" + strconv.Itoa(part)
	for _, n := range names {
		p += "/" + n
	}
	u := &url.URL{Scheme: "http", Host: d.Host(), Path: p}
	if method == http.MethodGet {
		u.RawQuery = "format=json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := directClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	return resp, nil
}

func firstFew(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], "; ") + fmt.Sprintf("; and %d more", len(s)-5)
	}
	return strings.Join(s, "; ")
}

// buildRings builds the account, container and object rings with the
// `nimbus ring` CLI, as an operator would: one zone per host, every
// device of every host, three replicas.
func (c *cluster) buildRings(t *testing.T) {
	t.Helper()
	if err := os.MkdirAll(c.ringDir, 0o750); err != nil {
		t.Fatal(err)
	}
	ringCLI := func(args ...string) {
		cmd := exec.Command(c.bin, append([]string{"ring"}, args...)...)
		cmd.Dir, cmd.Env = c.ringDir, childEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nimbus ring %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, kind := range []struct {
		builder string
		port    func(*storageHost) int
	}{
		{"object.builder", func(h *storageHost) int { return h.objectPort }},
		{"container.builder", func(h *storageHost) int { return h.containerPort }},
		{"account.builder", func(h *storageHost) int { return h.accountPort }},
	} {
		ringCLI("create", kind.builder, strconv.Itoa(partPower), strconv.Itoa(replicas), "1")
		for i, h := range c.hosts {
			for _, d := range devices {
				ringCLI("add", kind.builder, fmt.Sprintf("r1z%d-%s:%d/%s", i+1, h.addr, kind.port(h), d), "100")
			}
		}
		ringCLI("rebalance", kind.builder)
	}
	hp := ring.HashPath{Prefix: hashPathPrefix, Suffix: hashPathSuffix}
	var err error
	if c.objectRing, err = ring.Load(filepath.Join(c.ringDir, node.ObjectRing), hp); err != nil {
		t.Fatal(err)
	}
	if c.containerRing, err = ring.Load(filepath.Join(c.ringDir, node.ContainerRing), hp); err != nil {
		t.Fatal(err)
	}
}

// writeStorageConfig writes h's nimbus.yaml, a storage host's config as
// docs/object-storage.md describes it, with the daemons' intervals short
// enough for the test to watch them work.
func (c *cluster) writeStorageConfig(t *testing.T, h *storageHost) {
	t.Helper()
	h.config = filepath.Join(h.dir, "nimbus.yaml")
	conf := fmt.Sprintf(`data_dir: %s
bind: %s
log_level: warn
object:
  ring_dir: %s
  hash_path_prefix: %s
  hash_path_suffix: %s
  storage:
    devices_root: %s
    object_port: %d
    container_port: %d
    account_port: %d
    replication_interval: 1s
    updater_interval: 1s
`, filepath.Join(h.dir, "data"), h.addr, c.ringDir, hashPathPrefix, hashPathSuffix, h.devicesRoot(),
		h.objectPort, h.containerPort, h.accountPort)
	if err := os.WriteFile(h.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs `nimbus storage` for h and waits until its three servers
// answer.
func (c *cluster) start(t *testing.T, h *storageHost) {
	t.Helper()
	h.proc = c.spawn(t, "storage-"+h.addr, h.config, "storage")
	for _, p := range []int{h.objectPort, h.containerPort, h.accountPort} {
		waitHTTP(t, fmt.Sprintf("http://%s/", net.JoinHostPort(h.addr, strconv.Itoa(p))), h.proc)
	}
}

// startProxy runs the proxy with identity in one `nimbus serve` process,
// as a controller of a real cluster does, and returns the identity and
// object endpoints.
func (c *cluster) startProxy(t *testing.T) (identityURL, objectURL string) {
	t.Helper()
	dir := filepath.Join(c.dir, "proxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	identityPort, objectPort := freePort(t, proxyAddr), freePort(t, proxyAddr)
	conf := fmt.Sprintf(`data_dir: %s
bind: %s
public_host: %s
nats_port: 0
log_level: warn
identity:
  port: %d
  admin_password: %s
  bcrypt_cost: 4
object:
  port: %d
  ring_dir: %s
  hash_path_prefix: %s
  hash_path_suffix: %s
`, dir, proxyAddr, proxyAddr, identityPort, adminPassword, objectPort, c.ringDir, hashPathPrefix, hashPathSuffix)
	path := filepath.Join(dir, "nimbus.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy := c.spawn(t, "proxy", path, "serve", "--roles=identity,object")
	identityURL = fmt.Sprintf("http://%s", net.JoinHostPort(proxyAddr, strconv.Itoa(identityPort)))
	objectURL = fmt.Sprintf("http://%s", net.JoinHostPort(proxyAddr, strconv.Itoa(objectPort)))
	waitHTTP(t, identityURL+"/v3", proxy)
	waitHTTP(t, objectURL+"/healthcheck", proxy)
	return identityURL, objectURL
}

// proc is a process the test started.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
}

// spawn starts `nimbus --config config args...` with its output in
// <name>.log (appended to, so a restarted process keeps its history). At
// the end of the test it stops the process if it still runs, and prints
// its log if the test failed.
func (c *cluster) spawn(t *testing.T, name, config string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(c.dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: exec.Command(c.bin, append([]string{"--config", config}, args...)...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Env = logf, logf, childEnv()
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log of %s:\n%s", name, b)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs the process and waits for it to die: no shutdown, as when
// a host loses power.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends the process, if it still runs, with SIGTERM and, after a
// grace period, SIGKILL.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// waitHTTP waits until u answers at all (any status: the storage servers
// have no health endpoint), failing early if p exits.
func waitHTTP(t *testing.T, u string, p *proc) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	proctest.WaitFor(t, 30*time.Second, u+" answers", func() (bool, string) {
		if p.exited() {
			t.Fatalf("%s exited: %s", p.name, p.cmd.ProcessState)
		}
		resp, err := client.Get(u)
		if err != nil {
			return false, err.Error()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return true, ""
	})
}

// freePort returns a port that is free on addr now; the process given it
// binds it moments later.
func freePort(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// childEnv is the test's environment without NIMBUS_* settings, which
// would override the configs the test writes.
func childEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "NIMBUS_") })
}
