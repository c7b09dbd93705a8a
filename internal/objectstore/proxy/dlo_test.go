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
