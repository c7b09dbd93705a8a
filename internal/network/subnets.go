package network

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/netip"
	"slices"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

var subnetExtensions = []extension{
	{"subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool", "2015-03-30T10:00:00-00:00"},
	{"default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the default.", "2016-02-18T18:00:00-00:00"},
}

// Neutron's max_dns_nameservers and max_subnet_host_routes defaults.
const (
	maxDNSNameservers = 5
	maxHostRoutes     = 20
)

type hostRoute struct {
	Destination string `json:"destination"`
	Nexthop     string `json:"nexthop"`
}

type subnet struct {
	ID, ProjectID, NetworkID, Name, Description string
	IPVersion                                   int
	CIDR                                        string
	GatewayIP                                   *string
	EnableDHCP                                  bool
	IPv6RAMode, IPv6AddressMode                 *string
	SubnetPoolID                                *string
	Pools                                       []ipRange
	DNS                                         []string
	HostRoutes                                  []hostRoute
	ServiceTypes                                []string
	Revision                                    int
	CreatedAt, UpdatedAt                        string
}

func (sn *subnet) gateway() *netip.Addr {
	if sn.GatewayIP == nil {
		return nil
	}
	a, err := netip.ParseAddr(*sn.GatewayIP)
	if err != nil {
		return nil
	}
	return &a
}

const subnetColumns = `id, project_id, network_id, name, description, ip_version, cidr, gateway_ip, enable_dhcp, ipv6_ra_mode,
	ipv6_address_mode, subnetpool_id, allocation_pools, dns_nameservers, host_routes, service_types, revision_number, created_at, updated_at`

func scanSubnet(row store.Scanner) (*subnet, error) {
	var sn subnet
	var gw, ra, am, pool sql.NullString
	var dhcp int
	var pools, dns, routes, stypes string
	if err := row.Scan(&sn.ID, &sn.ProjectID, &sn.NetworkID, &sn.Name, &sn.Description, &sn.IPVersion, &sn.CIDR, &gw, &dhcp, &ra,
		&am, &pool, &pools, &dns, &routes, &stypes, &sn.Revision, &sn.CreatedAt, &sn.UpdatedAt); err != nil {
		return nil, err
	}
	sn.GatewayIP, sn.IPv6RAMode, sn.IPv6AddressMode, sn.SubnetPoolID = nullString(gw), nullString(ra), nullString(am), nullString(pool)
	sn.EnableDHCP = dhcp != 0
	if err := firstErr(fromJSON(pools, &sn.Pools), fromJSON(dns, &sn.DNS), fromJSON(routes, &sn.HostRoutes), fromJSON(stypes, &sn.ServiceTypes)); err != nil {
		return nil, err
	}
	return &sn, nil
}

func (s *Service) getSubnet(ctx context.Context, q store.Querier, id string) (*subnet, error) {
	sn, err := store.QueryOne(ctx, q, scanSubnet, `SELECT `+subnetColumns+` FROM subnets WHERE id = ?`, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, subnetNotFound(id)
	}
	return sn, err
}

// seesSubnet reports whether the caller sees a subnet: their own, those
// on their own and shared networks, everything for admins. The subnets of
// an external network that is not shared stay hidden, as in Neutron:
// other projects use that network only through routers and floating IPs.
func (c caller) seesSubnet(sn *subnet, n *network) bool {
	return c.admin || sn.ProjectID == c.project || n.ProjectID == c.project || n.Shared
}

// subnetVisibility is the SQL form of caller.seesSubnet.
const subnetVisibility = `(project_id = ? OR network_id IN (SELECT id FROM networks WHERE project_id = ? OR shared = 1))`

// loadSubnet fetches a subnet the caller may see with its network.
func (s *Service) loadSubnet(ctx context.Context, q store.Querier, c caller, id string) (*subnet, *network, error) {
	return loadOnNetwork(ctx, s, q, id, s.getSubnet, func(sn *subnet) string { return sn.NetworkID }, c.seesSubnet, subnetNotFound)
}

