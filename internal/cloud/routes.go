package cloud

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/vpcroute"
)

// vpcRoutes keeps the VPC's routes for this host's routed external CIDRs
// in step with what the agent serves: new CIDRs get a route to this host,
// CIDRs no longer served lose theirs. A failed call is tried again after
// the next sync.
type vpcRoutes struct {
	router vpcroute.Router
	log    *slog.Logger

	mu   sync.Mutex
	have map[netip.Prefix]bool // guarded by mu
}

func newVPCRoutes(ctx context.Context, rc config.RouteControllerConfig, log *slog.Logger) (*vpcRoutes, error) {
	r, err := vpcroute.New(ctx, vpcroute.Config{
		Provider: vpcroute.Provider(rc.Provider), RouteTableID: rc.RouteTableID, Region: rc.Region, InstanceID: rc.InstanceID,
		AccessKeyID: rc.AccessKeyID, AccessKeySecret: rc.AccessKeySecret, SessionToken: rc.SessionToken,
		ReplaceConflicting: rc.ReplaceConflicting, Endpoint: rc.Endpoint, MetadataURL: rc.MetadataURL,
	})
	if err != nil {
		return nil, err
	}
	return &vpcRoutes{router: r, log: log, have: map[netip.Prefix]bool{}}, nil
}

// sync ensures routes for cidrs and removes those of CIDRs gone.
func (v *vpcRoutes) sync(ctx context.Context, cidrs []netip.Prefix) {
	v.mu.Lock()
	defer v.mu.Unlock()
	want := map[netip.Prefix]bool{}
	for _, p := range cidrs {
		want[p] = true
		if v.have[p] {
			continue
		}
		if err := v.router.EnsureRoute(ctx, p); err != nil {
			v.log.Error("VPC route to this host", "cidr", p, "err", err)
			continue
		}
		v.have[p] = true
		v.log.Info("VPC route points at this host", "cidr", p)
	}
	for p := range v.have {
		if want[p] {
			continue
		}
		if err := v.router.RemoveRoute(ctx, p); err != nil {
			v.log.Error("remove VPC route", "cidr", p, "err", err)
			continue
		}
		delete(v.have, p)
		v.log.Info("VPC route removed", "cidr", p)
	}
}
