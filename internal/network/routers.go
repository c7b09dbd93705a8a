package network

import (
	"context"
	"database/sql"
	"net/http"
	"net/netip"
	"slices"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

var routerExtensions = []extension{
	{"router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.", "2012-07-20T10:00:00-00:00"},
	{"ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway", "2013-03-28T10:00:00-00:00"},
	{"extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router", "2013-02-01T10:00:00-00:00"},
	{"router_availability_zone", "Router Availability Zone", "Availability zone support for router.", "2015-01-01T10:00:00-00:00"},
	{"dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers.", "2014-06-1T10:00:00-00:00"},
}

// Device owners of the ports routers and floating IPs use.
const (
	ownerRouterInterface = "network:router_interface"
	ownerRouterGateway   = "network:router_gateway"
	ownerFloatingIP      = "network:floatingip"
)

// maxRoutes is Neutron's max_routes default.
const maxRoutes = 30

type router struct {
	ID, ProjectID, Name, Description string
	AdminStateUp                     bool
	Status                           string
	GatewayPortID                    *string
	EnableSNAT                       bool
	// Distributed is the dvr extension's flag, which only admins see and
	// set; the data plane routes on every host either way.
	Distributed          bool
	Routes               []hostRoute
	AZHints              []string
	Revision             int
	CreatedAt, UpdatedAt string
}

const routerColumns = `id, project_id, name, description, admin_state_up, status, gw_port_id, enable_snat, routes, az_hints,
	revision_number, created_at, updated_at, distributed`

func scanRouter(row store.Scanner) (*router, error) {
	var rt router
	var admin, snat, dist int
	var gw sql.NullString
	var routes, hints string
	if err := row.Scan(&rt.ID, &rt.ProjectID, &rt.Name, &rt.Description, &admin, &rt.Status, &gw, &snat, &routes, &hints,
		&rt.Revision, &rt.CreatedAt, &rt.UpdatedAt, &dist); err != nil {
		return nil, err
	}
	rt.AdminStateUp, rt.EnableSNAT, rt.GatewayPortID, rt.Distributed = admin != 0, snat != 0, nullString(gw), dist != 0
	return &rt, firstErr(fromJSON(routes, &rt.Routes), fromJSON(hints, &rt.AZHints))
}

func (s *Service) loadRouter(ctx context.Context, q store.Querier, c caller, id string) (*router, error) {
	return loadVisible(ctx, q, scanRouter, `SELECT `+routerColumns+` FROM routers WHERE id = ?`, id,
		func(rt *router) bool { return c.admin || rt.ProjectID == c.project }, routerNotFound)
}

// routerObj renders a router; with a request, the attributes the caller
// may not read are left out.
func (s *Service) routerObj(ctx context.Context, q store.Querier, r *http.Request, rt *router) (obj, error) {
	var gw any
	if rt.GatewayPortID != nil {
		p, err := s.getPort(ctx, q, *rt.GatewayPortID)
		if err != nil {
			return nil, err
		}
		gw = obj{"network_id": p.NetworkID, "enable_snat": rt.EnableSNAT, "external_fixed_ips": orEmpty(p.FixedIPs)}
	}
	tags, err := tagsFor(ctx, q, []string{rt.ID})
	if err != nil {
		return nil, err
	}
	o := obj{
		"name": rt.Name, "admin_state_up": rt.AdminStateUp, "status": rt.Status, "external_gateway_info": gw,
		"routes": orEmpty(rt.Routes), "availability_zone_hints": orEmpty(rt.AZHints), "availability_zones": []string{s.cfg.AvailabilityZone},
		"distributed": rt.Distributed,
	}
	standardAttrs(o, rt.ID, rt.ProjectID, rt.Description, rt.Revision, rt.CreatedAt, rt.UpdatedAt, tags[rt.ID])
	if r != nil {
		s.hideAttrs(r, "router", o, "distributed")
	}
	return o, nil
}

func (s *Service) listRouters(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	rts, err := queryList(s, r, c, "get_router", scanRouter, `SELECT `+routerColumns+` FROM routers`, `project_id = ?`, nil)
	if err != nil {
		return nil, err
	}
	rts = slices.DeleteFunc(rts, func(rt *router) bool { return !c.admin && rt.ProjectID != c.project })
	items, err := renderAll(rts, func(rt *router) (obj, error) { return s.routerObj(ctx, s.db, r, rt) })
	if err != nil {
		return nil, err
	}
	return s.list(r, "routers", items, nil)
}

func (s *Service) showRouter(r *http.Request) (*api.Response, error) {
	return showOne(s, r, "router", s.loadRouter, func(ctx context.Context, q store.Querier, rt *router) (obj, error) {
		return s.routerObj(ctx, q, r, rt)
	})
}

type gatewayInfo struct {
	NetworkID        string       `json:"network_id"`
	EnableSNAT       *bool        `json:"enable_snat"`
	ExternalFixedIPs []fixedIPReq `json:"external_fixed_ips"`
}

type routerBody struct {
	Name         *string                   `json:"name"`
	Description  *string                   `json:"description"`
	AdminStateUp *bool                     `json:"admin_state_up"`
	Distributed  *bool                     `json:"distributed"`
	Gateway      api.Optional[gatewayInfo] `json:"external_gateway_info"`
	Routes       api.Optional[[]hostRoute] `json:"routes"`
	AZHints      []string                  `json:"availability_zone_hints"`
	ProjectID    *string                   `json:"project_id"`
	TenantID     *string                   `json:"tenant_id"`
	Tags         []string                  `json:"tags"`
}

// hasGateway reports whether the body sets a gateway: external_gateway_info
// given as null or {} sets none, as in Neutron.
func (b *routerBody) hasGateway() bool {
	g := b.Gateway.Value
	return b.Gateway.Set && !b.Gateway.Null && (g.NetworkID != "" || g.EnableSNAT != nil || g.ExternalFixedIPs != nil)
}

// checkGateway rejects a gateway without a network, which Neutron's
// validator requires of a non-empty external_gateway_info.
func (b *routerBody) checkGateway() error {
	if b.hasGateway() && b.Gateway.Value.NetworkID == "" {
		return invalidInput("Validation of dictionary's keys failed. Expected keys: {'network_id'}")
	}
	return nil
}

// policyAttrs are the attributes of the body that have their own policy
// rules (create_router:distributed, ...).
func (b *routerBody) policyAttrs() []string {
	var out []string
	if b.Distributed != nil {
		out = append(out, "distributed")
	}
	if b.Gateway.Set && !b.Gateway.Null {
		if b.Gateway.Value.EnableSNAT != nil {
			out = append(out, "external_gateway_info:enable_snat")
		}
		if b.Gateway.Value.ExternalFixedIPs != nil {
			out = append(out, "external_gateway_info:external_fixed_ips")
		}
	}
	return out
}

func (s *Service) createRouter(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[routerBody](r, "router")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	project, err := s.authorizeCreate(r, c, "create_router", b.ProjectID, b.TenantID, b.policyAttrs()...)
	if err != nil {
		return nil, err
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255), validTags(b.Tags), b.checkGateway()); err != nil {
		return nil, err
	}
	if b.Routes.Set && len(b.Routes.Value) > 0 {
		return nil, invalidInput("Invalid format for routes: %v, the nexthop is not connected with router", b.Routes.Value)
	}
	t := neutronTime(now())
	rt := &router{ID: newID(), ProjectID: project, Name: deref(b.Name), Description: deref(b.Description),
		AdminStateUp: derefOr(b.AdminStateUp, true), Status: "ACTIVE", EnableSNAT: true, Distributed: derefOr(b.Distributed, false),
		AZHints: b.AZHints, CreatedAt: t, UpdatedAt: t}
	var o obj
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		if err := s.checkQuota(ctx, tx, project, "router", 1); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO routers (`+routerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			rt.ID, rt.ProjectID, rt.Name, rt.Description, boolInt(rt.AdminStateUp), rt.Status, nil, boolInt(rt.EnableSNAT),
			jsonText(orEmpty(rt.Routes)), jsonText(orEmpty(rt.AZHints)), rt.Revision, rt.CreatedAt, rt.UpdatedAt, boolInt(rt.Distributed)); err != nil {
			return err
		}
		if b.hasGateway() {
			if err := s.setGateway(ctx, tx, c, rt, &b.Gateway.Value); err != nil {
				return err
			}
		}
		if err := setTags(ctx, tx, rt.ID, b.Tags); err != nil {
			return err
		}
		if _, err := s.scheduleTx(ctx, tx, l3Binding, rt.ID); err != nil {
			return err
		}
		var err error
		o, err = s.routerObj(ctx, tx, r, rt)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.notify(r.Context(), Event{Resource: "router", ID: rt.ID, Action: "create"})
	return api.JSON(http.StatusCreated, obj{"router": o}), nil
}

// setGateway replaces a router's external gateway port.
func (s *Service) setGateway(ctx context.Context, tx *store.Tx, c caller, rt *router, gw *gatewayInfo) error {
	n, err := s.loadNetwork(ctx, tx, c, gw.NetworkID)
	if err != nil {
		return err
	}
	if !n.External {
		return badRequest("router", "Network %s is not an external network", n.ID)
	}
	if err := s.clearGateway(ctx, tx, rt, n.ID); err != nil {
		return err
	}
	spec := portSpec{project: "", net: n, deviceID: rt.ID, deviceOwner: ownerRouterGateway, adminStateUp: true,
		fixedIPs: gw.ExternalFixedIPs, fixedIPsSet: gw.ExternalFixedIPs != nil, vnicType: "normal", routerPort: true}
	p, err := s.createPortTx(ctx, tx, &spec)
	if err != nil {
		return err
	}
	if len(p.FixedIPs) == 0 {
		return nerr(400, "ExternalIpAddressExhausted", "Unable to find any IP address on external network %s.", n.ID)
	}
	rt.GatewayPortID = &p.ID
	rt.EnableSNAT = derefOr(gw.EnableSNAT, true)
	_, err = tx.Exec(ctx, `UPDATE routers SET gw_port_id = ?, enable_snat = ? WHERE id = ?`, p.ID, boolInt(rt.EnableSNAT), rt.ID)
	return err
}

// clearGateway removes a router's gateway port; floating IPs routed
// through it keep it, unless the new gateway is on the same network.
func (s *Service) clearGateway(ctx context.Context, tx *store.Tx, rt *router, keepNet string) error {
	if rt.GatewayPortID == nil {
		return nil
	}
	gp, err := s.getPort(ctx, tx, *rt.GatewayPortID)
	if err != nil {
		return err
	}
	if gp.NetworkID != keepNet {
		n, err := count(ctx, tx, `SELECT COUNT(*) FROM floatingips WHERE router_id = ?`, rt.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			return inUse("RouterExternalGatewayInUseByFloatingIp", "Gateway cannot be updated for router %s, since a gateway to external network %s is required by one or more floating IPs.", rt.ID, gp.NetworkID)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE routers SET gw_port_id = NULL WHERE id = ?`, rt.ID); err != nil {
		return err
	}
	rt.GatewayPortID = nil
	return deletePortTx(ctx, tx, gp.ID)
}

