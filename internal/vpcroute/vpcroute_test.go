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

// TestNewValidates: missing settings and unknown providers are refused
// before anything is contacted.
func TestNewValidates(t *testing.T) {
	good := Config{Provider: AWS, RouteTableID: "rtb-1", Region: "eu-west-1", InstanceID: "i-1", AccessKeyID: "a", AccessKeySecret: "s"}
	if _, err := New(context.Background(), good); err != nil {
		t.Fatalf("complete config refused: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"route table": func(c *Config) { c.RouteTableID = "" },
		"access key":  func(c *Config) { c.AccessKeyID = "" },
		"secret":      func(c *Config) { c.AccessKeySecret = "" },
		"provider":    func(c *Config) { c.Provider = "gcp" },
	} {
		c := good
		mutate(&c)
		if _, err := New(context.Background(), c); err == nil {
			t.Errorf("config without %s accepted", name)
		}
	}
}

// TestNewMetadataUnreachable: off a cloud instance, a missing instance id
// fails New with a hint instead of a hang.
func TestNewMetadataUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	_, err := New(context.Background(), Config{Provider: Alibaba, RouteTableID: "vtb-1", AccessKeyID: "a", AccessKeySecret: "s", MetadataURL: url})
	if err == nil || !strings.Contains(err.Error(), "instance id") {
		t.Fatalf("New without metadata: %v", err)
	}
}

// TestPrefixChecked: invalid prefixes and prefixes with host bits are
// refused before any request.
func TestPrefixChecked(t *testing.T) {
	r, err := New(context.Background(), Config{Provider: Alibaba, RouteTableID: "vtb-1", Region: "cn-beijing", InstanceID: "i-1",
		AccessKeyID: "a", AccessKeySecret: "s", Endpoint: "http://api.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []netip.Prefix{{}, netip.MustParsePrefix("203.0.113.7/24")} {
		if err := r.EnsureRoute(context.Background(), p); err == nil || errors.Is(err, ErrCredentials) {
			t.Errorf("EnsureRoute(%v): %v", p, err)
		}
	}
}

// TestAPIErrorClassification: codes map to the sentinels and to retrying.
func TestAPIErrorClassification(t *testing.T) {
	cases := []struct {
		code             string
		status           int
		creds, transient bool
	}{
		{"SignatureDoesNotMatch", 400, true, false},
		{"InvalidAccessKeyId.NotFound", 404, true, false},
		{"AuthFailure", 401, true, false},
		{"Throttling.User", 400, false, true},
		{"IncorrectRouteEntryStatus", 400, false, true},
		{"RequestLimitExceeded", 503, false, true},
		{"", 502, false, true},
		{"InvalidRouteTableId.NotFound", 400, false, false},
	}
	for _, c := range cases {
		e := &APIError{Code: c.code, Status: c.status}
		if errors.Is(e, ErrCredentials) != c.creds || e.transient() != c.transient {
			t.Errorf("%s/%d: credentials %v transient %v", c.code, c.status, errors.Is(e, ErrCredentials), e.transient())
		}
	}
	if !errors.Is(&APIError{Code: "UnauthorizedOperation"}, ErrPermission) {
		t.Error("UnauthorizedOperation is not ErrPermission")
	}
}
