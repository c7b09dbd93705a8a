package network

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

type floatingIP struct {
	ID, ProjectID, NetworkID, FloatingPortID, Address string
	PortID, FixedIP, RouterID                         *string
	Status, Description                               string
	Revision                                          int
	CreatedAt, UpdatedAt                              string
}

const fipColumns = `id, project_id, floating_network_id, floating_port_id, floating_ip_address, port_id, fixed_ip_address, router_id,
	status, description, revision_number, created_at, updated_at`

func scanFloatingIP(row store.Scanner) (*floatingIP, error) {
	var f floatingIP
	var port, fixed, rtr sql.NullString
	if err := row.Scan(&f.ID, &f.ProjectID, &f.NetworkID, &f.FloatingPortID, &f.Address, &port, &fixed, &rtr, &f.Status,
		&f.Description, &f.Revision, &f.CreatedAt, &f.UpdatedAt); err != nil {
		return nil, err
	}
	f.PortID, f.FixedIP, f.RouterID = nullString(port), nullString(fixed), nullString(rtr)
	return &f, nil
}

func renderFloatingIP(f *floatingIP, tags []string) obj {
	o := obj{
		"floating_network_id": f.NetworkID, "floating_ip_address": f.Address, "port_id": strOrNil(f.PortID),
		"fixed_ip_address": strOrNil(f.FixedIP), "router_id": strOrNil(f.RouterID), "status": f.Status,
	}
	return standardAttrs(o, f.ID, f.ProjectID, f.Description, f.Revision, f.CreatedAt, f.UpdatedAt, tags)
}

func (s *Service) loadFloatingIP(ctx context.Context, q store.Querier, c caller, id string) (*floatingIP, error) {
	return loadVisible(ctx, q, scanFloatingIP, `SELECT `+fipColumns+` FROM floatingips WHERE id = ?`, id,
		func(f *floatingIP) bool { return c.admin || f.ProjectID == c.project }, floatingIPNotFound)
}

func (s *Service) floatingIPObj(ctx context.Context, q store.Querier, f *floatingIP) (obj, error) {
	return withTags(ctx, q, f.ID, f, renderFloatingIP)
}

func (s *Service) listFloatingIPs(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	fips, err := queryList(s, r, c, "get_floatingip", scanFloatingIP, `SELECT `+fipColumns+` FROM floatingips`, `project_id = ?`, nil)
	if err != nil {
		return nil, err
	}
	items, err := renderTagged(ctx, s.db, fips, func(f *floatingIP) string { return f.ID },
		func(f *floatingIP) bool { return c.admin || f.ProjectID == c.project }, renderFloatingIP)
	if err != nil {
		return nil, err
	}
	return s.list(r, "floatingips", items, nil)
}

func (s *Service) showFloatingIP(r *http.Request) (*api.Response, error) {
	return showOne(s, r, "floatingip", s.loadFloatingIP, s.floatingIPObj)
}

type floatingIPBody struct {
	FloatingNetworkID *string              `json:"floating_network_id"`
	FloatingIPAddress *string              `json:"floating_ip_address"`
	SubnetID          *string              `json:"subnet_id"`
	PortID            api.Optional[string] `json:"port_id"`
	FixedIPAddress    api.Optional[string] `json:"fixed_ip_address"`
	Description       *string              `json:"description"`
	ProjectID         *string              `json:"project_id"`
	TenantID          *string              `json:"tenant_id"`
	Tags              []string             `json:"tags"`
}

