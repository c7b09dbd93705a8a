package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestObjectLifecycle(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "c1", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "c1", ownerToken, nil, ""), http.StatusAccepted, "container put again")
	r := c.do(t, "PUT", "c1/dir/obj.txt", ownerToken, map[string]string{"X-Object-Meta-Color": "blue"}, "hello world")
	expect(t, r, http.StatusCreated, "object put")
	if r.header.Get("Etag") != "5eb63bbbe01eeed093cb22bb8f5acdc3" {
		t.Fatalf("etag %q", r.header.Get("Etag"))
	}
	if r.header.Get("X-Trans-Id") == "" || r.header.Get("Last-Modified") == "" {
		t.Fatalf("missing headers: %v", r.header)
	}
	r = c.do(t, "GET", "c1/dir/obj.txt", ownerToken, nil, "")
	expect(t, r, http.StatusOK, "object get")
	if r.body != "hello world" || r.header.Get("X-Object-Meta-Color") != "blue" || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("get: %q %v", r.body, r.header)
	}
	for k := range r.header {
		if strings.HasPrefix(k, "X-Backend-") {
			t.Fatalf("backend header leaked: %s", k)
		}
	}
	expect(t, c.do(t, "POST", "c1/dir/obj.txt", ownerToken, map[string]string{"X-Object-Meta-Size": "big"}, ""), http.StatusAccepted, "object post")
	r = c.do(t, "HEAD", "c1/dir/obj.txt", ownerToken, nil, "")
	if r.header.Get("X-Object-Meta-Size") != "big" || r.header.Get("X-Object-Meta-Color") != "" {
		t.Fatalf("post replaces metadata: %v", r.header)
	}
	r = c.do(t, "HEAD", "c1", ownerToken, nil, "")
	expect(t, r, http.StatusNoContent, "container head")
	if r.header.Get("X-Container-Object-Count") != "1" || r.header.Get("X-Container-Bytes-Used") != "11" {
		t.Fatalf("container counts: %v", r.header)
	}
	expect(t, c.do(t, "DELETE", "c1", ownerToken, nil, ""), http.StatusConflict, "delete non-empty container")
	expect(t, c.do(t, "DELETE", "c1/dir/obj.txt", ownerToken, nil, ""), http.StatusNoContent, "object delete")
	r = c.do(t, "GET", "c1/dir/obj.txt", ownerToken, nil, "")
	expect(t, r, http.StatusNotFound, "get deleted")
	if r.body != "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>" {
		t.Fatalf("404 body %q", r.body)
	}
	expect(t, c.do(t, "DELETE", "c1/dir/obj.txt", ownerToken, nil, ""), http.StatusNotFound, "delete again")
	expect(t, c.do(t, "DELETE", "c1", ownerToken, nil, ""), http.StatusNoContent, "delete container")
	expect(t, c.do(t, "PUT", "c1/x", ownerToken, nil, "data"), http.StatusNotFound, "put into missing container")
}

func TestAccount(t *testing.T) {
	c := newCluster(t, nil)
	// Not created yet: an empty account, as with account_autocreate.
	r := c.do(t, "GET", "/v1/"+account, ownerToken, nil, "")
	expect(t, r, http.StatusNoContent, "account get before create")
	if r.header.Get("X-Account-Container-Count") != "0" {
		t.Fatalf("headers %v", r.header)
	}
	r = c.do(t, "GET", "/v1/"+account+"?format=json", ownerToken, nil, "")
	if r.status != http.StatusOK || r.body != "[]" {
		t.Fatalf("empty json listing: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "POST", "/v1/"+account, ownerToken, map[string]string{"X-Account-Meta-Team": "blue"}, ""), http.StatusNoContent, "account post autocreates")
	expect(t, c.do(t, "PUT", "a", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "b", ownerToken, nil, ""), http.StatusCreated, "container put")
	r = c.do(t, "HEAD", "/v1/"+account, ownerToken, nil, "")
	expect(t, r, http.StatusNoContent, "account head")
	if r.header.Get("X-Account-Meta-Team") != "blue" || r.header.Get("X-Account-Container-Count") != "2" {
		t.Fatalf("account headers %v", r.header)
	}
	expect(t, c.do(t, "POST", "/v1/"+account, ownerToken, map[string]string{"X-Remove-Account-Meta-Team": "x"}, ""), http.StatusNoContent, "remove meta")
	if r := c.do(t, "HEAD", "/v1/"+account, ownerToken, nil, ""); r.header.Get("X-Account-Meta-Team") != "" {
		t.Fatalf("meta not removed: %v", r.header)
	}
	expect(t, c.do(t, "PUT", "/v1/"+account, ownerToken, nil, ""), http.StatusMethodNotAllowed, "account put")
	expect(t, c.do(t, "DELETE", "/v1/"+account, ownerToken, nil, ""), http.StatusMethodNotAllowed, "account delete")
}

func TestInfo(t *testing.T) {
	c := newCluster(t, nil)
	r := c.do(t, "GET", "/info", "", nil, "")
	expect(t, r, http.StatusOK, "info")
	var info map[string]map[string]any
	if err := json.Unmarshal([]byte(r.body), &info); err != nil {
		t.Fatal(err)
	}
	sw := info["swift"]
	for k, want := range map[string]float64{
		"max_file_size": 5*1024*1024*1024 + 2, "max_meta_name_length": 128, "max_meta_value_length": 256,
		"max_meta_count": 90, "max_meta_overall_size": 4096, "max_header_size": 8192,
		"max_object_name_length": 1024, "container_listing_limit": 10000, "account_listing_limit": 10000,
		"max_account_name_length": 256, "max_container_name_length": 256,
	} {
		if sw[k] != want {
			t.Errorf("%s = %v, want %v", k, sw[k], want)
		}
	}
	if _, ok := info["keystoneauth"]; !ok {
		t.Error("keystoneauth missing from /info")
	}
}

func TestBadRequests(t *testing.T) {
	c := newCluster(t, nil)
	r := c.do(t, "GET", "/v2/"+account, ownerToken, nil, "")
	expect(t, r, http.StatusNotFound, "unknown version")
	expect(t, c.do(t, "PATCH", "c", ownerToken, nil, ""), http.StatusMethodNotAllowed, "patch container")
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	req := httptest.NewRequest("PUT", "/v1/"+account+"/c/o", strings.NewReader("body"))
	req.Header.Set("X-Auth-Token", ownerToken)
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	c.proxy.ServeHTTP(rec, req)
	if rec.Code != http.StatusLengthRequired || !strings.Contains(rec.Body.String(), "Content-Length header required.") {
		t.Fatalf("no length: %d %q", rec.Code, rec.Body.String())
	}
	r = c.do(t, "GET", "c/\xff", ownerToken, nil, "")
	if r.status != http.StatusPreconditionFailed || r.body != "Invalid UTF8 or contains NULL" {
		t.Fatalf("bad utf-8: %d %q", r.status, r.body)
	}
}
