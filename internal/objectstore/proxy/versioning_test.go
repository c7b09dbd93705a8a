package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// TestVersionedWritesHistoryMode covers what Swift's functional suite
// checks beyond the basics: the location is shown as the client set it
// (URL-encoded), a history-mode DELETE leaves a delete marker, stack mode
// pops past such a marker, and a user allowed only by the versioned
// container's write ACL may overwrite (the archive is written for it).
func TestVersionedWritesHistoryMode(t *testing.T) {
	c := newCluster(t, nil)
	loc := url.PathEscape("vers ☃")
	expect(t, c.do(t, "PUT", loc, ownerToken, map[string]string{"X-Container-Write": ""}, ""), http.StatusCreated, "versions container")
	expect(t, c.do(t, "PUT", "c", ownerToken, map[string]string{"X-History-Location": loc, "X-Container-Write": "p2:u2"}, ""), http.StatusCreated, "container")
	if r := c.do(t, "HEAD", "c", ownerToken, nil, ""); r.header.Get("X-History-Location") != loc {
		t.Fatalf("history location shown as %q, want %q", r.header.Get("X-History-Location"), loc)
	}
	expect(t, c.do(t, "PUT", "c/o", otherToken, nil, "v1"), http.StatusCreated, "v1 by write ACL")
	expect(t, c.do(t, "PUT", "c/o", otherToken, nil, "v2"), http.StatusCreated, "v2 by write ACL")
	expect(t, c.do(t, "DELETE", "c/o", ownerToken, nil, ""), http.StatusNoContent, "history delete")
	list := func() []versionEntry {
		t.Helper()
		r := c.do(t, "GET", loc+"?format=json", ownerToken, nil, "")
		var out []versionEntry
		if err := json.Unmarshal([]byte(r.body), &out); err != nil {
			t.Fatalf("listing %d %q: %v", r.status, r.body, err)
		}
		return out
	}
	got := list()
	if len(got) != 3 || got[2].ContentType != deleteMarkerType {
		t.Fatalf("versions after history delete: %+v", got)
	}
	// Switched to stack mode, a DELETE of the deleted object restores v2
	// and removes it and the marker from the history.
	expect(t, c.do(t, "POST", "c", ownerToken, map[string]string{"X-Versions-Location": loc}, ""), http.StatusNoContent, "stack mode")
	expect(t, c.do(t, "DELETE", "c/o", ownerToken, nil, ""), http.StatusNoContent, "stack delete")
	if r := c.do(t, "GET", "c/o", ownerToken, nil, ""); r.body != "v2" {
		t.Fatalf("restored %d %q, want v2", r.status, r.body)
	}
	if got := list(); len(got) != 1 {
		t.Fatalf("versions after pop: %+v", got)
	}
	expect(t, c.do(t, "POST", "c", ownerToken, map[string]string{"X-Versions-Location": "a/b"}, ""), http.StatusPreconditionFailed, "slash in location")
}
