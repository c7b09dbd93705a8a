package cloud_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/cloud"
	"github.com/nimbus-cloud/nimbus/internal/config"
)

func testConfig(t *testing.T, dataDir string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.Identity.Port = 0
	cfg.Image.Port = 0
	cfg.Network.Port = 0
	cfg.Compute.Port = 0
	cfg.Compute.Metadata.Port = 0
	cfg.Volume.Port = 0
	cfg.NATSPort = 0
	cfg.Identity.BcryptCost = 4
	cfg.Object.Port, cfg.Object.Storage.ObjectPort, cfg.Object.Storage.ContainerPort, cfg.Object.Storage.AccountPort = 0, 0, 0, 0
	cfg.Compute.Console.NoVNCProxyPort, cfg.Compute.Console.SerialProxyPort = 0, 0
	cfg.LogLevel = "warn"
	return cfg
}

func start(t *testing.T, cfg config.Config) *cloud.Cloud {
	t.Helper()
	c, err := cloud.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("start cloud: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// issueToken logs in with a password and returns the token.
func issueToken(t *testing.T, authURL, user, password, project string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": user, "password": password, "domain": map[string]any{"id": "default"}}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"id": "default"}}},
	}})
	resp, err := http.Post(authURL+"/auth/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("token issue: %d %s", resp.StatusCode, data)
	}
	return resp.Header.Get("X-Subject-Token")
}

// A restart on the same data dir keeps the cloud: same admin password,
// tokens issued before the restart still valid (same keys), and bootstrap
// does not duplicate anything.
func TestRestartKeepsTheCloud(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	c1, err := cloud.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	pw := c1.AdminPassword
	if len(pw) < 16 {
		t.Fatalf("generated admin password %q is too short", pw)
	}
	tok := issueToken(t, c1.IdentityURL+"/v3", "admin", pw, "admin")
	if err := c1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "admin-password"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin-password file: %v, mode %v; want 0600", err, info.Mode())
	}

	c2 := start(t, cfg)
	if c2.AdminPassword != pw {
		t.Fatalf("admin password changed across restart")
	}
	id, err := c2.Identity.ValidateToken(context.Background(), tok)
	if err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	if id.ProjectName != "admin" || !id.HasRole("admin") || !id.HasRole("reader") {
		t.Fatalf("validated identity = %+v, want admin project with admin and implied reader roles", id)
	}
	var users, endpoints int
	if err := c2.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM users`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if err := c2.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM endpoints`).Scan(&endpoints); err != nil {
		t.Fatal(err)
	}
	if users != 1 || endpoints != 21 {
		t.Fatalf("after restart: %d users, %d endpoints; want 1 and 21, identity, image, network, compute, volumev3, block-storage and object-store (bootstrap must be idempotent)", users, endpoints)
	}
}

