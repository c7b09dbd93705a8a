package identity

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

func (c *testCloud) createDomain(name string) string {
	c.t.Helper()
	return c.do("POST", "/v3/domains", c.adminToken, map[string]any{"domain": map[string]any{"name": name}}).want(http.StatusCreated).str("domain.id")
}

func TestDomainConfig(t *testing.T) {
	c := newTestCloud(t)
	d := c.createDomain("ldapland")
	base := "/v3/domains/" + d + "/config"

	c.do("GET", base, c.adminToken, nil).wantError(http.StatusNotFound, "Could not find any options in domain configuration for domain "+d)
	cfg := map[string]any{"config": map[string]any{
		"identity": map[string]any{"driver": "ldap"},
		"ldap":     map[string]any{"url": "ldap://ldap.example.com", "user_tree_dn": "ou=Users,dc=example", "password": "hunter2", "page_size": 100},
	}}
	created := c.do("PUT", base, c.adminToken, cfg).want(http.StatusCreated)
	if created.str("config.identity.driver") != "ldap" || created.str("config.ldap.url") != "ldap://ldap.example.com" {
		t.Fatalf("created %s", created.Body)
	}
	// The password is write-only, and stored encrypted.
	if created.get("config.ldap.password") != nil || strings.Contains(string(created.Body), "hunter2") {
		t.Fatalf("sensitive option returned: %s", created.Body)
	}
	var stored string
	if err := c.svc.db.QueryRow(context.Background(), `SELECT value FROM domain_configs WHERE config_option = 'password'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, "hunter2") {
		t.Fatal("ldap password stored in the clear")
	}
	if n, _ := c.do("GET", base+"/ldap/page_size", c.adminToken, nil).want(http.StatusOK).get("config.page_size").(float64); n != 100 {
		t.Fatalf("page_size %v", n)
	}
	c.do("GET", base+"/ldap/password", c.adminToken, nil).wantError(http.StatusNotFound, "option password in group ldap")
	grp := c.do("GET", base+"/ldap", c.adminToken, nil).want(http.StatusOK)
	if grp.get("config.identity") != nil || grp.str("config.ldap.user_tree_dn") != "ou=Users,dc=example" {
		t.Fatalf("group %s", grp.Body)
	}

	// A second PUT replaces the config and answers 200.
	replaced := c.do("PUT", base, c.adminToken, map[string]any{"config": map[string]any{"ldap": map[string]any{"url": "ldap://other"}}}).want(http.StatusOK)
	if replaced.get("config.identity") != nil || replaced.get("config.ldap.user_tree_dn") != nil {
		t.Fatalf("replaced %s", replaced.Body)
	}

	// PATCH merges; group and option updates touch only what they name.
	merged := c.do("PATCH", base, c.adminToken, map[string]any{"config": map[string]any{"identity": map[string]any{"driver": "ldap"}}}).want(http.StatusOK)
	if merged.str("config.ldap.url") != "ldap://other" || merged.str("config.identity.driver") != "ldap" {
		t.Fatalf("merged %s", merged.Body)
	}
	c.do("PATCH", base+"/ldap", c.adminToken, map[string]any{"config": map[string]any{"ldap": map[string]any{"suffix": "dc=x"}}}).want(http.StatusOK)
	c.do("PATCH", base+"/ldap/url", c.adminToken, map[string]any{"config": map[string]any{"url": "ldap://third"}}).want(http.StatusOK)
	if u := c.do("GET", base+"/ldap/url", c.adminToken, nil).str("config.url"); u != "ldap://third" {
		t.Fatalf("url %s", u)
	}
	c.do("PATCH", base+"/ldap", c.adminToken, map[string]any{"config": map[string]any{"identity": map[string]any{"driver": "sql"}}}).wantError(http.StatusForbidden, "group ldap")
	c.do("PATCH", base+"/ldap/url", c.adminToken, map[string]any{"config": map[string]any{"suffix": "x"}}).wantError(http.StatusForbidden, "option url")
	c.do("PATCH", base+"/ldap/user_filter", c.adminToken, map[string]any{"config": map[string]any{"user_filter": "x"}}).wantError(http.StatusNotFound, "option user_filter in group ldap")

	// Unsupported groups and options are refused as Keystone does (403).
	c.do("PUT", base, c.adminToken, map[string]any{"config": map[string]any{"database": map[string]any{"connection": "x"}}}).wantError(http.StatusForbidden, "Group database is not supported")
	c.do("PUT", base, c.adminToken, map[string]any{"config": map[string]any{"ldap": map[string]any{"nope": "x"}}}).wantError(http.StatusForbidden, "Option nope in group ldap")
	c.do("PUT", base, c.adminToken, map[string]any{"config": map[string]any{"ldap": "x"}}).wantError(http.StatusForbidden, "should be a dictionary")
	c.do("PUT", base, c.adminToken, map[string]any{"config": map[string]any{}}).wantError(http.StatusForbidden, "No options specified")
	c.do("PUT", base, c.adminToken, map[string]any{"config": "x"}).wantError(http.StatusBadRequest, "config")
	c.do("PUT", base, c.adminToken, map[string]any{}).wantError(http.StatusBadRequest, "config")
	c.do("GET", base+"/nope", c.adminToken, nil).wantError(http.StatusForbidden, "Group nope is not supported")
	// The failed writes changed nothing.
	if u := c.do("GET", base+"/ldap/url", c.adminToken, nil).str("config.url"); u != "ldap://third" {
		t.Fatalf("url after failed writes %s", u)
	}

	c.do("GET", "/v3/domains/nope/config", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find domain: nope")
	_, _, memberTok := c.member("m")
	c.do("GET", base, memberTok, nil).want(http.StatusForbidden)
	c.do("PUT", base, memberTok, cfg).want(http.StatusForbidden)

	c.do("DELETE", base+"/ldap/url", c.adminToken, nil).want(http.StatusNoContent)
	c.do("DELETE", base+"/ldap/url", c.adminToken, nil).wantError(http.StatusNotFound, "option url in group ldap")
	c.do("DELETE", base+"/identity", c.adminToken, nil).want(http.StatusNoContent)
	c.do("GET", base+"/identity", c.adminToken, nil).wantError(http.StatusNotFound, "group identity")
	c.do("DELETE", base, c.adminToken, nil).want(http.StatusNoContent)
	c.do("GET", base, c.adminToken, nil).want(http.StatusNotFound)

	// Deleting the domain deletes its config.
	c.do("PUT", base, c.adminToken, cfg).want(http.StatusCreated)
	c.do("PATCH", "/v3/domains/"+d, c.adminToken, map[string]any{"domain": map[string]any{"enabled": false}}).want(http.StatusOK)
	c.do("DELETE", "/v3/domains/"+d, c.adminToken, nil).want(http.StatusNoContent)
	var n int
	if err := c.svc.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM domain_configs`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d config rows left (%v)", n, err)
	}
}