// interfacePorts returns a router's interface ports.
func (s *Service) interfacePorts(ctx context.Context, q store.Querier, routerID string) ([]*port, error) {
	ps, err := store.QueryAll(ctx, q, scanPort, `SELECT `+portColumns+` FROM ports WHERE device_id = ? AND device_owner = ?`, routerID, ownerRouterInterface)
	if err != nil {
		return nil, err
	}
	return ps, fillPorts(ctx, q, ps, false)
}

// validateRoutes checks extra routes: each nexthop must be on a subnet
// the router is attached to.
func (s *Service) validateRoutes(ctx context.Context, tx *store.Tx, rt *router, routes []hostRoute) ([]hostRoute, error) {
	if len(routes) > maxRoutes {
		return nil, nerr(400, "RoutesExhausted", "Unable to complete operation for %s. The number of routes exceeds the maximum %d.", rt.ID, maxRoutes)
	}
	var cidrs []netip.Prefix
	ports, err := s.interfacePorts(ctx, tx, rt.ID)
	if err != nil {
		return nil, err
	}
	if rt.GatewayPortID != nil {
		gp, err := s.getPort(ctx, tx, *rt.GatewayPortID)
		if err != nil {
			return nil, err
		}
		ports = append(ports, gp)
	}
	for _, p := range ports {
		for _, f := range p.FixedIPs {
			sn, err := s.getSubnet(ctx, tx, f.SubnetID)
			if err != nil {
				return nil, err
			}
			cidrs = append(cidrs, netip.MustParsePrefix(sn.CIDR))
		}
	}
	var out []hostRoute
	for _, hr := range routes {
		dst, err1 := netip.ParsePrefix(hr.Destination)
		nh, err2 := netip.ParseAddr(hr.Nexthop)
		if err1 != nil || err2 != nil {
			return nil, nerr(400, "InvalidRoutes", "Invalid format for routes: %v, the destination and nexthop must be a CIDR and an IP address", hr)
		}
		if !slices.ContainsFunc(cidrs, func(p netip.Prefix) bool { return p.Contains(nh) }) {
			return nil, nerr(400, "InvalidRoutes", "Invalid format for routes: [%v], the nexthop is not connected with router", hr)
		}
		r := hostRoute{dst.Masked().String(), nh.String()}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return orEmpty(out), nil
}

func (s *Service) updateRouter(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[routerBody](r, "router")
	if err != nil {
		return nil, err
	}
	if b.ProjectID != nil || b.TenantID != nil || b.Tags != nil || b.AZHints != nil {
		return nil, badRequest("router", "Cannot update read-only attribute")
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255), b.checkGateway()); err != nil {
		return nil, err
	}
	c := s.caller(r)
	return updateOwned(s, r, "router", s.loadRouter, func(ctx context.Context, tx *store.Tx, rt *router) (obj, error) {
		if err := s.authorizeAttrs(r, "update_router", obj{"project_id": rt.ProjectID}, b.policyAttrs()...); err != nil {
			return nil, err
		}
		if b.Name != nil {
			rt.Name = *b.Name
		}
		if b.Description != nil {
			rt.Description = *b.Description
		}
		if b.AdminStateUp != nil {
			rt.AdminStateUp = *b.AdminStateUp
		}
		if b.Distributed != nil && *b.Distributed != rt.Distributed {
			// Neutron migrates a router between centralized and
			// distributed only while it is administratively down.
			if rt.AdminStateUp {
				return nil, badRequest("router", "Cannot change the 'distributed' attribute of active routers. Please set router admin_state_up to False prior to upgrade")
			}
			rt.Distributed = *b.Distributed
		}
		switch {
		case b.Gateway.Set && !b.hasGateway():
			if err := s.clearGateway(ctx, tx, rt, ""); err != nil {
				return nil, err
			}
		case b.Gateway.Set:
			gw := b.Gateway.Value
			same := false
			if rt.GatewayPortID != nil && gw.ExternalFixedIPs == nil {
				gp, err := s.getPort(ctx, tx, *rt.GatewayPortID)
				if err != nil {
					return nil, err
				}
				same = gp.NetworkID == gw.NetworkID
			}
			if same {
				rt.EnableSNAT = derefOr(gw.EnableSNAT, rt.EnableSNAT)
			} else if err := s.setGateway(ctx, tx, c, rt, &gw); err != nil {
				return nil, err
			}
		}
		if b.Routes.Set {
			routes, err := s.validateRoutes(ctx, tx, rt, b.Routes.Value)
			if err != nil {
				return nil, err
			}
			rt.Routes = routes
		}
		touch(&rt.Revision, &rt.UpdatedAt)
		if _, err := tx.Exec(ctx, `UPDATE routers SET name = ?, description = ?, admin_state_up = ?, enable_snat = ?, routes = ?,
			distributed = ?, revision_number = ?, updated_at = ? WHERE id = ?`, rt.Name, rt.Description, boolInt(rt.AdminStateUp), boolInt(rt.EnableSNAT),
			jsonText(orEmpty(rt.Routes)), boolInt(rt.Distributed), rt.Revision, rt.UpdatedAt, rt.ID); err != nil {
			return nil, err
		}
		return s.routerObj(ctx, tx, r, rt)
	})
}

