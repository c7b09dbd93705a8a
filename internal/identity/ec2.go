package identity

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// OS-EC2: EC2-style access/secret credentials under a user, and the
// /v3/ec2tokens and /v3/s3tokens calls with which the EC2 and S3 API
// front ends (ec2-api, swift's s3api) trade a signed request for a token.
// Signatures are computed exactly as keystoneclient's Ec2Signer and
// Keystone's s3tokens do, so requests signed by boto and awscli verify.

// ec2AuthTTL is how old a signed request's timestamp may be (Keystone's
// [credential] auth_ttl, 15 minutes).
const ec2AuthTTL = 15 * time.Minute

func (s *Service) ec2Routes(rt *api.Router) {
	type R = api.Route
	none := api.AuthNone
	base := "/v3/users/{user_id}/credentials/OS-EC2"
	rt.Handle(
		R{Method: http.MethodGet, Pattern: base, Handler: s.listEC2Creds},
		R{Method: http.MethodPost, Pattern: base, Handler: s.createEC2Cred},
		R{Method: http.MethodGet, Pattern: base + "/{credential_id}", Handler: s.showEC2Cred},
		R{Method: http.MethodDelete, Pattern: base + "/{credential_id}", Handler: s.deleteEC2Cred},
		R{Method: http.MethodPost, Pattern: "/v3/ec2tokens", Handler: s.ec2Tokens, Auth: none},
		R{Method: http.MethodPost, Pattern: "/v3/s3tokens", Handler: s.s3Tokens, Auth: none},
	)
}

// ec2CredJSON renders a credential in the legacy OS-EC2 shape.
func (s *Service) ec2CredJSON(r *http.Request, c *credential) map[string]any {
	var blob map[string]any
	_ = json.Unmarshal([]byte(c.Blob), &blob)
	access, _ := blob["access"].(string)
	return map[string]any{
		"user_id": c.UserID, "tenant_id": nullable(c.ProjectID), "access": access,
		"secret": blob["secret"], "trust_id": blob["trust_id"],
		"links": s.selfLinks(r, "/v3/users/"+c.UserID+"/credentials/OS-EC2/"+access),
	}
}

func (s *Service) listEC2Creds(r *http.Request) (*api.Response, error) {
	uid, err := s.ownUser(r, "identity:ec2_list_credentials")
	if err != nil {
		return nil, err
	}
	creds, err := s.listCredentialRows(r.Context(), `user_id = ? AND type = ?`, uid, credTypeEC2)
	if err != nil {
		return nil, err
	}
	return listResponse(s, r, "credentials", creds, s.ec2CredJSON), nil
}

func (s *Service) createEC2Cred(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	uid, err := s.ownUser(r, "identity:ec2_create_credential")
	if err != nil {
		return nil, err
	}
	var b struct {
		TenantID api.Optional[string] `json:"tenant_id"`
	}
	if err := api.DecodeJSONLoose(r, &b); err != nil {
		return nil, err
	}
	if b.TenantID.Value == "" {
		return nil, api.BadRequest("Invalid input for field 'tenant_id': 'tenant_id' is a required property.")
	}
	if _, err := s.getUser(ctx, uid); errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find user: %s.", uid)
	}
	if _, err := s.getProject(ctx, s.db, b.TenantID.Value); errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find project: %s.", b.TenantID.Value)
	} else if err != nil {
		return nil, err
	}
	if err := s.checkUnrestrictedAppCred(r); err != nil {
		return nil, err
	}
	if err := s.checkDelegatedScope(r, b.TenantID.Value); err != nil {
		return nil, err
	}
	d := s.callerDelegation(r)
	blob := map[string]any{"access": newID(), "secret": newID(), "trust_id": nullable(d.TrustID)}
	if d.AppCredID != "" {
		blob["app_cred_id"] = d.AppCredID
	}
	if d.AccessTokenID != "" {
		blob["access_token_id"] = d.AccessTokenID
	}
	raw, _ := json.Marshal(blob)
	c := &credential{ID: hashAccessKey(blob["access"].(string)), UserID: uid, ProjectID: b.TenantID.Value,
		Type: credTypeEC2, Blob: string(raw), Extra: "{}"}
	if err := s.insertCredential(ctx, s.db, c); err != nil {
		return nil, err
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"credential": s.ec2CredJSON(r, c)}), nil
}

