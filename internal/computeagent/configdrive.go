package computeagent

import (
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/metadata"
)

// configDrive renders the files of an OpenStack config drive through the
// metadata service's renderer, so that a guest reads the same answers from
// the drive as from 169.254.169.254. Only the drive carries the admin
// password.
func configDrive(inst compute.InstanceSpec, ports []port, nets map[string]network, subs map[string]subnet) (map[string][]byte, error) {
	mi := metadata.InstanceFromSpec(inst)
	mi.AdminPass = inst.AdminPass
	c, err := metadata.NewContent(mi, networkInfo(ports, nets, subs))
	if err != nil {
		return nil, err
	}
	files, err := metadata.ConfigDriveFiles(c)
	if err != nil {
		return nil, fmt.Errorf("config drive: %w", err)
	}
	return files, nil
}

// networkInfo hands the agent's view of the guest's ports to the
// metadata renderer.
func networkInfo(ports []port, nets map[string]network, subs map[string]subnet) metadata.NetworkInfo {
	ni := metadata.NetworkInfo{Networks: map[string]metadata.Network{}, Subnets: map[string]metadata.Subnet{}}
	for _, p := range ports {
		mp := metadata.Port{ID: p.ID, NetworkID: p.NetworkID, ProjectID: p.ProjectID, MAC: p.MAC, DeviceID: p.DeviceID, DeviceOwner: p.DeviceOwner}
		for _, ip := range p.FixedIPs {
			mp.FixedIPs = append(mp.FixedIPs, metadata.FixedIP{SubnetID: ip.SubnetID, IPAddress: ip.IPAddress})
		}
		ni.Ports = append(ni.Ports, mp)
	}
	for id, n := range nets {
		ni.Networks[id] = metadata.Network{ID: n.ID, MTU: n.MTU}
	}
	for id, s := range subs {
		ms := metadata.Subnet{ID: s.ID, IPVersion: s.IPVersion, CIDR: s.CIDR, GatewayIP: s.GatewayIP,
			EnableDHCP: s.EnableDHCP, DNSNameservers: s.DNSNameservers}
		for _, r := range s.HostRoutes {
			ms.HostRoutes = append(ms.HostRoutes, metadata.HostRoute{Destination: r.Destination, NextHop: r.NextHop})
		}
		ni.Subnets[id] = ms
	}
	return ni
}
