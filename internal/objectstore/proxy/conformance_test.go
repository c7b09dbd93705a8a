package proxy

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
)

// TestStoragePolicyHeaders checks the policy headers Tempest's
// assertHeaders requires on every account and container HEAD and GET:
// per-policy account usage once the account has containers, and the
// container's policy by name; and the container's Last-Modified, which
// Swift's functional tests read.
func TestStoragePolicyHeaders(t *testing.T) {
	c := newCluster(t, nil)
	r := c.do(t, "HEAD", "/v1/"+account, ownerToken, nil, "")
	if v := r.header.Get("X-Account-Storage-Policy-Policy-0-Container-Count"); v != "" {
		t.Fatalf("policy usage on an account without containers: %q", v)
	}
	expect(t, c.do(t, "PUT", "a", ownerToken, nil, ""), http.StatusCreated, "container put")
	for _, method := range []string{"HEAD", "GET"} {
		r = c.do(t, method, "/v1/"+account, ownerToken, nil, "")
		for _, k := range []string{"Container-Count", "Object-Count", "Bytes-Used"} {
			if r.header.Get("X-Account-Storage-Policy-Policy-0-"+k) == "" {
				t.Errorf("account %s: no X-Account-Storage-Policy-Policy-0-%s in %v", method, k, r.header)
			}
		}
		if got := r.header.Get("X-Account-Storage-Policy-Policy-0-Container-Count"); got != "1" {
			t.Errorf("account %s: policy container count %q, want 1", method, got)
		}
		r = c.do(t, method, "a", ownerToken, nil, "")
		if got := r.header.Get("X-Storage-Policy"); got != "Policy-0" {
			t.Errorf("container %s: X-Storage-Policy %q, want Policy-0", method, got)
		}
		if _, err := http.ParseTime(r.header.Get("Last-Modified")); err != nil {
			t.Errorf("container %s: Last-Modified %q: %v", method, r.header.Get("Last-Modified"), err)
		}
	}
}

// TestContainerSyncTo checks Swift's validation of sync targets: with no
// realms configured, a realm target is refused, a full URL only for an
// allowed host; removing a target and setting only the sync key work.
func TestContainerSyncTo(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "a", ownerToken, nil, ""), http.StatusCreated, "container put")
	for _, to := range []string{"//realm1/name1/AUTH_p2/b", "http://10.1.2.3:8080/v1/AUTH_p2/b"} {
		expect(t, c.do(t, "POST", "a", ownerToken, map[string]string{"X-Container-Sync-To": to}, ""), http.StatusBadRequest, "sync to "+to)
		expect(t, c.do(t, "PUT", "b", ownerToken, map[string]string{"X-Container-Sync-To": to}, ""), http.StatusBadRequest, "put with sync to "+to)
	}
	expect(t, c.do(t, "POST", "a", ownerToken, map[string]string{"X-Container-Sync-To": "http://127.0.0.1:8080/v1/AUTH_p2/b"}, ""), http.StatusNoContent, "allowed host")
	expect(t, c.do(t, "POST", "a", ownerToken, map[string]string{"X-Container-Sync-Key": "secret", "X-Container-Sync-To": ""}, ""), http.StatusNoContent, "sync key only")
	if r := c.do(t, "HEAD", "a", ownerToken, nil, ""); r.header.Get("X-Container-Sync-Key") != "secret" || r.header.Get("X-Container-Sync-To") != "" {
		t.Fatalf("sync settings: %v", r.header)
	}
}

// TestUnderscoreHeaderNames checks that metadata sent with underscores in
// the header name is stored under the hyphenated name, as Swift does.
func TestUnderscoreHeaderNames(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "a", ownerToken, map[string]string{"X-Container-Meta-test_container_meta": "Meta1"}, ""), http.StatusCreated, "container put")
	r := c.do(t, "HEAD", "a", ownerToken, nil, "")
	if got := r.header.Get("X-Container-Meta-Test-Container-Meta"); got != "Meta1" {
		t.Fatalf("X-Container-Meta-Test-Container-Meta = %q, headers %v", got, r.header)
	}
}

