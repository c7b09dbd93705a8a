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
	// VolumeAttachTimeout settles a volume attach or detach whose agent
	// never reported, from the host's sync (5m when 0).
	VolumeAttachTimeout time.Duration `yaml:"volume_attach_timeout"`
	// DefaultAvailabilityZone of hosts and servers that name none.
	DefaultAvailabilityZone string `yaml:"default_availability_zone"`
	// Quotas overrides Nova's default limits by resource name.
	Quotas map[string]int `yaml:"quotas"`
	// Auth is the compute service user (remote identity, agents).
	Auth ServiceAuth `yaml:"auth"`
	// Agent is this host's compute agent.
	Agent ComputeAgentConfig `yaml:"agent"`
	// Metadata is the metadata service guests reach at 169.254.169.254.
	Metadata MetadataConfig `yaml:"metadata"`
	// Console is the console proxy and the console URLs handed out.
	Console ConsoleConfig `yaml:"console"`
}

// ComputeAgentConfig configures the compute agent of a host.
type ComputeAgentConfig struct {
	// Enabled runs the agent (with the qemu driver it needs root, QEMU
	// and the networking agent for the guests' taps). Unset, `nimbus up`
	// runs it when it can (root, QEMU installed, a kernel to probe with).
	Enabled Switch `yaml:"enabled"`
	// Driver is qemu (default) or fake (no guests; for scale tests).
	Driver string `yaml:"driver"`
	// VirtType forces kvm or qemu (TCG), like Nova's virt_type; empty
	// decides by a boot probe of ProbeKernel.
	VirtType    string `yaml:"virt_type"`
	ProbeKernel string `yaml:"probe_kernel"`
	// StateDir holds guests' disks and the base image cache
	// (<data_dir>/compute when empty).
	StateDir string `yaml:"state_dir"`
}

func defaultComputeConfig() ComputeConfig {
	return ComputeConfig{
		Port: 8774, Scheduler: "least-loaded", DefaultAvailabilityZone: "nova",
		Agent: ComputeAgentConfig{Driver: "qemu"}, Metadata: defaultMetadataConfig(), Console: defaultConsoleConfig(),
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
	switch c.Compute.Agent.Driver {
	case "qemu", "fake":
	default:
		return fmt.Errorf("config: compute.agent.driver %q is not qemu or fake", c.Compute.Agent.Driver)
	}
	switch c.Compute.Agent.VirtType {
	case "", "kvm", "qemu":
	default:
		return fmt.Errorf("config: compute.agent.virt_type %q is not kvm or qemu", c.Compute.Agent.VirtType)
	}
	for name, r := range map[string]float64{"cpu": c.Compute.CPUAllocationRatio, "ram": c.Compute.RAMAllocationRatio, "disk": c.Compute.DiskAllocationRatio} {
		if r < 0 {
			return fmt.Errorf("config: compute.%s_allocation_ratio %v is negative", name, r)
		}
	}
	return c.ValidateConsole()
}
