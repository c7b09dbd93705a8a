// Package network is Nimbus's networking service, compatible with the
// OpenStack Neutron v2.0 API: networks with provider segments, subnets and
// subnet pools, ports with IP address management, security groups,
// routers, floating IPs, quotas and tags. It keeps the desired state in the
// database; the data-plane agents that realise it learn of changes through
// the Notifier seam.
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Range is an inclusive range of segmentation ids (VLAN ids or VXLAN VNIs).
type Range struct{ Min, Max int }

// Config configures the networking service.
type Config struct {
	// PublicURL is the service's public base URL (http://host:9696), used
	// in version documents and links; derived from the request when empty.
	PublicURL string
	// TenantNetworkType is the type of networks created without provider
	// attributes: "vxlan" (the default), "vlan" or "local".
	TenantNetworkType string
	// VXLANRanges are the VNIs tenant VXLAN networks are given; 1-65535
	// when empty.
	VXLANRanges []Range
	// VLANRanges are, per physical network, the VLAN ids tenant VLAN
	// networks are given (Neutron's network_vlan_ranges).
	VLANRanges map[string][]Range
	// PhysicalNetworks lists the physical networks flat and VLAN provider
	// networks may use; the keys of VLANRanges are always allowed. Any
	// name is accepted when both are empty.
	PhysicalNetworks []string
	// UnderlayMTU is the MTU of the host network the overlay runs on;
	// 1500 when 0. VXLAN networks get 50 bytes less.
	UnderlayMTU int
	// AvailabilityZone is the zone networks and routers are placed in;
	// "nova" when empty, as Neutron's default.
	AvailabilityZone string
	// Quotas overrides the default per-project limits by resource name
	// ("network", "port", ...); -1 is unlimited.
	Quotas map[string]int
	// Notifier learns of committed changes; nothing when nil.
	Notifier Notifier
}

// Event says that a resource changed; the data-plane agents converge on
// what the database says, so an event carries only what to look at.
type Event struct {
	// Resource is the singular resource name: network, subnet, port,
	// router, floatingip, security_group.
	Resource string
	// ID is the resource's id.
	ID string
	// Action is "create", "update" or "delete".
	Action string
	// Servers are the compute servers whose addresses the change alters
	// (the devices of the ports a floating IP joined or left), so that
	// the compute service shows them anew, as Neutron tells Nova with
	// network-changed events.
	Servers []string `json:",omitempty"`
}

// Notifier is told about committed changes, after the transaction that
// made them, so that agents can be told to converge. Notify must not block.
type Notifier interface {
	Notify(ctx context.Context, ev Event)
}

// Service serves the networking API.
type Service struct {
	cfg Config
	db  *store.DB
	api *api.Service
	log *slog.Logger
	ext *extensionRegistry
	// retries counts transactions run again after losing a race; tests
	// read it to show that races were exercised.
	retries atomic.Int64
}

// New migrates the networking schema and returns the service.
func New(ctx context.Context, cfg Config, db *store.DB, svc *api.Service, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.TenantNetworkType == "" {
		cfg.TenantNetworkType = "vxlan"
	}
	switch cfg.TenantNetworkType {
	case "vxlan", "vlan", "local":
	default:
		return nil, fmt.Errorf("network service: tenant network type %q is not one of vxlan, vlan, local", cfg.TenantNetworkType)
	}
	if len(cfg.VXLANRanges) == 0 {
		cfg.VXLANRanges = []Range{{1, 65535}}
	}
	for _, r := range cfg.VXLANRanges {
		if r.Min < 1 || r.Max > 1<<24-1 || r.Min > r.Max {
			return nil, fmt.Errorf("network service: invalid VXLAN range %d:%d", r.Min, r.Max)
		}
	}
	for phys, rs := range cfg.VLANRanges {
		for _, r := range rs {
			if r.Min < 1 || r.Max > 4094 || r.Min > r.Max {
				return nil, fmt.Errorf("network service: invalid VLAN range %s:%d:%d", phys, r.Min, r.Max)
			}
		}
	}
	if cfg.TenantNetworkType == "vlan" && len(cfg.VLANRanges) == 0 {
		return nil, errors.New("network service: tenant network type vlan needs VLAN ranges")
	}
	if cfg.UnderlayMTU == 0 {
		cfg.UnderlayMTU = 1500
	}
	if cfg.AvailabilityZone == "" {
		cfg.AvailabilityZone = "nova"
	}
	for res := range cfg.Quotas {
		if _, ok := defaultQuotas[res]; !ok {
			return nil, fmt.Errorf("network service: unknown quota resource %q", res)
		}
	}
	if err := db.Migrate(ctx, "network", schema()); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, db: db, api: svc, log: log, ext: newExtensionRegistry()}, nil
}

