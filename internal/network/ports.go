package network

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

var portExtensions = []extension{
	{"binding", "Port Binding", "Expose port bindings of a virtual port to external application", "2014-02-03T10:00:00-00:00"},
	{"allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs", "2013-07-23T10:00:00-00:00"},
	{"extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)", "2013-03-17T12:00:00-00:00"},
	{"ip-substring-filtering", "IP address substring filtering", "Provides IP address substring filtering when listing ports", "2017-11-28T09:00:00-00:00"},
	{"port-security-groups-filtering", "Port filtering on security groups", "Provides security groups filtering when listing ports", "2018-01-09T09:00:00-00:00"},
}

// maxAddressPairs is Neutron's max_allowed_address_pair default.
const maxAddressPairs = 10

// vnicTypes are the binding:vnic_type values Neutron accepts.
var vnicTypes = []string{"normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder", "smart-nic", "vdpa",
	"remote-managed", "accelerator-direct", "accelerator-direct-physical"}

type fixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

type addressPair struct {
	IPAddress  string `json:"ip_address"`
	MACAddress string `json:"mac_address"`
}

type dhcpOpt struct {
	OptName   string `json:"opt_name"`
	OptValue  string `json:"opt_value"`
	IPVersion int    `json:"ip_version"`
}

type port struct {
	ID, ProjectID, NetworkID, Name, Description string
	AdminStateUp                                bool
	MAC, DeviceID, DeviceOwner, Status          string
	PortSecurity                                bool
	HostID, VNICType, VIFType                   string
	Profile, VIFDetails                         map[string]any
	AddressPairs                                []addressPair
	DHCPOpts                                    []dhcpOpt
	FixedIPs                                    []fixedIP
	SecurityGroups                              []string
	Revision                                    int
	CreatedAt, UpdatedAt                        string
}

const portColumns = `id, project_id, network_id, name, description, admin_state_up, mac_address, device_id, device_owner, status,
	port_security_enabled, binding_host_id, binding_vnic_type, binding_profile, binding_vif_type, binding_vif_details,
	allowed_address_pairs, extra_dhcp_opts, revision_number, created_at, updated_at`

func scanPort(row store.Scanner) (*port, error) {
	var p port
	var admin, psec int
	var profile, details, pairs, opts string
	if err := row.Scan(&p.ID, &p.ProjectID, &p.NetworkID, &p.Name, &p.Description, &admin, &p.MAC, &p.DeviceID, &p.DeviceOwner, &p.Status,
		&psec, &p.HostID, &p.VNICType, &profile, &p.VIFType, &details, &pairs, &opts, &p.Revision, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return nil, err
	}
	p.AdminStateUp, p.PortSecurity = admin != 0, psec != 0
	return &p, firstErr(fromJSON(profile, &p.Profile), fromJSON(details, &p.VIFDetails), fromJSON(pairs, &p.AddressPairs), fromJSON(opts, &p.DHCPOpts))
}

// fill loads a port's fixed IPs and security groups.
func fillPorts(ctx context.Context, q store.Querier, ports []*port, _ bool) error {
	byID := map[string]*port{}
	ids := make([]string, 0, len(ports))
	for _, p := range ports {
		byID[p.ID] = p
		p.FixedIPs, p.SecurityGroups = nil, nil
		ids = append(ids, p.ID)
	}
	type pair struct{ port, value, ip string }
	scan := func(sc store.Scanner) (pair, error) {
		var a pair
		err := sc.Scan(&a.port, &a.value, &a.ip)
		return a, err
	}
	err := forChunks(ids, func(_ []string, in string, args []any) error {
		allocs, err := store.QueryAll(ctx, q, scan, `SELECT port_id, subnet_id, ip_address FROM ip_allocations WHERE port_id IN `+in, args...)
		if err != nil {
			return err
		}
		for _, a := range allocs {
			byID[a.port].FixedIPs = append(byID[a.port].FixedIPs, fixedIP{a.value, a.ip})
		}
		sgs, err := store.QueryAll(ctx, q, scan, `SELECT port_id, security_group_id, '' FROM port_security_groups WHERE port_id IN `+in, args...)
		for _, a := range sgs {
			byID[a.port].SecurityGroups = append(byID[a.port].SecurityGroups, a.value)
		}
		return err
	})
	for _, p := range ports {
		sortFixedIPs(p.FixedIPs)
		sort.Strings(p.SecurityGroups)
	}
	return err
}

