package identity

import (
	"net/http"
	"strings"
	"testing"
)

// sampleRules is a mapping in the shape Keystone's documentation uses.
func sampleRules() []any {
	return []any{
		map[string]any{
			"local": []any{
				map[string]any{"user": map[string]any{"name": "{0}", "type": "ephemeral"}},
				map[string]any{"group": map[string]any{"id": "0cd5e9"}},
				map[string]any{"projects": []any{map[string]any{"name": "Production", "roles": []any{map[string]any{"name": "member"}}}}},
			},
			"remote": []any{
				map[string]any{"type": "UserName"},
				map[string]any{"type": "orgPersonType", "not_any_of": []any{"Contractor", "Guest"}},
				map[string]any{"type": "Email", "any_one_of": []any{".*@example.com$"}, "regex": true},
			},
		},
		map[string]any{
			"local":  []any{map[string]any{"group": map[string]any{"name": "admins", "domain": map[string]any{"id": "default"}}}},
			"remote": []any{map[string]any{"type": "groups", "whitelist": []any{"admins"}}},
		},
	}
}

func TestFederationMappings(t *testing.T) {
	c := newTestCloud(t)
	base := "/v3/OS-FEDERATION/mappings/"
	created := c.do("PUT", base+"acme", c.adminToken, map[string]any{"mapping": map[string]any{"rules": sampleRules()}}).want(http.StatusCreated)
	if created.str("mapping.id") != "acme" || len(created.list("mapping.rules")) != 2 || !strings.HasSuffix(created.str("mapping.links.self"), base+"acme") {
		t.Fatalf("created %s", created.Body)
	}
	c.do("PUT", base+"acme", c.adminToken, map[string]any{"mapping": map[string]any{"rules": sampleRules()}}).wantError(http.StatusConflict, "Duplicate")
	got := c.do("GET", base+"acme", c.adminToken, nil).want(http.StatusOK)
	if got.list("mapping.rules")[0].(map[string]any)["remote"].([]any)[2].(map[string]any)["regex"] != true {
		t.Fatalf("rules not kept as sent: %s", got.Body)
	}
	if l := c.do("GET", "/v3/OS-FEDERATION/mappings", c.adminToken, nil).want(http.StatusOK).list("mappings"); len(l) != 1 {
		t.Fatalf("list %v", l)
	}
	newRules := sampleRules()[1:]
	upd := c.do("PATCH", base+"acme", c.adminToken, map[string]any{"mapping": map[string]any{"rules": newRules}}).want(http.StatusOK)
	if len(upd.list("mapping.rules")) != 1 {
		t.Fatalf("updated %s", upd.Body)
	}

	for name, rules := range map[string]any{
		"not a list":         "x",
		"empty":              []any{},
		"no remote":          []any{map[string]any{"local": []any{}}},
		"no local":           []any{map[string]any{"remote": []any{map[string]any{"type": "a"}}}},
		"empty remote":       []any{map[string]any{"local": []any{}, "remote": []any{}}},
		"extra rule key":     []any{map[string]any{"local": []any{}, "remote": []any{map[string]any{"type": "a"}}, "x": 1}},
		"remote no type":     []any{map[string]any{"local": []any{}, "remote": []any{map[string]any{"any_one_of": []any{"a"}}}}},
		"two matchers":       []any{map[string]any{"local": []any{}, "remote": []any{map[string]any{"type": "a", "any_one_of": []any{}, "not_any_of": []any{}}}}},
		"regex alone":        []any{map[string]any{"local": []any{}, "remote": []any{map[string]any{"type": "a", "regex": true}}}},
		"matcher not list":   []any{map[string]any{"local": []any{}, "remote": []any{map[string]any{"type": "a", "whitelist": "a"}}}},
		"unknown local":      []any{map[string]any{"local": []any{map[string]any{"role": "x"}}, "remote": []any{map[string]any{"type": "a"}}}},
		"bad user type":      []any{map[string]any{"local": []any{map[string]any{"user": map[string]any{"type": "robot"}}}, "remote": []any{map[string]any{"type": "a"}}}},
		"group by name only": []any{map[string]any{"local": []any{map[string]any{"group": map[string]any{"name": "x"}}}, "remote": []any{map[string]any{"type": "a"}}}},
		"project no roles":   []any{map[string]any{"local": []any{map[string]any{"projects": []any{map[string]any{"name": "p"}}}}, "remote": []any{map[string]any{"type": "a"}}}},
	} {
		resp := c.do("PUT", base+"bad", c.adminToken, map[string]any{"mapping": map[string]any{"rules": rules}})
		if resp.Status != http.StatusBadRequest || !strings.Contains(string(resp.Body), "mapping") {
			t.Errorf("%s: status %d, body %s", name, resp.Status, resp.Body)
		}
	}
	c.do("PUT", base+"bad", c.adminToken, map[string]any{"mapping": map[string]any{}}).wantError(http.StatusBadRequest, "rules")
	c.do("PUT", base+"bad", c.adminToken, map[string]any{}).wantError(http.StatusBadRequest, "mapping")
	c.do("GET", base+"bad", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find mapping: bad.")
	c.do("PATCH", base+"bad", c.adminToken, map[string]any{"mapping": map[string]any{"rules": sampleRules()}}).want(http.StatusNotFound)
	_, _, memberTok := c.member("m")
	c.do("GET", "/v3/OS-FEDERATION/mappings", memberTok, nil).want(http.StatusForbidden)

	c.do("DELETE", base+"acme", c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", base+"acme", c.adminToken, nil).want(http.StatusNotFound)
}

func TestIdentityProvidersAndProtocols(t *testing.T) {
	c := newTestCloud(t)
	c.do("PUT", "/v3/OS-FEDERATION/mappings/m1", c.adminToken, map[string]any{"mapping": map[string]any{"rules": sampleRules()}}).want(http.StatusCreated)
	idps := "/v3/OS-FEDERATION/identity_providers/"

	// Without a domain, one is made for the provider's users.
	created := c.do("PUT", idps+"acme", c.adminToken, map[string]any{"identity_provider": map[string]any{
		"description": "ACME SSO", "remote_ids": []any{"https://sso.acme.example/idp"}, "enabled": true}}).want(http.StatusCreated)
	dom := created.str("identity_provider.domain_id")
	if created.get("identity_provider.enabled") != true || created.str("identity_provider.links.protocols") != c.URL+idps+"acme/protocols" {
		t.Fatalf("created %s", created.Body)
	}
	c.do("GET", "/v3/domains/"+dom, c.adminToken, nil).want(http.StatusOK)
	// Defaults: disabled.
	other := c.do("PUT", idps+"other", c.adminToken, map[string]any{"identity_provider": map[string]any{"domain_id": "default"}}).want(http.StatusCreated)
	if other.get("identity_provider.enabled") != false || other.str("identity_provider.domain_id") != "default" {
		t.Fatalf("other %s", other.Body)
	}

	c.do("PUT", idps+"acme", c.adminToken, map[string]any{"identity_provider": map[string]any{}}).wantError(http.StatusConflict, "Duplicate")
	c.do("PUT", idps+"third", c.adminToken, map[string]any{"identity_provider": map[string]any{"remote_ids": []any{"https://sso.acme.example/idp"}}}).
		wantError(http.StatusConflict, "Duplicate remote ID")
	// The conflict left no stray domain or provider behind.
	c.do("GET", idps+"third", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find Identity Provider: third.")
	c.do("PUT", idps+"third", c.adminToken, map[string]any{"identity_provider": map[string]any{"domain_id": "nope"}}).wantError(http.StatusNotFound, "Could not find domain: nope")
	c.do("PUT", idps+"third", c.adminToken, map[string]any{"identity_provider": map[string]any{"enabled": "yes"}}).wantError(http.StatusBadRequest, "identity_provider.enabled")
	c.do("PUT", idps+"third", c.adminToken, map[string]any{"identity_provider": map[string]any{"remote_ids": []any{"a", "a"}}}).wantError(http.StatusBadRequest, "remote_ids")
	c.do("PUT", idps+"third", c.adminToken, map[string]any{"identity_provider": map[string]any{"authorization_ttl": -1}}).wantError(http.StatusBadRequest, "authorization_ttl")
	c.do("PUT", idps+"third", c.adminToken, map[string]any{"identity_provider": map[string]any{"shiny": true}}).wantError(http.StatusBadRequest, "shiny")

	if l := c.do("GET", "/v3/OS-FEDERATION/identity_providers?enabled=true", c.adminToken, nil).want(http.StatusOK).list("identity_providers"); len(l) != 1 {
		t.Fatalf("enabled list %v", l)
	}
	upd := c.do("PATCH", idps+"acme", c.adminToken, map[string]any{"identity_provider": map[string]any{"enabled": false, "remote_ids": []any{"r1", "r2"}, "authorization_ttl": 60}}).
		want(http.StatusOK)
	if upd.get("identity_provider.enabled") != false || len(upd.list("identity_provider.remote_ids")) != 2 || upd.get("identity_provider.authorization_ttl").(float64) != 60 {
		t.Fatalf("updated %s", upd.Body)
	}
	c.do("PATCH", idps+"acme", c.adminToken, map[string]any{"identity_provider": map[string]any{"domain_id": "default"}}).wantError(http.StatusBadRequest, "domain_id")
	c.do("PATCH", idps+"acme", c.adminToken, map[string]any{"identity_provider": map[string]any{}}).wantError(http.StatusBadRequest, "at least one")
	// The old remote id is free again.
	c.do("PATCH", idps+"other", c.adminToken, map[string]any{"identity_provider": map[string]any{"remote_ids": []any{"https://sso.acme.example/idp"}}}).want(http.StatusOK)
	c.do("PATCH", idps+"other", c.adminToken, map[string]any{"identity_provider": map[string]any{"remote_ids": []any{"r1"}}}).wantError(http.StatusConflict, "Duplicate remote ID")

	// Protocols.
	protos := idps + "acme/protocols/"
	p := c.do("PUT", protos+"saml2", c.adminToken, map[string]any{"protocol": map[string]any{"mapping_id": "m1"}}).want(http.StatusCreated)
	if p.str("protocol.mapping_id") != "m1" || p.str("protocol.links.identity_provider") != c.URL+idps+"acme" {
		t.Fatalf("protocol %s", p.Body)
	}
	c.do("PUT", protos+"saml2", c.adminToken, map[string]any{"protocol": map[string]any{"mapping_id": "m1"}}).wantError(http.StatusConflict, "Duplicate")
	c.do("PUT", protos+"oidc", c.adminToken, map[string]any{"protocol": map[string]any{"mapping_id": "nope"}}).wantError(http.StatusBadRequest, "Invalid mapping id: nope")
	c.do("PUT", protos+"oidc", c.adminToken, map[string]any{"protocol": map[string]any{}}).wantError(http.StatusBadRequest, "mapping_id")
	c.do("PUT", idps+"nope/protocols/oidc", c.adminToken, map[string]any{"protocol": map[string]any{"mapping_id": "m1"}}).wantError(http.StatusNotFound, "Could not find Identity Provider: nope.")
	c.do("PUT", "/v3/OS-FEDERATION/mappings/m2", c.adminToken, map[string]any{"mapping": map[string]any{"rules": sampleRules()}}).want(http.StatusCreated)
	if got := c.do("PATCH", protos+"saml2", c.adminToken, map[string]any{"protocol": map[string]any{"mapping_id": "m2", "remote_id_attribute": "Shib-Identity-Provider"}}).
		want(http.StatusOK); got.str("protocol.mapping_id") != "m2" || got.str("protocol.remote_id_attribute") != "Shib-Identity-Provider" {
		t.Fatalf("updated protocol %s", got.Body)
	}
	if l := c.do("GET", idps+"acme/protocols", c.adminToken, nil).want(http.StatusOK).list("protocols"); len(l) != 1 {
		t.Fatalf("protocols %v", l)
	}
	c.do("GET", protos+"oidc", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find federated protocol oidc for Identity Provider: acme.")

	// Deleting the provider takes its protocols; deleting its domain takes it.
	c.do("DELETE", idps+"acme", c.adminToken, nil).want(http.StatusNoContent)
	c.do("GET", protos+"saml2", c.adminToken, nil).want(http.StatusNotFound)
	c.do("PUT", idps+"acme", c.adminToken, map[string]any{"identity_provider": map[string]any{"domain_id": dom}}).want(http.StatusCreated)
	c.do("PATCH", "/v3/domains/"+dom, c.adminToken, map[string]any{"domain": map[string]any{"enabled": false}}).want(http.StatusOK)
	c.do("DELETE", "/v3/domains/"+dom, c.adminToken, nil).want(http.StatusNoContent)
	c.do("GET", idps+"acme", c.adminToken, nil).want(http.StatusNotFound)
	_, _, memberTok := c.member("m")
	c.do("GET", "/v3/OS-FEDERATION/identity_providers", memberTok, nil).want(http.StatusForbidden)
}
