package containersync_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/containersync"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/node"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/proxy"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

const token = "tok"

// cloud is a one-machine object store: a storage node of three devices
// and a proxy that is also the only cluster of realm1.
type cloud struct {
	node    *node.Node
	devices string
	url     string // proxy base URL
}

func newCloud(t *testing.T) *cloud {
	t.Helper()
	dir := t.TempDir()
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	realms, err := containersync.NewRealms(map[string]containersync.Realm{
		"realm1": {Key: "realm-key", Clusters: map[string]string{"name1": srv.URL + "/v1/"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := node.Config{DevicesRoot: filepath.Join(dir, "devices"), RingDir: filepath.Join(dir, "rings"),
		HashPathSuffix: "secret", Bind: "127.0.0.1", SyncRealms: realms, Logger: log,
		// The test runs every pass itself.
		ReplicationInterval: time.Hour, ExpirerInterval: time.Hour, UpdaterInterval: time.Hour, AuditorInterval: time.Hour,
		ContainerSyncInterval: time.Hour}
	for _, d := range []string{"d1", "d2", "d3"} {
		if err := os.MkdirAll(filepath.Join(cfg.DevicesRoot, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := node.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	op, cp, ap := ls.Ports()
	if err := node.EnsureLocalRings(node.LocalRings{Dir: cfg.RingDir, IP: "127.0.0.1", ObjectPort: op, ContainerPort: cp,
		AccountPort: ap, Devices: []string{"d1", "d2", "d3"}, PartPower: 6, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(cfg, ls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	p, err := proxy.New(proxy.Config{
		AccountRing: filepath.Join(cfg.RingDir, node.AccountRing), ContainerRing: filepath.Join(cfg.RingDir, node.ContainerRing),
		ObjectRing: filepath.Join(cfg.RingDir, node.ObjectRing), HashPathSuffix: "secret", Logger: log,
		Tokens:     apitest.Tokens{token: {UserID: "u1", ProjectID: "p1", Roles: []api.Role{{Name: "member"}}}},
		SyncRealms: realms, SyncCluster: "//realm1/name1",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	h = p
	return &cloud{node: n, devices: cfg.DevicesRoot, url: srv.URL}
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request below /v1/AUTH_p1 with the owner's token (none when
// hdr sets X-Auth-Token to "").
func (c *cloud) do(t *testing.T, method, path string, hdr map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, c.url+"/v1/AUTH_p1/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (c *cloud) must(t *testing.T, want int, method, path string, hdr map[string]string, body string) answer {
	t.Helper()
	a := c.do(t, method, path, hdr, body)
	if a.status != want {
		t.Fatalf("%s %s: %d, want %d (%q)", method, path, a.status, want, a.body)
	}
	return a
}

// sync runs one pass once every replica of every container has the
// rows of the writes made so far: a PUT answers after a majority of
// object servers stored it, so the third container update may still be
// on its way.
func (c *cloud) sync(t *testing.T) containersync.Stats {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		seen := map[string]map[string]string{} // container → row name@timestamp set, per replica
		settled := true
		for _, st := range c.states(t) {
			key := ""
			for _, r := range st.rows {
				key += r.Name + "@" + r.CreatedAt + ";"
			}
			if prev, ok := seen[st.Container]; ok && prev["rows"] != key {
				settled = false
			}
			seen[st.Container] = map[string]string{"rows": key}
		}
		if settled {
			break
		}
	}
	return c.node.ContainerSync.SyncOnce(context.Background())
}

type replicaState struct {
	server.SyncState
	rows []server.SyncRow
}

// states reads the sync state and rows of every container replica.
func (c *cloud) states(t *testing.T) []replicaState {
	t.Helper()
	var out []replicaState
	for _, d := range []string{"d1", "d2", "d3"} {
		dbs, err := server.ListDBs(filepath.Join(c.devices, d), server.KindContainer)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range dbs {
			db, err := server.OpenDB(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			st, err := server.ReadSyncState(context.Background(), db)
			var rows []server.SyncRow
			if err == nil {
				rows, err = server.ReadSyncRows(context.Background(), db, -1, 1000)
			}
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
			out = append(out, replicaState{st, rows})
		}
	}
	return out
}

func TestContainerSync(t *testing.T) {
	c := newCloud(t)
	sync := map[string]string{"X-Container-Sync-Key": "user-key", "X-Container-Sync-To": "//realm1/name1/AUTH_p1/dst"}
	c.must(t, http.StatusCreated, "PUT", "dst", map[string]string{"X-Container-Sync-Key": "user-key"}, "")
	c.must(t, http.StatusCreated, "PUT", "src", sync, "")
	put := c.must(t, http.StatusCreated, "PUT", "src/a ☃", map[string]string{"X-Object-Meta-Color": "red", "Content-Type": "text/x-a"}, "alpha")
	c.must(t, http.StatusCreated, "PUT", "src/b", nil, "beta")
	c.must(t, http.StatusCreated, "PUT", "src/gone", nil, "x")

	if st := c.sync(t); st.Puts != 3 || st.Failures != 0 {
		t.Fatalf("first pass: %+v", st)
	}
	got := c.must(t, http.StatusOK, "GET", "dst/a ☃", nil, "")
	if got.body != "alpha" || got.header.Get("X-Object-Meta-Color") != "red" || got.header.Get("Content-Type") != "text/x-a" ||
		got.header.Get("Last-Modified") != put.header.Get("Last-Modified") {
		t.Fatalf("synced object: %q %v (source Last-Modified %s)", got.body, got.header, put.header.Get("Last-Modified"))
	}
	// The next pass goes over the same rows on every replica, and finds
	// the remote up to date.
	if st := c.sync(t); st.Puts != 0 || st.Failures != 0 || st.Skipped == 0 {
		t.Fatalf("second pass: %+v", st)
	}

	// An overwrite, a new object and a delete: only these rows, past the
	// sync points, are sent.
	c.must(t, http.StatusCreated, "PUT", "src/b", nil, "beta 2")
	c.must(t, http.StatusCreated, "PUT", "src/c", nil, "gamma")
	c.must(t, http.StatusNoContent, "DELETE", "src/gone", nil, "")
	if st := c.sync(t); st.Puts != 2 || st.Deletes != 1 || st.Skipped != 0 || st.Failures != 0 {
		for _, r := range c.states(t) {
			t.Logf("%s p1=%d p2=%d rows=%+v", r.Container, r.Point1, r.Point2, r.rows)
		}
		t.Fatalf("pass after changes: %+v", st)
	}
	if got := c.must(t, http.StatusOK, "GET", "dst/b", nil, ""); got.body != "beta 2" {
		t.Fatalf("overwrite synced as %q", got.body)
	}
	c.must(t, http.StatusOK, "GET", "dst/c", nil, "")
	c.must(t, http.StatusNotFound, "GET", "dst/gone", nil, "")

	// The sync points are kept in the container's databases.
	points := 0
	for _, st := range c.states(t) {
		if st.Container == "src" {
			if st.Point1 < 6 {
				t.Errorf("replica of src: sync point1 %d, want past the 6th row", st.Point1)
			}
			points++
		}
	}
	if points != 3 {
		t.Fatalf("sync points on %d replicas, want 3", points)
	}
}

func TestContainerSyncRefusals(t *testing.T) {
	c := newCloud(t)
	for _, to := range []string{"//realm9/name1/AUTH_p1/x", "//realm1/name9/AUTH_p1/x", "http://10.9.9.9/v1/AUTH_p1/x"} {
		c.must(t, http.StatusBadRequest, "PUT", "bad", map[string]string{"X-Container-Sync-To": to}, "")
	}
	c.must(t, http.StatusCreated, "PUT", "full", map[string]string{"X-Container-Sync-To": "http://127.0.0.1/v1/AUTH_p1/x"}, "")

	// A target whose sync key differs refuses the signed requests: nothing
	// is copied and the row is retried.
	c.must(t, http.StatusCreated, "PUT", "dst", map[string]string{"X-Container-Sync-Key": "other-key"}, "")
	c.must(t, http.StatusCreated, "PUT", "src", map[string]string{"X-Container-Sync-Key": "user-key",
		"X-Container-Sync-To": "//realm1/name1/AUTH_p1/dst"}, "")
	c.must(t, http.StatusCreated, "PUT", "src/o", nil, "x")
	if st := c.sync(t); st.Puts != 0 || st.Failures == 0 {
		t.Fatalf("sync with a wrong key: %+v", st)
	}
	c.must(t, http.StatusNotFound, "GET", "dst/o", nil, "")

	// Without a token, a forged signature is 401.
	a := c.do(t, "PUT", "dst/p", map[string]string{"X-Auth-Token": "", "X-Timestamp": "1700000000.00000",
		"X-Container-Sync-Auth": "realm1 nonce 0123456789abcdef0123456789abcdef01234567"}, "x")
	if a.status != http.StatusUnauthorized || !strings.HasPrefix(a.header.Get("Www-Authenticate"), "SwiftContainerSync") {
		t.Fatalf("forged sync request: %d %v", a.status, a.header)
	}
}

// A full-URL target (the older scheme, for hosts in allowed_sync_hosts)
// is authorized with the sync key itself.
func TestContainerSyncFullURL(t *testing.T) {
	c := newCloud(t)
	c.must(t, http.StatusCreated, "PUT", "dst", map[string]string{"X-Container-Sync-Key": "user-key"}, "")
	c.must(t, http.StatusCreated, "PUT", "src", map[string]string{"X-Container-Sync-Key": "user-key",
		"X-Container-Sync-To": c.url + "/v1/AUTH_p1/dst"}, "")
	c.must(t, http.StatusCreated, "PUT", "src/o", map[string]string{"X-Object-Meta-Color": "blue"}, "payload")
	if st := c.sync(t); st.Puts != 1 || st.Failures != 0 {
		t.Fatalf("sync to a full URL: %+v", st)
	}
	if got := c.must(t, http.StatusOK, "GET", "dst/o", nil, ""); got.body != "payload" || got.header.Get("X-Object-Meta-Color") != "blue" {
		t.Fatalf("synced object: %q %v", got.body, got.header)
	}
	// The bare key opens writes only when it matches.
	a := c.do(t, "PUT", "dst/p", map[string]string{"X-Auth-Token": "", "X-Timestamp": "1700000000.00000",
		"X-Container-Sync-Key": "wrong"}, "x")
	if a.status != http.StatusUnauthorized {
		t.Fatalf("wrong sync key: %d", a.status)
	}
}
