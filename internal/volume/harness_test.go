package volume_test

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
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/policy"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
	"github.com/nimbus-cloud/nimbus/internal/volume"
	"github.com/nimbus-cloud/nimbus/internal/volume/fakeagent"
)

const (
	projA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	projB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	projX = "adadadadadadadadadadadadadadadad"
)

var tokens = apitest.Tokens{
	"admin": {UserID: "0000000000000000000000000000000a", ProjectID: projX, Roles: []api.Role{{Name: "admin"}, {Name: "member"}, {Name: "reader"}}},
	"a":     {UserID: "0000000000000000000000000000000b", ProjectID: projA, Roles: []api.Role{{Name: "member"}, {Name: "reader"}}},
	"b":     {UserID: "0000000000000000000000000000000c", ProjectID: projB, Roles: []api.Role{{Name: "member"}, {Name: "reader"}}},
	"ra":    {UserID: "0000000000000000000000000000000d", ProjectID: projA, Roles: []api.Role{{Name: "reader"}}},
}

// engineEnv selects PostgreSQL for the whole suite (TestSuitePostgres).
const engineEnv = "NIMBUS_TEST_VOLUME_ENGINE"

func testDB(t testing.TB) *store.DB {
	t.Helper()
	if os.Getenv(engineEnv) == "postgres" {
		return storetest.Postgres(t)
	}
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "nimbus.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func quietLog() *slog.Logger {
	if os.Getenv("NIMBUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testBus(t testing.TB) *bus.Bus {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerConfig{Port: -1, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(context.Background(), bus.Config{Server: srv, Name: "volume-test", Logger: quietLog()})
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

// fakeImages is an image service in memory.
type fakeImages struct {
	mu      sync.Mutex
	images  map[string]*volume.ImageInfo // guarded by mu
	created []volume.NewImage            // guarded by mu
	tokens  []string                     // guarded by mu; tokens of CreateImage calls
}

func (f *fakeImages) Image(_ context.Context, _ string, id string) (*volume.ImageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[id]
	if !ok {
		return nil, volume.ErrImageNotFound
	}
	c := *img
	return &c, nil
}

func (f *fakeImages) CreateImage(_ context.Context, token string, img volume.NewImage) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := uuid.NewString()
	f.images[id] = &volume.ImageInfo{ID: id, Name: img.Name, Status: "queued"}
	f.created = append(f.created, img)
	f.tokens = append(f.tokens, token)
	return id, nil
}

const (
	imageActive      = "11111111-1111-4111-8111-111111111111"
	imageDeactivated = "22222222-2222-4222-8222-222222222222"
	imageBigMinDisk  = "33333333-3333-4333-8333-333333333333"
)

type harness struct {
	t      testing.TB
	srv    *httptest.Server
	svc    *volume.Service
	bus    *bus.Bus
	db     *store.DB
	images *fakeImages
	agents map[string]*fakeagent.Agent
}

// newHarness starts the volume service on a fresh database with one fake
// storage host, "stor1", in zone nova.
func newHarness(t testing.TB, mods ...func(*volume.Config)) *harness {
	h := newBareHarness(t, testDB(t), mods...)
	h.addHost(fakeagent.Config{Host: "stor1"})
	return h
}

// newBareHarness starts the service with no storage host.
func newBareHarness(t testing.TB, db *store.DB, mods ...func(*volume.Config)) *harness {
	t.Helper()
	enf, err := policy.NewEnforcer(volume.DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	apiSvc := &api.Service{Name: "volume", Errors: api.NovaErrors, Policy: api.PolicyAuthorizer{Enforcer: enf}, Log: quietLog(), Tokens: tokens}
	b := testBus(t)
	images := &fakeImages{images: map[string]*volume.ImageInfo{
		imageActive:      {ID: imageActive, Name: "cirros", Status: "active", SizeBytes: 20 << 20, VirtualSizeBytes: 64 << 20},
		imageDeactivated: {ID: imageDeactivated, Name: "off", Status: "deactivated"},
		imageBigMinDisk:  {ID: imageBigMinDisk, Name: "big", Status: "active", MinDiskGB: 5},
	}}
	cfg := volume.Config{Bus: b, Images: images}
	for _, m := range mods {
		m(&cfg)
	}
	svc, err := volume.New(context.Background(), cfg, db, apiSvc, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, svc: svc, bus: b, db: db, images: images, agents: map[string]*fakeagent.Agent{}}
}

// addHost starts a fake storage agent and waits until os-services lists it.
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
		body := h.json("admin", "GET", "/v3/"+projX+"/os-services?host="+cfg.Host+"@file", nil, 200)
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
	return func(r *http.Request) { r.Header.Set("OpenStack-API-Version", "volume "+v) }
}

func (h *harness) do(token, method, path string, body any, opts ...reqOpt) (int, []byte, http.Header) {
	h.t.Helper()
	resp := apitest.Request(h.t, h.srv.Client(), h.srv.URL, token, method, path, body, opts...)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

// json sends a request and decodes the answer, failing unless the status
// is want.
func (h *harness) json(token, method, path string, body any, want int, opts ...reqOpt) map[string]any {
	h.t.Helper()
	status, out, _ := h.do(token, method, path, body, opts...)
	if status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, out)
	}
	m := map[string]any{}
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &m); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
	return m
}

