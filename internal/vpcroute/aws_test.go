package vpcroute

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func awsConfig(f *fakeEC2, srv *httptest.Server) Config {
	return Config{
		Provider: AWS, RouteTableID: "rtb-test", Region: f.region, InstanceID: "i-nimbus",
		AccessKeyID: f.keyID, AccessKeySecret: f.secret,
		Endpoint: srv.URL, MetadataURL: "http://metadata.invalid", // never read: region and instance given
		Retry: fastRetry,
	}
}

func noEC2AuthFails(t *testing.T, f *fakeEC2) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, why := range f.authFails {
		t.Errorf("fake refused a signature: %s", why)
	}
}

// TestFakeEC2VerifierKnownAnswer checks the fake's verifier against the
// post-x-www-form-urlencoded case of the AWS SigV4 test suite, the shape
// of every Query API call, so that client and fake cannot share a
// misreading of the algorithm.
func TestFakeEC2VerifierKnownAnswer(t *testing.T) {
	f := &fakeEC2{keyID: "AKIDEXAMPLE", secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "service"}
	body := []byte("Param1=value1")
	r := httptest.NewRequest(http.MethodPost, "https://example.amazonaws.com/", nil)
	r.Host = "example.amazonaws.com"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "+
		"SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
	if code, why := f.verify(r, body); code != "" {
		t.Fatalf("documented request refused: %s %s", code, why)
	}
	if code, _ := f.verify(r, []byte("Param1=value2")); code != "SignatureDoesNotMatch" {
		t.Fatalf("tampered body accepted (%q)", code)
	}
}

// TestAWSEnsureCreatesRouteAndDisablesCheckOnce: the first EnsureRoute
// turns the source/destination check off and creates the route; repeats,
// other CIDRs and a new router (a restarted agent) never modify the
// instance again, and never create a route twice.
func TestAWSEnsureCreatesRouteAndDisablesCheckOnce(t *testing.T) {
	f, srv := newFakeEC2(t)
	ctx := context.Background()
	r := newTestRouter(t, awsConfig(f, srv))
	if err := r.EnsureRoute(ctx, floating); err != nil {
		t.Fatalf("EnsureRoute: %v", err)
	}
	if rt := f.route("203.0.113.0/24"); rt == nil || rt.instance != "i-nimbus" {
		t.Fatalf("route: %+v", rt)
	}
	if f.srcDst["i-nimbus"] {
		t.Fatal("source/destination check still on")
	}
	if err := r.EnsureRoute(ctx, floating); err != nil {
		t.Fatalf("second EnsureRoute: %v", err)
	}
	if err := r.EnsureRoute(ctx, netip.MustParsePrefix("198.51.100.0/24")); err != nil {
		t.Fatalf("EnsureRoute of a second CIDR: %v", err)
	}
	if err := newTestRouter(t, awsConfig(f, srv)).EnsureRoute(ctx, floating); err != nil {
		t.Fatalf("EnsureRoute from a new router: %v", err)
	}
	if n := f.count("ModifyInstanceAttribute"); n != 1 {
		t.Errorf("ModifyInstanceAttribute called %d times, want exactly 1", n)
	}
	if n := f.count("DescribeInstanceAttribute"); n != 2 {
		t.Errorf("DescribeInstanceAttribute called %d times, want 2 (once per router)", n)
	}
	if n := f.count("CreateRoute"); n != 2 {
		t.Errorf("CreateRoute called %d times, want 2 (one per CIDR)", n)
	}
	if n := f.count("ReplaceRoute"); n != 0 {
		t.Errorf("ReplaceRoute called %d times", n)
	}
	if f.srcDst["i-other"] != true {
		t.Error("another instance's check was changed")
	}
	noEC2AuthFails(t, f)
}

// TestAWSReplacesRouteToOtherTarget: a route of the CIDR to another
// instance is repointed with ReplaceRoute; the VPC's local route is not.
func TestAWSReplacesRouteToOtherTarget(t *testing.T) {
	f, srv := newFakeEC2(t)
	f.tables["rtb-test"] = append(f.tables["rtb-test"], &fakeEC2Route{cidr: "203.0.113.0/24", instance: "i-other", origin: "CreateRoute"})
	r := newTestRouter(t, awsConfig(f, srv))
	if err := r.EnsureRoute(context.Background(), floating); err != nil {
		t.Fatalf("EnsureRoute: %v", err)
	}
	if rt := f.route("203.0.113.0/24"); rt == nil || rt.instance != "i-nimbus" {
		t.Fatalf("route: %+v", rt)
	}
	if rep, cr := f.count("ReplaceRoute"), f.count("CreateRoute"); rep != 1 || cr != 0 {
		t.Errorf("%d replaces and %d creates, want 1 and 0", rep, cr)
	}
	if err := r.EnsureRoute(context.Background(), netip.MustParsePrefix("10.0.0.0/16")); !errors.Is(err, ErrConflict) {
		t.Errorf("EnsureRoute over the local route: %v, want ErrConflict", err)
	}
	noEC2AuthFails(t, f)
}

