package identity

import (
	"net/http"
	"testing"
)

// serviceID finds a catalog service by type.
func (c *testCloud) serviceID(typ string) string {
	c.t.Helper()
	l := c.do("GET", "/v3/services?type="+typ, c.adminToken, nil).want(http.StatusOK).list("services")
	if len(l) != 1 {
		c.t.Fatalf("service %s: %v", typ, l)
	}
	return l[0].(map[string]any)["id"].(string)
}

func TestRegisteredLimits(t *testing.T) {
	c := newTestCloud(t)
	compute, image := c.serviceID("compute"), c.serviceID("image")
	created := c.do("POST", "/v3/registered_limits", c.adminToken, map[string]any{"registered_limits": []any{
		map[string]any{"service_id": compute, "resource_name": "cores", "default_limit": 10, "description": "vCPUs"},
		map[string]any{"service_id": compute, "region_id": "RegionOne", "resource_name": "cores", "default_limit": 20},
		map[string]any{"service_id": image, "resource_name": "images", "default_limit": -1},
	}}).want(http.StatusCreated)
	list := created.list("registered_limits")
	if len(list) != 3 || created.get("links") != nil {
		t.Fatalf("created %s", created.Body)
	}
	first := list[0].(map[string]any)
	id := first["id"].(string)
	if first["default_limit"].(float64) != 10 || first["region_id"] != nil || first["description"] != "vCPUs" {
		t.Fatalf("first %v", first)
	}

	if l := c.do("GET", "/v3/registered_limits?service_id="+compute, c.adminToken, nil).want(http.StatusOK).list("registered_limits"); len(l) != 2 {
		t.Fatalf("by service %v", l)
	}
	if l := c.do("GET", "/v3/registered_limits?region_id=RegionOne", c.adminToken, nil).list("registered_limits"); len(l) != 1 {
		t.Fatalf("by region %v", l)
	}
	if l := c.do("GET", "/v3/registered_limits?resource_name=images", c.adminToken, nil).list("registered_limits"); len(l) != 1 {
		t.Fatalf("by name %v", l)
	}
	// Anyone authenticated may read them.
	_, _, memberTok := c.member("m")
	c.do("GET", "/v3/registered_limits/"+id, memberTok, nil).want(http.StatusOK)
	c.do("POST", "/v3/registered_limits", memberTok, map[string]any{"registered_limits": []any{
		map[string]any{"service_id": image, "resource_name": "x", "default_limit": 1}}}).want(http.StatusForbidden)

	// Duplicates, in the database or within the request, are conflicts and
	// nothing of the request is stored.
	c.do("POST", "/v3/registered_limits", c.adminToken, map[string]any{"registered_limits": []any{
		map[string]any{"service_id": image, "resource_name": "snapshots", "default_limit": 5},
		map[string]any{"service_id": compute, "resource_name": "cores", "default_limit": 1},
	}}).wantError(http.StatusConflict, "Duplicate entry")
	if l := c.do("GET", "/v3/registered_limits?resource_name=snapshots", c.adminToken, nil).list("registered_limits"); len(l) != 0 {
		t.Fatalf("half-applied create: %v", l)
	}
	c.do("POST", "/v3/registered_limits", c.adminToken, map[string]any{"registered_limits": []any{
		map[string]any{"service_id": image, "resource_name": "ram", "default_limit": 5},
		map[string]any{"service_id": image, "resource_name": "ram", "default_limit": 6},
	}}).want(http.StatusConflict)

	for _, bad := range []map[string]any{
		{"resource_name": "x", "default_limit": 1},
		{"service_id": compute, "default_limit": 1},
		{"service_id": compute, "resource_name": "x"},
		{"service_id": compute, "resource_name": "x", "default_limit": "1"},
		{"service_id": compute, "resource_name": "x", "default_limit": 1.5},
		{"service_id": compute, "resource_name": "x", "default_limit": -2},
		{"service_id": compute, "resource_name": "x", "default_limit": 1 << 31},
		{"service_id": compute, "resource_name": "", "default_limit": 1},
		{"service_id": compute, "resource_name": "x", "default_limit": 1, "color": "red"},
		{"service_id": "nope", "resource_name": "x", "default_limit": 1},
		{"service_id": compute, "region_id": "nowhere", "resource_name": "x", "default_limit": 1},
	} {
		c.do("POST", "/v3/registered_limits", c.adminToken, map[string]any{"registered_limits": []any{bad}}).wantError(http.StatusBadRequest, "registered_limits[0]")
	}
	c.do("POST", "/v3/registered_limits", c.adminToken, map[string]any{"registered_limits": []any{}}).wantError(http.StatusBadRequest, "registered_limits")
	c.do("POST", "/v3/registered_limits", c.adminToken, map[string]any{"registered_limits": map[string]any{}}).wantError(http.StatusBadRequest, "registered_limits")

	upd := c.do("PATCH", "/v3/registered_limits/"+id, c.adminToken, map[string]any{"registered_limit": map[string]any{"default_limit": 12, "description": nil}}).
		want(http.StatusOK)
	if upd.get("registered_limit.default_limit").(float64) != 12 || upd.get("registered_limit.description") != nil {
		t.Fatalf("updated %s", upd.Body)
	}
	c.do("PATCH", "/v3/registered_limits/"+id, c.adminToken, map[string]any{"registered_limit": map[string]any{"region_id": "RegionOne"}}).wantError(http.StatusConflict, "Duplicate")
	c.do("PATCH", "/v3/registered_limits/"+id, c.adminToken, map[string]any{"registered_limit": map[string]any{"id": "x"}}).want(http.StatusBadRequest)
	c.do("GET", "/v3/registered_limits/nope", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find registered limit for nope.")
	c.do("DELETE", "/v3/registered_limits/"+id, c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", "/v3/registered_limits/"+id, c.adminToken, nil).want(http.StatusNotFound)
}

func TestLimits(t *testing.T) {
	c := newTestCloud(t)
	compute := c.serviceID("compute")
	c.do("POST", "/v3/registered_limits", c.adminToken, map[string]any{"registered_limits": []any{
		map[string]any{"service_id": compute, "resource_name": "cores", "default_limit": 10},
		map[string]any{"service_id": compute, "region_id": "RegionOne", "resource_name": "ram", "default_limit": 1024},
	}}).want(http.StatusCreated)
	_, aliceProj, aliceTok := c.member("alice")
	_, bobProj, bobTok := c.member("bob")

	created := c.do("POST", "/v3/limits", c.adminToken, map[string]any{"limits": []any{
		map[string]any{"project_id": aliceProj, "service_id": compute, "resource_name": "cores", "resource_limit": 5},
		map[string]any{"project_id": bobProj, "service_id": compute, "resource_name": "cores", "resource_limit": 7, "description": "bob"},
		map[string]any{"domain_id": "default", "service_id": compute, "region_id": "RegionOne", "resource_name": "ram", "resource_limit": 4096},
	}}).want(http.StatusCreated)
	list := created.list("limits")
	if len(list) != 3 {
		t.Fatalf("created %s", created.Body)
	}
	aliceLimit := list[0].(map[string]any)
	aliceID := aliceLimit["id"].(string)
	if aliceLimit["project_id"] != aliceProj || aliceLimit["domain_id"] != nil || aliceLimit["resource_limit"].(float64) != 5 || aliceLimit["service_id"] != compute {
		t.Fatalf("alice's limit %v", aliceLimit)
	}
	domainLimit := list[2].(map[string]any)
	if domainLimit["domain_id"] != "default" || domainLimit["region_id"] != "RegionOne" {
		t.Fatalf("domain limit %v", domainLimit)
	}

	// A limit needs a registered limit, and is unique per project.
	c.do("POST", "/v3/limits", c.adminToken, map[string]any{"limits": []any{
		map[string]any{"project_id": aliceProj, "service_id": compute, "resource_name": "disks", "resource_limit": 1}}}).
		wantError(http.StatusForbidden, "no corresponding registered limit")
	c.do("POST", "/v3/limits", c.adminToken, map[string]any{"limits": []any{
		map[string]any{"project_id": aliceProj, "service_id": compute, "resource_name": "cores", "resource_limit": 1}}}).
		wantError(http.StatusConflict, "Duplicate entry")
	for _, bad := range []map[string]any{
		{"service_id": compute, "resource_name": "cores", "resource_limit": 1},
		{"project_id": aliceProj, "domain_id": "default", "service_id": compute, "resource_name": "cores", "resource_limit": 1},
		{"project_id": "nope", "service_id": compute, "resource_name": "cores", "resource_limit": 1},
		{"domain_id": "nope", "service_id": compute, "resource_name": "cores", "resource_limit": 1},
		{"project_id": aliceProj, "service_id": compute, "resource_name": "cores", "resource_limit": "many"},
		{"project_id": aliceProj, "service_id": compute, "resource_name": "cores", "resource_limit": 1, "default_limit": 3},
	} {
		c.do("POST", "/v3/limits", c.adminToken, map[string]any{"limits": []any{bad}}).wantError(http.StatusBadRequest, "limits[0]")
	}
	// A project id that is a domain makes a domain limit.
	asDomain := c.do("POST", "/v3/limits", c.adminToken, map[string]any{"limits": []any{
		map[string]any{"project_id": "default", "service_id": compute, "resource_name": "cores", "resource_limit": 100}}}).want(http.StatusCreated)
	if l := asDomain.list("limits")[0].(map[string]any); l["domain_id"] != "default" || l["project_id"] != nil {
		t.Fatalf("project id of a domain: %v", l)
	}

	// Visibility: admins see all, project members their project's.
	if l := c.do("GET", "/v3/limits", c.adminToken, nil).want(http.StatusOK).list("limits"); len(l) != 4 {
		t.Fatalf("admin list %v", l)
	}
	if l := c.do("GET", "/v3/limits?project_id="+bobProj, c.adminToken, nil).list("limits"); len(l) != 1 {
		t.Fatalf("filtered list %v", l)
	}
	if l := c.do("GET", "/v3/limits?resource_name=ram", c.adminToken, nil).list("limits"); len(l) != 1 {
		t.Fatalf("by resource %v", l)
	}
	if l := c.do("GET", "/v3/limits", aliceTok, nil).want(http.StatusOK).list("limits"); len(l) != 1 || l[0].(map[string]any)["id"] != aliceID {
		t.Fatalf("alice's list %v", l)
	}
	c.do("GET", "/v3/limits/"+aliceID, aliceTok, nil).want(http.StatusOK)
	c.do("GET", "/v3/limits/"+aliceID, bobTok, nil).want(http.StatusForbidden)
	c.do("PATCH", "/v3/limits/"+aliceID, aliceTok, map[string]any{"limit": map[string]any{"resource_limit": 500}}).want(http.StatusForbidden)

	upd := c.do("PATCH", "/v3/limits/"+aliceID, c.adminToken, map[string]any{"limit": map[string]any{"resource_limit": 6, "description": "more"}}).want(http.StatusOK)
	if upd.get("limit.resource_limit").(float64) != 6 || upd.str("limit.description") != "more" {
		t.Fatalf("updated %s", upd.Body)
	}
	c.do("PATCH", "/v3/limits/"+aliceID, c.adminToken, map[string]any{"limit": map[string]any{"project_id": bobProj}}).wantError(http.StatusBadRequest, "project_id")
	c.do("PATCH", "/v3/limits/"+aliceID, c.adminToken, map[string]any{"limit": map[string]any{"resource_limit": -5}}).wantError(http.StatusBadRequest, "resource_limit")
	c.do("GET", "/v3/limits/nope", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find limit for nope.")

	// A registered limit in use cannot change or go.
	regs := c.do("GET", "/v3/registered_limits?resource_name=cores", c.adminToken, nil).list("registered_limits")
	regID := regs[0].(map[string]any)["id"].(string)
	c.do("PATCH", "/v3/registered_limits/"+regID, c.adminToken, map[string]any{"registered_limit": map[string]any{"default_limit": 1}}).wantError(http.StatusForbidden, "project limits associated")
	c.do("DELETE", "/v3/registered_limits/"+regID, c.adminToken, nil).wantError(http.StatusForbidden, "project limits associated")

	model := c.do("GET", "/v3/limits/model", aliceTok, nil).want(http.StatusOK)
	if model.str("model.name") != "flat" || model.str("model.description") == "" {
		t.Fatalf("model %s", model.Body)
	}

	// Limits go with their project.
	c.do("DELETE", "/v3/projects/"+bobProj, c.adminToken, nil).want(http.StatusNoContent)
	if l := c.do("GET", "/v3/limits?resource_name=cores", c.adminToken, nil).list("limits"); len(l) != 2 {
		t.Fatalf("after project deletion %v", l)
	}
	c.do("DELETE", "/v3/limits/"+aliceID, c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", "/v3/limits/"+aliceID, c.adminToken, nil).want(http.StatusNotFound)
}
