package compute

import (
	"net/http"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// zoneExists reports whether servers may ask for zone: it holds an
// enabled host, or it is the default zone.
func (s *Service) zoneExists(r *http.Request, zone string) (bool, error) {
	if zone == s.cfg.DefaultAvailabilityZone {
		return true, nil
	}
	hs, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return false, err
	}
	for _, h := range hs {
		if h.Zone == zone && !h.Disabled {
			return true, nil
		}
	}
	return false, nil
}

// zones answers os-availability-zone: zones with an enabled host are
// available; zones whose hosts are all disabled are listed as not.
func (s *Service) zones(r *http.Request, detail bool) (*api.Response, error) {
	hs, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	type zone struct {
		available bool
		hosts     map[string]any
	}
	zs := map[string]*zone{}
	for _, h := range hs {
		z := zs[h.Zone]
		if z == nil {
			z = &zone{hosts: map[string]any{}}
			zs[h.Zone] = z
		}
		if !h.Disabled {
			z.available = true
		}
		z.hosts[h.Host] = map[string]any{"nova-compute": map[string]any{
			"available": !h.Disabled && s.up(h), "active": !h.Disabled, "updated_at": isoMicro(parseTime(h.UpdatedAt)),
		}}
	}
	names := make([]string, 0, len(zs))
	for n := range zs {
		names = append(names, n)
	}
	sort.Strings(names)
	out := []map[string]any{}
	for _, n := range names {
		z := zs[n]
		entry := map[string]any{"zoneName": n, "zoneState": map[string]bool{"available": z.available}, "hosts": nil}
		if detail {
			entry["hosts"] = z.hosts
		}
		out = append(out, entry)
	}
	return api.JSON(http.StatusOK, map[string]any{"availabilityZoneInfo": out}), nil
}

func (s *Service) listZones(r *http.Request) (*api.Response, error)   { return s.zones(r, false) }
func (s *Service) detailZones(r *http.Request) (*api.Response, error) { return s.zones(r, true) }
