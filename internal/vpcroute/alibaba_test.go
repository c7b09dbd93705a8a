package vpcroute

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

var floating = netip.MustParsePrefix("203.0.113.0/24")

// fastRetry keeps tests quick while still exercising backoff.
var fastRetry = Retry{Attempts: 5, Base: time.Millisecond, Max: 4 * time.Millisecond}

func alibabaConfig(f *fakeAliyunVPC, srv *httptest.Server) Config {
	return Config{
		Provider: Alibaba, RouteTableID: "vtb-test", Region: f.region, InstanceID: "i-nimbus",
		AccessKeyID: f.keyID, AccessKeySecret: f.secret,
		Endpoint: srv.URL, MetadataURL: "http://metadata.invalid", // never read: region and instance given
		Retry: fastRetry, PendingTimeout: 5 * time.Second, PollInterval: time.Millisecond,
	}
}

func newTestRouter(t *testing.T, cfg Config) Router {
	t.Helper()
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func noAliyunAuthFails(t *testing.T, f *fakeAliyunVPC) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, why := range f.authFails {
		t.Errorf("fake refused a signature: %s", why)
	}
}

// TestAlibabaSignatureDocExample checks the signer, and the fake's
// verifier, against the worked example of Alibaba Cloud's signature
// documentation (DescribeRegions, key testid / testsecret).
func TestAlibabaSignatureDocExample(t *testing.T) {
	params := url.Values{
		"Timestamp": {"2016-02-23T12:46:24Z"}, "Format": {"XML"}, "AccessKeyId": {"testid"},
		"Action": {"DescribeRegions"}, "SignatureMethod": {"HMAC-SHA1"},
		"SignatureNonce": {"3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"}, "Version": {"2014-05-26"}, "SignatureVersion": {"1.0"},
	}
	const want = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
	if got := aliyunSignature(http.MethodGet, params, "testsecret"); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	if got := aliyunEscape("a b*c~d/é"); got != "a%20b%2Ac~d%2F%C3%A9" {
		t.Errorf("escape: %s", got)
	}

	signed := params.Encode() + "&Signature=" + url.QueryEscape(want)
	r := httptest.NewRequest(http.MethodGet, "http://ecs.aliyuncs.com/?"+signed, nil)
	if code, why := aliyunVerify(r, "testsecret"); code != "" {
		t.Fatalf("fake refused the documented request: %s %s", code, why)
	}
	r = httptest.NewRequest(http.MethodGet, "http://ecs.aliyuncs.com/?"+strings.Replace(signed, "testid", "testie", 1), nil)
	if code, _ := aliyunVerify(r, "testsecret"); code != "SignatureDoesNotMatch" {
		t.Fatalf("fake accepted a tampered request (%q)", code)
	}
}

// TestAlibabaEnsureCreatesOnceAndWaitsForPending: the entry is created
// once, EnsureRoute returns only when it is Available, and a second
// EnsureRoute changes nothing.
func TestAlibabaEnsureCreatesOnceAndWaitsForPending(t *testing.T) {
	f, srv := newFakeAliyunVPC(t)
	f.pendingPolls = 3
	r := newTestRouter(t, alibabaConfig(f, srv))
	ctx := context.Background()

	if err := r.EnsureRoute(ctx, floating); err != nil {
		t.Fatalf("EnsureRoute: %v", err)
	}
	e := f.entry("203.0.113.0/24")
	if e == nil || e.status != "Available" || e.hopType != "Instance" || e.hopID != "i-nimbus" || e.typ != "Custom" {
		t.Fatalf("entry after EnsureRoute: %+v", e)
	}
	if n := f.count("CreateRouteEntry"); n != 1 {
		t.Errorf("CreateRouteEntry called %d times, want 1", n)
	}
	if n := f.count("DescribeRouteEntryList"); n < 5 {
		t.Errorf("only %d describes: EnsureRoute did not wait through 3 pending polls", n)
	}

	describes := f.count("DescribeRouteEntryList")
	if err := r.EnsureRoute(ctx, floating); err != nil {
		t.Fatalf("second EnsureRoute: %v", err)
	}
	if n := f.count("CreateRouteEntry"); n != 1 {
		t.Errorf("second EnsureRoute created again (%d creates)", n)
	}
	if n := f.count("DescribeRouteEntryList") - describes; n != 1 {
		t.Errorf("second EnsureRoute described %d times, want 1", n)
	}
	noAliyunAuthFails(t, f)
}

