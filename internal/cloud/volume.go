package cloud

import (
	"context"
	"fmt"
	"net"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/policy"
	"github.com/nimbus-cloud/nimbus/internal/volume"
)

// startVolume serves the block storage (Cinder v3) API. Volumes live on
// storage hosts whose volume agents join over the bus; until one beats,
// new volumes go to error, as Cinder's scheduler leaves them.
func (c *Cloud) startVolume(ctx context.Context, ln net.Listener, metrics *api.Metrics) error {
	cfg := &c.Config
	if err := cfg.ValidateVolume(); err != nil {
		return err
	}
	tokens, authURI, err := c.serviceTokens("volume", cfg.Volume.Auth)
	if err != nil {
		return err
	}
	enforcer, err := policy.NewEnforcer(volume.DefaultPolicy)
	if err != nil {
		return fmt.Errorf("volume policy defaults: %w", err)
	}
	log := c.log.With("service", "volume")
	svc := &api.Service{Name: "volume", Errors: api.NovaErrors, Tokens: tokens,
		Policy: api.PolicyAuthorizer{Enforcer: enforcer}, AuthURI: authURI, Log: log, Metrics: metrics}
	vc := volume.Config{
		PublicURL: c.VolumeURL, Bus: c.Bus, DefaultAvailabilityZone: cfg.Volume.DefaultAvailabilityZone,
		Quotas: cfg.Volume.Quotas, ServiceDownTime: cfg.Volume.ServiceDownTime,
	}
	if c.ImageURL != "" {
		vc.Images = volume.NewImageClient(c.ImageURL)
	}
	svcVolume, err := volume.New(ctx, vc, c.DB, svc, log)
	if err != nil {
		return err
	}
	if err := svcVolume.Start(c.runCtx); err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	c.Volume = svcVolume
	c.serve(ln, svcVolume.Handler())
	return nil
}
