package image

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/policy"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

const (
	projA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	projB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	projC = "cccccccccccccccccccccccccccccccc"
	projX = "adadadadadadadadadadadadadadadad"
)

type harness struct {
	t       *testing.T
	srv     *httptest.Server
	svc     *Service
	dataDir string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith builds the service after configure (when not nil) has
// adjusted its configuration; the default is one filesystem store, "file".
func newHarnessWith(t *testing.T, configure func(cfg *Config)) *harness {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "nimbus.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	enf, err := policy.NewEnforcer(DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	member := []api.Role{{Name: "member"}, {Name: "reader"}}
	apiSvc := &api.Service{
		Name: "image", Errors: Errors, ErrorsFor: ErrorsFor, Policy: api.PolicyAuthorizer{Enforcer: enf},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tokens: apitest.Tokens{
			"admin": {UserID: "u-admin", ProjectID: projX, Roles: []api.Role{{Name: "admin"}, {Name: "member"}}},
			"a":     {UserID: "u-a", ProjectID: projA, Roles: member},
			"b":     {UserID: "u-b", ProjectID: projB, Roles: member},
			"c":     {UserID: "u-c", ProjectID: projC, Roles: member},
			"ra":    {UserID: "u-ra", ProjectID: projA, Roles: []api.Role{{Name: "reader"}}},
		},
	}
	dir := filepath.Join(t.TempDir(), "images")
	fs, err := imagestore.NewFilesystem("file", dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Stores: map[string]imagestore.Store{"file": fs}, DefaultStore: "file"}
	if configure != nil {
		configure(&cfg)
	}
	svc, err := New(ctx, cfg, db, apiSvc, apiSvc.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, svc: svc, dataDir: dir}
}

// do sends a request and returns the status, headers and body.
func (h *harness) do(token, method, path string, body io.Reader, hdr ...string) (int, http.Header, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// json sends v as JSON and decodes the answer into a map.
func (h *harness) json(token, method, path string, v any, wantStatus int, hdr ...string) map[string]any {
	h.t.Helper()
	var body io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
		if len(hdr) == 0 {
			hdr = []string{"Content-Type", "application/json"}
		}
	}
	// Like openstacksdk, ask for JSON (errors included).
	status, _, out := h.do(token, method, path, body, append(hdr, "Accept", "application/json")...)
	if status != wantStatus {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, wantStatus, out)
	}
	var m map[string]any
	if len(out) > 0 {
		if err := json.Unmarshal(out, &m); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
	return m
}

func (h *harness) create(token string, attrs map[string]any) map[string]any {
	h.t.Helper()
	return h.json(token, "POST", "/v2/images", attrs, http.StatusCreated)
}

func (h *harness) patch(token, id string, ops []map[string]any, want int) map[string]any {
	h.t.Helper()
	return h.json(token, "PATCH", "/v2/images/"+id, ops, want, "Content-Type", patchV21)
}

func jsonBody(t *testing.T, v any) io.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}
