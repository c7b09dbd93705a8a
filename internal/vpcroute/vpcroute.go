// Package vpcroute is the optional route controller of the `routed`
// external-network mode (docs/dataplane.md): it programs the one VPC route
// that makes a host's floating CIDR reachable from the rest of the VPC —
// floating CIDR → this instance — through the cloud's own API, instead of
// the operator adding it by hand.
//
// Two clouds are implemented, each with its own request signing and no
// SDK:
//
//   - Alibaba Cloud (VPC API 2016-04-28, RPC style, signature v1 with
//     HMAC-SHA1): a custom route entry in the given route table with next
//     hop type Instance and this host's instance id. Route entries are
//     created asynchronously (Pending, then Available); EnsureRoute waits,
//     bounded by PendingTimeout, for the entry to be Available.
//   - AWS (EC2 Query API 2016-11-15, Signature Version 4): the source/
//     destination check of this instance is turned off (once, if on), then
//     CreateRoute adds the route, or ReplaceRoute repoints it when the CIDR
//     already routes to another target.
//
// Both are idempotent: they describe first and change only what differs,
// so EnsureRoute can run on every agent start and every reconcile. Calls
// that the cloud throttles or refuses because another change is in flight
// are retried with jittered exponential backoff.
//
// When the CIDR already routes somewhere else: AWS replaces the route
// (ReplaceRoute is atomic). Alibaba Cloud has no atomic replacement, only
// delete then create, which drops traffic in between and may take the
// route away from another Nimbus host during a failover; so by default
// EnsureRoute fails with ErrConflict and names the current next hop, and
// ReplaceConflicting opts into delete-then-create. RemoveRoute only ever
// deletes a route that points at this instance.
//
// # Enabling it
//
// The controller is off unless configured. The proposed configuration, in
// the host agent's section of the Nimbus config file:
//
//	network:
//	  route_controller:
//	    provider: alibaba            # or aws
//	    route_table_id: vtb-2ze…     # AWS: rtb-…
//	    region: cn-beijing           # optional: read from instance metadata
//	    instance_id: i-2ze…          # optional: read from instance metadata
//	    access_key_id: LTAI…         # or the environment, see below
//	    access_key_secret: …
//	    session_token: …             # optional: STS / temporary credentials
//	    replace_conflicting: false   # Alibaba: delete a foreign route first
//	    endpoint: ""                 # optional API endpoint override
//	    metadata_url: ""             # optional metadata service override
//
// with the secret preferably from the environment (NIMBUS_ROUTE_ACCESS_KEY_ID,
// NIMBUS_ROUTE_ACCESS_KEY_SECRET, NIMBUS_ROUTE_SESSION_TOKEN). Each field
// maps one to one onto Config. The agent calls New once at start (which
// reads the instance metadata if needed, and fails early when it cannot),
// then EnsureRoute for the floating CIDR of every `routed` external network
// the host serves, and RemoveRoute when it stops serving one.
//
// The credentials need, on Alibaba Cloud, vpc:DescribeRouteEntryList,
// vpc:CreateRouteEntry and vpc:DeleteRouteEntry on the route table; on AWS,
// ec2:DescribeRouteTables, ec2:CreateRoute, ec2:ReplaceRoute,
// ec2:DeleteRoute, ec2:DescribeInstanceAttribute and
// ec2:ModifyInstanceAttribute.
package vpcroute

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Router programs the VPC route of a floating CIDR to this host.
type Router interface {
	// EnsureRoute makes cidr route to this instance, creating the route
	// or (see the package doc) replacing one to another target. It returns
	// once the cloud reports the route in effect.
	EnsureRoute(ctx context.Context, cidr netip.Prefix) error
	// RemoveRoute deletes the route of cidr if it points at this
	// instance; a missing route, or one to another target, is left alone.
	RemoveRoute(ctx context.Context, cidr netip.Prefix) error
}

// Provider names a cloud.
type Provider string

// The supported clouds.
const (
	Alibaba Provider = "alibaba"
	AWS     Provider = "aws"
)

// Config configures a Router. Zero values mean the documented defaults.
type Config struct {
	Provider Provider
	// RouteTableID is the VPC route table to program (vtb-… / rtb-…).
	RouteTableID string
	// Region of the instance; read from the metadata service when empty.
	Region string
	// InstanceID of this host, the next hop; read from the metadata
	// service when empty.
	InstanceID string

	AccessKeyID     string
	AccessKeySecret string
	// SessionToken accompanies temporary credentials (AWS STS session
	// token, Alibaba Cloud STS SecurityToken).
	SessionToken string

	// ReplaceConflicting lets the Alibaba Cloud router delete a route of
	// the CIDR to another next hop and create its own. AWS always
	// replaces, atomically.
	ReplaceConflicting bool

	// Endpoint is the API base URL; by default https://vpc.<region>.aliyuncs.com
	// or https://ec2.<region>.amazonaws.com.
	Endpoint string
	// MetadataURL is the base URL of the instance metadata service; by
	// default http://100.100.100.200 (Alibaba Cloud) or
	// http://169.254.169.254 (AWS).
	MetadataURL string

	// Retry bounds the retries of one throttled or conflicting API call.
	Retry Retry
	// PendingTimeout bounds the wait for an Alibaba Cloud route entry to
	// become Available (or to disappear after a delete); 2 minutes by
	// default.
	PendingTimeout time.Duration
	// PollInterval is the pause between two looks at a pending route
	// entry; 2 seconds by default.
	PollInterval time.Duration

	// HTTPClient sends the requests; a client with a 30 s timeout when nil.
	HTTPClient *http.Client
}

