package compute

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// os-networks (before 2.36) is nova-network's API; with Neutron, Nova
// answers the reads from the networking service: the network's id and
// name (label), cidr from its first subnet, and nova-network's other
// fields null (admins see the admin fields too, equally null).

var osNetworkFields = []string{"netmask", "gateway", "broadcast", "dns1", "dns2", "cidr_v6", "gateway_v6", "netmask_v6"}

var osNetworkAdminFields = []string{"created_at", "updated_at", "deleted_at", "deleted", "injected", "bridge", "vlan",
	"vpn_public_address", "vpn_public_port", "vpn_private_address", "dhcp_start", "project_id", "host",
	"bridge_interface", "multi_host", "priority", "rxtx_base", "mtu", "dhcp_server", "enable_dhcp", "share_address"}

func (s *Service) osNetworkView(r *http.Request, n map[string]any) map[string]any {
	out := s.tenantNetworkView(r, n)
	for _, f := range osNetworkFields {
		out[f] = nil
	}
	if s.caller(r).admin {
		for _, f := range osNetworkAdminFields {
			out[f] = nil
		}
	}
	return out
}

func (s *Service) listOSNetworks(r *http.Request) (*api.Response, error) {
	return s.listNetworksAs(r, s.osNetworkView)
}

func (s *Service) showOSNetwork(r *http.Request) (*api.Response, error) {
	return s.showNetworkAs(r, s.osNetworkView, "Network could not be found.")
}