// The remote validator, as services in other processes use it, accepts
// valid tokens, refuses invalid ones, and serves repeats from its cache.
func TestRemoteValidator(t *testing.T) {
	c := start(t, testConfig(t, t.TempDir()))
	authURL := c.IdentityURL + "/v3"
	calls := 0
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodGet {
			calls++
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	v := &api.RemoteValidator{AuthURL: authURL, Username: "admin", Password: c.AdminPassword, Project: "admin",
		UserDomain: "Default", ProjectDomain: "Default", CacheTTL: time.Minute, Client: client}
	tok := issueToken(t, authURL, "admin", c.AdminPassword, "admin")
	ctx := context.Background()
	id, err := v.ValidateToken(ctx, tok)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if id.UserName != "admin" || id.ProjectName != "admin" || !id.HasRole("admin") || id.ExpiresAt.Before(time.Now()) {
		t.Fatalf("identity = %+v", id)
	}
	if _, err := v.ValidateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("identity was asked %d times for one token, want 1 (cache)", calls)
	}
	if _, err := v.ValidateToken(ctx, tok[:len(tok)-4]+"AAAA"); err == nil {
		t.Fatal("a tampered token was accepted")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestClientFiles(t *testing.T) {
	c := start(t, testConfig(t, t.TempDir()))
	openrc, clouds, err := c.WriteAdminFiles()
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := os.ReadFile(openrc)
	for _, want := range []string{"export OS_AUTH_URL='" + c.IdentityURL + "/v3'", "export OS_USERNAME='admin'", "export OS_PROJECT_NAME='admin'", "export OS_PASSWORD="} {
		if !strings.Contains(string(rc), want) {
			t.Errorf("openrc lacks %q:\n%s", want, rc)
		}
	}
	cy, _ := os.ReadFile(clouds)
	if !strings.Contains(string(cy), "auth_url: '"+c.IdentityURL+"/v3'") || !strings.Contains(string(cy), "password: '") {
		t.Errorf("clouds.yaml:\n%s", cy)
	}
	// A password with a quote must not break out of the shell quoting.
	got := cloud.OpenRC(cloud.ClientCredentials{AuthURL: "http://x/v3", Username: "u", Project: "p", Password: "a'b; rm -rf /"})
	if !strings.Contains(got, `export OS_PASSWORD='a'\''b; rm -rf /'`) {
		t.Errorf("password not safely quoted:\n%s", got)
	}
}

// Two identity processes share one database and bus, as controllers behind a
// load balancer do. A change made through one must take effect at once on
// the other, although validation there is served from memory.
func TestIdentityChangesReachOtherProcesses(t *testing.T) {
	dir := t.TempDir()
	a := start(t, testConfig(t, dir))
	cfgB := testConfig(t, dir)
	cfgB.NATS = a.BusURL()
	cfgB.Identity.AdminPassword = a.AdminPassword
	// B is another controller: it serves the object API from A's storage
	// node and rings, as controllers share a cluster's.
	cfgB.Object.Storage.Enabled = config.Off
	b := start(t, cfgB)
	ctx := context.Background()

	tok := issueToken(t, a.IdentityURL+"/v3", "admin", a.AdminPassword, "admin")
	if _, err := b.Identity.ValidateToken(ctx, tok); err != nil {
		t.Fatalf("process B rejects a token from A: %v", err)
	}
	// Revoke through A's API; B must refuse the token soon after (the
	// broadcast is asynchronous), without a restart.
	req, _ := http.NewRequest(http.MethodDelete, a.IdentityURL+"/v3/auth/tokens", nil)
	req.Header.Set("X-Auth-Token", tok)
	req.Header.Set("X-Subject-Token", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.Identity.ValidateToken(ctx, tok); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("process B still accepts a token revoked through A")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// After identity.lockout_failures consecutive wrong passwords the account
// is locked: even the right password is refused until the lockout ends.
func TestLockoutAfterRepeatedFailures(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Identity.LockoutFailures = 3
	c := start(t, cfg)
	authURL := c.IdentityURL + "/v3"
	login := func(password string) (int, string) {
		body, _ := json.Marshal(map[string]any{"auth": map[string]any{"identity": map[string]any{
			"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
				"name": "admin", "password": password, "domain": map[string]any{"id": "default"}}}}}})
		resp, err := http.Post(authURL+"/auth/tokens", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	if code, _ := login(c.AdminPassword); code != http.StatusCreated {
		t.Fatalf("first login: %d", code)
	}
	for i := range 3 {
		if code, _ := login("wrong"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, code)
		}
	}
	code, body := login(c.AdminPassword)
	if code != http.StatusUnauthorized || !strings.Contains(body, "locked") {
		t.Fatalf("right password after 3 failures: %d %s; want 401 locked", code, body)
	}
}

// With identity.unique_last_password_count, users cannot change their own
// password back to a recent one; an administrator's reset is not bound.
func TestPasswordHistory(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Identity.UniqueLastPasswordCount = 2
	c := start(t, cfg)
	authURL := c.IdentityURL + "/v3"
	admin := issueToken(t, authURL, "admin", c.AdminPassword, "admin")
	call := func(method, path, token string, body any) (int, string) {
		data, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, authURL+path, bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("X-Auth-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	code, body := call("POST", "/users", admin, map[string]any{"user": map[string]any{"name": "carol", "password": "first-pass"}})
	if code != http.StatusCreated {
		t.Fatalf("create user: %d %s", code, body)
	}
	var created struct{ User struct{ ID string } }
	_ = json.Unmarshal([]byte(body), &created)
	change := func(from, to string) int {
		code, _ := call("POST", "/users/"+created.User.ID+"/password", "", map[string]any{"user": map[string]any{"original_password": from, "password": to}})
		return code
	}
	if code := change("first-pass", "second-pass"); code != http.StatusNoContent {
		t.Fatalf("change to a new password: %d", code)
	}
	if code := change("second-pass", "first-pass"); code != http.StatusBadRequest {
		t.Fatalf("change back to the previous password: %d, want 400", code)
	}
	if code := change("second-pass", "second-pass"); code != http.StatusBadRequest {
		t.Fatalf("change to the current password: %d, want 400", code)
	}
	if code, body := call("PATCH", "/users/"+created.User.ID, admin, map[string]any{"user": map[string]any{"password": "second-pass"}}); code != http.StatusOK {
		t.Fatalf("admin reset to a recent password: %d %s, want 200", code, body)
	}
}

// The image role can run without identity in its process, as on an image
// host of a multi-host cloud: it validates tokens through the identity API
// with the glance service user, which the identity process's bootstrap
// created from the same password. Policy is still decided by the image
// service.
func TestImageWithRemoteIdentity(t *testing.T) {
	const glancePassword = "glance-service-secret"
	idCfg := testConfig(t, t.TempDir())
	idCfg.Roles = []string{"identity"}
	idCfg.Image.Auth.Password = glancePassword
	ident := start(t, idCfg)
	if ident.Image != nil || ident.ImageURL != "" {
		t.Fatal("the identity-only process serves images")
	}
	authURL := ident.IdentityURL + "/v3"
	// Bootstrap made the service user as OpenStack installs do.
	svcTok := issueToken(t, authURL, "glance", glancePassword, "service")
	svcID, err := ident.Identity.ValidateToken(context.Background(), svcTok)
	if err != nil || !svcID.HasRole("service") || !svcID.HasRole("admin") {
		t.Fatalf("glance token: %+v, %v; want service and admin roles in project service", svcID, err)
	}

	imgCfg := testConfig(t, t.TempDir())
	imgCfg.Roles = []string{"image"}
	imgCfg.Image.Auth.AuthURL = authURL
	imgCfg.Image.Auth.Password = glancePassword
	img := start(t, imgCfg)
	if img.Identity != nil || img.Image == nil {
		t.Fatal("the image-only process should run image and not identity")
	}

	call := func(method, path, token string, body any) (int, http.Header, string) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			data, _ := json.Marshal(body)
			rd = bytes.NewReader(data)
		}
		req, _ := http.NewRequest(method, img.ImageURL+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("X-Auth-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(data)
	}

	admin := issueToken(t, authURL, "admin", ident.AdminPassword, "admin")
	if code, _, body := call("GET", "/v2/images", admin, nil); code != http.StatusOK {
		t.Fatalf("list images with a token from the identity process: %d %s", code, body)
	}
	code, _, body := call("POST", "/v2/images", admin, map[string]any{"name": "cirros", "disk_format": "qcow2", "container_format": "bare"})
	if code != http.StatusCreated || !strings.Contains(body, `"owner"`) {
		t.Fatalf("create image: %d %s", code, body)
	}
	// Policy is enforced here, on the roles identity reported: a member
	// may create private images but not public ones.
	member := createMember(t, authURL, admin, "demo", "demo-password")
	if code, _, body := call("POST", "/v2/images", member, map[string]any{"name": "mine"}); code != http.StatusCreated {
		t.Fatalf("member creates a private image: %d %s", code, body)
	}
	if code, _, body := call("POST", "/v2/images", member, map[string]any{"name": "everyone", "visibility": "public"}); code != http.StatusForbidden {
		t.Fatalf("member creates a public image: %d %s, want 403", code, body)
	}
	for _, tok := range []string{"", "not-a-token", admin[:len(admin)-4] + "AAAA"} {
		code, hdr, _ := call("GET", "/v2/images", tok, nil)
		if code != http.StatusUnauthorized {
			t.Fatalf("token %q: %d, want 401", tok, code)
		}
		if got := hdr.Get("WWW-Authenticate"); !strings.Contains(got, ident.IdentityURL) {
			t.Fatalf("WWW-Authenticate = %q, want the identity endpoint", got)
		}
	}
	code, _, body = call("GET", "/v2/info/stores", admin, nil)
	if code != http.StatusOK || !strings.Contains(body, `"file"`) || !strings.Contains(body, `"http"`) {
		t.Fatalf("stores: %d %s; want Glance's default file and http", code, body)
	}

	// Bootstrap again (a restart) leaves one glance user.
	ident2Cfg := idCfg
	ident2Cfg.NATS = ident.BusURL()
	ident2Cfg.Identity.AdminPassword = ident.AdminPassword
	start(t, ident2Cfg)
	var users int
	if err := ident.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM users WHERE name = 'glance'`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if users != 1 {
		t.Fatalf("%d glance users after a second bootstrap, want 1", users)
	}
}

// Without the identity role, the image role needs service credentials.
func TestImageWithoutIdentityNeedsCredentials(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Roles = []string{"image"}
	_, err := cloud.Start(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "image.auth.password") {
		t.Fatalf("start = %v, want an error naming image.auth.password", err)
	}
}

// createMember makes a project and a user with the member role on it, and
// returns the user's token.
func createMember(t *testing.T, authURL, adminToken, name, password string) string {
	t.Helper()
	call := func(method, path string, body, out any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			data, _ := json.Marshal(body)
			rd = bytes.NewReader(data)
		}
		req, _ := http.NewRequest(method, authURL+path, rd)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Auth-Token", adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
		}
	}
	type ref struct{ ID string }
	var p struct{ Project ref }
	call("POST", "/projects", map[string]any{"project": map[string]any{"name": name}}, &p)
	var u struct{ User ref }
	call("POST", "/users", map[string]any{"user": map[string]any{"name": name, "password": password, "default_project_id": p.Project.ID}}, &u)
	var r struct{ Roles []ref }
	call("GET", "/roles?name=member", nil, &r)
	if len(r.Roles) != 1 {
		t.Fatalf("member roles: %+v", r)
	}
	call("PUT", "/projects/"+p.Project.ID+"/users/"+u.User.ID+"/roles/"+r.Roles[0].ID, nil, nil)
	return issueToken(t, authURL, name, password, name)
}
