package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// With one of three nodes down every write still reaches a quorum (and a
// handoff takes the missing replica) and every read is served.
func TestOneNodeDown(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	c.nodes[0].down()
	expect(t, c.do(t, "PUT", "c2", ownerToken, nil, ""), http.StatusCreated, "container put, node down")
	for i := range 5 {
		name := "c/o" + strings.Repeat("x", i)
		expect(t, c.do(t, "PUT", name, ownerToken, nil, "payload"), http.StatusCreated, "object put, node down")
		r := c.do(t, "GET", name, ownerToken, nil, "")
		expect(t, r, http.StatusOK, "object get, node down")
		if r.body != "payload" {
			t.Fatalf("body %q", r.body)
		}
	}
	expect(t, c.do(t, "HEAD", "c2", ownerToken, nil, ""), http.StatusNoContent, "container head, node down")
	r := c.do(t, "GET", "c?format=json", ownerToken, nil, "")
	expect(t, r, http.StatusOK, "listing, node down")
	if strings.Count(r.body, `"name"`) != 5 {
		t.Fatalf("listing %s", r.body)
	}
	expect(t, c.do(t, "DELETE", "c/o", ownerToken, nil, ""), http.StatusNoContent, "delete, node down")
}

func TestTwoNodesDown(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.RequestNodeCount = 3 })
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "c/before", ownerToken, nil, "old"), http.StatusCreated, "object put")
	c.nodes[0].down()
	c.nodes[1].down()
	// Only one node is left for three replicas: no quorum.
	r := c.do(t, "PUT", "c/o", ownerToken, nil, "payload")
	expect(t, r, http.StatusServiceUnavailable, "object put, two down")
	if !strings.Contains(r.body, "Service Unavailable") {
		t.Fatalf("503 body %q", r.body)
	}
	expect(t, c.do(t, "PUT", "c3", ownerToken, nil, ""), http.StatusServiceUnavailable, "container put, two down")
	// A read needs one copy.
	expect(t, c.do(t, "GET", "c/before", ownerToken, nil, ""), http.StatusOK, "read with one node")
}

// A write whose primary is down lands on a handoff device, so three
// copies exist on the two live nodes, and reads find it there after the
// primary returns without it.
func TestHandoffWrite(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	c.nodes[2].down()
	expect(t, c.do(t, "PUT", "c/o", ownerToken, nil, "handoff"), http.StatusCreated, "put")
	if got := c.nodes[0].dataFiles(t) + c.nodes[1].dataFiles(t); got != 3 {
		t.Fatalf("%d .data files on the live nodes, want 3 (two primaries and a handoff)", got)
	}
	if n := c.nodes[2].dataFiles(t); n != 0 {
		t.Fatalf("down node has %d files", n)
	}
	c.nodes[2].up(t)
	r := c.do(t, "GET", "c/o", ownerToken, map[string]string{"X-Newest": "true"}, "")
	expect(t, r, http.StatusOK, "newest read")
	if r.body != "handoff" {
		t.Fatalf("body %q", r.body)
	}
}

// A node that keeps failing is skipped, so it stops costing requests
// until the suppression interval has passed.
func TestErrorLimiting(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.ErrorSuppressionLimit = 2
		cfg.ErrorSuppressionInterval = time.Hour
	})
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	bad := c.nodes[1]
	bad.down()
	for i := range 20 {
		expect(t, c.do(t, "PUT", "c/o"+strings.Repeat("y", i), ownerToken, nil, "x"), http.StatusCreated, "put")
	}
	hits := bad.objHits.Load()
	// Two devices, each allowed limit+1 failures before suppression.
	if hits > 6 {
		t.Fatalf("down node was tried %d times; error limiting should stop at 6", hits)
	}
	for i := range 10 {
		expect(t, c.do(t, "GET", "c/o"+strings.Repeat("y", i), ownerToken, nil, ""), http.StatusOK, "get")
	}
	if bad.objHits.Load() != hits {
		t.Fatalf("suppressed node was tried again (%d → %d)", hits, bad.objHits.Load())
	}
	for _, d := range c.proxy.rings.object.Devices() {
		if d.Port == bad.obj.port() && !c.proxy.limiter.limited(d) {
			t.Fatalf("%s not error limited", d)
		}
	}
}

// A 507 suppresses the device at once.
func TestErrorLimiterSuppressAndForgive(t *testing.T) {
	l := newErrorLimiter(3, time.Minute)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	d := ring.Device{ID: 1, IP: "127.0.0.1", Port: 6200, Name: "sda"}
	for range 3 {
		l.failed(d)
	}
	if l.limited(d) {
		t.Fatal("limited at the limit")
	}
	l.failed(d)
	if !l.limited(d) {
		t.Fatal("not limited past the limit")
	}
	now = now.Add(2 * time.Minute)
	if l.limited(d) {
		t.Fatal("still limited after the interval")
	}
	l.suppress(d)
	if !l.limited(d) {
		t.Fatal("suppress did not limit")
	}
}

// A rebalanced ring written over the old file is picked up without a
// restart.
func TestRingReload(t *testing.T) {
	c := newCluster(t, nil)
	b := c.builders["object"]
	before := c.proxy.rings.object.BuildVersion()
	if err := b.SetWeight(0, 50); err != nil {
		t.Fatal(err)
	}
	b.PretendMinPartHoursPassed()
	if _, err := b.Rebalance(); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteRing(c.proxy.cfg.ObjectRing); err != nil {
		t.Fatal(err)
	}
	c.proxy.reloadRings()
	if got := c.proxy.rings.object.BuildVersion(); got == before {
		t.Fatalf("build version still %d after reload", got)
	}
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put after reload")
	expect(t, c.do(t, "PUT", "c/o", ownerToken, nil, "x"), http.StatusCreated, "object put after reload")
}
