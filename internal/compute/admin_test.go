package compute_test

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

func TestQuotaSets(t *testing.T) {
	h := newHarness(t)
	qs := h.json("a", "GET", "/v2.1/os-quota-sets/"+projA, nil, 200)["quota_set"].(map[string]any)
	want := []string{"cores", "fixed_ips", "floating_ips", "id", "injected_file_content_bytes", "injected_file_path_bytes", "injected_files",
		"instances", "key_pairs", "metadata_items", "ram", "security_group_rules", "security_groups", "server_group_members", "server_groups"}
	if got := sortedKeys(qs); !reflect.DeepEqual(got, want) {
		t.Fatalf("2.1 quota set keys %v", got)
	}
	if qs["instances"] != 10.0 || qs["cores"] != 20.0 || qs["ram"] != 51200.0 {
		t.Fatalf("defaults %v", qs)
	}
	qs = h.json("a", "GET", "/v2.1/os-quota-sets/"+projA, nil, 200, mv("2.57"))["quota_set"].(map[string]any)
	if got := sortedKeys(qs); !reflect.DeepEqual(got, []string{"cores", "id", "instances", "key_pairs", "metadata_items", "ram", "server_group_members", "server_groups"}) {
		t.Fatalf("2.57 quota set keys %v", got)
	}
	h.fail("b", "GET", "/v2.1/os-quota-sets/"+projA, nil, 403)
	h.fail("a", "PUT", "/v2.1/os-quota-sets/"+projA, map[string]any{"quota_set": map[string]any{"instances": 5}}, 403)
	up := h.json("admin", "PUT", "/v2.1/os-quota-sets/"+projA, map[string]any{"quota_set": map[string]any{"instances": 5, "cores": "7"}}, 200)["quota_set"].(map[string]any)
	if up["instances"] != 5.0 || up["cores"] != 7.0 {
		t.Fatalf("updated %v", up)
	}
	h.fail("admin", "PUT", "/v2.1/os-quota-sets/"+projA, map[string]any{"quota_set": map[string]any{"instances": -2}}, 400)
	h.fail("admin", "PUT", "/v2.1/os-quota-sets/"+projA, map[string]any{"quota_set": map[string]any{"bogus": 1}}, 400)
	h.fail("admin", "PUT", "/v2.1/os-quota-sets/"+projA, map[string]any{"quota_set": map[string]any{"security_groups": 1}}, 400, mv("2.36"))
	def := h.json("a", "GET", "/v2.1/os-quota-sets/"+projA+"/defaults", nil, 200)["quota_set"].(map[string]any)
	if def["instances"] != 10.0 {
		t.Fatalf("defaults after update %v", def)
	}
	h.json("admin", "DELETE", "/v2.1/os-quota-sets/"+projA, nil, 202)
	if qs := h.json("a", "GET", "/v2.1/os-quota-sets/"+projA, nil, 200)["quota_set"].(map[string]any); qs["instances"] != 10.0 {
		t.Fatalf("after delete %v", qs)
	}
	// The default class changes every project's defaults.
	cls := h.json("admin", "PUT", "/v2.1/os-quota-class-sets/default", map[string]any{"quota_class_set": map[string]any{"instances": 12}}, 200, mv("2.50"))["quota_class_set"].(map[string]any)
	if cls["instances"] != 12.0 || cls["server_groups"] != 10.0 {
		t.Fatalf("class %v", cls)
	}
	if _, ok := cls["floating_ips"]; ok {
		t.Fatalf("2.50 class has network quotas: %v", cls)
	}
	if qs := h.json("b", "GET", "/v2.1/os-quota-sets/"+projB, nil, 200)["quota_set"].(map[string]any); qs["instances"] != 12.0 {
		t.Fatalf("class not inherited: %v", qs)
	}
	h.json("admin", "GET", "/v2.1/os-quota-class-sets/default", nil, 200)
	h.fail("a", "GET", "/v2.1/os-quota-class-sets/default", nil, 403)
	// Limits follow the microversion too.
	abs := h.json("a", "GET", "/v2.1/limits", nil, 200)["limits"].(map[string]any)["absolute"].(map[string]any)
	for _, k := range []string{"maxImageMeta", "maxPersonality", "maxSecurityGroups", "maxTotalFloatingIps"} {
		if _, ok := abs[k]; !ok {
			t.Fatalf("2.1 limits lack %s", k)
		}
	}
	abs = h.json("a", "GET", "/v2.1/limits", nil, 200, mv("2.57"))["limits"].(map[string]any)["absolute"].(map[string]any)
	for _, k := range []string{"maxImageMeta", "maxPersonality", "maxSecurityGroups", "maxTotalFloatingIps"} {
		if _, ok := abs[k]; ok {
			t.Fatalf("2.57 limits still have %s", k)
		}
	}
}

