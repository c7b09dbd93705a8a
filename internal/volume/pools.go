package volume

import (
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Every storage host has one backend and one pool (the agent's state
// dir); these are what Cinder's scheduler stats and capabilities call
// them.
const (
	// vendorName is what Cinder's reference (LVM) driver reports and
	// what Tempest expects of a pool by default ([volume] vendor_name).
	vendorName      = "Open Source"
	driverVersion   = "1.0"
	storageProtocol = "nbd"
)

// getPools answers /scheduler-stats/get_pools: a pool per storage host,
// named host@backend#pool, with its capacity when ?detail=true.
func (s *Service) getPools(r *http.Request) (*api.Response, error) {
	hosts, err := store.QueryAll(r.Context(), s.db, scanHost, `SELECT `+hostCols+` FROM volume_services ORDER BY host`)
	if err != nil {
		return nil, err
	}
	detail := isTrue(r.URL.Query().Get("detail"))
	out := []any{}
	for _, h := range hosts {
		pool := map[string]any{"name": h.Host + "@" + h.Backend + "#" + h.Pool}
		if detail {
			t := isoMicro(parseTime(h.UpdatedAt))
			pool["capabilities"] = map[string]any{
				"updated": t, "timestamp": t, "QoS_support": false, "total_capacity_gb": h.TotalGB, "free_capacity_gb": h.FreeGB,
				"volume_backend_name": h.Backend, "driver_version": driverVersion, "reserved_percentage": 0,
				"storage_protocol": storageProtocol, "vendor_name": vendorName,
			}
		}
		out = append(out, pool)
	}
	return api.JSON(http.StatusOK, map[string]any{"pools": out}), nil
}

// capabilities answers /capabilities/{host@backend[#pool]}.
func (s *Service) capabilities(r *http.Request) (*api.Response, error) {
	name := r.PathValue("host_name")
	host, _, _ := cutAt(strings.SplitN(name, "#", 2)[0])
	h, err := s.loadHost(r.Context(), s.db, host)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, api.NotFound("Service %s could not be found.", name)
	}
	return api.JSON(http.StatusOK, map[string]any{
		"namespace": "OS::Storage::Capabilities::" + h.Host, "vendor_name": vendorName, "volume_backend_name": h.Backend,
		"pool_name": h.Pool, "driver_version": driverVersion, "storage_protocol": storageProtocol, "display_name": nil,
		"description": nil, "visibility": nil, "replication_targets": []any{},
		"properties": map[string]any{
			"thin_provisioning": map[string]any{"title": "Thin Provisioning", "description": "Sets thin provisioning.", "type": "boolean"},
		},
	}), nil
}
