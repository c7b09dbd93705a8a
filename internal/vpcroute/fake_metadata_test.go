package vpcroute

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// fakeMetadata is an instance metadata service: the session-token
// protocol of AWS IMDSv2 and Alibaba Cloud's hardening mode (header names
// per cloud), optionally required, optionally not offered at all.
type fakeMetadata struct {
	ttlHeader, tokenHeader string
	values                 map[string]string // path → value
	requireToken           bool              // reads without the token get 401
	noTokens               bool              // the token endpoint answers 404

	mu    sync.Mutex
	reads int // guarded by mu
}

func newFakeMetadata(t *testing.T, f *fakeMetadata) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

const fakeMetadataToken = "AQAEAfake-token=="

func (f *fakeMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/latest/api/token" {
		if f.noTokens {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPut || r.Header.Get(f.ttlHeader) == "" {
			http.Error(w, "bad token request", http.StatusBadRequest)
			return
		}
		w.Write([]byte(fakeMetadataToken))
		return
	}
	if f.requireToken && r.Header.Get(f.tokenHeader) != fakeMetadataToken {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	v, ok := f.values[r.URL.Path]
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.reads++
	f.mu.Unlock()
	w.Write([]byte(v))
}
