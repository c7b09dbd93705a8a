package identity

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// Signature vectors: AWS's own sigv4 test suite case "get-vanilla", and
// values computed with the Python reference (keystoneclient's Ec2Signer,
// Keystone's s3tokens).
func TestEC2SignatureVectors(t *testing.T) {
	v4 := &ec2Request{
		Verb: "GET", Path: "/", Host: "example.amazonaws.com",
		Headers: map[string]any{
			"Host":          "example.amazonaws.com",
			"X-Amz-Date":    "20150830T123600Z",
			"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
		},
		Params:   map[string]any{},
		BodyHash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	}
	got, err := ec2Signature("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", v4, v4.Host)
	if err != nil || got != "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" {
		t.Fatalf("v4 get-vanilla: %q %v", got, err)
	}

	v2 := &ec2Request{Verb: "GET", Path: "/", Host: "ec2.example.com:8788", Params: map[string]any{
		"Action": "DescribeInstances", "AWSAccessKeyId": "AKID", "SignatureVersion": "2", "Version": "2016-11-15",
		"Filter.1.Name": "tag:Name", "Filter.1.Value": "a b/c~d", "SignatureMethod": "HmacSHA1",
	}}
	if got, err := ec2Signature("s3cr3t", v2, v2.Host); err != nil || got != "NZaHTEUeqEFzVZXSNZbB7vyZn7hmglvnQ/w38pF8JZc=" {
		t.Fatalf("v2: %q %v", got, err)
	}

	// AWS's S3 REST authentication example (GET of puppy.jpg).
	sts := "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg"
	s3 := &ec2Request{Token: base64.URLEncoding.EncodeToString([]byte(sts)), Signature: "bWq2s1WEIj+Ydj0vQ697zp+IXMU="}
	if err := checkS3Signature("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", s3); err != nil {
		t.Fatalf("s3 v2: %v", err)
	}
	s3.Signature = "bWq2s1WEIj+Ydj0vQ697zp+IXMV="
	if err := checkS3Signature("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", s3); err == nil {
		t.Fatal("s3 v2: tampered signature accepted")
	}
}

// The signers below are the client's side, written from AWS's
// documentation rather than from the server code.

func rfc3986(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

func clientQuery(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, rfc3986(k)+"="+rfc3986(params[k]))
	}
	return strings.Join(parts, "&")
}

func hmac256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// signV2 signs an EC2 query request with signature version 2.
func signV2(secret, verb, host, path string, params map[string]string) string {
	params["SignatureVersion"] = "2"
	params["SignatureMethod"] = "HmacSHA256"
	return base64.StdEncoding.EncodeToString(hmac256([]byte(secret), verb+"\n"+host+"\n"+path+"\n"+clientQuery(params)))
}

// signV4 signs a request with AWS signature version 4 and returns the
// Authorization header.
func signV4(access, secret, verb, host, path, amzDate, region, service string, query map[string]string, body string) (auth, bodyHash string) {
	sum := sha256.Sum256([]byte(body))
	bodyHash = hex.EncodeToString(sum[:])
	canonicalHeaders := "host:" + host + "\nx-amz-date:" + amzDate + "\n"
	signed := "host;x-amz-date"
	cr := strings.Join([]string{verb, path, clientQuery(query), canonicalHeaders, signed, bodyHash}, "\n")
	crSum := sha256.Sum256([]byte(cr))
	scope := amzDate[:8] + "/" + region + "/" + service + "/aws4_request"
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crSum[:])
	k := hmac256([]byte("AWS4"+secret), amzDate[:8])
	k = hmac256(k, region)
	k = hmac256(k, service)
	k = hmac256(k, "aws4_request")
	sig := hex.EncodeToString(hmac256(k, sts))
	return "AWS4-HMAC-SHA256 Credential=" + access + "/" + scope + ", SignedHeaders=" + signed + ", Signature=" + sig, bodyHash
}

// ec2Cred creates an EC2 credential for the user through OS-EC2.
func (c *testCloud) ec2Cred(token, userID, projectID string) (access, secret string) {
	c.t.Helper()
	resp := c.do("POST", "/v3/users/"+userID+"/credentials/OS-EC2", token, map[string]any{"tenant_id": projectID}).want(http.StatusCreated)
	return resp.str("credential.access"), resp.str("credential.secret")
}

