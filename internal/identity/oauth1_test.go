package identity

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// oauthClient signs requests the way an OAuth 1.0a client library does
// (RFC 5849, HMAC-SHA1), written from the RFC rather than from the server.
type oauthClient struct {
	key, secret string
	nonce       int
}

func (o *oauthClient) header(method, uri, token, tokenSecret string, extra map[string]string) string {
	o.nonce++
	p := map[string]string{
		"oauth_consumer_key":     o.key,
		"oauth_signature_method": "HMAC-SHA1",
		"oauth_timestamp":        strconv.FormatInt(time.Now().Unix(), 10),
		"oauth_nonce":            strconv.Itoa(1000000 + o.nonce),
		"oauth_version":          "1.0",
	}
	if token != "" {
		p["oauth_token"] = token
	}
	for k, v := range extra {
		p[k] = v
	}
	var pairs []string
	for k, v := range p {
		pairs = append(pairs, rfc3986(k)+"="+rfc3986(v))
	}
	sort.Strings(pairs)
	base := method + "&" + rfc3986(uri) + "&" + rfc3986(strings.Join(pairs, "&"))
	m := hmac.New(sha1.New, []byte(rfc3986(o.secret)+"&"+rfc3986(tokenSecret)))
	m.Write([]byte(base))
	p["oauth_signature"] = base64.StdEncoding.EncodeToString(m.Sum(nil))
	parts := []string{`realm=""`}
	for k, v := range p {
		parts = append(parts, k+`="`+rfc3986(v)+`"`)
	}
	return "OAuth " + strings.Join(parts, ", ")
}

