package compute_test

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

// TestConcurrentBootsNeverOvercommit boots many servers at once onto
// hosts with room for only some of them: exactly that many become
// ACTIVE, the rest fail with no valid host, and no host holds more than
// its capacity.
func TestConcurrentBootsNeverOvercommit(t *testing.T) {
	h := newHarness(t, func(c *computeConfig) {
		c.RAMAllocationRatio = 1
		c.Quotas = map[string]int{"instances": -1, "cores": -1, "ram": -1}
	})
	// Two hosts with room for 3 m1.tiny (512 MB) each by RAM.
	h.addHost(fakeagent.Config{Host: "h1", MemoryMB: 1600, VCPUs: 64})
	h.addHost(fakeagent.Config{Host: "h2", MemoryMB: 1600, VCPUs: 64})
	const n = 12
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i] = h.boot("a", fmt.Sprintf("c%d", i), nil)
		})
	}
	wg.Wait()
	active, failed := 0, 0
	perHost := map[string]int{}
	for _, id := range ids {
		var s map[string]any
		h.eventually("server settled", func() bool {
			s = h.server("admin", id)
			return s["status"] == "ACTIVE" || s["status"] == "ERROR"
		})
		if s["status"] == "ACTIVE" {
			active++
			perHost[s["OS-EXT-SRV-ATTR:host"].(string)]++
		} else {
			failed++
		}
	}
	if active != 6 || failed != n-6 || perHost["h1"] != 3 || perHost["h2"] != 3 {
		t.Fatalf("active %d failed %d per host %v", active, failed, perHost)
	}
	for _, hv := range h.json("admin", "GET", "/v2.1/os-hypervisors/detail", nil, 200)["hypervisors"].([]any) {
		m := hv.(map[string]any)
		if m["memory_mb_used"].(float64) > m["memory_mb"].(float64) {
			t.Fatalf("overcommitted: %v", m)
		}
	}
}

func TestSchedulerFilters(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "az1-host", AvailabilityZone: "az1"})
	h.addHost(fakeagent.Config{Host: "arm-host", Architecture: "aarch64"})
	// Zone filter.
	id := h.boot("a", "zoned", map[string]any{"availability_zone": "az1"})
	s := h.waitStatus("admin", id, "ACTIVE")
	if s["OS-EXT-SRV-ATTR:host"] != "az1-host" || s["OS-EXT-AZ:availability_zone"] != "az1" {
		t.Fatalf("zoned server on %v in %v", s["OS-EXT-SRV-ATTR:host"], s["OS-EXT-AZ:availability_zone"])
	}
	// Disabled hosts take nothing; admins force hosts with zone:host.
	h.json("admin", "PUT", "/v2.1/os-services/disable-log-reason", map[string]any{"host": "arm-host", "binary": "nova-compute", "disabled_reason": "maint"}, 200)
	for range 3 {
		id := h.boot("a", "any", nil)
		if s := h.waitStatus("admin", id, "ACTIVE"); s["OS-EXT-SRV-ATTR:host"] != "az1-host" {
			t.Fatalf("scheduled to a disabled host: %v", s["OS-EXT-SRV-ATTR:host"])
		}
	}
	svc := h.json("admin", "GET", "/v2.1/os-services?host=arm-host", nil, 200)["services"].([]any)[0].(map[string]any)
	if svc["status"] != "disabled" || svc["disabled_reason"] != "maint" || svc["state"] != "up" {
		t.Fatalf("service %v", svc)
	}
	id = h.boot("admin", "forced", map[string]any{"availability_zone": "nova:arm-host"})
	if s := h.waitStatus("admin", id, "ACTIVE"); s["OS-EXT-SRV-ATTR:host"] != "arm-host" {
		t.Fatalf("forced host ignored: %v", s["OS-EXT-SRV-ATTR:host"])
	}
	h.json("admin", "PUT", "/v2.1/os-services/enable", map[string]any{"host": "arm-host", "binary": "nova-compute"}, 200)
	h.fail("a", "PUT", "/v2.1/os-services/enable", map[string]any{"host": "arm-host", "binary": "nova-compute"}, 403)
	// 2.53: services by uuid, forced down makes a host down at once.
	svcs := h.json("admin", "GET", "/v2.1/os-services?host=arm-host", nil, 200, mv("2.53"))["services"].([]any)
	uuid := svcs[0].(map[string]any)["id"].(string)
	up := h.json("admin", "PUT", "/v2.1/os-services/"+uuid, map[string]any{"forced_down": true}, 200, mv("2.53"))["service"].(map[string]any)
	if up["state"] != "down" || up["forced_down"] != true {
		t.Fatalf("forced down: %v", up)
	}
	h.json("admin", "PUT", "/v2.1/os-services/"+uuid, map[string]any{"forced_down": false}, 200, mv("2.53"))
	// Image properties: architecture.
	h.json("admin", "PUT", "/v2.1/os-services/disable", map[string]any{"host": "az1-host", "binary": "nova-compute"}, 200)
	id = h.boot("a", "x86-only", nil)
	// With no image service the image has no properties, so any host does.
	h.waitStatus("a", id, "ACTIVE")
}

