package integration

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/applicationcredentials"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/catalog"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/domains"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/endpoints"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/osinherit"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/regions"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/services"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/trusts"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// tokenView is the whole {"token": ...} body, including what gophercloud's
// own types leave out (system scope, application credential, audit ids).
type tokenView struct {
	Methods   []string `json:"methods"`
	AuditIDs  []string `json:"audit_ids"`
	ExpiresAt string   `json:"expires_at"`
	IssuedAt  string   `json:"issued_at"`
	User      struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Domain struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"domain"`
	} `json:"user"`
	Project *struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Domain struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"domain"`
	} `json:"project"`
	Domain *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"domain"`
	System                *map[string]bool       `json:"system"`
	Roles                 []tokens.Role          `json:"roles"`
	Catalog               *[]tokens.CatalogEntry `json:"catalog"`
	ApplicationCredential *struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		Restricted bool   `json:"restricted"`
	} `json:"application_credential"`
	Trust *tokens.Trust `json:"OS-TRUST:trust"`
}

func (v tokenView) roleNames() []string {
	var out []string
	for _, r := range v.Roles {
		out = append(out, r.Name)
	}
	slices.Sort(out)
	return out
}

func (v tokenView) expires(t *testing.T) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, v.ExpiresAt)
	if err != nil {
		t.Fatalf("token expires_at %q: %v", v.ExpiresAt, err)
	}
	return at
}

// tokenOf returns the token a client authenticated with, as the cloud
// described it when issuing it.
func tokenOf(t *testing.T, c *gophercloud.ServiceClient) tokenView {
	t.Helper()
	res, ok := c.ProviderClient.GetAuthResult().(tokens.CreateResult)
	if !ok {
		t.Fatalf("client has no v3 auth result (%T)", c.ProviderClient.GetAuthResult())
	}
	var tok tokenView // ExtractInto unwraps {"token": ...}
	if err := res.ExtractInto(&tok); err != nil {
		t.Fatalf("decode token body: %v", err)
	}
	return tok
}

// validateAs is GET /v3/auth/tokens for the subject token, by the caller.
func validateAs(t *testing.T, caller *gophercloud.ServiceClient, subject string) (tokenView, error) {
	t.Helper()
	res := tokens.Get(t.Context(), caller, subject)
	if res.Err != nil {
		return tokenView{}, res.Err
	}
	var tok tokenView // ExtractInto unwraps {"token": ...}
	if err := res.ExtractInto(&tok); err != nil {
		t.Fatalf("decode token body: %v", err)
	}
	return tok, nil
}

// tokenIsValid is HEAD /v3/auth/tokens as the admin.
func tokenIsValid(t *testing.T, subject string) bool {
	t.Helper()
	ok, err := tokens.Validate(t.Context(), adminClient(t), subject)
	if err != nil {
		t.Fatalf("check token: %v", err)
	}
	return ok
}

// catalogOf returns the token's catalog, failing the test if it has none.
func (v tokenView) catalogOf(t *testing.T) []tokens.CatalogEntry {
	t.Helper()
	if v.Catalog == nil {
		t.Fatalf("token scoped to project %+v / domain %+v / system %v has no catalog", v.Project, v.Domain, v.System)
	}
	return *v.Catalog
}

func hasCatalogType(cat []tokens.CatalogEntry, typ string) *tokens.CatalogEntry {
	for i := range cat {
		if cat[i].Type == typ {
			return &cat[i]
		}
	}
	return nil
}

func wantRoles(t *testing.T, v tokenView, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := v.roleNames(); !slices.Equal(got, want) {
		t.Errorf("token roles = %v, want %v", got, want)
	}
}

// scopedFixture is a domain with a project and a user holding member on
// it, the starting point of most tests.
type scopedFixture struct {
	domain  *domains.Domain
	project *projects.Project
	user    testUser
}

func newScopedFixture(t *testing.T) scopedFixture {
	t.Helper()
	adm := adminClient(t)
	d := newDomain(t, adm)
	p := newProject(t, adm, projects.CreateOpts{DomainID: d.ID})
	u := newUser(t, adm, d.ID, users.CreateOpts{})
	grant(t, adm, roleID(t, adm, "member"), roles.AssignOpts{UserID: u.ID, ProjectID: p.ID})
	return scopedFixture{domain: d, project: p, user: u}
}

func (f scopedFixture) projectAuth() gophercloud.AuthOptions {
	return f.user.auth(&gophercloud.AuthScope{ProjectID: f.project.ID})
}

// Authentication and tokens.

func TestPasswordAuthScopes(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	f := newScopedFixture(t)
	reader := roleID(t, adm, "reader")
	grant(t, adm, reader, roles.AssignOpts{UserID: f.user.ID, DomainID: f.domain.ID})
	grant(t, adm, reader, roles.AssignOpts{UserID: f.user.ID, System: true})

	t.Run("project by name", func(t *testing.T) {
		c := mustLogin(t, gophercloud.AuthOptions{
			Username: f.user.Name, DomainName: f.domain.Name, Password: f.user.Password,
			Scope: &gophercloud.AuthScope{ProjectName: f.project.Name, DomainName: f.domain.Name},
		})
		tok := tokenOf(t, c)
		if tok.Project == nil || tok.Project.ID != f.project.ID || tok.Project.Domain.ID != f.domain.ID {
			t.Fatalf("token project = %+v, want %s in %s", tok.Project, f.project.ID, f.domain.ID)
		}
		if tok.User.ID != f.user.ID || tok.User.Domain.Name != f.domain.Name {
			t.Errorf("token user = %+v, want %s in %s", tok.User, f.user.ID, f.domain.Name)
		}
		if !slices.Equal(tok.Methods, []string{"password"}) {
			t.Errorf("methods = %v, want [password]", tok.Methods)
		}
		// member implies reader (bootstrap's inference rule).
		wantRoles(t, tok, "member", "reader")
		if exp := tok.expires(t); !exp.After(time.Now()) || exp.After(time.Now().Add(25*time.Hour)) {
			t.Errorf("expires_at %s is not a sensible future time", tok.ExpiresAt)
		}
		if tok.Catalog == nil || hasCatalogType(*tok.Catalog, "identity") == nil {
			t.Errorf("project token catalog has no identity service: %+v", tok.Catalog)
		}
		// The token works: the user can read their own project.
		p, err := projects.Get(t.Context(), c, f.project.ID).Extract()
		if err != nil || p.Name != f.project.Name {
			t.Errorf("get own project with the token: %v, %+v", err, p)
		}
	})

	t.Run("project by id", func(t *testing.T) {
		tok := tokenOf(t, mustLogin(t, f.projectAuth()))
		if tok.Project == nil || tok.Project.ID != f.project.ID {
			t.Errorf("token project = %+v, want %s", tok.Project, f.project.ID)
		}
	})

	t.Run("scopable projects", func(t *testing.T) {
		c := mustLogin(t, f.user.auth(nil))
		// Errors are checked before extracting: a failed listing has no page.
		page, err := projects.ListAvailable(c).AllPages(t.Context())
		if err != nil {
			t.Fatalf("GET /v3/auth/projects: %v", err)
		}
		if ps, _ := projects.ExtractProjects(page); len(ps) != 1 || ps[0].ID != f.project.ID {
			t.Errorf("GET /v3/auth/projects: %+v; want the one project", ps)
		}
		page, err = domains.ListAvailable(c).AllPages(t.Context())
		if err != nil {
			t.Fatalf("GET /v3/auth/domains: %v", err)
		}
		if ds, _ := domains.ExtractDomains(page); len(ds) != 1 || ds[0].ID != f.domain.ID {
			t.Errorf("GET /v3/auth/domains: %+v; want the one domain", ds)
		}
		page, err = users.ListProjects(c, f.user.ID).AllPages(t.Context())
		if err != nil {
			t.Fatalf("GET /v3/users/{id}/projects as the user: %v", err)
		}
		if ps, _ := projects.ExtractProjects(page); len(ps) != 1 || ps[0].ID != f.project.ID {
			t.Errorf("GET /v3/users/{id}/projects as the user: %+v", ps)
		}
	})

	t.Run("domain", func(t *testing.T) {
		tok := tokenOf(t, mustLogin(t, f.user.auth(&gophercloud.AuthScope{DomainID: f.domain.ID})))
		if tok.Domain == nil || tok.Domain.ID != f.domain.ID || tok.Project != nil {
			t.Fatalf("token domain = %+v project = %+v, want domain %s only", tok.Domain, tok.Project, f.domain.ID)
		}
		wantRoles(t, tok, "reader")
	})

	t.Run("system", func(t *testing.T) {
		tok := tokenOf(t, mustLogin(t, f.user.auth(&gophercloud.AuthScope{System: true})))
		if tok.System == nil || !(*tok.System)["all"] || tok.Project != nil || tok.Domain != nil {
			t.Fatalf("token system = %v project = %+v domain = %+v, want system all only", tok.System, tok.Project, tok.Domain)
		}
		wantRoles(t, tok, "reader")
	})

	t.Run("unscoped", func(t *testing.T) {
		// No scope requested and no default project: Keystone issues an
		// unscoped token, without roles or catalog.
		tok := tokenOf(t, mustLogin(t, f.user.auth(nil)))
		if tok.Project != nil || tok.Domain != nil || tok.System != nil {
			t.Errorf("token is scoped: project %+v domain %+v system %v", tok.Project, tok.Domain, tok.System)
		}
		if len(tok.Roles) != 0 || tok.Catalog != nil && len(*tok.Catalog) != 0 {
			t.Errorf("unscoped token carries roles %v / catalog %v", tok.Roles, tok.Catalog)
		}
	})

	t.Run("default project", func(t *testing.T) {
		if _, err := users.Update(t.Context(), adm, f.user.ID, users.UpdateOpts{DefaultProjectID: f.project.ID}).Extract(); err != nil {
			t.Fatalf("set default project: %v", err)
		}
		tok := tokenOf(t, mustLogin(t, f.user.auth(nil)))
		if tok.Project == nil || tok.Project.ID != f.project.ID {
			t.Errorf("token without a scope = %+v, want the default project %s", tok.Project, f.project.ID)
		}
	})

	t.Run("project without a role", func(t *testing.T) {
		other := newProject(t, adm, projects.CreateOpts{DomainID: f.domain.ID})
		_, err := login(t.Context(), f.user.auth(&gophercloud.AuthScope{ProjectID: other.ID}))
		wantStatus(t, err, http.StatusUnauthorized, "scope to a project without a role")
	})
}

func TestTokenValidateCheckRevoke(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	f := newScopedFixture(t)
	uc := mustLogin(t, f.projectAuth())
	tokenID := uc.Token()

	res := tokens.Get(t.Context(), adm, tokenID)
	tok, err := res.ExtractToken()
	if err != nil {
		t.Fatalf("validate token as admin: %v", err)
	}
	if res.Header.Get("X-Subject-Token") != tokenID {
		t.Errorf("X-Subject-Token in the answer = %q, want the token", res.Header.Get("X-Subject-Token"))
	}
	if u, err := res.ExtractUser(); err != nil || u.ID != f.user.ID {
		t.Errorf("validated token user = %+v (%v), want %s", u, err, f.user.ID)
	}
	if p, err := res.ExtractProject(); err != nil || p == nil || p.ID != f.project.ID {
		t.Errorf("validated token project = %+v (%v), want %s", p, err, f.project.ID)
	}
	if !tok.ExpiresAt.After(time.Now()) {
		t.Errorf("validated token expires at %s", tok.ExpiresAt)
	}
	if ok, err := tokens.Validate(t.Context(), adm, tokenID); err != nil || !ok {
		t.Fatalf("check token (HEAD): %v, %v; want valid", ok, err)
	}

	// Users may validate their own tokens, but not other people's.
	if _, err := validateAs(t, uc, tokenID); err != nil {
		t.Errorf("user validates own token: %v", err)
	}
	other := newUser(t, adm, f.domain.ID, users.CreateOpts{})
	grant(t, adm, roleID(t, adm, "member"), roles.AssignOpts{UserID: other.ID, ProjectID: f.project.ID})
	oc := mustLogin(t, other.auth(&gophercloud.AuthScope{ProjectID: f.project.ID}))
	_, err = validateAs(t, oc, tokenID)
	checkStatus(t, err, http.StatusForbidden, "member validates another user's token")
	_, err = tokens.Validate(t.Context(), oc, tokenID)
	checkStatus(t, err, http.StatusForbidden, "member checks another user's token")

	if err := tokens.Revoke(t.Context(), adm, tokenID).Err; err != nil {
		t.Fatalf("revoke token: %v", err)
	}
	if ok, err := tokens.Validate(t.Context(), adm, tokenID); err != nil || ok {
		t.Errorf("check revoked token: %v, %v; want invalid", ok, err)
	}
	_, err = validateAs(t, adm, tokenID)
	checkStatus(t, err, http.StatusNotFound, "validate revoked token")
	_, err = projects.Get(t.Context(), uc, f.project.ID).Extract()
	checkStatus(t, err, http.StatusUnauthorized, "use revoked token")

	// Revocation is of that token only: a new one works, and users may
	// revoke their own.
	uc2 := mustLogin(t, f.projectAuth())
	if !tokenIsValid(t, uc2.Token()) {
		t.Fatal("token issued after another was revoked is invalid")
	}
	if err := tokens.Revoke(t.Context(), uc2, uc2.Token()).Err; err != nil {
		t.Errorf("user revokes own token: %v", err)
	}
	if tokenIsValid(t, uc2.Token()) {
		t.Error("self-revoked token is still valid")
	}
	if tokenIsValid(t, "gAAAAABnot-a-real-token") {
		t.Error("garbage token is valid")
	}
}

func TestTokenRescope(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	f := newScopedFixture(t)
	grant(t, adm, roleID(t, adm, "reader"), roles.AssignOpts{UserID: f.user.ID, DomainID: f.domain.ID})

	unscoped := mustLogin(t, f.user.auth(nil))
	parent := tokenOf(t, unscoped)
	if parent.Project != nil {
		t.Fatalf("expected an unscoped token, got project %+v", parent.Project)
	}

	pc := mustLogin(t, gophercloud.AuthOptions{TokenID: unscoped.Token(), Scope: &gophercloud.AuthScope{ProjectID: f.project.ID}})
	tok := tokenOf(t, pc)
	if tok.Project == nil || tok.Project.ID != f.project.ID || tok.User.ID != f.user.ID {
		t.Fatalf("rescoped token project %+v user %s, want %s / %s", tok.Project, tok.User.ID, f.project.ID, f.user.ID)
	}
	if !slices.Contains(tok.Methods, "token") || !slices.Contains(tok.Methods, "password") {
		t.Errorf("rescoped token methods = %v, want token and password", tok.Methods)
	}
	if len(tok.AuditIDs) != 2 || tok.AuditIDs[1] != parent.AuditIDs[0] {
		t.Errorf("rescoped audit_ids = %v, want [new, %s]", tok.AuditIDs, parent.AuditIDs[0])
	}
	if tok.expires(t).After(parent.expires(t)) {
		t.Errorf("rescoped token outlives its parent: %s > %s", tok.ExpiresAt, parent.ExpiresAt)
	}
	wantRoles(t, tok, "member", "reader")

	// From the project token to the domain.
	dc := mustLogin(t, gophercloud.AuthOptions{TokenID: pc.Token(), Scope: &gophercloud.AuthScope{DomainID: f.domain.ID}})
	if d := tokenOf(t, dc).Domain; d == nil || d.ID != f.domain.ID {
		t.Errorf("rescoped to domain: %+v, want %s", d, f.domain.ID)
	}

	other := newProject(t, adm, projects.CreateOpts{DomainID: f.domain.ID})
	_, err := login(t.Context(), gophercloud.AuthOptions{TokenID: unscoped.Token(), Scope: &gophercloud.AuthScope{ProjectID: other.ID}})
	wantStatus(t, err, http.StatusUnauthorized, "rescope to a project without a role")
}

func TestTokenNoCatalog(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	f := newScopedFixture(t)
	url := adm.ServiceURL("auth", "tokens")
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"},
			"password": map[string]any{"user": map[string]any{"id": f.user.ID, "password": f.user.Password}}},
		"scope": map[string]any{"project": map[string]any{"id": f.project.ID}},
	}}

	var created map[string]map[string]any
	resp, err := adm.Post(t.Context(), url+"?nocatalog", body, &created, &gophercloud.RequestOpts{
		OmitHeaders: []string{"X-Auth-Token"}, OkCodes: []int{http.StatusCreated},
	})
	if err != nil {
		t.Fatalf("create token ?nocatalog: %v", err)
	}
	tokenID := resp.Header.Get("X-Subject-Token")
	if _, has := created["token"]["catalog"]; has {
		t.Error("POST /v3/auth/tokens?nocatalog answered with a catalog")
	}
	if _, has := created["token"]["roles"]; !has {
		t.Error("token without catalog lost its roles")
	}

	var got map[string]map[string]any
	if _, err := adm.Get(t.Context(), url+"?nocatalog", &got, &gophercloud.RequestOpts{
		MoreHeaders: map[string]string{"X-Subject-Token": tokenID},
	}); err != nil {
		t.Fatalf("validate ?nocatalog: %v", err)
	}
	if _, has := got["token"]["catalog"]; has {
		t.Error("GET /v3/auth/tokens?nocatalog answered with a catalog")
	}
	full, err := validateAs(t, adm, tokenID)
	if err != nil {
		t.Fatal(err)
	}
	if full.Catalog == nil || hasCatalogType(*full.Catalog, "identity") == nil {
		t.Errorf("validation without nocatalog has no identity in the catalog: %+v", full.Catalog)
	}
}

// Domains, projects, users, groups.

func TestDomains(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	d := newDomain(t, adm)

	got, err := domains.Get(t.Context(), adm, d.ID).Extract()
	if err != nil || got.Name != d.Name || !got.Enabled {
		t.Fatalf("get domain: %v, %+v", err, got)
	}
	_, err = domains.Create(t.Context(), adm, domains.CreateOpts{Name: d.Name}).Extract()
	checkStatus(t, err, http.StatusConflict, "create a domain with a taken name")

	desc := "updated"
	if upd, err := domains.Update(t.Context(), adm, d.ID, domains.UpdateOpts{Description: &desc}).Extract(); err != nil || upd.Description != desc {
		t.Errorf("update domain description: %v, %+v", err, upd)
	}
	page, err := domains.List(adm, domains.ListOpts{Name: d.Name}).AllPages(t.Context())
	if ds, _ := domains.ExtractDomains(page); err != nil || len(ds) != 1 || ds[0].ID != d.ID {
		t.Errorf("list domains by name: %v, %+v", err, ds)
	}

	// A domain must be disabled before it can be deleted.
	err = domains.Delete(t.Context(), adm, d.ID).ExtractErr()
	checkStatus(t, err, http.StatusForbidden, "delete an enabled domain")
	off := false
	if _, err := domains.Update(t.Context(), adm, d.ID, domains.UpdateOpts{Enabled: &off}).Extract(); err != nil {
		t.Fatalf("disable domain: %v", err)
	}
	if err := domains.Delete(t.Context(), adm, d.ID).ExtractErr(); err != nil {
		t.Fatalf("delete disabled domain: %v", err)
	}
	_, err = domains.Get(t.Context(), adm, d.ID).Extract()
	checkStatus(t, err, http.StatusNotFound, "get deleted domain")
}

func TestProjectHierarchyAndTags(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	d := newDomain(t, adm)
	parent := newProject(t, adm, projects.CreateOpts{DomainID: d.ID, Description: "parent", Tags: []string{"env-test", "tier-1"}})
	child := newProject(t, adm, projects.CreateOpts{DomainID: d.ID, ParentID: parent.ID, Tags: []string{"env-test"}})

	if parent.ParentID != d.ID {
		t.Errorf("top-level project parent_id = %q, want its domain %s", parent.ParentID, d.ID)
	}
	got, err := projects.Get(t.Context(), adm, child.ID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if got.ParentID != parent.ID || got.DomainID != d.ID || !slices.Equal(got.Tags, []string{"env-test"}) {
		t.Errorf("child = parent %s domain %s tags %v; want %s, %s, [env-test]", got.ParentID, got.DomainID, got.Tags, parent.ID, d.ID)
	}

	page, err := projects.List(adm, projects.ListOpts{ParentID: parent.ID}).AllPages(t.Context())
	if ps, _ := projects.ExtractProjects(page); err != nil || len(ps) != 1 || ps[0].ID != child.ID {
		t.Errorf("list by parent_id: %v, %+v", err, ps)
	}
	page, err = projects.List(adm, projects.ListOpts{DomainID: d.ID, Tags: "tier-1"}).AllPages(t.Context())
	if ps, _ := projects.ExtractProjects(page); err != nil || len(ps) != 1 || ps[0].ID != parent.ID {
		t.Errorf("list by tags=tier-1: %v, %+v", err, ps)
	}

	newName, desc, tags := uniqueName("renamed"), "now described", []string{"env-prod", "owner-x"}
	upd, err := projects.Update(t.Context(), adm, child.ID, projects.UpdateOpts{Name: newName, Description: &desc, Tags: &tags}).Extract()
	if err != nil {
		t.Fatalf("update project: %v", err)
	}
	if upd.Name != newName || upd.Description != desc || !slices.Equal(upd.Tags, tags) {
		t.Errorf("updated project = %s %q %v", upd.Name, upd.Description, upd.Tags)
	}
	if ts, err := projects.ListTags(t.Context(), adm, child.ID).Extract(); err != nil || !slices.Equal(ts.Tags, tags) {
		t.Errorf("list tags: %v, %+v", err, ts)
	}
	if _, err := projects.ModifyTags(t.Context(), adm, child.ID, projects.ModifyTagsOpts{Tags: []string{"only"}}).Extract(); err != nil {
		t.Errorf("replace tags: %v", err)
	}
	if g, err := projects.Get(t.Context(), adm, child.ID).Extract(); err != nil || !slices.Equal(g.Tags, []string{"only"}) {
		t.Errorf("tags after replace: %v, %+v", err, g)
	}

	_, err = projects.Create(t.Context(), adm, projects.CreateOpts{DomainID: d.ID, Name: parent.Name}).Extract()
	checkStatus(t, err, http.StatusConflict, "create a project with a taken name")
	other := newDomain(t, adm)
	_, err = projects.Create(t.Context(), adm, projects.CreateOpts{DomainID: other.ID, ParentID: parent.ID, Name: uniqueName("x")}).Extract()
	checkStatus(t, err, http.StatusBadRequest, "create a project under a parent in another domain")

	err = projects.Delete(t.Context(), adm, parent.ID).ExtractErr()
	checkStatus(t, err, http.StatusForbidden, "delete a project that has children")
	if err := projects.Delete(t.Context(), adm, child.ID).ExtractErr(); err != nil {
		t.Fatalf("delete leaf project: %v", err)
	}
	_, err = projects.Get(t.Context(), adm, child.ID).Extract()
	checkStatus(t, err, http.StatusNotFound, "get deleted project")
	if err := projects.Delete(t.Context(), adm, parent.ID).ExtractErr(); err != nil {
		t.Errorf("delete parent once it is a leaf: %v", err)
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	f := newScopedFixture(t)
	u := newUser(t, adm, f.domain.ID, users.CreateOpts{
		Description: "a test user",
		Extra:       map[string]any{"email": "alice@example.org"},
	})

	if u.Extra["email"] != "alice@example.org" {
		t.Errorf("created user extra = %v, want email", u.Extra)
	}
	got, err := users.Get(t.Context(), adm, u.ID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if got.Extra["email"] != "alice@example.org" || got.Description != "a test user" || !got.Enabled || got.DomainID != f.domain.ID {
		t.Errorf("get user = %+v", got)
	}
	if _, has := got.Extra["password"]; has {
		t.Error("the password is echoed back as an extra attribute")
	}

	upd, err := users.Update(t.Context(), adm, u.ID, users.UpdateOpts{Extra: map[string]any{"email": "alice@example.com"}}).Extract()
	if err != nil || upd.Extra["email"] != "alice@example.com" || upd.Name != u.Name || upd.Description != "a test user" {
		t.Errorf("update email: %v, %+v", err, upd)
	}

	// An update that does not mention it keeps the extra attribute.
	newName := uniqueName("user")
	if upd, err := users.Update(t.Context(), adm, u.ID, users.UpdateOpts{Name: newName}).Extract(); err != nil || upd.Extra["email"] != "alice@example.com" {
		t.Errorf("rename user: %v, %+v; want the email kept", err, upd)
	}
	if got, err := users.Get(t.Context(), adm, u.ID).Extract(); err != nil || got.Extra["email"] != "alice@example.com" || got.Name != newName {
		t.Errorf("user after rename: %v, %+v", err, got)
	}
	u.Name = newName

	page, err := users.List(adm, users.ListOpts{DomainID: f.domain.ID, Name: u.Name}).AllPages(t.Context())
	if us, _ := users.ExtractUsers(page); err != nil || len(us) != 1 || us[0].ID != u.ID {
		t.Errorf("list users by domain and name: %v, %+v", err, us)
	}
	_, err = users.Create(t.Context(), adm, users.CreateOpts{Name: u.Name, DomainID: f.domain.ID, Password: "x-" + randomHex(8)}).Extract()
	checkStatus(t, err, http.StatusConflict, "create a user with a taken name")

	// Disabling a user stops logins and tokens; enabling restores logins.
	grant(t, adm, roleID(t, adm, "member"), roles.AssignOpts{UserID: u.ID, ProjectID: f.project.ID})
	uc := mustLogin(t, u.auth(&gophercloud.AuthScope{ProjectID: f.project.ID}))
	off, on := false, true
	if _, err := users.Update(t.Context(), adm, u.ID, users.UpdateOpts{Enabled: &off}).Extract(); err != nil {
		t.Fatal(err)
	}
	_, err = login(t.Context(), u.auth(&gophercloud.AuthScope{ProjectID: f.project.ID}))
	checkStatus(t, err, http.StatusUnauthorized, "log in as a disabled user")
	if tokenIsValid(t, uc.Token()) {
		t.Error("a disabled user's token is still valid")
	}
	if _, err := users.Update(t.Context(), adm, u.ID, users.UpdateOpts{Enabled: &on}).Extract(); err != nil {
		t.Fatal(err)
	}
	mustLogin(t, u.auth(&gophercloud.AuthScope{ProjectID: f.project.ID}))
}

func TestChangeOwnPassword(t *testing.T) {
	t.Parallel()
	f := newScopedFixture(t)
	uc := mustLogin(t, f.projectAuth())
	before := uc.Token()

	err := users.ChangePassword(t.Context(), uc, f.user.ID, users.ChangePasswordOpts{OriginalPassword: "wrong", Password: "new-" + randomHex(12)}).ExtractErr()
	checkStatus(t, err, http.StatusUnauthorized, "change password with a wrong original")

	newPassword := "new-" + randomHex(16)
	if err := users.ChangePassword(t.Context(), uc, f.user.ID, users.ChangePasswordOpts{OriginalPassword: f.user.Password, Password: newPassword}).ExtractErr(); err != nil {
		t.Fatalf("change own password: %v", err)
	}
	_, err = login(t.Context(), f.projectAuth())
	checkStatus(t, err, http.StatusUnauthorized, "log in with the old password")
	if tokenIsValid(t, before) {
		t.Error("token issued before the password change is still valid")
	}
	nu := f.user
	nu.Password = newPassword
	nc := mustLogin(t, nu.auth(&gophercloud.AuthScope{ProjectID: f.project.ID}))
	if !tokenIsValid(t, nc.Token()) {
		t.Error("token issued with the new password is invalid")
	}

	// An admin resetting the password revokes the user's tokens as well.
	reset := "reset-" + randomHex(16)
	if _, err := users.Update(t.Context(), adminClient(t), f.user.ID, users.UpdateOpts{Password: reset}).Extract(); err != nil {
		t.Fatalf("admin resets the password: %v", err)
	}
	if tokenIsValid(t, nc.Token()) {
		t.Error("token issued before an admin password reset is still valid")
	}
	_, err = login(t.Context(), nu.auth(&gophercloud.AuthScope{ProjectID: f.project.ID}))
	checkStatus(t, err, http.StatusUnauthorized, "log in with the password replaced by the admin")
	nu.Password = reset
	mustLogin(t, nu.auth(&gophercloud.AuthScope{ProjectID: f.project.ID}))
}

func TestGroupsAndMembership(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	d := newDomain(t, adm)
	p := newProject(t, adm, projects.CreateOpts{DomainID: d.ID})
	u := newUser(t, adm, d.ID, users.CreateOpts{})
	g, err := groups.Create(t.Context(), adm, groups.CreateOpts{Name: uniqueName("grp"), DomainID: d.ID, Description: "devs"}).Extract()
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	t.Cleanup(func() { _ = groups.Delete(context.Background(), adm, g.ID).ExtractErr() })
	_, err = groups.Create(t.Context(), adm, groups.CreateOpts{Name: g.Name, DomainID: d.ID}).Extract()
	checkStatus(t, err, http.StatusConflict, "create a group with a taken name")

	if err := users.AddToGroup(t.Context(), adm, g.ID, u.ID).ExtractErr(); err != nil {
		t.Fatalf("add user to group: %v", err)
	}
	if in, err := users.IsMemberOfGroup(t.Context(), adm, g.ID, u.ID).Extract(); err != nil || !in {
		t.Errorf("is member after add: %v, %v", in, err)
	}
	page, err := users.ListInGroup(adm, g.ID, nil).AllPages(t.Context())
	if us, _ := users.ExtractUsers(page); err != nil || len(us) != 1 || us[0].ID != u.ID {
		t.Errorf("list users in group: %v, %+v", err, us)
	}
	page, err = users.ListGroups(adm, u.ID).AllPages(t.Context())
	if gs, _ := groups.ExtractGroups(page); err != nil || len(gs) != 1 || gs[0].ID != g.ID {
		t.Errorf("list groups of user: %v, %+v", err, gs)
	}

	// A role granted to the group lets its members onto the project.
	grant(t, adm, roleID(t, adm, "member"), roles.AssignOpts{GroupID: g.ID, ProjectID: p.ID})
	uc := mustLogin(t, u.auth(&gophercloud.AuthScope{ProjectID: p.ID}))
	wantRoles(t, tokenOf(t, uc), "member", "reader")

	if err := users.RemoveFromGroup(t.Context(), adm, g.ID, u.ID).ExtractErr(); err != nil {
		t.Fatalf("remove user from group: %v", err)
	}
	if in, err := users.IsMemberOfGroup(t.Context(), adm, g.ID, u.ID).Extract(); err != nil || in {
		t.Errorf("is member after removal: %v, %v", in, err)
	}
	if tokenIsValid(t, uc.Token()) {
		t.Error("token that relied on group membership is still valid after removal")
	}
	_, err = login(t.Context(), u.auth(&gophercloud.AuthScope{ProjectID: p.ID}))
	checkStatus(t, err, http.StatusUnauthorized, "scope to the project after leaving the group")
}

// Roles, grants and assignments.

func TestRolesAndImpliedRoles(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	f := newScopedFixture(t)
	prior, implied := newRole(t, adm), newRole(t, adm)

	_, err := roles.Create(t.Context(), adm, roles.CreateOpts{Name: prior.Name}).Extract()
	checkStatus(t, err, http.StatusConflict, "create a role with a taken name")

	rule, err := roles.CreateRoleInferenceRule(t.Context(), adm, prior.ID, implied.ID).Extract()
	if err != nil {
		t.Fatalf("create implied role: %v", err)
	}
	if rule.RoleInference.PriorRole.ID != prior.ID || rule.RoleInference.ImpliedRole.ID != implied.ID {
		t.Errorf("inference rule = %+v", rule.RoleInference)
	}
	if _, err := roles.GetRoleInferenceRule(t.Context(), adm, prior.ID, implied.ID).Extract(); err != nil {
		t.Errorf("get implied role: %v", err)
	}
	all, err := roles.ListRoleInferenceRules(t.Context(), adm).Extract()
	if err != nil {
		t.Fatalf("list role inferences: %v", err)
	}
	found := false
	for _, r := range all.RoleInferenceRuleList {
		if r.PriorRole.ID == prior.ID && len(r.ImpliedRoles) == 1 && r.ImpliedRoles[0].ID == implied.ID {
			found = true
		}
	}
	if !found {
		t.Errorf("role_inferences has no %s -> %s: %+v", prior.Name, implied.Name, all.RoleInferenceRuleList)
	}

	grant(t, adm, prior.ID, roles.AssignOpts{UserID: f.user.ID, ProjectID: f.project.ID})
	wantRoles(t, tokenOf(t, mustLogin(t, f.projectAuth())), "member", "reader", prior.Name, implied.Name)

	if err := roles.DeleteRoleInferenceRule(t.Context(), adm, prior.ID, implied.ID).ExtractErr(); err != nil {
		t.Fatalf("delete implied role: %v", err)
	}
	wantRoles(t, tokenOf(t, mustLogin(t, f.projectAuth())), "member", "reader", prior.Name)

	name := uniqueName("renamed-role")
	if upd, err := roles.Update(t.Context(), adm, prior.ID, roles.UpdateOpts{Name: name}).Extract(); err != nil || upd.Name != name {
		t.Errorf("rename role: %v, %+v", err, upd)
	}
	if err := roles.Delete(t.Context(), adm, implied.ID).ExtractErr(); err != nil {
		t.Errorf("delete role: %v", err)
	}
	_, err = roles.Get(t.Context(), adm, implied.ID).Extract()
	checkStatus(t, err, http.StatusNotFound, "get deleted role")
}

func TestGrantsOnProjectDomainSystem(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	d := newDomain(t, adm)
	p := newProject(t, adm, projects.CreateOpts{DomainID: d.ID})
	u := newUser(t, adm, d.ID, users.CreateOpts{})
	role := newRole(t, adm)

	for _, tc := range []struct {
		name  string
		scope *gophercloud.AuthScope
		opts  roles.AssignOpts
	}{
		{"project", &gophercloud.AuthScope{ProjectID: p.ID}, roles.AssignOpts{UserID: u.ID, ProjectID: p.ID}},
		{"domain", &gophercloud.AuthScope{DomainID: d.ID}, roles.AssignOpts{UserID: u.ID, DomainID: d.ID}},
		{"system", &gophercloud.AuthScope{System: true}, roles.AssignOpts{UserID: u.ID, System: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := login(t.Context(), u.auth(tc.scope))
			wantStatus(t, err, http.StatusUnauthorized, "scope before the grant")

			grant(t, adm, role.ID, tc.opts)
			vo := roles.ValidateOpts{UserID: tc.opts.UserID, ProjectID: tc.opts.ProjectID, DomainID: tc.opts.DomainID, System: tc.opts.System}
			if err := roles.Validate(t.Context(), adm, role.ID, vo).ExtractErr(); err != nil {
				t.Errorf("check grant: %v", err)
			}
			lo := roles.ListAssignmentsOnResourceOpts{UserID: tc.opts.UserID, ProjectID: tc.opts.ProjectID, DomainID: tc.opts.DomainID, System: tc.opts.System}
			page, err := roles.ListAssignmentsOnResource(adm, lo).AllPages(t.Context())
			if rs, _ := roles.ExtractRoles(page); err != nil || len(rs) != 1 || rs[0].ID != role.ID {
				t.Errorf("list grants: %v, %+v", err, rs)
			}
			uc := mustLogin(t, u.auth(tc.scope))
			wantRoles(t, tokenOf(t, uc), role.Name)

			uo := roles.UnassignOpts{UserID: tc.opts.UserID, ProjectID: tc.opts.ProjectID, DomainID: tc.opts.DomainID, System: tc.opts.System}
			if err := roles.Unassign(t.Context(), adm, role.ID, uo).ExtractErr(); err != nil {
				t.Fatalf("revoke grant: %v", err)
			}
			err = roles.Validate(t.Context(), adm, role.ID, vo).ExtractErr()
			checkStatus(t, err, http.StatusNotFound, "check a revoked grant")
			if tokenIsValid(t, uc.Token()) {
				t.Error("token is still valid after its only role was revoked")
			}
		})
	}
}

func TestInheritedGrants(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	d := newDomain(t, adm)
	p := newProject(t, adm, projects.CreateOpts{DomainID: d.ID})
	sub := newProject(t, adm, projects.CreateOpts{DomainID: d.ID, ParentID: p.ID})
	u := newUser(t, adm, d.ID, users.CreateOpts{})
	member := roleID(t, adm, "member")

	opts := osinherit.AssignOpts{UserID: u.ID, DomainID: d.ID}
	if err := osinherit.Assign(t.Context(), adm, member, opts).ExtractErr(); err != nil {
		t.Fatalf("grant member on the domain, inherited to projects: %v", err)
	}
	if err := osinherit.Validate(t.Context(), adm, member, osinherit.ValidateOpts{UserID: u.ID, DomainID: d.ID}).ExtractErr(); err != nil {
		t.Errorf("check inherited grant: %v", err)
	}
	for _, proj := range []*projects.Project{p, sub} {
		tok := tokenOf(t, mustLogin(t, u.auth(&gophercloud.AuthScope{ProjectID: proj.ID})))
		wantRoles(t, tok, "member", "reader")
	}
	// Inherited to projects means not on the domain itself.
	_, err := login(t.Context(), u.auth(&gophercloud.AuthScope{DomainID: d.ID}))
	checkStatus(t, err, http.StatusUnauthorized, "domain scope from an inherited-only grant")

	eff := true
	page, err := roles.ListAssignments(adm, roles.ListAssignmentsOpts{UserID: u.ID, Effective: &eff}).AllPages(t.Context())
	as, _ := roles.ExtractRoleAssignments(page)
	if err != nil {
		t.Fatalf("list effective assignments: %v", err)
	}
	for _, proj := range []string{p.ID, sub.ID} {
		if !slices.ContainsFunc(as, func(a roles.RoleAssignment) bool { return a.Scope.Project.ID == proj && a.Role.ID == member }) {
			t.Errorf("effective assignments lack member on %s: %+v", proj, as)
		}
	}
	if slices.ContainsFunc(as, func(a roles.RoleAssignment) bool { return a.Scope.Domain.ID == d.ID }) {
		t.Errorf("effective assignments list the inherited grant on the domain itself: %+v", as)
	}

	if err := osinherit.Unassign(t.Context(), adm, member, osinherit.UnassignOpts{UserID: u.ID, DomainID: d.ID}).ExtractErr(); err != nil {
		t.Fatalf("revoke inherited grant: %v", err)
	}
	_, err = login(t.Context(), u.auth(&gophercloud.AuthScope{ProjectID: sub.ID}))
	checkStatus(t, err, http.StatusUnauthorized, "scope after the inherited grant is revoked")

	// Inherited from a project: the subtree gets it, the project does not.
	if err := osinherit.Assign(t.Context(), adm, member, osinherit.AssignOpts{UserID: u.ID, ProjectID: p.ID}).ExtractErr(); err != nil {
		t.Fatalf("grant member on a project, inherited to its subtree: %v", err)
	}
	mustLogin(t, u.auth(&gophercloud.AuthScope{ProjectID: sub.ID}))
	_, err = login(t.Context(), u.auth(&gophercloud.AuthScope{ProjectID: p.ID}))
	checkStatus(t, err, http.StatusUnauthorized, "scope to the project holding an inherited-only grant")
}

func TestRoleAssignmentListing(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	f := newScopedFixture(t)
	g, err := groups.Create(t.Context(), adm, groups.CreateOpts{Name: uniqueName("grp"), DomainID: f.domain.ID}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = groups.Delete(context.Background(), adm, g.ID).ExtractErr() })
	if err := users.AddToGroup(t.Context(), adm, g.ID, f.user.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	reader := roleID(t, adm, "reader")
	grant(t, adm, reader, roles.AssignOpts{GroupID: g.ID, DomainID: f.domain.ID})

	list := func(opts roles.ListAssignmentsOpts) []roles.RoleAssignment {
		t.Helper()
		page, err := roles.ListAssignments(adm, opts).AllPages(t.Context())
		if err != nil {
			t.Fatalf("list role assignments %+v: %v", opts, err)
		}
		as, err := roles.ExtractRoleAssignments(page)
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
	yes := true

	direct := list(roles.ListAssignmentsOpts{UserID: f.user.ID})
	if len(direct) != 1 || direct[0].Scope.Project.ID != f.project.ID || direct[0].Role.ID != roleID(t, adm, "member") {
		t.Errorf("direct assignments of the user = %+v, want member on the project only", direct)
	}
	if got := list(roles.ListAssignmentsOpts{GroupID: g.ID}); len(got) != 1 || got[0].Group.ID != g.ID || got[0].Scope.Domain.ID != f.domain.ID {
		t.Errorf("assignments of the group = %+v", got)
	}

	eff := list(roles.ListAssignmentsOpts{UserID: f.user.ID, Effective: &yes, IncludeNames: &yes})
	has := func(roleName, projectID, domainID string) *roles.RoleAssignment {
		for i, a := range eff {
			if a.Role.Name == roleName && a.Scope.Project.ID == projectID && a.Scope.Domain.ID == domainID {
				return &eff[i]
			}
		}
		return nil
	}
	if a := has("member", f.project.ID, ""); a == nil {
		t.Errorf("effective assignments lack member on the project: %+v", eff)
	} else if a.User.ID != f.user.ID || a.User.Name != f.user.Name || a.User.Domain.Name != f.domain.Name ||
		a.Scope.Project.Name != f.project.Name || a.Scope.Project.Domain.Name != f.domain.Name {
		t.Errorf("include_names: %+v, want user %s@%s on %s@%s", *a, f.user.Name, f.domain.Name, f.project.Name, f.domain.Name)
	}
	if has("reader", f.project.ID, "") == nil {
		t.Errorf("effective assignments lack reader implied by member: %+v", eff)
	}
	if a := has("reader", "", f.domain.ID); a == nil {
		t.Errorf("effective assignments lack reader on the domain through the group: %+v", eff)
	} else if a.User.ID != f.user.ID || a.Group.ID != "" {
		t.Errorf("effective group assignment should be expanded to the user: %+v", *a)
	} else if a.Scope.Domain.Name != f.domain.Name {
		t.Errorf("include_names: domain scope name = %q, want %q", a.Scope.Domain.Name, f.domain.Name)
	}

	onProject := list(roles.ListAssignmentsOpts{ScopeProjectID: f.project.ID})
	if len(onProject) != 1 || onProject[0].User.ID != f.user.ID {
		t.Errorf("assignments on the project = %+v", onProject)
	}
}

// Catalog.

func TestCatalogRegionsServicesEndpoints(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	ctx := t.Context()

	parentRegion, err := regions.Create(ctx, adm, regions.CreateOpts{ID: uniqueName("region"), Description: "test region"}).Extract()
	if err != nil {
		t.Fatalf("create region: %v", err)
	}
	t.Cleanup(func() { _ = regions.Delete(context.Background(), adm, parentRegion.ID).ExtractErr() })
	region, err := regions.Create(ctx, adm, regions.CreateOpts{ID: uniqueName("region"), ParentRegionID: parentRegion.ID}).Extract()
	if err != nil {
		t.Fatalf("create child region: %v", err)
	}
	t.Cleanup(func() { _ = regions.Delete(context.Background(), adm, region.ID).ExtractErr() })
	if region.ParentRegionID != parentRegion.ID {
		t.Errorf("child region parent = %q", region.ParentRegionID)
	}
	_, err = regions.Create(ctx, adm, regions.CreateOpts{ID: region.ID}).Extract()
	checkStatus(t, err, http.StatusConflict, "create a region with a taken id")
	desc := "renamed"
	if r, err := regions.Update(ctx, adm, region.ID, regions.UpdateOpts{Description: &desc}).Extract(); err != nil || r.Description != desc {
		t.Errorf("update region: %v, %+v", err, r)
	}
	if r, err := regions.Get(ctx, adm, region.ID).Extract(); err != nil || r.Description != desc {
		t.Errorf("get region: %v, %+v", err, r)
	}

	svcType := uniqueName("svc")
	svc, err := services.Create(ctx, adm, services.CreateOpts{Type: svcType, Name: "test-service", Description: "integration"}).Extract()
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	t.Cleanup(func() { _ = services.Delete(context.Background(), adm, svc.ID).ExtractErr() })
	if svc.Type != svcType || svc.Name != "test-service" || !svc.Enabled {
		t.Errorf("created service = %+v", svc)
	}
	if s, err := services.Update(ctx, adm, svc.ID, services.UpdateOpts{Description: new(string)}).Extract(); err != nil || s.Type != svcType {
		t.Errorf("update service: %v, %+v", err, s)
	}

	url := "http://" + svcType + ".example.test:8080/v1"
	ep, err := endpoints.Create(ctx, adm, endpoints.CreateOpts{
		Availability: gophercloud.AvailabilityPublic, URL: url, ServiceID: svc.ID, Region: region.ID,
	}).Extract()
	if err != nil {
		t.Fatalf("create endpoint: %v", err)
	}
	t.Cleanup(func() { _ = endpoints.Delete(context.Background(), adm, ep.ID).ExtractErr() })
	if ep.Region != region.ID || ep.URL != url || ep.ServiceID != svc.ID || ep.Availability != gophercloud.AvailabilityPublic {
		t.Errorf("created endpoint = %+v", ep)
	}
	page, err := endpoints.List(adm, endpoints.ListOpts{ServiceID: svc.ID}).AllPages(ctx)
	if eps, _ := endpoints.ExtractEndpoints(page); err != nil || len(eps) != 1 || eps[0].ID != ep.ID {
		t.Errorf("list endpoints of the service: %v, %+v", err, eps)
	}
	url += "/moved"
	if e, err := endpoints.Update(ctx, adm, ep.ID, endpoints.UpdateOpts{URL: url}).Extract(); err != nil || e.URL != url {
		t.Errorf("update endpoint: %v, %+v", err, e)
	}

	// A new token's catalog has the service, and gophercloud finds it there.
	fresh := mustLogin(t, gophercloud.AuthOptions{Username: "admin", DomainName: "Default", Password: target.adminPassword,
		Scope: &gophercloud.AuthScope{ProjectName: "admin", DomainName: "Default"}})
	tok := tokenOf(t, fresh)
	entry := hasCatalogType(tok.catalogOf(t), svcType)
	if entry == nil || len(entry.Endpoints) != 1 || entry.Endpoints[0].URL != url || entry.Endpoints[0].RegionID != region.ID ||
		entry.Endpoints[0].Interface != "public" || entry.Name != "test-service" {
		t.Errorf("token catalog entry for %s = %+v", svcType, entry)
	}
	located, err := fresh.ProviderClient.EndpointLocator(gophercloud.EndpointOpts{Type: svcType, Region: region.ID, Availability: gophercloud.AvailabilityPublic})
	if err != nil || strings.TrimSuffix(located, "/") != url {
		t.Errorf("gophercloud locates %s at %q (%v), want %s", svcType, located, err, url)
	}

	// Keystone refuses to delete a region while it or a child region has
	// endpoints.
	err = regions.Delete(ctx, adm, parentRegion.ID).ExtractErr()
	checkStatus(t, err, http.StatusForbidden, "delete a region whose child region has an endpoint")

	if err := endpoints.Delete(ctx, adm, ep.ID).ExtractErr(); err != nil {
		t.Fatalf("delete endpoint: %v", err)
	}
	tok = tokenOf(t, mustLogin(t, gophercloud.AuthOptions{Username: "admin", DomainName: "Default", Password: target.adminPassword,
		Scope: &gophercloud.AuthScope{ProjectName: "admin", DomainName: "Default"}}))
	if e := hasCatalogType(tok.catalogOf(t), svcType); e != nil && len(e.Endpoints) > 0 {
		t.Errorf("catalog still lists the deleted endpoint: %+v", e)
	}
	if err := services.Delete(ctx, adm, svc.ID).ExtractErr(); err != nil {
		t.Errorf("delete service: %v", err)
	}
	_, err = services.Get(ctx, adm, svc.ID).Extract()
	checkStatus(t, err, http.StatusNotFound, "get deleted service")
	// Without endpoints, deleting a region deletes its child regions too
	// (Keystone's catalog driver recurses through them).
	if err := regions.Delete(ctx, adm, parentRegion.ID).ExtractErr(); err != nil {
		t.Errorf("delete a region with a child region and no endpoints: %v", err)
	}
	_, err = regions.Get(ctx, adm, region.ID).Extract()
	checkStatus(t, err, http.StatusNotFound, "get the child of a deleted region")
}

func TestAuthCatalogHasIdentity(t *testing.T) {
	t.Parallel()
	f := newScopedFixture(t)
	uc := mustLogin(t, f.projectAuth())
	page, err := catalog.List(uc).AllPages(t.Context())
	if err != nil {
		t.Fatalf("GET /v3/auth/catalog: %v", err)
	}
	entries, err := catalog.ExtractServiceCatalog(page)
	if err != nil {
		t.Fatal(err)
	}
	id := hasCatalogType(entries, "identity")
	if id == nil {
		t.Fatalf("catalog has no identity service: %+v", entries)
	}
	want := target.authURL + "/v3"
	ifaces := map[string]bool{}
	for _, e := range id.Endpoints {
		ifaces[e.Interface] = true
		if e.Interface == "public" && strings.TrimSuffix(e.URL, "/") != want {
			t.Errorf("public identity endpoint = %s, want %s", e.URL, want)
		}
		if e.RegionID != target.region && e.Region != target.region {
			t.Errorf("identity endpoint region = %q/%q, want %s", e.Region, e.RegionID, target.region)
		}
	}
	if !ifaces["public"] || !ifaces["internal"] || !ifaces["admin"] {
		t.Errorf("identity interfaces = %v, want public, internal and admin", ifaces)
	}
}

// Application credentials.

func TestApplicationCredentials(t *testing.T) {
	t.Parallel()
	f := newScopedFixture(t)
	uc := mustLogin(t, f.projectAuth())
	ctx := t.Context()

	_, err := applicationcredentials.Create(ctx, uc, f.user.ID, applicationcredentials.CreateOpts{
		Name: uniqueName("ac"), Roles: []applicationcredentials.Role{{Name: "admin"}},
	}).Extract()
	checkStatus(t, err, http.StatusForbidden, "application credential with a role the user lacks")

	ac, err := applicationcredentials.Create(ctx, uc, f.user.ID, applicationcredentials.CreateOpts{
		Name: uniqueName("ac"), Description: "ci", Roles: []applicationcredentials.Role{{Name: "reader"}},
	}).Extract()
	if err != nil {
		t.Fatalf("create application credential: %v", err)
	}
	if ac.Secret == "" || ac.ProjectID != f.project.ID || len(ac.Roles) != 1 || ac.Roles[0].Name != "reader" {
		t.Errorf("created application credential = %+v", ac)
	}
	_, err = applicationcredentials.Create(ctx, uc, f.user.ID, applicationcredentials.CreateOpts{Name: ac.Name}).Extract()
	checkStatus(t, err, http.StatusConflict, "application credential with a taken name")
	if got, err := applicationcredentials.Get(ctx, uc, f.user.ID, ac.ID).Extract(); err != nil || got.Secret != "" || got.Name != ac.Name {
		t.Errorf("get application credential: %v, %+v (the secret must not be shown again)", err, got)
	}

	byID := gophercloud.AuthOptions{ApplicationCredentialID: ac.ID, ApplicationCredentialSecret: ac.Secret}
	acc := mustLogin(t, byID)
	tok := tokenOf(t, acc)
	if tok.Project == nil || tok.Project.ID != f.project.ID || tok.User.ID != f.user.ID {
		t.Errorf("application credential token project %+v user %s", tok.Project, tok.User.ID)
	}
	if !slices.Equal(tok.Methods, []string{"application_credential"}) {
		t.Errorf("methods = %v", tok.Methods)
	}
	if tok.ApplicationCredential == nil || tok.ApplicationCredential.ID != ac.ID || !tok.ApplicationCredential.Restricted {
		t.Errorf("token application_credential = %+v", tok.ApplicationCredential)
	}
	// The user holds member and reader; the credential carries reader only.
	wantRoles(t, tok, "reader")

	for name, opts := range map[string]gophercloud.AuthOptions{
		"name and user id":     {ApplicationCredentialName: ac.Name, UserID: f.user.ID, ApplicationCredentialSecret: ac.Secret},
		"name and user name":   {ApplicationCredentialName: ac.Name, Username: f.user.Name, DomainName: f.domain.Name, ApplicationCredentialSecret: ac.Secret},
		"name and user domain": {ApplicationCredentialName: ac.Name, Username: f.user.Name, DomainID: f.domain.ID, ApplicationCredentialSecret: ac.Secret},
	} {
		if c, err := login(ctx, opts); err != nil {
			t.Errorf("authenticate with application credential by %s: %v", name, err)
		} else if p := tokenOf(t, c).Project; p == nil || p.ID != f.project.ID {
			t.Errorf("by %s: project %+v", name, p)
		}
	}
	_, err = login(ctx, gophercloud.AuthOptions{ApplicationCredentialID: ac.ID, ApplicationCredentialSecret: "wrong"})
	checkStatus(t, err, http.StatusUnauthorized, "application credential with a wrong secret")

	// A restricted credential cannot mint more credentials.
	_, err = applicationcredentials.Create(ctx, acc, f.user.ID, applicationcredentials.CreateOpts{Name: uniqueName("ac")}).Extract()
	checkStatus(t, err, http.StatusForbidden, "restricted application credential creates another")

	page, err := applicationcredentials.List(uc, f.user.ID, nil).AllPages(ctx)
	if acs, _ := applicationcredentials.ExtractApplicationCredentials(page); err != nil || len(acs) != 1 || acs[0].ID != ac.ID {
		t.Errorf("list application credentials: %v, %+v", err, acs)
	}

	if err := applicationcredentials.Delete(ctx, uc, f.user.ID, ac.ID).ExtractErr(); err != nil {
		t.Fatalf("delete application credential: %v", err)
	}
	_, err = login(ctx, byID)
	checkStatus(t, err, http.StatusUnauthorized, "authenticate with a deleted application credential")
	if tokenIsValid(t, acc.Token()) {
		t.Error("token from a deleted application credential is still valid")
	}

	// A credential is no stronger than its user: when the user loses the
	// role on the project, the credential no longer authenticates.
	ac2, err := applicationcredentials.Create(ctx, uc, f.user.ID, applicationcredentials.CreateOpts{Name: uniqueName("ac")}).Extract()
	if err != nil {
		t.Fatalf("create second application credential: %v", err)
	}
	opts2 := gophercloud.AuthOptions{ApplicationCredentialID: ac2.ID, ApplicationCredentialSecret: ac2.Secret}
	acc2 := mustLogin(t, opts2)
	adm := adminClient(t)
	if err := roles.Unassign(ctx, adm, roleID(t, adm, "member"), roles.UnassignOpts{UserID: f.user.ID, ProjectID: f.project.ID}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	_, err = login(ctx, opts2)
	checkStatus(t, err, http.StatusUnauthorized, "authenticate with a credential whose user lost the role")
	if tokenIsValid(t, acc2.Token()) {
		t.Error("application credential token is still valid after the user lost the role")
	}
}

func TestDeletionsInvalidateTokens(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	ctx := t.Context()

	t.Run("project", func(t *testing.T) {
		f := newScopedFixture(t)
		c := mustLogin(t, f.projectAuth())
		if err := projects.Delete(ctx, adm, f.project.ID).ExtractErr(); err != nil {
			t.Fatal(err)
		}
		if tokenIsValid(t, c.Token()) {
			t.Error("token scoped to a deleted project is still valid")
		}
	})
	t.Run("disabled project", func(t *testing.T) {
		f := newScopedFixture(t)
		c := mustLogin(t, f.projectAuth())
		off := false
		if _, err := projects.Update(ctx, adm, f.project.ID, projects.UpdateOpts{Enabled: &off}).Extract(); err != nil {
			t.Fatal(err)
		}
		if tokenIsValid(t, c.Token()) {
			t.Error("token scoped to a disabled project is still valid")
		}
		_, err := login(ctx, f.projectAuth())
		checkStatus(t, err, http.StatusUnauthorized, "scope to a disabled project")
	})
	t.Run("disabled domain", func(t *testing.T) {
		f := newScopedFixture(t)
		c := mustLogin(t, f.projectAuth())
		off := false
		if _, err := domains.Update(ctx, adm, f.domain.ID, domains.UpdateOpts{Enabled: &off}).Extract(); err != nil {
			t.Fatal(err)
		}
		if tokenIsValid(t, c.Token()) {
			t.Error("token of a user in a disabled domain is still valid")
		}
		_, err := login(ctx, f.projectAuth())
		checkStatus(t, err, http.StatusUnauthorized, "log in to a disabled domain")
	})
	t.Run("user", func(t *testing.T) {
		f := newScopedFixture(t)
		c := mustLogin(t, f.projectAuth())
		if err := users.Delete(ctx, adm, f.user.ID).ExtractErr(); err != nil {
			t.Fatal(err)
		}
		if tokenIsValid(t, c.Token()) {
			t.Error("token of a deleted user is still valid")
		}
	})
	t.Run("role", func(t *testing.T) {
		f := newScopedFixture(t)
		role := newRole(t, adm)
		if err := roles.Unassign(ctx, adm, roleID(t, adm, "member"), roles.UnassignOpts{UserID: f.user.ID, ProjectID: f.project.ID}).ExtractErr(); err != nil {
			t.Fatal(err)
		}
		grant(t, adm, role.ID, roles.AssignOpts{UserID: f.user.ID, ProjectID: f.project.ID})
		c := mustLogin(t, f.projectAuth())
		if err := roles.Delete(ctx, adm, role.ID).ExtractErr(); err != nil {
			t.Fatal(err)
		}
		if tokenIsValid(t, c.Token()) {
			t.Error("token whose only role was deleted is still valid")
		}
		page, err := roles.ListAssignments(adm, roles.ListAssignmentsOpts{UserID: f.user.ID}).AllPages(ctx)
		if as, _ := roles.ExtractRoleAssignments(page); err != nil || len(as) != 0 {
			t.Errorf("assignments of a deleted role remain: %v, %+v", err, as)
		}
	})
}

func TestApplicationCredentialExpiry(t *testing.T) {
	t.Parallel()
	f := newScopedFixture(t)
	uc := mustLogin(t, f.projectAuth())
	expires := time.Now().UTC().Add(3 * time.Second)
	res := applicationcredentials.Create(t.Context(), uc, f.user.ID, applicationcredentials.CreateOpts{Name: uniqueName("ac"), ExpiresAt: &expires})
	if res.Err != nil {
		t.Fatalf("create expiring application credential: %v", res.Err)
	}
	var raw struct {
		AC struct {
			ID        string `json:"id"`
			Secret    string `json:"secret"`
			ExpiresAt string `json:"expires_at"`
		} `json:"application_credential"`
	}
	if err := res.ExtractInto(&raw); err != nil {
		t.Fatal(err)
	}
	// gophercloud parses expires_at the way Keystone renders it.
	if _, err := res.Extract(); err != nil {
		t.Errorf("gophercloud cannot read the created credential (expires_at %q): %v", raw.AC.ExpiresAt, err)
	}

	opts := gophercloud.AuthOptions{ApplicationCredentialID: raw.AC.ID, ApplicationCredentialSecret: raw.AC.Secret}
	if c, err := login(t.Context(), opts); err != nil {
		t.Errorf("authenticate before expiry: %v", err)
	} else if exp := tokenOf(t, c).expires(t); exp.After(expires.Add(time.Millisecond)) {
		t.Errorf("token from the credential expires at %s, after the credential (%s)", exp, expires)
	}

	time.Sleep(time.Until(expires) + 200*time.Millisecond)
	_, err := login(t.Context(), opts)
	checkStatus(t, err, http.StatusUnauthorized, "authenticate with an expired application credential")

	past := time.Now().UTC().Add(-time.Hour)
	_, err = applicationcredentials.Create(t.Context(), uc, f.user.ID, applicationcredentials.CreateOpts{Name: uniqueName("ac"), ExpiresAt: &past}).Extract()
	checkStatus(t, err, http.StatusBadRequest, "create an application credential that has already expired")
}

// Trusts.

func TestTrusts(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	f := newScopedFixture(t)
	trustee := newUser(t, adm, f.domain.ID, users.CreateOpts{})
	trustor := mustLogin(t, f.projectAuth())
	ctx := t.Context()

	_, err := trusts.Create(ctx, trustor, trusts.CreateOpts{TrustorUserID: f.user.ID, TrusteeUserID: trustee.ID,
		ProjectID: f.project.ID, Roles: []trusts.Role{{Name: "admin"}}}).Extract()
	checkStatus(t, err, http.StatusForbidden, "delegate a role the trustor lacks")
	tc := mustLogin(t, trustee.auth(nil))
	_, err = trusts.Create(ctx, tc, trusts.CreateOpts{TrustorUserID: f.user.ID, TrusteeUserID: trustee.ID,
		ProjectID: f.project.ID, Roles: []trusts.Role{{Name: "member"}}}).Extract()
	checkStatus(t, err, http.StatusForbidden, "create a trust on someone else's behalf")

	tr, err := trusts.Create(ctx, trustor, trusts.CreateOpts{TrustorUserID: f.user.ID, TrusteeUserID: trustee.ID,
		ProjectID: f.project.ID, Roles: []trusts.Role{{Name: "member"}}}).Extract()
	if err != nil {
		t.Fatalf("create trust: %v", err)
	}
	t.Cleanup(func() { _ = trusts.Delete(context.Background(), adm, tr.ID).ExtractErr() })
	if tr.TrustorUserID != f.user.ID || tr.TrusteeUserID != trustee.ID || tr.ProjectID != f.project.ID || tr.Impersonation {
		t.Errorf("created trust = %+v", tr)
	}
	if got, err := trusts.Get(ctx, tc, tr.ID).Extract(); err != nil || got.ID != tr.ID {
		t.Errorf("trustee gets the trust: %v, %+v", err, got)
	}
	page, err := trusts.ListRoles(tc, tr.ID).AllPages(ctx)
	if rs, _ := trusts.ExtractRoles(page); err != nil || len(rs) != 1 || rs[0].Name != "member" {
		t.Errorf("trust roles: %v, %+v", err, rs)
	}

	tsc := mustLogin(t, trustee.auth(&gophercloud.AuthScope{TrustID: tr.ID}))
	tok := tokenOf(t, tsc)
	if tok.Trust == nil || tok.Trust.ID != tr.ID || tok.Trust.TrustorUserID.ID != f.user.ID || tok.Trust.TrusteeUserID.ID != trustee.ID {
		t.Errorf("token OS-TRUST:trust = %+v", tok.Trust)
	}
	if tok.Project == nil || tok.Project.ID != f.project.ID || tok.User.ID != trustee.ID {
		t.Errorf("trust token project %+v user %s, want %s / trustee %s", tok.Project, tok.User.ID, f.project.ID, trustee.ID)
	}
	wantRoles(t, tok, "member", "reader")

	_, err = login(ctx, gophercloud.AuthOptions{TokenID: tsc.Token(), Scope: &gophercloud.AuthScope{ProjectID: f.project.ID}})
	checkStatus(t, err, http.StatusForbidden, "rescope a trust token")
	_, err = login(ctx, f.user.auth(&gophercloud.AuthScope{TrustID: tr.ID}))
	checkStatus(t, err, http.StatusForbidden, "trustor consumes the trust")

	t.Run("impersonation", func(t *testing.T) {
		imp, err := trusts.Create(ctx, trustor, trusts.CreateOpts{TrustorUserID: f.user.ID, TrusteeUserID: trustee.ID,
			ProjectID: f.project.ID, Roles: []trusts.Role{{Name: "reader"}}, Impersonation: true}).Extract()
		if err != nil {
			t.Fatalf("create impersonating trust: %v", err)
		}
		t.Cleanup(func() { _ = trusts.Delete(context.Background(), adm, imp.ID).ExtractErr() })
		tok := tokenOf(t, mustLogin(t, trustee.auth(&gophercloud.AuthScope{TrustID: imp.ID})))
		if tok.User.ID != f.user.ID || tok.Trust == nil || !tok.Trust.Impersonation {
			t.Errorf("impersonating trust token user %s trust %+v, want the trustor %s", tok.User.ID, tok.Trust, f.user.ID)
		}
		wantRoles(t, tok, "reader")
	})

	t.Run("limited uses", func(t *testing.T) {
		once, err := trusts.Create(ctx, trustor, trusts.CreateOpts{TrustorUserID: f.user.ID, TrusteeUserID: trustee.ID,
			ProjectID: f.project.ID, Roles: []trusts.Role{{Name: "member"}}, RemainingUses: 1}).Extract()
		if err != nil {
			t.Fatalf("create single-use trust: %v", err)
		}
		t.Cleanup(func() { _ = trusts.Delete(context.Background(), adm, once.ID).ExtractErr() })
		mustLogin(t, trustee.auth(&gophercloud.AuthScope{TrustID: once.ID}))
		// Keystone no longer finds a trust with no uses left (TrustNotFound).
		_, err = login(ctx, trustee.auth(&gophercloud.AuthScope{TrustID: once.ID}))
		checkStatus(t, err, http.StatusNotFound, "use a single-use trust twice")
	})

	t.Run("expired", func(t *testing.T) {
		soon := time.Now().UTC().Add(3 * time.Second)
		exp, err := trusts.Create(ctx, trustor, trusts.CreateOpts{TrustorUserID: f.user.ID, TrusteeUserID: trustee.ID,
			ProjectID: f.project.ID, Roles: []trusts.Role{{Name: "member"}}, ExpiresAt: &soon}).Extract()
		if err != nil {
			t.Fatalf("create expiring trust: %v", err)
		}
		t.Cleanup(func() { _ = trusts.Delete(context.Background(), adm, exp.ID).ExtractErr() })
		c := mustLogin(t, trustee.auth(&gophercloud.AuthScope{TrustID: exp.ID}))
		if got := tokenOf(t, c).expires(t); got.After(soon.Add(time.Millisecond)) {
			t.Errorf("trust token expires at %s, after its trust (%s)", got, soon)
		}
		time.Sleep(time.Until(soon) + 200*time.Millisecond)
		// Keystone no longer finds an expired trust (TrustNotFound).
		_, err = login(ctx, trustee.auth(&gophercloud.AuthScope{TrustID: exp.ID}))
		checkStatus(t, err, http.StatusNotFound, "use an expired trust")
	})

	if err := trusts.Delete(ctx, trustor, tr.ID).ExtractErr(); err != nil {
		t.Fatalf("trustor deletes the trust: %v", err)
	}
	if tokenIsValid(t, tsc.Token()) {
		t.Error("trust token is still valid after the trust was deleted")
	}
	_, err = login(ctx, trustee.auth(&gophercloud.AuthScope{TrustID: tr.ID}))
	checkStatus(t, err, http.StatusNotFound, "scope to a deleted trust")
}

// Refusals.

func TestAuthFailuresLookAlike(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	d := newDomain(t, adm)
	u := newUser(t, adm, d.ID, users.CreateOpts{})

	attempts := map[string]gophercloud.AuthOptions{
		"wrong password":    {Username: u.Name, DomainID: d.ID, Password: "not-" + u.Password},
		"unknown user name": {Username: uniqueName("nobody"), DomainID: d.ID, Password: u.Password},
		"unknown user id":   {UserID: "0123456789abcdef0123456789abcdef", Password: u.Password},
		"wrong password id": {UserID: u.ID, Password: "not-" + u.Password},
	}
	messages := map[string]string{}
	for name, opts := range attempts {
		_, err := login(t.Context(), opts)
		e := wantStatus(t, err, http.StatusUnauthorized, name)
		messages[name] = parseKeystoneError(t, e.Body).Error.Message
		if !strings.HasPrefix(e.ResponseHeader.Get("WWW-Authenticate"), "Keystone uri=") {
			t.Errorf("%s: WWW-Authenticate = %q, want Keystone uri=...", name, e.ResponseHeader.Get("WWW-Authenticate"))
		}
	}
	first := messages["wrong password"]
	for name, m := range messages {
		if m != first {
			t.Errorf("%s answers %q but a wrong password answers %q: the difference tells users apart", name, m, first)
		}
	}
}

func TestNonAdminIsConfined(t *testing.T) {
	t.Parallel()
	adm := adminClient(t)
	f := newScopedFixture(t)
	uc := mustLogin(t, f.projectAuth())
	ctx := t.Context()

	// Another tenant's domain and what is in it.
	od := newDomain(t, adm)
	op := newProject(t, adm, projects.CreateOpts{DomainID: od.ID})
	ou := newUser(t, adm, od.ID, users.CreateOpts{})
	og, err := groups.Create(ctx, adm, groups.CreateOpts{Name: uniqueName("grp"), DomainID: od.ID}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = groups.Delete(context.Background(), adm, og.ID).ExtractErr() })

	// What a member may see: their own project, user and domain.
	if _, err := projects.Get(ctx, uc, f.project.ID).Extract(); err != nil {
		t.Errorf("member gets own project: %v", err)
	}
	if _, err := users.Get(ctx, uc, f.user.ID).Extract(); err != nil {
		t.Errorf("member gets own user: %v", err)
	}
	if _, err := domains.Get(ctx, uc, f.domain.ID).Extract(); err != nil {
		t.Errorf("member gets own project's domain: %v", err)
	}

	off := false
	forbidden := map[string]error{
		"create domain":               domains.Create(ctx, uc, domains.CreateOpts{Name: uniqueName("dom")}).Err,
		"create role":                 roles.Create(ctx, uc, roles.CreateOpts{Name: uniqueName("role")}).Err,
		"list roles":                  drain(ctx, roles.List(uc, nil)),
		"list all users":              drain(ctx, users.List(uc, nil)),
		"create project":              projects.Create(ctx, uc, projects.CreateOpts{Name: uniqueName("p"), DomainID: f.domain.ID}).Err,
		"delete own project":          projects.Delete(ctx, uc, f.project.ID).Err,
		"disable own domain":          domains.Update(ctx, uc, f.domain.ID, domains.UpdateOpts{Enabled: &off}).Err,
		"grant self admin":            roles.Assign(ctx, uc, roleID(t, adm, "admin"), roles.AssignOpts{UserID: f.user.ID, ProjectID: f.project.ID}).Err,
		"create region":               regions.Create(ctx, uc, regions.CreateOpts{ID: uniqueName("r")}).Err,
		"create service":              services.Create(ctx, uc, services.CreateOpts{Type: uniqueName("s")}).Err,
		"create user":                 users.Create(ctx, uc, users.CreateOpts{Name: uniqueName("u"), DomainID: f.domain.ID}).Err,
		"get other domain":            domains.Get(ctx, uc, od.ID).Err,
		"get other domain's project":  projects.Get(ctx, uc, op.ID).Err,
		"get other domain's user":     users.Get(ctx, uc, ou.ID).Err,
		"get other domain's group":    groups.Get(ctx, uc, og.ID).Err,
		"update other domain's user":  users.Update(ctx, uc, ou.ID, users.UpdateOpts{Extra: map[string]any{"email": "x@y"}}).Err,
		"delete other domain's user":  users.Delete(ctx, uc, ou.ID).Err,
		"list other domain's users":   drain(ctx, users.List(uc, users.ListOpts{DomainID: od.ID})),
		"list own domain's users":     drain(ctx, users.List(uc, users.ListOpts{DomainID: f.domain.ID})),
		"app credential for another":  applicationcredentials.Create(ctx, uc, ou.ID, applicationcredentials.CreateOpts{Name: uniqueName("ac")}).Err,
		"another's app credentials":   drain(ctx, applicationcredentials.List(uc, ou.ID, nil)),
		"get a project that is not":   projects.Get(ctx, uc, "00000000000000000000000000000000").Err,
		"get a user that is not":      users.Get(ctx, uc, "00000000000000000000000000000000").Err,
		"list role assignments (all)": drain(ctx, roles.ListAssignments(uc, nil)),
	}
	for name, err := range forbidden {
		checkStatus(t, err, http.StatusForbidden, "member: "+name)
	}
	// The other tenant's objects are untouched.
	if u, err := users.Get(ctx, adm, ou.ID).Extract(); err != nil || u.Extra["email"] != nil {
		t.Errorf("other domain's user after the attempts: %v, %+v", err, u)
	}
}

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	for name, token := range map[string]string{"no token": "", "bad token": "gAAAAABbogus"} {
		r := rawRequest(t, http.MethodGet, "/v3/projects", token, nil, nil)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: GET /v3/projects = %d, want 401: %s", name, r.Status, r.Body)
			continue
		}
		if e := parseKeystoneError(t, r.Body); e.Error.Code != http.StatusUnauthorized {
			t.Errorf("%s: error body code = %d", name, e.Error.Code)
		}
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Keystone uri=") {
			t.Errorf("%s: WWW-Authenticate = %q", name, r.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestOversizeBody(t *testing.T) {
	t.Parallel()
	token := adminClient(t).Token()
	body := []byte(`{"project": {"name": "` + uniqueName("big") + `", "description": "` + strings.Repeat("x", 210*1024) + `"}}`)

	r := rawRequest(t, http.MethodPost, "/v3/projects", token, bytes.NewReader(body), nil)
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /v3/projects with %d bytes = %d, want 413: %.300s", len(body), r.Status, r.Body)
	} else if e := parseKeystoneError(t, r.Body); e.Error.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("413 error body code = %d", e.Error.Code)
	}

	// Without a Content-Length (chunked), the limit holds while reading.
	r = rawRequest(t, http.MethodPost, "/v3/projects", token, io.MultiReader(bytes.NewReader(body)), nil)
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked POST /v3/projects with %d bytes = %d, want 413: %.300s", len(body), r.Status, r.Body)
	}
	// Before authentication too: an anonymous client cannot make the
	// server buffer a large body.
	r = rawRequest(t, http.MethodPost, "/v3/auth/tokens", "", bytes.NewReader(body), nil)
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /v3/auth/tokens with %d bytes = %d, want 413", len(body), r.Status)
	}
}

func TestMalformedJSON(t *testing.T) {
	t.Parallel()
	token := adminClient(t).Token()
	for _, tc := range []struct{ path, token, body string }{
		{"/v3/projects", token, `{"project": {"name": `},
		{"/v3/projects", token, `{"project": {"name": 42}}`},
		{"/v3/projects", token, `not json at all`},
		{"/v3/users", token, `{"user": ["a", "b"]}`},
		{"/v3/auth/tokens", "", `{"auth": {"identity": `},
		{"/v3/auth/tokens", "", `{"auth": {"identity": {"methods": "password"}}}`},
	} {
		r := rawRequest(t, http.MethodPost, tc.path, tc.token, strings.NewReader(tc.body), nil)
		if r.Status != http.StatusBadRequest {
			t.Errorf("POST %s %s = %d, want 400: %s", tc.path, tc.body, r.Status, r.Body)
			continue
		}
		e := parseKeystoneError(t, r.Body)
		if e.Error.Code != http.StatusBadRequest || e.Error.Title != "Bad Request" || e.Error.Message == "" {
			t.Errorf("POST %s %s: error body = %+v", tc.path, tc.body, e.Error)
		}
		if !strings.HasPrefix(r.Header.Get("X-Openstack-Request-Id"), "req-") {
			t.Errorf("POST %s: X-Openstack-Request-Id = %q", tc.path, r.Header.Get("X-Openstack-Request-Id"))
		}
	}
}

// drain walks every page of a listing, for calls whose outcome is all
// that matters.
func drain(ctx context.Context, p pagination.Pager) error {
	return p.EachPage(ctx, func(context.Context, pagination.Page) (bool, error) { return true, nil })
}
