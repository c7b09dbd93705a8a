package computeagent

//lint:file-ignore ST1005 Nova's fault texts, which reach the user as the server's fault message.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
)

// port is the part of a networking port the agent uses.
type port struct {
	ID          string    `json:"id"`
	NetworkID   string    `json:"network_id"`
	ProjectID   string    `json:"project_id"`
	MAC         string    `json:"mac_address"`
	DeviceID    string    `json:"device_id"`
	DeviceOwner string    `json:"device_owner"`
	HostID      string    `json:"binding:host_id"`
	FixedIPs    []fixedIP `json:"fixed_ips"`
}

type fixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

type network struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	MTU    int    `json:"mtu"`
	Shared bool   `json:"shared"`
}

type subnet struct {
	ID             string   `json:"id"`
	IPVersion      int      `json:"ip_version"`
	CIDR           string   `json:"cidr"`
	GatewayIP      string   `json:"gateway_ip"`
	EnableDHCP     bool     `json:"enable_dhcp"`
	DNSNameservers []string `json:"dns_nameservers"`
	HostRoutes     []struct {
		Destination string `json:"destination"`
		NextHop     string `json:"nexthop"`
	} `json:"host_routes"`
}

// errTapTimeout: the networking agent did not create a tap in time; the
// build may work on another host.
var errTapTimeout = errors.New("timed out waiting for the network device")

// errNoNetworking: the agent has no networking client but was asked for
// networks.
var errNoNetworking = errors.New("this compute host has no networking service configured")

func (a *Agent) netGet(ctx context.Context, path string, out any) error {
	_, err := a.cfg.Network.Get(ctx, a.cfg.Network.ServiceURL(path), out, nil)
	return err
}

func isNotFound(err error) bool {
	return gophercloud.ResponseCodeIs(err, http.StatusNotFound)
}

// ensurePorts gives the instance its ports, bound to this host, and
// registers their undo on rv. Ports of an earlier attempt on this host
// (a redelivered build) are used again rather than duplicated.
func (a *Agent) ensurePorts(ctx context.Context, inst compute.InstanceSpec, rv *revert) ([]port, error) {
	if inst.Networks == "none" {
		return nil, nil
	}
	if a.cfg.Network == nil {
		if len(inst.Requested) > 0 {
			return nil, errNoNetworking
		}
		return nil, nil
	}
	reqs := inst.Requested
	if len(reqs) == 0 {
		nets, err := a.autoNetworks(ctx, inst)
		if err != nil {
			return nil, err
		}
		for _, n := range nets {
			reqs = append(reqs, compute.NetworkRequest{NetworkID: n})
		}
	}
	var existing struct {
		Ports []port `json:"ports"`
	}
	if err := a.netGet(ctx, "ports?device_id="+url.QueryEscape(inst.ID), &existing); err != nil {
		return nil, fmt.Errorf("list ports of %s: %w", inst.ID, err)
	}
	used := map[string]bool{}
	var sgs []string
	var out []port
	for _, r := range reqs {
		if r.PortID != "" {
			p, err := a.bindPort(ctx, inst, r.PortID, rv)
			if err != nil {
				return nil, err
			}
			used[p.ID] = true
			out = append(out, p)
			continue
		}
		var p *port
		for i := range existing.Ports {
			e := &existing.Ports[i]
			if !used[e.ID] && e.NetworkID == r.NetworkID && !requested(inst, e.ID) {
				p = e
				break
			}
		}
		if p != nil {
			used[p.ID] = true
			if p.HostID != a.cfg.Host {
				b, err := a.bindPort(ctx, inst, p.ID, rv)
				if err != nil {
					return nil, err
				}
				p = &b
			}
			id := p.ID
			rv.add(func(ctx context.Context) error { return a.deletePort(ctx, id) })
			out = append(out, *p)
			continue
		}
		if sgs == nil {
			var err error
			if sgs, err = a.securityGroupIDs(ctx, inst); err != nil {
				return nil, err
			}
		}
		body := map[string]any{
			"network_id": r.NetworkID, "project_id": inst.ProjectID, "device_id": inst.ID,
			"device_owner": deviceOwner(inst), "binding:host_id": a.cfg.Host,
		}
		if r.FixedIP != "" {
			body["fixed_ips"] = []map[string]any{{"ip_address": r.FixedIP}}
		}
		if len(sgs) > 0 {
			body["security_groups"] = sgs
		}
		var created struct {
			Port port `json:"port"`
		}
		if _, err := a.cfg.Network.Post(ctx, a.cfg.Network.ServiceURL("ports"), map[string]any{"port": body}, &created, nil); err != nil {
			return nil, fmt.Errorf("create port on network %s: %w", r.NetworkID, err)
		}
		id := created.Port.ID
		rv.add(func(ctx context.Context) error { return a.deletePort(ctx, id) })
		used[id] = true
		out = append(out, created.Port)
	}
	return out, nil
}

