// Package sigv4 signs HTTP requests with AWS Signature Version 4, for the
// AWS APIs Nimbus speaks itself (S3 for the image store, EC2 for the VPC
// route controller) without pulling in an SDK.
//
// Only the Authorization-header form is implemented (no presigned URLs,
// no chunked uploads). The algorithm is the one of the AWS General
// Reference, "Create a signed AWS API request", and is checked against the
// published Signature Version 4 test suite.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Algorithm is the value that starts the Authorization header.
const Algorithm = "AWS4-HMAC-SHA256"

// UnsignedPayload may stand in for the payload hash of S3 requests whose
// body is not signed.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// Credentials are an access key pair and, for temporary credentials, the
// session token that goes with it.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken is sent as X-Amz-Security-Token when set.
	SessionToken string
}

// Signer signs requests for one service in one region.
type Signer struct {
	Credentials Credentials
	Region      string // e.g. "eu-west-1"
	Service     string // signing name, e.g. "s3", "ec2"
	// S3 selects the S3 variant: the path is escaped once (other services
	// escape it twice) and X-Amz-Content-Sha256 is set to the payload hash,
	// which S3 requires.
	S3 bool
}

// unsignedHeaders are never signed: they are hop-by-hop, set by the
// transport, or the signature itself.
var unsignedHeaders = map[string]bool{
	"authorization":     true,
	"user-agent":        true,
	"expect":            true,
	"connection":        true,
	"x-amzn-trace-id":   true,
	"transfer-encoding": true,
}

// PayloadHash returns the lowercase hex SHA-256 of body, the payload hash
// Sign wants.
func PayloadHash(body []byte) string {
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:])
}

// Sign adds X-Amz-Date, X-Amz-Security-Token (with a session token),
// X-Amz-Content-Sha256 (for S3) and Authorization to req, signing the host
// and every other header req carries at this point. payloadHash is
// PayloadHash of the body (or UnsignedPayload for S3). Headers added to req
// after Sign are not covered by the signature.
func (s Signer) Sign(req *http.Request, payloadHash string, now time.Time) {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	req.Header.Set("X-Amz-Date", amzDate)
	if s.Credentials.SessionToken != "" {
		req.Header.Set("X-Amz-Security-Token", s.Credentials.SessionToken)
	}
	if s.S3 {
		req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	}
	creq, signedHeaders := s.canonicalRequest(req, payloadHash)
	scope := s.scope(now)
	sig := hex.EncodeToString(hmacSHA256(s.signingKey(now), stringToSign(amzDate, scope, creq)))
	req.Header.Set("Authorization", Algorithm+" Credential="+s.Credentials.AccessKeyID+"/"+scope+
		", SignedHeaders="+signedHeaders+", Signature="+sig)
}

// scope is the credential scope: day/region/service/aws4_request.
func (s Signer) scope(t time.Time) string {
	return t.Format("20060102") + "/" + s.Region + "/" + s.Service + "/aws4_request"
}

func (s Signer) signingKey(t time.Time) []byte {
	k := hmacSHA256([]byte("AWS4"+s.Credentials.SecretAccessKey), t.Format("20060102"))
	k = hmacSHA256(k, s.Region)
	k = hmacSHA256(k, s.Service)
	return hmacSHA256(k, "aws4_request")
}

func stringToSign(amzDate, scope, canonicalRequest string) string {
	return Algorithm + "\n" + amzDate + "\n" + scope + "\n" + PayloadHash([]byte(canonicalRequest))
}

// canonicalRequest returns the canonical request of req and its signed
// header list.
func (s Signer) canonicalRequest(req *http.Request, payloadHash string) (string, string) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	values := map[string]string{"host": host}
	for name, vs := range req.Header {
		lname := strings.ToLower(name)
		if unsignedHeaders[lname] || lname == "host" {
			continue
		}
		trimmed := make([]string, len(vs))
		for i, v := range vs {
			trimmed[i] = trimAll(v)
		}
		values[lname] = strings.Join(trimmed, ",")
	}
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	var headers strings.Builder
	for _, n := range names {
		headers.WriteString(n + ":" + values[n] + "\n")
	}
	signed := strings.Join(names, ";")

	query, _ := url.ParseQuery(req.URL.RawQuery) // a malformed query fails at the server anyway
	return strings.Join([]string{
		req.Method,
		s.canonicalURI(req.URL.Path),
		CanonicalQuery(query),
		headers.String(),
		signed,
		payloadHash,
	}, "\n"), signed
}

// canonicalURI escapes each segment of the decoded path: once for S3,
// twice for every other service.
func (s Signer) canonicalURI(path string) string {
	if path == "" {
		return "/"
	}
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		seg = Escape(seg, true)
		if !s.S3 {
			seg = Escape(seg, true)
		}
		segs[i] = seg
	}
	return strings.Join(segs, "/")
}

// CanonicalQuery encodes q sorted by key and then value, as SigV4 wants;
// the result can also go on the wire as is.
func CanonicalQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	type kv struct{ k, v string }
	pairs := make([]kv, 0, len(q))
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, kv{Escape(k, true), Escape(v, true)})
		}
	}
	// By key, then value: sorting the joined "k=v" strings would put
	// "a-b=…" before "a=…".
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p.k + "=" + p.v
	}
	return strings.Join(out, "&")
}

// Escape percent-encodes every byte but the unreserved characters of RFC
// 3986 (and '/' when encodeSlash is false), with upper-case hex, as SigV4
// specifies.
func Escape(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// trimAll trims a header value and collapses its inner runs of spaces to
// one, as canonical headers require.
func trimAll(v string) string {
	return strings.Join(strings.Fields(v), " ")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
