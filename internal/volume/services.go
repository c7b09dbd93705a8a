package volume

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// listZones answers os-availability-zone: every storage zone, available
// when a host in it is up (the default zone is listed even before any
// host has registered, so clients always see where volumes would go).
func (s *Service) listZones(r *http.Request) (*api.Response, error) {
	hosts, err := store.QueryAll(r.Context(), s.db, scanHost, `SELECT `+hostCols+` FROM volume_services ORDER BY host`)
	if err != nil {
		return nil, err
	}
	up := map[string]bool{}
	for _, h := range hosts {
		up[h.Zone] = up[h.Zone] || (s.up(h) && !h.Disabled)
	}
	zs, err := s.zones(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(zs))
	for _, z := range zs {
		avail := up[z] || (len(hosts) == 0 && z == s.cfg.DefaultAvailabilityZone)
		out = append(out, map[string]any{"zoneName": z, "zoneState": map[string]any{"available": avail}})
	}
	return api.JSON(http.StatusOK, map[string]any{"availabilityZoneInfo": out}), nil
}

// schedulerHost names this API process in os-services' cinder-scheduler
// row: the scheduler runs inside the API.
func schedulerHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// listServices answers os-services: a cinder-volume row per storage host
// (host@backend, up while it beats) and the scheduler, which runs in
// this process and is up while it answers. Filters: host, binary.
func (s *Service) listServices(r *http.Request) (*api.Response, error) {
	hosts, err := store.QueryAll(r.Context(), s.db, scanHost, `SELECT `+hostCols+` FROM volume_services ORDER BY host`)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	out := []any{}
	add := func(binary, host, zone string, up, disabled bool, reason *string, updated time.Time) {
		if b := q.Get("binary"); b != "" && b != binary {
			return
		}
		// A host filter matches the host or any of its backends, as
		// Cinder's host filter does (node1 matches node1@file).
		if h := q.Get("host"); h != "" && h != host && !strings.HasPrefix(host, h+"@") {
			return
		}
		state, status := "down", "enabled"
		if up {
			state = "up"
		}
		if disabled {
			status = "disabled"
		}
		row := map[string]any{"binary": binary, "host": host, "zone": zone, "status": status, "state": state,
			"updated_at": isoMicro(updated), "disabled_reason": reason, "frozen": false, "replication_status": "disabled",
			"active_backend_id": nil}
		if atLeast(r, 7) {
			row["cluster"] = nil // no service is clustered (see clusters.go)
		}
		out = append(out, row)
	}
	add("cinder-scheduler", schedulerHost(), s.cfg.DefaultAvailabilityZone, true, false, nil, now())
	for _, h := range hosts {
		add("cinder-volume", h.Host+"@"+h.Backend, h.Zone, s.up(h), h.Disabled, h.DisabledReason, parseTime(h.UpdatedAt))
	}
	return api.JSON(http.StatusOK, map[string]any{"services": out}), nil
}