func TestServerGroups(t *testing.T) {
	h := newHarness(t)
	for _, n := range []string{"g1", "g2", "g3"} {
		h.addHost(fakeagent.Config{Host: n})
	}
	mk := func(policy string) string {
		t.Helper()
		g := h.json("a", "POST", "/v2.1/os-server-groups", map[string]any{"server_group": map[string]any{"name": policy, "policies": []any{policy}}}, 200, mv("2.15"))
		return g["server_group"].(map[string]any)["id"].(string)
	}
	hostOf := func(id string) string {
		return h.waitStatus("admin", id, "ACTIVE")["OS-EXT-SRV-ATTR:host"].(string)
	}
	anti := mk("anti-affinity")
	seen := map[string]bool{}
	var members []string
	for i := range 3 {
		id := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": fmt.Sprint("anti", i), "imageRef": imageID, "flavorRef": "1"},
			"os:scheduler_hints": map[string]any{"group": anti}}, 202)["server"].(map[string]any)["id"].(string)
		host := hostOf(id)
		if seen[host] {
			t.Fatalf("anti-affinity put two members on %s", host)
		}
		seen[host] = true
		members = append(members, id)
	}
	// A fourth member has nowhere to go.
	id := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "anti4", "imageRef": imageID, "flavorRef": "1"},
		"os:scheduler_hints": map[string]any{"group": anti}}, 202)["server"].(map[string]any)["id"].(string)
	h.waitStatus("a", id, "ERROR")
	g := h.json("a", "GET", "/v2.1/os-server-groups/"+anti, nil, 200)["server_group"].(map[string]any)
	got := []string{}
	for _, m := range g["members"].([]any) {
		got = append(got, m.(string))
	}
	sort.Strings(got)
	want := append(append([]string{}, members...), id)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) || g["policies"].([]any)[0] != "anti-affinity" {
		t.Fatalf("group %v, want members %v", g, want)
	}
	aff := mk("affinity")
	var first string
	for i := range 3 {
		id := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": fmt.Sprint("aff", i), "imageRef": imageID, "flavorRef": "1"},
			"os:scheduler_hints": map[string]any{"group": aff}}, 202)["server"].(map[string]any)["id"].(string)
		host := hostOf(id)
		if first == "" {
			first = host
		} else if host != first {
			t.Fatalf("affinity split over %s and %s", first, host)
		}
	}
	soft := mk("soft-anti-affinity")
	seen = map[string]bool{}
	for i := range 3 {
		id := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": fmt.Sprint("soft", i), "imageRef": imageID, "flavorRef": "1"},
			"os:scheduler_hints": map[string]any{"group": soft}}, 202)["server"].(map[string]any)["id"].(string)
		seen[hostOf(id)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("soft anti-affinity used %d hosts", len(seen))
	}
	// Views by microversion, validation, 404 for other projects.
	g64 := h.json("a", "POST", "/v2.1/os-server-groups", map[string]any{"server_group": map[string]any{"name": "r", "policy": "anti-affinity", "rules": map[string]any{"max_server_per_host": 2}}}, 200, mv("2.64"))["server_group"].(map[string]any)
	if g64["policy"] != "anti-affinity" || g64["rules"].(map[string]any)["max_server_per_host"] != 2.0 || g64["project_id"] != projA {
		t.Fatalf("2.64 group %v", g64)
	}
	h.fail("a", "POST", "/v2.1/os-server-groups", map[string]any{"server_group": map[string]any{"name": "x", "policies": []any{"soft-affinity"}}}, 400)
	h.fail("a", "POST", "/v2.1/os-server-groups", map[string]any{"server_group": map[string]any{"name": "x", "policy": "affinity", "rules": map[string]any{"max_server_per_host": 2}}}, 400, mv("2.64"))
	h.fail("b", "GET", "/v2.1/os-server-groups/"+anti, nil, 404)
	h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "x", "imageRef": imageID, "flavorRef": "1"},
		"os:scheduler_hints": map[string]any{"group": "00000000-0000-0000-0000-000000000000"}}, 400)
	if n := len(h.json("a", "GET", "/v2.1/os-server-groups", nil, 200)["server_groups"].([]any)); n != 4 {
		t.Fatalf("%d groups listed", n)
	}
	h.json("a", "DELETE", "/v2.1/os-server-groups/"+g64["id"].(string), nil, 204)
}

func TestLeastLoadedSpreads(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "s1"})
	h.addHost(fakeagent.Config{Host: "s2"})
	count := map[string]int{}
	for i := range 4 {
		id := h.boot("a", fmt.Sprint("s", i), nil)
		count[h.waitStatus("admin", id, "ACTIVE")["OS-EXT-SRV-ATTR:host"].(string)]++
	}
	if count["s1"] != 2 || count["s2"] != 2 {
		t.Fatalf("least-loaded placement %v", count)
	}
}

