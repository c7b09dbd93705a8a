package cloud

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/nimbus-cloud/nimbus/internal/volumeagent"
)

// startVolumeAgent runs this host's volume agent when volume.agent is
// enabled: volume files in the state dir, served by a qemu-storage-daemon
// that outlives the agent, commanded over the bus, with images read and
// written through the image API as the volume service user (or the
// bootstrap admin when identity runs here and no password is set), and
// backups kept in object storage.
func (c *Cloud) startVolumeAgent(ctx context.Context) error {
	vc := c.Config.Volume
	if !vc.Agent.Enabled.Enabled() {
		return nil
	}
	host := vc.Agent.Host
	if host == "" {
		h, err := c.agentHost()
		if err != nil {
			return err
		}
		host = h
	}
	stateDir := vc.Agent.StateDir
	if stateDir == "" {
		stateDir = filepath.Join(c.Config.DataDir, "volumes")
	}
	provider, err := c.serviceProvider(ctx, vc.Auth)
	if err != nil {
		return fmt.Errorf("volume agent: %w", err)
	}
	img, err := openstack.NewImageV2(provider, gophercloud.EndpointOpts{Region: c.Config.Region})
	if err != nil {
		return fmt.Errorf("volume agent: %w", err)
	}
	// Backups go to object storage through the catalog's admin URL, the
	// API root without an account; a cloud without object storage
	// runs the agent without backups.
	objects, err := openstack.NewObjectStorageV1(provider, gophercloud.EndpointOpts{Region: c.Config.Region, Availability: gophercloud.AvailabilityAdmin})
	if err != nil {
		c.log.Warn("volume agent: no object storage in the catalog: volume backups will fail", "err", err)
		objects = nil
	}
	a, err := volumeagent.Start(ctx, volumeagent.Config{
		Host: host, Zone: vc.DefaultAvailabilityZone, Bus: c.Bus, StateDir: stateDir,
		NBDAddress: vc.Agent.NBDAddress, NBDPort: vc.Agent.NBDPort, MaxOverSubscription: vc.Agent.MaxOverSubscriptionRatio,
		Image: img, ObjectStore: objects, Log: c.log.With("service", "volume-agent"),
	})
	if err != nil {
		return err
	}
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		<-c.runCtx.Done()
		// The storage daemon keeps serving attached volumes; a
		// restarted agent adopts it.
		if err := a.Stop(); err != nil {
			c.log.Warn("stop volume agent", "err", err)
		}
	}()
	c.log.Info("volume agent running", "host", host, "state_dir", stateDir)
	return nil
}

// VolumeAgentMissing says what this host lacks to run a volume agent, or
// "" when it can: for `nimbus up` to turn an unset volume.agent.enabled
// on when it can.
func VolumeAgentMissing() string {
	return missingTools("qemu-storage-daemon", "qemu-img")
}
