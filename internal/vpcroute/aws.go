package vpcroute

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/sigv4"
)

const ec2Version = "2016-11-15"

// awsRouter programs a route of an AWS VPC route table to this instance.
type awsRouter struct {
	cfg      Config
	endpoint string
	signer   sigv4.Signer
	now      func() time.Time // for tests

	mu            sync.Mutex
	checkDisabled bool // source/dest check known to be off; guarded by mu
}

var _ Router = (*awsRouter)(nil)

func newAWS(ctx context.Context, cfg Config) (*awsRouter, error) {
	if err := awsMetadata.fill(ctx, &cfg); err != nil {
		return nil, fmt.Errorf("aws route controller: %w", err)
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "https://ec2." + cfg.Region + ".amazonaws.com"
		if strings.HasPrefix(cfg.Region, "cn-") {
			endpoint += ".cn"
		}
	}
	return &awsRouter{
		cfg:      cfg,
		endpoint: strings.TrimSuffix(endpoint, "/"),
		signer: sigv4.Signer{
			Credentials: sigv4.Credentials{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.AccessKeySecret, SessionToken: cfg.SessionToken},
			Region:      cfg.Region,
			Service:     "ec2",
		},
		now: time.Now,
	}, nil
}

// ec2Route is one route of DescribeRouteTables.
type ec2Route struct {
	DestinationCidrBlock     string `xml:"destinationCidrBlock"`
	DestinationIpv6CidrBlock string `xml:"destinationIpv6CidrBlock"`
	GatewayID                string `xml:"gatewayId"`
	InstanceID               string `xml:"instanceId"`
	NetworkInterfaceID       string `xml:"networkInterfaceId"`
	NatGatewayID             string `xml:"natGatewayId"`
	TransitGatewayID         string `xml:"transitGatewayId"`
	VpcPeeringConnectionID   string `xml:"vpcPeeringConnectionId"`
	State                    string `xml:"state"`
	Origin                   string `xml:"origin"`
}

// EnsureRoute implements Router.
func (a *awsRouter) EnsureRoute(ctx context.Context, cidr netip.Prefix) error {
	if err := checkPrefix(cidr); err != nil {
		return fmt.Errorf("aws ensure route: %w", err)
	}
	if err := a.ensure(ctx, cidr); err != nil {
		return fmt.Errorf("aws ensure route %s → %s in %s: %w", cidr, a.cfg.InstanceID, a.cfg.RouteTableID, err)
	}
	return nil
}

func (a *awsRouter) ensure(ctx context.Context, cidr netip.Prefix) error {
	// Without this the VPC drops every packet the host forwards for the
	// floating CIDR, route or not.
	if err := a.disableSourceDestCheck(ctx); err != nil {
		return err
	}
	for range 3 {
		r, err := a.findRoute(ctx, cidr)
		if err != nil {
			return err
		}
		switch {
		case r == nil:
			err := a.call(ctx, "CreateRoute", a.routeParams(cidr), nil)
			var apiErr *APIError
			if errors.As(err, &apiErr) && apiErr.Code == "RouteAlreadyExists" {
				continue // created meanwhile; look again
			}
			return err
		case r.InstanceID == a.cfg.InstanceID:
			return nil
		case r.Origin == "CreateRouteTable":
			return fmt.Errorf("%w: %s is the VPC's local route", ErrConflict, cidr)
		default:
			err := a.call(ctx, "ReplaceRoute", a.routeParams(cidr), nil)
			var apiErr *APIError
			if errors.As(err, &apiErr) && apiErr.Code == "InvalidRoute.NotFound" {
				continue // deleted meanwhile; look again
			}
			return err
		}
	}
	return fmt.Errorf("route for %s keeps changing under us", cidr)
}