// loadEC2Cred finds the user's ec2 credential named by its access key.
func (s *Service) loadEC2Cred(r *http.Request, action string) (*credential, error) {
	uid := r.PathValue("user_id")
	access := r.PathValue("credential_id")
	c, err := s.getCredential(r.Context(), hashAccessKey(access))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if c == nil || c.Type != credTypeEC2 || c.UserID != uid {
		c = nil
	}
	// Users manage their own; anyone else needs the policy's leave.
	if caller := api.Caller(r); caller == nil || caller.UserID != uid {
		if err := s.api.Authorize(r, action, credentialTarget(c)); err != nil {
			return nil, err
		}
	}
	if _, err := s.getUser(r.Context(), uid); errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find user: %s.", uid)
	}
	if c == nil {
		return nil, api.NotFound("Could not find credential: %s.", access)
	}
	return c, nil
}

func (s *Service) showEC2Cred(r *http.Request) (*api.Response, error) {
	c, err := s.loadEC2Cred(r, "identity:ec2_get_credential")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"credential": s.ec2CredJSON(r, c)}), nil
}

func (s *Service) deleteEC2Cred(r *http.Request) (*api.Response, error) {
	c, err := s.loadEC2Cred(r, "identity:ec2_delete_credential")
	if err != nil {
		return nil, err
	}
	return s.deleteResource(r.Context(), "ec2 credential", c.ID, `DELETE FROM credentials WHERE id = ?`)
}

// ec2Request is a signed request as ec2tokens and s3tokens receive it.
// Keystone passes params and headers on to the signer as they come, so
// their values are kept as JSON and stringified the way Python would.
type ec2Request struct {
	Access    string         `json:"access"`
	Signature string         `json:"signature"`
	Host      string         `json:"host"`
	Verb      string         `json:"verb"`
	Path      string         `json:"path"`
	Params    map[string]any `json:"params"`
	Headers   map[string]any `json:"headers"`
	BodyHash  string         `json:"body_hash"`
	Token     string         `json:"token"`
}

// readEC2Request reads {"credentials": {...}}, also spelled "credential"
// or "ec2Credentials" by older clients.
func readEC2Request(r *http.Request) (*ec2Request, error) {
	var env map[string]json.RawMessage
	if err := api.DecodeJSONLoose(r, &env); err != nil {
		return nil, err
	}
	if len(env) == 0 {
		return nil, api.BadRequest("request must include a request body")
	}
	for _, key := range []string{"credentials", "credential", "ec2Credentials"} {
		raw, ok := env[key]
		if !ok || string(raw) == "null" || string(raw) == "{}" {
			continue
		}
		req := &ec2Request{}
		if err := api.DecodeBytes(raw, req, false); err != nil {
			return nil, prefixField(err, key)
		}
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(raw, &fields)
		if _, ok := fields["access"]; !ok {
			break
		}
		return req, nil
	}
	return nil, api.Unauthorized("EC2 Signature not supplied")
}