func TestOSEC2Credentials(t *testing.T) {
	c := newTestCloud(t)
	alice, aliceProj, aliceTok := c.member("alice")
	bob, _, bobTok := c.member("bob")

	resp := c.do("POST", "/v3/users/"+alice+"/credentials/OS-EC2", aliceTok, map[string]any{"tenant_id": aliceProj}).want(http.StatusCreated)
	access := resp.str("credential.access")
	if resp.str("credential.tenant_id") != aliceProj || resp.str("credential.user_id") != alice || resp.str("credential.secret") == "" {
		t.Fatalf("created %s", resp.Body)
	}
	if resp.get("credential.trust_id") != nil {
		t.Fatalf("trust_id %v", resp.get("credential.trust_id"))
	}
	if !strings.HasSuffix(resp.str("credential.links.self"), "/v3/users/"+alice+"/credentials/OS-EC2/"+access) {
		t.Fatalf("links %s", resp.Body)
	}
	// It is an ordinary ec2 credential too, keyed by the hash of the access key.
	v3 := c.do("GET", "/v3/credentials/"+hashAccessKey(access), aliceTok, nil).want(http.StatusOK)
	if v3.str("credential.type") != "ec2" || !strings.Contains(v3.str("credential.blob"), access) {
		t.Fatalf("v3 view %s", v3.Body)
	}

	list := c.do("GET", "/v3/users/"+alice+"/credentials/OS-EC2", aliceTok, nil).want(http.StatusOK).list("credentials")
	if len(list) != 1 || list[0].(map[string]any)["access"] != access {
		t.Fatalf("list %v", list)
	}
	c.do("GET", "/v3/users/"+alice+"/credentials/OS-EC2/"+access, aliceTok, nil).want(http.StatusOK)

	// Bob can neither see nor touch Alice's, nor make one for her.
	c.do("GET", "/v3/users/"+alice+"/credentials/OS-EC2", bobTok, nil).want(http.StatusForbidden)
	c.do("GET", "/v3/users/"+alice+"/credentials/OS-EC2/"+access, bobTok, nil).want(http.StatusForbidden)
	c.do("DELETE", "/v3/users/"+alice+"/credentials/OS-EC2/"+access, bobTok, nil).want(http.StatusForbidden)
	c.do("POST", "/v3/users/"+alice+"/credentials/OS-EC2", bobTok, map[string]any{"tenant_id": aliceProj}).want(http.StatusForbidden)
	// Nor reach it through his own user path.
	c.do("GET", "/v3/users/"+bob+"/credentials/OS-EC2/"+access, bobTok, nil).wantError(http.StatusNotFound, "Could not find credential")

	// Bad input.
	c.do("POST", "/v3/users/"+alice+"/credentials/OS-EC2", aliceTok, map[string]any{}).wantError(http.StatusBadRequest, "tenant_id")
	c.do("POST", "/v3/users/"+alice+"/credentials/OS-EC2", aliceTok, map[string]any{"tenant_id": 5}).wantError(http.StatusBadRequest, "tenant_id")
	c.do("POST", "/v3/users/"+alice+"/credentials/OS-EC2", aliceTok, map[string]any{"tenant_id": "nowhere"}).wantError(http.StatusNotFound, "Could not find project: nowhere")
	c.do("GET", "/v3/users/nobody/credentials/OS-EC2", c.adminToken, nil).wantError(http.StatusNotFound, "Could not find user: nobody")
	c.do("GET", "/v3/users/"+alice+"/credentials/OS-EC2/nope", aliceTok, nil).wantError(http.StatusNotFound, "Could not find credential")

	// The admin may manage anyone's.
	c.do("GET", "/v3/users/"+alice+"/credentials/OS-EC2/"+access, c.adminToken, nil).want(http.StatusOK)
	c.do("DELETE", "/v3/users/"+alice+"/credentials/OS-EC2/"+access, aliceTok, nil).want(http.StatusNoContent)
	c.do("GET", "/v3/users/"+alice+"/credentials/OS-EC2/"+access, aliceTok, nil).want(http.StatusNotFound)
}

