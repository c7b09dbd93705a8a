package identity

import (
	"net/http"
	"sort"
	"strings"
	"testing"
)

// catalogEndpointIDs lists the endpoint ids in a token's catalog.
func catalogEndpointIDs(t *testing.T, r *testResponse, path string) []string {
	t.Helper()
	var ids []string
	for _, svc := range r.list(path) {
		for _, e := range svc.(map[string]any)["endpoints"].([]any) {
			ids = append(ids, e.(map[string]any)["id"].(string))
		}
	}
	sort.Strings(ids)
	return ids
}

// endpointIDs finds the endpoints of an interface.
func (c *testCloud) endpointIDs(iface string) []string {
	c.t.Helper()
	var ids []string
	for _, e := range c.do("GET", "/v3/endpoints?interface="+iface, c.adminToken, nil).want(http.StatusOK).list("endpoints") {
		ids = append(ids, e.(map[string]any)["id"].(string))
	}
	sort.Strings(ids)
	return ids
}

func TestEndpointGroupsCRUD(t *testing.T) {
	c := newTestCloud(t)
	const base = "/v3/OS-EP-FILTER/endpoint_groups"
	created := c.do("POST", base, c.adminToken, map[string]any{"endpoint_group": map[string]any{
		"name": "internal", "description": "internal endpoints", "filters": map[string]any{"interface": "internal"}}}).want(http.StatusCreated)
	id := created.str("endpoint_group.id")
	if created.str("endpoint_group.filters.interface") != "internal" || !strings.HasSuffix(created.str("endpoint_group.links.self"), base+"/"+id) {
		t.Fatalf("created %s", created.Body)
	}
	c.do("GET", base+"/"+id, c.adminToken, nil).want(http.StatusOK)
	if l := c.do("GET", base+"?name=internal", c.adminToken, nil).want(http.StatusOK).list("endpoint_groups"); len(l) != 1 {
		t.Fatalf("list %v", l)
	}
	if l := c.do("GET", base+"?name=other", c.adminToken, nil).want(http.StatusOK).list("endpoint_groups"); len(l) != 0 {
		t.Fatalf("filtered list %v", l)
	}
	upd := c.do("PATCH", base+"/"+id, c.adminToken, map[string]any{"endpoint_group": map[string]any{"filters": map[string]any{"interface": "public"}, "description": nil}}).
		want(http.StatusOK)
	if upd.str("endpoint_group.filters.interface") != "public" || upd.get("endpoint_group.description") != nil || upd.str("endpoint_group.name") != "internal" {
		t.Fatalf("updated %s", upd.Body)
	}
	eps := c.do("GET", base+"/"+id+"/endpoints", c.adminToken, nil).want(http.StatusOK).list("endpoints")
	if len(eps) != len(c.endpointIDs("public")) {
		t.Fatalf("group endpoints %v", eps)
	}

	for _, body := range []map[string]any{
		{"filters": map[string]any{"interface": "public"}},
		{"name": "x"},
		{"name": "x", "filters": map[string]any{}},
		{"name": "x", "filters": map[string]any{"url": "http://x"}},
		{"name": "x", "filters": map[string]any{"interface": 1}},
		{"name": "x", "filters": "interface=public"},
	} {
		c.do("POST", base, c.adminToken, map[string]any{"endpoint_group": body}).wantError(http.StatusBadRequest, "endpoint_group")
	}
	c.do("PATCH", base+"/"+id, c.adminToken, map[string]any{"endpoint_group": map[string]any{}}).wantError(http.StatusBadRequest, "at least one")
	c.do("GET", base+"/nope", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find Endpoint Group: nope.")
	_, _, memberTok := c.member("m")
	c.do("POST", base, memberTok, map[string]any{"endpoint_group": map[string]any{"name": "x", "filters": map[string]any{"interface": "public"}}}).want(http.StatusForbidden)
	c.do("DELETE", base+"/"+id, c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", base+"/"+id, c.adminToken, nil).want(http.StatusNotFound)
}

func TestProjectEndpointAssociations(t *testing.T) {
	c := newTestCloud(t)
	proj := c.createProject("filtered")
	ep := c.endpointIDs("public")[0]
	assoc := "/v3/OS-EP-FILTER/projects/" + proj + "/endpoints/" + ep

	c.do("GET", assoc, c.adminToken, nil).wantError(http.StatusNotFound, "not found in project")
	c.do("PUT", assoc, c.adminToken, nil).want(http.StatusNoContent)
	c.do("PUT", assoc, c.adminToken, nil).want(http.StatusConflict)
	c.do("GET", assoc, c.adminToken, nil).want(http.StatusNoContent)
	c.do("HEAD", assoc, c.adminToken, nil).want(http.StatusNoContent)
	if l := c.do("GET", "/v3/OS-EP-FILTER/projects/"+proj+"/endpoints", c.adminToken, nil).want(http.StatusOK).list("endpoints"); len(l) != 1 || l[0].(map[string]any)["id"] != ep {
		t.Fatalf("project endpoints %v", l)
	}
	if l := c.do("GET", "/v3/OS-EP-FILTER/endpoints/"+ep+"/projects", c.adminToken, nil).want(http.StatusOK).list("projects"); len(l) != 1 || l[0].(map[string]any)["id"] != proj {
		t.Fatalf("endpoint projects %v", l)
	}
	c.do("PUT", "/v3/OS-EP-FILTER/projects/nope/endpoints/"+ep, c.adminToken, nil).wantError(http.StatusNotFound, "Could not find project: nope")
	c.do("PUT", "/v3/OS-EP-FILTER/projects/"+proj+"/endpoints/nope", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find endpoint: nope")
	c.do("GET", "/v3/OS-EP-FILTER/endpoints/nope/projects", c.adminToken, nil).want(http.StatusNotFound)
	c.do("DELETE", assoc, c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", assoc, c.adminToken, nil).want(http.StatusNotFound)

	// Endpoint group associations.
	gid := c.do("POST", "/v3/OS-EP-FILTER/endpoint_groups", c.adminToken, map[string]any{"endpoint_group": map[string]any{
		"name": "g", "filters": map[string]any{"interface": "internal"}}}).want(http.StatusCreated).str("endpoint_group.id")
	gassoc := "/v3/OS-EP-FILTER/endpoint_groups/" + gid + "/projects/" + proj
	c.do("GET", gassoc, c.adminToken, nil).want(http.StatusNotFound)
	c.do("PUT", gassoc, c.adminToken, nil).want(http.StatusNoContent)
	c.do("PUT", gassoc, c.adminToken, nil).want(http.StatusConflict)
	got := c.do("GET", gassoc, c.adminToken, nil).want(http.StatusOK)
	if got.str("project_endpoint_group.endpoint_group_id") != gid || got.str("project_endpoint_group.project_id") != proj {
		t.Fatalf("association %s", got.Body)
	}
	if l := c.do("GET", "/v3/OS-EP-FILTER/projects/"+proj+"/endpoint_groups", c.adminToken, nil).want(http.StatusOK).list("endpoint_groups"); len(l) != 1 {
		t.Fatalf("project groups %v", l)
	}
	if l := c.do("GET", "/v3/OS-EP-FILTER/endpoint_groups/"+gid+"/projects", c.adminToken, nil).want(http.StatusOK).list("projects"); len(l) != 1 {
		t.Fatalf("group projects %v", l)
	}
	if l := c.do("GET", "/v3/OS-EP-FILTER/projects/"+proj+"/endpoints", c.adminToken, nil).list("endpoints"); len(l) != len(c.endpointIDs("internal")) {
		t.Fatalf("project endpoints through group %v", l)
	}
	c.do("PUT", "/v3/OS-EP-FILTER/endpoint_groups/nope/projects/"+proj, c.adminToken, nil).wantError(http.StatusNotFound, "Endpoint Group")
	c.do("DELETE", gassoc, c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", gassoc, c.adminToken, nil).want(http.StatusNotFound)

	// Deleting the project or the endpoint takes the associations along.
	c.do("PUT", assoc, c.adminToken, nil).want(http.StatusNoContent)
	c.do("PUT", gassoc, c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", "/v3/endpoints/"+ep, c.adminToken, nil).want(http.StatusNoContent)
	if l := c.do("GET", "/v3/OS-EP-FILTER/endpoint_groups/"+gid+"/projects", c.adminToken, nil).list("projects"); len(l) != 1 {
		t.Fatalf("group association lost with an endpoint: %v", l)
	}
	c.do("DELETE", "/v3/projects/"+proj, c.adminToken, nil).want(http.StatusNoContent)
	if l := c.do("GET", "/v3/OS-EP-FILTER/endpoint_groups/"+gid+"/projects", c.adminToken, nil).list("projects"); len(l) != 0 {
		t.Fatalf("group association outlived its project: %v", l)
	}
}

func TestEndpointFilterLimitsCatalog(t *testing.T) {
	c := newTestCloud(t)
	_, proj, _ := c.member("filtered")
	all := append(c.endpointIDs("public"), c.endpointIDs("internal")...)
	sort.Strings(all)
	catalog := func() []string {
		tok, resp := c.passwordToken("filtered", "filtered-pw", "filtered-project")
		ids := catalogEndpointIDs(t, resp, "token.catalog")
		// GET /v3/auth/catalog agrees with the token body.
		if cat := catalogEndpointIDs(t, c.do("GET", "/v3/auth/catalog", tok, nil).want(http.StatusOK), "catalog"); strings.Join(cat, ",") != strings.Join(ids, ",") {
			t.Fatalf("auth/catalog %v, token %v", cat, ids)
		}
		return ids
	}
	if got := catalog(); strings.Join(got, ",") != strings.Join(all, ",") {
		t.Fatalf("unfiltered catalog %v, want %v", got, all)
	}

	pub := c.endpointIDs("public")[0]
	c.do("PUT", "/v3/OS-EP-FILTER/projects/"+proj+"/endpoints/"+pub, c.adminToken, nil).want(http.StatusNoContent)
	if got := catalog(); len(got) != 1 || got[0] != pub {
		t.Fatalf("catalog with one endpoint: %v", got)
	}

	gid := c.do("POST", "/v3/OS-EP-FILTER/endpoint_groups", c.adminToken, map[string]any{"endpoint_group": map[string]any{
		"name": "internal", "filters": map[string]any{"interface": "internal"}}}).want(http.StatusCreated).str("endpoint_group.id")
	c.do("PUT", "/v3/OS-EP-FILTER/endpoint_groups/"+gid+"/projects/"+proj, c.adminToken, nil).want(http.StatusNoContent)
	want := append([]string{pub}, c.endpointIDs("internal")...)
	sort.Strings(want)
	if got := catalog(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("catalog with group: %v, want %v", got, want)
	}

	// Other projects are not affected.
	_, resp := c.passwordToken("admin", "secret", "admin")
	if got := catalogEndpointIDs(t, resp, "token.catalog"); strings.Join(got, ",") != strings.Join(all, ",") {
		t.Fatalf("admin catalog %v", got)
	}

	c.do("DELETE", "/v3/OS-EP-FILTER/projects/"+proj+"/endpoints/"+pub, c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", "/v3/OS-EP-FILTER/endpoint_groups/"+gid, c.adminToken, nil).want(http.StatusNoContent)
	if got := catalog(); strings.Join(got, ",") != strings.Join(all, ",") {
		t.Fatalf("catalog after removing the filter %v", got)
	}
}
