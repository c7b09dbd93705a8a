package volumeagent_test

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
)

// fakeSwift is a Swift-like object store for the backup tests: accounts
// of containers of objects, the X-Auth-Token each account accepts, PUT
// with ETag checking, GET, DELETE, and JSON listings by prefix in pages
// of pageSize, as the proxy serves them.
type fakeSwift struct {
	mu       sync.Mutex
	tokens   map[string]string            // guarded by mu; token -> the account it owns
	objects  map[string]map[string][]byte // guarded by mu; "account/container" -> name -> bytes
	puts     int                          // guarded by mu; object PUTs
	pageSize int
}

func newFakeSwift(t *testing.T, tokens map[string]string) (*fakeSwift, *gophercloud.ServiceClient) {
	f := &fakeSwift{tokens: tokens, objects: map[string]map[string][]byte{}, pageSize: 3}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	sc := &gophercloud.ServiceClient{ProviderClient: &gophercloud.ProviderClient{TokenID: "svc-token"}, Endpoint: srv.URL + "/v1/"}
	return f, sc
}

func (f *fakeSwift) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.SplitN(rest, "/", 3)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(parts) < 2 || f.tokens[r.Header.Get("X-Auth-Token")] != parts[0] {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	key := parts[0] + "/" + parts[1]
	cont, exists := f.objects[key]
	if len(parts) == 2 {
		switch r.Method {
		case http.MethodPut:
			if !exists {
				f.objects[key] = map[string][]byte{}
				w.WriteHeader(http.StatusCreated)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		case http.MethodGet:
			if !exists {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			var names []string
			prefix, marker := r.URL.Query().Get("prefix"), r.URL.Query().Get("marker")
			for n := range cont {
				if strings.HasPrefix(n, prefix) && n > marker {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			if len(names) > f.pageSize {
				names = names[:f.pageSize]
			}
			if len(names) == 0 {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			var page []map[string]any
			for _, n := range names {
				page = append(page, map[string]any{"name": n, "bytes": len(cont[n])})
			}
			_ = json.NewEncoder(w).Encode(page)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
		return
	}
	name := parts[2]
	if !exists {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodPut:
		data, _ := io.ReadAll(r.Body)
		sum := md5.Sum(data)
		if e := r.Header.Get("Etag"); e != "" && e != hex.EncodeToString(sum[:]) {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		cont[name] = data
		f.puts++
		w.WriteHeader(http.StatusCreated)
	case http.MethodGet:
		data, ok := cont[name]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write(data)
	case http.MethodDelete:
		if _, ok := cont[name]; !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		delete(cont, name)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// names lists the objects of a container under prefix.
func (f *fakeSwift) names(account, container, prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.objects[account+"/"+container] {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (f *fakeSwift) object(account, container, name string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[account+"/"+container][name]
}

func (f *fakeSwift) setObject(account, container, name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[account+"/"+container][name] = data
}
