package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// versionRow is a row of a ?versions listing.
type versionRow struct {
	Name        string `json:"name"`
	VersionID   string `json:"version_id"`
	IsLatest    bool   `json:"is_latest"`
	ContentType string `json:"content_type"`
	Bytes       int64  `json:"bytes"`
}

func listAllVersions(t *testing.T, c *cluster, container string) []versionRow {
	t.Helper()
	r := c.do(t, "GET", container+"?versions&format=json", ownerToken, nil, "")
	var out []versionRow
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("versions listing %d %q: %v", r.status, r.body, err)
	}
	return out
}

// TestObjectVersioning covers a versioned object's life as Swift's
// object_versioning middleware has it: overwrites keep versions, reads by
// version id, a delete marker, restoring an old version, deleting one, and
// the hidden versions container staying out of sight.
func TestObjectVersioning(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-Versions-Enabled": "true"}, ""), http.StatusCreated, "container")
	if r := c.do(t, "HEAD", "c", ownerToken, nil, ""); !trueValue(r.header.Get("X-Versions-Enabled")) {
		t.Fatalf("X-Versions-Enabled not shown: %v", r.header)
	}
	v1 := c.do(t, "PUT", "c/o", ownerToken, map[string]string{"Content-Type": "text/one"}, "one")
	expect(t, v1, http.StatusCreated, "v1")
	v2 := c.do(t, "PUT", "c/o", ownerToken, map[string]string{"Content-Type": "text/two"}, "two!")
	expect(t, v2, http.StatusCreated, "v2")
	id1, id2 := v1.header.Get(versionIDHeader), v2.header.Get(versionIDHeader)
	if id1 == "" || id2 == "" || id1 >= id2 {
		t.Fatalf("version ids %q, %q", id1, id2)
	}

	r := c.do(t, "GET", "c/o", ownerToken, nil, "")
	if r.body != "two!" || r.header.Get(versionIDHeader) != id2 ||
		r.header.Get("Content-Location") != "/v1/"+account+"/c/o?version-id="+id2 {
		t.Fatalf("current: %d %q %v", r.status, r.body, r.header)
	}
	if r := c.do(t, "GET", "c/o?version-id="+id1, ownerToken, nil, ""); r.body != "one" || r.header.Get("Content-Type") != "text/one" {
		t.Fatalf("v1 by id: %d %q %v", r.status, r.body, r.header)
	}
	// The plain listing shows the object as its data; the versions
	// listing every version, newest first.
	lr := c.do(t, "GET", "c?format=json", ownerToken, nil, "")
	var plain []map[string]any
	if err := json.Unmarshal([]byte(lr.body), &plain); err != nil || len(plain) != 1 || plain[0]["bytes"] != float64(4) || plain[0]["version_symlink"] != true {
		t.Fatalf("plain listing: %q", lr.body)
	}
	got := listAllVersions(t, c, "c")
	if len(got) != 2 || got[0].VersionID != id2 || !got[0].IsLatest || got[1].VersionID != id1 || got[1].IsLatest || got[1].Bytes != 3 {
		t.Fatalf("versions: %+v", got)
	}

	// A delete leaves a marker; reading the marker's version is 404.
	d := c.do(t, "DELETE", "c/o", ownerToken, nil, "")
	expect(t, d, http.StatusNoContent, "delete")
	marker := d.header.Get(versionIDHeader)
	expect(t, c.do(t, "GET", "c/o", ownerToken, nil, ""), http.StatusNotFound, "deleted")
	if r := c.do(t, "HEAD", "c/o?version-id="+marker, ownerToken, nil, ""); r.status != http.StatusNotFound || r.header.Get("Content-Type") != deleteMarkerType {
		t.Fatalf("marker: %d %v", r.status, r.header)
	}
	got = listAllVersions(t, c, "c")
	if len(got) != 3 || got[0].ContentType != deleteMarkerType || !got[0].IsLatest {
		t.Fatalf("versions after delete: %+v", got)
	}

	// PUT ?version-id restores v1 without a new version.
	expect(t, c.do(t, "PUT", "c/o?version-id="+id1, ownerToken, nil, ""), http.StatusCreated, "restore")
	if r := c.do(t, "GET", "c/o", ownerToken, nil, ""); r.body != "one" {
		t.Fatalf("restored: %d %q", r.status, r.body)
	}
	// Deleting the current version removes the link too.
	dv := c.do(t, "DELETE", "c/o?version-id="+id1, ownerToken, nil, "")
	expect(t, dv, http.StatusNoContent, "delete current version")
	if dv.header.Get("X-Object-Current-Version-Id") != nullVersion {
		t.Fatalf("current version after delete: %v", dv.header)
	}
	expect(t, c.do(t, "GET", "c/o", ownerToken, nil, ""), http.StatusNotFound, "link gone")
	if got := listAllVersions(t, c, "c"); len(got) != 2 {
		t.Fatalf("versions after version delete: %+v", got)
	}

	// The versions container is not listed, and the container cannot go
	// while versions remain.
	if r := c.do(t, "GET", "?format=json", ownerToken, nil, ""); strings.Contains(r.body, `\u0000`) || !strings.Contains(r.body, `"c"`) {
		t.Fatalf("account listing: %q", r.body)
	}
	expect(t, c.do(t, "DELETE", "c", ownerToken, nil, ""), http.StatusConflict, "container with versions")
	for _, v := range listAllVersions(t, c, "c") {
		expect(t, c.do(t, "DELETE", "c/o?version-id="+v.VersionID, ownerToken, nil, ""), http.StatusNoContent, "delete version")
	}
	expect(t, c.do(t, "DELETE", "c", ownerToken, nil, ""), http.StatusNoContent, "empty container")
}