func TestDomainConfigDefaults(t *testing.T) {
	c := newTestCloud(t)
	all := c.do("GET", "/v3/domains/config/default", c.adminToken, nil).want(http.StatusOK)
	if all.str("config.identity.driver") != "sql" || all.str("config.ldap.url") != "ldap://localhost" || all.get("config.ldap.password") != nil {
		t.Fatalf("defaults %s", all.Body)
	}
	grp := c.do("GET", "/v3/domains/config/ldap/default", c.adminToken, nil).want(http.StatusOK)
	if grp.get("config.identity") != nil || grp.str("config.ldap.user_objectclass") != "inetOrgPerson" {
		t.Fatalf("group defaults %s", grp.Body)
	}
	opt := c.do("GET", "/v3/domains/config/ldap/query_scope/default", c.adminToken, nil).want(http.StatusOK)
	if opt.str("config.query_scope") != "one" {
		t.Fatalf("option default %s", opt.Body)
	}
	c.do("GET", "/v3/domains/config/ldap/password/default", c.adminToken, nil).wantError(http.StatusForbidden, "password")
	c.do("GET", "/v3/domains/config/nope/default", c.adminToken, nil).wantError(http.StatusForbidden, "Group nope")
	c.do("PATCH", "/v3/domains/config/ldap/default", c.adminToken, map[string]any{}).want(http.StatusMethodNotAllowed)
	c.do("GET", "/v3/domains/default/nope/ldap", c.adminToken, nil).want(http.StatusNotFound)

	// Security compliance is readable for the default domain only.
	sc := c.do("GET", "/v3/domains/default/config/security_compliance", c.adminToken, nil).want(http.StatusOK)
	if _, ok := sc.get("config.security_compliance").(map[string]any)["password_regex"]; !ok {
		t.Fatalf("security compliance %s", sc.Body)
	}
	c.do("GET", "/v3/domains/default/config/security_compliance/password_regex", c.adminToken, nil).want(http.StatusOK)
	c.do("GET", "/v3/domains/default/config/security_compliance/lockout_duration", c.adminToken, nil).want(http.StatusForbidden)
	d := c.createDomain("other")
	c.do("GET", "/v3/domains/"+d+"/config/security_compliance", c.adminToken, nil).want(http.StatusForbidden)
}
