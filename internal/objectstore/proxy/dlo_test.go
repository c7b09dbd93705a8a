package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestDynamicLargeObject(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "segs", ownerToken, nil, ""), http.StatusCreated, "segments container")
	expect(t, c.do(t, "PUT", "big", ownerToken, nil, ""), http.StatusCreated, "manifest container")
	for i, part := range []string{"aaaa", "bbbb", "cc"} {
		expect(t, c.do(t, "PUT", "segs/file/"+string(rune('0'+i)), ownerToken, nil, part), http.StatusCreated, "segment put")
	}
	expect(t, c.do(t, "PUT", "segs/other", ownerToken, nil, "zzz"), http.StatusCreated, "unrelated object")
	expect(t, c.do(t, "PUT", "big/file", ownerToken, map[string]string{"X-Object-Manifest": "segs/file/"}, ""), http.StatusCreated, "manifest put")
	r := c.do(t, "GET", "big/file", ownerToken, nil, "")
	if r.status != http.StatusOK || r.body != "aaaabbbbcc" || r.header.Get("Content-Length") != "10" {
		t.Fatalf("dlo get: %d %q %v", r.status, r.body, r.header)
	}
	if !strings.HasPrefix(r.header.Get("Etag"), `"`) {
		t.Fatalf("dlo etag %q", r.header.Get("Etag"))
	}
	r = c.do(t, "GET", "big/file", ownerToken, map[string]string{"Range": "bytes=3-8"}, "")
	if r.status != http.StatusPartialContent || r.body != "abbbbc" || r.header.Get("Content-Range") != "bytes 3-8/10" {
		t.Fatalf("dlo range: %d %q %v", r.status, r.body, r.header)
	}
	r = c.do(t, "HEAD", "big/file", ownerToken, nil, "")
	if r.header.Get("Content-Length") != "10" || r.header.Get("X-Object-Manifest") != "segs/file/" {
		t.Fatalf("dlo head %v", r.header)
	}
	r = c.do(t, "GET", "big/file?multipart-manifest=get", ownerToken, nil, "")
	if r.status != http.StatusOK || r.body != "" {
		t.Fatalf("manifest get: %d %q", r.status, r.body)
	}
	// Reading the object needs the right to list the segments.
	expect(t, c.do(t, "POST", "big", ownerToken, map[string]string{"X-Container-Read": ".r:*"}, ""), http.StatusNoContent, "public manifest container")
	expect(t, c.do(t, "GET", "big/file", "", nil, ""), http.StatusUnauthorized, "anonymous without segment listing")
	expect(t, c.do(t, "POST", "segs", ownerToken, map[string]string{"X-Container-Read": ".r:*,.rlistings"}, ""), http.StatusNoContent, "public segments")
	if r := c.do(t, "GET", "big/file", "", nil, ""); r.body != "aaaabbbbcc" {
		t.Fatalf("anonymous dlo get: %d %q", r.status, r.body)
	}
}

// TestDLOConditions checks that If-Match and If-None-Match apply to the
// DLO's ETag, not the manifest's, on GET and HEAD.
func TestDLOConditions(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "segs", ownerToken, nil, ""), http.StatusCreated, "segments container")
	expect(t, c.do(t, "PUT", "segs/p/1", ownerToken, nil, "aaaa"), http.StatusCreated, "segment put")
	expect(t, c.do(t, "PUT", "segs/man", ownerToken, map[string]string{"X-Object-Manifest": "segs/p/"}, "x"), http.StatusCreated, "manifest put")
	etag := c.do(t, "HEAD", "segs/man", ownerToken, nil, "").header.Get("Etag")
	for _, method := range []string{"GET", "HEAD"} {
		for _, tc := range []struct {
			hdr, val string
			want     int
		}{
			{"If-Match", etag, http.StatusOK},
			{"If-Match", `"not-` + strings.Trim(etag, `"`) + `"`, http.StatusPreconditionFailed},
			{"If-None-Match", etag, http.StatusNotModified},
			{"If-None-Match", `"nope"`, http.StatusOK},
		} {
			r := c.do(t, method, "segs/man", ownerToken, map[string]string{tc.hdr: tc.val}, "")
			expect(t, r, tc.want, method+" "+tc.hdr+": "+tc.val)
			if method == "GET" && tc.want == http.StatusOK && r.body != "aaaa" {
				t.Fatalf("%s %s: body %q", method, tc.hdr, r.body)
			}
		}
	}
}

// TestDLOCopyAndRange checks that copying a DLO stores its data (not
// another manifest), that a range within the manifest's own small body
// still applies to the large object, and that several ranges get the
// whole object, as from Swift.
func TestDLOCopyAndRange(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "segs", ownerToken, nil, ""), http.StatusCreated, "segments container")
	for _, s := range []string{"a", "b"} {
		expect(t, c.do(t, "PUT", "segs/p/"+s, ownerToken, nil, strings.Repeat(s, 5)), http.StatusCreated, "segment put")
	}
	expect(t, c.do(t, "PUT", "segs/man", ownerToken, map[string]string{"X-Object-Manifest": "segs/p/"}, "man-contents"), http.StatusCreated, "manifest put")
	r := c.do(t, "GET", "segs/man", ownerToken, map[string]string{"Range": "bytes=3-6"}, "")
	if r.status != http.StatusPartialContent || r.body != "aabb" {
		t.Fatalf("range within the manifest body: %d %q", r.status, r.body)
	}
	r = c.do(t, "GET", "segs/man", ownerToken, map[string]string{"Range": "bytes=0-1,4-5"}, "")
	if r.status != http.StatusOK || r.body != "aaaaabbbbb" {
		t.Fatalf("multiple ranges of a dlo: %d %q, want the whole object", r.status, r.body)
	}
	expect(t, c.do(t, "COPY", "segs/man", ownerToken, map[string]string{"Destination": "segs/copy"}, ""), http.StatusCreated, "copy")
	expect(t, c.do(t, "DELETE", "segs/p/b", ownerToken, nil, ""), http.StatusNoContent, "segment delete")
	r = c.do(t, "GET", "segs/copy", ownerToken, nil, "")
	if r.body != "aaaaabbbbb" || r.header.Get("X-Object-Manifest") != "" {
		t.Fatalf("copy of a dlo: %q %v", r.body, r.header)
	}
}
