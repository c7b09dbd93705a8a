package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestSymlink covers a link's life: creating it, reading through it (and
// through a link to it), reading the link itself, the loop limit, a
// dangling link, POST to a link and the container listing.
func TestSymlink(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "c/target", ownerToken, map[string]string{"Content-Type": "text/plain"}, "hello"), http.StatusCreated, "target")
	link := func(name, target string, extra map[string]string) resp {
		h := map[string]string{"X-Symlink-Target": target}
		for k, v := range extra {
			h[k] = v
		}
		return c.do(t, "PUT", "c/"+name, ownerToken, h, "")
	}
	expect(t, link("l1", "c/target", nil), http.StatusCreated, "link")

	r := c.do(t, "GET", "c/l1", ownerToken, nil, "")
	if r.status != http.StatusOK || r.body != "hello" || !strings.HasSuffix(r.header.Get("Content-Location"), "/c/target") {
		t.Fatalf("follow: %d %q %v", r.status, r.body, r.header)
	}
	r = c.do(t, "HEAD", "c/l1?symlink=get", ownerToken, nil, "")
	if r.status != http.StatusOK || r.header.Get("X-Symlink-Target") != "c/target" || r.header.Get("Content-Type") != "application/symlink" {
		t.Fatalf("symlink=get: %d %v", r.status, r.header)
	}

	// Two hops are allowed, a third is not.
	expect(t, link("l2", "c/l1", nil), http.StatusCreated, "link to link")
	if r := c.do(t, "GET", "c/l2", ownerToken, nil, ""); r.status != http.StatusOK || r.body != "hello" {
		t.Fatalf("two hops: %d %q", r.status, r.body)
	}
	expect(t, link("l3", "c/l2", nil), http.StatusCreated, "third link")
	r = c.do(t, "GET", "c/l3", ownerToken, nil, "")
	if r.status != http.StatusConflict || !strings.Contains(r.body, "Too many levels of symbolic links, maximum allowed is 2") {
		t.Fatalf("loop: %d %q", r.status, r.body)
	}

	expect(t, link("dangling", "c/missing", nil), http.StatusCreated, "dangling link")
	r = c.do(t, "GET", "c/dangling", ownerToken, nil, "")
	if r.status != http.StatusNotFound || !strings.HasSuffix(r.header.Get("Content-Location"), "/c/missing") {
		t.Fatalf("dangling: %d %v", r.status, r.header)
	}

	// The POST applies to the link, whose answer points at the target
	// (read without following the redirect).
	req, err := http.NewRequest(http.MethodPost, c.url+"/v1/"+account+"/c/l1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", ownerToken)
	req.Header.Set("X-Object-Meta-A", "b")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTemporaryRedirect || res.Header.Get("Location") != "/v1/"+account+"/c/target" {
		t.Fatalf("post: %d %v", res.StatusCode, res.Header)
	}
	if r := c.do(t, "HEAD", "c/l1?symlink=get", ownerToken, nil, ""); r.header.Get("X-Object-Meta-A") != "b" {
		t.Fatalf("post did not apply to the link: %v", r.header)
	}

	r = c.do(t, "GET", "c?format=json&prefix=l1", ownerToken, nil, "")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.body), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("listing: %v %q", err, r.body)
	}
	if rows[0]["hash"] != md5OfEmpty || !strings.HasSuffix(rows[0]["symlink_path"].(string), "/c/target") {
		t.Fatalf("listing row %v", rows[0])
	}
}

// TestStaticSymlink checks that a static link records its target's ETag
// and that a mismatch, at PUT or after the target changed, is 409.
func TestStaticSymlink(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "c/target", ownerToken, nil, "hello"), http.StatusCreated, "target")
	etag := strings.Trim(c.do(t, "HEAD", "c/target", ownerToken, nil, "").header.Get("Etag"), `"`)
	bad := map[string]string{"X-Symlink-Target": "c/target", "X-Symlink-Target-Etag": "0123456789abcdef0123456789abcdef"}
	expect(t, c.do(t, "PUT", "c/bad", ownerToken, bad, ""), http.StatusConflict, "etag mismatch")
	missing := map[string]string{"X-Symlink-Target": "c/nope", "X-Symlink-Target-Etag": etag}
	expect(t, c.do(t, "PUT", "c/bad", ownerToken, missing, ""), http.StatusConflict, "missing target")

	good := map[string]string{"X-Symlink-Target": "c/target", "X-Symlink-Target-Etag": etag}
	expect(t, c.do(t, "PUT", "c/static", ownerToken, good, ""), http.StatusCreated, "static link")
	r := c.do(t, "HEAD", "c/static?symlink=get", ownerToken, nil, "")
	if r.header.Get("X-Symlink-Target-Etag") != etag || r.header.Get("X-Symlink-Target-Bytes") != "5" {
		t.Fatalf("static link headers %v", r.header)
	}
	if r := c.do(t, "GET", "c/static", ownerToken, nil, ""); r.body != "hello" {
		t.Fatalf("static follow: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "PUT", "c/target", ownerToken, nil, "changed"), http.StatusCreated, "overwrite target")
	r = c.do(t, "GET", "c/static", ownerToken, nil, "")
	if r.status != http.StatusConflict || !strings.Contains(r.body, "does not match X-Symlink-Target-Etag header") {
		t.Fatalf("changed target: %d %q", r.status, r.body)
	}
}

// TestSymlinkInvalid checks the requests Swift refuses.
func TestSymlinkInvalid(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container")
	for _, tc := range []struct {
		hdr  map[string]string
		body string
		want int
		msg  string
	}{
		{map[string]string{"X-Symlink-Target": "c/o"}, "data", http.StatusBadRequest, "Symlink requests require a zero byte body"},
		{map[string]string{"X-Symlink-Target": "/c/o"}, "", http.StatusPreconditionFailed, "X-Symlink-Target header must be of the form"},
		{map[string]string{"X-Symlink-Target": "nocontainer"}, "", http.StatusPreconditionFailed, "X-Symlink-Target header must be of the form"},
		{map[string]string{"X-Symlink-Target": "c/link"}, "", http.StatusBadRequest, "Symlink cannot target itself"},
		{map[string]string{"X-Symlink-Target": "c/o", "X-Symlink-Target-Account": "a/b"}, "", http.StatusPreconditionFailed, "Account name cannot contain slashes"},
		{map[string]string{"X-Symlink-Target": "c/o", "X-Symlink-Target-Etag": `a;b`}, "", http.StatusBadRequest, "Bad X-Symlink-Target-Etag format"},
	} {
		r := c.do(t, "PUT", "c/link", ownerToken, tc.hdr, tc.body)
		if r.status != tc.want || !strings.Contains(r.body, tc.msg) {
			t.Errorf("%v: %d %q, want %d %q", tc.hdr, r.status, r.body, tc.want, tc.msg)
		}
	}
	r := c.do(t, "POST", "c/link", ownerToken, map[string]string{"X-Symlink-Target": "c/o"}, "")
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "A PUT request is required") {
		t.Fatalf("post with target: %d %q", r.status, r.body)
	}
}
