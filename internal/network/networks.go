package network

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"slices"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

var networkExtensions = []extension{
	{"provider", "Provider Network", "Expose mapping of virtual networks to physical networks", "2012-09-07T10:00:00-00:00"},
	{"external-net", "Neutron external network", "Adds external network attribute to network resource.", "2013-01-14T10:00:00-00:00"},
	{"net-mtu", "Network MTU", "Provides MTU attribute for a network resource.", "2015-03-25T10:00:00-00:00"},
	{"net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource.", "2017-07-12T00:00:00-00:00"},
	{"port-security", "Port Security", "Provides port security", "2012-07-23T10:00:00-00:00"},
	{"network_availability_zone", "Network Availability Zone", "Availability zone support for network.", "2015-01-01T10:00:00-00:00"},
}

// vxlanOverhead is what VXLAN over IPv4 adds to a frame: outer IP (20),
// UDP (8), VXLAN (8) and inner Ethernet (14) headers.
const vxlanOverhead = 50

type network struct {
	ID, ProjectID, Name, Description string
	AdminStateUp, Shared, External   bool
	Status                           string
	NetworkType, PhysicalNetwork     string
	SegmentationID                   *int
	MTU                              int
	PortSecurity                     bool
	AZHints                          []string
	Revision                         int
	CreatedAt, UpdatedAt             string
}

const networkColumns = `id, project_id, name, description, admin_state_up, shared, external, status, network_type,
	physical_network, segmentation_id, mtu, port_security_enabled, az_hints, revision_number, created_at, updated_at`

func scanNetwork(row store.Scanner) (*network, error) {
	var n network
	var admin, shared, ext, psec int
	var seg sql.NullInt64
	var hints string
	if err := row.Scan(&n.ID, &n.ProjectID, &n.Name, &n.Description, &admin, &shared, &ext, &n.Status, &n.NetworkType,
		&n.PhysicalNetwork, &seg, &n.MTU, &psec, &hints, &n.Revision, &n.CreatedAt, &n.UpdatedAt); err != nil {
		return nil, err
	}
	n.AdminStateUp, n.Shared, n.External, n.PortSecurity = admin != 0, shared != 0, ext != 0, psec != 0
	n.SegmentationID = nullInt(seg)
	if err := fromJSON(hints, &n.AZHints); err != nil {
		return nil, err
	}
	return &n, nil
}

func (s *Service) getNetwork(ctx context.Context, q store.Querier, id string) (*network, error) {
	n, err := store.QueryOne(ctx, q, scanNetwork, `SELECT `+networkColumns+` FROM networks WHERE id = ?`, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, networkNotFound(id)
	}
	return n, err
}

// visibleNetwork reports whether the caller sees a network: their own,
// shared and external networks, everything for admins.
func (c caller) seesNetwork(n *network) bool {
	return c.admin || n.ProjectID == c.project || n.Shared || n.External
}

// loadNetwork fetches a network the caller may see; anything else is 404.
func (s *Service) loadNetwork(ctx context.Context, q store.Querier, c caller, id string) (*network, error) {
	uid, ok := validUUID(id)
	if !ok {
		return nil, networkNotFound(id)
	}
	n, err := s.getNetwork(ctx, q, uid)
	if err != nil {
		return nil, err
	}
	if !c.seesNetwork(n) {
		return nil, networkNotFound(id)
	}
	return n, nil
}

func (s *Service) renderNetwork(r *http.Request, n *network, subnets, tags []string) obj {
	o := obj{
		"name": n.Name, "admin_state_up": n.AdminStateUp, "shared": n.Shared, "router:external": n.External,
		"status": n.Status, "subnets": orEmpty(subnets), "mtu": n.MTU, "port_security_enabled": n.PortSecurity,
		"provider:network_type": n.NetworkType, "provider:physical_network": nil, "provider:segmentation_id": intOrNil(n.SegmentationID),
		"availability_zone_hints": orEmpty(n.AZHints), "availability_zones": []string{s.cfg.AvailabilityZone},
		"ipv4_address_scope": nil, "ipv6_address_scope": nil, "l2_adjacency": true,
	}
	if n.PhysicalNetwork != "" {
		o["provider:physical_network"] = n.PhysicalNetwork
	}
	standardAttrs(o, n.ID, n.ProjectID, n.Description, n.Revision, n.CreatedAt, n.UpdatedAt, tags)
	s.hideAttrs(r, "network", o, "provider:network_type", "provider:physical_network", "provider:segmentation_id")
	return o
}

// networkVisibility is the SQL form of caller.seesNetwork.
const networkVisibility = `(project_id = ? OR shared = 1 OR external = 1)`

