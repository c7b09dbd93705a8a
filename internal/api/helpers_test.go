package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// TestMain keeps services that log to slog.Default() quiet; tests that
// inspect logs give the service its own logger.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// fakeTokens is a TokenValidator that knows a fixed set of tokens. Unknown
// tokens fail with err, or with a plain error when err is nil.
type fakeTokens struct {
	tokens map[string]*api.Identity // read-only once serving
	err    error                    // read-only once serving

	mu    sync.Mutex
	calls int // guarded by mu
}

var _ api.TokenValidator = (*fakeTokens)(nil)

func (f *fakeTokens) ValidateToken(_ context.Context, token string) (*api.Identity, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if id, ok := f.tokens[token]; ok {
		return id, nil
	}
	if f.err != nil {
		return nil, f.err
	}
	return nil, errors.New("fake: token not found in /var/lib/secret/tokens.db")
}

func (f *fakeTokens) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// authzCall is one question put to fakeAuthorizer.
type authzCall struct {
	action string
	target map[string]any
	caller *api.Identity
}

// fakeAuthorizer allows exactly the actions in allow and records every call.
type fakeAuthorizer struct {
	allow map[string]bool // read-only once serving
	err   error           // returned instead of a decision when set

	mu    sync.Mutex
	calls []authzCall // guarded by mu
}

var _ api.Authorizer = (*fakeAuthorizer)(nil)

func (f *fakeAuthorizer) Allow(action string, target map[string]any, caller *api.Identity) (bool, error) {
	f.mu.Lock()
	f.calls = append(f.calls, authzCall{action: action, target: maps.Clone(target), caller: caller})
	f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
	return f.allow[action], nil
}

func (f *fakeAuthorizer) recorded() []authzCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]authzCall(nil), f.calls...)
}

// syncBuffer is a bytes.Buffer safe for a logger writing from a server
// goroutine while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestLogger returns a JSON logger at debug level writing into a buffer.
func newTestLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// logRecords parses the JSON log lines written so far.
func logRecords(t *testing.T, buf *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// do serves one request through h and returns the recorded response.
func do(h http.Handler, method, target string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// keystoneError is the body Keystone answers errors with.
type keystoneError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Title   string `json:"title"`
	} `json:"error"`
}

// decodeKeystoneError checks rec holds a Keystone-format error with the
// given status and returns it.
func decodeKeystoneError(t *testing.T, rec *httptest.ResponseRecorder, status int) keystoneError {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	var e keystoneError
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("body %s is not a Keystone error: %v", rec.Body, err)
	}
	if e.Error.Code != status || e.Error.Title != http.StatusText(status) || e.Error.Message == "" {
		t.Fatalf("error body = %+v, want code %d title %q and a message", e.Error, status, http.StatusText(status))
	}
	return e
}

// jsonBody parses rec's body into a generic map.
func jsonBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", rec.Body, err)
	}
	return m
}

// apiError asserts err is an *api.Error with the given status.
func apiError(t *testing.T, err error, status int) *api.Error {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *api.Error", err, err)
	}
	if e.Status != status {
		t.Fatalf("status = %d (%q), want %d", e.Status, e.Message, status)
	}
	return e
}
