package identity

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

// count counts rows of a table matching a condition.
func (c *testCloud) count(table, where string, args ...any) int {
	c.t.Helper()
	var n int
	if err := c.svc.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM `+table+` WHERE `+where, args...).Scan(&n); err != nil {
		c.t.Fatal(err)
	}
	return n
}

// oauthAccessToken runs the OAuth flow for a consumer: the authorizer
// (who needs the admin role) delegates roles on the project.
func (c *testCloud) oauthAccessToken(authorizerToken, projectID string, roles ...string) (consumer *oauthClient, key, secret string) {
	c.t.Helper()
	created := c.do("POST", "/v3/OS-OAUTH1/consumers", c.adminToken, map[string]any{"consumer": map[string]any{}}).want(http.StatusCreated)
	consumer = &oauthClient{key: created.str("consumer.id"), secret: created.str("consumer.secret")}
	resp := c.do("POST", "/v3/OS-OAUTH1/request_token", "", nil,
		"Authorization", consumer.header("POST", c.URL+"/v3/OS-OAUTH1/request_token", "", "", map[string]string{"oauth_callback": "oob"}),
		"Requested-Project-Id", projectID).want(http.StatusCreated)
	rt, _ := url.ParseQuery(string(resp.Body))
	var refs []any
	for _, r := range roles {
		refs = append(refs, map[string]any{"name": r})
	}
	verifier := c.do("PUT", "/v3/OS-OAUTH1/authorize/"+rt.Get("oauth_token"), authorizerToken, map[string]any{"roles": refs}).
		want(http.StatusOK).str("token.oauth_verifier")
	resp = c.do("POST", "/v3/OS-OAUTH1/access_token", "", nil, "Authorization",
		consumer.header("POST", c.URL+"/v3/OS-OAUTH1/access_token", rt.Get("oauth_token"), rt.Get("oauth_token_secret"), map[string]string{"oauth_verifier": verifier})).
		want(http.StatusCreated)
	at, _ := url.ParseQuery(string(resp.Body))
	return consumer, at.Get("oauth_token"), at.Get("oauth_token_secret")
}

func TestCleanupHooksUserAndRole(t *testing.T) {
	c := newTestCloud(t)
	proj := c.createProject("p")
	user := c.createUser("delegator", "pw")
	c.grant(user, proj, "admin")
	auditor := c.do("POST", "/v3/roles", c.adminToken, map[string]any{"role": map[string]any{"name": "auditor"}}).want(http.StatusCreated).str("role.id")
	c.grant(user, proj, "auditor")
	tok, _ := c.passwordToken("delegator", "pw", "p")

	_, atKey, _ := c.oauthAccessToken(tok, proj, "member", "auditor")
	rolesURL := "/v3/users/" + user + "/OS-OAUTH1/access_tokens/" + atKey + "/roles"
	if l := c.do("GET", rolesURL, tok, nil).want(http.StatusOK).list("roles"); len(l) != 2 {
		t.Fatalf("roles %v", l)
	}
	// A deleted role leaves the access tokens that delegated it.
	c.do("DELETE", "/v3/roles/"+auditor, c.adminToken, nil).want(http.StatusNoContent)
	tok, _ = c.passwordToken("delegator", "pw", "p")
	if l := c.do("GET", rolesURL, tok, nil).want(http.StatusOK).list("roles"); len(l) != 1 {
		t.Fatalf("roles after role deletion %v", l)
	}

	c.ec2Cred(tok, user, proj)
	if c.count("credentials", "user_id = ?", user) != 1 || c.count("oauth1_access_tokens", "authorizing_user_id = ?", user) != 1 {
		t.Fatal("setup")
	}
	c.do("DELETE", "/v3/users/"+user, c.adminToken, nil).want(http.StatusNoContent)
	if n := c.count("credentials", "user_id = ?", user); n != 0 {
		t.Fatalf("%d credentials outlived their user", n)
	}
	if n := c.count("oauth1_access_tokens", "authorizing_user_id = ?", user); n != 0 {
		t.Fatalf("%d access tokens outlived their user", n)
	}
	if n := c.count("oauth1_access_token_roles", "access_token_id = ?", atKey); n != 0 {
		t.Fatalf("%d access token roles left", n)
	}
}

func TestCleanupHooksDomain(t *testing.T) {
	c := newTestCloud(t)
	dom := c.createDomain("doomed")
	proj := c.do("POST", "/v3/projects", c.adminToken, map[string]any{"project": map[string]any{"name": "q", "domain_id": dom}}).
		want(http.StatusCreated).str("project.id")
	user := c.do("POST", "/v3/users", c.adminToken, map[string]any{"user": map[string]any{"name": "v", "domain_id": dom}}).
		want(http.StatusCreated).str("user.id")
	c.do("POST", "/v3/credentials", c.adminToken, map[string]any{"credential": map[string]any{
		"type": "ec2", "user_id": user, "project_id": proj, "blob": `{"access":"doomed-key","secret":"s"}`}}).want(http.StatusCreated)
	compute := c.serviceID("compute")
	c.do("POST", "/v3/registered_limits", c.adminToken, map[string]any{"registered_limits": []any{
		map[string]any{"service_id": compute, "resource_name": "cores", "default_limit": 1}}}).want(http.StatusCreated)
	c.do("POST", "/v3/limits", c.adminToken, map[string]any{"limits": []any{
		map[string]any{"project_id": proj, "service_id": compute, "resource_name": "cores", "resource_limit": 2},
		map[string]any{"domain_id": dom, "service_id": compute, "resource_name": "cores", "resource_limit": 3},
	}}).want(http.StatusCreated)
	c.do("PUT", "/v3/OS-EP-FILTER/projects/"+proj+"/endpoints/"+c.endpointIDs("public")[0], c.adminToken, nil).want(http.StatusNoContent)
	c.do("PUT", "/v3/domains/"+dom+"/config", c.adminToken, map[string]any{"config": map[string]any{"identity": map[string]any{"driver": "ldap"}}}).want(http.StatusCreated)

	c.do("PATCH", "/v3/domains/"+dom, c.adminToken, map[string]any{"domain": map[string]any{"enabled": false}}).want(http.StatusOK)
	c.do("DELETE", "/v3/domains/"+dom, c.adminToken, nil).want(http.StatusNoContent)
	for _, check := range []struct {
		table, where string
		args         []any
	}{
		{"credentials", "user_id = ?", []any{user}},
		{"unified_limits", "owner_id = ? OR owner_id = ?", []any{dom, proj}},
		{"project_endpoints", "project_id = ?", []any{proj}},
		{"domain_configs", "domain_id = ?", []any{dom}},
	} {
		if n := c.count(check.table, check.where, check.args...); n != 0 {
			t.Errorf("%d %s rows outlived the domain", n, check.table)
		}
	}
}

// TestExtensionsPostgres runs the extension suites on PostgreSQL when the
// test setup provides one (make test does), so the schema and queries are
// proven portable; the whole package can also be run on PostgreSQL with
// NIMBUS_TEST_IDENTITY_ENGINE=postgres.
func TestExtensionsPostgres(t *testing.T) {
	if os.Getenv(storetest.DSNEnv) == "" {
		t.Skip("no PostgreSQL: set " + storetest.DSNEnv + " (make test does) to run the extension suites against PostgreSQL")
	}
	if os.Getenv("NIMBUS_TEST_IDENTITY_ENGINE") == "postgres" {
		t.Skip("the whole suite is already running on PostgreSQL")
	}
	t.Setenv("NIMBUS_TEST_IDENTITY_ENGINE", "postgres")
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"credentials", TestCredentialsCRUD},
		{"credential ownership", TestCredentialOwnership},
		{"ec2tokens", TestEC2TokensSignatureV2},
		{"oauth1", TestOAuth1Flow},
		{"endpoint filter", TestEndpointFilterLimitsCatalog},
		{"endpoint associations", TestProjectEndpointAssociations},
		{"domain config", TestDomainConfig},
		{"policies", TestPolicyBlobs},
		{"registered limits", TestRegisteredLimits},
		{"limits", TestLimits},
		{"mappings", TestFederationMappings},
		{"identity providers", TestIdentityProvidersAndProtocols},
		{"cleanup user and role", TestCleanupHooksUserAndRole},
		{"cleanup domain", TestCleanupHooksDomain},
	} {
		t.Run(tc.name, tc.fn)
	}
}
