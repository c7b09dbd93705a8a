package config

import (
	"fmt"
	"time"
)

// ComputeConfig configures the compute API and scheduler.
type ComputeConfig struct {
	// Port is the compute API's port (0: any free port, for tests).
	Port int `yaml:"port"`
	// Scheduler is least-loaded (default), random or availability-zone.
	Scheduler string `yaml:"scheduler"`
	// Allocation ratios for hosts that report none (Nova's 4, 1, 1).
	CPUAllocationRatio  float64 `yaml:"cpu_allocation_ratio"`
	RAMAllocationRatio  float64 `yaml:"ram_allocation_ratio"`
	DiskAllocationRatio float64 `yaml:"disk_allocation_ratio"`
	// MaxAttempts bounds the hosts one build is tried on.
	MaxAttempts int `yaml:"max_attempts"`
	// ServiceDownTime: a host silent this long is down.
	ServiceDownTime time.Duration `yaml:"service_down_time"`
	// BuildTimeout settles servers an agent never answered for.
	BuildTimeout time.Duration `yaml:"build_timeout"`
	// DefaultAvailabilityZone of hosts and servers that name none.
	DefaultAvailabilityZone string `yaml:"default_availability_zone"`
	// Quotas overrides Nova's default limits by resource name.
	Quotas map[string]int `yaml:"quotas"`
	// Auth is the compute service user (remote identity).
	Auth ServiceAuth `yaml:"auth"`
}

func defaultComputeConfig() ComputeConfig {
	return ComputeConfig{
		Port: 8774, Scheduler: "least-loaded", DefaultAvailabilityZone: "nova",
		Auth: ServiceAuth{Username: "nova", ProjectName: "service", UserDomainName: "Default", ProjectDomainName: "Default",
			TokenCacheTime: 5 * time.Minute},
	}
}

// ValidateCompute rejects compute settings that cannot work.
func (c *Config) ValidateCompute() error {
	switch c.Compute.Scheduler {
	case "least-loaded", "random", "availability-zone":
	default:
		return fmt.Errorf("config: compute.scheduler %q is not least-loaded, random or availability-zone", c.Compute.Scheduler)
	}
	for name, r := range map[string]float64{"cpu": c.Compute.CPUAllocationRatio, "ram": c.Compute.RAMAllocationRatio, "disk": c.Compute.DiskAllocationRatio} {
		if r < 0 {
			return fmt.Errorf("config: compute.%s_allocation_ratio %v is negative", name, r)
		}
	}
	return nil
}
