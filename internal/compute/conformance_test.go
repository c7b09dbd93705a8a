package compute_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

// addrKeys is the sorted key set of each address of a server view.
func addrKeys(t *testing.T, srv map[string]any) [][]string {
	t.Helper()
	var out [][]string
	for _, list := range srv["addresses"].(map[string]any) {
		for _, a := range list.([]any) {
			out = append(out, sortedKeys(a.(map[string]any)))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no addresses in %v", srv)
	}
	return out
}

// Nova's update and rebuild answers (before 2.75) list addresses without
// OS-EXT-IPS:type / OS-EXT-IPS-MAC:mac_addr (extend_address=False);
// Tempest's response schemas for them refuse the extra keys. Show keeps
// them, and from 2.75 update and rebuild answer the full show view.
func TestUpdateRebuildPlainAddresses(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	id := h.boot("a", "vm", map[string]any{"networks": []any{map[string]any{"uuid": "3b7d6b2c-0a2e-4e47-9f3b-8f0b7c4e2d11"}}})
	h.waitStatus("a", id, "ACTIVE")
	plain := []string{"addr", "version"}
	extended := []string{"OS-EXT-IPS-MAC:mac_addr", "OS-EXT-IPS:type", "addr", "version"}
	for _, k := range addrKeys(t, h.server("a", id)) {
		if !reflect.DeepEqual(k, extended) {
			t.Fatalf("show address keys %v", k)
		}
	}
	up := h.json("a", "PUT", "/v2.1/servers/"+id, map[string]any{"server": map[string]any{"name": "vm2"}}, 200)["server"].(map[string]any)
	for _, k := range addrKeys(t, up) {
		if !reflect.DeepEqual(k, plain) {
			t.Fatalf("update address keys %v", k)
		}
	}
	rb := h.action("a", id, map[string]any{"rebuild": map[string]any{"imageRef": imageID}}, 202)["server"].(map[string]any)
	for _, k := range addrKeys(t, rb) {
		if !reflect.DeepEqual(k, plain) {
			t.Fatalf("rebuild address keys %v", k)
		}
	}
	h.waitStatus("a", id, "ACTIVE")
	up = h.json("a", "PUT", "/v2.1/servers/"+id, map[string]any{"server": map[string]any{"name": "vm3"}}, 200, mv("2.75"))["server"].(map[string]any)
	for _, k := range addrKeys(t, up) {
		if !reflect.DeepEqual(k, extended) {
			t.Fatalf("2.75 update address keys %v", k)
		}
	}
}

// snapImages is an ImageService that knows every image and records the
// properties of the snapshots it is asked to register.
type snapImages struct {
	mu    sync.Mutex
	props []map[string]string
}

func (f *snapImages) Image(_ context.Context, _, id string) (*compute.ImageInfo, error) {
	return &compute.ImageInfo{ID: id, Name: "img", Status: "active"}, nil
}

func (f *snapImages) CreateSnapshot(_ context.Context, _, _ string, props map[string]string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.props = append(f.props, props)
	return "5a9c7d3e-0000-4000-8000-000000000001", nil
}

// createImage's metadata is applied over Nova's own snapshot properties:
// Tempest's test_create_delete_image sends image_type "test" and reads
// it back.
func TestCreateImageMetadataOverrides(t *testing.T) {
	imgs := &snapImages{}
	h := newHarness(t, func(c *compute.Config) { c.Images = imgs })
	h.addHost(fakeagent.Config{Host: "host1"})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"createImage": map[string]any{"name": "snap", "metadata": map[string]any{"": ""}}}, 400)
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"createImage": map[string]any{"name": "snap", "metadata": map[string]any{strings.Repeat("a", 256): "b"}}}, 400)
	h.action("a", id, map[string]any{"createImage": map[string]any{"name": "snap", "metadata": map[string]any{"image_type": "test", "k": "v"}}}, 202)
	imgs.mu.Lock()
	defer imgs.mu.Unlock()
	if len(imgs.props) != 1 {
		t.Fatalf("snapshots %v", imgs.props)
	}
	p := imgs.props[0]
	if p["image_type"] != "test" || p["k"] != "v" || p["instance_uuid"] != id || p["user_id"] == "" {
		t.Fatalf("snapshot properties %v", p)
	}
}

