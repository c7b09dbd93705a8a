package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// testPolicies are gold (0, the default), silver (1, alias "cheap") and
// bronze (2, deprecated).
func testPolicies(t *testing.T) *policy.Policies {
	t.Helper()
	ps, err := policy.New([]policy.Policy{{Index: 0, Name: "gold", Default: true},
		{Index: 1, Name: "silver", Aliases: []string{"cheap"}}, {Index: 2, Name: "bronze", Deprecated: true}})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// newPolicyCluster is newCluster with three storage policies: policy 0's
// object ring has three replicas, silver's (object-1.ring.gz) two and
// bronze's (object-2.ring.gz) one, so where an object lands shows which
// ring placed it.
func newPolicyCluster(t *testing.T) *cluster {
	t.Helper()
	pols := testPolicies(t)
	c := &cluster{ringDir: t.TempDir(), builders: map[string]*ring.Builder{}}
	for range 3 {
		c.nodes = append(c.nodes, startPolicyNode(t, pols))
	}
	for _, k := range []struct {
		kind, file string
		replicas   int
	}{{"account", "account.ring.gz", 3}, {"container", "container.ring.gz", 3}, {"object", "object.ring.gz", 3},
		{"object", "object-1.ring.gz", 2}, {"object", "object-2.ring.gz", 1}} {
		b, err := ring.NewBuilder(6, k.replicas, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range c.nodes {
			srv := map[string]*switchable{"account": n.acct, "container": n.cont, "object": n.obj}[k.kind]
			for _, d := range devices {
				if _, err := b.AddDevice(ring.Device{Region: 1, Zone: i + 1, IP: "127.0.0.1", Port: srv.port(), Name: d, Weight: 100}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := b.Rebalance(); err != nil {
			t.Fatal(err)
		}
		if err := b.WriteRing(filepath.Join(c.ringDir, k.file)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := New(Config{
		AccountRing: filepath.Join(c.ringDir, "account.ring.gz"), ContainerRing: filepath.Join(c.ringDir, "container.ring.gz"),
		ObjectRing: filepath.Join(c.ringDir, "object.ring.gz"), Policies: pols,
		HashPathPrefix: "pre", HashPathSuffix: "suf", Tokens: tokens, Logger: quietLogger(), NodeTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.Close()
	})
	c.proxy, c.url = p, srv.URL
	return c
}

// dataFilesIn counts .data files under every device's dir datadir
// ("objects", "objects-1") across the cluster.
func (c *cluster) dataFilesIn(t *testing.T, datadir string) int {
	t.Helper()
	count := 0
	for _, n := range c.nodes {
		for _, d := range devices {
			_ = filepath.WalkDir(filepath.Join(n.root, d, datadir), func(p string, e os.DirEntry, err error) error {
				if err == nil && !e.IsDir() && strings.HasSuffix(p, ".data") {
					count++
				}
				return nil
			})
		}
	}
	return count
}

// A container is bound to the policy named at its creation (or the
// default); its objects are placed with that policy's ring and stored in
// its objects-N dirs; the policy cannot change while the container
// exists; account usage is reported per policy; /info lists the policies.
func TestStoragePolicies(t *testing.T) {
	c := newPolicyCluster(t)

	r := c.do(t, "GET", "/info", "", nil, "")
	expect(t, r, http.StatusOK, "info")
	var info struct {
		Swift struct {
			Policies []map[string]any `json:"policies"`
		} `json:"swift"`
	}
	if err := json.Unmarshal([]byte(r.body), &info); err != nil {
		t.Fatal(err)
	}
	if ps := info.Swift.Policies; len(ps) != 2 || ps[0]["name"] != "gold" || ps[0]["default"] != true ||
		ps[1]["name"] != "silver" || ps[1]["aliases"] != "silver, cheap" {
		t.Fatalf("/info policies %v", ps)
	}

	expect(t, c.do(t, "PUT", "g", ownerToken, nil, ""), http.StatusCreated, "put default-policy container")
	expect(t, c.do(t, "PUT", "s", ownerToken, map[string]string{"X-Storage-Policy": "CHEAP"}, ""), http.StatusCreated, "put silver container by alias")
	for cont, want := range map[string]string{"g": "gold", "s": "silver"} {
		for _, m := range []string{"HEAD", "GET"} {
			if got := c.do(t, m, cont, ownerToken, nil, "").header.Get("X-Storage-Policy"); got != want {
				t.Errorf("%s %s: X-Storage-Policy %q, want %q", m, cont, got, want)
			}
		}
	}
	r = c.do(t, "PUT", "s", ownerToken, map[string]string{"X-Storage-Policy": "gold"}, "")
	expect(t, r, http.StatusConflict, "change the policy of an existing container")
	expect(t, c.do(t, "PUT", "s", ownerToken, map[string]string{"X-Container-Meta-A": "b"}, ""), http.StatusAccepted, "put again without a policy")
	expect(t, c.do(t, "POST", "s", ownerToken, map[string]string{"X-Storage-Policy": "gold"}, ""), http.StatusNoContent, "post naming a policy")
	if got := c.do(t, "HEAD", "s", ownerToken, nil, "").header.Get("X-Storage-Policy"); got != "silver" {
		t.Fatalf("after 409, PUT and POST: policy %q, want silver", got)
	}
	r = c.do(t, "PUT", "x", ownerToken, map[string]string{"X-Storage-Policy": "bogus"}, "")
	expect(t, r, http.StatusBadRequest, "unknown policy")
	if r.body != "Invalid X-Storage-Policy 'bogus'" {
		t.Errorf("unknown policy body %q", r.body)
	}
	r = c.do(t, "PUT", "x", ownerToken, map[string]string{"X-Storage-Policy": "bronze"}, "")
	expect(t, r, http.StatusBadRequest, "deprecated policy")
	if !strings.Contains(r.body, "deprecated") {
		t.Errorf("deprecated policy body %q", r.body)
	}

	expect(t, c.do(t, "PUT", "g/o", ownerToken, nil, "gold body"), http.StatusCreated, "put gold object")
	expect(t, c.do(t, "PUT", "s/o", ownerToken, nil, "silver body!"), http.StatusCreated, "put silver object")
	if n := c.dataFilesIn(t, "objects-1"); n != 2 {
		t.Errorf("silver object: %d .data files in objects-1, want 2 (its ring's replicas)", n)
	}
	if n := c.dataFilesIn(t, "objects"); n != 3 {
		t.Errorf("gold object: %d .data files in objects, want 3", n)
	}
	for path, want := range map[string]string{"g/o": "gold body", "s/o": "silver body!"} {
		r := c.do(t, "GET", path, ownerToken, nil, "")
		expect(t, r, http.StatusOK, "get "+path)
		if r.body != want {
			t.Errorf("GET %s: %q, want %q", path, r.body, want)
		}
	}
	expect(t, c.do(t, "PUT", "s/copy", ownerToken, map[string]string{"X-Copy-From": "g/o"}, ""), http.StatusCreated, "copy across policies")
	if r := c.do(t, "GET", "s/copy", ownerToken, nil, ""); r.body != "gold body" {
		t.Errorf("cross-policy copy: %q", r.body)
	}
	if r := c.do(t, "GET", "s?format=json", ownerToken, nil, ""); !strings.Contains(r.body, `"copy"`) || !strings.Contains(r.body, `"o"`) {
		t.Errorf("silver listing %s", r.body)
	}

	// Object versioning keeps versions in the container's policy.
	expect(t, c.do(t, "PUT", "v", ownerToken, map[string]string{"X-Storage-Policy": "silver", "X-Versions-Enabled": "true"}, ""),
		http.StatusCreated, "put versioned silver container")
	q := &request{r: httptest.NewRequest(http.MethodHead, "/v1/"+account+"/v", nil), account: account, container: "v", transID: "tx-policy"}
	vr, err := c.proxy.reservedHead(q, account, versionsContainer("v"))
	if err != nil || vr == nil {
		t.Fatalf("versions container of v: %v, %v", vr, err)
	}
	if got := vr.Header.Get("X-Backend-Storage-Policy-Index"); got != "1" {
		t.Errorf("versions container of a silver container in policy %q, want 1", got)
	}

	// Account usage per policy arrives with the containers' reports.
	want := map[string]string{"Gold-Container-Count": "1", "Gold-Object-Count": "1", "Gold-Bytes-Used": "9",
		"Silver-Container-Count": "3", "Silver-Object-Count": "2", "Silver-Bytes-Used": "21"}
	var last http.Header
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		last = c.do(t, "HEAD", "", ownerToken, nil, "").header
		ok := true
		for k, v := range want {
			ok = ok && last.Get("X-Account-Storage-Policy-"+k) == v
		}
		if ok {
			break
		}
	}
	for k, v := range want {
		if got := last.Get("X-Account-Storage-Policy-" + k); got != v {
			t.Errorf("X-Account-Storage-Policy-%s = %q, want %q", k, got, v)
		}
	}

	// Emptied and deleted, the container can be made again in another
	// policy.
	for _, o := range []string{"s/o", "s/copy"} {
		expect(t, c.do(t, "DELETE", o, ownerToken, nil, ""), http.StatusNoContent, "delete "+o)
	}
	expect(t, c.do(t, "DELETE", "s", ownerToken, nil, ""), http.StatusNoContent, "delete silver container")
	expect(t, c.do(t, "PUT", "s", ownerToken, map[string]string{"X-Storage-Policy": "gold"}, ""), http.StatusCreated, "recreate in gold")
	if got := c.do(t, "HEAD", "s", ownerToken, nil, "").header.Get("X-Storage-Policy"); got != "gold" {
		t.Errorf("recreated container policy %q, want gold", got)
	}
}
