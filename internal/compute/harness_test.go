package compute_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
	"github.com/nimbus-cloud/nimbus/internal/policy"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

const (
	projA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	projB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	projX = "adadadadadadadadadadadadadadadad"
)

var tokens = apitest.Tokens{
	"admin": {UserID: "u-admin", ProjectID: projX, Roles: []api.Role{{Name: "admin"}, {Name: "member"}, {Name: "reader"}}},
	"a":     {UserID: "u-a", ProjectID: projA, Roles: []api.Role{{Name: "member"}, {Name: "reader"}}},
	"a2":    {UserID: "u-a2", ProjectID: projA, Roles: []api.Role{{Name: "member"}, {Name: "reader"}}},
	"b":     {UserID: "u-b", ProjectID: projB, Roles: []api.Role{{Name: "member"}, {Name: "reader"}}},
	"ra":    {UserID: "u-ra", ProjectID: projA, Roles: []api.Role{{Name: "reader"}}},
}

type harness struct {
	t      testing.TB
	srv    *httptest.Server
	svc    *compute.Service
	bus    *bus.Bus
	db     *store.DB
	agents map[string]*fakeagent.Agent
}

// engineEnv selects PostgreSQL for the whole suite (TestSuitePostgres).
const engineEnv = "NIMBUS_TEST_COMPUTE_ENGINE"

func testDB(t testing.TB) *store.DB {
	t.Helper()
	if os.Getenv(engineEnv) == "postgres" {
		return storetest.Postgres(t)
	}
	return sqliteDB(t)
}

func sqliteDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "nimbus.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// quietLog drops the services' logs, unless NIMBUS_TEST_LOG is set: then
// they go to stderr, to see why a request answered 500.
func quietLog() *slog.Logger {
	if os.Getenv("NIMBUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testBus starts an in-process bus for one test.
func testBus(t testing.TB) *bus.Bus {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerConfig{Port: -1, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(context.Background(), bus.Config{Server: srv, Name: "compute-test", Logger: quietLog()})
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		srv.Shutdown()
	})
	return b
}

// newHarness starts the compute service on a fresh database with Nova's
// default flavors and one fake host, "host1", of 2 cores and 24 GiB.
func newHarness(t *testing.T, mods ...func(*compute.Config)) *harness {
	return newHarnessOn(t, testDB(t), mods...)
}

func newHarnessOn(t testing.TB, db *store.DB, mods ...func(*compute.Config)) *harness {
	t.Helper()
	enf, err := policy.NewEnforcer(compute.DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	apiSvc := &api.Service{Name: "compute", Errors: api.NovaErrors, Policy: api.PolicyAuthorizer{Enforcer: enf}, Log: quietLog(), Tokens: tokens}
	b := testBus(t)
	cfg := compute.Config{Bus: b, DefaultFlavors: true, ReconcileInterval: time.Hour}
	for _, m := range mods {
		m(&cfg)
	}
	svc, err := compute.New(context.Background(), cfg, db, apiSvc, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	h := &harness{t: t, srv: srv, svc: svc, bus: b, db: db, agents: map[string]*fakeagent.Agent{}}
	return h
}

// addHost starts a fake agent and waits until the service knows it.
func (h *harness) addHost(cfg fakeagent.Config) *fakeagent.Agent {
	h.t.Helper()
	cfg.Log = quietLog()
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	a, err := fakeagent.Start(context.Background(), h.bus, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = a.Stop() })
	h.agents[cfg.Host] = a
	h.eventually("host "+cfg.Host+" registered", func() bool {
		body := h.json("admin", "GET", "/v2.1/os-services?host="+cfg.Host, nil, 200)
		return len(body["services"].([]any)) == 1
	})
	return a
}

func (h *harness) eventually(what string, ok func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type reqOpt = func(*http.Request)

func mv(v string) reqOpt {
	return func(r *http.Request) { r.Header.Set("X-OpenStack-Nova-API-Version", v) }
}

func (h *harness) raw(token, method, path string, body any, opts ...reqOpt) *http.Response {
	h.t.Helper()
	return apitest.Request(h.t, h.srv.Client(), h.srv.URL, token, method, path, body, opts...)
}

func (h *harness) do(token, method, path string, body any, opts ...reqOpt) (int, []byte, http.Header) {
	h.t.Helper()
	resp := h.raw(token, method, path, body, opts...)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

// json sends a request and decodes the answer, failing unless the
// status is want.
func (h *harness) json(token, method, path string, body any, want int, opts ...reqOpt) map[string]any {
	h.t.Helper()
	status, out, _ := h.do(token, method, path, body, opts...)
	if status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, out)
	}
	m := map[string]any{}
	if len(out) > 0 {
		if err := json.Unmarshal(out, &m); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
	return m
}

// fail expects a Nova error body of the given status and returns its message.
func (h *harness) fail(token, method, path string, body any, want int, opts ...reqOpt) string {
	h.t.Helper()
	m := h.json(token, method, path, body, want, opts...)
	if len(m) != 1 {
		h.t.Fatalf("%s %s: error body %v", method, path, m)
	}
	for _, v := range m {
		e, ok := v.(map[string]any)
		if !ok || e["code"] != float64(want) {
			h.t.Fatalf("%s %s: error body %v", method, path, m)
		}
		msg, _ := e["message"].(string)
		return msg
	}
	return ""
}

const imageID = "70a599e0-31e7-49b7-b260-868f441e862b"

// boot creates a server and returns its id.
func (h *harness) boot(token, name string, extra map[string]any, opts ...reqOpt) string {
	h.t.Helper()
	srv := map[string]any{"name": name, "imageRef": imageID, "flavorRef": "1"}
	for k, v := range extra {
		srv[k] = v
	}
	body := h.json(token, "POST", "/v2.1/servers", map[string]any{"server": srv}, 202, opts...)
	return body["server"].(map[string]any)["id"].(string)
}

func (h *harness) server(token, id string, opts ...reqOpt) map[string]any {
	h.t.Helper()
	return h.json(token, "GET", "/v2.1/servers/"+id, nil, 200, opts...)["server"].(map[string]any)
}

func (h *harness) waitStatus(token, id, status string) map[string]any {
	h.t.Helper()
	var s map[string]any
	h.eventually("server "+id+" "+status, func() bool {
		s = h.server(token, id)
		return s["status"] == status
	})
	return s
}

func (h *harness) action(token, id string, body any, want int, opts ...reqOpt) map[string]any {
	h.t.Helper()
	return h.json(token, "POST", "/v2.1/servers/"+id+"/action", body, want, opts...)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

type computeConfig = compute.Config

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func fmtInt(n int) string { return strconv.Itoa(n) }

// newBenchHarness is newHarness for benchmarks, always on SQLite.
func newBenchHarness(b *testing.B) *harness {
	return newHarnessOn(b, sqliteDB(b), func(c *compute.Config) {
		c.Quotas = map[string]int{"instances": -1, "cores": -1, "ram": -1}
	})
}

func stringIndex(s, sub string) int { return strings.Index(s, sub) }
