package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The host-to-path rules of Swift's domain_remap, table by table:
// storage domain matching, label counts, reseller prefix respelling.
func TestDomainRemapHost(t *testing.T) {
	swiftDefault := DomainRemap{StorageDomains: []string{"example.com"}}.withDefaults("AUTH_")
	for _, tc := range []struct {
		name, host         string
		d                  *DomainRemap
		account, container string
		ok, bad            bool
	}{
		{name: "account", host: "AUTH_test.example.com", account: "AUTH_test", ok: true},
		{name: "container", host: "c.AUTH_test.example.com", account: "AUTH_test", container: "c", ok: true},
		{name: "port dropped", host: "c.AUTH_test.example.com:8080", account: "AUTH_test", container: "c", ok: true},
		{name: "dash for underscore", host: "AUTH-test.example.com", account: "AUTH_test", ok: true},
		{name: "only the first dash", host: "AUTH-a-b.example.com", account: "AUTH_a-b", ok: true},
		{name: "dash kept when underscore present", host: "AUTH_a-b.example.com", account: "AUTH_a-b", ok: true},
		{name: "lowercased prefix respelled", host: "c.auth-test.example.com", account: "AUTH_test", container: "c", ok: true},
		{name: "mixed case prefix respelled", host: "Auth_Test.example.com", account: "AUTH_Test", ok: true},
		{name: "container case kept", host: "MyC.AUTH_test.example.com", account: "AUTH_test", container: "MyC", ok: true},
		{name: "no prefix passes through", host: "test.example.com"},
		{name: "unknown prefix passes through", host: "KEY_test.example.com"},
		{name: "domain itself passes through", host: "example.com"},
		{name: "domain with port passes through", host: "example.com:80"},
		{name: "other domain passes through", host: "AUTH_test.example.org"},
		{name: "suffix without dot passes through", host: "AUTH_testexample.com"},
		{name: "domain match is case-sensitive", host: "AUTH_test.EXAMPLE.com"},
		{name: "ip passes through", host: "127.0.0.1:8080"},
		{name: "too many labels", host: "a.b.AUTH_test.example.com", bad: true},
		{name: "empty middle label", host: "c..AUTH_test.example.com", bad: true},
		{name: "leading dot stripped", host: ".AUTH_test.example.com", account: "AUTH_test", ok: true},
		{name: "doubled dot before domain stripped", host: "AUTH_test..example.com", account: "AUTH_test", ok: true},
		{name: "empty account passes through", host: ".example.com"},
		{name: "percent kept verbatim", host: "caf%C3%A9.AUTH_test.example.com", account: "AUTH_test", container: "caf%C3%A9", ok: true},
		{name: "unicode kept verbatim", host: "café.AUTH_test.example.com", account: "AUTH_test", container: "café", ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := swiftDefault
			if tc.d != nil {
				d = *tc.d
			}
			a, c, ok, err := d.remapHost(tc.host)
			if (err != nil) != tc.bad {
				t.Fatalf("remapHost(%q) err %v, want bad %v", tc.host, err, tc.bad)
			}
			if a != tc.account || c != tc.container || ok != tc.ok {
				t.Fatalf("remapHost(%q) = %q, %q, %v; want %q, %q, %v", tc.host, a, c, ok, tc.account, tc.container, tc.ok)
			}
		})
	}
}

// The options: several domains with and without a leading dot, several
// reseller prefixes, a default prefix, none at all.
func TestDomainRemapOptions(t *testing.T) {
	d := DomainRemap{
		StorageDomains:   []string{" .a.example ", "b.example", ""},
		ResellerPrefixes: []string{"AUTH", "SERVICE"},
	}.withDefaults("AUTH_")
	if want := []string{".b.example", ".a.example"}; strings.Join(d.StorageDomains, ",") != strings.Join(want, ",") {
		t.Fatalf("domains %q, want %q (undotted first, as Swift)", d.StorageDomains, want)
	}
	check := func(d DomainRemap, host, account string, ok bool) {
		t.Helper()
		a, _, gotOK, err := d.remapHost(host)
		if err != nil || a != account || gotOK != ok {
			t.Fatalf("remapHost(%q) = %q, %v, %v; want %q, %v", host, a, gotOK, err, account, ok)
		}
	}
	check(d, "service-x.a.example", "SERVICE_x", true)
	check(d, "AUTH_x.b.example", "AUTH_x", true)
	check(d, "x.b.example", "", false)

	withDefault := d
	withDefault.DefaultResellerPrefix = "AUTH"
	check(withDefault, "x.b.example", "AUTH_x", true)
	if info := withDefault.info(); info["default_reseller_prefix"] != "AUTH" {
		t.Fatalf("info %v", info)
	}
	if info := d.info(); info["default_reseller_prefix"] != nil {
		t.Fatalf("info without default prefix %v, want null", info)
	}

	none := DomainRemap{StorageDomains: []string{"b.example"}, ResellerPrefixes: []string{}}.withDefaults("AUTH_")
	check(none, "anything-goes.b.example", "anything-goes", true)

	// The proxy's own reseller prefix is the default one.
	own := DomainRemap{StorageDomains: []string{"b.example"}}.withDefaults("KEY_")
	check(own, "key-x.b.example", "KEY_x", true)
	check(own, "AUTH_x.b.example", "", false)
}

