package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
)

func twoPolicies(t testing.TB) *policy.Policies {
	t.Helper()
	ps, err := policy.New([]policy.Policy{{Index: 0, Name: "gold", Default: true}, {Index: 1, Name: "silver"}})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// A container keeps the policy it was created with: an explicit other
// index is 409 naming its policy, the default index applies only to new
// containers, and a deleted container is made again in the new policy.
func TestContainerPolicy(t *testing.T) {
	n := newPolicyNode(t, twoPolicies(t))
	url := n.contURL + "/sda/1/a/c"
	put := func(h map[string]string) resp {
		h["X-Timestamp"] = n.ts()
		return do(t, "PUT", url, h, "")
	}
	policyOf := func() string { return do(t, "HEAD", url, nil, "").header.Get("X-Backend-Storage-Policy-Index") }
	expectStatus(t, put(map[string]string{"X-Backend-Storage-Policy-Index": "1"}), 201, "create in policy 1")
	r := put(map[string]string{"X-Backend-Storage-Policy-Index": "0"})
	expectStatus(t, r, 409, "change policy")
	if got := r.header.Get("X-Backend-Storage-Policy-Index"); got != "1" {
		t.Errorf("409 names policy %q, want 1", got)
	}
	expectStatus(t, put(map[string]string{"X-Backend-Storage-Policy-Default": "0"}), 202, "put with the default")
	expectStatus(t, put(map[string]string{"X-Backend-Storage-Policy-Index": "1"}), 202, "put naming its own policy")
	if got := policyOf(); got != "1" {
		t.Fatalf("policy %q after PUTs, want 1", got)
	}
	expectStatus(t, put(map[string]string{"X-Backend-Storage-Policy-Index": "7"}), 400, "unknown policy index")
	expectStatus(t, do(t, "DELETE", url, map[string]string{"X-Timestamp": n.ts()}, ""), 204, "delete")
	expectStatus(t, put(map[string]string{"X-Backend-Storage-Policy-Index": "0"}), 201, "recreate in policy 0")
	if got := policyOf(); got != "0" {
		t.Fatalf("recreated container in policy %q, want 0", got)
	}
	expectStatus(t, do(t, "PUT", n.contURL+"/sda/1/a/d", map[string]string{"X-Timestamp": n.ts(),
		"X-Backend-Storage-Policy-Default": "1"}, ""), 201, "new container with a default")
	if got := do(t, "HEAD", n.contURL+"/sda/1/a/d", nil, "").header.Get("X-Backend-Storage-Policy-Index"); got != "1" {
		t.Fatalf("new container took policy %q, want the default 1", got)
	}
	// Without either header, the node's default policy.
	pols, err := policy.New([]policy.Policy{{Index: 0, Name: "gold"}, {Index: 1, Name: "silver", Default: true}})
	if err != nil {
		t.Fatal(err)
	}
	m := newPolicyNode(t, pols)
	expectStatus(t, do(t, "PUT", m.contURL+"/sda/1/a/e", map[string]string{"X-Timestamp": m.ts()}, ""), 201, "new container, no policy headers")
	if got := do(t, "HEAD", m.contURL+"/sda/1/a/e", nil, "").header.Get("X-Backend-Storage-Policy-Index"); got != "1" {
		t.Fatalf("container without policy headers in policy %q, want the node's default 1", got)
	}
}

// Objects of policy N live in objects-N, policy 0's where they always
// were; the same name in two policies is two objects; an unknown index
// is 503; failed container updates queue in async_pending-N and the
// updater replays them; the auditor walks every policy's dirs.
func TestObjectPolicyDirs(t *testing.T) {
	n := newPolicyNode(t, twoPolicies(t))
	n.putContainer(t, "a", "c")
	path := n.objURL + "/sda/3/a/c/o"
	put := func(pol, body string) {
		t.Helper()
		h := map[string]string{"X-Timestamp": n.ts(), "Content-Type": "text/plain", "X-Backend-Storage-Policy-Index": pol}
		for k, v := range n.containerHeaders() {
			h[k] = v
		}
		expectStatus(t, do(t, "PUT", path, h, body), 201, "put in policy "+pol)
	}
	n.contDown.Store(true) // updates fail and queue
	put("0", "zero")
	put("1", "one!")
	hash := hashPath("pre", "suf", "a", "c", "o")
	for dir, want := range map[string]int{"objects": 1, "objects-1": 1} {
		if got := len(listDir(t, hashDir(n.dev, dir, "3", hash))); got != want {
			t.Errorf("%s: %d files, want %d", dir, got, want)
		}
	}
	for pol, want := range map[string]string{"0": "zero", "1": "one!", "": "zero"} {
		h := map[string]string{}
		if pol != "" {
			h["X-Backend-Storage-Policy-Index"] = pol
		}
		if r := do(t, "GET", path, h, ""); r.status != 200 || r.body != want {
			t.Errorf("GET policy %q: %d %q, want %q", pol, r.status, r.body, want)
		}
	}
	expectStatus(t, do(t, "GET", path, map[string]string{"X-Backend-Storage-Policy-Index": "5"}, ""), 503, "unknown policy")
	for _, dir := range []string{"async_pending", "async_pending-1"} {
		if got := listTree(t, filepath.Join(n.dev, dir)); len(got) != 1 {
			t.Errorf("%s holds %v, want one queued update", dir, got)
		}
	}
	n.contDown.Store(false)
	if st := n.obj.UpdateOnce(context.Background()); st.Sent != 2 {
		t.Errorf("updater sent %d, want 2 (one per policy)", st.Sent)
	}
	st, err := n.obj.AuditOnce(context.Background())
	if err != nil || st.Files != 2 {
		t.Errorf("auditor checked %d files (err %v), want 2", st.Files, err)
	}
	// A corrupt policy-1 object is quarantined under its policy's name.
	data := listDir(t, hashDir(n.dev, "objects-1", "3", hash))[0]
	if err := os.WriteFile(filepath.Join(hashDir(n.dev, "objects-1", "3", hash), data), []byte("bad!"), 0o640); err != nil {
		t.Fatal(err)
	}
	if st, _ := n.obj.AuditOnce(context.Background()); st.Quarantined != 1 {
		t.Fatalf("auditor quarantined %d, want 1", st.Quarantined)
	}
	if got := listDir(t, filepath.Join(n.dev, quarantineDir, "objects-1")); len(got) != 1 {
		t.Errorf("quarantined/objects-1 holds %v", got)
	}
}

// An account reports usage per policy from its container rows.
func TestAccountUsagePerPolicy(t *testing.T) {
	n := newPolicyNode(t, twoPolicies(t))
	n.putAccount(t, "a")
	for _, row := range []struct{ name, pol, objs, bytes string }{
		{"c1", "0", "2", "10"}, {"c2", "1", "3", "30"}, {"c3", "1", "1", "5"},
	} {
		expectStatus(t, do(t, "PUT", n.acctURL+"/sda/2/a/"+row.name, map[string]string{
			"X-Put-Timestamp": n.ts(), "X-Delete-Timestamp": "0", "X-Object-Count": row.objs, "X-Bytes-Used": row.bytes,
			"X-Backend-Storage-Policy-Index": row.pol,
		}, ""), 201, "container row "+row.name)
	}
	h := do(t, "HEAD", n.acctURL+"/sda/2/a", nil, "").header
	for k, want := range map[string]string{
		"Gold-Container-Count": "1", "Gold-Object-Count": "2", "Gold-Bytes-Used": "10",
		"Silver-Container-Count": "2", "Silver-Object-Count": "4", "Silver-Bytes-Used": "35",
	} {
		if got := h.Get("X-Account-Storage-Policy-" + k); got != want {
			t.Errorf("X-Account-Storage-Policy-%s = %q, want %q", k, got, want)
		}
	}
}
