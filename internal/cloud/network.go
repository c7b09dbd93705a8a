package cloud

import (
	"context"
	"fmt"
	"net"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/network"
	"github.com/nimbus-cloud/nimbus/internal/policy"
)

// startNetwork serves the networking API with the segment ranges and
// quotas of the network config section.
func (c *Cloud) startNetwork(ctx context.Context, ln net.Listener, metrics *api.Metrics) error {
	cfg := &c.Config
	if err := cfg.ValidateNetwork(); err != nil {
		return err
	}
	tokens, authURI, err := c.serviceTokens("network", cfg.Network.Auth)
	if err != nil {
		return err
	}
	enforcer, err := policy.NewEnforcer(network.DefaultPolicy)
	if err != nil {
		return fmt.Errorf("network policy defaults: %w", err)
	}
	vxlan, err := cfg.NetworkVXLANRanges()
	if err != nil {
		return err
	}
	vlan, err := cfg.NetworkVLANRanges()
	if err != nil {
		return err
	}
	log := c.log.With("service", "network")
	svc := &api.Service{Name: "network", Errors: network.Errors, Tokens: tokens,
		Policy: api.PolicyAuthorizer{Enforcer: enforcer}, AuthURI: authURI, Log: log, Metrics: metrics}
	n, err := network.New(ctx, network.Config{
		PublicURL:         c.NetworkURL,
		TenantNetworkType: cfg.Network.TenantNetworkType,
		VXLANRanges:       segmentRanges(vxlan),
		VLANRanges:        vlanRanges(vlan),
		PhysicalNetworks:  cfg.Network.PhysicalNetworks,
		UnderlayMTU:       cfg.Network.UnderlayMTU,
		AvailabilityZone:  cfg.Network.AvailabilityZone,
		Quotas:            cfg.Network.Quotas,
		Notifier:          busNotifier{c},
	}, c.DB, svc, log)
	if err != nil {
		return err
	}
	if err := c.receiveAgentReports(n); err != nil {
		return err
	}
	c.Network = n
	c.serve(ln, n.Handler())
	return nil
}

func segmentRanges(in []config.IDRange) []network.Range {
	out := make([]network.Range, len(in))
	for i, r := range in {
		out[i] = network.Range{Min: r.Min, Max: r.Max}
	}
	return out
}

func vlanRanges(in map[string][]config.IDRange) map[string][]network.Range {
	out := make(map[string][]network.Range, len(in))
	for physnet, rs := range in {
		out[physnet] = segmentRanges(rs)
	}
	return out
}
