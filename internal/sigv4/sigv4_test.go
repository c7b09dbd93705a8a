package sigv4

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The AWS Signature Version 4 test suite (aws-sig-v4-test-suite, once in
// the AWS General Reference) signs every request with these credentials,
// for service "service" in us-east-1, at 2015-08-30T12:36:00Z.
var (
	suiteSigner = Signer{
		Credentials: Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
		Region:      "us-east-1",
		Service:     "service",
	}
	suiteTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
)

const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// TestSuite checks canonical request, string to sign and Authorization
// header against cases of the published test suite.
func TestSuite(t *testing.T) {
	cases := []struct {
		name      string
		method    string
		target    string
		headers   [][2]string
		body      string
		creq      string // "" when the suite's .creq is not checked
		stsHash   string // last line of the suite's .sts; "" when not checked
		signature string
		signed    string
	}{
		{
			name: "get-vanilla", method: "GET", target: "/",
			creq:      "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + emptyHash,
			stsHash:   "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
			signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
			signed:    "host;x-amz-date",
		},
		{
			name: "get-vanilla-query-order-value", method: "GET", target: "/?Param1=value2&Param1=value1",
			creq:      "GET\n/\nParam1=value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + emptyHash,
			stsHash:   "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
			signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
			signed:    "host;x-amz-date",
		},
		{
			name: "get-vanilla-query-unreserved", method: "GET",
			target:    "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
			stsHash:   "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
			signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
			signed:    "host;x-amz-date",
		},
		{
			name: "get-unreserved", method: "GET", target: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
			stsHash:   "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
			signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
			signed:    "host;x-amz-date",
		},
		{
			name: "get-header-value-trim", method: "GET", target: "/",
			headers:   [][2]string{{"My-Header1", " value1"}, {"My-Header2", ` "a   b   c"`}},
			creq:      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" + emptyHash,
			stsHash:   "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
			signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
			signed:    "host;my-header1;my-header2;x-amz-date",
		},
		{
			name: "post-header-key-sort", method: "POST", target: "/",
			headers:   [][2]string{{"My-Header1", "value1"}},
			stsHash:   "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
			signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
			signed:    "host;my-header1;x-amz-date",
		},
		{
			// The shape of every EC2 Query API call. The suite's .creq for
			// this case lists content-length, which its .authz does not
			// sign; the .authz is what AWS verifies, so only it is checked.
			name: "post-x-www-form-urlencoded", method: "POST", target: "/",
			headers:   [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}},
			body:      "Param1=value1",
			signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
			signed:    "content-type;host;x-amz-date",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, "https://example.amazonaws.com"+c.target, strings.NewReader(c.body))
			for _, h := range c.headers {
				req.Header.Set(h[0], h[1])
			}
			hash := PayloadHash([]byte(c.body))
			suiteSigner.Sign(req, hash, suiteTime)

			creq, _ := suiteSigner.canonicalRequest(req, hash)
			if c.creq != "" && creq != c.creq {
				t.Errorf("canonical request:\n%s\nwant:\n%s", creq, c.creq)
			}
			if c.stsHash != "" {
				sts := stringToSign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", creq)
				want := "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n" + c.stsHash
				if sts != want {
					t.Errorf("string to sign:\n%s\nwant:\n%s", sts, want)
				}
			}
			wantAuth := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=" +
				c.signed + ", Signature=" + c.signature
			if got := req.Header.Get("Authorization"); got != wantAuth {
				t.Errorf("authorization:\n%s\nwant:\n%s", got, wantAuth)
			}
			if got := req.Header.Get("X-Amz-Date"); got != "20150830T123600Z" {
				t.Errorf("x-amz-date %q", got)
			}
		})
	}
}

// TestS3GetObjectExample is the "GET Object" example of the S3 SigV4
// documentation: S3 signs X-Amz-Content-Sha256 and escapes the path once.
func TestS3GetObjectExample(t *testing.T) {
	s := Signer{
		Credentials: Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
		Region:      "us-east-1", Service: "s3", S3: true,
	}
	req := httptest.NewRequest(http.MethodGet, "https://examplebucket.s3.amazonaws.com/test.txt", nil)
	req.Header.Set("Range", "bytes=0-9")
	s.Sign(req, emptyHash, time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC))
	want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("authorization:\n%s\nwant:\n%s", got, want)
	}
	if got := req.Header.Get("X-Amz-Content-Sha256"); got != emptyHash {
		t.Errorf("x-amz-content-sha256 %q", got)
	}
}

// TestSessionTokenIsSigned: temporary credentials add X-Amz-Security-Token,
// and it is covered by the signature.
func TestSessionTokenIsSigned(t *testing.T) {
	s := suiteSigner
	s.Credentials.SessionToken = "tok/en+=="
	req := httptest.NewRequest(http.MethodGet, "https://example.amazonaws.com/", nil)
	s.Sign(req, emptyHash, suiteTime)
	if got := req.Header.Get("X-Amz-Security-Token"); got != "tok/en+==" {
		t.Fatalf("x-amz-security-token %q", got)
	}
	if !strings.Contains(req.Header.Get("Authorization"), "SignedHeaders=host;x-amz-date;x-amz-security-token,") {
		t.Errorf("token not signed: %s", req.Header.Get("Authorization"))
	}
}

// TestCanonicalURI: services other than S3 escape path segments twice.
func TestCanonicalURI(t *testing.T) {
	if got := suiteSigner.canonicalURI("/a b/c"); got != "/a%2520b/c" {
		t.Errorf("double escape: %q", got)
	}
	s3 := Signer{S3: true}
	if got := s3.canonicalURI("/a b/c~d=e&f"); got != "/a%20b/c~d%3De%26f" {
		t.Errorf("s3 escape: %q", got)
	}
	if got := suiteSigner.canonicalURI(""); got != "/" {
		t.Errorf("empty path: %q", got)
	}
}

func TestCanonicalQuerySortsByKeyThenValue(t *testing.T) {
	q := map[string][]string{"a": {"2", "1"}, "a-b": {"x"}, "B": {" "}}
	if got, want := CanonicalQuery(q), "B=%20&a=1&a=2&a-b=x"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := CanonicalQuery(nil); got != "" {
		t.Errorf("empty query: %q", got)
	}
}
