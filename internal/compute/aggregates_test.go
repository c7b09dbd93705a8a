package compute_test

import (
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

func TestAggregatesAndZones(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "r1"})
	h.addHost(fakeagent.Config{Host: "r2"})
	h.fail("a", "POST", "/v2.1/os-aggregates", map[string]any{"aggregate": map[string]any{"name": "x"}}, 403)
	agg := h.json("admin", "POST", "/v2.1/os-aggregates", map[string]any{"aggregate": map[string]any{"name": "rack", "availability_zone": "rackzone"}}, 200, mv("2.41"))["aggregate"].(map[string]any)
	if agg["availability_zone"] != "rackzone" || len(agg["uuid"].(string)) != 36 {
		t.Fatalf("created %v", agg)
	}
	if _, ok := agg["hosts"]; ok {
		t.Fatalf("create answer has hosts: %v", agg)
	}
	id := "/v2.1/os-aggregates/" + itoa(agg["id"])
	h.fail("admin", "POST", "/v2.1/os-aggregates", map[string]any{"aggregate": map[string]any{"name": "rack"}}, 409)
	h.fail("admin", "POST", "/v2.1/os-aggregates", map[string]any{"aggregate": map[string]any{"name": "bad", "availability_zone": "a:b"}}, 400)
	full := h.json("admin", "POST", id+"/action", map[string]any{"add_host": map[string]any{"host": "r1"}}, 200)["aggregate"].(map[string]any)
	if len(full["hosts"].([]any)) != 1 {
		t.Fatalf("add_host %v", full)
	}
	h.fail("admin", "POST", id+"/action", map[string]any{"add_host": map[string]any{"host": "r1"}}, 409)
	h.fail("admin", "POST", id+"/action", map[string]any{"add_host": map[string]any{"host": "nope"}}, 404)
	// The aggregate's zone is the host's zone, for listing and scheduling.
	zones := h.json("a", "GET", "/v2.1/os-availability-zone", nil, 200)["availabilityZoneInfo"].([]any)
	names := map[string]bool{}
	for _, z := range zones {
		names[z.(map[string]any)["zoneName"].(string)] = true
	}
	if !names["rackzone"] || !names["nova"] {
		t.Fatalf("zones %v", zones)
	}
	srv := h.boot("a", "in-rack", map[string]any{"availability_zone": "rackzone"})
	if s := h.waitStatus("admin", srv, "ACTIVE"); s["OS-EXT-SRV-ATTR:host"] != "r1" {
		t.Fatalf("zoned to %v", s["OS-EXT-SRV-ATTR:host"])
	}
	// The zone survives the host's next heartbeat.
	if err := h.agents["r1"].Beat(t.Context()); err != nil {
		t.Fatal(err)
	}
	md := h.json("admin", "POST", id+"/action", map[string]any{"set_metadata": map[string]any{"metadata": map[string]any{"ssd": "true"}}}, 200)["aggregate"].(map[string]any)
	if md["metadata"].(map[string]any)["ssd"] != "true" {
		t.Fatalf("metadata %v", md)
	}
	// A second aggregate may not put r1 in another zone.
	other := h.json("admin", "POST", "/v2.1/os-aggregates", map[string]any{"aggregate": map[string]any{"name": "other", "availability_zone": "elsewhere"}}, 200)["aggregate"].(map[string]any)
	h.fail("admin", "POST", "/v2.1/os-aggregates/"+itoa(other["id"])+"/action", map[string]any{"add_host": map[string]any{"host": "r1"}}, 400)
	h.fail("admin", "DELETE", id, nil, 400)
	h.json("admin", "PUT", id, map[string]any{"aggregate": map[string]any{"name": "rack2"}}, 200)
	h.json("admin", "POST", id+"/action", map[string]any{"remove_host": map[string]any{"host": "r1"}}, 200)
	h.fail("admin", "POST", id+"/action", map[string]any{"remove_host": map[string]any{"host": "r1"}}, 404)
	h.json("admin", "DELETE", id, nil, 200)
	if n := len(h.json("admin", "GET", "/v2.1/os-aggregates", nil, 200)["aggregates"].([]any)); n != 1 {
		t.Fatalf("%d aggregates", n)
	}
	// os-hosts before 2.43.
	// The two compute hosts, then this process's scheduler and conductor
	// in the zone "internal", as Nova lists its control services.
	hosts := h.json("admin", "GET", "/v2.1/os-hosts", nil, 200)["hosts"].([]any)
	if len(hosts) != 4 || hosts[2].(map[string]any)["service"] != "scheduler" || hosts[3].(map[string]any)["service"] != "conductor" ||
		hosts[3].(map[string]any)["zone"] != "internal" {
		t.Fatalf("os-hosts %v", hosts)
	}
	if internal := h.json("admin", "GET", "/v2.1/os-hosts?zone=internal", nil, 200)["hosts"].([]any); len(internal) != 2 {
		t.Fatalf("os-hosts in zone internal %v", internal)
	}
	if nova := h.json("admin", "GET", "/v2.1/os-hosts?zone=nova", nil, 200)["hosts"].([]any); len(nova) != 2 {
		t.Fatalf("os-hosts in zone nova %v", nova)
	}
	res := h.json("admin", "GET", "/v2.1/os-hosts/r1", nil, 200)["host"].([]any)
	if len(res) != 4 || res[1].(map[string]any)["resource"].(map[string]any)["memory_mb"] != 512.0 {
		t.Fatalf("host resources %v", res)
	}
	h.fail("admin", "GET", "/v2.1/os-hosts", nil, 404, mv("2.43"))
}

func itoa(v any) string {
	return fmtInt(int(v.(float64)))
}
