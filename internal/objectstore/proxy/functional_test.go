package proxy

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Behaviours Swift's own functional suite checks (test/functional of
// Swift 2.30.1), each named after the tests it covers.

// test_slo_put_heartbeating, test_slo_if_none_match_put,
// test_slo_get_raw_the_manifest_with_details_from_server,
// test_slo_multi_ranged_get.
func TestSLOFunctionalDetails(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "c/s1", ownerToken, nil, "aaaa"), http.StatusCreated, "segment")
	sum := md5.Sum([]byte("aaaa"))
	manifest := fmt.Sprintf(`[{"path":"/c/s1","etag":"%s","size_bytes":4},{"path":"/c/s1"}]`, hex.EncodeToString(sum[:]))

	expect(t, c.do(t, "PUT", "c/m?multipart-manifest=put", ownerToken, map[string]string{"If-None-Match": `"x"`}, manifest), http.StatusBadRequest, "If-None-Match not *")
	expect(t, c.do(t, "PUT", "c/m?multipart-manifest=put", ownerToken, map[string]string{"If-None-Match": "*"}, manifest), http.StatusCreated, "If-None-Match * on a new name")
	expect(t, c.do(t, "PUT", "c/m?multipart-manifest=put", ownerToken, map[string]string{"If-None-Match": "*"}, manifest), http.StatusPreconditionFailed, "If-None-Match * on an existing name")

	r := c.do(t, "PUT", "c/hb?multipart-manifest=put&heartbeat=on", ownerToken, map[string]string{"Accept": "application/json"}, manifest)
	head, body, _ := strings.Cut(r.body, "\r\n\r\n")
	var out map[string]any
	if r.status != http.StatusAccepted || strings.TrimSpace(head) != "" || json.Unmarshal([]byte(body), &out) != nil ||
		out["Response Status"] != "201 Created" || out["Etag"] == nil || out["Last Modified"] == nil {
		t.Fatalf("heartbeat put: %d %q", r.status, r.body)
	}
	r = c.do(t, "PUT", "c/hb?multipart-manifest=put&heartbeat=on", ownerToken, nil, `[{"path":"nope/seg"}]`)
	if r.status != http.StatusAccepted || !strings.HasSuffix(r.body, "Response Status: 400 Bad Request\nErrors:\nnope/seg, 404 Not Found\n") ||
		!strings.Contains(r.body, "Response Body: Bad Request\n") {
		t.Fatalf("heartbeat put with a missing segment: %d %q", r.status, r.body)
	}

	r = c.do(t, "GET", "c/m?multipart-manifest=get&format=raw", ownerToken, nil, "")
	if r.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("raw manifest content type %q", r.header.Get("Content-Type"))
	}
	if r = c.do(t, "GET", "c/m?multipart-manifest=get", ownerToken, nil, ""); !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("stored manifest content type %q", r.header.Get("Content-Type"))
	}
	// The ranges lie past the manifest's own (short) body: the parts
	// still carry the large object's content type.
	r = c.do(t, "GET", "c/m", ownerToken, map[string]string{"Range": "bytes=0-0,7-7"}, "")
	if r.status != http.StatusPartialContent || strings.Count(r.body, "Content-Type: application/octet-stream\r\n") != 2 {
		t.Fatalf("multi-range parts: %d %q", r.status, r.body)
	}
}

// test_slo_referer_on_segment_container, test_dlo_referer_on_segment_container.
func TestLargeObjectReferrerSegments(t *testing.T) {
	c := newCluster(t, nil)
	acl := map[string]string{"X-Container-Read": ".r:*.example.com,.rlistings"}
	expect(t, c.do(t, "PUT", "m", ownerToken, acl, ""), http.StatusCreated, "manifest container")
	expect(t, c.do(t, "PUT", "s", ownerToken, nil, ""), http.StatusCreated, "segment container")
	expect(t, c.do(t, "PUT", "s/1", ownerToken, nil, "ab"), http.StatusCreated, "segment")
	expect(t, c.do(t, "PUT", "m/slo?multipart-manifest=put", ownerToken, nil, `[{"path":"/s/1"}]`), http.StatusCreated, "slo")
	expect(t, c.do(t, "PUT", "m/dlo", ownerToken, map[string]string{"X-Object-Manifest": "s/"}, ""), http.StatusCreated, "dlo")
	ref := map[string]string{"Referer": "http://blah.example.com"}
	expect(t, c.do(t, "GET", "m/slo", readerToken, ref, ""), http.StatusConflict, "slo with unreadable segments")
	expect(t, c.do(t, "GET", "m/dlo", readerToken, ref, ""), http.StatusForbidden, "dlo with unlistable segments")
	expect(t, c.do(t, "POST", "s", ownerToken, acl, ""), http.StatusNoContent, "segment container acl")
	for _, o := range []string{"m/slo", "m/dlo"} {
		if r := c.do(t, "GET", o, readerToken, ref, ""); r.status != http.StatusOK || r.body != "ab" {
			t.Fatalf("%s by referrer: %d %q", o, r.status, r.body)
		}
	}
}