// pyStr renders a JSON value the way Python's str() renders the value
// json.loads made of it, which is what the signer hashes.
func pyStr(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case nil:
		return "None"
	case bool:
		if t {
			return "True"
		}
		return "False"
	case float64:
		if t == float64(int64(t)) {
			return strconv.FormatInt(int64(t), 10)
		}
		return strconv.FormatFloat(t, 'g', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func stringMap(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = pyStr(v)
	}
	return out
}

// awsEscape percent-encodes everything but RFC 3986 unreserved characters,
// with upper-case hex, as AWS canonical query strings (and OAuth) want.
func awsEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// canonicalQuery sorts and encodes params as signature v2 and v4 do.
func canonicalQuery(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = awsEscape(k) + "=" + awsEscape(params[k])
	}
	return strings.Join(pairs, "&")
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

var errEC2Format = errors.New("unexpected signature format")

// lookupHeader finds a header by its exact name first, then ignoring case.
func lookupHeader(h map[string]string, name string) (string, bool) {
	if v, ok := h[name]; ok {
		return v, true
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// ec2Signature computes the signature keystoneclient's Ec2Signer would for
// the request: versions 0, 1 and 2 by SignatureVersion, otherwise v4 when
// the Authorization header or X-Amz-Algorithm says AWS4-HMAC-SHA256.
func ec2Signature(secret string, req *ec2Request, host string) (string, error) {
	params := stringMap(req.Params)
	headers := stringMap(req.Headers)
	key := []byte(secret)
	switch params["SignatureVersion"] {
	case "0":
		return base64.StdEncoding.EncodeToString(hmacSum(sha1.New, key, params["Action"]+params["Timestamp"])), nil
	case "1":
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		sort.SliceStable(keys, func(i, j int) bool { return strings.ToLower(keys[i]) < strings.ToLower(keys[j]) })
		m := hmac.New(sha1.New, key)
		for _, k := range keys {
			m.Write([]byte(k))
			m.Write([]byte(params[k]))
		}
		return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
	case "2":
		// The signer always signs version 2 with HMAC-SHA256 and says so.
		params["SignatureMethod"] = "HmacSHA256"
		sts := req.Verb + "\n" + host + "\n" + req.Path + "\n" + canonicalQuery(params)
		return base64.StdEncoding.EncodeToString(hmacSum(sha256.New, key, sts)), nil
	}
	v4 := false
	if auth, ok := lookupHeader(headers, "Authorization"); ok {
		v4 = strings.HasPrefix(auth, "AWS4-HMAC-SHA256")
	} else {
		v4 = params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
	}
	if !v4 {
		return "", errEC2Format
	}
	return ec2SignatureV4(secret, req.Verb, req.Path, params, headers, req.BodyHash)
}

var oldBoto = regexp.MustCompile(`^Boto/2\.[0-9]\.[0-2]`)

func ec2SignatureV4(secret, verb, path string, params, headers map[string]string, bodyHash string) (string, error) {
	authParam := func(name string) string {
		if auth, ok := lookupHeader(headers, "Authorization"); ok {
			_, after, _ := strings.Cut(auth, name+"=")
			v, _, _ := strings.Cut(after, ",")
			return v
		}
		return params["X-Amz-"+name]
	}
	date, ok := lookupHeader(headers, "X-Amz-Date")
	if !ok {
		date = params["X-Amz-Date"]
	}
	lower := map[string]string{}
	for k, v := range headers {
		lower[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	stripPort := oldBoto.MatchString(lower["user-agent"])
	signedHeaders := authParam("SignedHeaders")
	var hdrs []string
	for _, h := range strings.Split(signedHeaders, ";") {
		v, ok := lower[h]
		if !ok {
			continue
		}
		if h == "host" && stripPort {
			v, _, _ = strings.Cut(v, ":")
		}
		hdrs = append(hdrs, h+":"+v)
	}
	query := ""
	if !strings.EqualFold(verb, http.MethodPost) {
		query = canonicalQuery(params)
	}
	cr := strings.Join([]string{strings.ToUpper(verb), path, query, strings.Join(hdrs, "\n") + "\n", signedHeaders, bodyHash}, "\n")
	scope := strings.Split(authParam("Credential"), "/")
	if len(scope) < 4 || date == "" {
		return "", errEC2Format
	}
	if !strings.HasPrefix(date, scope[1]) {
		return "", errors.New("request date mismatch")
	}
	crSum := sha256.Sum256([]byte(cr))
	sts := strings.Join([]string{"AWS4-HMAC-SHA256", date, strings.Join(scope[1:], "/"), hex.EncodeToString(crSum[:])}, "\n")
	return hex.EncodeToString(hmacSum(sha256.New, sigV4Key(secret, scope[1], scope[2], scope[3]), sts)), nil
}

// sigV4Key derives the AWS signature v4 signing key.
func sigV4Key(secret, date, region, service string) []byte {
	k := hmacSum(sha256.New, []byte("AWS4"+secret), date)
	k = hmacSum(sha256.New, k, region)
	k = hmacSum(sha256.New, k, service)
	return hmacSum(sha256.New, k, "aws4_request")
}

func constantEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// checkEC2Signature verifies an ec2tokens request. Some clients sign
// without the port, so a mismatch is retried with the bare host name.
func checkEC2Signature(secret string, req *ec2Request) error {
	sig, err := ec2Signature(secret, req, req.Host)
	if err != nil {
		return api.Unauthorized("Invalid EC2 signature.")
	}
	if req.Signature == "" {
		return api.Unauthorized("EC2 signature not supplied.")
	}
	if constantEqual(req.Signature, sig) {
		return nil
	}
	if strings.Contains(req.Host, ":") {
		if u, err := url.Parse("//" + req.Host); err == nil {
			if sig, err := ec2Signature(secret, req, u.Hostname()); err == nil && constantEqual(req.Signature, sig) {
				return nil
			}
		}
	}
	return api.Unauthorized("Invalid EC2 signature.")
}

// checkS3Signature verifies an s3tokens request: token is the base64
// string to sign, HMAC-SHA1 (v2) or, when it starts with AWS4, v4.
func checkS3Signature(secret string, req *ec2Request) error {
	mismatch := api.Unauthorized("Credential signature mismatch")
	sts, err := decodeBase64Any(req.Token)
	if err != nil || req.Signature == "" {
		return mismatch
	}
	var sig string
	if !strings.HasPrefix(sts, "AWS4") {
		sig = base64.StdEncoding.EncodeToString(hmacSum(sha1.New, []byte(secret), sts))
	} else {
		parts := strings.Split(sts, "\n")
		if len(parts) != 4 || parts[0] != "AWS4-HMAC-SHA256" {
			return api.Unauthorized("Invalid EC2 signature.")
		}
		scope := strings.Split(parts[2], "/")
		if len(scope) != 4 || scope[3] != "aws4_request" || !slices.Contains([]string{"s3", "iam", "sts"}, scope[2]) {
			return api.Unauthorized("Invalid EC2 signature.")
		}
		sig = hex.EncodeToString(hmacSum(sha256.New, sigV4Key(secret, scope[0], scope[1], scope[2]), sts))
	}
	if !constantEqual(req.Signature, sig) {
		return mismatch
	}
	return nil
}

// decodeBase64Any accepts URL-safe or standard base64, padded or not.
func decodeBase64Any(s string) (string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	s = strings.NewReplacer("+", "-", "/", "_").Replace(s)
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}

// checkEC2Timestamp refuses signed requests older than the auth TTL.
func checkEC2Timestamp(req *ec2Request) error {
	params, headers := stringMap(req.Params), stringMap(req.Headers)
	ts := params["Timestamp"]
	if ts == "" {
		ts, _ = lookupHeader(headers, "X-Amz-Date")
	}
	if ts == "" {
		ts = params["X-Amz-Date"]
	}
	if ts == "" {
		return nil
	}
	t, err := parseAWSTime(ts)
	if err != nil {
		return api.Unauthorized("Credential timestamp is invalid: %s", err)
	}
	if time.Now().After(t.Add(ec2AuthTTL)) {
		return api.Unauthorized("Credential is expired")
	}
	return nil
}

func parseAWSTime(s string) (time.Time, error) {
	for _, layout := range []string{"20060102T150405Z", "20060102T150405Z0700", time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unable to parse date string %q", s)
}

func (s *Service) ec2Tokens(r *http.Request) (*api.Response, error) {
	token, body, err := s.authenticateEC2(r, checkEC2Signature)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, body).WithHeader("X-Subject-Token", token), nil
}

func (s *Service) s3Tokens(r *http.Request) (*api.Response, error) {
	_, body, err := s.authenticateEC2(r, checkS3Signature)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, body), nil
}

// authenticateEC2 checks a signed request against the ec2 credential of
// its access key and issues a token scoped to the credential's project,
// with the delegation (trust, application credential, OAuth access token)
// the credential was created under.
func (s *Service) authenticateEC2(r *http.Request, check func(secret string, req *ec2Request) error) (string, map[string]any, error) {
	ctx := r.Context()
	req, err := readEC2Request(r)
	if err != nil {
		return "", nil, err
	}
	c, err := s.getCredential(ctx, hashAccessKey(req.Access))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, api.NotFound("EC2 access key not found.")
	}
	if err != nil {
		return "", nil, err
	}
	if c.Type != credTypeEC2 {
		return "", nil, api.Unauthorized("EC2 access key not found.")
	}
	var blob struct {
		Secret        string `json:"secret"`
		TrustID       string `json:"trust_id"`
		AppCredID     string `json:"app_cred_id"`
		AccessTokenID string `json:"access_token_id"`
	}
	if err := json.Unmarshal([]byte(c.Blob), &blob); err != nil {
		return "", nil, api.Unauthorized("EC2 access key not found.")
	}
	if err := check(blob.Secret, req); err != nil {
		return "", nil, err
	}
	p, err := s.getProject(ctx, s.db, c.ProjectID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, api.NotFound("Could not find project: %s.", c.ProjectID)
	} else if err != nil {
		return "", nil, err
	}
	u, err := s.getUser(ctx, c.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, api.NotFound("Could not find user: %s.", c.UserID)
	} else if err != nil {
		return "", nil, err
	}
	if !u.Enabled || !p.Enabled {
		return "", nil, errAuth()
	}
	if err := checkEC2Timestamp(req); err != nil {
		return "", nil, err
	}
	payload := &tokenPayload{UserID: u.ID, Methods: []string{"ec2credential"}, ProjectID: p.ID, IssuedAt: now(),
		AuditIDs: []string{newAuditID()}}
	payload.ExpiresAt = payload.IssuedAt.Add(s.cfg.TokenLifetime)
	limit := func(t time.Time) {
		if !t.IsZero() && t.Before(payload.ExpiresAt) {
			payload.ExpiresAt = t
		}
	}
	switch {
	case blob.TrustID != "":
		t, err := s.getTrust(ctx, blob.TrustID)
		if err != nil {
			return "", nil, errAuth()
		}
		payload.TrustID = t.ID
		limit(t.ExpiresAt)
		if err := s.consumeTrustUse(ctx, t); err != nil {
			return "", nil, err
		}
	case blob.AppCredID != "":
		a, err := s.getAppCred(ctx, blob.AppCredID)
		if err != nil {
			return "", nil, errAuth()
		}
		if a.ProjectID != p.ID {
			return "", nil, api.Unauthorized("EC2 credential project does not match the application credential project.")
		}
		payload.AppCredID = a.ID
		limit(a.ExpiresAt)
	case blob.AccessTokenID != "":
		at, err := s.getAccessToken(ctx, blob.AccessTokenID)
		if err != nil {
			return "", nil, errAuth()
		}
		if at.ProjectID != p.ID {
			return "", nil, api.Unauthorized("EC2 credential project does not match the OAuth1 access token project.")
		}
		payload.AccessTokenID = at.ID
		limit(at.ExpiresAt)
	}
	token, err := s.issue(payload)
	if err != nil {
		return "", nil, err
	}
	v, err := s.resolveToken(ctx, token, payload)
	if errors.Is(err, errTokenInvalid) {
		return "", nil, api.Unauthorized("User not valid for project.")
	}
	if err != nil {
		return "", nil, err
	}
	body, err := s.tokenBody(r, v, true)
	if err != nil {
		return "", nil, err
	}
	return token, body, nil
}
