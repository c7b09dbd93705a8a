package network

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2/pagination"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
	"github.com/nimbus-cloud/nimbus/internal/policy"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

const (
	projA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	projB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	projX = "adadadadadadadadadadadadadadadad"
)

// recorder is a Notifier that remembers events.
type recorder struct {
	mu  sync.Mutex
	evs []Event // guarded by mu
}

func (r *recorder) Notify(_ context.Context, ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) has(resource, action string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if e.Resource == resource && e.Action == action {
			return true
		}
	}
	return false
}

type harness struct {
	t      *testing.T
	srv    *httptest.Server
	svc    *Service
	events *recorder
}

func sqliteDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "nimbus.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// engineEnv selects the database the whole suite runs on: SQLite, or
// PostgreSQL when it says "postgres" (TestSuitePostgres sets it).
const engineEnv = "NIMBUS_TEST_NETWORK_ENGINE"

// testDB returns a fresh database of the engine the suite runs on.
func testDB(t *testing.T) *store.DB {
	t.Helper()
	if os.Getenv(engineEnv) == "postgres" {
		return storetest.Postgres(t)
	}
	return sqliteDB(t)
}

func newHarness(t *testing.T) *harness { return newHarnessOn(t, testDB(t), Config{}) }

// eachEngine runs fn against SQLite and, when NIMBUS_TEST_POSTGRES_DSN
// is set, PostgreSQL.
func eachEngine(t *testing.T, cfg Config, fn func(t *testing.T, h *harness)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newHarnessOn(t, sqliteDB(t), cfg)) })
	t.Run("postgres", func(t *testing.T) { fn(t, newHarnessOn(t, storetest.Postgres(t), cfg)) })
}

func newHarnessOn(t *testing.T, db *store.DB, cfg Config) *harness {
	t.Helper()
	enf, err := policy.NewEnforcer(DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	member := []api.Role{{Name: "member"}, {Name: "reader"}}
	apiSvc := &api.Service{
		Name: "network", Errors: Errors, Policy: api.PolicyAuthorizer{Enforcer: enf},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tokens: apitest.Tokens{
			"admin": {UserID: "u-admin", ProjectID: projX, Roles: []api.Role{{Name: "admin"}, {Name: "member"}, {Name: "reader"}}},
			"a":     {UserID: "u-a", ProjectID: projA, Roles: member},
			"b":     {UserID: "u-b", ProjectID: projB, Roles: member},
			"ra":    {UserID: "u-ra", ProjectID: projA, Roles: []api.Role{{Name: "reader"}}},
		},
	}
	rec := &recorder{}
	cfg.Notifier = rec
	svc, err := New(context.Background(), cfg, db, apiSvc, apiSvc.Log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, svc: svc, events: rec}
}

func (h *harness) do(token, method, path string, body any) (int, []byte) {
	h.t.Helper()
	resp := apitest.Request(h.t, h.srv.Client(), h.srv.URL, token, method, path, body)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// json sends a request and decodes the answer, failing unless the status
// is want.
func (h *harness) json(token, method, path string, body any, want int) map[string]any {
	h.t.Helper()
	status, out := h.do(token, method, path, body)
	if status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, out)
	}
	var m map[string]any
	if len(out) > 0 {
		if err := json.Unmarshal(out, &m); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
	return m
}

// fail expects a Neutron error of the given status and type.
func (h *harness) fail(token, method, path string, body any, want int, typ string) string {
	h.t.Helper()
	m := h.json(token, method, path, body, want)
	e, _ := m["NeutronError"].(map[string]any)
	if e == nil {
		h.t.Fatalf("%s %s: no NeutronError in %v", method, path, m)
	}
	if typ != "" && e["type"] != typ {
		h.t.Fatalf("%s %s: error type %v, want %s: %v", method, path, e["type"], typ, e)
	}
	msg, _ := e["message"].(string)
	return msg
}

func (h *harness) create(token, collection, name string, attrs map[string]any) map[string]any {
	h.t.Helper()
	return h.json(token, "POST", "/v2.0/"+collection, map[string]any{name: attrs}, http.StatusCreated)[name].(map[string]any)
}

func (h *harness) network(token string, attrs map[string]any) map[string]any {
	h.t.Helper()
	if attrs == nil {
		attrs = map[string]any{}
	}
	return h.create(token, "networks", "network", attrs)
}

func (h *harness) subnet(token, networkID, cidr string, attrs map[string]any) map[string]any {
	h.t.Helper()
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["network_id"] = networkID
	if cidr != "" {
		attrs["cidr"] = cidr
	}
	if _, ok := attrs["ip_version"]; !ok {
		attrs["ip_version"] = 4
	}
	return h.create(token, "subnets", "subnet", attrs)
}

func (h *harness) port(token, networkID string, attrs map[string]any) map[string]any {
	h.t.Helper()
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["network_id"] = networkID
	return h.create(token, "ports", "port", attrs)
}

func ids(body map[string]any, collection string) []string {
	var out []string
	for _, it := range body[collection].([]any) {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// gophercloudPage is a page of a gophercloud listing.
type gophercloudPage = pagination.Page

func contains(s, sub string) bool { return strings.Contains(s, sub) }