// subnetIDsOf returns the ids of the networks' subnets, by network.
func subnetIDsOf(ctx context.Context, q store.Querier, networkIDs []string) (map[string][]string, error) {
	out := map[string][]string{}
	err := forChunks(networkIDs, func(_ []string, in string, args []any) error {
		m, err := subnetIDsWhere(ctx, q, ` WHERE network_id IN `+in, args...)
		for k, v := range m {
			out[k] = v
		}
		return err
	})
	return out, err
}

// subnetIDsByNetwork returns the ids of each network's subnets.
func subnetIDsByNetwork(ctx context.Context, q store.Querier, networkID string) (map[string][]string, error) {
	return subnetIDsWhere(ctx, q, ` WHERE network_id = ?`, networkID)
}

func subnetIDsWhere(ctx context.Context, q store.Querier, where string, args ...any) (map[string][]string, error) {
	type row struct{ net, id string }
	rows, err := store.QueryAll(ctx, q, func(sc store.Scanner) (row, error) {
		var r row
		err := sc.Scan(&r.net, &r.id)
		return r, err
	}, `SELECT network_id, id FROM subnets`+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, r := range rows {
		out[r.net] = append(out[r.net], r.id)
	}
	return out, nil
}

func (s *Service) showNetworkObj(r *http.Request, q store.Querier, n *network) (obj, error) {
	ctx := r.Context()
	subnets, err := subnetIDsByNetwork(ctx, q, n.ID)
	if err != nil {
		return nil, err
	}
	tags, err := tagsFor(ctx, q, []string{n.ID})
	if err != nil {
		return nil, err
	}
	return s.renderNetwork(r, n, subnets[n.ID], tags[n.ID]), nil
}

func (s *Service) listNetworks(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	nets, err := queryList(s, r, c, "get_network", scanNetwork, `SELECT `+networkColumns+` FROM networks`, networkVisibility, nil)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(nets))
	for i, n := range nets {
		ids[i] = n.ID
	}
	subnets, err := subnetIDsOf(ctx, s.db, ids)
	if err != nil {
		return nil, err
	}
	items, err := renderTagged(ctx, s.db, nets, func(n *network) string { return n.ID }, c.seesNetwork,
		func(n *network, tags []string) obj { return s.renderNetwork(r, n, subnets[n.ID], tags) })
	if err != nil {
		return nil, err
	}
	return s.list(r, "networks", items, nil)
}

func (s *Service) showNetwork(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	n, err := s.loadNetwork(r.Context(), s.db, c, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "get_network", obj{"project_id": n.ProjectID}); err != nil {
		return nil, err
	}
	o, err := s.showNetworkObj(r, s.db, n)
	if err != nil {
		return nil, err
	}
	return show(r, "network", o), nil
}

type networkBody struct {
	Name            *string  `json:"name"`
	Description     *string  `json:"description"`
	AdminStateUp    *bool    `json:"admin_state_up"`
	Shared          *bool    `json:"shared"`
	External        *bool    `json:"router:external"`
	NetworkType     *string  `json:"provider:network_type"`
	PhysicalNetwork *string  `json:"provider:physical_network"`
	SegmentationID  *int     `json:"provider:segmentation_id"`
	MTU             *int     `json:"mtu"`
	PortSecurity    *bool    `json:"port_security_enabled"`
	AZHints         []string `json:"availability_zone_hints"`
	ProjectID       *string  `json:"project_id"`
	TenantID        *string  `json:"tenant_id"`
	Tags            []string `json:"tags"`
}

// setAttrs names the policy-guarded attributes a network body sets. As
// in Neutron, a create that gives an attribute its default value is not
// checked (clients send "shared": false), an update that names it is.
func (b *networkBody) setAttrs(creating bool) []string {
	var out []string
	if b.Shared != nil && (*b.Shared || !creating) {
		out = append(out, "shared")
	}
	if b.External != nil && (*b.External || !creating) {
		out = append(out, "router:external")
	}
	if b.NetworkType != nil {
		out = append(out, "provider:network_type")
	}
	if b.PhysicalNetwork != nil {
		out = append(out, "provider:physical_network")
	}
	if b.SegmentationID != nil {
		out = append(out, "provider:segmentation_id")
	}
	return out
}

