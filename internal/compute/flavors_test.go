package compute_test

import (
	"net/http"
	"strings"
	"testing"
)

func flavorIDs(body map[string]any) []string {
	var out []string
	for _, f := range body["flavors"].([]any) {
		out = append(out, f.(map[string]any)["id"].(string))
	}
	return out
}

func TestDefaultFlavors(t *testing.T) {
	h := newHarness(t)
	body := h.json("a", "GET", "/v2.1/flavors/detail", nil, 200)
	want := map[string]string{"1": "m1.tiny", "2": "m1.small", "3": "m1.medium", "4": "m1.large", "5": "m1.xlarge", "42": "m1.nano", "84": "m1.micro"}
	got := map[string]string{}
	for _, f := range body["flavors"].([]any) {
		m := f.(map[string]any)
		got[m["id"].(string)] = m["name"].(string)
		if m["id"] == "1" {
			if m["ram"] != 512.0 || m["vcpus"] != 1.0 || m["disk"] != 1.0 || m["swap"] != "" || m["os-flavor-access:is_public"] != true {
				t.Fatalf("m1.tiny: %v", m)
			}
			if _, ok := m["description"]; ok {
				t.Fatalf("2.1 flavor has a description: %v", m)
			}
		}
	}
	for id, name := range want {
		if got[id] != name {
			t.Fatalf("flavor %s is %q, want %q (all: %v)", id, got[id], name, got)
		}
	}
	// Name lookups are 404s, so clients fall back to listing.
	h.fail("a", "GET", "/v2.1/flavors/m1.tiny", nil, 404)
	// The CLI's literal is_public=None.
	h.json("admin", "GET", "/v2.1/flavors/detail?is_public=None", nil, 200)
	h.fail("admin", "GET", "/v2.1/flavors/detail?is_public=maybe", nil, 400)
	ids := flavorIDs(h.json("a", "GET", "/v2.1/flavors?minRam=4096", nil, 200))
	if strings.Join(ids, ",") != "3,4,5" {
		t.Fatalf("minRam filter: %v", ids)
	}
	ids = flavorIDs(h.json("a", "GET", "/v2.1/flavors?minDisk=40", nil, 200))
	if strings.Join(ids, ",") != "3,4,5" {
		t.Fatalf("minDisk filter: %v", ids)
	}
	h.fail("a", "GET", "/v2.1/flavors?minRam=lots", nil, 400)
	// Pagination with a next link.
	page := h.json("a", "GET", "/v2.1/flavors?limit=2", nil, 200)
	if len(page["flavors"].([]any)) != 2 || page["flavors_links"] == nil {
		t.Fatalf("page: %v", page)
	}
	page = h.json("a", "GET", "/v2.1/flavors?limit=2&marker=2", nil, 200)
	if strings.Join(flavorIDs(page), ",") != "3,4" {
		t.Fatalf("page after marker: %v", flavorIDs(page))
	}
	h.fail("a", "GET", "/v2.1/flavors?marker=nope", nil, 400)
	// Swap is an integer from 2.75, descriptions appear from 2.55.
	f := h.json("a", "GET", "/v2.1/flavors/1", nil, 200, mv("2.75"))["flavor"].(map[string]any)
	if f["swap"] != 0.0 || f["description"] != nil {
		t.Fatalf("2.75 flavor: %v", f)
	}
	if _, ok := f["extra_specs"]; !ok {
		t.Fatalf("2.61 flavor without extra_specs: %v", f)
	}
}

