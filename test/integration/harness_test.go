package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/domains"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"

	"github.com/nimbus-cloud/nimbus/internal/cloud"
	"github.com/nimbus-cloud/nimbus/internal/config"
)

// Environment variables that select the external runner.
const (
	authURLEnv       = "NIMBUS_TEST_AUTH_URL"
	adminPasswordEnv = "NIMBUS_TEST_ADMIN_PASSWORD"
	regionEnv        = "NIMBUS_TEST_REGION"
	// logLevelEnv sets the in-process cloud's log level (debug, info,
	// warn, error); warn when unset.
	logLevelEnv = "NIMBUS_TEST_LOG_LEVEL"
)

// target is the cloud under test, set once by TestMain.
var target struct {
	authURL       string // versionless identity URL, as OS_AUTH_URL
	adminPassword string
	region        string
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if url := os.Getenv(authURLEnv); url != "" {
		target.authURL = strings.TrimSuffix(strings.TrimSuffix(url, "/"), "/v3")
		target.adminPassword = os.Getenv(adminPasswordEnv)
		target.region = os.Getenv(regionEnv)
		if target.region == "" {
			target.region = "RegionOne"
		}
		if target.adminPassword == "" {
			fmt.Fprintf(os.Stderr, "%s is set but %s is not\n", authURLEnv, adminPasswordEnv)
			return 2
		}
		return m.Run()
	}

	dir, err := os.MkdirTemp("", "nimbus-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 2
	}
	defer os.RemoveAll(dir)

	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Identity.Port = 0
	cfg.Image.Port = 0
	cfg.Network.Port = 0
	cfg.Compute.Port = 0
	cfg.Compute.Metadata.Port = 0
	cfg.Volume.Port = 0
	cfg.NATSPort = 0
	cfg.Object.Port, cfg.Object.Storage.ObjectPort, cfg.Object.Storage.ContainerPort, cfg.Object.Storage.AccountPort = 0, 0, 0, 0
	cfg.Compute.Console.NoVNCProxyPort, cfg.Compute.Console.SerialProxyPort = 0, 0
	// Keystone's cost is 12; 4 keeps the suite fast while still hashing
	// every password for real.
	cfg.Identity.BcryptCost = 4
	cfg.Identity.AdminPassword = "admin-" + randomHex(12)

	// Only warnings and errors (5xx answers among them) reach the test
	// output unless asked for: the access log would drown it.
	level := slog.LevelWarn
	if v := os.Getenv(logLevelEnv); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			fmt.Fprintf(os.Stderr, "%s=%q: %v\n", logLevelEnv, v, err)
			return 2
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cloud.Start(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start nimbus:", err)
		return 2
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "stop nimbus:", err)
		}
	}()
	target.authURL = c.IdentityURL
	target.adminPassword = c.AdminPassword
	target.region = cfg.Region
	return m.Run()
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// uniqueName returns a name no other test (or earlier run against the
// same external cloud) uses.
func uniqueName(prefix string) string {
	return prefix + "-" + randomHex(10)
}

// Clients.

// login authenticates with the options against the cloud under test and
// returns an identity v3 client carrying the token.
func login(ctx context.Context, opts gophercloud.AuthOptions) (*gophercloud.ServiceClient, error) {
	opts.IdentityEndpoint = target.authURL
	provider, err := openstack.AuthenticatedClient(ctx, opts)
	if err != nil {
		return nil, err
	}
	return openstack.NewIdentityV3(provider, gophercloud.EndpointOpts{})
}

// mustLogin is login for a test that cannot go on without the client.
func mustLogin(t *testing.T, opts gophercloud.AuthOptions) *gophercloud.ServiceClient {
	t.Helper()
	c, err := login(t.Context(), opts)
	if err != nil {
		t.Fatalf("authenticate %s: %v", describeAuth(opts), err)
	}
	return c
}

func describeAuth(o gophercloud.AuthOptions) string {
	who := o.Username + o.UserID + o.ApplicationCredentialID + o.ApplicationCredentialName
	if o.Scope == nil {
		return who + " (no scope)"
	}
	return fmt.Sprintf("%s scoped to %+v", who, *o.Scope)
}

var admin struct {
	once   sync.Once
	client *gophercloud.ServiceClient
	err    error
}

// adminClient is the cloud admin, scoped to the admin project, reaching
// identity through the catalog of its token as any OpenStack client does.
func adminClient(t *testing.T) *gophercloud.ServiceClient {
	t.Helper()
	admin.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
			IdentityEndpoint: target.authURL, Username: "admin", Password: target.adminPassword, DomainName: "Default",
			Scope: &gophercloud.AuthScope{ProjectName: "admin", DomainName: "Default"},
		})
		if err != nil {
			admin.err = fmt.Errorf("authenticate as admin: %w", err)
			return
		}
		admin.client, admin.err = openstack.NewIdentityV3(provider, gophercloud.EndpointOpts{Region: target.region})
	})
	if admin.err != nil {
		t.Fatal(admin.err)
	}
	return admin.client
}

// Assertions.

// wantStatus fails the test unless err is an HTTP answer with the code,
// and returns the answer for further checks.
func wantStatus(t *testing.T, err error, code int, what string) gophercloud.ErrUnexpectedResponseCode {
	t.Helper()
	var e gophercloud.ErrUnexpectedResponseCode
	switch {
	case err == nil:
		t.Fatalf("%s: succeeded, want HTTP %d", what, code)
	case !errors.As(err, &e):
		t.Fatalf("%s: %v, want HTTP %d", what, err, code)
	case !gophercloud.ResponseCodeIs(err, code):
		t.Fatalf("%s: HTTP %d, want %d; body: %s", what, e.Actual, code, bytes.TrimSpace(e.Body))
	}
	return e
}