// TestAlibabaEnsureWaitsForOwnPendingEntry: an entry of ours still
// Pending (a previous run's) is waited for, not created again.
func TestAlibabaEnsureWaitsForOwnPendingEntry(t *testing.T) {
	f, srv := newFakeAliyunVPC(t)
	f.seed("203.0.113.0/24", "i-nimbus")
	f.mu.Lock()
	e := f.tables["vtb-test"]["203.0.113.0/24"]
	e.status, e.polls = "Pending", 2
	f.mu.Unlock()
	r := newTestRouter(t, alibabaConfig(f, srv))
	if err := r.EnsureRoute(context.Background(), floating); err != nil {
		t.Fatalf("EnsureRoute: %v", err)
	}
	if got := f.entry("203.0.113.0/24"); got.status != "Available" {
		t.Errorf("status %s", got.status)
	}
	if n := f.count("CreateRouteEntry"); n != 0 {
		t.Errorf("created %d entries over our own pending one", n)
	}
}

// TestAlibabaConflictRefusedByDefault: a route of the CIDR to another
// instance is reported, not touched.
func TestAlibabaConflictRefusedByDefault(t *testing.T) {
	f, srv := newFakeAliyunVPC(t)
	f.seed("203.0.113.0/24", "i-other")
	r := newTestRouter(t, alibabaConfig(f, srv))
	err := r.EnsureRoute(context.Background(), floating)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("EnsureRoute over a foreign route: %v, want ErrConflict", err)
	}
	if !strings.Contains(err.Error(), "i-other") {
		t.Errorf("error does not name the current next hop: %v", err)
	}
	if e := f.entry("203.0.113.0/24"); e.hopID != "i-other" {
		t.Errorf("foreign route changed: %+v", e)
	}
	if n := f.count("CreateRouteEntry") + f.count("DeleteRouteEntry"); n != 0 {
		t.Errorf("%d changes despite the conflict", n)
	}

	// Nor may a system route be replaced, even when replacing is allowed.
	cfg := alibabaConfig(f, srv)
	cfg.ReplaceConflicting = true
	r = newTestRouter(t, cfg)
	if err := r.EnsureRoute(context.Background(), netip.MustParsePrefix("10.0.0.0/24")); !errors.Is(err, ErrConflict) {
		t.Fatalf("EnsureRoute over a system route: %v, want ErrConflict", err)
	}
	noAliyunAuthFails(t, f)
}

// TestAlibabaConflictReplaced: with ReplaceConflicting the foreign entry
// is deleted (after its deletion settles) and ours created.
func TestAlibabaConflictReplaced(t *testing.T) {
	f, srv := newFakeAliyunVPC(t)
	f.seed("203.0.113.0/24", "i-other")
	f.pendingPolls = 2
	cfg := alibabaConfig(f, srv)
	cfg.ReplaceConflicting = true
	r := newTestRouter(t, cfg)
	if err := r.EnsureRoute(context.Background(), floating); err != nil {
		t.Fatalf("EnsureRoute: %v", err)
	}
	if e := f.entry("203.0.113.0/24"); e == nil || e.hopID != "i-nimbus" || e.status != "Available" {
		t.Fatalf("entry: %+v", e)
	}
	if d, c := f.count("DeleteRouteEntry"), f.count("CreateRouteEntry"); d != 1 || c != 1 {
		t.Errorf("%d deletes and %d creates, want 1 and 1", d, c)
	}
	noAliyunAuthFails(t, f)
}

// TestAlibabaRemove: our entry is deleted and waited for; removing again
// or removing a CIDR routed to another instance changes nothing.
func TestAlibabaRemove(t *testing.T) {
	f, srv := newFakeAliyunVPC(t)
	f.pendingPolls = 2
	r := newTestRouter(t, alibabaConfig(f, srv))
	ctx := context.Background()
	if err := r.EnsureRoute(ctx, floating); err != nil {
		t.Fatalf("EnsureRoute: %v", err)
	}
	if err := r.RemoveRoute(ctx, floating); err != nil {
		t.Fatalf("RemoveRoute: %v", err)
	}
	if e := f.entry("203.0.113.0/24"); e != nil {
		t.Fatalf("entry left after RemoveRoute returned: %+v", e)
	}
	if err := r.RemoveRoute(ctx, floating); err != nil {
		t.Fatalf("second RemoveRoute: %v", err)
	}
	other := netip.MustParsePrefix("198.51.100.0/24")
	f.seed(other.String(), "i-other")
	if err := r.RemoveRoute(ctx, other); err != nil {
		t.Fatalf("RemoveRoute of a foreign route: %v", err)
	}
	if f.entry(other.String()) == nil {
		t.Error("foreign route removed")
	}
	if n := f.count("DeleteRouteEntry"); n != 1 {
		t.Errorf("%d deletes, want 1", n)
	}
	noAliyunAuthFails(t, f)
}

