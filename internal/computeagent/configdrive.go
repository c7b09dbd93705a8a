package computeagent

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/compute"
)

// configDrive renders the files of an OpenStack config drive, as Nova's
// nova/api/metadata/base.py does for the "latest" version that cloud-init
// and our guest image read.
func configDrive(inst compute.InstanceSpec, ports []port, nets map[string]network, subs map[string]subnet) (map[string][]byte, error) {
	meta := map[string]any{
		"uuid": inst.ID, "name": inst.Name, "hostname": inst.Hostname,
		"availability_zone": inst.AvailabilityZone, "project_id": inst.ProjectID,
		"launch_index": inst.LaunchIndex, "meta": nonNil(inst.Metadata), "devices": []any{},
	}
	if inst.KeyName != "" && inst.KeyData != "" {
		meta["public_keys"] = map[string]string{inst.KeyName: inst.KeyData}
		meta["keys"] = []map[string]string{{"name": inst.KeyName, "type": "ssh", "data": inst.KeyData}}
	}
	if inst.AdminPass != "" {
		meta["admin_pass"] = inst.AdminPass
	}
	files := map[string][]byte{}
	add := func(name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		files["openstack/latest/"+name] = b
		return nil
	}
	if err := add("meta_data.json", meta); err != nil {
		return nil, err
	}
	if err := add("network_data.json", networkData(ports, nets, subs)); err != nil {
		return nil, err
	}
	if err := add("vendor_data.json", map[string]any{}); err != nil {
		return nil, err
	}
	if inst.UserData != "" {
		ud, err := base64.StdEncoding.DecodeString(inst.UserData)
		if err != nil {
			return nil, fmt.Errorf("user_data is not base64: %w", err)
		}
		files["openstack/latest/user_data"] = ud
	}
	return files, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// networkData is network_data.json: one link per port, one network per
// fixed IP (DHCP where the subnet serves it), and the DNS servers.
func networkData(ports []port, nets map[string]network, subs map[string]subnet) map[string]any {
	links, networks, services := []any{}, []any{}, []any{}
	dns := map[string]bool{}
	for _, p := range ports {
		tap := "tap" + p.ID[:min(11, len(p.ID))] // Nova's link ids
		link := map[string]any{"id": tap, "vif_id": p.ID, "type": "bridge", "ethernet_mac_address": p.MAC}
		if mtu := nets[p.NetworkID].MTU; mtu > 0 {
			link["mtu"] = mtu
		}
		links = append(links, link)
		for _, ip := range p.FixedIPs {
			sn := subs[ip.SubnetID]
			n := map[string]any{"id": fmt.Sprintf("network%d", len(networks)), "link": tap, "network_id": p.NetworkID}
			v6 := sn.IPVersion == 6
			switch {
			case sn.EnableDHCP && !v6:
				n["type"] = "ipv4_dhcp"
			case sn.EnableDHCP && v6:
				n["type"] = "ipv6_dhcp"
			default:
				n["type"] = map[bool]string{false: "ipv4", true: "ipv6"}[v6]
				n["ip_address"] = ip.IPAddress
				if pfx, err := netip.ParsePrefix(sn.CIDR); err == nil {
					n["netmask"] = netmask(pfx)
				}
				routes := []any{}
				if sn.GatewayIP != "" {
					any0 := map[bool]string{false: "0.0.0.0", true: "::"}[v6]
					routes = append(routes, map[string]any{"network": any0, "netmask": any0, "gateway": sn.GatewayIP})
				}
				for _, r := range sn.HostRoutes {
					if pfx, err := netip.ParsePrefix(r.Destination); err == nil {
						routes = append(routes, map[string]any{"network": pfx.Addr().String(), "netmask": netmask(pfx), "gateway": r.NextHop})
					}
				}
				n["routes"] = routes
			}
			var svc []any
			for _, d := range sn.DNSNameservers {
				svc = append(svc, map[string]any{"type": "dns", "address": d})
				dns[d] = true
			}
			if svc != nil {
				n["services"] = svc
			}
			networks = append(networks, n)
		}
	}
	addrs := make([]string, 0, len(dns))
	for d := range dns {
		addrs = append(addrs, d)
	}
	sort.Strings(addrs)
	for _, d := range addrs {
		services = append(services, map[string]any{"type": "dns", "address": d})
	}
	return map[string]any{"links": links, "networks": networks, "services": services}
}

// netmask spells a prefix length as a mask: 255.255.255.0, or ffff:... for
// IPv6, as Nova writes it.
func netmask(p netip.Prefix) string {
	bits := p.Bits()
	n := p.Addr().BitLen() / 8
	b := make([]byte, n)
	for i := range b {
		switch {
		case bits >= 8:
			b[i], bits = 0xff, bits-8
		case bits > 0:
			b[i], bits = byte(0xff<<(8-bits)), 0
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a.String()
}