// form parses a form-encoded OAuth response.
func form(t *testing.T, r *testResponse) url.Values {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Fatalf("content type %q; body %s", ct, r.Body)
	}
	v, err := url.ParseQuery(string(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOAuth1Consumers(t *testing.T) {
	c := newTestCloud(t)
	created := c.do("POST", "/v3/OS-OAUTH1/consumers", c.adminToken, map[string]any{"consumer": map[string]any{"description": "my app", "owner": "ops"}}).
		want(http.StatusCreated)
	id, secret := created.str("consumer.id"), created.str("consumer.secret")
	if secret == "" || created.str("consumer.description") != "my app" || created.str("consumer.owner") != "ops" {
		t.Fatalf("created %s", created.Body)
	}
	got := c.do("GET", "/v3/OS-OAUTH1/consumers/"+id, c.adminToken, nil).want(http.StatusOK)
	if got.get("consumer.secret") != nil {
		t.Fatal("secret shown after creation")
	}
	if l := c.do("GET", "/v3/OS-OAUTH1/consumers", c.adminToken, nil).want(http.StatusOK).list("consumers"); len(l) != 1 {
		t.Fatalf("list %v", l)
	}
	upd := c.do("PATCH", "/v3/OS-OAUTH1/consumers/"+id, c.adminToken, map[string]any{"consumer": map[string]any{"description": nil}}).want(http.StatusOK)
	if upd.get("consumer.description") != nil {
		t.Fatalf("updated %s", upd.Body)
	}
	c.do("PATCH", "/v3/OS-OAUTH1/consumers/"+id, c.adminToken, map[string]any{"consumer": map[string]any{"secret": "mine"}}).wantError(http.StatusBadRequest, "consumer.secret")
	c.do("PATCH", "/v3/OS-OAUTH1/consumers/"+id, c.adminToken, map[string]any{"consumer": map[string]any{}}).wantError(http.StatusBadRequest, "at least one")
	c.do("POST", "/v3/OS-OAUTH1/consumers", c.adminToken, map[string]any{"consumer": map[string]any{"description": 3}}).wantError(http.StatusBadRequest, "consumer.description")
	_, _, memberTok := c.member("notadmin")
	c.do("POST", "/v3/OS-OAUTH1/consumers", memberTok, map[string]any{"consumer": map[string]any{}}).want(http.StatusForbidden)
	c.do("GET", "/v3/OS-OAUTH1/consumers", memberTok, nil).want(http.StatusForbidden)
	c.do("DELETE", "/v3/OS-OAUTH1/consumers/"+id, c.adminToken, nil).want(http.StatusNoContent)
	c.do("GET", "/v3/OS-OAUTH1/consumers/"+id, c.adminToken, nil).wantError(http.StatusNotFound, "Could not find consumer: "+id)
}

func TestOAuth1Flow(t *testing.T) {
	c := newTestCloud(t)
	created := c.do("POST", "/v3/OS-OAUTH1/consumers", c.adminToken, map[string]any{"consumer": map[string]any{"description": "app"}}).want(http.StatusCreated)
	client := &oauthClient{key: created.str("consumer.id"), secret: created.str("consumer.secret")}

	// 1. The consumer asks for a request token for the admin project.
	rtURL := c.URL + "/v3/OS-OAUTH1/request_token"
	resp := c.do("POST", "/v3/OS-OAUTH1/request_token", "", nil,
		"Authorization", client.header("POST", rtURL, "", "", map[string]string{"oauth_callback": "oob"}),
		"Requested-Project-Id", c.adminProj).want(http.StatusCreated)
	rt := form(t, resp)
	rtKey, rtSecret := rt.Get("oauth_token"), rt.Get("oauth_token_secret")
	if rtKey == "" || rtSecret == "" || rt.Get("oauth_expires_at") == "" {
		t.Fatalf("request token %s", resp.Body)
	}

	// A non-admin cannot authorize (Keystone's default policy); the admin
	// delegates only member.
	_, _, memberTok := c.member("someone")
	c.do("PUT", "/v3/OS-OAUTH1/authorize/"+rtKey, memberTok, map[string]any{"roles": []any{map[string]any{"name": "member"}}}).want(http.StatusForbidden)
	c.do("PUT", "/v3/OS-OAUTH1/authorize/"+rtKey, c.adminToken, map[string]any{"roles": []any{}}).wantError(http.StatusBadRequest, "roles")
	c.do("PUT", "/v3/OS-OAUTH1/authorize/"+rtKey, c.adminToken, map[string]any{"roles": []any{map[string]any{"id": "a", "name": "b"}}}).wantError(http.StatusBadRequest, "roles[0]")
	c.do("PUT", "/v3/OS-OAUTH1/authorize/nope", c.adminToken, map[string]any{"roles": []any{map[string]any{"name": "member"}}}).wantError(http.StatusNotFound, "request token")
	authz := c.do("PUT", "/v3/OS-OAUTH1/authorize/"+rtKey, c.adminToken, map[string]any{"roles": []any{map[string]any{"name": "member"}}}).want(http.StatusOK)
	verifier := authz.str("token.oauth_verifier")
	if len(verifier) != 8 {
		t.Fatalf("verifier %q", verifier)
	}

	// 2. The consumer trades the request token for an access token.
	atURL := c.URL + "/v3/OS-OAUTH1/access_token"
	c.do("POST", "/v3/OS-OAUTH1/access_token", "", nil,
		"Authorization", client.header("POST", atURL, rtKey, rtSecret, map[string]string{"oauth_verifier": "wrongone"})).
		wantError(http.StatusUnauthorized, "verifier")
	c.do("POST", "/v3/OS-OAUTH1/access_token", "", nil,
		"Authorization", client.header("POST", atURL, rtKey, "not-the-secret", map[string]string{"oauth_verifier": verifier})).
		wantError(http.StatusUnauthorized, "Invalid signature")
	resp = c.do("POST", "/v3/OS-OAUTH1/access_token", "", nil,
		"Authorization", client.header("POST", atURL, rtKey, rtSecret, map[string]string{"oauth_verifier": verifier})).want(http.StatusCreated)
	at := form(t, resp)
	atKey, atSecret := at.Get("oauth_token"), at.Get("oauth_token_secret")
	if atKey == "" || atSecret == "" {
		t.Fatalf("access token %s", resp.Body)
	}
	// The request token is spent.
	c.do("POST", "/v3/OS-OAUTH1/access_token", "", nil,
		"Authorization", client.header("POST", atURL, rtKey, rtSecret, map[string]string{"oauth_verifier": verifier})).want(http.StatusNotFound)

	// 3. The consumer gets a token with the access token.
	authBody := map[string]any{"auth": map[string]any{"identity": map[string]any{"methods": []string{"oauth1"}, "oauth1": map[string]any{}}}}
	tokURL := c.URL + "/v3/auth/tokens"
	resp = c.do("POST", "/v3/auth/tokens", "", authBody, "Authorization", client.header("POST", tokURL, atKey, atSecret, nil)).want(http.StatusCreated)
	oauthTok := resp.Header.Get("X-Subject-Token")
	if resp.str("token.project.id") != c.adminProj || resp.str("token.user.id") != c.adminUser {
		t.Fatalf("token %s", resp.Body)
	}
	if resp.str("token.OS-OAUTH1.access_token_id") != atKey || resp.str("token.OS-OAUTH1.consumer_id") != client.key {
		t.Fatalf("OS-OAUTH1 %s", resp.Body)
	}
	if m := resp.list("token.methods"); len(m) != 1 || m[0] != "oauth1" {
		t.Fatalf("methods %v", m)
	}
	// Only the delegated role and what it implies, not the admin's admin.
	var names []string
	for _, ro := range resp.list("token.roles") {
		names = append(names, ro.(map[string]any)["name"].(string))
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "member,reader" {
		t.Fatalf("roles %v", names)
	}
	// Such a token is no admin.
	c.do("GET", "/v3/users", oauthTok, nil).want(http.StatusForbidden)
	// Bad signatures and unknown access tokens get nothing.
	c.do("POST", "/v3/auth/tokens", "", authBody, "Authorization", client.header("POST", tokURL, atKey, "wrong", nil)).want(http.StatusUnauthorized)
	c.do("POST", "/v3/auth/tokens", "", authBody, "Authorization", client.header("POST", c.URL+"/v3/other", atKey, atSecret, nil)).want(http.StatusUnauthorized)
	c.do("POST", "/v3/auth/tokens", "", authBody, "Authorization", client.header("POST", tokURL, newID(), atSecret, nil)).want(http.StatusUnauthorized)
	// An OAuth token cannot be rescoped into a broader one.
	c.do("POST", "/v3/auth/tokens", "", map[string]any{"auth": map[string]any{"identity": map[string]any{
		"methods": []string{"token"}, "token": map[string]any{"id": oauthTok}}}}).want(http.StatusForbidden)

	// The user's access tokens.
	base := "/v3/users/" + c.adminUser + "/OS-OAUTH1/access_tokens"
	list := c.do("GET", base, c.adminToken, nil).want(http.StatusOK).list("access_tokens")
	if len(list) != 1 || list[0].(map[string]any)["id"] != atKey || list[0].(map[string]any)["consumer_id"] != client.key {
		t.Fatalf("access tokens %v", list)
	}
	c.do("GET", base+"/"+atKey, c.adminToken, nil).want(http.StatusOK)
	roles := c.do("GET", base+"/"+atKey+"/roles", c.adminToken, nil).want(http.StatusOK).list("roles")
	if len(roles) != 1 || roles[0].(map[string]any)["name"] != "member" {
		t.Fatalf("access token roles %v", roles)
	}
	c.do("GET", base+"/"+atKey+"/roles/"+c.roleID("member"), c.adminToken, nil).want(http.StatusOK)
	c.do("GET", base+"/"+atKey+"/roles/"+c.roleID("admin"), c.adminToken, nil).wantError(http.StatusNotFound, "Could not find role")
	c.do("GET", base+"/nope", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find access token")
	// Delegated tokens cannot list access tokens.
	c.do("GET", base, oauthTok, nil).want(http.StatusForbidden)
	// Another user cannot see them.
	c.do("GET", base, memberTok, nil).want(http.StatusForbidden)

	// Deleting the access token revokes what was issued with it.
	c.do("GET", "/v3/auth/tokens", c.adminToken, nil, "X-Subject-Token", oauthTok).want(http.StatusOK)
	c.do("DELETE", base+"/"+atKey, c.adminToken, nil).want(http.StatusNoContent)
	c.do("GET", "/v3/auth/tokens", c.adminToken, nil, "X-Subject-Token", oauthTok).want(http.StatusNotFound)
	c.do("POST", "/v3/auth/tokens", "", authBody, "Authorization", client.header("POST", tokURL, atKey, atSecret, nil)).want(http.StatusUnauthorized)
}

func TestOAuth1RequestTokenErrors(t *testing.T) {
	c := newTestCloud(t)
	created := c.do("POST", "/v3/OS-OAUTH1/consumers", c.adminToken, map[string]any{"consumer": map[string]any{}}).want(http.StatusCreated)
	client := &oauthClient{key: created.str("consumer.id"), secret: created.str("consumer.secret")}
	rtURL := c.URL + "/v3/OS-OAUTH1/request_token"
	cb := map[string]string{"oauth_callback": "oob"}

	c.do("POST", "/v3/OS-OAUTH1/request_token", "", nil, "Requested-Project-Id", c.adminProj).wantError(http.StatusBadRequest, "Authorization")
	c.do("POST", "/v3/OS-OAUTH1/request_token", "", nil, "Authorization", client.header("POST", rtURL, "", "", cb)).
		wantError(http.StatusBadRequest, "Requested-Project-Id")
	c.do("POST", "/v3/OS-OAUTH1/request_token", "", nil, "Authorization", client.header("POST", rtURL, "", "", cb), "Requested-Project-Id", "nowhere").
		wantError(http.StatusNotFound, "Could not find project: nowhere")
	stranger := &oauthClient{key: newID(), secret: "x"}
	c.do("POST", "/v3/OS-OAUTH1/request_token", "", nil, "Authorization", stranger.header("POST", rtURL, "", "", cb), "Requested-Project-Id", c.adminProj).
		wantError(http.StatusNotFound, "Could not find consumer")
	forger := &oauthClient{key: client.key, secret: "guessed"}
	c.do("POST", "/v3/OS-OAUTH1/request_token", "", nil, "Authorization", forger.header("POST", rtURL, "", "", cb), "Requested-Project-Id", c.adminProj).
		wantError(http.StatusUnauthorized, "Invalid signature")
	// A signature over another URL does not verify here.
	c.do("POST", "/v3/OS-OAUTH1/request_token", "", nil, "Authorization", client.header("POST", c.URL+"/v3/elsewhere", "", "", cb), "Requested-Project-Id", c.adminProj).
		wantError(http.StatusUnauthorized, "Invalid signature")

	// An unauthorized request token cannot be exchanged.
	resp := c.do("POST", "/v3/OS-OAUTH1/request_token", "", nil, "Authorization", client.header("POST", rtURL, "", "", cb), "Requested-Project-Id", c.adminProj).want(http.StatusCreated)
	rt := form(t, resp)
	c.do("POST", "/v3/OS-OAUTH1/access_token", "", nil, "Authorization",
		client.header("POST", c.URL+"/v3/OS-OAUTH1/access_token", rt.Get("oauth_token"), rt.Get("oauth_token_secret"), map[string]string{"oauth_verifier": "abcdefgh"})).
		want(http.StatusUnauthorized)
	// Deleting the consumer takes its request tokens.
	c.do("DELETE", "/v3/OS-OAUTH1/consumers/"+client.key, c.adminToken, nil).want(http.StatusNoContent)
	c.do("PUT", "/v3/OS-OAUTH1/authorize/"+rt.Get("oauth_token"), c.adminToken, map[string]any{"roles": []any{map[string]any{"name": "member"}}}).
		want(http.StatusNotFound)
}