// sortFixedIPs orders addresses IPv4 first, then by address.
func sortFixedIPs(ips []fixedIP) {
	sort.Slice(ips, func(i, j int) bool {
		a, _ := netip.ParseAddr(ips[i].IPAddress)
		b, _ := netip.ParseAddr(ips[j].IPAddress)
		return a.Less(b)
	})
}

func (s *Service) getPort(ctx context.Context, q store.Querier, id string) (*port, error) {
	p, err := store.QueryOne(ctx, q, scanPort, `SELECT `+portColumns+` FROM ports WHERE id = ?`, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, portNotFound(id)
	}
	if err != nil {
		return nil, err
	}
	return p, fillPorts(ctx, q, []*port{p}, true)
}

func (c caller) seesPort(p *port, n *network) bool {
	return c.admin || p.ProjectID == c.project || n != nil && n.ProjectID == c.project
}

// loadPort fetches a port the caller may see (their own, or on their
// network) with its network.
func (s *Service) loadPort(ctx context.Context, q store.Querier, c caller, id string) (*port, *network, error) {
	return loadOnNetwork(ctx, s, q, id, s.getPort, func(p *port) string { return p.NetworkID }, c.seesPort, portNotFound)
}

func (s *Service) renderPort(r *http.Request, p *port, tags []string) obj {
	o := obj{
		"name": p.Name, "network_id": p.NetworkID, "admin_state_up": p.AdminStateUp, "mac_address": p.MAC,
		"fixed_ips": orEmpty(p.FixedIPs), "device_id": p.DeviceID, "device_owner": p.DeviceOwner, "status": p.Status,
		"security_groups": orEmpty(p.SecurityGroups), "allowed_address_pairs": orEmpty(p.AddressPairs),
		"port_security_enabled": p.PortSecurity, "extra_dhcp_opts": orEmpty(p.DHCPOpts),
		"binding:host_id": p.HostID, "binding:vnic_type": p.VNICType, "binding:profile": nonNilMap(p.Profile),
		"binding:vif_type": p.VIFType, "binding:vif_details": nonNilMap(p.VIFDetails),
	}
	standardAttrs(o, p.ID, p.ProjectID, p.Description, p.Revision, p.CreatedAt, p.UpdatedAt, tags)
	if r != nil {
		s.hideAttrs(r, "port", o, "binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details")
	}
	return o
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func (s *Service) portObj(r *http.Request, q store.Querier, p *port) (obj, error) {
	tags, err := tagsFor(r.Context(), q, []string{p.ID})
	if err != nil {
		return nil, err
	}
	return s.renderPort(r, p, tags[p.ID]), nil
}

// portFilters are the port list filters that are not attribute equality.
var portFilters = map[string]itemFilter{
	// fixed_ips=ip_address=10.0.0.3, fixed_ips=subnet_id=..., and
	// fixed_ips=ip_address_substr=10.0 (ip-substring-filtering); several
	// constraints must all hold.
	"fixed_ips": func(item obj, values []string) bool {
		ips, _ := item["fixed_ips"].([]fixedIP)
		for _, v := range values {
			k, want, _ := strings.Cut(v, "=")
			ok := slices.ContainsFunc(ips, func(f fixedIP) bool {
				switch k {
				case "ip_address":
					return f.IPAddress == want
				case "subnet_id":
					return f.SubnetID == want
				case "ip_address_substr":
					return strings.Contains(f.IPAddress, want)
				}
				return true
			})
			if !ok {
				return false
			}
		}
		return true
	},
	"security_groups": func(item obj, values []string) bool {
		sgs, _ := item["security_groups"].([]string)
		for _, v := range values {
			if !slices.Contains(sgs, v) {
				return false
			}
		}
		return true
	},
}

func (s *Service) listPorts(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	ports, err := queryList(s, r, c, "get_port", scanPort, `SELECT `+portColumns+` FROM ports`, `(project_id = ? OR network_id IN (SELECT id FROM networks WHERE project_id = ?))`, nil)
	if err != nil {
		return nil, err
	}
	if err := fillPorts(ctx, s.db, ports, false); err != nil {
		return nil, err
	}
	items, err := renderTagged(ctx, s.db, ports, func(p *port) string { return p.ID }, func(*port) bool { return true },
		func(p *port, tags []string) obj { return s.renderPort(r, p, tags) })
	if err != nil {
		return nil, err
	}
	return s.list(r, "ports", items, portFilters)
}

func (s *Service) showPort(r *http.Request) (*api.Response, error) {
	p, _, err := s.loadPort(r.Context(), s.db, s.caller(r), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	o, err := s.portObj(r, s.db, p)
	if err != nil {
		return nil, err
	}
	return show(r, "port", o), nil
}

type fixedIPReq struct {
	SubnetID  *string `json:"subnet_id"`
	IPAddress *string `json:"ip_address"`
}

type portBody struct {
	NetworkID      *string                      `json:"network_id"`
	Name           *string                      `json:"name"`
	Description    *string                      `json:"description"`
	AdminStateUp   *bool                        `json:"admin_state_up"`
	MACAddress     *string                      `json:"mac_address"`
	FixedIPs       api.Optional[[]fixedIPReq]   `json:"fixed_ips"`
	DeviceID       *string                      `json:"device_id"`
	DeviceOwner    *string                      `json:"device_owner"`
	SecurityGroups api.Optional[[]string]       `json:"security_groups"`
	AddressPairs   api.Optional[[]addressPair]  `json:"allowed_address_pairs"`
	PortSecurity   *bool                        `json:"port_security_enabled"`
	HostID         *string                      `json:"binding:host_id"`
	VNICType       *string                      `json:"binding:vnic_type"`
	Profile        api.Optional[map[string]any] `json:"binding:profile"`
	DHCPOpts       []dhcpOptReq                 `json:"extra_dhcp_opts"`
	ProjectID      *string                      `json:"project_id"`
	TenantID       *string                      `json:"tenant_id"`
	Tags           []string                     `json:"tags"`
}

type dhcpOptReq struct {
	OptName   string  `json:"opt_name"`
	OptValue  *string `json:"opt_value"`
	IPVersion *int    `json:"ip_version"`
}

// portSpec is a port to create, from the API or on behalf of routers and
// floating IPs.
type portSpec struct {
	project                                  string
	net                                      *network
	name, description, deviceID, deviceOwner string
	adminStateUp                             bool
	mac                                      string
	fixedIPs                                 []fixedIPReq
	fixedIPsSet                              bool
	securityGroups                           *[]string
	pairs                                    []addressPair
	portSecurity                             *bool
	hostID, vnicType                         string
	profile                                  map[string]any
	dhcpOpts                                 []dhcpOpt
	tags                                     []string
	routerPort                               bool
}

func (b *portBody) guardedAttrs() []string {
	var out []string
	if b.DeviceOwner != nil && strings.HasPrefix(*b.DeviceOwner, "network:") {
		out = append(out, "device_owner")
	}
	if b.MACAddress != nil {
		out = append(out, "mac_address")
	}
	if b.FixedIPs.Set && slices.ContainsFunc(b.FixedIPs.Value, func(f fixedIPReq) bool { return f.IPAddress != nil }) {
		out = append(out, "fixed_ips:ip_address")
	}
	if b.PortSecurity != nil {
		out = append(out, "port_security_enabled")
	}
	if b.HostID != nil {
		out = append(out, "binding:host_id")
	}
	if b.Profile.Set {
		out = append(out, "binding:profile")
	}
	if b.AddressPairs.Set && len(b.AddressPairs.Value) > 0 {
		out = append(out, "allowed_address_pairs")
	}
	return out
}

func validateDHCPOpts(in []dhcpOptReq) ([]dhcpOpt, error) {
	var out []dhcpOpt
	for _, o := range in {
		if o.OptName == "" {
			return nil, attrInvalid("extra_dhcp_opts", "'opt_name' is required")
		}
		v := 4
		if o.IPVersion != nil {
			v = *o.IPVersion
		}
		if v != 4 && v != 6 {
			return nil, attrInvalid("extra_dhcp_opts", "%d is not in [4, 6]", v)
		}
		if o.OptValue == nil {
			continue
		}
		out = append(out, dhcpOpt{OptName: o.OptName, OptValue: *o.OptValue, IPVersion: v})
	}
	return out, nil
}

func validatePairs(pairs []addressPair) ([]addressPair, error) {
	if len(pairs) > maxAddressPairs {
		return nil, nerr(400, "AllowedAddressPairExhausted", "The number of allowed address pair exceeds the maximum %d.", maxAddressPairs)
	}
	var out []addressPair
	for _, p := range pairs {
		if p.IPAddress == "" {
			return nil, nerr(400, "AllowedAddressPairsMissingIP", "AllowedAddressPair must contain ip_address")
		}
		ip := p.IPAddress
		if strings.Contains(ip, "/") {
			pf, err := netip.ParsePrefix(ip)
			if err != nil {
				return nil, attrInvalid("allowed_address_pairs", "'%s' is not a valid IP address", ip)
			}
			ip = pf.String()
		} else if a, err := netip.ParseAddr(ip); err != nil {
			return nil, attrInvalid("allowed_address_pairs", "'%s' is not a valid IP address", ip)
		} else {
			ip = a.String()
		}
		mac := ""
		if p.MACAddress != "" {
			m, ok := normalMAC(p.MACAddress)
			if !ok {
				return nil, attrInvalid("allowed_address_pairs", "'%s' is not a valid MAC address", p.MACAddress)
			}
			mac = m
		}
		np := addressPair{ip, mac}
		if slices.Contains(out, np) {
			return nil, nerr(400, "DuplicateAddressPairInRequest", "Request contains duplicate address pair: mac_address %s ip_address %s.", p.MACAddress, p.IPAddress)
		}
		out = append(out, np)
	}
	return orEmpty(out), nil
}

func (s *Service) preparePort(r *http.Request, b portBody) (*creation, error) {
	var err error
	c := s.caller(r)
	if b.NetworkID == nil {
		return nil, badRequest("port", "Failed to parse request. Required attribute 'network_id' not specified")
	}
	project, err := ownerFor(c, b.ProjectID, b.TenantID)
	if err != nil {
		return nil, err
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255), checkLen("device_id", b.DeviceID, 255),
		checkLen("device_owner", b.DeviceOwner, 255), validTags(b.Tags)); err != nil {
		return nil, err
	}
	spec := portSpec{project: project, name: deref(b.Name), description: deref(b.Description), deviceID: deref(b.DeviceID),
		deviceOwner: deref(b.DeviceOwner), adminStateUp: derefOr(b.AdminStateUp, true), fixedIPs: b.FixedIPs.Value,
		fixedIPsSet: b.FixedIPs.Set && !b.FixedIPs.Null, portSecurity: b.PortSecurity, hostID: deref(b.HostID),
		vnicType: derefOr(b.VNICType, "normal"), profile: b.Profile.Value, tags: b.Tags}
	if b.MACAddress != nil {
		m, ok := normalMAC(*b.MACAddress)
		if !ok {
			return nil, attrInvalid("mac_address", "'%s' is not a valid MAC address", *b.MACAddress)
		}
		spec.mac = m
	}
	if !slices.Contains(vnicTypes, spec.vnicType) {
		return nil, attrInvalid("binding:vnic_type", "'%s' is not in %v", spec.vnicType, vnicTypes)
	}
	if b.SecurityGroups.Set && !b.SecurityGroups.Null {
		sgs := b.SecurityGroups.Value
		spec.securityGroups = &sgs
	}
	if b.AddressPairs.Set && !b.AddressPairs.Null {
		if spec.pairs, err = validatePairs(b.AddressPairs.Value); err != nil {
			return nil, err
		}
	}
	if spec.dhcpOpts, err = validateDHCPOpts(b.DHCPOpts); err != nil {
		return nil, err
	}
	return &creation{run: func(tx *store.Tx) (o obj, err error) {
		err = func() error {
			ctx := r.Context()
			n, err := s.loadNetwork(ctx, tx, c, *b.NetworkID)
			if err != nil {
				return err
			}
			spec.net = n
			target := obj{"project_id": project, "network_project_id": n.ProjectID}
			if err := s.authorize(r, "create_port", target); err != nil {
				return err
			}
			if err := s.authorizeAttrs(r, "create_port", target, b.guardedAttrs()...); err != nil {
				return err
			}
			p, err := s.createPortTx(ctx, tx, &spec)
			if err != nil {
				return err
			}
			o, err = s.portObj(r, tx, p)
			return err
		}()
		return o, err
	}}, nil
}

// createPortTx creates a port in tx: quota, MAC, addresses, security
// groups and bindings.
func (s *Service) createPortTx(ctx context.Context, tx *store.Tx, spec *portSpec) (*port, error) {
	// The service's own ports without a project (floating IPs' and router
	// gateways' addresses on the external network) count against no
	// quota, as in Neutron: their resource's own quota already did.
	if spec.project != "" {
		if err := s.checkQuota(ctx, tx, spec.project, "port", 1); err != nil {
			return nil, err
		}
	}
	t := neutronTime(now())
	p := &port{ID: newID(), ProjectID: spec.project, NetworkID: spec.net.ID, Name: spec.name, Description: spec.description,
		AdminStateUp: spec.adminStateUp, DeviceID: spec.deviceID, DeviceOwner: spec.deviceOwner, Status: "DOWN",
		PortSecurity: derefOr(spec.portSecurity, spec.net.PortSecurity), HostID: spec.hostID, VNICType: spec.vnicType,
		Profile: nonNilMap(spec.profile), AddressPairs: orEmpty(spec.pairs), DHCPOpts: orEmpty(spec.dhcpOpts), CreatedAt: t, UpdatedAt: t}
	if strings.HasPrefix(p.DeviceOwner, "network:") {
		p.Status = "ACTIVE"
	}
	p.VIFType, p.VIFDetails = bindingFor(p.HostID)
	// MAC: the one asked for if free on the network, else a random one
	// that is; the (network_id, mac_address) key settles races.
	if spec.mac != "" {
		used, err := count(ctx, tx, `SELECT COUNT(*) FROM ports WHERE network_id = ? AND mac_address = ?`, p.NetworkID, spec.mac)
		if err != nil {
			return nil, err
		}
		if used > 0 {
			return nil, inUse("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", p.NetworkID, spec.mac)
		}
		p.MAC = spec.mac
	} else {
		for i := 0; ; i++ {
			if i == 16 {
				return nil, nerr(http.StatusServiceUnavailable, "NetworkMacAddressGenerationFailure", "Unable to generate unique mac on network %s.", p.NetworkID)
			}
			p.MAC = randomMAC()
			used, err := count(ctx, tx, `SELECT COUNT(*) FROM ports WHERE network_id = ? AND mac_address = ?`, p.NetworkID, p.MAC)
			if err != nil {
				return nil, err
			}
			if used == 0 {
				break
			}
		}
	}
	for i := range p.AddressPairs {
		if p.AddressPairs[i].MACAddress == "" {
			p.AddressPairs[i].MACAddress = p.MAC
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ports (`+portColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.ProjectID, p.NetworkID, p.Name, p.Description, boolInt(p.AdminStateUp), p.MAC, p.DeviceID, p.DeviceOwner, p.Status,
		boolInt(p.PortSecurity), p.HostID, p.VNICType, jsonText(p.Profile), p.VIFType, jsonText(p.VIFDetails),
		jsonText(p.AddressPairs), jsonText(p.DHCPOpts), p.Revision, p.CreatedAt, p.UpdatedAt); err != nil {
		if store.IsConflict(err) {
			return nil, store.ErrRetry
		}
		return nil, err
	}
	ips, err := s.assignIPs(ctx, tx, p, spec.net, spec.fixedIPs, spec.fixedIPsSet, spec.routerPort)
	if err != nil {
		return nil, err
	}
	sortFixedIPs(ips)
	p.FixedIPs = ips
	if err := s.applyPortSecurity(ctx, tx, p, spec.securityGroups, len(spec.pairs) > 0, true); err != nil {
		return nil, err
	}
	if err := setTags(ctx, tx, p.ID, spec.tags); err != nil {
		return nil, err
	}
	return p, nil
}

// bindingFor is the binding a port gets on a host: the Linux bridge
// data plane plugs taps into a per-network bridge and filters them.
func bindingFor(host string) (string, map[string]any) {
	if host == "" {
		return "unbound", map[string]any{}
	}
	return "bridge", map[string]any{"port_filter": true, "connectivity": "l2"}
}

// assignIPs allocates a new port's addresses: those asked for, or one
// from the network's first IPv4 subnet with room, plus the SLAAC address
// of each automatic IPv6 subnet and one from the first stateful one.
func (s *Service) assignIPs(ctx context.Context, tx *store.Tx, p *port, n *network, reqs []fixedIPReq, explicit, routerPort bool) ([]fixedIP, error) {
	subnets, err := store.QueryAll(ctx, tx, scanSubnet, `SELECT `+subnetColumns+` FROM subnets WHERE network_id = ? ORDER BY created_at, id`, n.ID)
	if err != nil {
		return nil, err
	}
	var out []fixedIP
	if !explicit {
		v4done, v6done := false, false
		for _, sn := range subnets {
			switch {
			case sn.IPVersion == 4 && v4done, sn.IPVersion == 6 && !sn.autoAddress() && v6done:
				continue
			}
			ip, err := allocateIP(ctx, tx, sn, p.ID, p.MAC, nil, routerPort)
			var ne *api.Error
			if errors.As(err, &ne) && ne.Type == "IpAddressGenerationFailure" {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, fixedIP{sn.ID, ip})
			if sn.IPVersion == 4 {
				v4done = true
			} else if !sn.autoAddress() {
				v6done = true
			}
		}
		if len(subnets) > 0 && len(out) == 0 {
			return nil, nerr(409, "IpAddressGenerationFailure", "No more IP addresses available on network %s.", n.ID)
		}
		return out, nil
	}
	seen := map[string]bool{}
	for _, req := range reqs {
		var sn *subnet
		var want *netip.Addr
		if req.IPAddress != nil {
			a, err := netip.ParseAddr(*req.IPAddress)
			if err != nil {
				return nil, attrInvalid("fixed_ips", "'%s' is not a valid IP address", *req.IPAddress)
			}
			a = a.Unmap()
			want = &a
			if seen[a.String()] {
				return nil, invalidInput("Duplicate IP address '%s'", a)
			}
			seen[a.String()] = true
		}
		switch {
		case req.SubnetID != nil:
			i := slices.IndexFunc(subnets, func(x *subnet) bool { return x.ID == *req.SubnetID })
			if i < 0 {
				return nil, invalidInput("Failed to create port on network %s, because fixed_ips included invalid subnet %s", n.ID, *req.SubnetID)
			}
			sn = subnets[i]
		case want != nil:
			i := slices.IndexFunc(subnets, func(x *subnet) bool { return netip.MustParsePrefix(x.CIDR).Contains(*want) })
			if i < 0 {
				return nil, nerr(400, "InvalidIpForNetwork", "IP address %s is not a valid IP for any of the subnets on the specified network.", *want)
			}
			sn = subnets[i]
		default:
			return nil, invalidInput("IP allocation requires subnet_id or ip_address")
		}
		ip, err := allocateIP(ctx, tx, sn, p.ID, p.MAC, want, routerPort)
		if err != nil {
			return nil, err
		}
		out = append(out, fixedIP{sn.ID, ip})
	}
	return out, nil
}

// applyPortSecurity sets a port's security groups following Neutron's
// rules: groups and address pairs need port security (and groups an
// address); an ordinary port with port security and an address gets its
// project's default group unless it names its own.
func (s *Service) applyPortSecurity(ctx context.Context, tx *store.Tx, p *port, groups *[]string, hasPairs, creating bool) error {
	hasIP := len(p.FixedIPs) > 0
	if groups != nil && len(*groups) > 0 && !(p.PortSecurity && hasIP) {
		return invalidInput("Port security must be enabled and port must have an IP address in order to use security groups")
	}
	if hasPairs && !p.PortSecurity {
		return inUse("AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.")
	}
	var ids []string
	switch {
	case groups != nil:
		for _, g := range *groups {
			uid, ok := validUUID(g)
			if !ok {
				return securityGroupNotFound(g)
			}
			sg, err := s.getSecurityGroup(ctx, tx, uid)
			if err != nil {
				return err
			}
			if sg.ProjectID != p.ProjectID {
				// A port uses its own project's groups; the ids of
				// others' groups stay unknown.
				return securityGroupNotFound(g)
			}
			if !slices.Contains(ids, uid) {
				ids = append(ids, uid)
			}
		}
	case creating && p.PortSecurity && hasIP && !strings.HasPrefix(p.DeviceOwner, "network:"):
		def, err := s.ensureDefaultSecurityGroup(ctx, tx, p.ProjectID)
		if err != nil {
			return err
		}
		ids = []string{def}
	default:
		if !creating {
			return nil
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM port_security_groups WHERE port_id = ?`, p.ID); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := tx.Exec(ctx, `INSERT INTO port_security_groups (port_id, security_group_id) VALUES (?, ?)`, p.ID, id); err != nil {
			return err
		}
	}
	sort.Strings(ids)
	p.SecurityGroups = ids
	return nil
}

func (s *Service) updatePort(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[portBody](r, "port")
	if err != nil {
		return nil, err
	}
	if b.NetworkID != nil || b.ProjectID != nil || b.TenantID != nil || b.Tags != nil {
		return nil, badRequest("port", "Cannot update read-only attribute")
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255), checkLen("device_id", b.DeviceID, 255),
		checkLen("device_owner", b.DeviceOwner, 255)); err != nil {
		return nil, err
	}
	if b.VNICType != nil && !slices.Contains(vnicTypes, *b.VNICType) {
		return nil, attrInvalid("binding:vnic_type", "'%s' is not in %v", *b.VNICType, vnicTypes)
	}
	var pairs []addressPair
	if b.AddressPairs.Set && !b.AddressPairs.Null {
		if pairs, err = validatePairs(b.AddressPairs.Value); err != nil {
			return nil, err
		}
	}
	opts, err := validateDHCPOpts(b.DHCPOpts)
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	// A change of a server's port addresses names the server in the
	// event, so that compute shows its new addresses (Neutron's
	// network-changed notification to Nova).
	var servers []string
	return s.updateOneFor(r, "port", &servers, func(ctx context.Context, tx *store.Tx) (string, obj, error) {
		servers = nil // a retried transaction decides afresh
		p, n, err := s.loadPort(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return "", nil, err
		}
		target := obj{"project_id": p.ProjectID, "network_project_id": n.ProjectID}
		if err := s.authorize(r, "update_port", target); err != nil {
			return "", nil, err
		}
		if err := s.authorizeAttrs(r, "update_port", target, b.guardedAttrs()...); err != nil {
			return "", nil, err
		}
		if b.Name != nil {
			p.Name = *b.Name
		}
		if b.Description != nil {
			p.Description = *b.Description
		}
		if b.AdminStateUp != nil {
			p.AdminStateUp = *b.AdminStateUp
		}
		if b.DeviceID != nil {
			p.DeviceID = *b.DeviceID
		}
		if b.DeviceOwner != nil {
			p.DeviceOwner = *b.DeviceOwner
		}
		if b.MACAddress != nil {
			m, ok := normalMAC(*b.MACAddress)
			if !ok {
				return "", nil, attrInvalid("mac_address", "'%s' is not a valid MAC address", *b.MACAddress)
			}
			if m != p.MAC {
				if p.HostID != "" {
					return "", nil, inUse("PortBound", "Unable to complete operation on port %s, port is already bound, port type: %s, old_mac %s, new_mac %s.", p.ID, p.VIFType, p.MAC, m)
				}
				used, err := count(ctx, tx, `SELECT COUNT(*) FROM ports WHERE network_id = ? AND mac_address = ?`, p.NetworkID, m)
				if err != nil {
					return "", nil, err
				}
				if used > 0 {
					return "", nil, inUse("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", p.NetworkID, m)
				}
				p.MAC = m
			}
		}
		if b.HostID != nil {
			p.HostID = *b.HostID
			p.VIFType, p.VIFDetails = bindingFor(p.HostID)
		}
		if b.VNICType != nil {
			p.VNICType = *b.VNICType
		}
		if b.Profile.Set {
			p.Profile = nonNilMap(b.Profile.Value)
		}
		if b.PortSecurity != nil {
			p.PortSecurity = *b.PortSecurity
		}
		if b.AddressPairs.Set {
			for i := range pairs {
				if pairs[i].MACAddress == "" {
					pairs[i].MACAddress = p.MAC
				}
			}
			p.AddressPairs = orEmpty(pairs)
		}
		if b.DHCPOpts != nil {
			p.DHCPOpts = mergeDHCPOpts(p.DHCPOpts, b.DHCPOpts, opts)
		}
		if b.FixedIPs.Set {
			if err := s.reassignIPs(ctx, tx, p, n, b.FixedIPs.Value); err != nil {
				return "", nil, err
			}
			if p.DeviceID != "" && strings.HasPrefix(p.DeviceOwner, "compute:") {
				servers = []string{p.DeviceID}
			}
		}
		var groups *[]string
		if b.SecurityGroups.Set {
			g := orEmpty(b.SecurityGroups.Value)
			groups = &g
		}
		if groups == nil && len(p.SecurityGroups) > 0 && (!p.PortSecurity || len(p.FixedIPs) == 0) {
			return "", nil, inUse("PortSecurityPortHasSecurityGroup", "Port has security group associated. Cannot disable port security or IP address until security group is removed.")
		}
		if err := s.applyPortSecurity(ctx, tx, p, groups, len(p.AddressPairs) > 0, false); err != nil {
			return "", nil, err
		}
		touch(&p.Revision, &p.UpdatedAt)
		if _, err := tx.Exec(ctx, `UPDATE ports SET name = ?, description = ?, admin_state_up = ?, mac_address = ?, device_id = ?, device_owner = ?,
			port_security_enabled = ?, binding_host_id = ?, binding_vnic_type = ?, binding_profile = ?, binding_vif_type = ?, binding_vif_details = ?,
			allowed_address_pairs = ?, extra_dhcp_opts = ?, revision_number = ?, updated_at = ? WHERE id = ?`,
			p.Name, p.Description, boolInt(p.AdminStateUp), p.MAC, p.DeviceID, p.DeviceOwner, boolInt(p.PortSecurity), p.HostID, p.VNICType,
			jsonText(p.Profile), p.VIFType, jsonText(p.VIFDetails), jsonText(p.AddressPairs), jsonText(p.DHCPOpts), p.Revision, p.UpdatedAt, p.ID); err != nil {
			if store.IsConflict(err) {
				return "", nil, store.ErrRetry
			}
			return "", nil, err
		}
		if err := fillPorts(ctx, tx, []*port{p}, true); err != nil {
			return "", nil, err
		}
		o, err := s.portObj(r, tx, p)
		return p.ID, o, err
	})
}

// mergeDHCPOpts applies an update of extra DHCP options: options are
// keyed by name and IP version; a null value removes one.
func mergeDHCPOpts(cur []dhcpOpt, reqs []dhcpOptReq, set []dhcpOpt) []dhcpOpt {
	out := slices.Clone(cur)
	for _, rq := range reqs {
		v := derefOr(rq.IPVersion, 4)
		out = slices.DeleteFunc(out, func(o dhcpOpt) bool { return o.OptName == rq.OptName && o.IPVersion == v })
	}
	return orEmpty(append(out, set...))
}

// reassignIPs changes a port's addresses to the requested set: kept
// addresses stay, removed ones are freed, new ones allocated.
func (s *Service) reassignIPs(ctx context.Context, tx *store.Tx, p *port, n *network, reqs []fixedIPReq) error {
	var keep []fixedIP
	var fresh []fixedIPReq
	for _, rq := range reqs {
		if rq.IPAddress != nil {
			if a, err := netip.ParseAddr(*rq.IPAddress); err == nil {
				i := slices.IndexFunc(p.FixedIPs, func(f fixedIP) bool {
					return f.IPAddress == a.String() && (rq.SubnetID == nil || *rq.SubnetID == f.SubnetID)
				})
				if i >= 0 {
					keep = append(keep, p.FixedIPs[i])
					continue
				}
			}
		}
		fresh = append(fresh, rq)
	}
	for _, f := range p.FixedIPs {
		if !slices.Contains(keep, f) {
			if _, err := tx.Exec(ctx, `DELETE FROM ip_allocations WHERE subnet_id = ? AND ip_address = ?`, f.SubnetID, f.IPAddress); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE floatingips SET port_id = NULL, fixed_ip_address = NULL, router_id = NULL, status = 'DOWN'
				WHERE port_id = ? AND fixed_ip_address = ?`, p.ID, f.IPAddress); err != nil {
				return err
			}
		}
	}
	added, err := s.assignIPs(ctx, tx, p, n, fresh, true, strings.HasPrefix(p.DeviceOwner, "network:router"))
	if err != nil {
		return err
	}
	p.FixedIPs = append(keep, added...)
	return nil
}

func (s *Service) deletePort(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	return s.deleteOne(r, "port", func(ctx context.Context, tx *store.Tx) (string, error) {
		p, n, err := s.loadPort(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return "", err
		}
		if err := s.authorize(r, "delete_port", obj{"project_id": p.ProjectID, "network_project_id": n.ProjectID}); err != nil {
			return "", err
		}
		switch p.DeviceOwner {
		case "network:router_interface", "network:router_gateway", "network:floatingip", "network:router_interface_distributed":
			return "", inUse("ServicePortInUse", "Port %s cannot be deleted directly via the port API: has device owner %s.", p.ID, p.DeviceOwner)
		}
		return p.ID, deletePortTx(ctx, tx, p.ID)
	})
}

// deletePortTx removes a port; floating IPs on it are disassociated.
func deletePortTx(ctx context.Context, tx *store.Tx, id string) error {
	for _, stmt := range []string{
		`UPDATE floatingips SET port_id = NULL, fixed_ip_address = NULL, router_id = NULL, status = 'DOWN' WHERE port_id = ?`,
		`DELETE FROM tags WHERE resource_id = ?`,
		`DELETE FROM ports WHERE id = ?`,
	} {
		if _, err := tx.Exec(ctx, stmt, id); err != nil {
			return err
		}
	}
	return nil
}