// notify tells the notifier about committed changes.
func (s *Service) notify(ctx context.Context, evs ...Event) {
	if s.cfg.Notifier == nil {
		return
	}
	for _, ev := range evs {
		s.cfg.Notifier.Notify(ctx, ev)
	}
}

// writeTx runs fn in a transaction, and again when it lost a race: fn
// returned store.ErrRetry (a write that lost a race for a unique value: an
// IP, a MAC, a segmentation id) or a constraint was violated. Before each
// attempt fn reads afresh, so the loser sees the winner's row and chooses
// another value or answers the conflict the client caused.
func (s *Service) writeTx(ctx context.Context, fn func(tx *store.Tx) error) error {
	err := s.db.RetryTx(ctx, 20, func(err error) bool {
		if !errors.Is(err, store.ErrRetry) && !store.IsConflict(err) {
			return false
		}
		s.retries.Add(1)
		return true
	}, fn)
	if errors.Is(err, store.ErrRetriesExhausted) {
		return nerr(http.StatusConflict, "Conflict", "The request could not be completed because of a concurrent change; please retry.")
	}
	return err
}

func newID() string { return uuid.NewString() }

// now is the time stamped on writes, at Neutron's one-second precision.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// neutronTime renders a time as Neutron does: 2016-03-08T20:19:41Z.
func neutronTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func (s *Service) baseURL(r *http.Request) string { return api.BaseURL(r, s.cfg.PublicURL) }

// caller describes who makes a request: their project and whether they
// are a cloud admin (Neutron's context_is_admin).
type caller struct {
	project string
	admin   bool
}

func (s *Service) caller(r *http.Request) caller {
	c := caller{}
	id := api.Caller(r)
	if id == nil {
		return c
	}
	c.project = id.ProjectID
	if s.api.Policy == nil {
		c.admin = id.HasRole("admin")
		return c
	}
	ok, err := s.api.Policy.Allow("context_is_admin", map[string]any{}, id)
	c.admin = err == nil && ok
	return c
}

// can reports whether the policy allows action on target; a policy
// failure counts as a denial.
func (s *Service) can(r *http.Request, action string, target map[string]any) bool {
	return s.api.Authorize(r, action, target) == nil
}

// authorize enforces action on target. Neutron answers a denied write on
// a resource the caller may see with 403 and hides the rest behind 404;
// callers have already checked visibility.
func (s *Service) authorize(r *http.Request, action string, target map[string]any) error {
	if err := s.api.Authorize(r, action, target); err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Status == http.StatusForbidden {
			return nerr(http.StatusForbidden, "PolicyNotAuthorized", "(rule:%s) is disallowed by policy", action)
		}
		return err
	}
	return nil
}

// authorizeAttrs enforces the attribute rules ("create_network:shared")
// for the attributes a request body sets.
func (s *Service) authorizeAttrs(r *http.Request, action string, target map[string]any, attrs ...string) error {
	for _, a := range attrs {
		if err := s.authorize(r, action+":"+a, target); err != nil {
			return err
		}
	}
	return nil
}

// hideAttrs drops the attributes the caller may not read ("get_network:
// provider:network_type" is admin-only by default).
func (s *Service) hideAttrs(r *http.Request, resource string, o obj, attrs ...string) {
	for _, a := range attrs {
		if _, ok := o[a]; ok && !s.can(r, "get_"+resource+":"+a, o) {
			delete(o, a)
		}
	}
}
