package config

import (
	"fmt"
	"net"
	"time"
)

// VolumeConfig configures the block storage (Cinder v3) API and the
// volume agent of a storage host.
type VolumeConfig struct {
	// Port is the volume API's port (0: any free port, for tests).
	Port int `yaml:"port"`
	// DefaultAvailabilityZone of storage hosts and volumes that name
	// none (Cinder's storage_availability_zone, "nova").
	DefaultAvailabilityZone string `yaml:"default_availability_zone"`
	// Quotas overrides Cinder's default limits by resource name
	// (volumes, snapshots, gigabytes, backups, backup_gigabytes, groups,
	// per_volume_gigabytes).
	Quotas map[string]int `yaml:"quotas"`
	// ServiceDownTime: a storage host silent this long is down.
	ServiceDownTime time.Duration `yaml:"service_down_time"`
	// Auth is the volume service user (remote identity, image uploads).
	Auth ServiceAuth `yaml:"auth"`
	// Agent is this host's volume agent.
	Agent VolumeAgentConfig `yaml:"agent"`
}

// VolumeAgentConfig configures the volume agent of a storage host.
type VolumeAgentConfig struct {
	// Enabled runs the agent. Unset, `nimbus up` runs it when it can
	// (qemu-storage-daemon and qemu-img installed).
	Enabled Switch `yaml:"enabled"`
	// Host names this storage host (the compute agent's host name when
	// empty).
	Host string `yaml:"host"`
	// StateDir holds the volume and snapshot files and the storage
	// daemon's run files (<data_dir>/volumes when empty).
	StateDir string `yaml:"state_dir"`
	// NBDAddress and NBDPort are where this host's qemu-storage-daemon
	// serves volumes (NBD with TLS-PSK) to compute hosts. The address
	// must be one compute hosts can reach.
	NBDAddress string `yaml:"nbd_address"`
	NBDPort    int    `yaml:"nbd_port"`
	// MaxOverSubscriptionRatio bounds the provisioned size of the sparse
	// volume files against the pool's size.
	MaxOverSubscriptionRatio float64 `yaml:"max_over_subscription_ratio"`
}

func defaultVolumeConfig() VolumeConfig {
	return VolumeConfig{
		Port: 8776, DefaultAvailabilityZone: "nova", ServiceDownTime: 60 * time.Second,
		Auth: ServiceAuth{Username: "cinder", ProjectName: "service", UserDomainName: "Default", ProjectDomainName: "Default",
			TokenCacheTime: 5 * time.Minute},
		Agent: VolumeAgentConfig{NBDAddress: "127.0.0.1", NBDPort: 10809, MaxOverSubscriptionRatio: 10},
	}
}

// ValidateVolume rejects volume settings that cannot work.
func (c *Config) ValidateVolume() error {
	a := c.Volume.Agent
	if net.ParseIP(a.NBDAddress) == nil {
		return fmt.Errorf("config: volume.agent.nbd_address %q is not an IP address", a.NBDAddress)
	}
	if a.NBDPort < 0 || a.NBDPort > 65535 {
		return fmt.Errorf("config: volume.agent.nbd_port %d is out of range", a.NBDPort)
	}
	if a.MaxOverSubscriptionRatio < 1 {
		return fmt.Errorf("config: volume.agent.max_over_subscription_ratio %v is below 1", a.MaxOverSubscriptionRatio)
	}
	for k, v := range c.Volume.Quotas {
		if v < -1 {
			return fmt.Errorf("config: volume.quotas.%s %d is below -1", k, v)
		}
	}
	return nil
}