// serviceAction serves PUT /os-services/{enable|disable|disable-log-reason}
// for cinder-volume hosts: a disabled host takes no new volumes.
func (s *Service) serviceAction(r *http.Request) (*api.Response, error) {
	var body struct {
		Host           string  `json:"host"`
		Binary         string  `json:"binary"`
		DisabledReason *string `json:"disabled_reason"`
	}
	if err := api.DecodeJSONLoose(r, &body); err != nil {
		return nil, err
	}
	action := r.PathValue("action")
	disable := false
	var reason *string
	switch action {
	case "freeze", "thaw":
		// Freezing is for replication fail-over, which one pool per host
		// does not have; a known host is accepted and nothing changes.
		host, _, _ := cutAt(body.Host)
		h, err := s.loadHost(r.Context(), s.db, host)
		if err != nil {
			return nil, err
		}
		if h == nil {
			return nil, api.BadRequest("Invalid input received: host %s is not a volume host.", body.Host)
		}
		return api.JSON(http.StatusOK, nil), nil
	case "enable":
	case "disable":
		disable = true
	case "disable-log-reason":
		disable, reason = true, body.DisabledReason
		if reason == nil || len(*reason) > 255 {
			return nil, api.BadRequest("Disabled reason contains invalid characters or is too long.")
		}
	default:
		return nil, api.NotFound("Unknown action %s.", action)
	}
	if body.Host == "" {
		return nil, api.BadRequest("Missing required element 'host' in request body.")
	}
	// Only storage hosts (cinder-volume) can be turned off here; any
	// other binary names no service of that host, as in Cinder.
	if body.Binary != "" && body.Binary != "cinder-volume" {
		return nil, api.NotFound("Service %s on host %s could not be found.", body.Binary, body.Host)
	}
	host, _, _ := cutAt(body.Host)
	res, err := s.db.Exec(r.Context(), `UPDATE volume_services SET disabled = ?, disabled_reason = ? WHERE host = ?`, boolInt(disable), reason, host)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, api.NotFound("Host %s could not be found.", body.Host)
	}
	status := "enabled"
	if disable {
		status = "disabled"
	}
	return api.JSON(http.StatusOK, map[string]any{"host": body.Host, "binary": "cinder-volume", "status": status, "disabled": disable, "disabled_reason": reason}), nil
}

// cutAt splits host@backend.
func cutAt(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '@' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// listHosts answers os-hosts (the Hosts extension): the storage hosts.
func (s *Service) listHosts(r *http.Request) (*api.Response, error) {
	hosts, err := store.QueryAll(r.Context(), s.db, scanHost, `SELECT `+hostCols+` FROM volume_services ORDER BY host`)
	if err != nil {
		return nil, err
	}
	// The scheduler runs in this process: it is available while it answers.
	out := []any{map[string]any{"service-status": "available", "service": "cinder-scheduler", "zone": s.cfg.DefaultAvailabilityZone,
		"service-state": "enabled", "host_name": schedulerHost(), "last-update": isoMicro(now())}}
	for _, h := range hosts {
		status, state := "unavailable", "enabled"
		if s.up(h) {
			status = "available"
		}
		if h.Disabled {
			state = "disabled"
		}
		out = append(out, map[string]any{"service-status": status, "service": "cinder-volume", "zone": h.Zone,
			"service-state": state, "host_name": h.Host + "@" + h.Backend, "last-update": isoMicro(parseTime(h.UpdatedAt))})
	}
	return api.JSON(http.StatusOK, map[string]any{"hosts": out}), nil
}

// showHost answers os-hosts/{host}: the volumes and gigabytes of each
// project on the host, with Cinder's total row first.
func (s *Service) showHost(r *http.Request) (*api.Response, error) {
	name, _, _ := cutAt(r.PathValue("host_name"))
	h, err := s.loadHost(r.Context(), s.db, name)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, api.NotFound("Host %s could not be found.", r.PathValue("host_name"))
	}
	rows, err := s.db.Query(r.Context(), `SELECT project_id, COUNT(*), COALESCE(SUM(size), 0) FROM volume_volumes WHERE host = ? GROUP BY project_id ORDER BY project_id`, h.Host)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var total, totalGB int
	var per []any
	for rows.Next() {
		var p string
		var n, gb int
		if err := rows.Scan(&p, &n, &gb); err != nil {
			return nil, err
		}
		total, totalGB = total+n, totalGB+gb
		per = append(per, hostResource(h.Host, p, n, gb))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := []any{hostResource(h.Host, "(total)", total, totalGB)}
	return api.JSON(http.StatusOK, map[string]any{"host": append(out, per...)}), nil
}

// hostResource is one row of os-hosts/{host}; Cinder renders the counts
// as strings.
func hostResource(host, project string, volumes, gb int) map[string]any {
	return map[string]any{"resource": map[string]any{"host": host, "project": project, "volume_count": strconv.Itoa(volumes),
		"total_volume_gb": strconv.Itoa(gb), "total_snapshot_gb": "0", "snapshot_count": "0"}}
}