func (s *Service) prepareNetwork(r *http.Request, b networkBody) (*creation, error) {
	var err error
	c := s.caller(r)
	project, err := s.authorizeCreate(r, c, "create_network", b.ProjectID, b.TenantID, b.setAttrs(true)...)
	if err != nil {
		return nil, err
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255), validTags(b.Tags)); err != nil {
		return nil, err
	}
	for _, az := range b.AZHints {
		if az != s.cfg.AvailabilityZone {
			return nil, nerr(http.StatusNotFound, "AvailabilityZoneNotFound", "AvailabilityZone %s could not be found.", az)
		}
	}
	t := neutronTime(now())
	n := &network{
		ID: newID(), ProjectID: project, Name: deref(b.Name), Description: deref(b.Description),
		AdminStateUp: derefOr(b.AdminStateUp, true), Shared: derefOr(b.Shared, false), External: derefOr(b.External, false),
		Status: "ACTIVE", PortSecurity: derefOr(b.PortSecurity, true), AZHints: b.AZHints, CreatedAt: t, UpdatedAt: t,
	}
	return &creation{run: func(tx *store.Tx) (o obj, err error) {
		err = func() error {
			ctx := r.Context()
			if err := s.checkQuota(ctx, tx, project, "network", 1); err != nil {
				return err
			}
			if err := s.chooseSegment(ctx, tx, n, b); err != nil {
				return err
			}
			maxMTU := s.maxMTU(n.NetworkType)
			n.MTU = maxMTU
			if b.MTU != nil {
				if *b.MTU < 68 {
					return invalidInput("'%d' is too small - must be at least '68'", *b.MTU)
				}
				if *b.MTU > maxMTU {
					return invalidInput("Requested MTU is too big, maximum is %d", maxMTU)
				}
				n.MTU = *b.MTU
			}
			_, err := tx.Exec(ctx, `INSERT INTO networks (`+networkColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				n.ID, n.ProjectID, n.Name, n.Description, boolInt(n.AdminStateUp), boolInt(n.Shared), boolInt(n.External), n.Status,
				n.NetworkType, n.PhysicalNetwork, n.SegmentationID, n.MTU, boolInt(n.PortSecurity), jsonText(orEmpty(n.AZHints)),
				n.Revision, n.CreatedAt, n.UpdatedAt)
			if err != nil {
				return err
			}
			if err := setTags(ctx, tx, n.ID, b.Tags); err != nil {
				return err
			}
			o, err = s.showNetworkObj(r, tx, n)
			return err
		}()
		return o, err
	}}, nil
}

func (s *Service) maxMTU(networkType string) int {
	if networkType == "vxlan" {
		return s.cfg.UnderlayMTU - vxlanOverhead
	}
	return s.cfg.UnderlayMTU
}

func (s *Service) physnetAllowed(name string) bool {
	if len(s.cfg.PhysicalNetworks) == 0 && len(s.cfg.VLANRanges) == 0 {
		return true
	}
	_, vlan := s.cfg.VLANRanges[name]
	return vlan || slices.Contains(s.cfg.PhysicalNetworks, name)
}

