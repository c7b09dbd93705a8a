package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// NetworkConfig configures the networking service (Neutron's ML2 type
// driver and quota settings, in Nimbus's terms).
type NetworkConfig struct {
	// Port is the networking API's port (0: any free port, for tests).
	Port int `yaml:"port"`
	// TenantNetworkType is the type of networks created without provider
	// attributes: vxlan (default), vlan or local.
	TenantNetworkType string `yaml:"tenant_network_type"`
	// VXLANRanges are the VNIs given to tenant VXLAN networks, as
	// "min:max" (Neutron's vni_ranges); 1:65535 when empty.
	VXLANRanges []string `yaml:"vxlan_ranges"`
	// VLANRanges are "physnet:min:max" (Neutron's network_vlan_ranges).
	VLANRanges []string `yaml:"vlan_ranges"`
	// PhysicalNetworks are the physical networks flat and VLAN provider
	// networks may name.
	PhysicalNetworks []string `yaml:"physical_networks"`
	// UnderlayMTU is the host network's MTU; VXLAN networks get 50 less.
	UnderlayMTU int `yaml:"underlay_mtu"`
	// AvailabilityZone networks and routers are placed in ("nova").
	AvailabilityZone string `yaml:"availability_zone"`
	// Quotas overrides Neutron's default per-project limits by resource
	// name (network, subnet, port, router, floatingip, security_group,
	// security_group_rule); -1 is unlimited.
	Quotas map[string]int `yaml:"quotas"`
	// Auth is the networking service user, used to validate tokens when
	// identity runs in another process (and by agents on other hosts).
	Auth ServiceAuth `yaml:"auth"`
	// Agent is this host's networking agent (the Linux data plane).
	Agent NetworkAgentConfig `yaml:"agent"`
}

// NetworkAgentConfig configures the networking agent of a host.
type NetworkAgentConfig struct {
	// Enabled runs the agent (it needs root: it creates bridges,
	// namespaces and nftables tables, all named with Prefix). Unset,
	// `nimbus up` runs it when it can (root, and the tools installed).
	Enabled Switch `yaml:"enabled"`
	// Host is this host's name in port bindings (binding:host_id); the
	// system host name when empty.
	Host string `yaml:"host"`
	// Prefix starts every name the agent owns on the host (1-4 lowercase
	// letters, default nb).
	Prefix string `yaml:"prefix"`
	// VTEP is this host's VXLAN endpoint address and UnderlayDevice the
	// NIC carrying VXLAN.
	VTEP           string `yaml:"vtep"`
	UnderlayDevice string `yaml:"underlay_device"`
	// ExternalMode is how external networks meet the uplink: routed,
	// host-ip, bridged, or auto (routed inside a public cloud, bridged
	// elsewhere).
	ExternalMode string `yaml:"external_mode"`
	// Uplink is the host NIC with the host's own address (routed and
	// host-ip modes).
	Uplink string `yaml:"uplink"`
	// PhysicalInterfaces maps physical network names to host NICs for flat
	// and VLAN networks (bridged mode).
	PhysicalInterfaces map[string]string `yaml:"physical_interfaces"`
	// RouteController, when its provider is set, points the VPC route of
	// each routed external CIDR at this host through the cloud's API.
	RouteController RouteControllerConfig `yaml:"route_controller"`
}

// RouteControllerConfig configures the VPC route controller of the routed
// external mode (internal/vpcroute).
type RouteControllerConfig struct {
	// Provider is alibaba or aws; empty turns the controller off.
	Provider     string `yaml:"provider"`
	RouteTableID string `yaml:"route_table_id"`
	// Region and InstanceID come from the instance metadata when empty.
	Region     string `yaml:"region"`
	InstanceID string `yaml:"instance_id"`
	// Credentials; prefer NIMBUS_ROUTE_ACCESS_KEY_ID and
	// NIMBUS_ROUTE_ACCESS_KEY_SECRET over the file for the secret.
	AccessKeyID     string `yaml:"access_key_id"`
	AccessKeySecret string `yaml:"access_key_secret"`
	SessionToken    string `yaml:"session_token"`
	// ReplaceConflicting lets the controller take over a route of the CIDR
	// that points elsewhere (Alibaba Cloud: delete and create).
	ReplaceConflicting bool `yaml:"replace_conflicting"`
	// Endpoint and MetadataURL override the cloud's defaults.
	Endpoint    string `yaml:"endpoint"`
	MetadataURL string `yaml:"metadata_url"`
}

