package vpcroute

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Alibaba Cloud VPC API constants.
const (
	aliyunVersion       = "2016-04-28"
	aliyunStatusReady   = "Available"
	aliyunNextHopType   = "Instance"
	aliyunCustomRoute   = "Custom"
	aliyunDuplicateCode = "RouterEntryConflict.Duplicated"
)

// alibabaRouter programs a custom route entry of an Alibaba Cloud VPC
// route table.
type alibabaRouter struct {
	cfg      Config
	endpoint string
	now      func() time.Time // for tests
}

var _ Router = (*alibabaRouter)(nil)

func newAlibaba(ctx context.Context, cfg Config) (*alibabaRouter, error) {
	if err := alibabaMetadata.fill(ctx, &cfg); err != nil {
		return nil, fmt.Errorf("alibaba route controller: %w", err)
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "https://vpc." + cfg.Region + ".aliyuncs.com"
	}
	return &alibabaRouter{cfg: cfg, endpoint: strings.TrimSuffix(endpoint, "/"), now: time.Now}, nil
}

// aliyunRouteEntry is one entry of DescribeRouteEntryList.
type aliyunRouteEntry struct {
	RouteEntryID         string `json:"RouteEntryId"`
	RouteTableID         string `json:"RouteTableId"`
	DestinationCidrBlock string `json:"DestinationCidrBlock"`
	Type                 string `json:"Type"`
	Status               string `json:"Status"`
	NextHops             struct {
		NextHop []struct {
			NextHopType string `json:"NextHopType"`
			NextHopID   string `json:"NextHopId"`
		} `json:"NextHop"`
	} `json:"NextHops"`
}

// pointsTo reports whether the entry's only next hop is instance id.
func (e *aliyunRouteEntry) pointsTo(id string) bool {
	hops := e.NextHops.NextHop
	return len(hops) == 1 && hops[0].NextHopType == aliyunNextHopType && hops[0].NextHopID == id
}

func (e *aliyunRouteEntry) nextHops() string {
	var parts []string
	for _, h := range e.NextHops.NextHop {
		parts = append(parts, h.NextHopType+" "+h.NextHopID)
	}
	if len(parts) == 0 {
		return "no next hop"
	}
	return strings.Join(parts, ", ")
}

// EnsureRoute implements Router.
func (a *alibabaRouter) EnsureRoute(ctx context.Context, cidr netip.Prefix) error {
	if err := checkPrefix(cidr); err != nil {
		return fmt.Errorf("alibaba ensure route: %w", err)
	}
	if err := a.ensure(ctx, cidr.String()); err != nil {
		return fmt.Errorf("alibaba ensure route %s → %s in %s: %w", cidr, a.cfg.InstanceID, a.cfg.RouteTableID, err)
	}
	return nil
}