// TestAWSRemove: only a route to this instance is deleted; missing and
// foreign routes are left alone without error.
func TestAWSRemove(t *testing.T) {
	f, srv := newFakeEC2(t)
	ctx := context.Background()
	r := newTestRouter(t, awsConfig(f, srv))
	if err := r.EnsureRoute(ctx, floating); err != nil {
		t.Fatalf("EnsureRoute: %v", err)
	}
	if err := r.RemoveRoute(ctx, floating); err != nil {
		t.Fatalf("RemoveRoute: %v", err)
	}
	if rt := f.route("203.0.113.0/24"); rt != nil {
		t.Fatalf("route left: %+v", rt)
	}
	if err := r.RemoveRoute(ctx, floating); err != nil {
		t.Fatalf("second RemoveRoute: %v", err)
	}
	f.tables["rtb-test"] = append(f.tables["rtb-test"], &fakeEC2Route{cidr: "198.51.100.0/24", instance: "i-other", origin: "CreateRoute"})
	if err := r.RemoveRoute(ctx, netip.MustParsePrefix("198.51.100.0/24")); err != nil {
		t.Fatalf("RemoveRoute of a foreign route: %v", err)
	}
	if f.route("198.51.100.0/24") == nil {
		t.Error("foreign route removed")
	}
	if n := f.count("DeleteRoute"); n != 1 {
		t.Errorf("DeleteRoute called %d times, want 1", n)
	}
	noEC2AuthFails(t, f)
}

// TestAWSBadCredentials: a wrong secret (SignatureDoesNotMatch) or an
// unknown key (AuthFailure) is ErrCredentials and changes nothing.
func TestAWSBadCredentials(t *testing.T) {
	f, srv := newFakeEC2(t)
	for _, c := range []struct{ key, secret, code string }{
		{f.keyID, "wrong", "SignatureDoesNotMatch"},
		{"AKIAUNKNOWN", f.secret, "AuthFailure"},
	} {
		cfg := awsConfig(f, srv)
		cfg.AccessKeyID, cfg.AccessKeySecret = c.key, c.secret
		err := newTestRouter(t, cfg).EnsureRoute(context.Background(), floating)
		if !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), c.code) {
			t.Errorf("key %s: %v, want ErrCredentials with %s", c.key, err, c.code)
		}
		if strings.Contains(err.Error(), "attempts") {
			t.Errorf("credential error was retried: %v", err)
		}
	}
	if f.route("203.0.113.0/24") != nil || !f.srcDst["i-nimbus"] {
		t.Error("changes made with bad credentials")
	}
}

// TestAWSThrottlingRetried: RequestLimitExceeded answers are retried.
func TestAWSThrottlingRetried(t *testing.T) {
	f, srv := newFakeEC2(t)
	f.throttle = 4
	if err := newTestRouter(t, awsConfig(f, srv)).EnsureRoute(context.Background(), floating); err != nil {
		t.Fatalf("EnsureRoute through 4 throttled answers: %v", err)
	}
	if rt := f.route("203.0.113.0/24"); rt == nil || rt.instance != "i-nimbus" {
		t.Fatalf("route: %+v", rt)
	}
	if n := f.count("ModifyInstanceAttribute"); n != 1 {
		t.Errorf("ModifyInstanceAttribute succeeded %d times", n)
	}
	noEC2AuthFails(t, f)
}

// TestAWSSessionToken: temporary credentials send (and sign) their token.
func TestAWSSessionToken(t *testing.T) {
	f, srv := newFakeEC2(t)
	f.token = "FwoGZXIvYXdzEfake//token=="
	cfg := awsConfig(f, srv)
	if err := newTestRouter(t, cfg).EnsureRoute(context.Background(), floating); !errors.Is(err, ErrCredentials) {
		t.Fatalf("without the session token: %v, want ErrCredentials", err)
	}
	f.authFails = nil
	cfg.SessionToken = f.token
	if err := newTestRouter(t, cfg).EnsureRoute(context.Background(), floating); err != nil {
		t.Fatalf("EnsureRoute with the session token: %v", err)
	}
	noEC2AuthFails(t, f)
}

// TestAWSDiscoversFromIMDSv2: instance id and region come from IMDSv2
// (token required); the region found is the one signed into requests.
func TestAWSDiscoversFromIMDSv2(t *testing.T) {
	f, srv := newFakeEC2(t)
	md := &fakeMetadata{
		ttlHeader: "X-aws-ec2-metadata-token-ttl-seconds", tokenHeader: "X-aws-ec2-metadata-token",
		values: map[string]string{
			"/latest/meta-data/instance-id":      "i-nimbus",
			"/latest/meta-data/placement/region": f.region,
		},
		requireToken: true,
	}
	cfg := awsConfig(f, srv)
	cfg.InstanceID, cfg.Region, cfg.MetadataURL = "", "", newFakeMetadata(t, md).URL
	if err := newTestRouter(t, cfg).EnsureRoute(context.Background(), floating); err != nil {
		t.Fatalf("EnsureRoute: %v", err)
	}
	if rt := f.route("203.0.113.0/24"); rt == nil || rt.instance != "i-nimbus" {
		t.Fatalf("route: %+v", rt)
	}
	noEC2AuthFails(t, f)
}
