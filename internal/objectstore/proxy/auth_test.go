package proxy

import (
	"net/http"
	"testing"
)

func TestAuthOwnership(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AuthURL = "http://127.0.0.1:5000" })
	acct := "/v1/" + account
	r := c.do(t, "GET", acct, "", nil, "")
	expect(t, r, http.StatusUnauthorized, "no token")
	if r.body != "<html><h1>Unauthorized</h1><p>This server could not verify that you are authorized to access the document you requested.</p></html>" {
		t.Fatalf("401 body %q", r.body)
	}
	if r.header.Get("Www-Authenticate") != "Keystone uri='http://127.0.0.1:5000'" {
		t.Fatalf("WWW-Authenticate %q", r.header.Get("Www-Authenticate"))
	}
	expect(t, c.do(t, "GET", acct, "bogus", nil, ""), http.StatusUnauthorized, "bad token")
	r = c.do(t, "GET", acct, otherToken, nil, "")
	expect(t, r, http.StatusForbidden, "other project")
	if r.body != "<html><h1>Forbidden</h1><p>Access was denied to this resource.</p></html>" {
		t.Fatalf("403 body %q", r.body)
	}
	expect(t, c.do(t, "PUT", "c", otherToken, nil, ""), http.StatusForbidden, "other project container put")
	expect(t, c.do(t, "GET", acct, readerToken, nil, ""), http.StatusForbidden, "no operator role")
	expect(t, c.do(t, "GET", "/v1/other_p1", ownerToken, nil, ""), http.StatusForbidden, "foreign reseller prefix")
	// The reseller admin may act anywhere.
	expect(t, c.do(t, "PUT", "c", resellerToken, nil, ""), http.StatusCreated, "reseller container put")
	expect(t, c.do(t, "PUT", "/v1/AUTH_p2/theirs", resellerToken, nil, ""), http.StatusCreated, "reseller in another account")
	expect(t, c.do(t, "GET", acct, ownerToken, nil, ""), http.StatusOK, "owner listing")
}

func TestContainerACLs(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "shared", ownerToken, map[string]string{"X-Container-Read": "p2:u2"}, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "shared/o", ownerToken, nil, "data"), http.StatusCreated, "object put")
	expect(t, c.do(t, "GET", "shared/o", otherToken, nil, ""), http.StatusOK, "read ACL object")
	r := c.do(t, "HEAD", "shared", otherToken, nil, "")
	expect(t, r, http.StatusNoContent, "read ACL container")
	if r.header.Get("X-Container-Read") != "" {
		t.Fatal("ACL shown to a non-owner")
	}
	if c.do(t, "HEAD", "shared", ownerToken, nil, "").header.Get("X-Container-Read") != "p2:u2" {
		t.Fatal("ACL not shown to the owner")
	}
	expect(t, c.do(t, "PUT", "shared/o2", otherToken, nil, "x"), http.StatusForbidden, "no write ACL")
	expect(t, c.do(t, "POST", "shared", otherToken, map[string]string{"X-Container-Read": "*:*"}, ""), http.StatusForbidden, "non-owner container post")
	expect(t, c.do(t, "GET", "shared/o", "", nil, ""), http.StatusUnauthorized, "anonymous without referrer ACL")

	expect(t, c.do(t, "POST", "shared", ownerToken, map[string]string{"X-Container-Write": "p2:*"}, ""), http.StatusNoContent, "set write ACL")
	expect(t, c.do(t, "PUT", "shared/o2", otherToken, nil, "x"), http.StatusCreated, "write ACL")
	expect(t, c.do(t, "DELETE", "shared/o2", otherToken, nil, ""), http.StatusNoContent, "write ACL delete")
	expect(t, c.do(t, "POST", "shared", ownerToken, map[string]string{"X-Container-Write": ".r:*"}, ""), http.StatusBadRequest, "referrer in write ACL")

	// Public objects, then public listings.
	expect(t, c.do(t, "POST", "shared", ownerToken, map[string]string{"X-Container-Read": ".r:*"}, ""), http.StatusNoContent, "public read")
	expect(t, c.do(t, "GET", "shared/o", "", nil, ""), http.StatusOK, "anonymous object read")
	expect(t, c.do(t, "GET", "shared", "", nil, ""), http.StatusUnauthorized, "anonymous listing without .rlistings")
	expect(t, c.do(t, "PUT", "shared/o3", "", nil, "x"), http.StatusUnauthorized, "anonymous write")
	expect(t, c.do(t, "POST", "shared", ownerToken, map[string]string{"X-Container-Read": ".r:*,.rlistings"}, ""), http.StatusNoContent, "public listing")
	r = c.do(t, "GET", "shared", "", nil, "")
	if r.status != http.StatusOK || r.body != "o\n" {
		t.Fatalf("anonymous listing: %d %q", r.status, r.body)
	}
	expect(t, c.do(t, "POST", "shared", ownerToken, map[string]string{"X-Container-Read": ".r:.example.com"}, ""), http.StatusNoContent, "referrer ACL")
	expect(t, c.do(t, "GET", "shared/o", "", map[string]string{"Referer": "http://www.example.com/x"}, ""), http.StatusOK, "matching referrer")
	expect(t, c.do(t, "GET", "shared/o", "", map[string]string{"Referer": "http://evil.org/"}, ""), http.StatusUnauthorized, "other referrer")

	// Role names grant users of the account's own project.
	expect(t, c.do(t, "POST", "shared", ownerToken, map[string]string{"X-Container-Read": "reader"}, ""), http.StatusNoContent, "role ACL")
	expect(t, c.do(t, "GET", "shared/o", readerToken, nil, ""), http.StatusOK, "role ACL read")
	expect(t, c.do(t, "GET", "shared/o", otherToken, nil, ""), http.StatusForbidden, "role ACL other project")
}