func (a *alibabaRouter) ensure(ctx context.Context, dst string) error {
	// One client token for the creation, so that a retried
	// CreateRouteEntry whose first answer was lost creates nothing more.
	clientToken := randomHex(16)
	// A few rounds cover a route deleted or created by someone else
	// between describing and acting.
	for range 4 {
		e, err := a.describe(ctx, dst)
		if err != nil {
			return err
		}
		switch {
		case e == nil:
			if err := a.create(ctx, dst, clientToken); err != nil {
				var apiErr *APIError
				if errors.As(err, &apiErr) && apiErr.Code == aliyunDuplicateCode {
					continue // created meanwhile; look again
				}
				return err
			}
			_, err := a.waitFor(ctx, dst, "to become Available", func(e *aliyunRouteEntry) bool {
				return e != nil && e.Status == aliyunStatusReady
			})
			if err != nil {
				return err
			}
			return a.checkOurs(ctx, dst)
		case e.pointsTo(a.cfg.InstanceID):
			if e.Status == aliyunStatusReady {
				return nil
			}
			_, err := a.waitFor(ctx, dst, "to become Available", func(e *aliyunRouteEntry) bool {
				return e == nil || e.Status == aliyunStatusReady
			})
			if err != nil {
				return err
			}
		default:
			if !a.cfg.ReplaceConflicting {
				return fmt.Errorf("%w: entry %s routes to %s (replace_conflicting is off)", ErrConflict, e.RouteEntryID, e.nextHops())
			}
			if e.Type != aliyunCustomRoute {
				return fmt.Errorf("%w: entry %s is a %s route to %s, which cannot be replaced", ErrConflict, e.RouteEntryID, e.Type, e.nextHops())
			}
			if err := a.deleteEntry(ctx, e); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("route entry for %s keeps changing under us", dst)
}

// checkOurs makes sure the Available entry is ours: someone may have
// created one for the same CIDR at the same moment.
func (a *alibabaRouter) checkOurs(ctx context.Context, dst string) error {
	e, err := a.describe(ctx, dst)
	if err != nil {
		return err
	}
	if e == nil || !e.pointsTo(a.cfg.InstanceID) {
		return fmt.Errorf("%w: route entry vanished or was replaced right after creation", ErrConflict)
	}
	return nil
}

// RemoveRoute implements Router.
func (a *alibabaRouter) RemoveRoute(ctx context.Context, cidr netip.Prefix) error {
	if err := checkPrefix(cidr); err != nil {
		return fmt.Errorf("alibaba remove route: %w", err)
	}
	dst := cidr.String()
	e, err := a.describe(ctx, dst)
	if err == nil && e != nil && e.pointsTo(a.cfg.InstanceID) {
		err = a.deleteEntry(ctx, e)
	}
	if err != nil {
		return fmt.Errorf("alibaba remove route %s in %s: %w", cidr, a.cfg.RouteTableID, err)
	}
	return nil
}

// deleteEntry deletes e once it is Available (an entry in another state
// cannot be deleted) and waits until it is gone.
func (a *alibabaRouter) deleteEntry(ctx context.Context, e *aliyunRouteEntry) error {
	dst := e.DestinationCidrBlock
	if e.Status != aliyunStatusReady {
		settled, err := a.waitFor(ctx, dst, "to settle before deletion", func(x *aliyunRouteEntry) bool {
			return x == nil || x.Status == aliyunStatusReady
		})
		if err != nil {
			return err
		}
		if settled == nil || settled.RouteEntryID != e.RouteEntryID {
			return nil // gone or replaced meanwhile; the caller looks again
		}
	}
	params := url.Values{
		"RouteTableId":         {a.cfg.RouteTableID},
		"RouteEntryId":         {e.RouteEntryID},
		"DestinationCidrBlock": {dst},
	}
	if hops := e.NextHops.NextHop; len(hops) == 1 {
		params.Set("NextHopId", hops[0].NextHopID)
	}
	if err := a.call(ctx, "DeleteRouteEntry", params, nil); err != nil {
		var apiErr *APIError
		if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Code, "NotFound") {
			return err
		}
	}
	_, err := a.waitFor(ctx, dst, "to be deleted", func(x *aliyunRouteEntry) bool {
		return x == nil || x.RouteEntryID != e.RouteEntryID
	})
	return err
}

func (a *alibabaRouter) create(ctx context.Context, dst, clientToken string) error {
	return a.call(ctx, "CreateRouteEntry", url.Values{
		"RouteTableId":         {a.cfg.RouteTableID},
		"DestinationCidrBlock": {dst},
		"NextHopType":          {aliyunNextHopType},
		"NextHopId":            {a.cfg.InstanceID},
		"RouteEntryName":       {"nimbus-floating"},
		"Description":          {"floating IPs of Nimbus host " + a.cfg.InstanceID},
		"ClientToken":          {clientToken},
	}, nil)
}

// describe returns the route entry of dst in the route table, or nil.
func (a *alibabaRouter) describe(ctx context.Context, dst string) (*aliyunRouteEntry, error) {
	var found *aliyunRouteEntry
	token := ""
	for {
		params := url.Values{
			"RouteTableId":         {a.cfg.RouteTableID},
			"DestinationCidrBlock": {dst},
			"MaxResult":            {"100"},
		}
		if token != "" {
			params.Set("NextToken", token)
		}
		var out struct {
			NextToken   string `json:"NextToken"`
			RouteEntrys struct {
				RouteEntry []aliyunRouteEntry `json:"RouteEntry"`
			} `json:"RouteEntrys"`
		}
		if err := a.call(ctx, "DescribeRouteEntryList", params, &out); err != nil {
			return nil, err
		}
		for i, e := range out.RouteEntrys.RouteEntry {
			if e.DestinationCidrBlock != dst {
				continue
			}
			// A custom entry wins over a system one of the same CIDR.
			if found == nil || e.Type == aliyunCustomRoute {
				found = &out.RouteEntrys.RouteEntry[i]
			}
		}
		if out.NextToken == "" || out.NextToken == token {
			return found, nil
		}
		token = out.NextToken
	}
}

// waitFor polls the entry of dst until done accepts it or PendingTimeout
// passes, and returns the entry done accepted.
func (a *alibabaRouter) waitFor(ctx context.Context, dst, what string, done func(*aliyunRouteEntry) bool) (*aliyunRouteEntry, error) {
	deadline := time.Now().Add(a.cfg.PendingTimeout)
	last := "absent"
	for {
		e, err := a.describe(ctx, dst)
		if err != nil {
			return nil, err
		}
		if done(e) {
			return e, nil
		}
		if e != nil {
			last = e.Status
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: waited %s for the route entry of %s %s; it is %s", ErrPending, a.cfg.PendingTimeout, dst, what, last)
		}
		t := time.NewTimer(a.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// call sends one signed RPC request, retried per cfg.Retry, and decodes
// the JSON answer into out (when not nil).
func (a *alibabaRouter) call(ctx context.Context, action string, params url.Values, out any) error {
	return a.cfg.Retry.do(ctx, func() error {
		return a.callOnce(ctx, action, params, out)
	})
}

func (a *alibabaRouter) callOnce(ctx context.Context, action string, params url.Values, out any) error {
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	q.Set("Action", action)
	q.Set("RegionId", a.cfg.Region)
	query := aliyunSignedQuery(http.MethodGet, q, a.cfg.AccessKeyID, a.cfg.AccessKeySecret, a.cfg.SessionToken, a.now(), randomHex(16))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.endpoint+"/?"+query, nil)
	if err != nil {
		return err
	}
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", action, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			RequestID string `json:"RequestId"`
			Code      string `json:"Code"`
			Message   string `json:"Message"`
		}
		_ = json.Unmarshal(body, &e) // a proxy may answer without JSON
		return &APIError{Provider: Alibaba, Action: action, Status: resp.StatusCode, Code: e.Code, Message: e.Message, RequestID: e.RequestID}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("%s: decode response: %w", action, err)
		}
	}
	return nil
}