func deviceOwner(inst compute.InstanceSpec) string {
	z := inst.AvailabilityZone
	if z == "" {
		z = "nova"
	}
	return "compute:" + z
}

func requested(inst compute.InstanceSpec, portID string) bool {
	for _, r := range inst.Requested {
		if r.PortID == portID {
			return true
		}
	}
	return false
}

// autoNetworks picks the network of a server that asked for none in
// particular, as Nova does: the only network the project can use; none
// gives the server no NICs, several are an error.
func (a *Agent) autoNetworks(ctx context.Context, inst compute.InstanceSpec) ([]string, error) {
	var own, shared struct {
		Networks []network `json:"networks"`
	}
	if err := a.netGet(ctx, "networks?project_id="+url.QueryEscape(inst.ProjectID), &own); err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	if err := a.netGet(ctx, "networks?shared=true", &shared); err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	ids := map[string]bool{}
	for _, n := range append(own.Networks, shared.Networks...) {
		ids[n.ID] = true
	}
	if len(ids) > 1 {
		return nil, errors.New("Multiple possible networks found, use a Network ID to be more specific.")
	}
	var out []string
	for id := range ids {
		out = append(out, id)
	}
	return out, nil
}

// securityGroupIDs resolves the instance's security groups (names or
// ids) in its project.
func (a *Agent) securityGroupIDs(ctx context.Context, inst compute.InstanceSpec) ([]string, error) {
	out := []string{}
	for _, sg := range inst.SecurityGroups {
		if isUUID(sg) {
			out = append(out, sg)
			continue
		}
		var res struct {
			SecurityGroups []struct {
				ID string `json:"id"`
			} `json:"security_groups"`
		}
		q := "security-groups?name=" + url.QueryEscape(sg) + "&project_id=" + url.QueryEscape(inst.ProjectID)
		if err := a.netGet(ctx, q, &res); err != nil {
			return nil, fmt.Errorf("look up security group %s: %w", sg, err)
		}
		switch len(res.SecurityGroups) {
		case 0:
			if sg == "default" {
				continue // the networking service gives the project its default group
			}
			return nil, fmt.Errorf("security group %s not found", sg)
		case 1:
			out = append(out, res.SecurityGroups[0].ID)
		default:
			return nil, fmt.Errorf("security group name %s is not unique", sg)
		}
	}
	return out, nil
}

func isUUID(s string) bool {
	return len(s) == 36 && strings.Count(s, "-") == 4
}

// bindPort attaches a port the user passed in to the instance on this
// host; undo gives it back unbound.
func (a *Agent) bindPort(ctx context.Context, inst compute.InstanceSpec, id string, rv *revert) (port, error) {
	var cur struct {
		Port port `json:"port"`
	}
	if err := a.netGet(ctx, "ports/"+url.PathEscape(id), &cur); err != nil {
		return port{}, fmt.Errorf("port %s: %w", id, err)
	}
	if cur.Port.DeviceID != "" && cur.Port.DeviceID != inst.ID {
		return port{}, fmt.Errorf("port %s is still in use by %s", id, cur.Port.DeviceID)
	}
	if cur.Port.DeviceID == inst.ID && cur.Port.HostID == a.cfg.Host {
		if requested(inst, id) {
			rv.add(func(ctx context.Context) error { return a.unbindPort(ctx, id) })
		}
		return cur.Port, nil
	}
	var out struct {
		Port port `json:"port"`
	}
	body := map[string]any{"port": map[string]any{"device_id": inst.ID, "device_owner": deviceOwner(inst), "binding:host_id": a.cfg.Host}}
	if _, err := a.cfg.Network.Put(ctx, a.cfg.Network.ServiceURL("ports", url.PathEscape(id)), body, &out, &gophercloud.RequestOpts{OkCodes: []int{200}}); err != nil {
		return port{}, fmt.Errorf("bind port %s: %w", id, err)
	}
	if requested(inst, id) {
		rv.add(func(ctx context.Context) error { return a.unbindPort(ctx, id) })
	}
	return out.Port, nil
}