func TestEC2TokensSignatureV2(t *testing.T) {
	c := newTestCloud(t)
	user, proj, tok := c.member("ec2user")
	access, secret := c.ec2Cred(tok, user, proj)

	signed := func(secretKey, host string, ts time.Time) map[string]any {
		params := map[string]string{
			"Action": "DescribeInstances", "AWSAccessKeyId": access, "Version": "2016-11-15",
			"Timestamp": ts.UTC().Format("2006-01-02T15:04:05Z"), "Filter.1.Value": "a b/c~d",
		}
		sig := signV2(secretKey, "GET", host, "/", params)
		p := map[string]any{}
		for k, v := range params {
			p[k] = v
		}
		return map[string]any{"access": access, "signature": sig, "host": "ec2.example.com:8788", "verb": "GET", "path": "/", "params": p}
	}

	resp := c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": signed(secret, "ec2.example.com:8788", time.Now())}).want(http.StatusOK)
	subject := resp.Header.Get("X-Subject-Token")
	if subject == "" {
		t.Fatal("no X-Subject-Token")
	}
	if resp.str("token.project.id") != proj || resp.str("token.user.id") != user {
		t.Fatalf("token %s", resp.Body)
	}
	if m := resp.list("token.methods"); len(m) != 1 || m[0] != "ec2credential" {
		t.Fatalf("methods %v", m)
	}
	if len(resp.list("token.catalog")) == 0 || len(resp.list("token.roles")) == 0 {
		t.Fatalf("catalog/roles missing: %s", resp.Body)
	}
	// The token works.
	v := c.do("GET", "/v3/auth/tokens", c.adminToken, nil, "X-Subject-Token", subject).want(http.StatusOK)
	if v.str("token.project.id") != proj {
		t.Fatalf("validated %s", v.Body)
	}

	// Clients that sign without the port are accepted too.
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"ec2Credentials": signed(secret, "ec2.example.com", time.Now())}).want(http.StatusOK)

	// Negative cases.
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": signed("wrong-secret", "ec2.example.com:8788", time.Now())}).
		wantError(http.StatusUnauthorized, "Invalid EC2 signature.")
	tampered := signed(secret, "ec2.example.com:8788", time.Now())
	tampered["params"].(map[string]any)["Action"] = "TerminateInstances"
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": tampered}).wantError(http.StatusUnauthorized, "Invalid EC2 signature.")
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": signed(secret, "ec2.example.com:8788", time.Now().Add(-time.Hour))}).
		wantError(http.StatusUnauthorized, "Credential is expired")
	nosig := signed(secret, "ec2.example.com:8788", time.Now())
	delete(nosig, "signature")
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": nosig}).wantError(http.StatusUnauthorized, "EC2 signature not supplied.")
	unknown := signed(secret, "ec2.example.com:8788", time.Now())
	unknown["access"] = "not-a-key"
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": unknown}).wantError(http.StatusNotFound, "EC2 access key not found.")
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": map[string]any{"signature": "x"}}).wantError(http.StatusUnauthorized, "EC2 Signature not supplied")
	c.do("POST", "/v3/ec2tokens", "", map[string]any{}).wantError(http.StatusBadRequest, "request must include a request body")
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": map[string]any{"access": access, "params": "nope"}}).wantError(http.StatusBadRequest, "credentials.params")
	c.do("GET", "/v3/ec2tokens", "", nil).want(http.StatusMethodNotAllowed)

	// A user without a role on the project gets no token.
	c.do("DELETE", "/v3/projects/"+proj+"/users/"+user+"/roles/"+c.roleID("member"), c.adminToken, nil).want(http.StatusNoContent)
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": signed(secret, "ec2.example.com:8788", time.Now())}).
		wantError(http.StatusUnauthorized, "User not valid for project.")
}

