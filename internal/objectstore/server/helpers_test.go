package server

import (
	"context"
	"fmt"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain refuses to run on a filesystem without user xattrs: object
// storage cannot work there, so a skip would hide a broken environment.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nimbus-xattr-probe-")
	if err == nil {
		err = CheckXattr(dir)
		os.RemoveAll(dir)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the test filesystem (%s) must support user extended attributes: %v\n", os.TempDir(), err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// node is one storage node under test: a devices root with device "sda"
// and the three servers on loopback.
type node struct {
	root      string
	dev       string
	cfg       Config
	obj       *ObjectServer
	cont      *ContainerServer
	acct      *AccountServer
	objURL    string
	contURL   string
	acctURL   string
	contHost  string
	acctHost  string
	contDown  atomic.Bool // makes the container server answer 503
	acctDown  atomic.Bool
	tsCounter atomic.Int64
}

func newNode(t testing.TB) *node { return newPolicyNode(t, nil) }

// newPolicyNode is newNode with storage policies pols (nil: Policy-0).
func newPolicyNode(t testing.TB, pols *policy.Policies) *node {
	t.Helper()
	root := t.TempDir()
	dev := filepath.Join(root, "sda")
	if err := os.Mkdir(dev, 0o750); err != nil {
		t.Fatal(err)
	}
	n := &node{root: root, dev: dev}
	n.cfg = Config{
		DevicesRoot:    root,
		HashPathPrefix: "pre",
		HashPathSuffix: "suf",
		UpdateTimeout:  time.Second,
		Policies:       pols,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	var err error
	if n.obj, err = NewObjectServer(n.cfg); err != nil {
		t.Fatal(err)
	}
	if n.cont, err = NewContainerServer(n.cfg); err != nil {
		t.Fatal(err)
	}
	if n.acct, err = NewAccountServer(n.cfg); err != nil {
		t.Fatal(err)
	}
	os := httptest.NewServer(n.obj)
	cs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.contDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		n.cont.ServeHTTP(w, r)
	}))
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.acctDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		n.acct.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		os.Close()
		cs.Close()
		as.Close()
		n.cont.Close()
		n.acct.Close()
	})
	n.objURL, n.contURL, n.acctURL = os.URL, cs.URL, as.URL
	n.contHost = strings.TrimPrefix(cs.URL, "http://")
	n.acctHost = strings.TrimPrefix(as.URL, "http://")
	n.tsCounter.Store(time.Now().Unix() * 100000)
	return n
}

// ts returns a fresh, increasing X-Timestamp.
func (n *node) ts() string {
	v := n.tsCounter.Add(100)
	return fmt.Sprintf("%d.%05d", v/100000, v%100000)
}

type resp struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, method, rawURL string, hdr map[string]string, body string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if method == http.MethodPut && body == "" {
		req.ContentLength = 0
		req.Body = http.NoBody
	}
	res, err := http.DefaultClient.Do(req.WithContext(context.Background()))
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

func expectStatus(t testing.TB, r resp, want int, what string) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d (body %q)", what, r.status, want, r.body)
	}
}

// putObject stores an object with the container update headers pointing at
// the node's container server.
func (n *node) putObject(t testing.TB, path, ts, body string, extra map[string]string) resp {
	t.Helper()
	h := map[string]string{"X-Timestamp": ts, "Content-Type": "text/plain"}
	for k, v := range extra {
		h[k] = v
	}
	return do(t, http.MethodPut, n.objURL+path, h, body)
}

func (n *node) containerHeaders() map[string]string {
	return map[string]string{"X-Container-Host": n.contHost, "X-Container-Partition": "1", "X-Container-Device": "sda"}
}

// objDir is the hash dir of /a/c/o in partition part.
func (n *node) objDir(part, a, c, o string) string {
	return hashDir(n.dev, objectsDir, part, hashPath("pre", "suf", a, c, o))
}

func listDir(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// concurrently calls fn(0) … fn(n-1) from workers goroutines and returns
// when all are done. fn must report failures with t.Error, not t.Fatal.
func concurrently(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