func TestHypervisorsAndServices(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "node-1", VCPUs: 4, MemoryMB: 8192, LocalGB: 100})
	h.addHost(fakeagent.Config{Host: "node-2", AvailabilityZone: "az2"})
	id := h.boot("a", "vm", map[string]any{"availability_zone": "az2"})
	h.waitStatus("a", id, "ACTIVE")
	h.fail("a", "GET", "/v2.1/os-hypervisors", nil, 403)
	h.fail("a", "GET", "/v2.1/os-services", nil, 403)
	list := h.json("admin", "GET", "/v2.1/os-hypervisors", nil, 200)["hypervisors"].([]any)
	if len(list) != 2 || sortedKeys(list[0].(map[string]any))[0] != "hypervisor_hostname" {
		t.Fatalf("list %v", list)
	}
	det := h.json("admin", "GET", "/v2.1/os-hypervisors/detail", nil, 200)["hypervisors"].([]any)
	n1 := det[0].(map[string]any)
	if n1["vcpus"] != 4.0 || n1["memory_mb"] != 8192.0 || n1["local_gb"] != 100.0 || n1["hypervisor_type"] != "QEMU" {
		t.Fatalf("detail %v", n1)
	}
	if _, ok := n1["cpu_info"].(string); !ok {
		t.Fatalf("cpu_info before 2.28 is a string: %v", n1["cpu_info"])
	}
	n2 := det[1].(map[string]any)
	if n2["vcpus_used"] != 1.0 || n2["memory_mb_used"] != 512.0 || n2["running_vms"] != 1.0 {
		t.Fatalf("usage %v", n2)
	}
	show := h.json("admin", "GET", "/v2.1/os-hypervisors/2", nil, 200, mv("2.28"))["hypervisor"].(map[string]any)
	if _, ok := show["cpu_info"].(map[string]any); !ok {
		t.Fatalf("2.28 cpu_info %v", show["cpu_info"])
	}
	h.fail("admin", "GET", "/v2.1/os-hypervisors/99", nil, 404)
	st := h.json("admin", "GET", "/v2.1/os-hypervisors/statistics", nil, 200)["hypervisor_statistics"].(map[string]any)
	if st["count"] != 2.0 || st["running_vms"] != 1.0 {
		t.Fatalf("stats %v", st)
	}
	srv := h.json("admin", "GET", "/v2.1/os-hypervisors/node-2/servers", nil, 200)["hypervisors"].([]any)[0].(map[string]any)
	if srv["servers"].([]any)[0].(map[string]any)["uuid"] != id {
		t.Fatalf("servers %v", srv)
	}
	h.json("admin", "GET", "/v2.1/os-hypervisors/node/search", nil, 200)
	h.fail("admin", "GET", "/v2.1/os-hypervisors/zzz/search", nil, 404)
	h.fail("admin", "GET", "/v2.1/os-hypervisors/node/search", nil, 404, mv("2.53"))
	up := h.json("admin", "GET", "/v2.1/os-hypervisors/1/uptime", nil, 200)["hypervisor"].(map[string]any)
	if !strings.Contains(up["uptime"].(string), "up") {
		t.Fatalf("uptime %v", up)
	}
	// 2.53: uuids, with_servers, paging by uuid (2.33).
	l53 := h.json("admin", "GET", "/v2.1/os-hypervisors?with_servers=true", nil, 200, mv("2.53"))["hypervisors"].([]any)
	if len(l53[0].(map[string]any)["id"].(string)) != 36 || l53[1].(map[string]any)["servers"] == nil {
		t.Fatalf("2.53 list %v", l53)
	}
	pg := h.json("admin", "GET", "/v2.1/os-hypervisors?limit=1", nil, 200, mv("2.53"))
	if len(pg["hypervisors"].([]any)) != 1 || pg["hypervisors_links"] == nil {
		t.Fatalf("paged %v", pg)
	}
	// Availability zones.
	zones := h.json("a", "GET", "/v2.1/os-availability-zone", nil, 200)["availabilityZoneInfo"].([]any)
	if len(zones) != 2 || zones[0].(map[string]any)["zoneName"] != "az2" || zones[0].(map[string]any)["hosts"] != nil {
		t.Fatalf("zones %v", zones)
	}
	h.fail("a", "GET", "/v2.1/os-availability-zone/detail", nil, 403)
	dz := h.json("admin", "GET", "/v2.1/os-availability-zone/detail", nil, 200)["availabilityZoneInfo"].([]any)
	if dz[1].(map[string]any)["hosts"].(map[string]any)["node-1"] == nil {
		t.Fatalf("zone detail %v", dz)
	}
	// A host with servers cannot be deleted; an empty one can.
	h.fail("admin", "DELETE", "/v2.1/os-services/2", nil, 409)
	_ = h.agents["node-1"].Stop()
	h.json("admin", "DELETE", "/v2.1/os-services/1", nil, 204)
	if n := len(h.json("admin", "GET", "/v2.1/os-services?binary=nova-compute", nil, 200)["services"].([]any)); n != 1 {
		t.Fatalf("%d compute services after delete", n)
	}
	// The scheduler and conductor of this compute API, ids apart from the
	// compute hosts' (which are also the hypervisor ids).
	ctl := h.json("admin", "GET", "/v2.1/os-services?binary=nova-scheduler", nil, 200)["services"].([]any)
	if len(ctl) != 1 || ctl[0].(map[string]any)["zone"] != "internal" || ctl[0].(map[string]any)["state"] != "up" ||
		ctl[0].(map[string]any)["id"].(float64) <= 2 {
		t.Fatalf("scheduler service %v", ctl)
	}
}