// strict sends a request, checks the status and decodes the body into v
// refusing unknown fields, as Tempest's schemas (additionalProperties:
// false) do.
func (h *harness) strict(token, method, path string, body any, want int, v any, opts ...reqOpt) {
	h.t.Helper()
	status, out, _ := h.do(token, method, path, body, opts...)
	if status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, out)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		h.t.Fatalf("%s %s: body does not match the schema: %v: %s", method, path, err, out)
	}
}

// fail expects a Cinder error body of the given status and returns its
// message.
func (h *harness) fail(token, method, path string, body any, want int, opts ...reqOpt) string {
	h.t.Helper()
	status, out, _ := h.do(token, method, path, body, opts...)
	if status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, out)
	}
	var m map[string]struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(out, &m); err != nil || len(m) != 1 {
		h.t.Fatalf("%s %s: not a Cinder error body: %s", method, path, out)
	}
	for name, e := range m {
		wantName := map[int]string{400: "badRequest", 403: "forbidden", 404: "itemNotFound", 406: "computeFault", 409: "conflictingRequest", 413: "overLimit"}[want]
		if wantName != "" && wantName != "computeFault" && name != wantName {
			h.t.Fatalf("%s %s: error named %q, want %q: %s", method, path, name, wantName, out)
		}
		if e.Code != want || e.Message == "" {
			h.t.Fatalf("%s %s: error body %s", method, path, out)
		}
		return e.Message
	}
	return ""
}

// path is a URL under the project of token.
func path(token, rest string) string { return "/v3/" + tokens[token].ProjectID + rest }

// createVolume creates a volume and waits until it reaches want.
func (h *harness) createVolume(token string, body map[string]any, want string) map[string]any {
	h.t.Helper()
	vol := h.json(token, "POST", path(token, "/volumes"), map[string]any{"volume": body}, 202)["volume"].(map[string]any)
	id := vol["id"].(string)
	return h.waitVolume(token, id, want)
}

func (h *harness) waitVolume(token, id, want string) map[string]any {
	h.t.Helper()
	var v map[string]any
	h.eventually("volume "+id+" "+want, func() bool {
		v = h.json(token, "GET", path(token, "/volumes/"+id), nil, 200)["volume"].(map[string]any)
		if v["status"] == "error" && want != "error" {
			h.t.Fatalf("volume %s went to error", id)
		}
		return v["status"] == want
	})
	return v
}

func (h *harness) waitGone(token, p string) {
	h.t.Helper()
	h.eventually(p+" gone", func() bool {
		status, _, _ := h.do(token, "GET", p, nil)
		return status == 404
	})
}

func (h *harness) action(token, id string, body any, want int) map[string]any {
	h.t.Helper()
	return h.json(token, "POST", path(token, "/volumes/"+id+"/action"), body, want)
}

func fakeagentConfig(host string) fakeagent.Config { return fakeagent.Config{Host: host} }
