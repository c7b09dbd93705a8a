package api_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/policy"
)

var _ api.Authorizer = api.PolicyAuthorizer{}

// Callers shaped like the tokens Keystone issues for each scope.
var (
	projectMember = &api.Identity{
		UserID: "u-alice", UserDomainID: "d-users",
		ProjectID: "p-web", ProjectDomainID: "d-projects",
		Roles: []api.Role{{ID: "r1", Name: "member"}, {ID: "r2", Name: "reader"}},
	}
	projectAdmin = &api.Identity{
		UserID: "u-admin", UserDomainID: "default",
		ProjectID: "p-admin", ProjectDomainID: "default",
		Roles:          []api.Role{{ID: "r0", Name: "Admin"}},
		IsAdminProject: true,
	}
	domainManager = &api.Identity{
		UserID: "u-dom", UserDomainID: "d-projects",
		DomainID: "d-projects",
		Roles:    []api.Role{{ID: "r3", Name: "manager"}},
	}
	systemReader = &api.Identity{
		UserID: "u-ops", UserDomainID: "default",
		System: true,
		Roles:  []api.Role{{ID: "r2", Name: "reader"}},
	}
	trustee = &api.Identity{
		UserID: "u-bot", UserDomainID: "default",
		ProjectID: "p-web", ProjectDomainID: "d-projects",
		Roles:   []api.Role{{ID: "r1", Name: "member"}},
		TrustID: "t-1",
	}
)

func TestPolicyCredentialsFields(t *testing.T) {
	c := api.PolicyCredentials(projectMember)
	if c.UserID != "u-alice" || c.UserDomainID != "d-users" || c.ProjectID != "p-web" || c.ProjectDomainID != "d-projects" ||
		c.DomainID != "" || c.SystemScope != "" || c.IsAdmin {
		t.Errorf("credentials = %+v", c)
	}
	if !reflect.DeepEqual(c.Roles, []string{"member", "reader"}) {
		t.Errorf("roles = %v", c.Roles)
	}
	wantToken := map[string]any{
		"user":    map[string]any{"id": "u-alice", "domain": map[string]any{"id": "d-users"}},
		"project": map[string]any{"id": "p-web", "domain": map[string]any{"id": "d-projects"}},
	}
	if !reflect.DeepEqual(c.Attrs["token"], wantToken) {
		t.Errorf("token attrs = %v, want %v", c.Attrs["token"], wantToken)
	}
	if c.Attrs["is_admin_project"] != false {
		t.Errorf("is_admin_project = %v", c.Attrs["is_admin_project"])
	}
	if _, ok := c.Attrs["trust_id"]; ok {
		t.Error("trust_id set for a token without a trust")
	}

	if c := api.PolicyCredentials(systemReader); c.SystemScope != "all" || c.ProjectID != "" || c.DomainID != "" {
		t.Errorf("system credentials = %+v", c)
	}
	if c := api.PolicyCredentials(trustee); c.Attrs["trust_id"] != "t-1" {
		t.Errorf("trust credentials = %+v", c)
	}
	if c := api.PolicyCredentials(nil); !reflect.DeepEqual(c, policy.Credentials{}) {
		t.Errorf("anonymous credentials = %+v, want empty", c)
	}
}