// aliyunSignedQuery adds the common parameters to params and returns the
// signed query string to send.
func aliyunSignedQuery(method string, params url.Values, keyID, secret, token string, now time.Time, nonce string) string {
	params.Set("Format", "JSON")
	params.Set("Version", aliyunVersion)
	params.Set("AccessKeyId", keyID)
	params.Set("SignatureMethod", "HMAC-SHA1")
	params.Set("SignatureVersion", "1.0")
	params.Set("SignatureNonce", nonce)
	params.Set("Timestamp", now.UTC().Format("2006-01-02T15:04:05Z"))
	if token != "" {
		params.Set("SecurityToken", token)
	}
	return aliyunCanonicalQuery(params) + "&Signature=" + aliyunEscape(aliyunSignature(method, params, secret))
}

// aliyunSignature is signature v1 of an RPC request: base64 of the
// HMAC-SHA1, keyed with secret + "&", of
// "METHOD&%2F&" + the percent-encoded canonical query.
func aliyunSignature(method string, params url.Values, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	io.WriteString(mac, method+"&"+aliyunEscape("/")+"&"+aliyunEscape(aliyunCanonicalQuery(params)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// aliyunCanonicalQuery sorts params by name and encodes them.
func aliyunCanonicalQuery(params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		for _, v := range params[k] {
			parts = append(parts, aliyunEscape(k)+"="+aliyunEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

// aliyunEscape percent-encodes all but RFC 3986's unreserved characters,
// in upper-case hex: a space is %20, '*' is %2A, '~' stays.
func aliyunEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