func renderSubnet(sn *subnet, tags []string) obj {
	o := obj{
		"name": sn.Name, "network_id": sn.NetworkID, "ip_version": sn.IPVersion, "cidr": sn.CIDR,
		"gateway_ip": strOrNil(sn.GatewayIP), "enable_dhcp": sn.EnableDHCP,
		"ipv6_ra_mode": strOrNil(sn.IPv6RAMode), "ipv6_address_mode": strOrNil(sn.IPv6AddressMode),
		"allocation_pools": orEmpty(sn.Pools), "dns_nameservers": orEmpty(sn.DNS), "host_routes": orEmpty(sn.HostRoutes),
		"subnetpool_id": strOrNil(sn.SubnetPoolID), "service_types": orEmpty(sn.ServiceTypes), "segment_id": nil,
	}
	return standardAttrs(o, sn.ID, sn.ProjectID, sn.Description, sn.Revision, sn.CreatedAt, sn.UpdatedAt, tags)
}

func (s *Service) subnetObj(ctx context.Context, q store.Querier, sn *subnet) (obj, error) {
	return withTags(ctx, q, sn.ID, sn, renderSubnet)
}

func (s *Service) listSubnets(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	subnets, err := queryList(s, r, c, "get_subnet", scanSubnet, `SELECT `+subnetColumns+` FROM subnets`, subnetVisibility, nil)
	if err != nil {
		return nil, err
	}
	items, err := renderTagged(ctx, s.db, subnets, func(sn *subnet) string { return sn.ID }, func(*subnet) bool { return true }, renderSubnet)
	if err != nil {
		return nil, err
	}
	return s.list(r, "subnets", items, nil)
}

func (s *Service) showSubnet(r *http.Request) (*api.Response, error) {
	sn, _, err := s.loadSubnet(r.Context(), s.db, s.caller(r), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "get_subnet", obj{"project_id": sn.ProjectID}); err != nil {
		return nil, err
	}
	o, err := s.subnetObj(r.Context(), s.db, sn)
	if err != nil {
		return nil, err
	}
	return show(r, "subnet", o), nil
}

type subnetBody struct {
	NetworkID            *string              `json:"network_id"`
	CIDR                 api.Optional[string] `json:"cidr"`
	IPVersion            *int                 `json:"ip_version"`
	GatewayIP            api.Optional[string] `json:"gateway_ip"`
	AllocationPools      []ipRange            `json:"allocation_pools"`
	DNSNameservers       *[]string            `json:"dns_nameservers"`
	HostRoutes           *[]hostRoute         `json:"host_routes"`
	EnableDHCP           *bool                `json:"enable_dhcp"`
	IPv6RAMode           api.Optional[string] `json:"ipv6_ra_mode"`
	IPv6AddressMode      api.Optional[string] `json:"ipv6_address_mode"`
	SubnetPoolID         api.Optional[string] `json:"subnetpool_id"`
	Prefixlen            *int                 `json:"prefixlen"`
	UseDefaultSubnetPool *bool                `json:"use_default_subnetpool"`
	SegmentID            api.Optional[string] `json:"segment_id"`
	ServiceTypes         []string             `json:"service_types"`
	Name                 *string              `json:"name"`
	Description          *string              `json:"description"`
	ProjectID            *string              `json:"project_id"`
	TenantID             *string              `json:"tenant_id"`
	Tags                 []string             `json:"tags"`
}

// ipv6Modes are the values of ipv6_ra_mode and ipv6_address_mode.
var ipv6Modes = []string{"slaac", "dhcpv6-stateful", "dhcpv6-stateless"}

func attrInvalid(attr, format string, args ...any) *api.Error {
	return invalidInput("Invalid input for %s. Reason: "+format, append([]any{attr}, args...)...)
}