// checkStatus is wantStatus that lets the test go on.
func checkStatus(t *testing.T, err error, code int, what string) {
	t.Helper()
	var e gophercloud.ErrUnexpectedResponseCode
	switch {
	case err == nil:
		t.Errorf("%s: succeeded, want HTTP %d", what, code)
	case !errors.As(err, &e):
		t.Errorf("%s: %v, want HTTP %d", what, err, code)
	case e.Actual != code:
		t.Errorf("%s: HTTP %d, want %d; body: %s", what, e.Actual, code, bytes.TrimSpace(e.Body))
	}
}

// keystoneError is the error body every identity answer carries.
type keystoneError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Title   string `json:"title"`
	} `json:"error"`
}

func parseKeystoneError(t *testing.T, body []byte) keystoneError {
	t.Helper()
	var e keystoneError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not Keystone's {\"error\": ...}: %v: %s", err, body)
	}
	return e
}

// Fixtures: each deletes what it made when the test ends.

func newDomain(t *testing.T, c *gophercloud.ServiceClient) *domains.Domain {
	t.Helper()
	d, err := domains.Create(t.Context(), c, domains.CreateOpts{Name: uniqueName("dom"), Description: "integration test"}).Extract()
	if err != nil {
		t.Fatalf("create domain: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		disabled := false
		if _, err := domains.Update(ctx, c, d.ID, domains.UpdateOpts{Enabled: &disabled}).Extract(); err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("cleanup: disable domain %s: %v", d.ID, err)
			return
		}
		if err := domains.Delete(ctx, c, d.ID).ExtractErr(); err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("cleanup: delete domain %s: %v", d.ID, err)
		}
	})
	return d
}

func newProject(t *testing.T, c *gophercloud.ServiceClient, opts projects.CreateOpts) *projects.Project {
	t.Helper()
	if opts.Name == "" {
		opts.Name = uniqueName("proj")
	}
	p, err := projects.Create(t.Context(), c, opts).Extract()
	if err != nil {
		t.Fatalf("create project %s: %v", opts.Name, err)
	}
	t.Cleanup(func() {
		if err := projects.Delete(context.Background(), c, p.ID).ExtractErr(); err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("cleanup: delete project %s: %v", p.ID, err)
		}
	})
	return p
}

// testUser is a user the test created, with what it takes to log in.
type testUser struct {
	*users.User
	Password string
}

// auth returns password options for the user with the given scope (nil:
// none requested).
func (u testUser) auth(scope *gophercloud.AuthScope) gophercloud.AuthOptions {
	return gophercloud.AuthOptions{UserID: u.ID, Password: u.Password, Scope: scope}
}

func newUser(t *testing.T, c *gophercloud.ServiceClient, domainID string, opts users.CreateOpts) testUser {
	t.Helper()
	if opts.Name == "" {
		opts.Name = uniqueName("user")
	}
	if opts.Password == "" {
		opts.Password = "pw-" + randomHex(16)
	}
	opts.DomainID = domainID
	u, err := users.Create(t.Context(), c, opts).Extract()
	if err != nil {
		t.Fatalf("create user %s: %v", opts.Name, err)
	}
	t.Cleanup(func() {
		if err := users.Delete(context.Background(), c, u.ID).ExtractErr(); err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("cleanup: delete user %s: %v", u.ID, err)
		}
	})
	return testUser{User: u, Password: opts.Password}
}

func newRole(t *testing.T, c *gophercloud.ServiceClient) *roles.Role {
	t.Helper()
	r, err := roles.Create(t.Context(), c, roles.CreateOpts{Name: uniqueName("role")}).Extract()
	if err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		if err := roles.Delete(context.Background(), c, r.ID).ExtractErr(); err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("cleanup: delete role %s: %v", r.ID, err)
		}
	})
	return r
}

var builtinRoles struct {
	sync.Mutex
	ids map[string]string // guarded by the mutex
}

// roleID returns the id of a role bootstrap created (admin, member, reader).
func roleID(t *testing.T, c *gophercloud.ServiceClient, name string) string {
	t.Helper()
	builtinRoles.Lock()
	defer builtinRoles.Unlock()
	if id, ok := builtinRoles.ids[name]; ok {
		return id
	}
	page, err := roles.List(c, roles.ListOpts{Name: name}).AllPages(t.Context())
	if err != nil {
		t.Fatalf("list roles named %s: %v", name, err)
	}
	rs, err := roles.ExtractRoles(page)
	if err != nil || len(rs) != 1 {
		t.Fatalf("role %s: found %d (%v)", name, len(rs), err)
	}
	if builtinRoles.ids == nil {
		builtinRoles.ids = map[string]string{}
	}
	builtinRoles.ids[name] = rs[0].ID
	return rs[0].ID
}

// grant assigns a role and fails the test if the cloud refuses.
func grant(t *testing.T, c *gophercloud.ServiceClient, roleID string, opts roles.AssignOpts) {
	t.Helper()
	if err := roles.Assign(t.Context(), c, roleID, opts).ExtractErr(); err != nil {
		t.Fatalf("assign role %s with %+v: %v", roleID, opts, err)
	}
}

// Raw HTTP, for what no client would send on purpose.

type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

func rawRequest(t *testing.T, method, path, token string, body io.Reader, header map[string]string) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target.authURL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}
