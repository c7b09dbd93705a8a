package compute_test

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

// server21Keys are the attributes of a server at microversion 2.1 for a
// project member: exactly these, since Tempest's schemas reject extras.
var server21Keys = []string{
	"OS-DCF:diskConfig", "OS-EXT-AZ:availability_zone", "OS-EXT-STS:power_state", "OS-EXT-STS:task_state",
	"OS-EXT-STS:vm_state", "OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at", "accessIPv4", "accessIPv6",
	"addresses", "config_drive", "created", "flavor", "hostId", "id", "image", "key_name", "links", "metadata", "name",
	"os-extended-volumes:volumes_attached", "progress", "security_groups", "status", "tenant_id", "updated", "user_id",
}

func TestServerLifecycle(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	h.json("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "k", "public_key": edKey}}, 200)
	ud := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n"))
	status, out, hdr := h.do("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{
		"name": "vm1", "imageRef": imageID, "flavorRef": "1", "key_name": "k", "user_data": ud,
		"metadata": map[string]any{"role": "web"}, "networks": []any{map[string]any{"uuid": "3b7d6b2c-0a2e-4e47-9f3b-8f0b7c4e2d11"}},
		"accessIPv4": "192.0.2.10", "OS-DCF:diskConfig": "AUTO", "config_drive": true,
	}})
	if status != 202 {
		t.Fatalf("create: %d %s", status, out)
	}
	var created struct {
		Server map[string]any `json:"server"`
	}
	mustJSON(t, out, &created)
	id := created.Server["id"].(string)
	if created.Server["adminPass"] == "" || created.Server["OS-DCF:diskConfig"] != "AUTO" || hdr.Get("Location") == "" {
		t.Fatalf("create answer: %s %v", out, hdr)
	}
	if got := sortedKeys(created.Server); !reflect.DeepEqual(got, []string{"OS-DCF:diskConfig", "adminPass", "id", "links", "security_groups"}) {
		t.Fatalf("create answer keys %v", got)
	}
	srv := h.waitStatus("a", id, "ACTIVE")
	if got := sortedKeys(srv); !reflect.DeepEqual(got, server21Keys) {
		t.Fatalf("2.1 server keys:\n got %v\nwant %v", got, server21Keys)
	}
	if srv["OS-EXT-STS:vm_state"] != "active" || srv["OS-EXT-STS:power_state"] != 1.0 || srv["key_name"] != "k" ||
		srv["config_drive"] != "True" || srv["accessIPv4"] != "192.0.2.10" || srv["metadata"].(map[string]any)["role"] != "web" ||
		srv["OS-EXT-AZ:availability_zone"] != "nova" || srv["hostId"] == "" {
		t.Fatalf("server: %v", srv)
	}
	addrs := srv["addresses"].(map[string]any)["private"].([]any)
	if addrs[0].(map[string]any)["OS-EXT-IPS:type"] != "fixed" {
		t.Fatalf("addresses %v", addrs)
	}
	// The agent got what it needs to build.
	cmds := h.agents["host1"].Commands()
	if cmds[0].Op != compute.OpBuild || cmds[0].Instance.KeyData != edKey || cmds[0].Instance.UserData != ud ||
		!cmds[0].Instance.ConfigDrive || cmds[0].Instance.Requested[0].NetworkID != "3b7d6b2c-0a2e-4e47-9f3b-8f0b7c4e2d11" {
		t.Fatalf("build command: %+v", cmds[0])
	}
	// Admins see the extended attributes; later microversions add theirs.
	adm := h.server("admin", id, mv("2.79"))
	for _, k := range []string{"OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:instance_name", "OS-EXT-SRV-ATTR:user_data", "locked", "description",
		"tags", "host_status", "server_groups", "locked_reason", "trusted_image_certificates"} {
		if _, ok := adm[k]; !ok {
			t.Fatalf("2.79 admin view lacks %s: %v", k, keys(adm))
		}
	}
	if adm["OS-EXT-SRV-ATTR:host"] != "host1" || adm["host_status"] != "UP" {
		t.Fatalf("admin view %v", adm)
	}
	if f := adm["flavor"].(map[string]any); f["original_name"] != "m1.tiny" || f["ram"] != 512.0 {
		t.Fatalf("2.47 flavor %v", f)
	}
	// IPs.
	ips := h.json("a", "GET", "/v2.1/servers/"+id+"/ips", nil, 200)["addresses"].(map[string]any)
	if len(ips["private"].([]any)) != 1 {
		t.Fatalf("ips %v", ips)
	}
	h.json("a", "GET", "/v2.1/servers/"+id+"/ips/private", nil, 200)
	h.fail("a", "GET", "/v2.1/servers/"+id+"/ips/public", nil, 404)

	// Another project cannot see it; a reader may look but not act.
	h.fail("b", "GET", "/v2.1/servers/"+id, nil, 404)
	h.fail("b", "DELETE", "/v2.1/servers/"+id, nil, 404)
	h.json("ra", "GET", "/v2.1/servers/"+id, nil, 200)
	h.fail("ra", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-stop": nil}, 403)

	// Stop, start, reboot, pause, suspend, with 409s in the wrong state.
	h.action("a", id, map[string]any{"os-stop": nil}, 202)
	h.waitStatus("a", id, "SHUTOFF")
	if msg := h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-stop": nil}, 409); msg != fmt.Sprintf("Cannot 'stop' instance %s while it is in vm_state stopped", id) {
		t.Fatalf("409 message %q", msg)
	}
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"pause": nil}, 409)
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"reboot": map[string]any{"type": "SOFT"}}, 409)
	h.action("a", id, map[string]any{"os-start": nil}, 202)
	h.waitStatus("a", id, "ACTIVE")
	h.action("a", id, map[string]any{"reboot": map[string]any{"type": "HARD"}}, 202)
	h.waitStatus("a", id, "ACTIVE")
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"reboot": map[string]any{"type": "GENTLE"}}, 400)
	h.action("a", id, map[string]any{"pause": nil}, 202)
	h.waitStatus("a", id, "PAUSED")
	h.action("a", id, map[string]any{"unpause": nil}, 202)
	h.waitStatus("a", id, "ACTIVE")
	h.action("a", id, map[string]any{"suspend": nil}, 202)
	h.waitStatus("a", id, "SUSPENDED")
	h.action("a", id, map[string]any{"resume": nil}, 202)
	h.waitStatus("a", id, "ACTIVE")
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"frobnicate": nil}, 400)

	// A task in flight makes a conflicting action a 409 at once.
	h.agents["host1"].Hold(func(c compute.Command) bool { return c.Op == compute.OpReboot })
	h.action("a", id, map[string]any{"reboot": map[string]any{"type": "SOFT"}}, 202)
	if s := h.server("a", id); s["status"] != "REBOOT" || s["OS-EXT-STS:task_state"] != "rebooting" {
		t.Fatalf("during reboot: %v %v", s["status"], s["OS-EXT-STS:task_state"])
	}
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-stop": nil}, 409)
	// A hard reboot may take over a soft one, as Nova allows.
	h.action("a", id, map[string]any{"reboot": map[string]any{"type": "HARD"}}, 202)
	h.agents["host1"].Hold(nil)
	h.agents["host1"].Release(id)
	h.waitStatus("a", id, "ACTIVE")

	// Lock: the owner's actions are refused, admins may still act.
	h.action("a", id, map[string]any{"lock": nil}, 202)
	if s := h.server("a", id, mv("2.9")); s["locked"] != true {
		t.Fatalf("locked: %v", s["locked"])
	}
	if msg := h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-stop": nil}, 409); msg != "Instance "+id+" is locked" {
		t.Fatalf("locked message %q", msg)
	}
	h.fail("a", "DELETE", "/v2.1/servers/"+id, nil, 409)
	h.action("a", id, map[string]any{"unlock": nil}, 202)
	h.action("a", id, map[string]any{"lock": map[string]any{"locked_reason": "maintenance"}}, 202, mv("2.73"))
	if s := h.server("a", id, mv("2.73")); s["locked_reason"] != "maintenance" {
		t.Fatalf("locked_reason: %v", s["locked_reason"])
	}
	h.action("a", id, map[string]any{"unlock": nil}, 202)

	// Console output comes from the agent.
	outp := h.action("a", id, map[string]any{"os-getConsoleOutput": map[string]any{"length": 1}}, 200)
	if outp["output"] != "login:\n" {
		t.Fatalf("console output %q", outp["output"])
	}

	// Update name and description.
	upd := h.json("a", "PUT", "/v2.1/servers/"+id, map[string]any{"server": map[string]any{"name": "renamed", "description": "d"}}, 200, mv("2.19"))["server"].(map[string]any)
	if upd["name"] != "renamed" || upd["description"] != "d" {
		t.Fatalf("update: %v", upd)
	}
	h.fail("a", "PUT", "/v2.1/servers/"+id, map[string]any{"server": map[string]any{"description": "d"}}, 400)

	// Instance actions carry the request ids of the calls.
	acts := h.json("a", "GET", "/v2.1/servers/"+id+"/os-instance-actions", nil, 200)["instanceActions"].([]any)
	var names []string
	for _, a := range acts {
		names = append(names, a.(map[string]any)["action"].(string))
	}
	if names[len(names)-1] != "create" || !strings.Contains(strings.Join(names, ","), "stop") {
		t.Fatalf("actions %v", names)
	}
	st, body, rh := h.do("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-stop": nil})
	if st != 202 {
		t.Fatalf("stop: %d %s", st, body)
	}
	reqID := rh.Get("X-Openstack-Request-Id")
	act := h.json("admin", "GET", "/v2.1/servers/"+id+"/os-instance-actions/"+reqID, nil, 200)["instanceAction"].(map[string]any)
	if act["action"] != "stop" || act["request_id"] != reqID {
		t.Fatalf("action by request id: %v", act)
	}
	h.waitStatus("a", id, "SHUTOFF")
	act = h.json("admin", "GET", "/v2.1/servers/"+id+"/os-instance-actions/"+reqID, nil, 200)["instanceAction"].(map[string]any)
	ev := act["events"].([]any)[0].(map[string]any)
	if ev["event"] != "compute_stop_instance" || ev["result"] != "Success" || ev["finish_time"] == nil {
		t.Fatalf("event %v", ev)
	}
	if _, ok := h.json("a", "GET", "/v2.1/servers/"+id+"/os-instance-actions/"+reqID, nil, 200)["instanceAction"].(map[string]any)["events"]; ok {
		t.Fatal("members see events before 2.51")
	}

	// Delete goes through the agent and frees the host.
	h.json("a", "DELETE", "/v2.1/servers/"+id, nil, 204)
	h.eventually("server gone", func() bool {
		st, _, _ := h.do("a", "GET", "/v2.1/servers/"+id, nil)
		return st == 404
	})
	if g := h.agents["host1"].Guests(); len(g) != 0 {
		t.Fatalf("guests left on host: %v", g)
	}
	stats := h.json("admin", "GET", "/v2.1/os-hypervisors/statistics", nil, 200)["hypervisor_statistics"].(map[string]any)
	if stats["vcpus_used"] != 0.0 || stats["memory_mb_used"] != 0.0 {
		t.Fatalf("claims left: %v", stats)
	}
	// Admins can still list it as deleted; the instance actions remain (2.21).
	del := h.json("admin", "GET", "/v2.1/servers/detail?deleted=true&all_tenants=1", nil, 200)["servers"].([]any)
	if len(del) != 1 || del[0].(map[string]any)["status"] != "DELETED" {
		t.Fatalf("deleted listing: %v", del)
	}
	h.json("a", "GET", "/v2.1/servers/"+id+"/os-instance-actions", nil, 200, mv("2.21"))
	h.fail("a", "GET", "/v2.1/servers/"+id+"/os-instance-actions", nil, 404)
}

func mustJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := jsonUnmarshal(data, v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
}

func TestServerCreateBadInput(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	post := func(srv map[string]any, want int, opts ...reqOpt) string {
		t.Helper()
		body := map[string]any{"name": "x", "imageRef": imageID, "flavorRef": "1"}
		for k, v := range srv {
			if v == nil {
				delete(body, k)
			} else {
				body[k] = v
			}
		}
		return h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": body}, want, opts...)
	}
	if msg := post(map[string]any{"flavorRef": "999"}, 400); msg != "Flavor 999 could not be found." {
		t.Fatalf("unknown flavor: %q", msg)
	}
	post(map[string]any{"imageRef": "not-a-uuid"}, 400)
	post(map[string]any{"imageRef": nil}, 400)
	post(map[string]any{"name": nil}, 400)
	post(map[string]any{"name": ""}, 400)
	post(map[string]any{"user_data": "not base64!"}, 400)
	post(map[string]any{"user_data": strings.Repeat("A", 65536)}, 400)
	post(map[string]any{"key_name": "nope"}, 400)
	post(map[string]any{"networks": []any{map[string]any{"uuid": "nope"}}}, 400)
	post(map[string]any{"networks": "auto"}, 400)
	post(map[string]any{"networks": nil}, 400, mv("2.37"))
	post(map[string]any{"networks": "everything"}, 400, mv("2.37"))
	post(map[string]any{"min_count": 3, "max_count": 2}, 400)
	post(map[string]any{"availability_zone": "mars"}, 400)
	post(map[string]any{"accessIPv4": "not-an-ip"}, 400)
	post(map[string]any{"OS-DCF:diskConfig": "SOMETIMES"}, 400)
	post(map[string]any{"tags": []any{"a"}}, 400)
	post(map[string]any{"metadata": map[string]any{"k": 1}}, 400)
	post(map[string]any{"unexpected": true}, 400)
	post(map[string]any{"availability_zone": "nova:host1"}, 403)
	h.fail("a", "POST", "/v2.1/servers", "{not json", 400)
	// Nothing was created by any of them.
	if n := len(h.json("a", "GET", "/v2.1/servers", nil, 200)["servers"].([]any)); n != 0 {
		t.Fatalf("%d servers after bad requests", n)
	}
	// The largest user_data is fine, and 2.37's "none" too.
	id := h.boot("a", "big-ud", map[string]any{"user_data": base64.StdEncoding.EncodeToString(make([]byte, 49149)), "networks": "none"}, mv("2.37"))
	h.waitStatus("a", id, "ACTIVE")
}