// TestEmptyAccountACLClears checks that an account ACL granting nothing
// clears the stored one instead of being shown back as "{}".
func TestEmptyAccountACLClears(t *testing.T) {
	c := newCluster(t, nil)
	set := func(acl string) {
		t.Helper()
		expect(t, c.do(t, "POST", "/v1/"+account, ownerToken, map[string]string{"X-Account-Access-Control": acl}, ""), http.StatusNoContent, "set acl "+acl)
	}
	set(`{"read-only":["p2:u2"]}`)
	if got := c.do(t, "HEAD", "/v1/"+account, ownerToken, nil, "").header.Get("X-Account-Access-Control"); got == "" {
		t.Fatal("acl not stored")
	}
	for _, acl := range []string{`{}`, `{"admin":[]}`} {
		set(acl)
		if got := c.do(t, "HEAD", "/v1/"+account, ownerToken, nil, "").header.Get("X-Account-Access-Control"); got != "" {
			t.Fatalf("after %s: X-Account-Access-Control %q, want none", acl, got)
		}
	}
}

// TestProjectDomainID checks that an account auto-created for a project's
// own token records the project's domain and shows it on HEAD, as
// keystoneauth does.
func TestProjectDomainID(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.Tokens = apitest.Tokens{"t": {UserID: "u", ProjectID: "p1", ProjectDomainID: "dom1", Roles: []api.Role{{Name: "member"}}}}
	})
	expect(t, c.do(t, "PUT", "a", "t", nil, ""), http.StatusCreated, "container put creates the account")
	r := c.do(t, "HEAD", "/v1/"+account, "t", nil, "")
	if got := r.header.Get("X-Account-Project-Domain-Id"); got != "dom1" {
		t.Fatalf("X-Account-Project-Domain-Id %q, want dom1 (%v)", got, r.header)
	}
}

// TestCopyAnswersWithMetadata checks that COPY answers with the new
// object's user metadata, empty values included, and stores it.
func TestCopyAnswersWithMetadata(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "a", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "a/src", ownerToken, map[string]string{"X-Object-Meta-Src": "src_value"}, "data"), http.StatusCreated, "object put")
	r := c.do(t, "COPY", "a/src", ownerToken, map[string]string{"Destination": "a/dst", "X-Object-Meta-Test": "value", "X-Object-Meta-Empty": ""}, "")
	expect(t, r, http.StatusCreated, "copy")
	for _, h := range []http.Header{r.header, c.do(t, "HEAD", "a/dst", ownerToken, nil, "").header} {
		if h.Get("X-Object-Meta-Src") != "src_value" || h.Get("X-Object-Meta-Test") != "value" {
			t.Fatalf("metadata missing: %v", h)
		}
		if _, ok := h["X-Object-Meta-Empty"]; !ok {
			t.Fatalf("empty metadata missing: %v", h)
		}
	}
}

// TestSLOInlineData checks SLO manifests with inline data segments: the
// data is served between the object segments, counted in the size and
// ETag as Swift does, kept as {"data": ...} in the stored manifest, and
// a manifest of data segments alone is refused.
func TestSLOInlineData(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "c/seg", ownerToken, nil, "bbbb"), http.StatusCreated, "segment put")
	a, z := base64.StdEncoding.EncodeToString([]byte("aa")), base64.StdEncoding.EncodeToString([]byte("z"))
	manifest := `[{"data":"` + a + `"},{"path":"c/seg"},{"data":"` + z + `"}]`
	r := c.do(t, "PUT", "c/big?multipart-manifest=put", ownerToken, nil, manifest)
	expect(t, r, http.StatusCreated, "manifest put")
	h := md5.New()
	for _, part := range []string{"aa", "bbbb", "z"} {
		sum := md5.Sum([]byte(part))
		h.Write([]byte(hex.EncodeToString(sum[:])))
	}
	if want := `"` + hex.EncodeToString(h.Sum(nil)) + `"`; r.header.Get("Etag") != want {
		t.Fatalf("slo etag %q, want %s", r.header.Get("Etag"), want)
	}
	r = c.do(t, "GET", "c/big", ownerToken, nil, "")
	if r.body != "aabbbbz" || r.header.Get("Content-Length") != "7" {
		t.Fatalf("slo get: %q %v", r.body, r.header)
	}
	if r = c.do(t, "GET", "c/big", ownerToken, map[string]string{"Range": "bytes=1-2"}, ""); r.body != "ab" {
		t.Fatalf("slo range across a data segment: %d %q", r.status, r.body)
	}
	r = c.do(t, "GET", "c/big?multipart-manifest=get&format=raw", ownerToken, nil, "")
	if !strings.Contains(r.body, `{"data":"`+a+`"}`) {
		t.Fatalf("raw manifest %s", r.body)
	}
	expect(t, c.do(t, "PUT", "c/bad?multipart-manifest=put", ownerToken, nil, `[{"data":"`+a+`"}]`), http.StatusBadRequest, "data segments alone")
	expect(t, c.do(t, "PUT", "c/bad?multipart-manifest=put", ownerToken, nil, `[{"data":"***"},{"path":"c/seg"}]`), http.StatusBadRequest, "bad base64")
}

