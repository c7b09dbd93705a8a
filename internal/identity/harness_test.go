package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/policy"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

// testCloud is an identity service over a temporary SQLite database,
// bootstrapped (admin / secret on project admin) and served over real HTTP.
type testCloud struct {
	t   *testing.T
	svc *Service
	srv *httptest.Server
	URL string

	adminToken string
	adminUser  string
	adminProj  string
}

// testCatalog is what newTestCloud registers, so catalogs have content.
var testCatalog = []CatalogEntry{
	{Type: "compute", Name: "nova", URLs: map[string]string{"public": "http://127.0.0.1:8774/v2.1", "internal": "http://10.0.0.1:8774/v2.1"}},
	{Type: "image", Name: "glance", URLs: map[string]string{"public": "http://127.0.0.1:9292"}},
}

// newTestCloud starts a test cloud on SQLite or, when
// NIMBUS_TEST_IDENTITY_ENGINE=postgres, on a fresh PostgreSQL database
// (see storetest), so the whole suite can be run against either engine.
func newTestCloud(t *testing.T) *testCloud {
	t.Helper()
	if os.Getenv("NIMBUS_TEST_IDENTITY_ENGINE") == "postgres" {
		return newTestCloudOn(t, storetest.Postgres(t))
	}
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "nimbus.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return newTestCloudOn(t, db)
}

// newTestCloudOn starts a test cloud on the given database.
func newTestCloudOn(t *testing.T, db *store.DB) *testCloud {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	enforcer, err := policy.NewEnforcer(DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	apiSvc := &api.Service{Name: "identity", Errors: api.KeystoneErrors, Policy: api.PolicyAuthorizer{Enforcer: enforcer}, Log: quiet}
	s, err := New(ctx, Config{KeyDir: filepath.Join(dir, "fernet-keys"), BcryptCost: 4}, db, apiSvc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	apiSvc.Tokens = s
	if err := s.Bootstrap(ctx, BootstrapOptions{AdminPassword: "secret", Catalog: testCatalog}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(apiSvc.Handler(s.Routes()))
	t.Cleanup(srv.Close)
	c := &testCloud{t: t, svc: s, srv: srv, URL: srv.URL}
	var resp *testResponse
	c.adminToken, resp = c.passwordToken("admin", "secret", "admin")
	c.adminUser = resp.str("token.user.id")
	c.adminProj = resp.str("token.project.id")
	return c
}

// testResponse is a response with its body read.
type testResponse struct {
	t      *testing.T
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// str digs a dotted path out of the JSON body ("token.user.id").
func (r *testResponse) str(path string) string {
	r.t.Helper()
	v := r.get(path)
	s, ok := v.(string)
	if !ok {
		r.t.Fatalf("%s is %v (%T), not a string; body %s", path, v, v, r.Body)
	}
	return s
}

// get digs a dotted path out of the JSON body; nil if absent.
func (r *testResponse) get(path string) any {
	var cur any = r.JSON
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// list returns the array at path.
func (r *testResponse) list(path string) []any {
	r.t.Helper()
	l, ok := r.get(path).([]any)
	if !ok {
		r.t.Fatalf("%s is not a list; body %s", path, r.Body)
	}
	return l
}

// want fails the test unless the status is one of codes.
func (r *testResponse) want(codes ...int) *testResponse {
	r.t.Helper()
	for _, c := range codes {
		if r.Status == c {
			return r
		}
	}
	r.t.Fatalf("status %d, want %v; body %s", r.Status, codes, r.Body)
	return r
}

// wantError checks a Keystone error body with the status and a message
// containing substr.
func (r *testResponse) wantError(status int, substr string) *testResponse {
	r.t.Helper()
	r.want(status)
	msg, _ := r.get("error.message").(string)
	if code, _ := r.get("error.code").(float64); int(code) != status {
		r.t.Fatalf("error body code %v, want %d; body %s", r.get("error.code"), status, r.Body)
	}
	if !strings.Contains(msg, substr) {
		r.t.Fatalf("error message %q does not contain %q", msg, substr)
	}
	return r
}

// do sends a request. body may be nil, a string or []byte (sent as is),
// or anything else (sent as JSON).
func (c *testCloud) do(method, path, token string, body any, hdr ...string) *testResponse {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	out := &testResponse{t: c.t, Status: resp.StatusCode, Header: resp.Header, Body: data}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(data) > 0 {
		if err := json.Unmarshal(data, &out.JSON); err != nil {
			c.t.Fatalf("%s %s: bad JSON %q: %v", method, path, data, err)
		}
	}
	return out
}

// passwordToken authenticates a Default-domain user by name, scoped to
// the named project of the Default domain ("" for unscoped).
func (c *testCloud) passwordToken(user, password, project string) (string, *testResponse) {
	c.t.Helper()
	auth := map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": user, "domain": map[string]any{"id": "default"}, "password": password}}},
	}
	if project != "" {
		auth["scope"] = map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"id": "default"}}}
	} else {
		auth["scope"] = "unscoped"
	}
	resp := c.do("POST", "/v3/auth/tokens", "", map[string]any{"auth": auth}).want(http.StatusCreated)
	return resp.Header.Get("X-Subject-Token"), resp
}

// createProject makes a project in the Default domain.
func (c *testCloud) createProject(name string) string {
	c.t.Helper()
	return c.do("POST", "/v3/projects", c.adminToken, map[string]any{"project": map[string]any{"name": name, "domain_id": "default"}}).
		want(http.StatusCreated).str("project.id")
}

// createUser makes a Default-domain user with the password.
func (c *testCloud) createUser(name, password string) string {
	c.t.Helper()
	return c.do("POST", "/v3/users", c.adminToken, map[string]any{"user": map[string]any{"name": name, "password": password, "domain_id": "default"}}).
		want(http.StatusCreated).str("user.id")
}

// roleID finds a global role by name.
func (c *testCloud) roleID(name string) string {
	c.t.Helper()
	roles := c.do("GET", "/v3/roles?name="+name, c.adminToken, nil).want(http.StatusOK).list("roles")
	if len(roles) != 1 {
		c.t.Fatalf("role %s: %d found", name, len(roles))
	}
	return roles[0].(map[string]any)["id"].(string)
}

// grant gives a user a role on a project.
func (c *testCloud) grant(userID, projectID, role string) {
	c.t.Helper()
	c.do("PUT", "/v3/projects/"+projectID+"/users/"+userID+"/roles/"+c.roleID(role), c.adminToken, nil).want(http.StatusNoContent)
}

// member creates a project and a user who is a member of it, and returns
// the user's id and a token scoped to the project.
func (c *testCloud) member(name string) (userID, projectID, token string) {
	c.t.Helper()
	projectID = c.createProject(name + "-project")
	userID = c.createUser(name, name+"-pw")
	c.grant(userID, projectID, "member")
	token, _ = c.passwordToken(name, name+"-pw", name+"-project")
	return userID, projectID, token
}