func (s *Service) createFloatingIP(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[floatingIPBody](r, "floatingip")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	if b.FloatingNetworkID == nil {
		return nil, badRequest("floatingip", "Failed to parse request. Required attribute 'floating_network_id' not specified")
	}
	var attrs []string
	if b.FloatingIPAddress != nil {
		attrs = append(attrs, "floating_ip_address")
	}
	project, err := s.authorizeCreate(r, c, "create_floatingip", b.ProjectID, b.TenantID, attrs...)
	if err != nil {
		return nil, err
	}
	if err := firstErr(checkLen("description", b.Description, 255), validTags(b.Tags)); err != nil {
		return nil, err
	}
	t := neutronTime(now())
	f := &floatingIP{ID: newID(), ProjectID: project, Status: "DOWN", Description: deref(b.Description), CreatedAt: t, UpdatedAt: t}
	var o obj
	var servers []string
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		n, err := s.loadNetwork(ctx, tx, c, *b.FloatingNetworkID)
		if err != nil {
			return err
		}
		if !n.External {
			return badRequest("floatingip", "Network %s is not a valid external network", n.ID)
		}
		if err := s.checkQuota(ctx, tx, project, "floatingip", 1); err != nil {
			return err
		}
		var reqs []fixedIPReq
		if b.FloatingIPAddress != nil || b.SubnetID != nil {
			reqs = []fixedIPReq{{SubnetID: b.SubnetID, IPAddress: b.FloatingIPAddress}}
		}
		spec := portSpec{project: "", net: n, deviceID: f.ID, deviceOwner: ownerFloatingIP, adminStateUp: true,
			fixedIPs: reqs, fixedIPsSet: reqs != nil, vnicType: "normal"}
		fp, err := s.createPortTx(ctx, tx, &spec)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(fp.FixedIPs, func(x fixedIP) bool { return netip.MustParseAddr(x.IPAddress).Is4() })
		if i < 0 {
			return nerr(400, "ExternalIpAddressExhausted", "Unable to find any IP address on external network %s.", n.ID)
		}
		f.NetworkID, f.FloatingPortID, f.Address = n.ID, fp.ID, fp.FixedIPs[i].IPAddress
		if b.PortID.Set && !b.PortID.Null {
			if err := s.associate(ctx, tx, c, f, b.PortID.Value, b.FixedIPAddress); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO floatingips (`+fipColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			f.ID, f.ProjectID, f.NetworkID, f.FloatingPortID, f.Address, f.PortID, f.FixedIP, f.RouterID, f.Status, f.Description,
			f.Revision, f.CreatedAt, f.UpdatedAt); err != nil {
			return err
		}
		if err := setTags(ctx, tx, f.ID, b.Tags); err != nil {
			return err
		}
		if servers, err = serversOfPorts(ctx, tx, f.PortID); err != nil {
			return err
		}
		o, err = s.floatingIPObj(ctx, tx, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.notify(r.Context(), Event{Resource: "floatingip", ID: f.ID, Action: "create", Servers: servers})
	return api.JSON(http.StatusCreated, obj{"floatingip": o}), nil
}

// associate points a floating IP at a port's fixed address, through the
// router that connects the port's subnet to the floating IP's network.
func (s *Service) associate(ctx context.Context, tx *store.Tx, c caller, f *floatingIP, portID string, fixed api.Optional[string]) error {
	p, _, err := s.loadPort(ctx, tx, c, portID)
	if err != nil {
		return err
	}
	if !c.admin && p.ProjectID != f.ProjectID {
		return portNotFound(portID)
	}
	if len(p.FixedIPs) == 0 {
		return badRequest("floatingip", "Port %s does not have fixed ip", p.ID)
	}
	var chosen *fixedIP
	if fixed.Set && !fixed.Null {
		i := slices.IndexFunc(p.FixedIPs, func(x fixedIP) bool { return x.IPAddress == fixed.Value })
		if i < 0 {
			return badRequest("floatingip", "Port %s does not have fixed ip %s", p.ID, fixed.Value)
		}
		chosen = &p.FixedIPs[i]
	} else {
		i := slices.IndexFunc(p.FixedIPs, func(x fixedIP) bool { return netip.MustParseAddr(x.IPAddress).Is4() })
		if i < 0 {
			return badRequest("floatingip", "Port %s does not have fixed ip", p.ID)
		}
		chosen = &p.FixedIPs[i]
	}
	// The router: one with a gateway on the floating network and an
	// interface on the fixed address's subnet.
	routerID, err := store.QueryOne(ctx, tx, scanOneString, `SELECT r.id FROM routers r
		JOIN ports g ON g.id = r.gw_port_id AND g.network_id = ?
		JOIN ports i ON i.device_id = r.id AND i.device_owner = ?
		JOIN ip_allocations a ON a.port_id = i.id AND a.subnet_id = ?
		ORDER BY r.id`, f.NetworkID, ownerRouterInterface, chosen.SubnetID)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("ExternalGatewayForFloatingIPNotFound", "External network %s is not reachable from subnet %s.  Therefore, cannot associate Port %s with a Floating IP.", f.NetworkID, chosen.SubnetID, p.ID)
	}
	if err != nil {
		return err
	}
	_, err = store.QueryOne(ctx, tx, scanOneString, `SELECT id FROM floatingips WHERE port_id = ? AND fixed_ip_address = ? AND id <> ?`, p.ID, chosen.IPAddress, f.ID)
	if err == nil {
		return inUse("FloatingIPPortAlreadyAssociated", "Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.", f.Address, f.ID, p.ID, chosen.IPAddress, f.NetworkID)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	f.PortID, f.FixedIP, f.RouterID, f.Status = &p.ID, &chosen.IPAddress, &routerID, "ACTIVE"
	return nil
}

func (s *Service) updateFloatingIP(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[floatingIPBody](r, "floatingip")
	if err != nil {
		return nil, err
	}
	if b.FloatingNetworkID != nil || b.FloatingIPAddress != nil || b.SubnetID != nil || b.ProjectID != nil || b.TenantID != nil || b.Tags != nil {
		return nil, badRequest("floatingip", "Cannot update read-only attribute")
	}
	c := s.caller(r)
	var servers []string
	resp, err := updateOwned(s, r, "floatingip", s.loadFloatingIP, func(ctx context.Context, tx *store.Tx, f *floatingIP) (obj, error) {
		if b.Description != nil {
			f.Description = *b.Description
		}
		before := f.PortID
		switch {
		case b.PortID.Set && b.PortID.Null:
			f.PortID, f.FixedIP, f.RouterID, f.Status = nil, nil, nil, "DOWN"
		case b.PortID.Set:
			if err := s.associate(ctx, tx, c, f, b.PortID.Value, b.FixedIPAddress); err != nil {
				return nil, err
			}
		}
		touch(&f.Revision, &f.UpdatedAt)
		if _, err := tx.Exec(ctx, `UPDATE floatingips SET port_id = ?, fixed_ip_address = ?, router_id = ?, status = ?, description = ?,
			revision_number = ?, updated_at = ? WHERE id = ?`, f.PortID, f.FixedIP, f.RouterID, f.Status, f.Description, f.Revision, f.UpdatedAt, f.ID); err != nil {
			if store.IsConflict(err) {
				return nil, store.ErrRetry
			}
			return nil, err
		}
		var err error
		if servers, err = serversOfPorts(ctx, tx, before, f.PortID); err != nil {
			return nil, err
		}
		return s.floatingIPObj(ctx, tx, f)
	})
	if err == nil && len(servers) > 0 {
		s.notify(r.Context(), Event{Resource: "floatingip", ID: r.PathValue("id"), Action: "update", Servers: servers})
	}
	return resp, err
}

func (s *Service) deleteFloatingIP(r *http.Request) (*api.Response, error) {
	var servers []string
	resp, err := deleteOwned(s, r, "floatingip", s.loadFloatingIP, func(ctx context.Context, tx *store.Tx, f *floatingIP) error {
		var err error
		if servers, err = serversOfPorts(ctx, tx, f.PortID); err != nil {
			return err
		}
		for _, stmt := range []string{`DELETE FROM tags WHERE resource_id = ?`, `DELETE FROM floatingips WHERE id = ?`} {
			if _, err := tx.Exec(ctx, stmt, f.ID); err != nil {
				return err
			}
		}
		return deletePortTx(ctx, tx, f.FloatingPortID)
	})
	if err == nil && len(servers) > 0 {
		s.notify(r.Context(), Event{Resource: "floatingip", ID: r.PathValue("id"), Action: "delete", Servers: servers})
	}
	return resp, err
}

// serversOfPorts are the compute servers (device ids of ports owned by
// compute:*) among the given ports; nil ports are skipped.
func serversOfPorts(ctx context.Context, q store.Querier, ports ...*string) ([]string, error) {
	var out []string
	for _, p := range ports {
		if p == nil {
			continue
		}
		var dev string
		err := q.QueryRow(ctx, `SELECT device_id FROM ports WHERE id = ? AND device_owner LIKE 'compute:%' AND device_id <> ''`, *p).Scan(&dev)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("server of port %s: %w", *p, err)
		}
		if !slices.Contains(out, dev) {
			out = append(out, dev)
		}
	}
	return out, nil
}
