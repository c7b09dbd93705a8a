package replicator_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/expirer"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/replicator"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

var hashPath = ring.HashPath{Prefix: "test-prefix", Suffix: "test-suffix"}

// testNode is one storage node with one device, its three servers on
// loopback and its replicators. down makes every server answer 503, as
// a node that is unreachable does for the purposes of a write.
type testNode struct {
	dev                   string // device name
	root                  string
	objects               *server.ObjectServer
	containers            *server.ContainerServer
	objHost, cHost, aHost string
	objRep                *replicator.Objects
	contRep, acctRep      *replicator.Databases
	down                  atomic.Bool
}

type cluster struct {
	t      *testing.T
	nodes  []*testNode
	rings  map[string]*ring.Ring // object, container, account
	tsBase int64
	tsN    atomic.Int64
}

// newCluster starts n nodes and builds rings with three replicas over
// their devices (one zone each).
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, rings: map[string]*ring.Ring{}, tsBase: time.Now().Unix()}
	lns := map[string][]net.Listener{}
	for i := 0; i < n; i++ {
		tn := &testNode{dev: fmt.Sprintf("sd%c", 'a'+i), root: t.TempDir()}
		if err := os.Mkdir(filepath.Join(tn.root, tn.dev), 0o750); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"object", "container", "account"} {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			lns[kind] = append(lns[kind], ln)
		}
		tn.objHost, tn.cHost, tn.aHost = lns["object"][i].Addr().String(), lns["container"][i].Addr().String(), lns["account"][i].Addr().String()
		c.nodes = append(c.nodes, tn)
	}
	ringDir := t.TempDir()
	for kind, ls := range lns {
		b, err := ring.NewBuilder(4, 3, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i, ln := range ls {
			a := ln.Addr().(*net.TCPAddr)
			if _, err := b.AddDevice(ring.Device{Region: 1, Zone: i + 1, IP: "127.0.0.1", Port: a.Port, Name: c.nodes[i].dev, Weight: 100}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Rebalance(); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(ringDir, kind+".ring.gz")
		if err := b.WriteRing(p); err != nil {
			t.Fatal(err)
		}
		if c.rings[kind], err = ring.Load(p, hashPath); err != nil {
			t.Fatal(err)
		}
	}
	for i, tn := range c.nodes {
		cfg := server.Config{DevicesRoot: tn.root, HashPathPrefix: hashPath.Prefix, HashPathSuffix: hashPath.Suffix,
			UpdateTimeout: time.Second}
		var err error
		if tn.objects, err = server.NewObjectServer(cfg); err != nil {
			t.Fatal(err)
		}
		cs, err := server.NewContainerServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tn.containers = cs
		as, err := server.NewAccountServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct {
			ln net.Listener
			h  http.Handler
		}{{lns["object"][i], tn.objects}, {lns["container"][i], cs}, {lns["account"][i], as}} {
			srv := &http.Server{Handler: tn.unlessDown(s.h)}
			go srv.Serve(s.ln)
			t.Cleanup(func() { srv.Close() })
		}
		t.Cleanup(func() { cs.Close(); as.Close() })
		rc := func(kind, host string) replicator.Config {
			return replicator.Config{DevicesRoot: tn.root, Ring: c.rings[kind], LocalHost: host, Timeout: 5 * time.Second}
		}
		if tn.objRep, err = replicator.NewObjects(rc("object", tn.objHost)); err != nil {
			t.Fatal(err)
		}
		if tn.contRep, err = replicator.NewDatabases(server.KindContainer, rc("container", tn.cHost)); err != nil {
			t.Fatal(err)
		}
		if tn.acctRep, err = replicator.NewDatabases(server.KindAccount, rc("account", tn.aHost)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (tn *testNode) unlessDown(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tn.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ts returns a new, increasing X-Timestamp.
func (c *cluster) ts() string {
	return fmt.Sprintf("%d.%05d", c.tsBase, c.tsN.Add(1))
}

// node finds the test node of a ring device.
func (c *cluster) node(d ring.Device) *testNode {
	for _, tn := range c.nodes {
		if tn.dev == d.Name {
			return tn
		}
	}
	c.t.Fatalf("no node for device %s", d.Name)
	return nil
}

// do sends one request to a storage server and returns the status and
// body.
func (c *cluster) do(method string, d ring.Device, part int, path string, h http.Header, body []byte) (int, []byte) {
	c.t.Helper()
	u := (&url.URL{Scheme: "http", Host: d.Host(), Path: "/" + d.Name + "/" + strconv.Itoa(part) + path}).String()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if h != nil {
		req.Header = h
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// putObject writes an object to the given primaries (node i of the
// object ring's primaries for each i in on; all when on is empty),
// with container updates to the matching container primaries.
func (c *cluster) putObject(name string, body []byte, h http.Header, devs []ring.Device) {
	c.t.Helper()
	part, _ := c.rings["object"].GetNodes("AUTH_test", "c", name)
	cpart, cnodes := c.rings["container"].GetNodes("AUTH_test", "c", "")
	ts := c.ts()
	for i, d := range devs {
		hh := http.Header{"X-Timestamp": {ts}, "Content-Type": {"text/plain"}}
		for k, v := range h {
			hh[k] = v
		}
		hh.Set("X-Container-Host", cnodes[i%len(cnodes)].Host())
		hh.Set("X-Container-Device", cnodes[i%len(cnodes)].Name)
		hh.Set("X-Container-Partition", strconv.Itoa(cpart))
		if st, b := c.do(http.MethodPut, d, part, "/AUTH_test/c/"+name, hh, body); st != http.StatusCreated {
			c.t.Fatalf("PUT %s on %s: %d %s", name, d.Name, st, b)
		}
	}
}

// getObject reads an object from one device with replication semantics.
func (c *cluster) getObject(name string, d ring.Device) (int, []byte) {
	c.t.Helper()
	part, _ := c.rings["object"].GetNodes("AUTH_test", "c", name)
	return c.do(http.MethodGet, d, part, "/AUTH_test/c/"+name, http.Header{"X-Backend-Replication": {"True"}}, nil)
}

// createContainer PUTs the test container on the given container devices.
func (c *cluster) createContainer(devs []ring.Device) {
	c.t.Helper()
	part, _ := c.rings["container"].GetNodes("AUTH_test", "c", "")
	ts := c.ts()
	for _, d := range devs {
		if st, b := c.do(http.MethodPut, d, part, "/AUTH_test/c", http.Header{"X-Timestamp": {ts}}, nil); st/100 != 2 {
			c.t.Fatalf("PUT container on %s: %d %s", d.Name, st, b)
		}
	}
}

// replicate runs one pass of every replicator on every node that is up.
func (c *cluster) replicate() {
	ctx := context.Background()
	for _, tn := range c.nodes {
		if tn.down.Load() {
			continue
		}
		tn.objRep.ReplicateOnce(ctx)
		tn.contRep.ReplicateOnce(ctx)
		tn.acctRep.ReplicateOnce(ctx)
	}
}

func (c *cluster) expirer(tn *testNode, now time.Time) *expirer.Expirer {
	c.t.Helper()
	e, err := expirer.New(expirer.Config{DevicesRoot: tn.root, ContainerRing: c.rings["container"], ObjectRing: c.rings["object"],
		LocalHost: tn.cHost, Now: func() time.Time { return now }, Timeout: 5 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	return e
}