// TestSwiftEdgeCases checks behaviours Swift's functional suite pins
// down: a far-future X-Delete-At is clamped to ten digits, a malformed
// X-If-Delete-At is 400 even for a missing object, and an unknown storage
// policy name is refused.
func TestSwiftEdgeCases(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "a", ownerToken, map[string]string{"X-Storage-Policy": "policy-0"}, ""), http.StatusCreated, "container put with policy 0")
	expect(t, c.do(t, "PUT", "b", ownerToken, map[string]string{"X-Storage-Policy": "gold"}, ""), http.StatusBadRequest, "unknown policy")
	expect(t, c.do(t, "PUT", "a/far", ownerToken, map[string]string{"X-Delete-At": strings.Repeat("1", 100)}, "x"), http.StatusCreated, "far future delete-at")
	if got := c.do(t, "HEAD", "a/far", ownerToken, nil, "").header.Get("X-Delete-At"); got != "9999999999" {
		t.Fatalf("X-Delete-At %q, want 9999999999", got)
	}
	expect(t, c.do(t, "DELETE", "a/missing", ownerToken, map[string]string{"X-If-Delete-At": "bad"}, ""), http.StatusBadRequest, "bad X-If-Delete-At")
}

// TestSLOConditions checks that If-Match and If-None-Match apply to the
// SLO's ETag, not the manifest's.
func TestSLOConditions(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "c/seg", ownerToken, nil, "bbbb"), http.StatusCreated, "segment put")
	r := c.do(t, "PUT", "c/big?multipart-manifest=put", ownerToken, nil, `[{"path":"c/seg"}]`)
	expect(t, r, http.StatusCreated, "manifest put")
	etag := r.header.Get("Etag")
	for _, method := range []string{"GET", "HEAD"} {
		expect(t, c.do(t, method, "c/big", ownerToken, map[string]string{"If-Match": etag}, ""), http.StatusOK, method+" if-match")
		expect(t, c.do(t, method, "c/big", ownerToken, map[string]string{"If-Match": `"x"`}, ""), http.StatusPreconditionFailed, method+" if-match other")
		expect(t, c.do(t, method, "c/big", ownerToken, map[string]string{"If-None-Match": etag}, ""), http.StatusNotModified, method+" if-none-match")
	}
}