func TestServerQuota(t *testing.T) {
	h := newHarness(t, func(c *computeConfig) { c.Quotas = map[string]int{"instances": 2, "cores": 2} })
	h.addHost(fakeagent.Config{Host: "host1"})
	h.boot("a", "one", nil)
	msg := h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "x", "imageRef": imageID, "flavorRef": "3"}}, 403)
	if msg != "Quota exceeded for cores: Requested 2, but already used 1 of 2 cores" {
		t.Fatalf("cores message %q", msg)
	}
	h.boot("a", "two", nil)
	msg = h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "x", "imageRef": imageID, "flavorRef": "1"}}, 403)
	if msg != "Quota exceeded for cores, instances: Requested 1, 1, but already used 2, 2 of 2, 2 cores, instances" {
		t.Fatalf("instances message %q", msg)
	}
	// Another project is not affected; usage is computed, not counted.
	h.boot("b", "other", nil)
	det := h.json("a", "GET", "/v2.1/os-quota-sets/"+projA+"/detail", nil, 200)["quota_set"].(map[string]any)
	if det["instances"].(map[string]any)["in_use"] != 2.0 || det["cores"].(map[string]any)["in_use"] != 2.0 {
		t.Fatalf("quota detail %v", det)
	}
	lim := h.json("a", "GET", "/v2.1/limits", nil, 200)["limits"].(map[string]any)["absolute"].(map[string]any)
	if lim["totalInstancesUsed"] != 2.0 || lim["maxTotalInstances"] != 2.0 || lim["totalRAMUsed"] != 1024.0 {
		t.Fatalf("limits %v", lim)
	}
	// min/max count: as many as fit, at least min.
	h.fail("b", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "m", "imageRef": imageID, "flavorRef": "1", "min_count": 3}}, 403)
	body := h.json("b", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "m", "imageRef": imageID, "flavorRef": "1", "max_count": 5, "return_reservation_id": true}}, 202)
	if !strings.HasPrefix(body["reservation_id"].(string), "r-") {
		t.Fatalf("reservation: %v", body)
	}
	list := h.json("b", "GET", "/v2.1/servers?name=^m$", nil, 200)["servers"].([]any)
	if len(list) != 1 {
		t.Fatalf("multi-create made %d servers, want the 1 that fits", len(list))
	}
}