func TestPolicyAuthorizerWithEnforcer(t *testing.T) {
	enforcer, err := policy.NewEnforcer(map[string]string{
		"admin_or_owner":      "role:admin or project_id:%(project_id)s",
		"same_domain":         "token.domain.id:%(target.domain.id)s",
		"same_user_domain":    "token.user.domain.id:%(target.user.domain_id)s",
		"same_project_domain": "token.project.domain.id:%(target.project.domain_id)s",
		"system_reader":       "role:reader and system_scope:all",
		"admin_project":       "is_admin_project:True",
		"own_user":            "user_id:%(user_id)s",
		"domain_scoped":       "domain_id:%(domain_id)s",
		"via_trust":           "trust_id:%(trust_id)s",
		"anyone":              "@",
	})
	if err != nil {
		t.Fatal(err)
	}
	authz := api.PolicyAuthorizer{Enforcer: enforcer}
	type check struct {
		action string
		target map[string]any
		caller *api.Identity
		want   bool
	}
	inDomain := func(d string) map[string]any {
		return map[string]any{"target": map[string]any{"domain": map[string]any{"id": d}}}
	}
	for _, tc := range []check{
		{"admin_or_owner", map[string]any{"project_id": "p-web"}, projectMember, true},
		{"admin_or_owner", map[string]any{"project_id": "p-other"}, projectMember, false},
		{"admin_or_owner", map[string]any{"project_id": "p-other"}, projectAdmin, true}, // role names match case-insensitively
		{"admin_or_owner", map[string]any{"project_id": "p-web"}, domainManager, false},
		{"admin_or_owner", map[string]any{"project_id": ""}, domainManager, false}, // empty never matches empty
		{"admin_or_owner", map[string]any{"project_id": "p-web"}, nil, false},

		{"same_domain", inDomain("d-projects"), domainManager, true},
		{"same_domain", inDomain("d-other"), domainManager, false},
		// A project-scoped token carries no token.domain, even though
		// its project lives in that domain.
		{"same_domain", inDomain("d-projects"), projectMember, false},
		{"same_domain", inDomain("d-projects"), nil, false},
		// Flattened oslo-style target keys work as well as nested maps.
		{"same_domain", map[string]any{"target.domain.id": "d-projects"}, domainManager, true},

		{"same_user_domain", map[string]any{"target": map[string]any{"user": map[string]any{"domain_id": "d-users"}}}, projectMember, true},
		{"same_user_domain", map[string]any{"target": map[string]any{"user": map[string]any{"domain_id": "d-projects"}}}, projectMember, false},
		{"same_project_domain", map[string]any{"target.project.domain_id": "d-projects"}, projectMember, true},
		{"same_project_domain", map[string]any{"target.project.domain_id": "d-projects"}, domainManager, false},

		{"system_reader", nil, systemReader, true},
		{"system_reader", nil, projectMember, false}, // reader, but not system scoped
		{"admin_project", nil, projectAdmin, true},
		{"admin_project", nil, projectMember, false},
		{"own_user", map[string]any{"user_id": "u-alice"}, projectMember, true},
		{"own_user", map[string]any{"user_id": "u-bob"}, projectMember, false},
		{"domain_scoped", map[string]any{"domain_id": "d-projects"}, domainManager, true},
		{"domain_scoped", map[string]any{"domain_id": "d-projects"}, projectMember, false},
		{"via_trust", map[string]any{"trust_id": "t-1"}, trustee, true},
		{"via_trust", map[string]any{"trust_id": "t-1"}, projectMember, false},
		{"anyone", nil, nil, true},
		{"no_such_rule", nil, projectAdmin, false},
	} {
		got, err := authz.Allow(tc.action, tc.target, tc.caller)
		if err != nil || got != tc.want {
			who := "anonymous"
			if tc.caller != nil {
				who = tc.caller.UserID
			}
			t.Errorf("%s on %v by %s = %v, %v; want %v", tc.action, tc.target, who, got, err, tc.want)
		}
	}
}

// The route table, the policy adapter and a real enforcer together: a
// path-scoped rule sees the path values as its target.
func TestRoutePolicyWithEnforcer(t *testing.T) {
	enforcer, err := policy.NewEnforcer(map[string]string{
		"compute:servers:show": "role:admin or project_id:%(project_id)s",
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &fakeTokens{tokens: map[string]*api.Identity{"alice": projectMember, "admin": projectAdmin, "dom": domainManager}}
	h := serviceWith(&api.Service{Errors: api.NovaErrors, Tokens: tokens, Policy: api.PolicyAuthorizer{Enforcer: enforcer}}, api.Route{
		Method: http.MethodGet, Pattern: "/v2.1/{project_id}/servers/{server_id}", Policy: "compute:servers:show",
		Handler: func(*http.Request) (*api.Response, error) { return api.JSON(http.StatusOK, map[string]string{}), nil },
	})
	for _, tc := range []struct {
		token, project string
		status         int
	}{
		{"alice", "p-web", http.StatusOK},
		{"alice", "p-other", http.StatusForbidden},
		{"admin", "p-other", http.StatusOK},
		{"dom", "p-web", http.StatusForbidden},
	} {
		rec := do(h, http.MethodGet, "/v2.1/"+tc.project+"/servers/s1", nil, "X-Auth-Token", tc.token)
		if rec.Code != tc.status {
			t.Errorf("%s on %s: status %d, want %d; body %s", tc.token, tc.project, rec.Code, tc.status, rec.Body)
		}
		if tc.status == http.StatusForbidden {
			if _, ok := jsonBody(t, rec)["forbidden"]; !ok {
				t.Errorf("403 body %s is not a Nova forbidden fault", rec.Body)
			}
		}
	}
}