// validateSubnetOptions checks the parts of a subnet body that do not
// depend on other subnets, filling sn.
func validateSubnetOptions(sn *subnet, b *subnetBody, creating bool) error {
	if b.DNSNameservers != nil {
		if len(*b.DNSNameservers) > maxDNSNameservers {
			return nerr(400, "DNSNameServersExhausted", "Unable to complete operation for %s. The number of DNS nameservers exceeds the limit %d.", sn.ID, maxDNSNameservers)
		}
		seen := map[string]bool{}
		for _, d := range *b.DNSNameservers {
			a, err := netip.ParseAddr(d)
			if err != nil {
				return attrInvalid("dns_nameservers", "'%s' is not a valid nameserver. '%s' is not a valid IP address", d, d)
			}
			if seen[a.String()] {
				return attrInvalid("dns_nameservers", "Duplicate nameserver '%s'", d)
			}
			seen[a.String()] = true
		}
		sn.DNS = *b.DNSNameservers
	}
	if b.HostRoutes != nil {
		if len(*b.HostRoutes) > maxHostRoutes {
			return nerr(400, "HostRoutesExhausted", "Unable to complete operation for %s. The number of host routes exceeds the limit %d.", sn.ID, maxHostRoutes)
		}
		var routes []hostRoute
		for _, hr := range *b.HostRoutes {
			dst, err := netip.ParsePrefix(hr.Destination)
			if err != nil {
				return attrInvalid("host_routes", "'%s' is not a valid IP subnet", hr.Destination)
			}
			nh, err := netip.ParseAddr(hr.Nexthop)
			if err != nil {
				return attrInvalid("host_routes", "'%s' is not a valid IP address", hr.Nexthop)
			}
			if ipVersion(dst.Addr()) != sn.IPVersion || ipVersion(nh) != sn.IPVersion {
				return invalidInput("Host route %s-%s does not match the IP version of subnet %s", hr.Destination, hr.Nexthop, sn.CIDR)
			}
			r := hostRoute{dst.Masked().String(), nh.String()}
			if slices.Contains(routes, r) {
				return attrInvalid("host_routes", "Duplicate hostroute '%s'", hr.Destination)
			}
			routes = append(routes, r)
		}
		sn.HostRoutes = orEmpty(routes)
	}
	if b.EnableDHCP != nil {
		sn.EnableDHCP = *b.EnableDHCP
	}
	if !creating {
		return nil
	}
	for _, m := range []struct {
		name string
		v    api.Optional[string]
		dst  **string
	}{{"ipv6_ra_mode", b.IPv6RAMode, &sn.IPv6RAMode}, {"ipv6_address_mode", b.IPv6AddressMode, &sn.IPv6AddressMode}} {
		if !m.v.Set || m.v.Null {
			continue
		}
		if !slices.Contains(ipv6Modes, m.v.Value) {
			return attrInvalid(m.name, "'%s' is not in %v", m.v.Value, ipv6Modes)
		}
		if sn.IPVersion != 6 {
			return invalidInput("%s is not valid when ip_version is 4", m.name)
		}
		v := m.v.Value
		*m.dst = &v
	}
	if sn.IPv6RAMode != nil && sn.IPv6AddressMode != nil && *sn.IPv6RAMode != *sn.IPv6AddressMode {
		return invalidInput("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. If both attributes are set, they must be the same value", *sn.IPv6RAMode, *sn.IPv6AddressMode)
	}
	return nil
}

// gatewayFor resolves gateway_ip: the first host address by default,
// none when null, else a valid host address of the subnet.
func gatewayFor(p netip.Prefix, g api.Optional[string]) (*string, error) {
	if g.Set && g.Null {
		return nil, nil
	}
	if !g.Set {
		first, last := usableRange(p)
		if first.Compare(last) > 0 {
			return nil, nil
		}
		v := first.String()
		return &v, nil
	}
	a, err := netip.ParseAddr(g.Value)
	if err != nil || a.Zone() != "" {
		return nil, attrInvalid("gateway_ip", "'%s' is not a valid IP address", g.Value)
	}
	a = a.Unmap()
	if a.Is4() != p.Addr().Is4() {
		return nil, invalidInput("Gateway IP version inconsistent with allocation pool version")
	}
	if p.Contains(a) {
		first, last := usableRange(p)
		if a.Compare(first) < 0 || a.Compare(last) > 0 {
			return nil, invalidInput("Gateway is not valid on subnet")
		}
	}
	v := a.String()
	return &v, nil
}