func TestServerListFilters(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	web := h.boot("a", "web-1", map[string]any{"tags": []any{"prod", "web"}, "networks": "auto"}, mv("2.52"))
	db := h.boot("a", "db-1", map[string]any{"flavorRef": "2"})
	other := h.boot("b", "web-b", nil)
	for _, id := range []string{web, db} {
		h.waitStatus("a", id, "ACTIVE")
	}
	h.waitStatus("b", other, "ACTIVE")
	h.action("a", db, map[string]any{"os-stop": nil}, 202)
	h.waitStatus("a", db, "SHUTOFF")
	ids := func(path string, token string, opts ...reqOpt) []string {
		t.Helper()
		var out []string
		for _, s := range h.json(token, "GET", path, nil, 200, opts...)["servers"].([]any) {
			out = append(out, s.(map[string]any)["id"].(string))
		}
		sort.Strings(out)
		return out
	}
	same := func(got []string, want ...string) {
		t.Helper()
		sort.Strings(want)
		if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	same(ids("/v2.1/servers", "a"), web, db)
	same(ids("/v2.1/servers?name=web", "a"), web)
	same(ids("/v2.1/servers?status=SHUTOFF", "a"), db)
	same(ids("/v2.1/servers?status=ACTIVE", "a"), web)
	same(ids("/v2.1/servers?status=BOGUS", "a"))
	h.fail("a", "GET", "/v2.1/servers?status=BOGUS", nil, 400, mv("2.38"))
	same(ids("/v2.1/servers?flavor=2", "a"), db)
	same(ids("/v2.1/servers?image="+imageID, "a"), web, db)
	same(ids("/v2.1/servers?tags=prod", "a", mv("2.26")), web)
	same(ids("/v2.1/servers?not-tags=prod", "a", mv("2.26")), db)
	same(ids("/v2.1/servers?changes-since=2000-01-01T00:00:00Z", "a"), web, db)
	same(ids("/v2.1/servers?changes-since=2999-01-01T00:00:00Z", "a"))
	h.fail("a", "GET", "/v2.1/servers?changes-since=yesterday", nil, 400)
	// all_tenants is for admins; members just see their own.
	same(ids("/v2.1/servers?all_tenants=1", "a"), web, db)
	same(ids("/v2.1/servers?all_tenants=1", "admin"), web, db, other)
	// project_id / tenant_id narrow all_tenants; without it Nova ignores
	// them (Tempest's test_list_servers_by_admin_with_specified_tenant).
	same(ids("/v2.1/servers?all_tenants=1&project_id="+projB, "admin"), other)
	same(ids("/v2.1/servers?all_tenants=1&tenant_id="+projB, "admin"), other)
	same(ids("/v2.1/servers?project_id="+projB, "admin"))
	same(ids("/v2.1/servers?tenant_id="+projB, "admin"))
	same(ids("/v2.1/servers", "admin"))
	// Sorting and paging.
	page := h.json("a", "GET", "/v2.1/servers?limit=1&sort_key=display_name&sort_dir=asc", nil, 200)
	first := page["servers"].([]any)[0].(map[string]any)
	if first["name"] != "db-1" || page["servers_links"] == nil {
		t.Fatalf("sorted page: %v", page)
	}
	next := h.json("a", "GET", "/v2.1/servers?limit=1&sort_key=display_name&sort_dir=asc&marker="+first["id"].(string), nil, 200)
	if next["servers"].([]any)[0].(map[string]any)["name"] != "web-1" {
		t.Fatalf("next page: %v", next)
	}
	h.fail("a", "GET", "/v2.1/servers?sort_key=bogus", nil, 400)
	h.fail("a", "GET", "/v2.1/servers?marker=00000000-0000-0000-0000-000000000000", nil, 400)
	h.fail("a", "GET", "/v2.1/servers?bogus=1", nil, 400, mv("2.75"))
	h.json("a", "GET", "/v2.1/servers?bogus=1", nil, 200)
	// Detail bodies at 2.1 are exact; progress only shows while a server
	// is active or changing, as Nova shows it.
	for _, s := range h.json("a", "GET", "/v2.1/servers/detail", nil, 200)["servers"].([]any) {
		m := s.(map[string]any)
		if m["status"] == "SHUTOFF" {
			m["progress"] = nil
		}
		if got := sortedKeys(m); !reflect.DeepEqual(got, server21Keys) {
			t.Fatalf("detail keys %v", got)
		}
	}
}

func TestServerMetadataAndTags(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	id := h.boot("a", "vm", map[string]any{"metadata": map[string]any{"a": "1"}})
	h.waitStatus("a", id, "ACTIVE")
	base := "/v2.1/servers/" + id
	md := h.json("a", "POST", base+"/metadata", map[string]any{"metadata": map[string]any{"b": "2"}}, 200)["metadata"].(map[string]any)
	if len(md) != 2 {
		t.Fatalf("merged metadata %v", md)
	}
	md = h.json("a", "PUT", base+"/metadata", map[string]any{"metadata": map[string]any{"c": "3"}}, 200)["metadata"].(map[string]any)
	if len(md) != 1 || md["c"] != "3" {
		t.Fatalf("replaced metadata %v", md)
	}
	h.json("a", "PUT", base+"/metadata/d", map[string]any{"meta": map[string]any{"d": "4"}}, 200)
	h.fail("a", "PUT", base+"/metadata/d", map[string]any{"meta": map[string]any{"e": "4"}}, 400)
	if got := h.json("a", "GET", base+"/metadata/d", nil, 200)["meta"].(map[string]any)["d"]; got != "4" {
		t.Fatalf("item %v", got)
	}
	h.json("a", "DELETE", base+"/metadata/d", nil, 204)
	h.fail("a", "GET", base+"/metadata/d", nil, 404)
	h.fail("ra", "POST", base+"/metadata", map[string]any{"metadata": map[string]any{"x": "y"}}, 403)
	h.fail("b", "GET", base+"/metadata", nil, 404)
	// Tags need 2.26.
	h.fail("a", "GET", base+"/tags", nil, 404)
	h.json("a", "PUT", base+"/tags/t1", nil, 201, mv("2.26"))
	h.json("a", "PUT", base+"/tags/t1", nil, 204, mv("2.26"))
	h.json("a", "GET", base+"/tags/t1", nil, 204, mv("2.26"))
	tags := h.json("a", "PUT", base+"/tags", map[string]any{"tags": []any{"x", "y", "x"}}, 200, mv("2.26"))["tags"].([]any)
	if len(tags) != 2 {
		t.Fatalf("tags %v", tags)
	}
	h.fail("a", "GET", base+"/tags/t1", nil, 404, mv("2.26"))
	h.json("a", "DELETE", base+"/tags/x", nil, 204, mv("2.26"))
	h.json("a", "DELETE", base+"/tags", nil, 204, mv("2.26"))
	if n := len(h.json("a", "GET", base+"/tags", nil, 200, mv("2.26"))["tags"].([]any)); n != 0 {
		t.Fatalf("%d tags after delete all", n)
	}
}

func TestServerResizeRebuildSnapshot(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"resize": map[string]any{"flavorRef": "1"}}, 400)
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"resize": map[string]any{"flavorRef": "999"}}, 400)
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"confirmResize": nil}, 409)
	h.action("a", id, map[string]any{"resize": map[string]any{"flavorRef": "2"}}, 202)
	s := h.waitStatus("a", id, "VERIFY_RESIZE")
	if s["flavor"].(map[string]any)["id"] != "2" {
		t.Fatalf("flavor during resize %v", s["flavor"])
	}
	h.action("a", id, map[string]any{"revertResize": nil}, 202)
	s = h.waitStatus("a", id, "ACTIVE")
	if s["flavor"].(map[string]any)["id"] != "1" {
		t.Fatalf("flavor after revert %v", s["flavor"])
	}
	h.action("a", id, map[string]any{"resize": map[string]any{"flavorRef": "2"}}, 202)
	h.waitStatus("a", id, "VERIFY_RESIZE")
	h.action("a", id, map[string]any{"confirmResize": nil}, 202)
	h.waitStatus("a", id, "ACTIVE")
	stats := h.json("admin", "GET", "/v2.1/os-hypervisors/statistics", nil, 200)["hypervisor_statistics"].(map[string]any)
	if stats["memory_mb_used"] != 2048.0 {
		t.Fatalf("claims after confirm: %v", stats)
	}
	// Both resizes are migrations for admins: one reverted, one confirmed.
	migs := h.json("admin", "GET", "/v2.1/os-migrations?instance_uuid="+id, nil, 200, mv("2.59"))["migrations"].([]any)
	if len(migs) != 2 || migs[0].(map[string]any)["status"] != "confirmed" || migs[1].(map[string]any)["status"] != "reverted" ||
		migs[0].(map[string]any)["migration_type"] != "resize" || migs[0].(map[string]any)["source_compute"] != "host1" {
		t.Fatalf("migrations %v", migs)
	}
	h.fail("a", "GET", "/v2.1/os-migrations", nil, 403)
	h.json("admin", "GET", "/v2.1/servers/"+id+"/migrations", nil, 200, mv("2.23"))
	// Rebuild answers the server with a new admin password.
	rb := h.action("a", id, map[string]any{"rebuild": map[string]any{"imageRef": imageID, "name": "rebuilt"}}, 202)["server"].(map[string]any)
	if rb["adminPass"] == nil || rb["name"] != "rebuilt" {
		t.Fatalf("rebuild answer %v", rb)
	}
	h.waitStatus("a", id, "ACTIVE")
	// createImage: Location before 2.45, image_id from 2.45.
	st, _, hdr := h.do("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"createImage": map[string]any{"name": "snap"}})
	if st != 202 || !strings.Contains(hdr.Get("Location"), "/images/") {
		t.Fatalf("createImage: %d %v", st, hdr)
	}
	h.waitStatus("a", id, "ACTIVE")
	h.eventually("snapshot task cleared", func() bool { return h.server("a", id)["OS-EXT-STS:task_state"] == nil })
	img := h.action("a", id, map[string]any{"createImage": map[string]any{"name": "snap2"}}, 202, mv("2.45"))
	if len(img["image_id"].(string)) != 36 {
		t.Fatalf("2.45 createImage %v", img)
	}
}