// TestSLOFirstSegmentMissing checks that a large object whose first
// segment to read is gone answers 409 before any byte is sent, as Swift's
// slo validates the first segment, while a read that starts in a segment
// still there is served.
func TestSLOFirstSegmentMissing(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "c/a", ownerToken, nil, "aaaa"), http.StatusCreated, "segment put")
	expect(t, c.do(t, "PUT", "c/b", ownerToken, nil, "bbbb"), http.StatusCreated, "segment put")
	expect(t, c.do(t, "PUT", "c/big?multipart-manifest=put", ownerToken, nil, `[{"path":"c/a"},{"path":"c/b"}]`), http.StatusCreated, "manifest put")
	expect(t, c.do(t, "DELETE", "c/a", ownerToken, nil, ""), http.StatusNoContent, "segment delete")
	expect(t, c.do(t, "GET", "c/big", ownerToken, nil, ""), http.StatusConflict, "get without its first segment")
	expect(t, c.do(t, "GET", "c/big", ownerToken, map[string]string{"Range": "bytes=0-1,5-6"}, ""), http.StatusConflict, "ranges starting in the missing segment")
	if r := c.do(t, "GET", "c/big", ownerToken, map[string]string{"Range": "bytes=5-6"}, ""); r.status != http.StatusPartialContent || r.body != "bb" {
		t.Fatalf("range within the segment left: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "HEAD", "c/big", ownerToken, nil, ""), http.StatusOK, "head reads no segment")
}

// TestSLOCopy checks that copying an SLO stores its data as a plain
// object, and copying with ?multipart-manifest=get stores another
// manifest that reads as the same large object.
func TestSLOCopy(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "c/s1", ownerToken, nil, "aaaa"), http.StatusCreated, "segment put")
	expect(t, c.do(t, "PUT", "c/s2", ownerToken, nil, "bb"), http.StatusCreated, "segment put")
	expect(t, c.do(t, "PUT", "c/big?multipart-manifest=put", ownerToken, nil, `[{"path":"c/s1"},{"path":"c/s2"}]`), http.StatusCreated, "manifest put")
	expect(t, c.do(t, "COPY", "c/big", ownerToken, map[string]string{"Destination": "c/data"}, ""), http.StatusCreated, "copy")
	expect(t, c.do(t, "COPY", "c/big?multipart-manifest=get", ownerToken, map[string]string{"Destination": "c/man"}, ""), http.StatusCreated, "copy manifest")
	r := c.do(t, "GET", "c/data", ownerToken, nil, "")
	if r.body != "aaaabb" || r.header.Get("X-Static-Large-Object") != "" {
		t.Fatalf("copy of an slo: %q %v", r.body, r.header)
	}
	r = c.do(t, "GET", "c/man", ownerToken, nil, "")
	if r.body != "aaaabb" || r.header.Get("X-Static-Large-Object") == "" {
		t.Fatalf("copy of an slo manifest: %q %v", r.body, r.header)
	}
	if r = c.do(t, "HEAD", "c/man", ownerToken, nil, ""); r.header.Get("Content-Length") != "6" {
		t.Fatalf("head of the copied manifest: %v", r.header)
	}
}

// TestSLOContainerListing checks an SLO's container listing row as
// Swift's functional suite does: bytes is the large object's total,
// hash the manifest body's MD5 and slo_etag the SLO's quoted ETag, for
// the manifest, a copy of it (with a new content type) and after a POST
// of a content type; a copy of the SLO's data is a plain row; and the
// manifest's GET and HEAD show no swift_bytes.
func TestSLOContainerListing(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "c/s1", ownerToken, nil, "aaaa"), http.StatusCreated, "segment put")
	expect(t, c.do(t, "PUT", "c/s2", ownerToken, nil, "bb"), http.StatusCreated, "segment put")
	expect(t, c.do(t, "PUT", "c/big?multipart-manifest=put", ownerToken, map[string]string{"Content-Type": "application/octet-stream"},
		`[{"path":"c/s1"},{"path":"c/s2"}]`), http.StatusCreated, "manifest put")
	manifest := c.do(t, "GET", "c/big?multipart-manifest=get", ownerToken, nil, "")
	head := c.do(t, "HEAD", "c/big", ownerToken, nil, "")
	sloEtag := head.header.Get("Etag")
	for _, r := range []resp{manifest, head, c.do(t, "GET", "c/big", ownerToken, nil, "")} {
		if ct := r.header.Get("Content-Type"); strings.Contains(ct, "swift_bytes") {
			t.Fatalf("manifest content type %q", ct)
		}
	}
	expect(t, c.do(t, "COPY", "c/big?multipart-manifest=get", ownerToken, map[string]string{"Destination": "c/man", "Content-Type": "image/jpeg"}, ""),
		http.StatusCreated, "copy manifest")
	expect(t, c.do(t, "COPY", "c/big", ownerToken, map[string]string{"Destination": "c/data"}, ""), http.StatusCreated, "copy data")
	rows := func() map[string]map[string]any {
		t.Helper()
		r := c.do(t, "GET", "c?format=json", ownerToken, nil, "")
		var items []map[string]any
		if err := json.Unmarshal([]byte(r.body), &items); err != nil {
			t.Fatalf("listing %q: %v", r.body, err)
		}
		out := map[string]map[string]any{}
		for _, it := range items {
			out[it["name"].(string)] = it
		}
		return out
	}
	check := func(what string, it map[string]any, ct string) {
		t.Helper()
		if it["bytes"] != 6.0 || it["content_type"] != ct || it["hash"] != manifest.header.Get("Etag") || it["slo_etag"] != sloEtag {
			t.Fatalf("%s row %v (manifest etag %s, slo etag %s)", what, it, manifest.header.Get("Etag"), sloEtag)
		}
	}
	got := rows()
	check("manifest", got["big"], "application/octet-stream")
	check("copied manifest", got["man"], "image/jpeg")
	if d := got["data"]; d["bytes"] != 6.0 || d["hash"] != fmt.Sprintf("%x", md5.Sum([]byte("aaaabb"))) || d["slo_etag"] != nil {
		t.Fatalf("copied data row %v", d)
	}
	expect(t, c.do(t, "POST", "c/big", ownerToken, map[string]string{"Content-Type": "image/png"}, ""), http.StatusAccepted, "post")
	if ct := c.do(t, "HEAD", "c/big", ownerToken, nil, "").header.Get("Content-Type"); ct != "image/png" {
		t.Fatalf("content type after post %q", ct)
	}
	check("manifest after post", rows()["big"], "image/png")
}