// accessIPv6 is kept in canonical form (RFC 5952), as Nova (netaddr)
// does, on create, update and rebuild; a bad value is a 400.
func TestAccessIPv6Canonical(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	id := h.boot("a", "vm", map[string]any{"accessIPv6": "0000:0000:0000:0000:0000:babe:220.12.22.2"})
	if got := h.waitStatus("a", id, "ACTIVE")["accessIPv6"]; got != "::babe:dc0c:1602" {
		t.Fatalf("create: accessIPv6 %v", got)
	}
	up := h.json("a", "PUT", "/v2.1/servers/"+id, map[string]any{"server": map[string]any{"accessIPv6": "2001:DB8:0:0:0:0:0:1"}}, 200)["server"].(map[string]any)
	if up["accessIPv6"] != "2001:db8::1" {
		t.Fatalf("update: accessIPv6 %v", up["accessIPv6"])
	}
	rb := h.action("a", id, map[string]any{"rebuild": map[string]any{"imageRef": imageID, "accessIPv6": "fe80:0::1"}}, 202)["server"].(map[string]any)
	if rb["accessIPv6"] != "fe80::1" {
		t.Fatalf("rebuild: accessIPv6 %v", rb["accessIPv6"])
	}
	h.waitStatus("a", id, "ACTIVE")
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"rebuild": map[string]any{"imageRef": imageID, "accessIPv6": "10.0.0.1"}}, 400)
	h.fail("a", "PUT", "/v2.1/servers/"+id, map[string]any{"server": map[string]any{"accessIPv6": "nope"}}, 400)
}

// Flavor create takes is_public as Nova's boolean type does (Tempest
// sends "True") and an id given as a JSON number.
func TestFlavorCreateNovaTypes(t *testing.T) {
	h := newHarness(t)
	f := h.json("admin", "POST", "/v2.1/flavors", map[string]any{"flavor": map[string]any{
		"name": "f1", "ram": 64, "vcpus": 1, "disk": 0, "id": 367534715, "os-flavor-access:is_public": "False"}}, 200)["flavor"].(map[string]any)
	if f["id"] != "367534715" || f["os-flavor-access:is_public"] != false {
		t.Fatalf("flavor %v", f)
	}
	f = h.json("admin", "POST", "/v2.1/flavors", map[string]any{"flavor": map[string]any{
		"name": "f2", "ram": 64, "vcpus": 1, "disk": 0, "os-flavor-access:is_public": "True"}}, 200)["flavor"].(map[string]any)
	if f["os-flavor-access:is_public"] != true {
		t.Fatalf("flavor %v", f)
	}
	h.fail("admin", "POST", "/v2.1/flavors", map[string]any{"flavor": map[string]any{
		"name": "f3", "ram": 64, "vcpus": 1, "disk": 0, "os-flavor-access:is_public": "maybe"}}, 400)
	h.fail("admin", "POST", "/v2.1/flavors", map[string]any{"flavor": map[string]any{
		"name": "f4", "ram": 64, "vcpus": 1, "disk": 0, "id": []int{1}}}, 400)
}

// os-resetState sets vm_state to active or error and clears the task;
// admins only.
func TestResetState(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-resetState": map[string]any{"state": "error"}}, 403)
	h.fail("admin", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-resetState": map[string]any{"state": "stopped"}}, 400)
	h.fail("admin", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-resetState": map[string]any{}}, 400)
	h.action("admin", id, map[string]any{"os-resetState": map[string]any{"state": "error"}}, 202)
	if s := h.server("a", id); s["status"] != "ERROR" || s["OS-EXT-STS:task_state"] != nil {
		t.Fatalf("after reset to error: %v %v", s["status"], s["OS-EXT-STS:task_state"])
	}
	h.action("admin", id, map[string]any{"os-resetState": map[string]any{"state": "active"}}, 202)
	if s := h.server("a", id); s["status"] != "ACTIVE" {
		t.Fatalf("after reset to active: %v", s["status"])
	}
	h.fail("admin", "POST", "/v2.1/servers/00000000-0000-4000-8000-000000000000/action", map[string]any{"os-resetState": map[string]any{"state": "error"}}, 404)
}

// os-hosts: power actions and maintenance mode are 501 (as Nova's
// libvirt driver), status enable/disable switches the host's service;
// admins only, bad bodies 400, unknown hosts 404.
func TestOSHostsActions(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	for _, a := range []string{"startup", "shutdown", "reboot"} {
		h.fail("a", "GET", "/v2.1/os-hosts/host1/"+a, nil, 403)
		h.fail("admin", "GET", "/v2.1/os-hosts/nohost/"+a, nil, 404)
		h.fail("admin", "GET", "/v2.1/os-hosts/host1/"+a, nil, 501)
	}
	h.fail("a", "PUT", "/v2.1/os-hosts/host1", map[string]any{"status": "enable"}, 403)
	h.fail("admin", "PUT", "/v2.1/os-hosts/host1", map[string]any{}, 400)
	h.fail("admin", "PUT", "/v2.1/os-hosts/host1", map[string]any{"status": "bad", "maintenance_mode": "enable"}, 400)
	h.fail("admin", "PUT", "/v2.1/os-hosts/host1", map[string]any{"status": "enable", "maintenance_mode": "bad"}, 400)
	h.fail("admin", "PUT", "/v2.1/os-hosts/nohost", map[string]any{"status": "enable", "maintenance_mode": "enable"}, 404)
	h.fail("admin", "PUT", "/v2.1/os-hosts/host1", map[string]any{"maintenance_mode": "enable"}, 501)
	if got := h.json("admin", "PUT", "/v2.1/os-hosts/host1", map[string]any{"status": "disable"}, 200); got["status"] != "disabled" || got["host"] != "host1" {
		t.Fatalf("disable: %v", got)
	}
	svcs := h.json("admin", "GET", "/v2.1/os-services?host=host1", nil, 200)["services"].([]any)
	if svcs[0].(map[string]any)["status"] != "disabled" {
		t.Fatalf("service after disable: %v", svcs)
	}
	h.json("admin", "PUT", "/v2.1/os-hosts/host1", map[string]any{"status": "enable"}, 200)
	h.fail("admin", "GET", "/v2.1/os-hosts/host1/reboot", nil, 404, mv("2.43"))
}

// migrate / os-migrateLive: 404 for an unknown server, 409 in a state
// Nova refuses, and on a single host Nova's "no valid host" (400).
func TestMigrateSingleHost(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"migrate": nil}, 403)
	h.fail("admin", "POST", "/v2.1/servers/00000000-0000-4000-8000-000000000000/action", map[string]any{"migrate": nil}, 404)
	h.fail("admin", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"migrate": nil}, 400)
	h.fail("admin", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-migrateLive": map[string]any{"host": nil, "block_migration": "auto"}}, 400)
	h.action("a", id, map[string]any{"suspend": nil}, 202)
	h.waitStatus("a", id, "SUSPENDED")
	h.fail("admin", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"migrate": nil}, 409)
	h.fail("admin", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-migrateLive": map[string]any{"host": nil, "block_migration": "auto"}}, 409)
}