func TestUsageAndConsoles(t *testing.T) {
	h := newHarness(t, func(c *computeConfig) { c.ConsoleProxyURL = "http://proxy:6080/vnc_auto.html" })
	h.addHost(fakeagent.Config{Host: "h"})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	time.Sleep(20 * time.Millisecond)
	u := h.json("a", "GET", "/v2.1/os-simple-tenant-usage/"+projA+"?start=2000-01-01T00:00:00&end=2999-01-01T00:00:00", nil, 200)["tenant_usage"].(map[string]any)
	if u["tenant_id"] != projA || len(u["server_usages"].([]any)) != 1 || u["total_hours"].(float64) <= 0 {
		t.Fatalf("usage %v", u)
	}
	h.fail("a", "GET", "/v2.1/os-simple-tenant-usage", nil, 403)
	all := h.json("admin", "GET", "/v2.1/os-simple-tenant-usage?detailed=1", nil, 200)["tenant_usages"].([]any)
	if len(all) != 1 {
		t.Fatalf("all usage %v", all)
	}
	h.fail("a", "GET", "/v2.1/os-simple-tenant-usage/"+projA+"?start=2999-01-01T00:00:00&end=2000-01-01T00:00:00", nil, 400)
	h.boot("a", "vm2", nil)
	pg := h.json("a", "GET", "/v2.1/os-simple-tenant-usage/"+projA+"?start=2000-01-01T00:00:00&limit=1", nil, 200, mv("2.40"))
	if len(pg["tenant_usage"].(map[string]any)["server_usages"].([]any)) != 1 || pg["tenant_usage_links"] == nil {
		t.Fatalf("paged usage %v", pg)
	}
	// Remote consoles hand out a token the proxy redeems once.
	con := h.action("a", id, map[string]any{"os-getVNCConsole": map[string]any{"type": "novnc"}}, 200)["console"].(map[string]any)
	if !strings.HasPrefix(con["url"].(string), "http://proxy:6080/vnc_auto.html?path=%3Ftoken%3D") {
		t.Fatalf("console %v", con)
	}
	rc := h.json("a", "POST", "/v2.1/servers/"+id+"/remote-consoles", map[string]any{"remote_console": map[string]any{"protocol": "vnc", "type": "novnc"}}, 200, mv("2.6"))
	if rc["remote_console"].(map[string]any)["protocol"] != "vnc" {
		t.Fatalf("remote console %v", rc)
	}
	h.fail("a", "POST", "/v2.1/servers/"+id+"/remote-consoles", map[string]any{"remote_console": map[string]any{"protocol": "vnc", "type": "serial"}}, 400, mv("2.6"))
	// The proxy learns where to connect from the token (2.31, admin).
	cu, err := url.Parse(con["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimPrefix(cu.Query().Get("path"), "?token=")
	tok := h.json("admin", "GET", "/v2.1/os-console-auth-tokens/"+token, nil, 200, mv("2.31"))["console"].(map[string]any)
	if tok["instance_uuid"] != id || tok["port"] != 5900.0 {
		t.Fatalf("console token %v", tok)
	}
	h.fail("a", "GET", "/v2.1/os-console-auth-tokens/"+token, nil, 403, mv("2.31"))
	h.fail("admin", "GET", "/v2.1/os-console-auth-tokens/nope", nil, 404, mv("2.31"))
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-getSerialConsole": map[string]any{"type": "serial"}}, 400)
	// trigger_crash_dump exists from 2.17.
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"trigger_crash_dump": nil}, 400)
	h.action("a", id, map[string]any{"trigger_crash_dump": nil}, 202, mv("2.17"))
}
