package metadata

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
)

// Neutron reads the networking API for the role (an instance's ports) and
// for the proxy (which instance has an address behind a router).
type Neutron struct {
	// Client returns a logged-in networking client. It is asked on every
	// lookup, so that it can be made lazily: the role may start before
	// identity or networking answer.
	Client func(ctx context.Context) (*gophercloud.ServiceClient, error)
}

// ErrNoInstance means no instance has the address behind the router.
var ErrNoInstance = errors.New("no instance has this address behind this router")

func (n *Neutron) get(ctx context.Context, path string, out any) error {
	c, err := n.Client(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Get(ctx, c.ServiceURL(path), out, nil); err != nil {
		return fmt.Errorf("networking GET %s: %w", path, err)
	}
	return nil
}

func (n *Neutron) ports(ctx context.Context, query url.Values) ([]Port, error) {
	var res struct {
		Ports []Port `json:"ports"`
	}
	if err := n.get(ctx, "ports?"+query.Encode(), &res); err != nil {
		return nil, err
	}
	return res.Ports, nil
}

// InstanceNetwork returns the instance's ports with their networks,
// subnets and floating IPs, for network_data.json and the EC2 addresses.
func (n *Neutron) InstanceNetwork(ctx context.Context, instanceID string) (NetworkInfo, error) {
	ni := NetworkInfo{Networks: map[string]Network{}, Subnets: map[string]Subnet{}, FloatingIPs: map[string]string{}}
	ports, err := n.ports(ctx, url.Values{"device_id": {instanceID}})
	if err != nil {
		return ni, err
	}
	ni.Ports = ports
	for _, p := range ports {
		if _, ok := ni.Networks[p.NetworkID]; !ok {
			var res struct {
				Network Network `json:"network"`
			}
			if err := n.get(ctx, "networks/"+url.PathEscape(p.NetworkID), &res); err != nil {
				return ni, err
			}
			ni.Networks[p.NetworkID] = res.Network
		}
		for _, ip := range p.FixedIPs {
			if _, ok := ni.Subnets[ip.SubnetID]; ok {
				continue
			}
			var res struct {
				Subnet Subnet `json:"subnet"`
			}
			if err := n.get(ctx, "subnets/"+url.PathEscape(ip.SubnetID), &res); err != nil {
				return ni, err
			}
			ni.Subnets[ip.SubnetID] = res.Subnet
		}
		var fips struct {
			FloatingIPs []struct {
				FloatingIP string `json:"floating_ip_address"`
				FixedIP    string `json:"fixed_ip_address"`
			} `json:"floatingips"`
		}
		if err := n.get(ctx, "floatingips?"+url.Values{"port_id": {p.ID}}.Encode(), &fips); err != nil {
			return ni, err
		}
		for _, f := range fips.FloatingIPs {
			ni.FloatingIPs[f.FixedIP] = f.FloatingIP
		}
	}
	return ni, nil
}

// routerInterfaceOwners are the device owners of a router's ports on its
// internal networks, as Neutron's metadata agent looks for them.
var routerInterfaceOwners = []string{"network:router_interface", "network:router_interface_distributed",
	"network:ha_router_replicated_interface"}

// FindInstance finds the instance that has ip on one of the networks
// attached to router: the compute port with that fixed IP. It returns
// the instance (the port's device) and its project.
func (n *Neutron) FindInstance(ctx context.Context, routerID, ip string) (instanceID, projectID string, err error) {
	ifaces, err := n.ports(ctx, url.Values{"device_id": {routerID}})
	if err != nil {
		return "", "", fmt.Errorf("interfaces of router %s: %w", routerID, err)
	}
	var nets []string
	for _, p := range ifaces {
		if slices.Contains(routerInterfaceOwners, p.DeviceOwner) {
			nets = append(nets, p.NetworkID)
		}
	}
	if len(nets) == 0 {
		return "", "", fmt.Errorf("router %s: %w", routerID, ErrNoInstance)
	}
	cands, err := n.ports(ctx, url.Values{"fixed_ips": {"ip_address=" + ip}, "network_id": nets})
	if err != nil {
		return "", "", fmt.Errorf("ports with address %s: %w", ip, err)
	}
	var found []Port
	for _, p := range cands {
		// Filter here too: the networks filter narrows the answer, this
		// makes it exact whatever the server did with it.
		if slices.Contains(nets, p.NetworkID) && strings.HasPrefix(p.DeviceOwner, "compute:") && p.DeviceID != "" &&
			slices.ContainsFunc(p.FixedIPs, func(f FixedIP) bool { return f.IPAddress == ip }) {
			found = append(found, p)
		}
	}
	// Two instances with one address behind one router would be
	// overlapping subnets on one router, which Neutron refuses; answer
	// neither rather than guess.
	if len(found) != 1 {
		return "", "", fmt.Errorf("%s behind router %s (%d matches): %w", ip, routerID, len(found), ErrNoInstance)
	}
	p := found[0]
	project := p.ProjectID
	if project == "" {
		project = p.TenantID
	}
	return p.DeviceID, project, nil
}