// Paths: the client's path follows the account and container unchanged,
// so /v1 on a remapped host is a container or object named v1 unless
// mangle_client_paths is on.
func TestDomainRemapPath(t *testing.T) {
	same := func(s string) string { return s }
	d := DomainRemap{StorageDomains: []string{"example.com"}}.withDefaults("AUTH_")
	m := d
	m.MangleClientPaths = true
	r := DomainRemap{StorageDomains: []string{"example.com"}, PathRoot: "/v2/"}.withDefaults("AUTH_")
	for _, tc := range []struct {
		d                        DomainRemap
		account, container, path string
		want                     string
	}{
		{d, "AUTH_a", "", "/", "/v1/AUTH_a/"},
		{d, "AUTH_a", "", "/c/o", "/v1/AUTH_a/c/o"},
		{d, "AUTH_a", "c", "/", "/v1/AUTH_a/c/"},
		{d, "AUTH_a", "c", "/o//x", "/v1/AUTH_a/c/o//x"},
		{d, "AUTH_a", "c", "/v1", "/v1/AUTH_a/c/v1"},
		{d, "AUTH_a", "", "/v1/AUTH_a/c", "/v1/AUTH_a/v1/AUTH_a/c"},
		{m, "AUTH_a", "", "/v1/c", "/v1/AUTH_a/c"},
		{m, "AUTH_a", "c", "/v1", "/v1/AUTH_a/c/"},
		{m, "AUTH_a", "c", "/v10", "/v1/AUTH_a/c/v10"},
		{r, "AUTH_a", "c", "/o", "/v2/AUTH_a/c/o"},
	} {
		if got := tc.d.remapPath(tc.account, tc.container, tc.path, same); got != tc.want {
			t.Errorf("remapPath(%q, %q, %q) = %q, want %q", tc.account, tc.container, tc.path, got, tc.want)
		}
	}
}

func TestUnmapLocation(t *testing.T) {
	for _, tc := range []struct{ loc, want string }{
		{"http://c.AUTH_a.example.com/v1/AUTH_a/c/dir/", "http://c.AUTH_a.example.com/dir/"},
		{"https://h:8080/v1/AUTH_a/c/dir?x=1", "https://h:8080/dir?x=1"},
		{"/v1/AUTH_a/c/dir/", "/v1/AUTH_a/c/dir/"},
		{"http://h/v1/AUTH_b/c/dir/", "http://h/v1/AUTH_b/c/dir/"},
		{"http://h", "http://h"},
	} {
		if got := unmapLocation(tc.loc, "/v1/AUTH_a/c/dir", "/dir"); got != tc.want {
			t.Errorf("unmapLocation(%q) = %q, want %q", tc.loc, got, tc.want)
		}
	}
}