func TestHostDownAndReconcile(t *testing.T) {
	h := newHarness(t, func(c *computeConfig) {
		c.ServiceDownTime = 500 * time.Millisecond
		c.BuildTimeout = 300 * time.Millisecond
	})
	a := h.addHost(fakeagent.Config{Host: "h", Heartbeat: 100 * time.Millisecond})
	// A build the agent never answers is put in ERROR by the reconcile loop.
	a.Hold(func(c compute.Command) bool { return c.Op == compute.OpBuild })
	id := h.boot("a", "stuck", nil)
	h.eventually("build sent", func() bool { return len(a.Commands()) == 1 })
	time.Sleep(400 * time.Millisecond)
	if err := h.svc.Reconcile(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := h.server("a", id)
	if s["status"] != "ERROR" {
		t.Fatalf("stuck build is %v", s["status"])
	}
	a.Hold(nil)
	a.Release(id)
	// The late report is ignored: the server stays in ERROR.
	time.Sleep(200 * time.Millisecond)
	if s := h.server("a", id); s["status"] != "ERROR" {
		t.Fatalf("late report applied: %v", s["status"])
	}
	// An agent that stops is down after ServiceDownTime; nothing is
	// scheduled to it and deletes complete locally.
	ok := h.boot("a", "ok", nil)
	h.waitStatus("a", ok, "ACTIVE")
	_ = a.Stop()
	h.eventually("host down", func() bool {
		svc := h.json("admin", "GET", "/v2.1/os-services", nil, 200)["services"].([]any)[0].(map[string]any)
		return svc["state"] == "down"
	})
	if st := h.server("admin", ok, mv("2.16"))["host_status"]; st != "DOWN" {
		t.Fatalf("host_status %v", st)
	}
	id = h.boot("a", "nowhere", nil)
	h.waitStatus("a", id, "ERROR")
	h.json("a", "DELETE", "/v2.1/servers/"+ok, nil, http.StatusNoContent)
	h.fail("a", "GET", "/v2.1/servers/"+ok, nil, 404)
}

// TestClaimRechecksTheDatabase changes allocations behind the scheduler's
// host cache, as another replica would: a host filled elsewhere is not
// chosen (the claim re-reads the chosen host), and a host emptied
// elsewhere is found again when the cache says nothing fits.
func TestClaimRechecksTheDatabase(t *testing.T) {
	h := newHarness(t, func(c *computeConfig) {
		c.RAMAllocationRatio = 1
		c.Quotas = map[string]int{"instances": -1, "cores": -1, "ram": -1}
	})
	// Room for 4 m1.tiny (512 MB) each by RAM.
	h.addHost(fakeagent.Config{Host: "r1", MemoryMB: 2048, VCPUs: 64})
	h.addHost(fakeagent.Config{Host: "r2", MemoryMB: 2048, VCPUs: 64})
	hostOf := func(id string) string {
		t.Helper()
		return h.waitStatus("admin", id, "ACTIVE")["OS-EXT-SRV-ATTR:host"].(string)
	}
	if got := hostOf(h.boot("a", "first", nil)); got != "r1" {
		t.Fatalf("first server on %s, want r1 (equal hosts, lowest name)", got)
	}
	// Fill r2 behind the cache's back: it still believes r2 empty, the
	// least loaded, and must find out before placing the next server.
	for n := range 4 {
		if _, err := h.db.Exec(t.Context(), `INSERT INTO compute_allocations (instance_id, kind, host, vcpus, memory_mb, disk_gb, created_at)
			VALUES (?, 'instance', 'r2', 1, 512, 1, '2026-01-01T00:00:00.000000Z')`, fmt.Sprint("elsewhere-", n)); err != nil {
			t.Fatal(err)
		}
	}
	if got := hostOf(h.boot("a", "second", nil)); got != "r1" {
		t.Fatalf("second server on %s: placed on a host that was full", got)
	}
	// Fill r1 too (it has 2 servers; add 2), then free r2 behind the
	// cache's back (no release in this process to tell it): it believes
	// every host full and must look again before giving up.
	for n := range 2 {
		if _, err := h.db.Exec(t.Context(), `INSERT INTO compute_allocations (instance_id, kind, host, vcpus, memory_mb, disk_gb, created_at)
			VALUES (?, 'instance', 'r1', 1, 512, 1, '2026-01-01T00:00:00.000000Z')`, fmt.Sprint("elsewhere-r1-", n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.db.Exec(t.Context(), `DELETE FROM compute_allocations WHERE host = 'r2'`); err != nil {
		t.Fatal(err)
	}
	if got := hostOf(h.boot("a", "third", nil)); got != "r2" {
		t.Fatalf("third server on %s, want r2 (emptied elsewhere)", got)
	}
	for _, hv := range h.json("admin", "GET", "/v2.1/os-hypervisors/detail", nil, 200)["hypervisors"].([]any) {
		m := hv.(map[string]any)
		if m["memory_mb_used"].(float64) > m["memory_mb"].(float64) {
			t.Fatalf("overcommitted: %v", m)
		}
	}
}
