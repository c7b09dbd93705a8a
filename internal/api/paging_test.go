package api_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

func TestParsePage(t *testing.T) {
	for _, tc := range []struct {
		query    string
		maxLimit int
		want     api.Page
	}{
		{"", 0, api.Page{}},
		{"", 100, api.Page{Limit: 100}},
		{"limit=5", 0, api.Page{Limit: 5}},
		{"limit=5", 100, api.Page{Limit: 5}},
		{"limit=100", 100, api.Page{Limit: 100}},
		{"limit=101", 100, api.Page{Limit: 100}},
		{"limit=0", 100, api.Page{Limit: 100}},
		{"limit=2&marker=abc", 0, api.Page{Limit: 2, Marker: "abc"}},
		{"marker=a%2Fb", 0, api.Page{Marker: "a/b"}},
	} {
		p, err := api.ParsePage(httptest.NewRequest(http.MethodGet, "/v3/users?"+tc.query, nil), tc.maxLimit)
		if err != nil || p != tc.want {
			t.Errorf("ParsePage(%q, %d) = %+v, %v; want %+v", tc.query, tc.maxLimit, p, err, tc.want)
		}
	}
	for _, bad := range []string{"-1", "abc", "1.5", "1e3", "99999999999999999999999", "%20"} {
		_, err := api.ParsePage(httptest.NewRequest(http.MethodGet, "/v3/users?limit="+bad, nil), 100)
		apiError(t, err, http.StatusBadRequest)
	}
}

type item struct{ ID string }

func TestPaginate(t *testing.T) {
	items := []item{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}}
	id := func(it item) string { return it.ID }
	ids := func(its []item) []string {
		out := []string{}
		for _, it := range its {
			out = append(out, it.ID)
		}
		return out
	}
	for _, tc := range []struct {
		page api.Page
		want []string
		more bool
	}{
		{api.Page{}, []string{"a", "b", "c", "d", "e"}, false},
		{api.Page{Limit: 2}, []string{"a", "b"}, true},
		{api.Page{Limit: 5}, []string{"a", "b", "c", "d", "e"}, false},
		{api.Page{Limit: 9}, []string{"a", "b", "c", "d", "e"}, false},
		{api.Page{Limit: 2, Marker: "b"}, []string{"c", "d"}, true},
		{api.Page{Limit: 2, Marker: "c"}, []string{"d", "e"}, false},
		{api.Page{Marker: "a"}, []string{"b", "c", "d", "e"}, false},
		{api.Page{Limit: 1, Marker: "e"}, []string{}, false},
	} {
		got, more, err := api.Paginate(items, tc.page, id)
		if err != nil || !slices.Equal(ids(got), tc.want) || more != tc.more {
			t.Errorf("Paginate(%+v) = %v, %v, %v; want %v, %v", tc.page, ids(got), more, err, tc.want, tc.more)
		}
	}
	_, _, err := api.Paginate(items, api.Page{Marker: "zzz"}, id)
	if e := apiError(t, err, http.StatusBadRequest); e.Message != "Marker zzz could not be found." {
		t.Errorf("message = %q", e.Message)
	}
	if _, _, err := api.Paginate(nil, api.Page{Marker: "a"}, id); err == nil {
		t.Error("marker into an empty list accepted")
	}

	// Walking every page with the next marker visits each item once.
	var seen []string
	page := api.Page{Limit: 2}
	for {
		got, more, err := api.Paginate(items, page, id)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, ids(got)...)
		if !more {
			break
		}
		page.Marker = got[len(got)-1].ID
	}
	if !slices.Equal(seen, ids(items)) {
		t.Errorf("walked %v", seen)
	}
}

func TestNextLink(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/v3/users?limit=2&marker=old&name=bob+smith&enabled=true", nil)
	link := api.NextLink("https://cloud.example:5000", r, "u/3&x")
	if link.Rel != "next" {
		t.Errorf("rel = %q", link.Rel)
	}
	u, err := url.Parse(link.Href)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" || u.Host != "cloud.example:5000" || u.Path != "/v3/users" {
		t.Errorf("href = %q", link.Href)
	}
	want := url.Values{"limit": {"2"}, "marker": {"u/3&x"}, "name": {"bob smith"}, "enabled": {"true"}}
	if got := u.Query(); got.Encode() != want.Encode() {
		t.Errorf("query = %v, want %v", got, want)
	}
}

func TestBaseURL(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://node1:5000/v3", nil)
	if got := api.BaseURL(r, ""); got != "http://node1:5000" {
		t.Errorf("plain = %q", got)
	}
	if got := api.BaseURL(r, "https://keystone.example"); got != "https://keystone.example" {
		t.Errorf("public = %q", got)
	}
	r.TLS = &tls.ConnectionState{}
	if got := api.BaseURL(r, ""); got != "https://node1:5000" {
		t.Errorf("tls = %q", got)
	}
	r.TLS = nil
	r.Header.Set("X-Forwarded-Proto", "https")
	if got := api.BaseURL(r, ""); got != "https://node1:5000" {
		t.Errorf("forwarded https = %q", got)
	}
	r.Header.Set("X-Forwarded-Proto", "javascript")
	if got := api.BaseURL(r, ""); got != "http://node1:5000" {
		t.Errorf("forwarded junk = %q", got)
	}
}
