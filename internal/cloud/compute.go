package cloud

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"

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
	volumeToken := c.computeServiceToken()
	volumeURL := c.VolumeURL
	if volumeURL == "" {
		volumeURL = c.remoteVolumeURL(ctx, volumeToken)
	}
	svcCompute, err := compute.New(ctx, compute.Config{
		PublicURL: c.ComputeURL, Bus: c.Bus, ImageURL: c.ImageURL, NetworkURL: c.NetworkURL,
		DefaultAvailabilityZone: cc.DefaultAvailabilityZone, Scheduler: cc.Scheduler,
		CPUAllocationRatio: cc.CPUAllocationRatio, RAMAllocationRatio: cc.RAMAllocationRatio, DiskAllocationRatio: cc.DiskAllocationRatio,
		MaxAttempts: cc.MaxAttempts, ServiceDownTime: cc.ServiceDownTime, BuildTimeout: cc.BuildTimeout,
		VolumeAttachTimeout: cc.VolumeAttachTimeout, Quotas: cc.Quotas, DefaultFlavors: true, VolumeURL: volumeURL, VolumeServiceToken: volumeToken.token,
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

// serviceLogin is the compute service user's session with the identity
// service, made on first use (identity may come up after compute) and
// renewed when a service answers 401.
type serviceLogin struct {
	c        *Cloud
	mu       sync.Mutex
	provider *gophercloud.ProviderClient // guarded by mu
}

func (c *Cloud) computeServiceToken() *serviceLogin { return &serviceLogin{c: c} }

// client logs in once and returns the session.
func (l *serviceLogin) client(ctx context.Context) (*gophercloud.ProviderClient, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.provider == nil {
		p, err := l.c.serviceProvider(ctx, l.c.Config.Compute.Auth)
		if err != nil {
			return nil, err
		}
		l.provider = p
	}
	return l.provider, nil
}

// token is the compute service user's token, a fresh one when renew is
// set; the compute API calls the volume service with it for work that
// finishes after a request.
func (l *serviceLogin) token(ctx context.Context, renew bool) (string, error) {
	p, err := l.client(ctx)
	if err != nil {
		return "", err
	}
	if renew {
		if err := p.Reauthenticate(ctx, p.Token()); err != nil {
			return "", fmt.Errorf("compute service login: %w", err)
		}
	}
	return p.Token(), nil
}

// remoteVolumeURL finds the volume service's base URL in the catalog
// (block-storage, alias volumev3) when this process does not serve it,
// as the compute agent finds the image and network services. A cloud
// without one has none: volume requests then answer 501.
func (c *Cloud) remoteVolumeURL(ctx context.Context, l *serviceLogin) string {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p, err := l.client(ctx)
	if err != nil {
		c.log.Warn("compute: no volume service (login for the catalog failed)", "err", err)
		return ""
	}
	sc, err := openstack.NewBlockStorageV3(p, gophercloud.EndpointOpts{Region: c.Config.Region})
	if err != nil {
		c.log.Info("compute: no volume service in the catalog", "err", err)
		return ""
	}
	u := sc.Endpoint
	if k := strings.Index(u, "/v3"); k >= 0 {
		u = u[:k]
	}
	return strings.TrimSuffix(u, "/")
}
