package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	"github.com/nimbus-cloud/nimbus/internal/netagent"
	"github.com/nimbus-cloud/nimbus/internal/network"
)

// networkChangedSubject is where the networking service announces each
// committed change; every host's agent then reads its state again.
const networkChangedSubject = "nimbus.network.changed"

// agentReportSubject carries the agents' heartbeats to the networking
// service (one controller of the queue group takes each).
const agentReportSubject = "nimbus.network.agent-report"

// portStatusSubject carries the ports each host's agent has wired to the
// networking service, which marks them ACTIVE.
const portStatusSubject = "nimbus.network.port-status"

// agentTypes are the Neutron agents one Nimbus host agent stands for.
var agentTypes = []struct{ typ, topic string }{
	{network.AgentLinuxBridge, "N/A"}, {network.AgentDHCP, "dhcp_agent"}, {network.AgentL3, "l3_agent"}, {network.AgentMetadata, "N/A"},
}

// receiveAgentReports records agents' heartbeats in the networking service.
func (c *Cloud) receiveAgentReports(n *network.Service) error {
	_, err := bus.Subscribe(c.Bus, agentReportSubject, "network", func(ctx context.Context, rep network.AgentReport) error {
		_, err := n.ReportAgent(ctx, rep)
		return err
	})
	if err != nil {
		return fmt.Errorf("network agent reports: %w", err)
	}
	_, err = bus.Subscribe(c.Bus, portStatusSubject, "network", func(ctx context.Context, rep network.PortStatusReport) error {
		changed, err := n.ReportPortStatus(ctx, rep)
		if len(changed) > 0 {
			c.log.Debug("port status from agent", "host", rep.Host, "changed", changed)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("network port status reports: %w", err)
	}
	return nil
}

// busNotifier publishes the networking service's changes on the bus.
type busNotifier struct {
	c *Cloud
}

func (n busNotifier) Notify(ctx context.Context, ev network.Event) {
	if err := bus.Publish(ctx, n.c.Bus, networkChangedSubject, ev); err != nil {
		n.c.log.Warn("announce network change", "resource", ev.Resource, "id", ev.ID, "err", err)
	}
}

// startNetworkAgent runs this host's networking agent: the Linux data
// plane, fed from the networking API as the network service user (or the
// bootstrap admin when identity runs here and no such user is set).
func (c *Cloud) startNetworkAgent(ctx context.Context) error {
	ac := c.Config.Network.Agent
	if !ac.Enabled.Enabled() {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("network.agent.enabled needs root: the agent creates bridges, namespaces and nftables tables")
	}
	host, err := c.agentHost()
	if err != nil {
		return err
	}
	var vtep netip.Addr
	if ac.VTEP != "" {
		var err error
		if vtep, err = netip.ParseAddr(ac.VTEP); err != nil {
			return fmt.Errorf("config: network.agent.vtep: %w", err)
		}
	}
	cloudKind := dataplane.DetectPublicCloud("/")
	mode := dataplane.ExternalMode(ac.ExternalMode)
	if ac.ExternalMode == "auto" {
		mode = dataplane.DefaultExternalMode(cloudKind)
		if len(ac.PhysicalInterfaces) == 0 {
			// No NIC to bridge external networks to: route them, so
			// that at least this host reaches floating IPs.
			mode = dataplane.ExternalRouted
		}
	}
	if ac.Uplink == "" && mode != dataplane.ExternalBridged {
		if ac.Uplink, err = defaultRouteDevice(ctx); err != nil {
			return fmt.Errorf("network agent: external mode %s needs network.agent.uplink: %w", mode, err)
		}
	}
	client, err := c.networkClient(ctx)
	if err != nil {
		return err
	}
	mdProxy, err := c.metadataProxy(client)
	if err != nil {
		return err
	}
	dp, err := dataplane.New(dataplane.Config{
		Prefix: ac.Prefix, VTEP: vtep, UnderlayDevice: ac.UnderlayDevice, UnderlayMTU: c.Config.Network.UnderlayMTU,
		StateDir: filepath.Join(c.Config.DataDir, "dataplane"), Cloud: cloudKind, Logger: c.log.With("service", "dataplane"),
		MetadataHandler: mdProxy,
	})
	if err != nil {
		return fmt.Errorf("network data plane: %w", err)
	}
	var routes *vpcRoutes
	if rc := ac.RouteController; rc.Provider != "" {
		if mode != dataplane.ExternalRouted {
			c.log.Warn("network.agent.route_controller is set but external networks are not in routed mode; no routes will be programmed", "mode", mode)
		}
		if routes, err = newVPCRoutes(ctx, rc, c.log.With("service", "vpc-routes")); err != nil {
			dp.Close()
			return fmt.Errorf("network.agent.route_controller: %w", err)
		}
	}
	agent := netagent.New(netagent.Config{
		Host:   netagent.Host{Name: host, ExternalMode: mode, Uplink: ac.Uplink, PhysicalInterfaces: ac.PhysicalInterfaces},
		Client: client, Dataplane: dp, Log: c.log.With("service", "network-agent"),
		RoutedCIDRs: func(ctx context.Context, cidrs []netip.Prefix) {
			if routes != nil {
				routes.sync(ctx, cidrs)
			}
		},
		PortsUp: func(ctx context.Context, ids []string) {
			if err := bus.Publish(ctx, c.Bus, portStatusSubject, network.PortStatusReport{Host: host, Up: ids}); err != nil {
				c.log.Warn("network agent port status", "err", err)
			}
		},
		Report: func(ctx context.Context, healthy bool) {
			for _, at := range agentTypes {
				rep := network.AgentReport{AgentType: at.typ, Host: host, Binary: "nimbus-agent", Topic: at.topic,
					AvailabilityZone: c.Config.Network.AvailabilityZone,
					Configurations:   map[string]any{"tunneling_ip": ac.VTEP, "external_mode": string(mode), "in_sync": healthy}}
				if err := bus.Publish(ctx, c.Bus, agentReportSubject, rep); err != nil {
					c.log.Warn("network agent report", "err", err)
					return
				}
			}
		},
	})
	if _, err := bus.Subscribe(c.Bus, networkChangedSubject, "", func(context.Context, network.Event) error {
		agent.Kick()
		return nil
	}); err != nil {
		dp.Close()
		return fmt.Errorf("network agent: %w", err)
	}
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		agent.Run(c.runCtx)
		dp.Close()
	}()
	c.log.Info("network agent running", "host", host, "external_mode", mode, "public_cloud", cloudKind)
	return nil
}

// networkClient logs in for the agent and finds the networking endpoint
// of this region in the catalog.
func (c *Cloud) networkClient(ctx context.Context) (*gophercloud.ServiceClient, error) {
	provider, err := c.serviceProvider(ctx, c.Config.Network.Auth)
	if err != nil {
		return nil, err
	}
	client, err := openstack.NewNetworkV2(provider, gophercloud.EndpointOpts{Region: c.Config.Region})
	if err != nil {
		return nil, fmt.Errorf("network agent: networking endpoint: %w", err)
	}
	return client, nil
}

// serviceProvider logs an agent in as its service user, or as the
// bootstrap admin when identity runs in this process and the user has
// no password configured.
func (c *Cloud) serviceProvider(ctx context.Context, a config.ServiceAuth) (*gophercloud.ProviderClient, error) {
	opts := gophercloud.AuthOptions{
		IdentityEndpoint: c.Config.ServiceAuthURL(a), Username: a.Username, Password: a.Password,
		DomainName: a.UserDomainName, TenantName: a.ProjectName, AllowReauth: true,
		Scope: &gophercloud.AuthScope{ProjectName: a.ProjectName, DomainName: a.ProjectDomainName},
	}
	if a.Password == "" {
		if c.Identity == nil {
			return nil, fmt.Errorf("an agent without the identity role in this process needs the %s service user's password (%s.auth.password)",
				a.Username, map[string]string{"neutron": "network", "nova": "compute"}[a.Username])
		}
		opts.IdentityEndpoint, opts.Username, opts.Password = c.IdentityURL+"/v3", "admin", c.AdminPassword
		opts.DomainName, opts.TenantName = "Default", "admin"
		opts.Scope = &gophercloud.AuthScope{ProjectName: "admin", DomainName: "Default"}
	}
	provider, err := openstack.AuthenticatedClient(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("agent login as %s: %w", opts.Username, err)
	}
	return provider, nil
}
