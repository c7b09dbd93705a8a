package cloud

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/nimbus-cloud/nimbus/internal/computeagent"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/fake"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu"
)

// startComputeAgent runs this host's compute agent: guests on the
// configured hypervisor driver, commanded over the bus, with images and
// ports read and bound through the APIs as the service user (or the
// bootstrap admin when identity runs here and no compute user is set).
func (c *Cloud) startComputeAgent(ctx context.Context) error {
	ac := c.Config.Compute.Agent
	if !ac.Enabled.Enabled() {
		return nil
	}
	host, err := c.agentHost()
	if err != nil {
		return err
	}
	stateDir := ac.StateDir
	if stateDir == "" {
		stateDir = filepath.Join(c.Config.DataDir, "compute")
	}
	var drv hypervisor.Driver
	tapExists := func(string) bool { return true } // the fake driver plugs nothing
	switch ac.Driver {
	case "fake":
		drv = fake.New(fake.Config{})
	default:
		if os.Geteuid() != 0 {
			return fmt.Errorf("compute.agent with the qemu driver needs root (taps, QEMU processes)")
		}
		if drv, err = qemu.New(ctx, qemu.Config{StateDir: stateDir, RunDir: filepath.Join(stateDir, "run"),
			VirtType: ac.VirtType, ProbeKernel: ac.ProbeKernel, Logger: c.log.With("service", "qemu")}); err != nil {
			return fmt.Errorf("compute agent: %w", err)
		}
		tapExists = nil // the agent's default: the tap exists in /sys/class/net
	}
	provider, err := c.serviceProvider(ctx, c.Config.Compute.Auth)
	if err != nil {
		drv.Close()
		return err
	}
	opts := gophercloud.EndpointOpts{Region: c.Config.Region}
	img, err := openstack.NewImageV2(provider, opts)
	if err == nil {
		var net *gophercloud.ServiceClient
		if net, err = openstack.NewNetworkV2(provider, opts); err == nil {
			prefix := c.Config.Network.Agent.Prefix
			if prefix == "" {
				prefix = dataplane.DefaultPrefix
			}
			var a *computeagent.Agent
			a, err = computeagent.Start(ctx, computeagent.Config{
				Host: host, AvailabilityZone: c.Config.Compute.DefaultAvailabilityZone, Bus: c.Bus, Driver: drv,
				Image: img, Network: net, ImageCacheDir: filepath.Join(stateDir, "downloads"), TapPrefix: prefix,
				TapExists: tapExists, Log: c.log.With("service", "compute-agent"),
			})
			if err == nil {
				c.background.Add(1)
				go func() {
					defer c.background.Done()
					<-c.runCtx.Done()
					a.Stop()
					drv.Close() // guests keep running; a restarted agent adopts them
				}()
				c.log.Info("compute agent running", "host", host, "driver", ac.Driver)
				return nil
			}
		}
	}
	drv.Close()
	return fmt.Errorf("compute agent: %w", err)
}

// agentHost is this host's name for the agents (binding:host_id and the
// compute host); both agents must use the same.
func (c *Cloud) agentHost() (string, error) {
	if h := c.Config.Network.Agent.Host; h != "" {
		return h, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("agent host name: %w", err)
	}
	return h, nil
}