func TestNoValidHostAndReschedule(t *testing.T) {
	h := newHarness(t)
	// No hosts at all: ERROR with Nova's fault.
	id := h.boot("a", "nowhere", nil)
	s := h.waitStatus("a", id, "ERROR")
	fault := s["fault"].(map[string]any)
	if fault["code"] != 500.0 || !strings.Contains(fault["message"].(string), "No valid host was found") {
		t.Fatalf("fault %v", fault)
	}
	if _, ok := fault["details"]; ok {
		t.Fatalf("members see 500 fault details: %v", fault)
	}
	h.json("a", "DELETE", "/v2.1/servers/"+id, nil, 204)
	h.fail("a", "GET", "/v2.1/servers/"+id, nil, 404)

	// A host that fails builds: the build is retried on the other host.
	bad := h.addHost(fakeagent.Config{Host: "bad", MemoryMB: 64 * 1024, FailBuild: func(compute.InstanceSpec) (*compute.Fault, bool) {
		return &compute.Fault{Code: 500, Message: "disk full"}, true
	}})
	h.addHost(fakeagent.Config{Host: "good", MemoryMB: 8 * 1024})
	id = h.boot("a", "retry", nil)
	s = h.waitStatus("admin", id, "ACTIVE")
	if s["OS-EXT-SRV-ATTR:host"] != "good" {
		t.Fatalf("rebuilt on %v", s["OS-EXT-SRV-ATTR:host"])
	}
	if len(bad.Commands()) != 1 {
		t.Fatalf("bad host saw %d builds", len(bad.Commands()))
	}
	// With the good host disabled the retry has nowhere to go: ERROR,
	// and no claim is left behind.
	h.json("admin", "PUT", "/v2.1/os-services/disable", map[string]any{"host": "good", "binary": "nova-compute"}, 200)
	id = h.boot("a", "fails", nil)
	s = h.waitStatus("admin", id, "ERROR")
	if !strings.Contains(s["fault"].(map[string]any)["message"].(string), "Exceeded maximum number of retries") {
		t.Fatalf("fault %v", s["fault"])
	}
	hv := h.json("admin", "GET", "/v2.1/os-hypervisors/detail", nil, 200)["hypervisors"].([]any)
	for _, x := range hv {
		m := x.(map[string]any)
		if m["hypervisor_hostname"] == "bad" && m["memory_mb_used"] != 0.0 {
			t.Fatalf("claim left on bad host: %v", m)
		}
	}
}