func TestEC2TokensSignatureV4(t *testing.T) {
	c := newTestCloud(t)
	user, proj, tok := c.member("v4user")
	access, secret := c.ec2Cred(tok, user, proj)

	request := func(secretKey, amzDate, dateInScope string) map[string]any {
		query := map[string]string{"Action": "DescribeRegions", "Version": "2016-11-15"}
		auth, bodyHash := signV4(access, secretKey, "GET", "ec2.example.com", "/", amzDate, "RegionOne", "ec2", query, "")
		if dateInScope != "" {
			auth = strings.Replace(auth, "/"+amzDate[:8]+"/", "/"+dateInScope+"/", 1)
		}
		params := map[string]any{}
		for k, v := range query {
			params[k] = v
		}
		return map[string]any{"credentials": map[string]any{
			"access": access, "signature": auth[strings.LastIndex(auth, "=")+1:], "host": "ec2.example.com", "verb": "GET", "path": "/",
			"params": params, "body_hash": bodyHash,
			"headers": map[string]any{"Host": "ec2.example.com", "X-Amz-Date": amzDate, "Authorization": auth, "User-Agent": "aws-cli/2"},
		}}
	}
	nowDate := time.Now().UTC().Format("20060102T150405Z")
	resp := c.do("POST", "/v3/ec2tokens", "", request(secret, nowDate, "")).want(http.StatusOK)
	if resp.Header.Get("X-Subject-Token") == "" || resp.str("token.project.id") != proj {
		t.Fatalf("token %s", resp.Body)
	}
	c.do("POST", "/v3/ec2tokens", "", request("wrong", nowDate, "")).wantError(http.StatusUnauthorized, "Invalid EC2 signature.")
	// The credential scope's date must be the request's.
	c.do("POST", "/v3/ec2tokens", "", request(secret, nowDate, "19990101")).wantError(http.StatusUnauthorized, "Invalid EC2 signature.")
	old := time.Now().Add(-2 * time.Hour).UTC().Format("20060102T150405Z")
	c.do("POST", "/v3/ec2tokens", "", request(secret, old, "")).wantError(http.StatusUnauthorized, "Credential is expired")
	tampered := request(secret, nowDate, "")
	tampered["credentials"].(map[string]any)["path"] = "/admin"
	c.do("POST", "/v3/ec2tokens", "", tampered).wantError(http.StatusUnauthorized, "Invalid EC2 signature.")
}

func TestS3Tokens(t *testing.T) {
	c := newTestCloud(t)
	user, proj, tok := c.member("s3user")
	access, secret := c.ec2Cred(tok, user, proj)

	// Signature v2 (HMAC-SHA1 over the string to sign).
	sts := "GET\n\n\n" + time.Now().UTC().Format(http.TimeFormat) + "\n/bucket/object"
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(sts))
	v2 := base64.StdEncoding.EncodeToString(m.Sum(nil))
	body := func(stringToSign, sig string) map[string]any {
		return map[string]any{"credentials": map[string]any{"access": access, "token": base64.URLEncoding.EncodeToString([]byte(stringToSign)), "signature": sig}}
	}
	resp := c.do("POST", "/v3/s3tokens", "", body(sts, v2)).want(http.StatusOK)
	if resp.str("token.project.id") != proj || resp.str("token.user.id") != user {
		t.Fatalf("token %s", resp.Body)
	}
	if resp.Header.Get("X-Subject-Token") != "" {
		t.Fatal("s3tokens should not set X-Subject-Token")
	}
	c.do("POST", "/v3/s3tokens", "", body(sts+"x", v2)).wantError(http.StatusUnauthorized, "Credential signature mismatch")

	// Signature v4: the string to sign starts with AWS4-HMAC-SHA256.
	date := time.Now().UTC()
	scope := date.Format("20060102") + "/RegionOne/s3/aws4_request"
	sts4 := "AWS4-HMAC-SHA256\n" + date.Format("20060102T150405Z") + "\n" + scope + "\n" + strings.Repeat("ab", 32)
	k := hmac256([]byte("AWS4"+secret), date.Format("20060102"))
	k = hmac256(hmac256(hmac256(k, "RegionOne"), "s3"), "aws4_request")
	v4 := hex.EncodeToString(hmac256(k, sts4))
	c.do("POST", "/v3/s3tokens", "", body(sts4, v4)).want(http.StatusOK)
	c.do("POST", "/v3/s3tokens", "", body(sts4, strings.Repeat("0", 64))).wantError(http.StatusUnauthorized, "Credential signature mismatch")
	// Only the s3, iam and sts services are signed for.
	badScope := strings.Replace(sts4, "/s3/", "/ec2/", 1)
	c.do("POST", "/v3/s3tokens", "", body(badScope, v4)).wantError(http.StatusUnauthorized, "Invalid EC2 signature.")
}