// TestObjectVersioningRefusals covers the requests Swift refuses: legacy
// versioning and object versioning on one container, version ids on
// unversioned containers, bad ids, POSTs to versions, non-JSON version
// listings and reads of versions by non-owners.
func TestObjectVersioningRefusals(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "legacy", ownerToken, map[string]string{"X-Versions-Location": "arch"}, ""), http.StatusCreated, "legacy container")
	r := c.do(t, "POST", "legacy", ownerToken, map[string]string{"X-Versions-Enabled": "true"}, "")
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "legacy versioned writes") {
		t.Fatalf("enable on legacy: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-Versions-Enabled": "true", "X-Container-Read": "p1:u3"}, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "POST", "c", ownerToken, map[string]string{"X-Versions-Location": "arch"}, ""), http.StatusBadRequest, "legacy on versioned")
	v := c.do(t, "PUT", "c/o", ownerToken, nil, "data")
	id := v.header.Get(versionIDHeader)

	expect(t, c.do(t, "GET", "legacy/o?version-id="+id, ownerToken, nil, ""), http.StatusBadRequest, "unversioned container")
	expect(t, c.do(t, "GET", "c/o?version-id=junk", ownerToken, nil, ""), http.StatusBadRequest, "bad version id")
	expect(t, c.do(t, "POST", "c/o?version-id="+id, ownerToken, nil, ""), http.StatusBadRequest, "POST to a version")
	expect(t, c.do(t, "GET", "c?versions&format=xml", ownerToken, nil, ""), http.StatusNotAcceptable, "xml versions listing")
	expect(t, c.do(t, "GET", "c?versions&version_marker="+id, ownerToken, nil, ""), http.StatusBadRequest, "version_marker without marker")
	expect(t, c.do(t, "PUT", "c/o?version-id="+id, ownerToken, nil, "body"), http.StatusBadRequest, "restore with a body")

	// The reader may read the object by the container's ACL, but not a
	// version by id.
	expect(t, c.do(t, "GET", "c/o", readerToken, nil, ""), http.StatusOK, "reader, current")
	expect(t, c.do(t, "GET", "c/o?version-id="+id, readerToken, nil, ""), http.StatusForbidden, "reader, version")
	// Clients cannot name the reserved namespace.
	expect(t, c.do(t, "GET", "%00versions%00c?format=json", ownerToken, nil, ""), http.StatusPreconditionFailed, "reserved name")
}

