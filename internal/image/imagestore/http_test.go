package imagestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newImageServer serves data at /ranged (honouring Range) and /plain
// (ignoring it), and 404 elsewhere.
func newImageServer(t *testing.T, data []byte) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/ranged":
			http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(data))
		case "/plain":
			w.Write(data)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func readAllAndClose(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func TestHTTPGet(t *testing.T) {
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	srv, _ := newImageServer(t, data)
	st := NewHTTP("http", nil, &SSRFGuard{AllowPrivate: true})
	ctx := context.Background()

	for _, path := range []string{"/ranged", "/plain"} {
		loc := Location{Store: "http", URL: srv.URL + path}
		for _, tt := range []struct{ offset, length int64 }{
			{0, -1}, {10, -1}, {0, 5}, {10, 5}, {30, 100}, {5, 0},
		} {
			rc, err := st.Get(ctx, loc, tt.offset, tt.length)
			if err != nil {
				t.Fatalf("%s Get(%d, %d): %v", path, tt.offset, tt.length, err)
			}
			want := data[tt.offset:]
			if tt.length >= 0 && int64(len(want)) > tt.length {
				want = want[:tt.length]
			}
			if got := readAllAndClose(t, rc); !bytes.Equal(got, want) {
				t.Errorf("%s Get(%d, %d) = %q, want %q", path, tt.offset, tt.length, got, want)
			}
		}
	}

	_, err := st.Get(ctx, Location{Store: "http", URL: srv.URL + "/missing"}, 0, -1)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
}

func TestHTTPReadOnly(t *testing.T) {
	st := NewHTTP("http", nil, &SSRFGuard{})
	if !st.ReadOnly() || st.ID() != "http" || st.Description() == "" {
		t.Fatalf("ReadOnly/ID/Description wrong: %v %q %q", st.ReadOnly(), st.ID(), st.Description())
	}
	if _, _, err := st.Put(context.Background(), "img", strings.NewReader("x")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Put = %v, want ErrReadOnly", err)
	}
	if err := st.Delete(context.Background(), Location{Store: "http", URL: "http://example.com/x"}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Delete = %v, want ErrReadOnly", err)
	}
}

// TestHTTPGuarded checks that the store refuses loopback targets before
// sending anything, even with a client that would connect.
func TestHTTPGuarded(t *testing.T) {
	srv, hits := newImageServer(t, []byte("secret"))
	st := NewHTTP("http", srv.Client(), &SSRFGuard{})
	_, err := st.Get(context.Background(), Location{Store: "http", URL: srv.URL + "/ranged"}, 0, -1)
	if !errors.Is(err, ErrForbiddenTarget) {
		t.Fatalf("Get = %v, want ErrForbiddenTarget", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("server hit %d times", n)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:pw@host/p@x": "http://xxxxx@host/p@x",
		"http://host/p@x":         "http://host/p@x",
		"https://a@b@host":        "https://xxxxx@host",
		"not a url":               "not a url",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHTTPSize(t *testing.T) {
	data := bytes.Repeat([]byte("s"), 4321)
	srv, _ := newImageServer(t, data)
	h := NewHTTP("http", srv.Client(), nil)
	n, err := h.Size(context.Background(), srv.URL+"/ranged")
	if err != nil || n != int64(len(data)) {
		t.Fatalf("size = %d, %v; want %d", n, err, len(data))
	}
	if _, err := h.Size(context.Background(), srv.URL+"/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("size of a missing object: %v, want ErrNotFound", err)
	}
	guarded := NewHTTP("http", nil, &SSRFGuard{})
	if _, err := guarded.Size(context.Background(), srv.URL+"/ranged"); !errors.Is(err, ErrForbiddenTarget) {
		t.Fatalf("guarded size of a loopback URL: %v, want ErrForbiddenTarget", err)
	}
}