func defaultNetworkConfig() NetworkConfig {
	return NetworkConfig{
		Port:              9696,
		TenantNetworkType: "vxlan",
		UnderlayMTU:       1500,
		AvailabilityZone:  "nova",
		Agent:             NetworkAgentConfig{ExternalMode: "auto"},
		Auth: ServiceAuth{
			Username: "neutron", ProjectName: "service",
			UserDomainName: "Default", ProjectDomainName: "Default",
			TokenCacheTime: 5 * time.Minute,
		},
	}
}

// IDRange is an inclusive range of segment ids (VNIs or VLAN ids).
type IDRange struct{ Min, Max int }

// NetworkVXLANRanges parses network.vxlan_ranges.
func (c *Config) NetworkVXLANRanges() ([]IDRange, error) {
	var out []IDRange
	for i, s := range c.Network.VXLANRanges {
		r, err := parseIDRange(s, 1, 1<<24-1)
		if err != nil {
			return nil, fmt.Errorf("config: network.vxlan_ranges[%d]: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// NetworkVLANRanges parses network.vlan_ranges by physical network.
func (c *Config) NetworkVLANRanges() (map[string][]IDRange, error) {
	out := map[string][]IDRange{}
	for i, s := range c.Network.VLANRanges {
		physnet, rng, ok := strings.Cut(s, ":")
		if !ok || physnet == "" {
			return nil, fmt.Errorf("config: network.vlan_ranges[%d]: %q is not physnet:min:max", i, s)
		}
		r, err := parseIDRange(rng, 1, 4094)
		if err != nil {
			return nil, fmt.Errorf("config: network.vlan_ranges[%d]: %w", i, err)
		}
		out[physnet] = append(out[physnet], r)
	}
	return out, nil
}

func parseIDRange(s string, lo, hi int) (IDRange, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return IDRange{}, fmt.Errorf("%q is not min:max", s)
	}
	minID, err1 := strconv.Atoi(strings.TrimSpace(a))
	maxID, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || minID < lo || maxID > hi || minID > maxID {
		return IDRange{}, fmt.Errorf("%q is not a range within %d:%d", s, lo, hi)
	}
	return IDRange{minID, maxID}, nil
}

// ValidateNetwork rejects network settings that cannot work.
func (c *Config) ValidateNetwork() error {
	switch c.Network.TenantNetworkType {
	case "vxlan", "vlan", "local":
	default:
		return fmt.Errorf("config: network.tenant_network_type %q is not vxlan, vlan or local", c.Network.TenantNetworkType)
	}
	if c.Network.UnderlayMTU < 576 || c.Network.UnderlayMTU > 9216 {
		return fmt.Errorf("config: network.underlay_mtu %d is outside 576..9216", c.Network.UnderlayMTU)
	}
	if _, err := c.NetworkVXLANRanges(); err != nil {
		return err
	}
	vlans, err := c.NetworkVLANRanges()
	if err != nil {
		return err
	}
	if c.Network.TenantNetworkType == "vlan" && len(vlans) == 0 {
		return fmt.Errorf("config: network.tenant_network_type vlan needs network.vlan_ranges")
	}
	switch rc := c.Network.Agent.RouteController; rc.Provider {
	case "":
	case "alibaba", "aws":
		if rc.RouteTableID == "" {
			return fmt.Errorf("config: network.agent.route_controller.route_table_id is required")
		}
	default:
		return fmt.Errorf("config: network.agent.route_controller.provider %q is not alibaba or aws", rc.Provider)
	}
	switch c.Network.Agent.ExternalMode {
	case "auto", "routed", "host-ip", "bridged":
	default:
		return fmt.Errorf("config: network.agent.external_mode %q is not auto, routed, host-ip or bridged", c.Network.Agent.ExternalMode)
	}
	return nil
}
