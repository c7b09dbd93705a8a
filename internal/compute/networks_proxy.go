package compute

import (
	"net/http"
	"net/url"

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
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	var out struct {
		Networks []map[string]any `json:"networks"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/networks", nil, &out, http.StatusOK, "Network not found."); err != nil {
		return nil, err
	}
	list := []map[string]any{}
	for _, n := range out.Networks {
		list = append(list, s.osNetworkView(r, n))
	}
	return api.JSON(http.StatusOK, map[string]any{"networks": list}), nil
}

func (s *Service) showOSNetwork(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	id := r.PathValue("network_id")
	var out struct {
		Network map[string]any `json:"network"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/networks/"+url.PathEscape(id), nil, &out, http.StatusOK, "Network could not be found."); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"network": s.osNetworkView(r, out.Network)}), nil
}
