package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
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
