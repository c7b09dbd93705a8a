package volume_test

import (
	"strings"
	"testing"
)

// TestVersionsAndDiscovery: the root answers 300 with the v3 document,
// /v3/ answers 200, microversions are echoed with Vary, an out of range
// one is a 406, and extensions and zones are listed as Tempest expects.
func TestVersionsAndDiscovery(t *testing.T) {
	h := newHarness(t)
	var root versionsResp
	h.strict("", "GET", "/", nil, 300, &root)
	if len(root.Versions) != 1 || root.Versions[0].ID != "v3.0" || root.Versions[0].MinVersion != "3.0" || root.Versions[0].Version != "3.12" {
		t.Fatalf("versions %+v", root)
	}
	self := ""
	for _, l := range root.Versions[0].Links {
		if l.Rel == "self" {
			self = l.Href
		}
	}
	if self != h.srv.URL+"/v3/" {
		t.Fatalf("self link %q", self)
	}
	var v3 versionsResp
	h.strict("", "GET", "/v3/", nil, 200, &v3)
	if len(v3.Versions) != 1 || v3.Versions[0].MediaTypes[0].Type != "application/vnd.openstack.volume+json;version=3" {
		t.Fatalf("v3 %+v", v3)
	}

	status, _, hdr := h.do("a", "GET", path("a", "/volumes"), nil)
	if status != 200 || hdr.Get("OpenStack-API-Version") != "volume 3.0" || !strings.Contains(strings.Join(hdr.Values("Vary"), ","), "OpenStack-API-Version") {
		t.Fatalf("microversion headers %d %v", status, hdr)
	}
	_, _, hdr = h.do("a", "GET", path("a", "/volumes"), nil, mv("latest"))
	if hdr.Get("OpenStack-API-Version") != "volume 3.12" {
		t.Fatalf("latest: %v", hdr)
	}
	h.fail("a", "GET", path("a", "/volumes"), nil, 406, mv("3.13"))
	h.fail("a", "GET", path("a", "/volumes"), nil, 400, mv("three"))
	h.fail("", "GET", path("a", "/volumes"), nil, 401)

	var ext extensionsResp
	h.strict("a", "GET", path("a", "/extensions"), nil, 200, &ext)
	found := false
	for _, e := range ext.Extensions {
		found = found || e.Name == "Hosts"
	}
	if !found {
		t.Fatalf("no Hosts extension in %+v", ext)
	}
	zones := h.json("a", "GET", path("a", "/os-availability-zone"), nil, 200)["availabilityZoneInfo"].([]any)
	if len(zones) != 1 || zones[0].(map[string]any)["zoneName"] != "nova" || zones[0].(map[string]any)["zoneState"].(map[string]any)["available"] != true {
		t.Fatalf("zones %v", zones)
	}
}

// TestServicesAndHosts: os-services has the scheduler and a
// cinder-volume row per storage host, admin only; a host silent past
// the down time is down; a disabled host takes no volumes.
func TestServicesAndHosts(t *testing.T) {
	h := newHarness(t)
	var svcs servicesResp
	h.strict("admin", "GET", path("admin", "/os-services"), nil, 200, &svcs)
	if len(svcs.Services) != 2 || svcs.Services[0].Binary != "cinder-scheduler" || svcs.Services[1].Host != "stor1@file" || svcs.Services[1].State != "up" {
		t.Fatalf("services %+v", svcs)
	}
	h.fail("a", "GET", path("a", "/os-services"), nil, 403)
	var hosts hostsResp
	h.strict("admin", "GET", path("admin", "/os-hosts"), nil, 200, &hosts)
	if len(hosts.Hosts) != 2 || hosts.Hosts[0].Service != "cinder-scheduler" || hosts.Hosts[1].HostName != "stor1@file" ||
		hosts.Hosts[1].ServiceStatus != "available" || hosts.Hosts[1].ServiceState != "enabled" {
		t.Fatalf("hosts %+v", hosts)
	}
	// The host filter takes the bare host name too, as Cinder's does.
	h.strict("admin", "GET", path("admin", "/os-services?host=stor1&binary=cinder-volume"), nil, 200, &svcs)
	if len(svcs.Services) != 1 || svcs.Services[0].Host != "stor1@file" {
		t.Fatalf("services of stor1 %+v", svcs)
	}
	h.strict("admin", "GET", path("admin", "/os-services?host=stor"), nil, 200, &svcs)
	if len(svcs.Services) != 0 {
		t.Fatalf("services of stor %+v", svcs)
	}
	h.createVolume("a", map[string]any{"size": 2}, "available")
	shown := h.json("admin", "GET", path("admin", "/os-hosts/stor1@file"), nil, 200)["host"].([]any)
	if total := shown[0].(map[string]any)["resource"].(map[string]any); total["project"] != "(total)" || total["volume_count"] != "1" || total["total_volume_gb"] != "2" {
		t.Fatalf("host %v", shown)
	}
	h.json("admin", "PUT", path("admin", "/os-services/freeze"), map[string]any{"host": "stor1@file"}, 200)
	h.fail("admin", "PUT", path("admin", "/os-services/thaw"), map[string]any{"host": "invalid_host"}, 400)
	pools := h.json("admin", "GET", path("admin", "/scheduler-stats/get_pools?detail=True"), nil, 200)["pools"].([]any)
	if len(pools) != 1 || pools[0].(map[string]any)["name"] != "stor1@file#default" || pools[0].(map[string]any)["capabilities"].(map[string]any)["total_capacity_gb"] != float64(100) {
		t.Fatalf("pools %v", pools)
	}
	if caps := h.json("admin", "GET", path("admin", "/capabilities/stor1@file#default"), nil, 200); caps["volume_backend_name"] != "file" {
		t.Fatalf("capabilities %v", caps)
	}
	// An unknown binary names no service: nothing is disabled (Tempest's
	// test_disable_service_with_invalid_binary; disabling the host here
	// would fail every later volume create).
	h.fail("admin", "PUT", path("admin", "/os-services/disable"), map[string]any{"host": "stor1@file", "binary": "invalid_binary"}, 404)
	h.createVolume("a", map[string]any{"size": 1}, "available")
	h.json("admin", "PUT", path("admin", "/os-services/disable"), map[string]any{"host": "stor1@file", "binary": "cinder-volume"}, 200)
	v := h.json("a", "POST", path("a", "/volumes"), map[string]any{"volume": map[string]any{"size": 1}}, 202)["volume"].(map[string]any)
	if v["status"] != "error" {
		t.Fatalf("a volume on a disabled host's only zone is %v, want error", v["status"])
	}
	h.json("admin", "PUT", path("admin", "/os-services/enable"), map[string]any{"host": "stor1@file", "binary": "cinder-volume"}, 200)
	h.createVolume("a", map[string]any{"size": 1}, "available")
	h.fail("admin", "PUT", path("admin", "/os-services/enable"), map[string]any{"host": "nope@file"}, 404)
}