// TestAlibabaBadCredentials: a wrong secret or an unknown key is
// ErrCredentials, named by the cloud's code, and not retried.
func TestAlibabaBadCredentials(t *testing.T) {
	f, srv := newFakeAliyunVPC(t)
	for _, c := range []struct{ key, secret, code string }{
		{f.keyID, "wrong", "SignatureDoesNotMatch"},
		{"LTAIunknown", f.secret, "InvalidAccessKeyId.NotFound"},
	} {
		cfg := alibabaConfig(f, srv)
		cfg.AccessKeyID, cfg.AccessKeySecret = c.key, c.secret
		err := newTestRouter(t, cfg).EnsureRoute(context.Background(), floating)
		if !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), c.code) {
			t.Errorf("key %s: %v, want ErrCredentials with %s", c.key, err, c.code)
		}
		if strings.Contains(err.Error(), "attempts") {
			t.Errorf("credential error was retried: %v", err)
		}
	}
	if f.entry("203.0.113.0/24") != nil {
		t.Error("route created with bad credentials")
	}
}

// TestAlibabaThrottlingRetried: Throttling.User answers are retried with
// backoff until the call passes, or the attempts run out.
func TestAlibabaThrottlingRetried(t *testing.T) {
	f, srv := newFakeAliyunVPC(t)
	f.throttle = 3
	r := newTestRouter(t, alibabaConfig(f, srv))
	if err := r.EnsureRoute(context.Background(), floating); err != nil {
		t.Fatalf("EnsureRoute through 3 throttled answers: %v", err)
	}
	if e := f.entry("203.0.113.0/24"); e == nil || e.hopID != "i-nimbus" {
		t.Fatalf("entry: %+v", e)
	}

	f.mu.Lock()
	f.throttle = 100
	f.mu.Unlock()
	err := r.EnsureRoute(context.Background(), floating)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "Throttling.User" || errors.Is(err, ErrCredentials) {
		t.Fatalf("endless throttling: %v", err)
	}
	if !strings.Contains(err.Error(), "after 5 attempts") {
		t.Errorf("error does not say how often it tried: %v", err)
	}
	noAliyunAuthFails(t, f)
}

// TestAlibabaPendingTimeout: an entry that never leaves Pending fails
// with ErrPending after PendingTimeout.
func TestAlibabaPendingTimeout(t *testing.T) {
	f, srv := newFakeAliyunVPC(t)
	f.pendingPolls = 1 << 30
	cfg := alibabaConfig(f, srv)
	cfg.PendingTimeout, cfg.PollInterval = 50*time.Millisecond, 5*time.Millisecond
	err := newTestRouter(t, cfg).EnsureRoute(context.Background(), floating)
	if !errors.Is(err, ErrPending) || !strings.Contains(err.Error(), "Pending") {
		t.Fatalf("EnsureRoute on a stuck entry: %v, want ErrPending", err)
	}
}

// TestAlibabaSessionToken: STS credentials send their SecurityToken.
func TestAlibabaSessionToken(t *testing.T) {
	f, srv := newFakeAliyunVPC(t)
	f.token = "CAIS-sts-token/+="
	cfg := alibabaConfig(f, srv)
	if err := newTestRouter(t, cfg).EnsureRoute(context.Background(), floating); err == nil {
		t.Fatal("accepted without the security token")
	}
	cfg.SessionToken = f.token
	if err := newTestRouter(t, cfg).EnsureRoute(context.Background(), floating); err != nil {
		t.Fatalf("EnsureRoute with the security token: %v", err)
	}
	noAliyunAuthFails(t, f)
}

// TestAlibabaDiscoversFromMetadata: instance id and region come from
// 100.100.100.200's paths, with a hardening-mode token when offered and
// without one when not.
func TestAlibabaDiscoversFromMetadata(t *testing.T) {
	for _, mode := range []string{"token required", "no tokens"} {
		t.Run(mode, func(t *testing.T) {
			f, srv := newFakeAliyunVPC(t)
			md := &fakeMetadata{
				ttlHeader: "X-aliyun-ecs-metadata-token-ttl-seconds", tokenHeader: "X-aliyun-ecs-metadata-token",
				values: map[string]string{
					"/latest/meta-data/instance-id": "i-nimbus",
					"/latest/meta-data/region-id":   "cn-beijing",
				},
				requireToken: mode == "token required", noTokens: mode == "no tokens",
			}
			cfg := alibabaConfig(f, srv)
			cfg.InstanceID, cfg.Region, cfg.MetadataURL = "", "", newFakeMetadata(t, md).URL
			r := newTestRouter(t, cfg)
			if err := r.EnsureRoute(context.Background(), floating); err != nil {
				t.Fatalf("EnsureRoute: %v", err)
			}
			if e := f.entry("203.0.113.0/24"); e == nil || e.hopID != "i-nimbus" {
				t.Fatalf("entry: %+v", e)
			}
			if md.reads != 2 {
				t.Errorf("%d metadata reads, want 2", md.reads)
			}
			noAliyunAuthFails(t, f)
		})
	}
}