func (a *Agent) unbindPort(ctx context.Context, id string) error {
	body := map[string]any{"port": map[string]any{"device_id": "", "device_owner": "", "binding:host_id": ""}}
	_, err := a.cfg.Network.Put(ctx, a.cfg.Network.ServiceURL("ports", url.PathEscape(id)), body, nil, &gophercloud.RequestOpts{OkCodes: []int{200}})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("unbind port %s: %w", id, err)
	}
	return nil
}

func (a *Agent) deletePort(ctx context.Context, id string) error {
	_, err := a.cfg.Network.Delete(ctx, a.cfg.Network.ServiceURL("ports", url.PathEscape(id)), nil)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete port %s: %w", id, err)
	}
	return nil
}

// releasePorts gives back every port of a deleted instance: unbound when
// the user brought it, deleted when the agent made it.
func (a *Agent) releasePorts(ctx context.Context, inst compute.InstanceSpec) error {
	if a.cfg.Network == nil {
		return nil
	}
	var res struct {
		Ports []port `json:"ports"`
	}
	if err := a.netGet(ctx, "ports?device_id="+url.QueryEscape(inst.ID), &res); err != nil {
		return fmt.Errorf("list ports of %s: %w", inst.ID, err)
	}
	var errs []error
	for _, p := range res.Ports {
		if requested(inst, p.ID) {
			errs = append(errs, a.unbindPort(ctx, p.ID))
		} else {
			errs = append(errs, a.deletePort(ctx, p.ID))
		}
	}
	return errors.Join(errs...)
}

// tapPollMax caps the interval between looks for a port's tap. The look
// is one stat of /sys/class/net, so polling often costs nothing, while
// every millisecond between the tap appearing and the look is on the
// path of the boot (a backoff to 500 ms used to add up to half the wait).
const tapPollMax = 20 * time.Millisecond

// waitTaps waits until the networking agent has created the tap of
// every port, or TapTimeout passes.
func (a *Agent) waitTaps(ctx context.Context, ports []port) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.TapTimeout)
	defer cancel()
	for _, p := range ports {
		name := dataplane.PortDevice(a.cfg.TapPrefix, p.ID)
		for delay := 5 * time.Millisecond; !a.cfg.TapExists(name); delay = min(delay*2, tapPollMax) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("tap %s of port %s: %w", name, p.ID, errTapTimeout)
			case <-time.After(delay):
			}
		}
	}
	return nil
}

// portDetails fetches the networks and subnets of the ports, for the
// addresses report and network_data.json.
func (a *Agent) portDetails(ctx context.Context, ports []port) (map[string]network, map[string]subnet, error) {
	nets, subs := map[string]network{}, map[string]subnet{}
	for _, p := range ports {
		if _, ok := nets[p.NetworkID]; !ok {
			var res struct {
				Network network `json:"network"`
			}
			if err := a.netGet(ctx, "networks/"+url.PathEscape(p.NetworkID), &res); err != nil {
				return nil, nil, fmt.Errorf("network %s: %w", p.NetworkID, err)
			}
			nets[p.NetworkID] = res.Network
		}
		for _, ip := range p.FixedIPs {
			if _, ok := subs[ip.SubnetID]; ok {
				continue
			}
			var res struct {
				Subnet subnet `json:"subnet"`
			}
			if err := a.netGet(ctx, "subnets/"+url.PathEscape(ip.SubnetID), &res); err != nil {
				return nil, nil, fmt.Errorf("subnet %s: %w", ip.SubnetID, err)
			}
			subs[ip.SubnetID] = res.Subnet
		}
	}
	return nets, subs, nil
}

// networkName is the key of a port's addresses: its network's name, or
// the network's id when it has none.
func networkName(p port, nets map[string]network) string {
	if name := nets[p.NetworkID].Name; name != "" {
		return name
	}
	return p.NetworkID
}

// addresses renders the ports as the servers "addresses" attribute.
func addresses(ports []port, nets map[string]network) map[string][]compute.Address {
	out := map[string][]compute.Address{}
	for _, p := range ports {
		name := networkName(p, nets)
		for _, ip := range p.FixedIPs {
			v := 4
			if strings.Contains(ip.IPAddress, ":") {
				v = 6
			}
			out[name] = append(out[name], compute.Address{Addr: ip.IPAddress, Version: v, MAC: p.MAC, Type: "fixed", PortID: p.ID})
		}
		if _, ok := out[name]; !ok {
			out[name] = []compute.Address{}
		}
	}
	return out
}
