package network

import (
	"encoding/json"
	"math/big"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// infoExtensions are the informational resources.
var infoExtensions = []extension{
	{"availability_zone", "Availability Zone", "The availability zone extension.", "2015-01-01T10:00:00-00:00"},
	{"network-ip-availability", "Network IP Availability", "Provides IP availability data for each network and subnet.", "2015-09-24T00:00:00-00:00"},
	{"service-type", "Neutron Service Type Management", "API for retrieving service providers for Neutron advanced services", "2013-01-20T00:00:00-00:00"},
}

// listAvailabilityZones lists the one zone networks and routers are
// placed in.
func (s *Service) listAvailabilityZones(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "get_availability_zone", obj{}); err != nil {
		return nil, err
	}
	var items []obj
	for _, res := range []string{"network", "router"} {
		items = append(items, obj{"name": s.cfg.AvailabilityZone, "resource": res, "state": "available"})
	}
	return s.listKeyed(r, "availability_zones", "resource", items, nil)
}

// serviceProviders are the providers of advanced services: routers are
// Nimbus's own.
func (s *Service) listServiceProviders(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "get_service_provider", obj{}); err != nil {
		return nil, err
	}
	items := []obj{{"service_type": "L3_ROUTER_NAT", "name": "nimbus", "default": true}}
	return s.listKeyed(r, "service_providers", "name", items, nil)
}

// poolSize counts the addresses of allocation pools; IPv6 pools exceed
// 64 bits, so the count is a JSON number of any size.
func poolSize(pools []ipRange) *big.Int {
	total := new(big.Int)
	for _, p := range pools {
		lo, hi, err := p.bounds()
		if err != nil {
			continue
		}
		a, b := new(big.Int).SetBytes(lo.AsSlice()), new(big.Int).SetBytes(hi.AsSlice())
		total.Add(total, b.Sub(b, a).Add(b, big.NewInt(1)))
	}
	return total
}

func bigNumber(n *big.Int) json.Number { return json.Number(n.String()) }

// ipAvailability renders one network's address usage per subnet.
func ipAvailability(n *network, subnets []*subnet, used map[string]int) obj {
	total, usedAll := new(big.Int), 0
	per := []obj{}
	for _, sn := range subnets {
		size := poolSize(sn.Pools)
		total.Add(total, size)
		usedAll += used[sn.ID]
		per = append(per, obj{"subnet_id": sn.ID, "subnet_name": sn.Name, "cidr": sn.CIDR, "ip_version": sn.IPVersion,
			"total_ips": bigNumber(size), "used_ips": used[sn.ID]})
	}
	return obj{"network_id": n.ID, "network_name": n.Name, "project_id": n.ProjectID, "tenant_id": n.ProjectID,
		"total_ips": bigNumber(total), "used_ips": usedAll, "subnet_ip_availability": per}
}

func (s *Service) ipAvailabilities(r *http.Request, networkID string) ([]obj, error) {
	ctx := r.Context()
	q, args := `SELECT `+networkColumns+` FROM networks`, []any{}
	if networkID != "" {
		q, args = q+` WHERE id = ?`, []any{networkID}
	}
	nets, err := store.QueryAll(ctx, s.db, scanNetwork, q, args...)
	if err != nil {
		return nil, err
	}
	subnets, err := store.QueryAll(ctx, s.db, scanSubnet, `SELECT `+subnetColumns+` FROM subnets ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	type row struct {
		subnet string
		n      int
	}
	counts, err := store.QueryAll(ctx, s.db, func(sc store.Scanner) (row, error) {
		var rw row
		err := sc.Scan(&rw.subnet, &rw.n)
		return rw, err
	}, `SELECT subnet_id, COUNT(*) FROM ip_allocations GROUP BY subnet_id`)
	if err != nil {
		return nil, err
	}
	used := map[string]int{}
	for _, c := range counts {
		used[c.subnet] = c.n
	}
	byNet := map[string][]*subnet{}
	for _, sn := range subnets {
		byNet[sn.NetworkID] = append(byNet[sn.NetworkID], sn)
	}
	ipVersion := r.URL.Query().Get("ip_version")
	var out []obj
	for _, n := range nets {
		sns := byNet[n.ID]
		if ipVersion != "" {
			var keep []*subnet
			for _, sn := range sns {
				if matchValue(sn.IPVersion, ipVersion) {
					keep = append(keep, sn)
				}
			}
			sns = keep
		}
		out = append(out, ipAvailability(n, sns, used))
	}
	return out, nil
}

func (s *Service) listIPAvailabilities(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "get_network_ip_availability", obj{}); err != nil {
		return nil, err
	}
	items, err := s.ipAvailabilities(r, "")
	if err != nil {
		return nil, err
	}
	// ip_version selects subnets, not networks.
	special := map[string]itemFilter{"ip_version": func(obj, []string) bool { return true }}
	return s.listKeyed(r, "network_ip_availabilities", "network_id", items, special)
}

func (s *Service) showIPAvailability(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "get_network_ip_availability", obj{}); err != nil {
		return nil, err
	}
	id, ok := validUUID(r.PathValue("id"))
	if !ok {
		return nil, networkNotFound(r.PathValue("id"))
	}
	items, err := s.ipAvailabilities(r, id)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, networkNotFound(id)
	}
	return show(r, "network_ip_availability", items[0]), nil
}