// TestTempURLLargeObjects checks that a temp URL for a DLO or SLO reads
// its segments without a token, from another container too, while a temp
// URL write cannot copy from a container its signer did not sign for.
func TestTempURLLargeObjects(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "POST", "", ownerToken, map[string]string{"X-Account-Meta-Temp-URL-Key": "secret"}, ""), http.StatusNoContent, "key")
	for _, cont := range []string{"c", "segs"} {
		expect(t, c.do(t, "PUT", cont, ownerToken, nil, ""), http.StatusCreated, "container")
	}
	expect(t, c.do(t, "PUT", "segs/p/1", ownerToken, nil, "one "), http.StatusCreated, "segment")
	expect(t, c.do(t, "PUT", "segs/p/2", ownerToken, nil, "two"), http.StatusCreated, "segment")
	expect(t, c.do(t, "PUT", "c/dlo", ownerToken, map[string]string{"X-Object-Manifest": "segs/p/"}, ""), http.StatusCreated, "dlo")
	expect(t, c.do(t, "PUT", "c/slo?multipart-manifest=put", ownerToken, nil, `[{"path":"segs/p/1"},{"path":"segs/p/2"}]`), http.StatusCreated, "slo")
	exp := fmt.Sprint(time.Now().Add(time.Hour).Unix())
	for _, obj := range []string{"dlo", "slo"} {
		path := "/v1/" + account + "/c/" + obj
		r := c.do(t, "GET", path+"?temp_url_sig="+sign("secret", "GET\n"+exp+"\n"+path)+"&temp_url_expires="+exp, "", nil, "")
		if r.status != http.StatusOK || r.body != "one two" {
			t.Fatalf("temp url get of the %s: %d %q", obj, r.status, r.body)
		}
	}
	path := "/v1/" + account + "/c/stolen"
	r := c.do(t, "PUT", path+"?temp_url_sig="+sign("secret", "PUT\n"+exp+"\n"+path)+"&temp_url_expires="+exp, "", map[string]string{"X-Copy-From": "segs/p/1"}, "")
	if r.status/100 == 2 {
		t.Fatalf("temp url put copied from another container: %d", r.status)
	}
}

// TestStaticWebRedirectAbsolute checks that a static web "directory"
// without its trailing slash, a container or a directory marker object,
// redirects to an absolute URL on the host the client used.
func TestStaticWebRedirectAbsolute(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "site", ownerToken, map[string]string{"X-Container-Read": ".r:*", "X-Container-Meta-Web-Index": "index.html"}, ""), http.StatusCreated, "container")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(c.url + "/v1/" + account + "/site")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if want := c.url + "/v1/" + account + "/site/"; res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != want {
		t.Fatalf("redirect: %d %q, want 301 %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	// A directory marker object with listings on (no index) redirects too.
	expect(t, c.do(t, "POST", "site", ownerToken, map[string]string{"X-Container-Read": ".r:*,.rlistings", "X-Remove-Container-Meta-Web-Index": "x", "X-Container-Meta-Web-Listings": "true"}, ""), http.StatusNoContent, "listings")
	expect(t, c.do(t, "PUT", "site/dir", ownerToken, map[string]string{"Content-Type": "application/directory"}, ""), http.StatusCreated, "directory marker")
	expect(t, c.do(t, "PUT", "site/dir/page", ownerToken, nil, "x"), http.StatusCreated, "object in the directory")
	res, err = client.Get(c.url + "/v1/" + account + "/site/dir")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if want := c.url + "/v1/" + account + "/site/dir/"; res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != want {
		t.Fatalf("directory marker: %d %q, want 301 %q", res.StatusCode, res.Header.Get("Location"), want)
	}
}

// TestCopyRange checks that a copy with a Range header copies those
// bytes only.
func TestCopyRange(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "a", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "a/src", ownerToken, nil, "test"), http.StatusCreated, "object put")
	expect(t, c.do(t, "COPY", "a/src", ownerToken, map[string]string{"Destination": "a/dst", "Range": "bytes=1-2"}, ""), http.StatusCreated, "copy")
	if r := c.do(t, "GET", "a/dst", ownerToken, nil, ""); r.body != "es" {
		t.Fatalf("ranged copy: %q, want \"es\"", r.body)
	}
}

