package compute

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// fixedIPStates are the vm states Nova's multinic actions run in.
var fixedIPStates = []string{vmActive, vmPaused, vmStopped, vmSuspended}

// fixedIPAction serves addFixedIp and removeFixedIp (Nova's multinic,
// removed in 2.44): with Neutron they change the fixed IPs of the
// server's existing ports, as Nova's network API does — a new address on
// the server's port in the network, or one address taken off its port.
// The networking service then tells compute the server's addresses
// changed, and the server shows them once its agent has reported.
func (s *Service) fixedIPAction(r *http.Request, arg json.RawMessage, add bool) (*api.Response, error) {
	if at(r, 44) {
		return nil, api.NotFound("The resource could not be found.")
	}
	var in struct {
		NetworkID json.RawMessage `json:"networkId"`
		Address   *string         `json:"address"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	var networkID string
	if add {
		// Nova's schema takes the id as a string or an integer.
		var n any
		if len(in.NetworkID) == 0 || json.Unmarshal(in.NetworkID, &n) != nil {
			return nil, api.BadRequest("Invalid input for field/attribute addFixedIp. 'networkId' is a required property")
		}
		switch v := n.(type) {
		case string:
			networkID = v
		case float64:
			networkID = fmt.Sprint(v)
		default:
			return nil, api.BadRequest("Invalid input for field/attribute networkId. Value: %s. %s is not of type 'string', 'integer'", in.NetworkID, in.NetworkID)
		}
	} else if in.Address == nil || net.ParseIP(*in.Address) == nil {
		return nil, api.BadRequest("Invalid input for field/attribute address.")
	}
	i, err := s.serverFor(r, "os_compute_api:os-multinic")
	if err != nil {
		return nil, err
	}
	if s.cfg.NetworkURL == "" {
		return nil, api.Errorf(http.StatusNotImplemented, "The networking service is not configured.")
	}
	name := "remove_fixed_ip"
	if add {
		name = "add_fixed_ip"
	}
	if i.Locked && !s.caller(r).admin {
		return nil, api.Conflict("Instance %s is locked", i.ID)
	}
	if !contains(fixedIPStates, i.VMState) {
		return nil, invalidState(name, i.ID, "vm_state", i.VMState)
	}
	ports, err := s.serverPorts(r, i.ID)
	if err != nil {
		return nil, err
	}
	for _, p := range ports {
		portID, _ := p["id"].(string)
		ips := fixedIPsOf(p)
		if add {
			if p["network_id"] != networkID {
				continue
			}
			// A new address on the port, from the network's subnets
			// (the networking service picks one with room).
			for _, sub := range s.networkSubnets(r, networkID) {
				next := append(slices.Clone(ips), map[string]any{"subnet_id": sub})
				err := s.call(r, s.cfg.NetworkURL, "PUT", "/v2.0/ports/"+url.PathEscape(portID),
					map[string]any{"port": map[string]any{"fixed_ips": next}}, nil, http.StatusOK, "Port "+portID+" could not be found.")
				if err == nil {
					return accepted(), nil
				}
			}
			return nil, api.BadRequest("No more fixed IPs to allocate for network %s", networkID)
		}
		kept := slices.DeleteFunc(slices.Clone(ips), func(ip map[string]any) bool { return ip["ip_address"] == *in.Address })
		if len(kept) == len(ips) {
			continue
		}
		if err := s.call(r, s.cfg.NetworkURL, "PUT", "/v2.0/ports/"+url.PathEscape(portID),
			map[string]any{"port": map[string]any{"fixed_ips": kept}}, nil, http.StatusOK, "Port "+portID+" could not be found."); err != nil {
			return nil, err
		}
		return accepted(), nil
	}
	if add {
		return nil, api.BadRequest("Network %s could not be found for instance %s.", networkID, i.ID)
	}
	return nil, api.BadRequest("Instance %s doesn't have fixed IP '%s'.", i.ID, *in.Address)
}

// fixedIPsOf is a port's fixed_ips as a Neutron update takes them back.
func fixedIPsOf(p map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := p["fixed_ips"].([]any)
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			out = append(out, map[string]any{"subnet_id": m["subnet_id"], "ip_address": m["ip_address"]})
		}
	}
	return out
}

// networkSubnets lists the ids of a network's subnets, IPv4 first; none
// when the network cannot be read.
func (s *Service) networkSubnets(r *http.Request, networkID string) []string {
	type subnet struct {
		ID        string `json:"id"`
		IPVersion int    `json:"ip_version"`
	}
	var out struct {
		Subnets []subnet `json:"subnets"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/subnets?network_id="+url.QueryEscape(networkID), nil, &out, http.StatusOK, "Network not found."); err != nil {
		return nil
	}
	slices.SortStableFunc(out.Subnets, func(a, b subnet) int { return a.IPVersion - b.IPVersion })
	ids := make([]string, 0, len(out.Subnets))
	for _, sn := range out.Subnets {
		ids = append(ids, sn.ID)
	}
	return ids
}