// Retry is a jittered exponential backoff.
type Retry struct {
	// Attempts is the number of tries of one call, at least 1; 8 by default.
	Attempts int
	// Base is the first pause; 500 ms by default. Each retry doubles it.
	Base time.Duration
	// Max caps one pause; 20 s by default.
	Max time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 8
	}
	if r.Base <= 0 {
		r.Base = 500 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 20 * time.Second
	}
	return r
}

// do calls fn until it succeeds, fails with an error that retryable
// refuses, the attempts run out or ctx ends.
func (r Retry) do(ctx context.Context, fn func() error) error {
	pause := r.Base
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt >= r.Attempts || !retryable(err) || ctx.Err() != nil {
			if err != nil && attempt > 1 {
				err = fmt.Errorf("after %d attempts: %w", attempt, err)
			}
			return err
		}
		// Equal jitter: half the pause fixed, half random, so that
		// agents throttled together do not come back together.
		d := pause/2 + rand.N(pause/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up waiting to retry: %w)", err, ctx.Err())
		case <-t.C:
		}
		pause = min(pause*2, r.Max)
	}
}

// Errors callers can test for with errors.Is.
var (
	// ErrCredentials: the cloud rejected the access key, secret, token or
	// signature.
	ErrCredentials = errors.New("cloud rejected the credentials")
	// ErrPermission: the credentials are valid but lack a permission.
	ErrPermission = errors.New("credentials lack permission")
	// ErrConflict: the CIDR already routes to another next hop, and the
	// router may not replace it.
	ErrConflict = errors.New("destination already routed to another next hop")
	// ErrPending: a route entry did not settle within PendingTimeout.
	ErrPending = errors.New("route entry did not settle in time")
)

// APIError is an error answer of a cloud API.
type APIError struct {
	Provider  Provider
	Action    string // e.g. CreateRouteEntry
	Status    int    // HTTP status
	Code      string // the cloud's error code, e.g. Throttling.User
	Message   string
	RequestID string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s %s: status %d", e.Provider, e.Action, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request " + e.RequestID + ")"
	}
	return msg
}

// Is maps error codes to ErrCredentials and ErrPermission.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrCredentials:
		return credentialCodes[e.Code]
	case ErrPermission:
		return permissionCodes[e.Code]
	}
	return false
}

// transient reports whether the same call may succeed later: throttling,
// another change of the route table in flight, a server-side failure.
func (e *APIError) transient() bool {
	return transientCodes[e.Code] || e.Status >= 500
}

var credentialCodes = map[string]bool{
	// Alibaba Cloud.
	"SignatureDoesNotMatch":                      true,
	"IncompleteSignature":                        true,
	"InvalidAccessKeyId.NotFound":                true,
	"InvalidAccessKeyId.Inactive":                true,
	"InvalidAccessKeyId":                         true,
	"InvalidSecurityToken.Expired":               true,
	"InvalidSecurityToken.Malformed":             true,
	"InvalidSecurityToken.MismatchWithAccessKey": true,
	// AWS (SignatureDoesNotMatch and IncompleteSignature above too).
	"AuthFailure":                true,
	"InvalidClientTokenId":       true,
	"MissingAuthenticationToken": true,
	"ExpiredToken":               true,
}

var permissionCodes = map[string]bool{
	"Forbidden":             true,
	"Forbidden.RAM":         true,
	"NoPermission":          true,
	"UnauthorizedOperation": true,
}

var transientCodes = map[string]bool{
	// Alibaba Cloud: throttling, and the route table or entry busy with
	// another change (route entries may not change concurrently).
	"Throttling":                       true,
	"Throttling.User":                  true,
	"Throttling.Api":                   true,
	"ServiceUnavailable":               true,
	"InternalError":                    true,
	"SystemBusy":                       true,
	"UnknownError":                     true,
	"TaskConflict":                     true,
	"OperationConflict":                true,
	"IncorrectRouteEntryStatus":        true,
	"IncorrectStatus.RouteTableStatus": true,
	"IncorrectVpcStatus":               true,
	"LastTokenProcessing":              true,
	"OperationFailed.DistibuteLock":    true, // sic, as the API spells it
	// AWS.
	"RequestLimitExceeded": true,
	"ThrottlingException":  true,
	"Unavailable":          true,
	"InternalFailure":      true,
}

// retryable reports whether err is worth another try.
func retryable(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.transient()
	}
	var netErr net.Error
	return errors.As(err, &netErr) // timeouts, refused or reset connections
}

// New returns the Router of cfg.Provider, reading the region and instance
// id from the metadata service when cfg leaves them empty. It sends no
// request to the cloud's API.
func New(ctx context.Context, cfg Config) (Router, error) {
	if cfg.RouteTableID == "" {
		return nil, errors.New("vpc route controller: route table id is required")
	}
	if cfg.AccessKeyID == "" || cfg.AccessKeySecret == "" {
		return nil, errors.New("vpc route controller: access key id and secret are required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	cfg.Retry = cfg.Retry.withDefaults()
	if cfg.PendingTimeout <= 0 {
		cfg.PendingTimeout = 2 * time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	switch cfg.Provider {
	case Alibaba:
		return newAlibaba(ctx, cfg)
	case AWS:
		return newAWS(ctx, cfg)
	}
	return nil, fmt.Errorf("vpc route controller: unknown provider %q (want %q or %q)", cfg.Provider, Alibaba, AWS)
}

// checkPrefix refuses an invalid prefix or one with host bits set, which
// the clouds would silently mask.
func checkPrefix(cidr netip.Prefix) error {
	if !cidr.IsValid() {
		return fmt.Errorf("invalid destination prefix %v", cidr)
	}
	if cidr != cidr.Masked() {
		return fmt.Errorf("destination prefix %v has host bits set (network is %v)", cidr, cidr.Masked())
	}
	return nil
}
