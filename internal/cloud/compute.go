package cloud

import (
	"context"
	"fmt"
	"net"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/network"
	"github.com/nimbus-cloud/nimbus/internal/policy"
)

// startCompute serves the compute API and runs its scheduler and
// reconcile loop. Guests are run by compute agents that join over the bus;
// until one reports, builds end in ERROR with "No valid host was found".
func (c *Cloud) startCompute(ctx context.Context, ln net.Listener, metrics *api.Metrics) error {
	cfg := &c.Config
	if err := cfg.ValidateCompute(); err != nil {
		return err
	}
	tokens, authURI, err := c.serviceTokens("compute", cfg.Compute.Auth)
	if err != nil {
		return err
	}
	enforcer, err := policy.NewEnforcer(compute.DefaultPolicy)
	if err != nil {
		return fmt.Errorf("compute policy defaults: %w", err)
	}
	log := c.log.With("service", "compute")
	svc := &api.Service{Name: "compute", Errors: api.NovaErrors, Tokens: tokens,
		Policy: api.PolicyAuthorizer{Enforcer: enforcer}, AuthURI: authURI, Log: log, Metrics: metrics}
	cc := cfg.Compute
	novnc, serial := c.consoleURLs()
	svcCompute, err := compute.New(ctx, compute.Config{
		PublicURL: c.ComputeURL, Bus: c.Bus, ImageURL: c.ImageURL, NetworkURL: c.NetworkURL,
		DefaultAvailabilityZone: cc.DefaultAvailabilityZone, Scheduler: cc.Scheduler,
		CPUAllocationRatio: cc.CPUAllocationRatio, RAMAllocationRatio: cc.RAMAllocationRatio, DiskAllocationRatio: cc.DiskAllocationRatio,
		MaxAttempts: cc.MaxAttempts, ServiceDownTime: cc.ServiceDownTime, BuildTimeout: cc.BuildTimeout,
		Quotas: cc.Quotas, DefaultFlavors: true,
		ConsoleProxyURL: novnc, SerialProxyURL: serial,
	}, c.DB, svc, log)
	if err != nil {
		return err
	}
	if err := c.serveConsoleTokens(svcCompute); err != nil {
		return err
	}
	if err := svcCompute.Start(c.runCtx); err != nil {
		return fmt.Errorf("compute: %w", err)
	}
	// A floating IP that joins or leaves a server's port changes the
	// server's addresses; one compute API process (a queue group) passes
	// the news on to the server's agent.
	if _, err := bus.Subscribe(c.Bus, networkChangedSubject, "compute-api", func(ctx context.Context, ev network.Event) error {
		if len(ev.Servers) > 0 {
			svcCompute.NetworkChanged(ctx, ev.Servers)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("compute: network changes: %w", err)
	}
	c.Compute = svcCompute
	c.serve(ln, svcCompute.Handler())
	return nil
}
