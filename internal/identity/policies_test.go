package identity

import (
	"net/http"
	"strings"
	"testing"
)

func TestPolicyBlobs(t *testing.T) {
	c := newTestCloud(t)
	created := c.do("POST", "/v3/policies", c.adminToken, map[string]any{"policy": map[string]any{
		"type": "application/json", "blob": `{"default": ""}`, "purpose": "legacy"}}).want(http.StatusCreated)
	id := created.str("policy.id")
	if created.str("policy.blob") != `{"default": ""}` || created.str("policy.purpose") != "legacy" || !strings.HasSuffix(created.str("policy.links.self"), "/v3/policies/"+id) {
		t.Fatalf("created %s", created.Body)
	}
	c.do("POST", "/v3/policies", c.adminToken, map[string]any{"policy": map[string]any{"type": "text/yaml", "blob": "a: b"}}).want(http.StatusCreated)
	if l := c.do("GET", "/v3/policies?type=text/yaml", c.adminToken, nil).want(http.StatusOK).list("policies"); len(l) != 1 {
		t.Fatalf("filtered list %v", l)
	}
	if l := c.do("GET", "/v3/policies", c.adminToken, nil).list("policies"); len(l) != 2 {
		t.Fatalf("list %v", l)
	}
	upd := c.do("PATCH", "/v3/policies/"+id, c.adminToken, map[string]any{"policy": map[string]any{"blob": "{}"}}).want(http.StatusOK)
	if upd.str("policy.blob") != "{}" || upd.str("policy.type") != "application/json" {
		t.Fatalf("updated %s", upd.Body)
	}

	c.do("POST", "/v3/policies", c.adminToken, map[string]any{"policy": map[string]any{"type": "x"}}).wantError(http.StatusBadRequest, "policy.blob")
	c.do("POST", "/v3/policies", c.adminToken, map[string]any{"policy": map[string]any{"blob": "x"}}).wantError(http.StatusBadRequest, "policy.type")
	c.do("POST", "/v3/policies", c.adminToken, map[string]any{"policy": map[string]any{"blob": 1, "type": "x"}}).wantError(http.StatusBadRequest, "policy.blob")
	c.do("POST", "/v3/policies", c.adminToken, map[string]any{"policy": map[string]any{"blob": "x", "type": strings.Repeat("t", 256)}}).wantError(http.StatusBadRequest, "policy.type")
	c.do("PATCH", "/v3/policies/"+id, c.adminToken, map[string]any{"policy": map[string]any{}}).wantError(http.StatusBadRequest, "at least one")
	c.do("GET", "/v3/policies/nope", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find policy: nope.")
	_, _, memberTok := c.member("m")
	c.do("GET", "/v3/policies", memberTok, nil).want(http.StatusForbidden)
	c.do("POST", "/v3/policies", memberTok, map[string]any{"policy": map[string]any{"type": "x", "blob": "y"}}).want(http.StatusForbidden)

	c.do("DELETE", "/v3/policies/"+id, c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", "/v3/policies/"+id, c.adminToken, nil).want(http.StatusNotFound)
}