// TestObjectVersioningSuspended checks that writes while versioning is
// off are "null" versions, kept as a version when it is back on.
func TestObjectVersioningSuspended(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-Versions-Enabled": "false"}, ""), http.StatusCreated, "container")
	expect(t, c.do(t, "PUT", "c/o", ownerToken, nil, "plain"), http.StatusCreated, "unversioned write")
	if got := listAllVersions(t, c, "c"); len(got) != 1 || got[0].VersionID != nullVersion || !got[0].IsLatest {
		t.Fatalf("null version: %+v", got)
	}
	expect(t, c.do(t, "POST", "c", ownerToken, map[string]string{"X-Versions-Enabled": "true"}, ""), http.StatusNoContent, "enable")
	expect(t, c.do(t, "PUT", "c/o", ownerToken, nil, "versioned"), http.StatusCreated, "versioned write")
	got := listAllVersions(t, c, "c")
	if len(got) != 2 || !got[0].IsLatest || got[1].IsLatest || got[1].VersionID == nullVersion {
		t.Fatalf("after overwrite: %+v", got)
	}
	if r := c.do(t, "GET", "c/o?version-id="+got[1].VersionID, ownerToken, nil, ""); r.body != "plain" {
		t.Fatalf("archived null version: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "GET", "c/o?version-id=null", ownerToken, nil, ""), http.StatusNotFound, "null while linked")
}

// TestAccountListingCountsVersions: an account listing adds a versioned
// container's hidden versions bytes to its row (the count stays that of
// current objects), and shows a versions container whose container is
// gone under that name with a count of 0, as Swift's object versioning
// does; prefix, marker and limit apply to both.
func TestAccountListingCountsVersions(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "a", ownerToken, nil, ""), http.StatusCreated, "plain container")
	expect(t, c.do(t, "PUT", "a/x", ownerToken, nil, "12345"), http.StatusCreated, "plain object")
	expect(t, c.do(t, "PUT", "v", ownerToken, map[string]string{"X-Versions-Enabled": "true"}, ""), http.StatusCreated, "versioned container")
	expect(t, c.do(t, "PUT", "v/o", ownerToken, nil, "one"), http.StatusCreated, "v1")
	expect(t, c.do(t, "PUT", "v/o", ownerToken, nil, "two!"), http.StatusCreated, "v2")

	type row struct {
		Name  string `json:"name"`
		Count int64  `json:"count"`
		Bytes int64  `json:"bytes"`
	}
	list := func(query string) []row {
		t.Helper()
		r := c.do(t, "GET", "/v1/"+account+"?format=json"+query, ownerToken, nil, "")
		var rows []row
		if err := json.Unmarshal([]byte(r.body), &rows); err != nil {
			t.Fatalf("account listing %s: %d %q: %v", query, r.status, r.body, err)
		}
		return rows
	}
	// The versions container holds both versions (3 + 4 bytes); the
	// container's own row counts its one current object's link (0 bytes).
	// Container servers report to the account asynchronously.
	var got []row
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = list(""); len(got) == 2 && got[1].Bytes == 7 && got[1].Count == 1 {
			break
		}
	}
	if len(got) != 2 || got[0] != (row{"a", 1, 5}) || got[1].Name != "v" || got[1].Count != 1 || got[1].Bytes != 7 {
		t.Fatalf("listing: %+v", got)
	}
	if got := list("&prefix=v"); len(got) != 1 || got[0].Bytes != 7 {
		t.Fatalf("prefix v: %+v", got)
	}
	if got := list("&marker=a"); len(got) != 1 || got[0].Name != "v" || got[0].Bytes != 7 {
		t.Fatalf("marker a: %+v", got)
	}
	if got := list("&limit=1"); len(got) != 1 || got[0].Name != "a" {
		t.Fatalf("limit 1: %+v", got)
	}
	if got := list("&reverse=true"); len(got) != 2 || got[0].Name != "v" || got[1].Name != "a" {
		t.Fatalf("reverse: %+v", got)
	}
	// Plain-text listings carry no sizes and are left alone.
	if r := c.do(t, "GET", "/v1/"+account, ownerToken, nil, ""); r.body != "a\nv\n" {
		t.Fatalf("plain listing: %q", r.body)
	}

	// An orphaned versions container (its container deleted behind the
	// middleware's back) shows under the container's name, count 0.
	q := &request{r: httptest.NewRequest(http.MethodPut, "/v1/"+account+"/gone", nil), account: account, container: "gone", transID: "tx-orphan"}
	if s := c.proxy.reservedContainerWrite(q, http.MethodPut, versionsContainer("gone")); s/100 != 2 {
		t.Fatalf("create orphan versions container: %d", s)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = list(""); len(got) == 3 {
			break
		}
	}
	if len(got) != 3 || got[1] != (row{"gone", 0, 0}) {
		t.Fatalf("with an orphan: %+v", got)
	}
}

// TestFailedVersioningEnableLeavesNothing: enabling versioning on a
// container whose write then fails (a POST to a container that does not
// exist) removes the versions container it made, as Swift does.
func TestFailedVersioningEnableLeavesNothing(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "POST", "nope", ownerToken, map[string]string{"X-Versions-Enabled": "true"}, ""), http.StatusNotFound, "POST to a missing container")
	q := &request{r: httptest.NewRequest(http.MethodHead, "/v1/"+account, nil), account: account, transID: "tx-check"}
	resp, err := c.proxy.reservedHead(q, account, versionsContainer("nope"))
	if err != nil || resp != nil {
		t.Fatalf("versions container of the failed enable: %v, %v", resp, err)
	}
	// Enabling it on a container that exists still works afterwards.
	expect(t, c.do(t, "PUT", "nope", ownerToken, map[string]string{"X-Versions-Enabled": "true"}, ""), http.StatusCreated, "PUT")
	if resp, err := c.proxy.reservedHead(q, account, versionsContainer("nope")); err != nil || resp == nil {
		t.Fatalf("versions container after a good enable: %v, %v", resp, err)
	}
}