func (s *Service) deleteRouter(r *http.Request) (*api.Response, error) {
	return deleteOwned(s, r, "router", s.loadRouter, func(ctx context.Context, tx *store.Tx, rt *router) error {
		n, err := count(ctx, tx, `SELECT COUNT(*) FROM ports WHERE device_id = ? AND device_owner = ?`, rt.ID, ownerRouterInterface)
		if err != nil {
			return err
		}
		if n > 0 {
			return inUse("RouterInUse", "Router %s still has ports", rt.ID)
		}
		if err := s.clearGateway(ctx, tx, rt, ""); err != nil {
			return err
		}
		for _, stmt := range []string{`DELETE FROM tags WHERE resource_id = ?`, `DELETE FROM routers WHERE id = ?`} {
			if _, err := tx.Exec(ctx, stmt, rt.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

type interfaceBody struct {
	SubnetID *string `json:"subnet_id"`
	PortID   *string `json:"port_id"`
}

func interfaceInfo(rt *router, p *port, subnetID string) obj {
	var sids []string
	for _, f := range p.FixedIPs {
		sids = append(sids, f.SubnetID)
	}
	return obj{"id": rt.ID, "project_id": rt.ProjectID, "tenant_id": rt.ProjectID, "port_id": p.ID, "network_id": p.NetworkID,
		"subnet_id": subnetID, "subnet_ids": orEmpty(sids), "tags": []string{}}
}

// interfaceAction serves the router interface actions: in one
// transaction it loads the router the path names, enforces action on it
// and lets change attach or detach the interface; the answer is the
// interface change returns.
func (s *Service) interfaceAction(r *http.Request, action string, change func(ctx context.Context, tx *store.Tx, rt *router) (obj, error)) (*api.Response, error) {
	c := s.caller(r)
	var out obj
	err := s.commit(r, func(ctx context.Context, tx *store.Tx) ([]Event, error) {
		rt, err := s.loadRouter(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		if err := s.authorizeOwned(r, action, rt.ProjectID); err != nil {
			return nil, err
		}
		out, err = change(ctx, tx, rt)
		return []Event{{Resource: "router", ID: rt.ID, Action: "update"}}, err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, out), nil
}

func (s *Service) addInterface(r *http.Request) (*api.Response, error) {
	var b interfaceBody
	if err := api.DecodeJSON(r, &b); err != nil {
		return nil, err
	}
	if (b.SubnetID == nil) == (b.PortID == nil) {
		return nil, badRequest("router", "Either subnet_id or port_id must be specified")
	}
	c := s.caller(r)
	return s.interfaceAction(r, "add_router_interface", func(ctx context.Context, tx *store.Tx, rt *router) (obj, error) {
		existing, err := s.interfacePorts(ctx, tx, rt.ID)
		if err != nil {
			return nil, err
		}
		attached := map[string]netip.Prefix{}
		for _, p := range existing {
			for _, f := range p.FixedIPs {
				sn, err := s.getSubnet(ctx, tx, f.SubnetID)
				if err != nil {
					return nil, err
				}
				attached[sn.ID] = netip.MustParsePrefix(sn.CIDR)
			}
		}
		checkSubnet := func(sn *subnet) error {
			if _, dup := attached[sn.ID]; dup {
				return badRequest("router", "Router already has a port on subnet %s", sn.ID)
			}
			p := netip.MustParsePrefix(sn.CIDR)
			for other, op := range attached {
				if op.Overlaps(p) {
					return badRequest("router", "Cidr %s of subnet %s overlaps with cidr %s of subnet %s", sn.CIDR, sn.ID, op, other)
				}
			}
			return nil
		}
		if b.SubnetID != nil {
			sn, n, err := s.loadSubnet(ctx, tx, c, *b.SubnetID)
			if err != nil {
				return nil, err
			}
			if sn.GatewayIP == nil {
				return nil, badRequest("router", "Subnet for router interface must have a gateway IP")
			}
			if err := checkSubnet(sn); err != nil {
				return nil, err
			}
			gw := *sn.GatewayIP
			spec := portSpec{project: rt.ProjectID, net: n, deviceID: rt.ID, deviceOwner: ownerRouterInterface, adminStateUp: true,
				fixedIPs: []fixedIPReq{{SubnetID: &sn.ID, IPAddress: &gw}}, fixedIPsSet: true, vnicType: "normal", routerPort: true}
			p, err := s.createPortTx(ctx, tx, &spec)
			if err != nil {
				return nil, err
			}
			return interfaceInfo(rt, p, sn.ID), nil
		}
		p, _, err := s.loadPort(ctx, tx, c, *b.PortID)
		if err != nil {
			return nil, err
		}
		if p.DeviceID != "" || p.DeviceOwner != "" {
			return nil, inUse("PortInUse", "Unable to complete operation on port %s for network %s. Port already has an attached device %s.", p.ID, p.NetworkID, p.DeviceID)
		}
		if len(p.FixedIPs) == 0 {
			return nil, badRequest("router", "Router port must have at least one fixed IP")
		}
		for _, f := range p.FixedIPs {
			sn, err := s.getSubnet(ctx, tx, f.SubnetID)
			if err != nil {
				return nil, err
			}
			if err := checkSubnet(sn); err != nil {
				return nil, err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE ports SET device_id = ?, device_owner = ?, status = 'ACTIVE' WHERE id = ?`, rt.ID, ownerRouterInterface, p.ID); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM port_security_groups WHERE port_id = ?`, p.ID); err != nil {
			return nil, err
		}
		return interfaceInfo(rt, p, p.FixedIPs[0].SubnetID), nil
	})
}

func (s *Service) removeInterface(r *http.Request) (*api.Response, error) {
	var b interfaceBody
	if err := api.DecodeJSON(r, &b); err != nil {
		return nil, err
	}
	if b.SubnetID == nil && b.PortID == nil {
		return nil, badRequest("router", "Either subnet_id or port_id must be specified")
	}
	return s.interfaceAction(r, "remove_router_interface", func(ctx context.Context, tx *store.Tx, rt *router) (obj, error) {
		ports, err := s.interfacePorts(ctx, tx, rt.ID)
		if err != nil {
			return nil, err
		}
		var target *port
		subnetID := ""
		for _, p := range ports {
			for _, f := range p.FixedIPs {
				if (b.PortID == nil || *b.PortID == p.ID) && (b.SubnetID == nil || *b.SubnetID == f.SubnetID) {
					target, subnetID = p, f.SubnetID
				}
			}
		}
		if target == nil {
			if b.PortID != nil {
				return nil, notFound("RouterInterfaceNotFound", "Router %s does not have an interface with id %s", rt.ID, *b.PortID)
			}
			return nil, notFound("RouterInterfaceNotFoundForSubnet", "Router %s has no interface on subnet %s", rt.ID, *b.SubnetID)
		}
		sn, err := s.getSubnet(ctx, tx, subnetID)
		if err != nil {
			return nil, err
		}
		prefix := netip.MustParsePrefix(sn.CIDR)
		for _, hr := range rt.Routes {
			if nh, err := netip.ParseAddr(hr.Nexthop); err == nil && prefix.Contains(nh) {
				return nil, inUse("RouterInterfaceInUseByRoute", "Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more routes.", sn.ID, rt.ID)
			}
		}
		fips, err := store.QueryStrings(ctx, tx, `SELECT fixed_ip_address FROM floatingips WHERE router_id = ? AND fixed_ip_address IS NOT NULL`, rt.ID)
		if err != nil {
			return nil, err
		}
		for _, f := range fips {
			if a, err := netip.ParseAddr(f); err == nil && prefix.Contains(a) {
				return nil, inUse("RouterInterfaceInUseByFloatingIP", "Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.", sn.ID, rt.ID)
			}
		}
		return interfaceInfo(rt, target, subnetID), deletePortTx(ctx, tx, target.ID)
	})
}
