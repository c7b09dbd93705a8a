package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// TestMain refuses to run where the storage servers cannot: without user
// xattrs on the temp filesystem.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nimbus-proxy-xattr-")
	if err == nil {
		err = server.CheckXattr(dir)
		os.RemoveAll(dir)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the test filesystem must support user extended attributes: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// storageNode is one storage host under test: two devices and the three
// servers on loopback. stop and start take the whole host off and on the
// network (connections refused, as for a dead host).
type storageNode struct {
	root       string
	objHits    atomic.Int64 // requests that reached the object server
	obj, cont  *switchable
	acct       *switchable
	containers *server.ContainerServer
}

var devices = []string{"sda", "sdb"}

// switchable is an HTTP server that can be stopped and started again on
// the same address.
type switchable struct {
	addr    string
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server // guarded by mu; nil while stopped
}

func newSwitchable(t *testing.T, h http.Handler) *switchable {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &switchable{addr: l.Addr().String(), handler: h}
	s.serve(l)
	t.Cleanup(s.stop)
	return s
}

func (s *switchable) serve(l net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	go func(srv *http.Server) { _ = srv.Serve(l) }(s.srv)
}

func (s *switchable) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func (s *switchable) start(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(l)
}

func (s *switchable) port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// down takes the node off the network.
func (n *storageNode) down() {
	n.obj.stop()
	n.cont.stop()
	n.acct.stop()
}

// up brings it back.
func (n *storageNode) up(t *testing.T) {
	n.obj.start(t)
	n.cont.start(t)
	n.acct.start(t)
}

func counting(h http.Handler, hits *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h.ServeHTTP(w, r)
	})
}

func startNode(t *testing.T) *storageNode { return startPolicyNode(t, nil) }

// startPolicyNode is startNode with the storage policies pols (nil: the
// lone Policy-0).
func startPolicyNode(t *testing.T, pols *policy.Policies) *storageNode {
	t.Helper()
	n := &storageNode{root: t.TempDir()}
	for _, d := range devices {
		if err := os.Mkdir(filepath.Join(n.root, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	cfg := server.Config{
		DevicesRoot: n.root, HashPathPrefix: "pre", HashPathSuffix: "suf",
		UpdateTimeout: time.Second, Logger: quietLogger(), Policies: pols,
	}
	objs, err := server.NewObjectServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conts, err := server.NewContainerServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	accts, err := server.NewAccountServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.containers = conts
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { conts.RunUpdater(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		conts.Close()
		accts.Close()
	})
	n.obj, n.cont, n.acct = newSwitchable(t, counting(objs, &n.objHits)), newSwitchable(t, conts), newSwitchable(t, accts)
	return n
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// cluster is three storage nodes behind a proxy.
type cluster struct {
	nodes    []*storageNode
	proxy    *Proxy
	url      string // proxy base URL
	ringDir  string
	builders map[string]*ring.Builder
}

// Test identities: the owner and a member of another project, a reader
// in the owner's project without an operator role, and a reseller admin.
const (
	ownerToken    = "owner-token"
	otherToken    = "other-token"
	readerToken   = "reader-token"
	resellerToken = "reseller-token"
	ownerProject  = "p1"
	account       = "AUTH_p1"
)

var tokens = apitest.Tokens{
	ownerToken:    {UserID: "u1", UserName: "alice", ProjectID: "p1", ProjectName: "one", Roles: []api.Role{{Name: "member"}}},
	otherToken:    {UserID: "u2", UserName: "bob", ProjectID: "p2", ProjectName: "two", Roles: []api.Role{{Name: "member"}}},
	readerToken:   {UserID: "u3", UserName: "carol", ProjectID: "p1", ProjectName: "one", Roles: []api.Role{{Name: "reader"}}},
	resellerToken: {UserID: "u4", UserName: "root", ProjectID: "p9", ProjectName: "ops", Roles: []api.Role{{Name: "ResellerAdmin"}}},
}

// newCluster starts three nodes, writes rings with three replicas over
// their six devices, and starts a proxy; tune adjusts its config.
func newCluster(t *testing.T, tune func(*Config)) *cluster {
	t.Helper()
	c := &cluster{ringDir: t.TempDir(), builders: map[string]*ring.Builder{}}
	for range 3 {
		c.nodes = append(c.nodes, startNode(t))
	}
	for _, kind := range []string{"account", "container", "object"} {
		b, err := ring.NewBuilder(6, 3, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range c.nodes {
			srv := map[string]*switchable{"account": n.acct, "container": n.cont, "object": n.obj}[kind]
			for _, d := range devices {
				if _, err := b.AddDevice(ring.Device{Region: 1, Zone: i + 1, IP: "127.0.0.1", Port: srv.port(), Name: d, Weight: 100}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := b.Rebalance(); err != nil {
			t.Fatal(err)
		}
		if err := b.WriteRing(filepath.Join(c.ringDir, kind+".ring.gz")); err != nil {
			t.Fatal(err)
		}
		c.builders[kind] = b
	}
	cfg := Config{
		AccountRing:    filepath.Join(c.ringDir, "account.ring.gz"),
		ContainerRing:  filepath.Join(c.ringDir, "container.ring.gz"),
		ObjectRing:     filepath.Join(c.ringDir, "object.ring.gz"),
		HashPathPrefix: "pre", HashPathSuffix: "suf",
		Tokens:      tokens,
		Logger:      quietLogger(),
		NodeTimeout: 5 * time.Second,
	}
	if tune != nil {
		tune(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.Close()
	})
	c.proxy, c.url = p, srv.URL
	return c
}

type resp struct {
	status int
	header http.Header
	body   string
}

// do sends a request to the proxy; path is below /v1/AUTH_p1 unless it
// starts with "/".
func (c *cluster) do(t *testing.T, method, path, token string, hdr map[string]string, body string) resp {
	t.Helper()
	if !strings.HasPrefix(path, "/") {
		path = "/v1/" + account + "/" + path
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if method == http.MethodPut && body == "" && req.Header.Get("Transfer-Encoding") == "" {
		req.ContentLength, req.Body = 0, http.NoBody
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

func expect(t *testing.T, r resp, want int, what string) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d (body %q)", what, r.status, want, r.body)
	}
}

// dataFiles counts .data files of any object on a node's devices.
func (n *storageNode) dataFiles(t *testing.T) int {
	t.Helper()
	count := 0
	_ = filepath.WalkDir(n.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".data") && strings.Contains(p, "/objects/") {
			count++
		}
		return nil
	})
	return count
}
