package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestContainerListings(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "list", ownerToken, nil, ""), http.StatusCreated, "container put")
	for _, n := range []string{"a/1", "a/2", "b", "c/x/y", "d"} {
		expect(t, c.do(t, "PUT", "list/"+n, ownerToken, map[string]string{"Content-Type": "text/plain"}, n), http.StatusCreated, "put "+n)
	}
	cases := []struct{ query, want string }{
		{"", "a/1\na/2\nb\nc/x/y\nd\n"},
		{"?format=plain", "a/1\na/2\nb\nc/x/y\nd\n"},
		{"?prefix=a/", "a/1\na/2\n"},
		{"?delimiter=/", "a/\nb\nc/\nd\n"},
		{"?prefix=c/&delimiter=/", "c/x/\n"},
		{"?marker=b", "c/x/y\nd\n"},
		{"?end_marker=b", "a/1\na/2\n"},
		{"?limit=2", "a/1\na/2\n"},
		{"?reverse=true&limit=2", "d\nc/x/y\n"},
		{"?marker=a/2&end_marker=d", "b\nc/x/y\n"},
	}
	for _, tc := range cases {
		r := c.do(t, "GET", "list"+tc.query, ownerToken, nil, "")
		expect(t, r, http.StatusOK, "listing "+tc.query)
		if r.body != tc.want {
			t.Errorf("listing %q = %q, want %q", tc.query, r.body, tc.want)
		}
	}
	r := c.do(t, "GET", "list?format=json&prefix=a/", ownerToken, nil, "")
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("json content type %q", r.header.Get("Content-Type"))
	}
	var items []struct {
		Name         string `json:"name"`
		Hash         string `json:"hash"`
		Bytes        int64  `json:"bytes"`
		ContentType  string `json:"content_type"`
		LastModified string `json:"last_modified"`
	}
	if err := json.Unmarshal([]byte(r.body), &items); err != nil {
		t.Fatalf("json listing %q: %v", r.body, err)
	}
	if len(items) != 2 || items[0].Name != "a/1" || items[0].Bytes != 3 || items[0].Hash == "" || items[0].ContentType != "text/plain" {
		t.Fatalf("json listing %+v", items)
	}
	r = c.do(t, "GET", "list?format=json&delimiter=/", ownerToken, nil, "")
	if !strings.Contains(r.body, `{"subdir":"a/"}`) {
		t.Fatalf("json subdir: %s", r.body)
	}
	r = c.do(t, "GET", "list?format=xml&prefix=b", ownerToken, nil, "")
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/xml") ||
		!strings.Contains(r.body, `<container name="list"><object><name>b</name>`) {
		t.Fatalf("xml listing %q", r.body)
	}
	r = c.do(t, "GET", "list", ownerToken, map[string]string{"Accept": "application/json"}, "")
	if !strings.HasPrefix(r.body, "[") {
		t.Fatalf("Accept json: %q", r.body)
	}
	r = c.do(t, "GET", "list?limit=10001", ownerToken, nil, "")
	expect(t, r, http.StatusPreconditionFailed, "limit over constraint")
	if r.body != "Maximum limit is 10000" {
		t.Fatalf("body %q", r.body)
	}
	expect(t, c.do(t, "GET", "list?prefix=zzz", ownerToken, nil, ""), http.StatusNoContent, "empty plain listing")
}

func TestAccountListings(t *testing.T) {
	c := newCluster(t, nil)
	for _, n := range []string{"alpha", "beta", "gamma"} {
		expect(t, c.do(t, "PUT", n, ownerToken, nil, ""), http.StatusCreated, "container put")
	}
	base := "/v1/" + account
	for query, want := range map[string]string{
		"":                       "alpha\nbeta\ngamma\n",
		"?marker=alpha":          "beta\ngamma\n",
		"?end_marker=gamma":      "alpha\nbeta\n",
		"?prefix=g":              "gamma\n",
		"?limit=1&reverse=on":    "gamma\n",
		"?format=plain&limit=2":  "alpha\nbeta\n",
		"?delimiter=p&prefix=al": "alp\n",
	} {
		r := c.do(t, "GET", base+query, ownerToken, nil, "")
		if r.body != want {
			t.Errorf("account listing %q = %q, want %q", query, r.body, want)
		}
	}
	r := c.do(t, "GET", base+"?format=json", ownerToken, nil, "")
	var items []struct {
		Name  string `json:"name"`
		Count int64  `json:"count"`
		Bytes int64  `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(r.body), &items); err != nil || len(items) != 3 || items[1].Name != "beta" {
		t.Fatalf("json account listing %q: %v", r.body, err)
	}
	r = c.do(t, "GET", base+"?format=xml", ownerToken, nil, "")
	if !strings.Contains(r.body, `<account name="AUTH_p1"><container><name>alpha</name>`) {
		t.Fatalf("xml account listing %q", r.body)
	}
	expect(t, c.do(t, "GET", base+"?limit=10001", ownerToken, nil, ""), http.StatusPreconditionFailed, "limit")
}