// hostDo sends a request to the proxy with the given Host header.
func (c *cluster) hostDo(t *testing.T, method, host, path, token string, hdr map[string]string, body string) resp {
	t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if body == "" {
		req.ContentLength, req.Body = 0, http.NoBody
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// Redirects are what is under test, not followed.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s %s: %v", method, host, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

// End to end: account and container hosts read and write through the
// proxy, a static web redirect keeps the client's host-relative path,
// a bad host is 400, /info lists the middleware only when configured.
func TestDomainRemapThroughProxy(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.Middlewares.DomainRemap = DomainRemap{StorageDomains: []string{"example.net"}}
	})
	acct := account + ".example.net"

	expect(t, c.hostDo(t, "PUT", acct, "/pub", ownerToken, map[string]string{"X-Container-Read": ".r:*,.rlistings"}, ""), http.StatusCreated, "PUT container on account host")
	expect(t, c.hostDo(t, "PUT", acct, "/pub/o", ownerToken, nil, "hello"), http.StatusCreated, "PUT object on account host")
	expect(t, c.do(t, "PUT", "pub/v1", ownerToken, nil, "slash"), http.StatusCreated, "PUT object v1")
	r := c.hostDo(t, "GET", acct, "/", ownerToken, nil, "")
	expect(t, r, http.StatusOK, "GET account host")
	if !strings.Contains(r.body, "pub\n") {
		t.Fatalf("account listing %q lacks pub", r.body)
	}
	r = c.hostDo(t, "GET", acct, "/pub/o", ownerToken, nil, "")
	if expect(t, r, http.StatusOK, "GET object on account host"); r.body != "hello" {
		t.Fatalf("object body %q", r.body)
	}

	// A container host, with a lowercased dashed account and a port.
	ccont := "pub." + strings.Replace(strings.ToLower(account), "_", "-", 1) + ".example.net:8080"
	r = c.hostDo(t, "GET", ccont, "/v1", "", nil, "")
	if expect(t, r, http.StatusOK, "GET /v1 on container host is the object v1"); r.body != "slash" {
		t.Fatalf("object v1 body %q", r.body)
	}
	r = c.hostDo(t, "GET", ccont, "/", "", nil, "")
	if expect(t, r, http.StatusOK, "anonymous listing on container host"); !strings.Contains(r.body, "o\n") {
		t.Fatalf("container listing %q", r.body)
	}

	// A container with a percent-encoded name in the path, under an
	// account host.
	name := "a b%2Fé"
	expect(t, c.do(t, "PUT", url.PathEscape(name), ownerToken, nil, ""), http.StatusCreated, "PUT odd container")
	expect(t, c.hostDo(t, "PUT", acct, "/"+url.PathEscape(name)+"/x", ownerToken, nil, "odd"), http.StatusCreated, "PUT object in odd container")
	r = c.do(t, "GET", url.PathEscape(name)+"/x", ownerToken, nil, "")
	if expect(t, r, http.StatusOK, "GET object in odd container"); r.body != "odd" {
		t.Fatalf("odd object body %q", r.body)
	}

	// Static web redirects "dir" to "dir/" on the client's host and path.
	expect(t, c.do(t, "PUT", "pub/sub/x", ownerToken, nil, "x"), http.StatusCreated, "PUT pub/sub/x")
	expect(t, c.hostDo(t, "POST", acct, "/pub", ownerToken, map[string]string{"X-Container-Meta-Web-Listings": "true"}, ""), http.StatusNoContent, "web listings")
	r = c.hostDo(t, "GET", ccont, "/sub", "", nil, "")
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != "http://"+ccont+"/sub/" {
		t.Fatalf("redirect: %d Location %q", r.status, r.header.Get("Location"))
	}
	r = c.hostDo(t, "GET", acct, "/pub", "", nil, "")
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != "http://"+acct+"/pub/" {
		t.Fatalf("redirect on account host: %d Location %q", r.status, r.header.Get("Location"))
	}

	r = c.hostDo(t, "GET", "x.y."+acct, "/", ownerToken, nil, "")
	if expect(t, r, http.StatusBadRequest, "too many labels"); r.body != "Bad domain in host header" {
		t.Fatalf("bad host body %q", r.body)
	}
	// Hosts outside the storage domains, and the domain itself, are
	// served by path as usual.
	expect(t, c.hostDo(t, "GET", "example.net", "/v1/"+account+"/pub/o", ownerToken, nil, ""), http.StatusOK, "storage domain itself")
	expect(t, c.hostDo(t, "GET", "localhost", "/v1/"+account+"/pub/o", ownerToken, nil, ""), http.StatusOK, "other host")
	expect(t, c.hostDo(t, "GET", acct, "/healthcheck", "", nil, ""), http.StatusOK, "healthcheck on a remapped host")

	var info map[string]any
	r = c.do(t, "GET", "/info", "", nil, "")
	if err := json.Unmarshal([]byte(r.body), &info); err != nil {
		t.Fatal(err)
	}
	dr, ok := info["domain_remap"].(map[string]any)
	if !ok || len(dr) != 1 || dr["default_reseller_prefix"] != nil {
		t.Fatalf("/info domain_remap %v", info["domain_remap"])
	}
}

func TestDomainRemapOffByDefault(t *testing.T) {
	c := newCluster(t, nil)
	var info map[string]any
	if err := json.Unmarshal([]byte(c.do(t, "GET", "/info", "", nil, "").body), &info); err != nil {
		t.Fatal(err)
	}
	if _, ok := info["domain_remap"]; ok {
		t.Fatal("domain_remap in /info without storage domains")
	}
	expect(t, c.hostDo(t, "GET", account+".example.com", "/", ownerToken, nil, ""), http.StatusNotFound, "no remap when off")
}