// test_PUT_manifest_access: temp URL writes may not name other objects.
func TestTempURLRefusesManifestHeaders(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "POST", "", ownerToken, map[string]string{"X-Account-Meta-Temp-URL-Key": "secret"}, ""), http.StatusNoContent, "key")
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container")
	exp := fmt.Sprint(time.Now().Add(time.Hour).Unix())
	path := "/v1/" + account + "/c/o"
	for _, m := range []string{"PUT", "POST"} {
		url := path + "?temp_url_sig=" + sign("secret", m+"\n"+exp+"\n"+path) + "&temp_url_expires=" + exp
		r := c.do(t, m, url, "", map[string]string{"X-Object-Manifest": "other/foo"}, "")
		if r.status != http.StatusBadRequest || r.body != "The header 'X-Object-Manifest' is not allowed in this tempurl" {
			t.Fatalf("%s with X-Object-Manifest: %d %q", m, r.status, r.body)
		}
	}
}

// test_cross_account_acl_names_with_project_in_non_default_domain: a
// name in a container ACL does not match when the account's project is
// in another domain.
func TestACLNamesOnlyInDefaultDomain(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-Container-Read": "two:bob"}, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "c/o", ownerToken, nil, "x"), http.StatusCreated, "object")
	id := *tokens[otherToken]
	id.ProjectDomainID, id.UserDomainID = "default", "default"
	tokens["default-bob"] = &id
	defer delete(tokens, "default-bob")
	expect(t, c.do(t, "GET", "c/o", "default-bob", nil, ""), http.StatusOK, "name in the default domain")
	// An account records its project's domain when it is created; here
	// the cached account info stands in for one made in another domain.
	expect(t, c.do(t, "PUT", "/v1/AUTH_p3/c", resellerToken, map[string]string{"X-Container-Read": "two:bob"}, ""), http.StatusCreated, "container there")
	c.proxy.infos.put("AUTH_p3", info{exists: true, header: http.Header{projectDomainSysmeta: {"d-other"}}})
	expect(t, c.do(t, "GET", "/v1/AUTH_p3/c", "default-bob", nil, ""), http.StatusForbidden, "name in another domain")
}

// test_slo_copy_the_manifest_account: a manifest copied (not its data)
// to another account must find readable segments of the same names there.
func TestSLOManifestCopyToAccount(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "c/s1", ownerToken, nil, "aaaa"), http.StatusCreated, "segment")
	expect(t, c.do(t, "PUT", "c/m?multipart-manifest=put", ownerToken, nil, `[{"path":"/c/s1"}]`), http.StatusCreated, "manifest")
	other := "/v1/AUTH_p2/"
	expect(t, c.do(t, "PUT", other+"dst", otherToken, map[string]string{"X-Container-Write": "p1:u1"}, ""), http.StatusCreated, "destination")
	copyTo := map[string]string{"Destination": "dst/m", "Destination-Account": "AUTH_p2"}
	r := c.do(t, "COPY", "c/m?multipart-manifest=get", ownerToken, copyTo, "")
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "/c/s1, 403 Forbidden") {
		t.Fatalf("copy without readable segments: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "PUT", other+"c", otherToken, map[string]string{"X-Container-Read": "p1:u1"}, ""), http.StatusCreated, "segment container there")
	if r = c.do(t, "COPY", "c/m?multipart-manifest=get", ownerToken, copyTo, ""); r.status != http.StatusBadRequest || !strings.Contains(r.body, "/c/s1, 404 Not Found") {
		t.Fatalf("copy without the segments: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "PUT", other+"c/s1", otherToken, nil, "aaaa"), http.StatusCreated, "segment there")
	expect(t, c.do(t, "COPY", "c/m?multipart-manifest=get", ownerToken, copyTo, ""), http.StatusCreated, "copy")
	if r = c.do(t, "GET", other+"dst/m", otherToken, nil, ""); r.body != "aaaa" {
		t.Fatalf("copied manifest reads %d %q", r.status, r.body)
	}
}