// TestServerListPaging walks server lists page by page, with and without
// sort keys and filters, and checks each walk returns exactly what one
// unpaged call returns, in Nova's order, so paging in SQL (from the
// marker's place, up to the limit) loses, repeats and reorders nothing.
// Names repeat and descriptions are partly NULL, to test ties and NULLs.
func TestServerListPaging(t *testing.T) {
	h := newHarness(t, func(c *computeConfig) {
		c.Quotas = map[string]int{"instances": -1, "cores": -1, "ram": -1}
	})
	h.addHost(fakeagent.Config{Host: "host1", VCPUs: 64})
	names := []string{"web", "db", "web", "app", "db", "web", "app", "web", "db"}
	var ids []string // in creation order
	for n, name := range names {
		extra := map[string]any{"metadata": map[string]any{"n": fmt.Sprint(n)}, "networks": "none"}
		if n%3 == 0 {
			extra["description"] = fmt.Sprint("desc-", n%2)
		}
		if n%2 == 0 {
			extra["tags"] = []any{"even", fmt.Sprint("t", n)}
		}
		ids = append(ids, h.boot("a", name, extra, mv("2.52")))
	}
	other := h.boot("b", "web", nil)
	for _, id := range ids {
		h.waitStatus("a", id, "ACTIVE")
	}
	h.waitStatus("b", other, "ACTIVE")
	stopped, gone := ids[4], ids[7]
	h.action("a", stopped, map[string]any{"os-stop": nil}, 202)
	h.waitStatus("a", stopped, "SHUTOFF")
	h.json("a", "DELETE", "/v2.1/servers/"+gone, nil, 204)
	h.eventually("server deleted", func() bool {
		st, _, _ := h.do("a", "GET", "/v2.1/servers/"+gone, nil)
		return st == 404
	})

	list := func(token, query string, opts ...reqOpt) ([]string, bool) {
		t.Helper()
		body := h.json(token, "GET", "/v2.1/servers/detail?"+query, nil, 200, opts...)
		var out []string
		for _, s := range body["servers"].([]any) {
			out = append(out, s.(map[string]any)["id"].(string))
		}
		return out, body["servers_links"] != nil
	}
	walk := func(token, query string, limit int, opts ...reqOpt) []string {
		t.Helper()
		var out []string
		marker := ""
		for range 20 {
			q := fmt.Sprintf("%s&limit=%d", query, limit)
			if marker != "" {
				q += "&marker=" + marker
			}
			page, next := list(token, q, opts...)
			if next != (len(page) == limit) {
				t.Fatalf("%s: next link %v on a page of %d", q, next, len(page))
			}
			out = append(out, page...)
			if !next {
				return out
			}
			marker = page[len(page)-1]
		}
		t.Fatalf("%s: no end after 20 pages", query)
		return nil
	}
	// Nova's default order: newest first.
	var live []string
	for n := len(ids) - 1; n >= 0; n-- {
		if ids[n] != gone {
			live = append(live, ids[n])
		}
	}
	if got, _ := list("a", ""); !reflect.DeepEqual(got, live) {
		t.Fatalf("default order %v, want newest first %v", got, live)
	}
	for _, c := range []struct {
		token, query string
		want         int // servers in the unpaged list
	}{
		{"a", "", 8},
		{"a", "sort_key=display_name&sort_dir=asc", 8},
		{"a", "sort_key=display_name&sort_dir=desc&sort_key=created_at&sort_dir=asc", 8},
		{"a", "sort_key=display_description&sort_dir=asc", 8},
		{"a", "sort_key=display_description&sort_dir=desc&sort_key=display_name", 8},
		{"admin", "all_tenants=1&sort_key=host&sort_dir=asc&sort_key=task_state", 9},
		{"a", "status=ACTIVE", 7},
		{"a", "status=SHUTOFF&status=ACTIVE", 8},
		{"a", "name=^web", 3},
		{"a", "tags=even", 5},
		{"a", "not-tags-any=even", 3},
		{"a", "tags-any=t0,t2,t6&not-tags=even,t2", 2},
		{"a", "changes-since=2000-01-01T00:00:00Z", 9},
		{"admin", "all_tenants=1", 9},
		{"admin", "all_tenants=1&deleted=true", 10},
		{"admin", "all_tenants=1&project_id=" + projA + "&status=ACTIVE&name=web", 3},
	} {
		full, _ := list(c.token, c.query, mv("2.26"))
		if len(full) != c.want {
			t.Fatalf("%s: %d servers, want %d", c.query, len(full), c.want)
		}
		for _, limit := range []int{1, 2, 3} {
			if got := walk(c.token, c.query, limit, mv("2.26")); !reflect.DeepEqual(got, full) {
				t.Fatalf("%s: pages of %d give %v, one call %v", c.query, limit, got, full)
			}
		}
	}
	// The marker must be a server the same query lists.
	for _, q := range []string{
		"marker=" + other,                             // another project's
		"marker=" + gone,                              // deleted
		"status=ACTIVE&marker=" + stopped,             // filtered out in SQL's superset, then by status
		"name=^db&marker=" + ids[0],                   // filtered out by name
		"tags=even&marker=" + ids[1],                  // filtered out by tag
		"marker=00000000-0000-0000-0000-000000000000", // none
	} {
		h.fail("a", "GET", "/v2.1/servers?"+q, nil, 400, mv("2.26"))
	}
	if got, _ := list("admin", "all_tenants=1&deleted=true&limit=1&marker="+ids[8]); len(got) != 1 || got[0] != gone {
		t.Fatalf("deleted marker page %v, want the deleted server %s", got, gone)
	}
	if got, next := list("a", "limit=0"); len(got) != 0 || next {
		t.Fatalf("limit=0 listed %v", got)
	}
	// The detail view of a page carries each server's own metadata and tags.
	body := h.json("a", "GET", "/v2.1/servers/detail?limit=3&marker="+ids[8], nil, 200, mv("2.26"))
	for _, s := range body["servers"].([]any) {
		m := s.(map[string]any)
		n := -1
		for k, id := range ids {
			if id == m["id"] {
				n = k
			}
		}
		if md := m["metadata"].(map[string]any); md["n"] != fmt.Sprint(n) || len(md) != 1 {
			t.Fatalf("server %d metadata %v", n, md)
		}
		var want []any
		if n%2 == 0 {
			want = []any{"even", fmt.Sprint("t", n)}
		}
		if tags := m["tags"].([]any); !reflect.DeepEqual(tags, want) && !(len(tags) == 0 && len(want) == 0) {
			t.Fatalf("server %d tags %v, want %v", n, tags, want)
		}
	}
}