// appCredToken creates an application credential with the given roles
// and authenticates with it.
func (c *testCloud) appCredToken(userToken, userID string, unrestricted bool, roles ...string) (id, token string) {
	c.t.Helper()
	var refs []any
	for _, r := range roles {
		refs = append(refs, map[string]any{"name": r})
	}
	resp := c.do("POST", "/v3/users/"+userID+"/application_credentials", userToken, map[string]any{"application_credential": map[string]any{
		"name": newID(), "roles": refs, "unrestricted": unrestricted}}).want(http.StatusCreated)
	id, secret := resp.str("application_credential.id"), resp.str("application_credential.secret")
	auth := c.do("POST", "/v3/auth/tokens", "", map[string]any{"auth": map[string]any{"identity": map[string]any{
		"methods": []string{"application_credential"}, "application_credential": map[string]any{"id": id, "secret": secret}}}}).want(http.StatusCreated)
	return id, auth.Header.Get("X-Subject-Token")
}

func TestEC2CredentialDelegation(t *testing.T) {
	c := newTestCloud(t)
	user, proj, tok := c.member("delegating")
	acID, acTok := c.appCredToken(tok, user, true, "reader")

	// A credential made with an application credential's token carries it,
	// and so do the tokens ec2tokens issues for it: reader only.
	access, secret := c.ec2Cred(acTok, user, proj)
	blob := c.do("GET", "/v3/credentials/"+hashAccessKey(access), tok, nil).want(http.StatusOK).str("credential.blob")
	if !strings.Contains(blob, acID) {
		t.Fatalf("blob %s lacks the application credential", blob)
	}
	params := map[string]string{"Action": "DescribeInstances", "Timestamp": time.Now().UTC().Format(time.RFC3339)}
	sig := signV2(secret, "POST", "ec2.example.com", "/", params)
	p := map[string]any{}
	for k, v := range params {
		p[k] = v
	}
	resp := c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": map[string]any{
		"access": access, "signature": sig, "host": "ec2.example.com", "verb": "POST", "path": "/", "params": p}}).want(http.StatusOK)
	if resp.str("token.application_credential.id") != acID {
		t.Fatalf("token %s", resp.Body)
	}
	if roles := resp.list("token.roles"); len(roles) != 1 || roles[0].(map[string]any)["name"] != "reader" {
		t.Fatalf("roles %v", roles)
	}

	// A delegated token stays within its project.
	c.do("POST", "/v3/users/"+user+"/credentials/OS-EC2", acTok, map[string]any{"tenant_id": c.adminProj}).want(http.StatusForbidden)
	c.do("POST", "/v3/credentials", acTok, map[string]any{"credential": map[string]any{"type": "cert", "user_id": user, "blob": "x"}}).want(http.StatusForbidden)
	// A restricted application credential may not mint ec2 credentials.
	_, restricted := c.appCredToken(tok, user, false, "member")
	c.do("POST", "/v3/users/"+user+"/credentials/OS-EC2", restricted, map[string]any{"tenant_id": proj}).want(http.StatusForbidden)
	c.do("POST", "/v3/credentials", restricted, map[string]any{"credential": map[string]any{
		"type": "ec2", "user_id": user, "project_id": proj, "blob": `{"access":"x","secret":"y"}`}}).want(http.StatusForbidden)
	// Deleting the application credential invalidates what it made.
	c.do("DELETE", "/v3/users/"+user+"/application_credentials/"+acID, tok, nil).want(http.StatusNoContent)
	c.do("POST", "/v3/ec2tokens", "", map[string]any{"credentials": map[string]any{
		"access": access, "signature": sig, "host": "ec2.example.com", "verb": "POST", "path": "/", "params": p}}).want(http.StatusUnauthorized)
}