// TestLongNameContentType checks that a name over the limit is refused
// with swob's HTML content type, as Swift's proxy answers it.
func TestLongNameContentType(t *testing.T) {
	c := newCluster(t, nil)
	r := c.do(t, "PUT", strings.Repeat("X", 2048), ownerToken, nil, "")
	expect(t, r, http.StatusBadRequest, "long container name")
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=UTF-8" {
		t.Fatalf("Content-Type %q", ct)
	}
}

// TestTempURLContainerKeyScope checks that a temp URL signed with a
// container's key reads a DLO whose segments are in that container, and
// not one whose segments are elsewhere.
func TestTempURLContainerKeyScope(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-Container-Meta-Temp-URL-Key": "ckey"}, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "other", ownerToken, nil, ""), http.StatusCreated, "container")
	for _, cont := range []string{"c", "other"} {
		expect(t, c.do(t, "PUT", cont+"/p/1", ownerToken, nil, "one"), http.StatusCreated, "segment")
		expect(t, c.do(t, "PUT", "c/dlo-"+cont, ownerToken, map[string]string{"X-Object-Manifest": cont + "/p/"}, ""), http.StatusCreated, "dlo")
	}
	exp := fmt.Sprint(time.Now().Add(time.Hour).Unix())
	get := func(obj string) resp {
		path := "/v1/" + account + "/c/" + obj
		return c.do(t, "GET", path+"?temp_url_sig="+sign("ckey", "GET\n"+exp+"\n"+path)+"&temp_url_expires="+exp, "", nil, "")
	}
	if r := get("dlo-c"); r.status != http.StatusOK || r.body != "one" {
		t.Fatalf("dlo inside the container: %d %q", r.status, r.body)
	}
	if r := get("dlo-other"); r.status/100 == 2 {
		t.Fatalf("dlo outside the container read with a container key: %d %q", r.status, r.body)
	}
}

// cacheProbe records whether the proxy's cached info for key was still
// there when the response status was written.
type cacheProbe struct {
	http.ResponseWriter
	p      *Proxy
	key    string
	cached bool
}

func (w *cacheProbe) WriteHeader(status int) {
	_, w.cached = w.p.infos.get(w.key)
	w.ResponseWriter.WriteHeader(status)
}

// TestMetadataWriteDropsCacheBeforeAnswering checks that a container or
// account POST forgets the cached info before the client gets its
// answer: a request the client sends right after must see the change
// (a static web redirect right after enabling listings did not).
func TestMetadataWriteDropsCacheBeforeAnswering(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "a", ownerToken, nil, ""), http.StatusCreated, "container put")
	for _, tc := range []struct{ path, key, hdr string }{
		{"/v1/" + account + "/a", account + "/a", "X-Container-Meta-Web-Listings"},
		{"/v1/" + account, account, "X-Account-Meta-Team"},
	} {
		c.proxy.infos.put(tc.key, info{exists: true}) // as an earlier request left it
		req := httptest.NewRequest("POST", tc.path, nil)
		req.Header.Set("X-Auth-Token", ownerToken)
		req.Header.Set(tc.hdr, "true")
		w := &cacheProbe{ResponseWriter: httptest.NewRecorder(), p: c.proxy, key: tc.key}
		c.proxy.ServeHTTP(w, req)
		if w.cached {
			t.Fatalf("%s: cached info still there when the POST was answered", tc.key)
		}
	}
}