// chooseSegment validates provider attributes or, without them, gives
// the network a tenant segment: the lowest free id of the configured
// ranges. A concurrent create that took the same id makes the insert
// violate networks_segment, and writeTx runs this again.
func (s *Service) chooseSegment(ctx context.Context, tx *store.Tx, n *network, b networkBody) error {
	if b.NetworkType == nil && b.PhysicalNetwork == nil && b.SegmentationID == nil {
		n.NetworkType = s.cfg.TenantNetworkType
		switch n.NetworkType {
		case "vxlan":
			id, err := s.freeSegment(ctx, tx, "vxlan", "", s.cfg.VXLANRanges)
			if err != nil {
				return err
			}
			n.SegmentationID = &id
		case "vlan":
			physnets := make([]string, 0, len(s.cfg.VLANRanges))
			for p := range s.cfg.VLANRanges {
				physnets = append(physnets, p)
			}
			sort.Strings(physnets)
			for _, p := range physnets {
				id, err := s.freeSegment(ctx, tx, "vlan", p, s.cfg.VLANRanges[p])
				var ne *api.Error
				if errors.As(err, &ne) {
					continue
				}
				if err != nil {
					return err
				}
				n.PhysicalNetwork, n.SegmentationID = p, &id
				return nil
			}
			return noNetworkAvailable()
		}
		return nil
	}
	if b.NetworkType == nil {
		return invalidInput("provider:network_type required")
	}
	n.NetworkType = *b.NetworkType
	phys := deref(b.PhysicalNetwork)
	switch n.NetworkType {
	case "flat":
		if b.SegmentationID != nil {
			return invalidInput("segmentation_id specified for flat network")
		}
		if phys == "" {
			return invalidInput("physical_network required for flat provider network")
		}
		if !s.physnetAllowed(phys) {
			return invalidInput("physical_network '%s' unknown for flat provider network", phys)
		}
		used, err := count(ctx, tx, `SELECT COUNT(*) FROM networks WHERE network_type = 'flat' AND physical_network = ?`, phys)
		if err != nil {
			return err
		}
		if used > 0 {
			return inUse("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", phys)
		}
		n.PhysicalNetwork = phys
	case "vlan":
		if phys == "" {
			return invalidInput("physical_network required for VLAN provider network")
		}
		if !s.physnetAllowed(phys) {
			return invalidInput("physical_network '%s' unknown for VLAN provider network", phys)
		}
		n.PhysicalNetwork = phys
		if b.SegmentationID == nil {
			id, err := s.freeSegment(ctx, tx, "vlan", phys, s.cfg.VLANRanges[phys])
			if err != nil {
				return err
			}
			n.SegmentationID = &id
			return nil
		}
		if id := *b.SegmentationID; id < 1 || id > 4094 {
			return invalidInput("segmentation_id out of range (1 through 4094)")
		}
		if err := segmentFree(ctx, tx, "vlan", phys, *b.SegmentationID); err != nil {
			return inUse("VlanIdInUse", "Unable to create the network. The VLAN %d on physical network %s is in use.", *b.SegmentationID, phys)
		}
		n.SegmentationID = b.SegmentationID
	case "vxlan":
		if phys != "" {
			return invalidInput("provider:physical_network specified for VXLAN network")
		}
		if b.SegmentationID == nil {
			id, err := s.freeSegment(ctx, tx, "vxlan", "", s.cfg.VXLANRanges)
			if err != nil {
				return err
			}
			n.SegmentationID = &id
			return nil
		}
		if id := *b.SegmentationID; id < 1 || id > 1<<24-1 {
			return invalidInput("segmentation_id out of range (1 through 16777215)")
		}
		if err := segmentFree(ctx, tx, "vxlan", "", *b.SegmentationID); err != nil {
			return inUse("TunnelIdInUse", "Unable to create the network. The tunnel ID %d is in use.", *b.SegmentationID)
		}
		n.SegmentationID = b.SegmentationID
	case "local":
		if phys != "" || b.SegmentationID != nil {
			return invalidInput("provider:physical_network and provider:segmentation_id prohibited for local provider network")
		}
	default:
		return invalidInput("network_type value '%s' not supported", n.NetworkType)
	}
	return nil
}

func noNetworkAvailable() *api.Error {
	return nerr(http.StatusServiceUnavailable, "NoNetworkAvailable", "Unable to create the network. No project network is available for allocation.")
}

var errSegmentUsed = errors.New("segment in use")

func segmentFree(ctx context.Context, tx *store.Tx, typ, phys string, id int) error {
	n, err := count(ctx, tx, `SELECT COUNT(*) FROM networks WHERE network_type = ? AND physical_network = ? AND segmentation_id = ?`, typ, phys, id)
	if err != nil {
		return err
	}
	if n > 0 {
		return errSegmentUsed
	}
	return nil
}

// freeSegment returns the lowest id of ranges not used by a network of
// the type on the physical network.
func (s *Service) freeSegment(ctx context.Context, tx *store.Tx, typ, phys string, ranges []Range) (int, error) {
	used, err := store.QueryAll(ctx, tx, func(sc store.Scanner) (int, error) {
		var v int
		err := sc.Scan(&v)
		return v, err
	}, `SELECT segmentation_id FROM networks WHERE network_type = ? AND physical_network = ? AND segmentation_id IS NOT NULL`, typ, phys)
	if err != nil {
		return 0, err
	}
	taken := make(map[int]bool, len(used))
	for _, v := range used {
		taken[v] = true
	}
	for _, rg := range ranges {
		for id := rg.Min; id <= rg.Max; id++ {
			if !taken[id] {
				return id, nil
			}
		}
	}
	return 0, noNetworkAvailable()
}