// os-instance_usage_audit_log: admins only; every host has not run the
// (disabled) audit; a bad timestamp is a 400.
func TestInstanceUsageAuditLog(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	h.fail("a", "GET", "/v2.1/os-instance_usage_audit_log", nil, 403)
	h.fail("a", "GET", "/v2.1/os-instance_usage_audit_log/2026-11-27%2004:36:00", nil, 403)
	l := h.json("admin", "GET", "/v2.1/os-instance_usage_audit_log", nil, 200)["instance_usage_audit_logs"].(map[string]any)
	if l["num_hosts"] != 1.0 || l["num_hosts_not_run"] != 1.0 || l["overall_status"] != "0 of 1 hosts done. 0 errors." {
		t.Fatalf("audit logs %v", l)
	}
	one := h.json("admin", "GET", "/v2.1/os-instance_usage_audit_log/2026-03-15%2010:00:00", nil, 200)["instance_usage_audit_log"].(map[string]any)
	if one["period_beginning"] != "2026-02-01 00:00:00" || one["period_ending"] != "2026-03-01 00:00:00" {
		t.Fatalf("audit log %v", one)
	}
	h.fail("admin", "GET", "/v2.1/os-instance_usage_audit_log/invalid_time", nil, 400)
}

// A trailing slash after a resource is a 404, as Nova's router answers
// (not the collection); the version document still answers /v2.1/.
func TestTrailingSlashNotFound(t *testing.T) {
	h := newHarness(t)
	h.fail("admin", "DELETE", "/v2.1/images/", nil, 404)
	h.fail("admin", "DELETE", "/v2.1/os-security-groups/", nil, 404)
	h.fail("admin", "GET", "/v2.1/os-simple-tenant-usage/", nil, 404)
	h.fail("a", "GET", "/v2.1/servers/", nil, 404)
	h.json("a", "GET", "/v2.1/servers", nil, 200)
	h.json("a", "GET", "/v2.1/", nil, 200)
}

// limit=0 lists no servers, as Nova.
func TestServerListZeroLimit(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	h.boot("a", "vm", nil)
	if got := h.json("a", "GET", "/v2.1/servers?limit=0", nil, 200)["servers"].([]any); len(got) != 0 {
		t.Fatalf("limit=0: %v", got)
	}
	if got := h.json("a", "GET", "/v2.1/servers/detail?limit=0", nil, 200)["servers"].([]any); len(got) != 0 {
		t.Fatalf("detail limit=0: %v", got)
	}
	if got := h.json("a", "GET", "/v2.1/servers?limit=1", nil, 200)["servers"].([]any); len(got) != 1 {
		t.Fatalf("limit=1: %v", got)
	}
}

// restore is a 409 (nothing is ever soft-deleted), forceDelete deletes;
// both 404 for an unknown server.
func TestDeferredDeleteActions(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "host1"})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	missing := "/v2.1/servers/00000000-0000-4000-8000-000000000000/action"
	h.fail("a", "POST", missing, map[string]any{"restore": nil}, 404)
	h.fail("a", "POST", missing, map[string]any{"forceDelete": nil}, 404)
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"restore": nil}, 409)
	h.action("a", id, map[string]any{"forceDelete": nil}, 202)
	h.eventually("server deleted", func() bool {
		st, _, _ := h.do("a", "GET", "/v2.1/servers/"+id, nil)
		return st == 404
	})
}