func (s *Service) prepareSubnet(r *http.Request, b subnetBody) (*creation, error) {
	var err error
	c := s.caller(r)
	if b.NetworkID == nil {
		return nil, badRequest("subnet", "Failed to parse request. Required attribute 'network_id' not specified")
	}
	if b.IPVersion == nil {
		return nil, badRequest("subnet", "Failed to parse request. Required attribute 'ip_version' not specified")
	}
	if *b.IPVersion != 4 && *b.IPVersion != 6 {
		return nil, attrInvalid("ip_version", "%d is not in [4, 6]", *b.IPVersion)
	}
	if b.SegmentID.Set && !b.SegmentID.Null {
		return nil, invalidInput("Segments are not supported; segment_id must be null")
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255), validTags(b.Tags)); err != nil {
		return nil, err
	}
	project, err := ownerFor(c, b.ProjectID, b.TenantID)
	if err != nil {
		return nil, err
	}
	t := neutronTime(now())
	sn := &subnet{ID: newID(), ProjectID: project, Name: deref(b.Name), Description: deref(b.Description), IPVersion: *b.IPVersion,
		EnableDHCP: true, DNS: []string{}, HostRoutes: []hostRoute{}, ServiceTypes: orEmpty(b.ServiceTypes), CreatedAt: t, UpdatedAt: t}
	if err := validateSubnetOptions(sn, &b, true); err != nil {
		return nil, err
	}
	return &creation{run: func(tx *store.Tx) (o obj, err error) {
		err = func() error {
			ctx := r.Context()
			n, err := s.loadNetwork(ctx, tx, c, *b.NetworkID)
			if err != nil {
				return err
			}
			sn.NetworkID = n.ID
			target := obj{"project_id": project, "network_project_id": n.ProjectID}
			if err := s.authorize(r, "create_subnet", target); err != nil {
				return err
			}
			if b.ServiceTypes != nil {
				if err := s.authorizeAttrs(r, "create_subnet", target, "service_types"); err != nil {
					return err
				}
			}
			if err := s.checkQuota(ctx, tx, project, "subnet", 1); err != nil {
				return err
			}
			prefix, err := s.subnetPrefix(ctx, tx, c, sn, &b)
			if err != nil {
				return err
			}
			sn.CIDR = prefix.String()
			if sn.autoAddress() && prefix.Bits() != 64 {
				return invalidInput("Invalid CIDR %s for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64", sn.CIDR)
			}
			if err := checkSubnetOverlap(ctx, tx, n.ID, "", prefix); err != nil {
				return err
			}
			sn.GatewayIP, err = gatewayFor(prefix, b.GatewayIP)
			if err != nil {
				return err
			}
			var gw *netip.Addr
			if sn.GatewayIP != nil {
				a := netip.MustParseAddr(*sn.GatewayIP)
				gw = &a
			}
			if b.AllocationPools != nil {
				if err := validatePools(prefix, b.AllocationPools, gw); err != nil {
					return err
				}
				sn.Pools = normalizePools(b.AllocationPools)
			} else {
				sn.Pools = defaultPools(prefix, gw)
			}
			if err := validateRoutesVersion(sn); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO subnets (`+subnetColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				sn.ID, sn.ProjectID, sn.NetworkID, sn.Name, sn.Description, sn.IPVersion, sn.CIDR, sn.GatewayIP, boolInt(sn.EnableDHCP),
				sn.IPv6RAMode, sn.IPv6AddressMode, sn.SubnetPoolID, jsonText(orEmpty(sn.Pools)), jsonText(orEmpty(sn.DNS)),
				jsonText(orEmpty(sn.HostRoutes)), jsonText(orEmpty(sn.ServiceTypes)), sn.Revision, sn.CreatedAt, sn.UpdatedAt); err != nil {
				return err
			}
			if err := setTags(ctx, tx, sn.ID, b.Tags); err != nil {
				return err
			}
			if err := bump(ctx, tx, "networks", n.ID); err != nil {
				return err
			}
			if sn.EnableDHCP {
				if _, err := s.scheduleTx(ctx, tx, dhcpBinding, n.ID); err != nil {
					return err
				}
			}
			o, err = s.subnetObj(ctx, tx, sn)
			return err
		}()
		return o, err
	}}, nil
}

func validateRoutesVersion(sn *subnet) error {
	for _, hr := range sn.HostRoutes {
		if p, err := netip.ParsePrefix(hr.Destination); err != nil || ipVersion(p.Addr()) != sn.IPVersion {
			return invalidInput("Host route %s does not match the IP version of subnet %s", hr.Destination, sn.CIDR)
		}
	}
	return nil
}

func normalizePools(pools []ipRange) []ipRange {
	out := make([]ipRange, len(pools))
	for i, p := range pools {
		a, b, _ := p.bounds()
		out[i] = ipRange{a.String(), b.String()}
	}
	return out
}

// subnetPrefix resolves the CIDR of a new subnet: the one given, checked
// against its subnet pool if any, or one allocated from the pool.
func (s *Service) subnetPrefix(ctx context.Context, tx *store.Tx, c caller, sn *subnet, b *subnetBody) (netip.Prefix, error) {
	var pool *subnetPool
	switch {
	case b.SubnetPoolID.Set && !b.SubnetPoolID.Null:
		sp, err := s.loadSubnetPool(ctx, tx, c, b.SubnetPoolID.Value)
		if err != nil {
			return netip.Prefix{}, err
		}
		pool = sp
	case derefOr(b.UseDefaultSubnetPool, false):
		sp, err := store.QueryOne(ctx, tx, scanSubnetPool, `SELECT `+subnetPoolColumns+` FROM subnetpools WHERE is_default = 1 AND ip_version = ?`, sn.IPVersion)
		if errors.Is(err, store.ErrNotFound) {
			return netip.Prefix{}, badRequest("subnets", "No default subnetpool found for IPv%d", sn.IPVersion)
		}
		if err != nil {
			return netip.Prefix{}, err
		}
		pool = sp
	}
	if pool != nil && pool.IPVersion != sn.IPVersion {
		return netip.Prefix{}, invalidInput("Cannot allocate IPv%d subnet from IPv%d subnet pool", sn.IPVersion, pool.IPVersion)
	}
	if !b.CIDR.Set || b.CIDR.Null {
		if pool == nil {
			return netip.Prefix{}, badRequest("subnets", "a subnetpool must be specified in the absence of a cidr")
		}
		sn.SubnetPoolID = &pool.ID
		return s.allocateFromPool(ctx, tx, pool, b.Prefixlen)
	}
	if b.Prefixlen != nil {
		return netip.Prefix{}, badRequest("subnets", "cidr and prefixlen must not be supplied together")
	}
	p, err := parseCIDR(b.CIDR.Value)
	if err != nil {
		return netip.Prefix{}, attrInvalid("cidr", "%s", err.Error())
	}
	if ipVersion(p.Addr()) != sn.IPVersion {
		return netip.Prefix{}, invalidInput("Invalid CIDR %s for IP version %d", b.CIDR.Value, sn.IPVersion)
	}
	if sn.IPVersion == 4 && p.Bits() == 0 || sn.IPVersion == 6 && p.Bits() == 0 {
		return netip.Prefix{}, nerr(400, "InvalidCIDR", "Invalid CIDR %s given as IP prefix.", b.CIDR.Value)
	}
	if pool != nil {
		sn.SubnetPoolID = &pool.ID
		if err := s.claimFromPool(ctx, tx, pool, p); err != nil {
			return netip.Prefix{}, err
		}
	}
	return p, nil
}

// checkSubnetOverlap refuses a CIDR that overlaps another subnet of the
// network; overlapping address space across networks is allowed, as
// with Neutron's allow_overlapping_ips.
func checkSubnetOverlap(ctx context.Context, tx *store.Tx, networkID, exceptID string, p netip.Prefix) error {
	cidrs, err := store.QueryStrings(ctx, tx, `SELECT cidr FROM subnets WHERE network_id = ? AND id <> ?`, networkID, exceptID)
	if err != nil {
		return err
	}
	for _, c := range cidrs {
		o, err := netip.ParsePrefix(c)
		if err == nil && o.Overlaps(p) {
			return invalidInput("Requested subnet with cidr: %s for network: %s overlaps with another subnet", p, networkID)
		}
	}
	return nil
}

func (s *Service) updateSubnet(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[subnetBody](r, "subnet")
	if err != nil {
		return nil, err
	}
	if b.NetworkID != nil || b.CIDR.Set || b.IPVersion != nil || b.SubnetPoolID.Set || b.Prefixlen != nil ||
		b.ProjectID != nil || b.TenantID != nil || b.IPv6AddressMode.Set || b.IPv6RAMode.Set || b.Tags != nil || b.UseDefaultSubnetPool != nil {
		return nil, badRequest("subnet", "Cannot update read-only attribute")
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255)); err != nil {
		return nil, err
	}
	c := s.caller(r)
	return s.updateOne(r, "subnet", func(ctx context.Context, tx *store.Tx) (string, obj, error) {
		sn, n, err := s.loadSubnet(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return "", nil, err
		}
		if err := s.authorize(r, "update_subnet", obj{"project_id": sn.ProjectID, "network_project_id": n.ProjectID}); err != nil {
			return "", nil, err
		}
		if err := validateSubnetOptions(sn, &b, false); err != nil {
			return "", nil, err
		}
		if b.Name != nil {
			sn.Name = *b.Name
		}
		if b.Description != nil {
			sn.Description = *b.Description
		}
		prefix := netip.MustParsePrefix(sn.CIDR)
		if b.GatewayIP.Set {
			gw, err := gatewayFor(prefix, b.GatewayIP)
			if err != nil {
				return "", nil, err
			}
			if sn.GatewayIP != nil && (gw == nil || *gw != *sn.GatewayIP) {
				owner, err := store.QueryOne(ctx, tx, scanOneString, `SELECT port_id FROM ip_allocations WHERE subnet_id = ? AND ip_address = ?`, sn.ID, *sn.GatewayIP)
				if err == nil {
					return "", nil, inUse("GatewayIpInUse", "Current gateway ip %s already in use by port %s. Unable to update.", *sn.GatewayIP, owner)
				}
			}
			sn.GatewayIP = gw
		}
		var gwAddr *netip.Addr
		if sn.GatewayIP != nil {
			a := netip.MustParseAddr(*sn.GatewayIP)
			gwAddr = &a
		}
		if b.AllocationPools != nil {
			if err := validatePools(prefix, b.AllocationPools, gwAddr); err != nil {
				return "", nil, err
			}
			sn.Pools = normalizePools(b.AllocationPools)
		} else if b.GatewayIP.Set {
			if err := validatePools(prefix, sn.Pools, gwAddr); err != nil {
				return "", nil, err
			}
		}
		touch(&sn.Revision, &sn.UpdatedAt)
		if _, err := tx.Exec(ctx, `UPDATE subnets SET name = ?, description = ?, gateway_ip = ?, enable_dhcp = ?, allocation_pools = ?,
			dns_nameservers = ?, host_routes = ?, revision_number = ?, updated_at = ? WHERE id = ?`,
			sn.Name, sn.Description, sn.GatewayIP, boolInt(sn.EnableDHCP), jsonText(orEmpty(sn.Pools)), jsonText(orEmpty(sn.DNS)),
			jsonText(orEmpty(sn.HostRoutes)), sn.Revision, sn.UpdatedAt, sn.ID); err != nil {
			return "", nil, err
		}
		o, err := s.subnetObj(ctx, tx, sn)
		return sn.ID, o, err
	})
}

func scanOneString(sc store.Scanner) (string, error) {
	var v string
	err := sc.Scan(&v)
	return v, err
}

func (s *Service) deleteSubnet(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	err := s.commit(r, func(ctx context.Context, tx *store.Tx) ([]Event, error) {
		sn, n, err := s.loadSubnet(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		if err := s.authorize(r, "delete_subnet", obj{"project_id": sn.ProjectID, "network_project_id": n.ProjectID}); err != nil {
			return nil, err
		}
		// Ports hold their addresses on a subnet, except that DHCP ports
		// go with it, and on a SLAAC or DHCPv6-stateless subnet, where
		// hosts configure their own addresses, only router interfaces
		// hold it: the other ports lose that address, as in Neutron.
		blocking := `p.device_owner NOT IN ('network:dhcp')`
		if sn.autoAddress() {
			blocking = `p.device_owner IN ('` + ownerRouterInterface + `', 'network:router_interface_distributed')`
		}
		used, err := count(ctx, tx, `SELECT COUNT(*) FROM ip_allocations a JOIN ports p ON p.id = a.port_id
			WHERE a.subnet_id = ? AND `+blocking, sn.ID)
		if err != nil {
			return nil, err
		}
		if used > 0 {
			return nil, inUse("SubnetInUse", "Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", sn.ID)
		}
		ports, err := store.QueryStrings(ctx, tx, `SELECT DISTINCT a.port_id FROM ip_allocations a JOIN ports p ON p.id = a.port_id
			WHERE a.subnet_id = ? AND p.device_owner NOT IN ('network:dhcp')`, sn.ID)
		if err != nil {
			return nil, err
		}
		evs := []Event{{Resource: "subnet", ID: sn.ID, Action: "delete"}, {Resource: "network", ID: n.ID, Action: "update"}}
		for _, p := range ports {
			if err := bump(ctx, tx, "ports", p); err != nil {
				return nil, err
			}
			evs = append(evs, Event{Resource: "port", ID: p, Action: "update"})
		}
		for _, stmt := range []string{
			`DELETE FROM ip_allocations WHERE subnet_id = ?`,
			`DELETE FROM tags WHERE resource_id = ?`,
			`DELETE FROM subnets WHERE id = ?`,
		} {
			if _, err := tx.Exec(ctx, stmt, sn.ID); err != nil {
				return nil, err
			}
		}
		return evs, bump(ctx, tx, "networks", n.ID)
	})
	if err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}