func (s *Service) updateNetwork(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[networkBody](r, "network")
	if err != nil {
		return nil, err
	}
	return updateOwned(s, r, "network", s.loadNetwork, func(ctx context.Context, tx *store.Tx, n *network) (obj, error) {
		if err := s.authorizeAttrs(r, "update_network", obj{"project_id": n.ProjectID}, b.setAttrs(false)...); err != nil {
			return nil, err
		}
		if b.ProjectID != nil || b.TenantID != nil || b.AZHints != nil || b.Tags != nil {
			return nil, badRequest("network", "Cannot update read-only attribute")
		}
		if b.NetworkType != nil || b.PhysicalNetwork != nil || b.SegmentationID != nil {
			return nil, invalidInput("Plugin does not support updating provider attributes")
		}
		if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255)); err != nil {
			return nil, err
		}
		if b.Name != nil {
			n.Name = *b.Name
		}
		if b.Description != nil {
			n.Description = *b.Description
		}
		if b.AdminStateUp != nil {
			n.AdminStateUp = *b.AdminStateUp
		}
		if b.PortSecurity != nil {
			n.PortSecurity = *b.PortSecurity
		}
		if b.MTU != nil {
			if max := s.maxMTU(n.NetworkType); *b.MTU > max {
				return nil, invalidInput("Requested MTU is too big, maximum is %d", max)
			}
			if *b.MTU < 68 {
				return nil, invalidInput("'%d' is too small - must be at least '68'", *b.MTU)
			}
			n.MTU = *b.MTU
		}
		if b.Shared != nil && !*b.Shared && n.Shared {
			others, err := count(ctx, tx, `SELECT COUNT(*) FROM ports WHERE network_id = ? AND project_id <> ? AND device_owner NOT LIKE 'network:%'`, n.ID, n.ProjectID)
			if err != nil {
				return nil, err
			}
			if others > 0 {
				return nil, inUse("InvalidSharedSetting", "Unable to reconfigure sharing settings for network %s. Multiple projects are using it.", n.ID)
			}
		}
		if b.Shared != nil {
			n.Shared = *b.Shared
		}
		if b.External != nil && !*b.External && n.External {
			gws, err := count(ctx, tx, `SELECT COUNT(*) FROM ports WHERE network_id = ? AND device_owner IN ('network:router_gateway', 'network:floatingip')`, n.ID)
			if err != nil {
				return nil, err
			}
			if gws > 0 {
				return nil, inUse("ExternalNetworkInUse", "External network %s cannot be updated to be made non-external, since it has existing gateway ports.", n.ID)
			}
		}
		if b.External != nil {
			n.External = *b.External
		}
		touch(&n.Revision, &n.UpdatedAt)
		if _, err := tx.Exec(ctx, `UPDATE networks SET name = ?, description = ?, admin_state_up = ?, shared = ?, external = ?, mtu = ?,
			port_security_enabled = ?, revision_number = ?, updated_at = ? WHERE id = ?`,
			n.Name, n.Description, boolInt(n.AdminStateUp), boolInt(n.Shared), boolInt(n.External), n.MTU,
			boolInt(n.PortSecurity), n.Revision, n.UpdatedAt, n.ID); err != nil {
			return nil, err
		}
		return s.showNetworkObj(r, tx, n)
	})
}

func (s *Service) deleteNetwork(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	err := s.commit(r, func(ctx context.Context, tx *store.Tx) ([]Event, error) {
		n, err := s.loadNetwork(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		if err := s.authorizeOwned(r, "delete_network", n.ProjectID); err != nil {
			return nil, err
		}
		inUseCount, err := count(ctx, tx, `SELECT COUNT(*) FROM ports WHERE network_id = ? AND device_owner NOT IN ('network:dhcp', 'network:floatingip')`, n.ID)
		if err != nil {
			return nil, err
		}
		if inUseCount > 0 {
			return nil, inUse("NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network.", n.ID)
		}
		ports, err := store.QueryStrings(ctx, tx, `SELECT id FROM ports WHERE network_id = ?`, n.ID)
		if err != nil {
			return nil, err
		}
		for _, stmt := range []string{
			`DELETE FROM tags WHERE resource_id IN (SELECT id FROM floatingips WHERE floating_network_id = ?)`,
			`DELETE FROM floatingips WHERE floating_network_id = ?`,
			`DELETE FROM tags WHERE resource_id IN (SELECT id FROM ports WHERE network_id = ?)`,
			`DELETE FROM ports WHERE network_id = ?`,
			`DELETE FROM tags WHERE resource_id IN (SELECT id FROM subnets WHERE network_id = ?)`,
			`DELETE FROM subnets WHERE network_id = ?`,
			`DELETE FROM tags WHERE resource_id = ?`,
			`DELETE FROM networks WHERE id = ?`,
		} {
			if _, err := tx.Exec(ctx, stmt, n.ID); err != nil {
				return nil, err
			}
		}
		// The network's own ports (DHCP, floating IPs) went with it.
		evs := []Event{{Resource: "network", ID: n.ID, Action: "delete"}}
		for _, p := range ports {
			evs = append(evs, Event{Resource: "port", ID: p, Action: "delete"})
		}
		return evs, nil
	})
	if err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