func TestAccountACLs(t *testing.T) {
	c := newCluster(t, nil)
	acct := "/v1/" + account
	expect(t, c.do(t, "PUT", "c", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "c/o", ownerToken, nil, "data"), http.StatusCreated, "object put")
	expect(t, c.do(t, "POST", acct, ownerToken, map[string]string{"X-Account-Access-Control": "not json"}, ""), http.StatusBadRequest, "bad ACL")
	expect(t, c.do(t, "POST", acct, ownerToken, map[string]string{"X-Account-Access-Control": `{"read-only":["p2:u2"]}`}, ""), http.StatusNoContent, "set read-only")
	if v := c.do(t, "HEAD", acct, ownerToken, nil, "").header.Get("X-Account-Access-Control"); v != `{"read-only":["p2:u2"]}` {
		t.Fatalf("owner sees ACL %q", v)
	}
	r := c.do(t, "GET", acct, otherToken, nil, "")
	if r.status != http.StatusOK || r.body != "c\n" || r.header.Get("X-Account-Access-Control") != "" {
		t.Fatalf("read-only listing: %d %q %v", r.status, r.body, r.header)
	}
	expect(t, c.do(t, "GET", "c/o", otherToken, nil, ""), http.StatusOK, "read-only object")
	expect(t, c.do(t, "PUT", "c/o2", otherToken, nil, "x"), http.StatusForbidden, "read-only write")

	expect(t, c.do(t, "POST", acct, ownerToken, map[string]string{"X-Account-Access-Control": `{"read-write":["p2:*"]}`}, ""), http.StatusNoContent, "set read-write")
	expect(t, c.do(t, "PUT", "c/o2", otherToken, nil, "x"), http.StatusCreated, "read-write object")
	expect(t, c.do(t, "PUT", "c2", otherToken, nil, ""), http.StatusCreated, "read-write container")
	expect(t, c.do(t, "POST", acct, otherToken, map[string]string{"X-Account-Meta-X": "1"}, ""), http.StatusForbidden, "read-write account post")

	expect(t, c.do(t, "POST", acct, ownerToken, map[string]string{"X-Account-Access-Control": `{"admin":["*:u2"]}`}, ""), http.StatusNoContent, "set admin")
	expect(t, c.do(t, "POST", acct, otherToken, map[string]string{"X-Account-Meta-X": "1"}, ""), http.StatusNoContent, "admin account post")
	expect(t, c.do(t, "POST", "c", otherToken, map[string]string{"X-Container-Read": ".r:*"}, ""), http.StatusNoContent, "admin sets container ACL")
	if c.do(t, "HEAD", "c", ownerToken, nil, "").header.Get("X-Container-Read") != ".r:*" {
		t.Fatal("admin's ACL not stored")
	}
}