// RemoveRoute implements Router.
func (a *awsRouter) RemoveRoute(ctx context.Context, cidr netip.Prefix) error {
	if err := checkPrefix(cidr); err != nil {
		return fmt.Errorf("aws remove route: %w", err)
	}
	r, err := a.findRoute(ctx, cidr)
	if err == nil && r != nil && r.InstanceID == a.cfg.InstanceID {
		params := url.Values{"RouteTableId": {a.cfg.RouteTableID}}
		params.Set(destinationParam(cidr), cidr.String())
		err = a.call(ctx, "DeleteRoute", params, nil)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Code == "InvalidRoute.NotFound" {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("aws remove route %s in %s: %w", cidr, a.cfg.RouteTableID, err)
	}
	return nil
}

func destinationParam(cidr netip.Prefix) string {
	if cidr.Addr().Is6() {
		return "DestinationIpv6CidrBlock"
	}
	return "DestinationCidrBlock"
}

func (a *awsRouter) routeParams(cidr netip.Prefix) url.Values {
	p := url.Values{
		"RouteTableId": {a.cfg.RouteTableID},
		"InstanceId":   {a.cfg.InstanceID},
	}
	p.Set(destinationParam(cidr), cidr.String())
	return p
}

// findRoute returns the route of cidr in the route table, or nil.
func (a *awsRouter) findRoute(ctx context.Context, cidr netip.Prefix) (*ec2Route, error) {
	var out struct {
		RouteTables []struct {
			ID     string     `xml:"routeTableId"`
			Routes []ec2Route `xml:"routeSet>item"`
		} `xml:"routeTableSet>item"`
	}
	if err := a.call(ctx, "DescribeRouteTables", url.Values{"RouteTableId.1": {a.cfg.RouteTableID}}, &out); err != nil {
		return nil, err
	}
	for _, t := range out.RouteTables {
		if t.ID != a.cfg.RouteTableID {
			continue
		}
		for i, r := range t.Routes {
			dst := r.DestinationCidrBlock
			if cidr.Addr().Is6() {
				dst = r.DestinationIpv6CidrBlock
			}
			if p, err := netip.ParsePrefix(dst); err == nil && p == cidr {
				return &t.Routes[i], nil
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("route table %s not in the DescribeRouteTables answer", a.cfg.RouteTableID)
}

// disableSourceDestCheck turns the instance's source/destination check
// off if it is on, and remembers that it is off.
func (a *awsRouter) disableSourceDestCheck(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.checkDisabled {
		return nil
	}
	var attr struct {
		SourceDestCheck struct {
			Value string `xml:"value"`
		} `xml:"sourceDestCheck"`
	}
	err := a.call(ctx, "DescribeInstanceAttribute", url.Values{
		"InstanceId": {a.cfg.InstanceID},
		"Attribute":  {"sourceDestCheck"},
	}, &attr)
	if err != nil {
		return err
	}
	if attr.SourceDestCheck.Value != "false" {
		err := a.call(ctx, "ModifyInstanceAttribute", url.Values{
			"InstanceId":            {a.cfg.InstanceID},
			"SourceDestCheck.Value": {"false"},
		}, nil)
		if err != nil {
			return fmt.Errorf("disable source/destination check: %w", err)
		}
	}
	a.checkDisabled = true
	return nil
}

// call sends one signed Query API request, retried per cfg.Retry, and
// decodes the XML answer into out (when not nil).
func (a *awsRouter) call(ctx context.Context, action string, params url.Values, out any) error {
	return a.cfg.Retry.do(ctx, func() error {
		return a.callOnce(ctx, action, params, out)
	})
}

func (a *awsRouter) callOnce(ctx context.Context, action string, params url.Values, out any) error {
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("Action", action)
	form.Set("Version", ec2Version)
	body := []byte(sigv4.CanonicalQuery(form))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	a.signer.Sign(req, sigv4.PayloadHash(body), a.now())
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", action, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Errors []struct {
				Code    string `xml:"Code"`
				Message string `xml:"Message"`
			} `xml:"Errors>Error"`
			RequestID string `xml:"RequestID"`
		}
		_ = xml.Unmarshal(b, &e) // a proxy may answer without XML
		apiErr := &APIError{Provider: AWS, Action: action, Status: resp.StatusCode, RequestID: e.RequestID}
		if len(e.Errors) > 0 {
			apiErr.Code, apiErr.Message = e.Errors[0].Code, e.Errors[0].Message
		}
		return apiErr
	}
	if out != nil {
		if err := xml.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: decode response: %w", action, err)
		}
	}
	return nil
}