func TestFlavorManage(t *testing.T) {
	h := newHarness(t)
	body := map[string]any{"flavor": map[string]any{"name": "custom", "ram": "1024", "vcpus": 2, "disk": 10, "id": "c1", "os-flavor-access:is_public": false}}
	h.fail("a", "POST", "/v2.1/flavors", body, http.StatusForbidden)
	f := h.json("admin", "POST", "/v2.1/flavors", body, 200)["flavor"].(map[string]any)
	if f["id"] != "c1" || f["ram"] != 1024.0 || f["os-flavor-access:is_public"] != false {
		t.Fatalf("created: %v", f)
	}
	h.fail("admin", "POST", "/v2.1/flavors", body, http.StatusConflict)
	dup := map[string]any{"flavor": map[string]any{"name": "other", "ram": 1, "vcpus": 1, "disk": 1, "id": "c1"}}
	if msg := h.fail("admin", "POST", "/v2.1/flavors", dup, 409); msg != "Flavor with ID c1 already exists." {
		t.Fatalf("duplicate id message %q", msg)
	}
	for _, bad := range []map[string]any{
		{"name": "x", "ram": 0, "vcpus": 1, "disk": 1},
		{"name": "x", "ram": 1, "vcpus": 1},
		{"name": " x", "ram": 1, "vcpus": 1, "disk": 1},
		{"name": "x", "ram": 1.5, "vcpus": 1, "disk": 1},
		{"name": "x", "ram": 1, "vcpus": 1, "disk": 1, "description": "too new"},
		{"name": "x", "ram": 1, "vcpus": 1, "disk": 1, "bogus": true},
	} {
		h.fail("admin", "POST", "/v2.1/flavors", map[string]any{"flavor": bad}, 400)
	}
	// Private: invisible to projects without access.
	h.fail("a", "GET", "/v2.1/flavors/c1", nil, 404)
	if ids := flavorIDs(h.json("admin", "GET", "/v2.1/flavors?is_public=false", nil, 200)); strings.Join(ids, ",") != "c1" {
		t.Fatalf("private listing: %v", ids)
	}
	acc := h.json("admin", "POST", "/v2.1/flavors/c1/action", map[string]any{"addTenantAccess": map[string]any{"tenant": projA}}, 200)
	if len(acc["flavor_access"].([]any)) != 1 {
		t.Fatalf("access: %v", acc)
	}
	h.fail("admin", "POST", "/v2.1/flavors/c1/action", map[string]any{"addTenantAccess": map[string]any{"tenant": projA}}, 409)
	h.fail("admin", "POST", "/v2.1/flavors/1/action", map[string]any{"addTenantAccess": map[string]any{"tenant": projA}}, 409, mv("2.7"))
	h.fail("admin", "GET", "/v2.1/flavors/1/os-flavor-access", nil, 404)
	h.json("a", "GET", "/v2.1/flavors/c1", nil, 200)
	if ids := flavorIDs(h.json("a", "GET", "/v2.1/flavors", nil, 200)); !strings.Contains(strings.Join(ids, ","), "c1") {
		t.Fatalf("shared flavor not listed: %v", ids)
	}
	h.fail("b", "GET", "/v2.1/flavors/c1", nil, 404)
	h.fail("a", "POST", "/v2.1/flavors/c1/action", map[string]any{"removeTenantAccess": map[string]any{"tenant": projA}}, 403)
	h.json("admin", "POST", "/v2.1/flavors/c1/action", map[string]any{"removeTenantAccess": map[string]any{"tenant": projA}}, 200)
	h.fail("admin", "POST", "/v2.1/flavors/c1/action", map[string]any{"removeTenantAccess": map[string]any{"tenant": projA}}, 404)
	// Description (2.55).
	f = h.json("admin", "PUT", "/v2.1/flavors/c1", map[string]any{"flavor": map[string]any{"description": "new"}}, 200, mv("2.55"))["flavor"].(map[string]any)
	if f["description"] != "new" {
		t.Fatalf("description: %v", f)
	}
	h.fail("admin", "PUT", "/v2.1/flavors/c1", map[string]any{"flavor": map[string]any{"description": "x"}}, 405)
	// Generated id when none is given.
	g := h.json("admin", "POST", "/v2.1/flavors", map[string]any{"flavor": map[string]any{"name": "gen", "ram": 64, "vcpus": 1, "disk": 0}}, 200)["flavor"].(map[string]any)
	if len(g["id"].(string)) != 36 {
		t.Fatalf("generated id %v", g["id"])
	}
	h.fail("a", "DELETE", "/v2.1/flavors/c1", nil, 403)
	h.json("admin", "DELETE", "/v2.1/flavors/c1", nil, 202)
	h.fail("admin", "DELETE", "/v2.1/flavors/c1", nil, 404)
}

func TestFlavorExtraSpecs(t *testing.T) {
	h := newHarness(t)
	specs := h.json("admin", "POST", "/v2.1/flavors/1/os-extra_specs", map[string]any{"extra_specs": map[string]any{"hw:cpu_policy": "shared", "quota:n": 5}}, 200)
	if specs["extra_specs"].(map[string]any)["quota:n"] != "5" {
		t.Fatalf("numbers are stored as text: %v", specs)
	}
	h.fail("a", "POST", "/v2.1/flavors/1/os-extra_specs", map[string]any{"extra_specs": map[string]any{"k": "v"}}, 403)
	if got := h.json("a", "GET", "/v2.1/flavors/1/os-extra_specs/hw:cpu_policy", nil, 200); got["hw:cpu_policy"] != "shared" {
		t.Fatalf("show: %v", got)
	}
	h.json("admin", "PUT", "/v2.1/flavors/1/os-extra_specs/hw:cpu_policy", map[string]any{"hw:cpu_policy": "dedicated"}, 200)
	h.fail("admin", "PUT", "/v2.1/flavors/1/os-extra_specs/hw:cpu_policy", map[string]any{"other": "x"}, 400)
	h.fail("admin", "PUT", "/v2.1/flavors/1/os-extra_specs/a", map[string]any{"a": "x", "b": "y"}, 400)
	all := h.json("a", "GET", "/v2.1/flavors/1/os-extra_specs", nil, 200)["extra_specs"].(map[string]any)
	if all["hw:cpu_policy"] != "dedicated" || len(all) != 2 {
		t.Fatalf("all: %v", all)
	}
	h.json("admin", "DELETE", "/v2.1/flavors/1/os-extra_specs/quota:n", nil, 200)
	h.fail("admin", "DELETE", "/v2.1/flavors/1/os-extra_specs/quota:n", nil, 404)
	h.fail("a", "GET", "/v2.1/flavors/1/os-extra_specs/quota:n", nil, 404)
	h.fail("admin", "POST", "/v2.1/flavors/1/os-extra_specs", map[string]any{"extra_specs": map[string]any{"bad key!": "v"}}, 400)
	h.fail("admin", "POST", "/v2.1/flavors/nope/os-extra_specs", map[string]any{"extra_specs": map[string]any{"k": "v"}}, 404)
}
