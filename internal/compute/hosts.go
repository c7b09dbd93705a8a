package compute

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// host is a compute service and its hypervisor, as registered by its
// agent's heartbeats. Nova keeps the two apart; one row serves both views
// here because every Nimbus agent is exactly one of each.
type host struct {
	ID             string
	Seq            int
	Host           string
	Zone           string
	Disabled       bool
	DisabledReason *string
	ForcedDown     bool
	VCPUs          int
	MemoryMB       int
	LocalGB        int
	CPURatio       float64
	RAMRatio       float64
	DiskRatio      float64
	HypervisorType string
	HypervisorVer  int
	HypervisorHost string
	HostIP         string
	Arch           string
	RunningVMs     int
	CreatedAt      string
	UpdatedAt      string
	LastSeen       string
	// lastSeen is LastSeen parsed by scanHost: the scheduler asks up()
	// of every host on every claim.
	lastSeen time.Time
}

const hostCols = `id, seq, host, zone, disabled, disabled_reason, forced_down, vcpus, memory_mb, local_gb, cpu_ratio, ram_ratio, disk_ratio, hypervisor_type, hypervisor_version, hypervisor_hostname, host_ip, architecture, running_vms, created_at, updated_at, last_seen`

func scanHost(row store.Scanner) (host, error) {
	var h host
	var dis, forced int
	err := row.Scan(&h.ID, &h.Seq, &h.Host, &h.Zone, &dis, &h.DisabledReason, &forced, &h.VCPUs, &h.MemoryMB, &h.LocalGB,
		&h.CPURatio, &h.RAMRatio, &h.DiskRatio, &h.HypervisorType, &h.HypervisorVer, &h.HypervisorHost, &h.HostIP, &h.Arch,
		&h.RunningVMs, &h.CreatedAt, &h.UpdatedAt, &h.LastSeen)
	h.Disabled, h.ForcedDown = dis == 1, forced == 1
	h.lastSeen = parseTime(h.LastSeen)
	return h, err
}

// up reports whether the host's agent has been heard from recently
// enough and an operator has not forced it down.
func (s *Service) up(h host) bool {
	seen := h.lastSeen
	if seen.IsZero() {
		seen = parseTime(h.LastSeen)
	}
	return !h.ForcedDown && time.Since(seen) < s.cfg.ServiceDownTime
}

// validHostName keeps host names usable as a NATS subject token.
var validHostName = regexp.MustCompile(`^[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,254}$`)

// RecordHeartbeat registers or refreshes a host from its agent's report.
// Capacity and identity follow the agent; the operator's enable/disable
// and forced-down flags are kept.
func (s *Service) RecordHeartbeat(ctx context.Context, rep HostReport) error {
	if !validHostName.MatchString(rep.Host) || strings.Contains(rep.Host, "..") || strings.HasSuffix(rep.Host, ".") {
		return fmt.Errorf("heartbeat: invalid host name %q", rep.Host)
	}
	reported := rep.AvailabilityZone
	ratio := func(v, def float64) float64 {
		if v > 0 {
			return v
		}
		return def
	}
	hvHost := rep.HypervisorHostname
	if hvHost == "" {
		hvHost = rep.Host
	}
	hvType := rep.HypervisorType
	if hvType == "" {
		hvType = "QEMU"
	}
	ts := store.FormatTime(now())
	// The zone an aggregate gives wins over the reported one. The update
	// reads it from the row it writes (aggregate_zone, kept by rezone in
	// the aggregate's own transaction), so a heartbeat racing an
	// aggregate change cannot write back the zone it read before.
	zone := s.ownZone(reported)
	args := []any{zone, reported, rep.VCPUs, rep.MemoryMB, rep.LocalGB,
		ratio(rep.CPUAllocationRatio, s.cfg.CPUAllocationRatio), ratio(rep.RAMAllocationRatio, s.cfg.RAMAllocationRatio),
		ratio(rep.DiskAllocationRatio, s.cfg.DiskAllocationRatio), hvType, rep.HypervisorVersion, hvHost, rep.HostIP,
		rep.Architecture, rep.RunningVMs, ts, ts}
	// A known host is one statement, so a thousand hosts beating do not
	// hold the write lock for long; only a new host takes a transaction.
	const update = `UPDATE compute_hosts SET zone = CASE WHEN aggregate_zone <> '' THEN aggregate_zone ELSE ? END, reported_zone = ?, vcpus = ?, memory_mb = ?, local_gb = ?, cpu_ratio = ?,
		ram_ratio = ?, disk_ratio = ?, hypervisor_type = ?, hypervisor_version = ?, hypervisor_hostname = ?, host_ip = ?,
		architecture = ?, running_vms = ?, updated_at = ?, last_seen = ? WHERE host = ?`
	// The guests' volumes ride on the same statement (volume_watchdog.go);
	// a new host gets them from its next heartbeat.
	first := update
	firstArgs := append([]any(nil), args...)
	if rep.GuestsListed {
		first = strings.Replace(update, ` WHERE host = ?`, `, guest_volumes = ?, volumes_synced_at = ? WHERE host = ?`, 1)
		firstArgs = append(firstArgs, guestVolumesJSON(rep.Guests), ts)
	}
	res, err := s.db.Exec(ctx, first, append(firstArgs, rep.Host)...)
	if err != nil {
		return fmt.Errorf("heartbeat of %s: %w", rep.Host, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	return s.writeTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, update, append(args, rep.Host)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil // registered meanwhile by another replica
		}
		var seq int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM compute_hosts`).Scan(&seq); err != nil {
			return err
		}
		// A host that was deleted and comes back keeps its aggregates.
		aggZone, err := aggregateZone(ctx, tx, rep.Host, 0)
		if err != nil {
			return err
		}
		if aggZone != "" {
			args[0] = aggZone
		}
		_, err = tx.Exec(ctx, `INSERT INTO compute_hosts (id, seq, host, zone, reported_zone, vcpus, memory_mb, local_gb, cpu_ratio, ram_ratio,
			disk_ratio, hypervisor_type, hypervisor_version, hypervisor_hostname, host_ip, architecture, running_vms, updated_at,
			last_seen, created_at, aggregate_zone) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			append(append([]any{newID(), seq, rep.Host}, args...), ts, aggZone)...)
		return err
	})
}

// ownZone is the zone of a host in no zoned aggregate: the one its agent
// reports, else the default zone. A zoned aggregate's zone wins over it,
// as Nova's zones are aggregates.
func (s *Service) ownZone(reported string) string {
	if reported != "" {
		return reported
	}
	return s.cfg.DefaultAvailabilityZone
}

func isNoRows(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, sql.ErrNoRows)
}

func (s *Service) allHosts(ctx context.Context, q store.Querier) ([]host, error) {
	hs, err := store.QueryAll(ctx, q, scanHost, `SELECT `+hostCols+` FROM compute_hosts ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hs, nil
}

// usage is what allocations hold on a host.
type usage struct {
	VCPUs, MemoryMB, DiskGB, Instances int
}

func (s *Service) hostUsage(ctx context.Context, q store.Querier) (map[string]usage, error) {
	rows, err := q.Query(ctx, `SELECT host, COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0), COALESCE(SUM(disk_gb), 0), COUNT(DISTINCT instance_id)
		FROM compute_allocations GROUP BY host`)
	if err != nil {
		return nil, fmt.Errorf("host usage: %w", err)
	}
	defer rows.Close()
	out := map[string]usage{}
	for rows.Next() {
		var h string
		var u usage
		if err := rows.Scan(&h, &u.VCPUs, &u.MemoryMB, &u.DiskGB, &u.Instances); err != nil {
			return nil, fmt.Errorf("host usage: %w", err)
		}
		out[h] = u
	}
	return out, rows.Err()
}

// os-services

func (s *Service) serviceView(r *http.Request, h host) map[string]any {
	status, state := "enabled", "up"
	if h.Disabled {
		status = "disabled"
	}
	if !s.up(h) {
		state = "down"
	}
	out := map[string]any{
		"id": h.Seq, "binary": "nova-compute", "host": h.Host, "zone": h.Zone, "status": status, "state": state,
		"updated_at": isoMicro(parseTime(h.UpdatedAt)), "disabled_reason": h.DisabledReason,
	}
	if at(r, 53) {
		out["id"] = h.ID
	}
	if at(r, 11) {
		out["forced_down"] = h.ForcedDown
	}
	return out
}

func (s *Service) listServices(r *http.Request) (*api.Response, error) {
	hs, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	out := []map[string]any{}
	for _, h := range hs {
		if v := q.Get("host"); v != "" && v != h.Host {
			continue
		}
		if v := q.Get("binary"); v != "" && v != "nova-compute" {
			continue
		}
		out = append(out, s.serviceView(r, h))
	}
	cs, err := s.controlServices(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if v := q.Get("host"); v != "" && v != c.Host {
			continue
		}
		if v := q.Get("binary"); v != "" && v != c.Binary {
			continue
		}
		out = append(out, s.controlServiceView(r, c))
	}
	return api.JSON(http.StatusOK, map[string]any{"services": out}), nil
}

// hostByName finds a host for the pre-2.53 service actions.
func (s *Service) hostByName(ctx context.Context, q store.Querier, name string) (host, error) {
	h, err := store.QueryOne(ctx, q, scanHost, `SELECT `+hostCols+` FROM compute_hosts WHERE host = ?`, name)
	if errors.Is(err, store.ErrNotFound) {
		return h, api.NotFound("Host '%s' could not be found.", name)
	}
	return h, err
}

// serviceAction serves PUT /os-services/{action} (before 2.53):
// enable, disable, disable-log-reason and force-down (2.11).
func (s *Service) serviceAction(r *http.Request) (*api.Response, error) {
	action := r.PathValue("action")
	if at(r, 53) {
		if isUUID(action) {
			return s.updateService(r)
		}
		return nil, api.NotFound("Service %s could not be found.", action)
	}
	var body struct {
		Host           string  `json:"host"`
		Binary         string  `json:"binary"`
		DisabledReason *string `json:"disabled_reason"`
		ForcedDown     *bool   `json:"forced_down"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Host == "" || body.Binary == "" {
		return nil, api.BadRequest("Invalid input for field/attribute host. 'host' and 'binary' are required properties")
	}
	if body.Binary != "nova-compute" {
		return nil, api.NotFound("Service %s on host %s could not be found.", body.Binary, body.Host)
	}
	var set string
	var args []any
	resp := map[string]any{"host": body.Host, "binary": body.Binary}
	switch action {
	case "enable":
		set, args = "disabled = 0, disabled_reason = NULL", nil
		resp["status"] = "enabled"
	case "disable":
		set = "disabled = 1"
		resp["status"] = "disabled"
	case "disable-log-reason":
		if body.DisabledReason == nil || *body.DisabledReason == "" || len(*body.DisabledReason) > 255 {
			return nil, api.BadRequest("Missing disabled reason field")
		}
		set, args = "disabled = 1, disabled_reason = ?", []any{*body.DisabledReason}
		resp["status"] = "disabled"
		resp["disabled_reason"] = *body.DisabledReason
	case "force-down":
		if !at(r, 11) {
			return nil, api.NotFound("Unknown action")
		}
		if body.ForcedDown == nil {
			return nil, api.BadRequest("Invalid input for field/attribute forced_down. 'forced_down' is a required property")
		}
		set, args = "forced_down = ?", []any{boolInt(*body.ForcedDown)}
		resp["forced_down"] = *body.ForcedDown
	default:
		return nil, api.NotFound("Unknown action")
	}
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		if _, err := s.hostByName(r.Context(), tx, body.Host); err != nil {
			return err
		}
		_, err := tx.Exec(r.Context(), `UPDATE compute_hosts SET `+set+`, updated_at = ? WHERE host = ?`, append(args, store.FormatTime(now()), body.Host)...)
		return err
	})
	if err != nil {
		return nil, err
	}
	hostCacheOf(s.db).invalidate()
	return api.JSON(http.StatusOK, map[string]any{"service": resp}), nil
}

// updateService serves PUT /os-services/{service_id} (2.53).
func (s *Service) updateService(r *http.Request) (*api.Response, error) {
	var body struct {
		Status         *string `json:"status"`
		DisabledReason *string `json:"disabled_reason"`
		ForcedDown     *bool   `json:"forced_down"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Status == nil && body.ForcedDown == nil {
		return nil, api.BadRequest("No updates were requested. Fields 'status' or 'forced_down' should be specified.")
	}
	if body.Status != nil && *body.Status != "enabled" && *body.Status != "disabled" {
		return nil, api.BadRequest("Invalid input for field/attribute status. Value: %s. '%s' is not one of ['enabled', 'disabled']", *body.Status, *body.Status)
	}
	if body.DisabledReason != nil && (body.Status == nil || *body.Status != "disabled") {
		return nil, api.BadRequest("Specifying 'disabled_reason' with status other than 'disabled' is invalid.")
	}
	id := r.PathValue("action")
	var h host
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		var err error
		h, err = store.QueryOne(r.Context(), tx, scanHost, `SELECT `+hostCols+` FROM compute_hosts WHERE id = ?`, id)
		if errors.Is(err, store.ErrNotFound) {
			return api.NotFound("Service %s could not be found.", id)
		}
		if err != nil {
			return err
		}
		if body.Status != nil {
			h.Disabled = *body.Status == "disabled"
			h.DisabledReason = nil
			if h.Disabled {
				h.DisabledReason = body.DisabledReason
			}
		}
		if body.ForcedDown != nil {
			h.ForcedDown = *body.ForcedDown
		}
		h.UpdatedAt = store.FormatTime(now())
		_, err = tx.Exec(r.Context(), `UPDATE compute_hosts SET disabled = ?, disabled_reason = ?, forced_down = ?, updated_at = ? WHERE id = ?`,
			boolInt(h.Disabled), h.DisabledReason, boolInt(h.ForcedDown), h.UpdatedAt, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	hostCacheOf(s.db).invalidate()
	return api.JSON(http.StatusOK, map[string]any{"service": s.serviceView(r, h)}), nil
}

// deleteService removes a host that has no servers, as Nova refuses to
// delete a compute service still hosting instances.
func (s *Service) deleteService(r *http.Request) (*api.Response, error) {
	id := r.PathValue("action")
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		col := "id"
		if !at(r, 53) {
			col = "CAST(seq AS TEXT)"
		}
		h, err := store.QueryOne(r.Context(), tx, scanHost, `SELECT `+hostCols+` FROM compute_hosts WHERE `+col+` = ?`, id)
		if errors.Is(err, store.ErrNotFound) {
			return api.NotFound("Service %s could not be found.", id)
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(r.Context(), `SELECT COUNT(*) FROM compute_instances WHERE host = ? AND deleted = 0`, h.Host).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return api.Conflict("Unable to delete compute service that is hosting instances. Migrate or delete the instances first.")
		}
		_, err = tx.Exec(r.Context(), `DELETE FROM compute_hosts WHERE id = ?`, h.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	hostCacheOf(s.db).invalidate()
	return api.NoContent(), nil
}

// os-hypervisors

func (s *Service) hypervisorView(r *http.Request, h host, u usage, detail bool) map[string]any {
	state, status := "up", "enabled"
	if !s.up(h) {
		state = "down"
	}
	if h.Disabled {
		status = "disabled"
	}
	out := map[string]any{"id": h.Seq, "hypervisor_hostname": h.HypervisorHost, "state": state, "status": status}
	if at(r, 53) {
		out["id"] = h.ID
	}
	if !detail {
		return out
	}
	cpuInfo := map[string]any{"arch": h.Arch, "model": "", "vendor": "", "features": []string{},
		"topology": map[string]int{"cores": h.VCPUs, "threads": 1, "sockets": 1}}
	if at(r, 28) {
		out["cpu_info"] = cpuInfo
	} else {
		b, _ := json.Marshal(cpuInfo)
		out["cpu_info"] = string(b)
	}
	svc := map[string]any{"host": h.Host, "id": h.Seq, "disabled_reason": h.DisabledReason}
	if at(r, 53) {
		svc["id"] = h.ID
	}
	out["service"] = svc
	out["host_ip"] = h.HostIP
	out["hypervisor_type"] = h.HypervisorType
	out["hypervisor_version"] = h.HypervisorVer
	out["vcpus"] = h.VCPUs
	out["vcpus_used"] = u.VCPUs
	out["memory_mb"] = h.MemoryMB
	out["memory_mb_used"] = u.MemoryMB
	out["free_ram_mb"] = h.MemoryMB - u.MemoryMB
	out["local_gb"] = h.LocalGB
	out["local_gb_used"] = u.DiskGB
	out["free_disk_gb"] = h.LocalGB - u.DiskGB
	out["disk_available_least"] = h.LocalGB - u.DiskGB
	out["running_vms"] = u.Instances
	out["current_workload"] = 0
	return out
}

func (s *Service) hypervisorList(r *http.Request, detail bool) (*api.Response, error) {
	hs, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	us, err := s.hostUsage(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	var p api.Page
	if at(r, 33) {
		if p, err = page(r); err != nil {
			return nil, err
		}
	}
	if pat := r.URL.Query().Get("hypervisor_hostname_pattern"); pat != "" && at(r, 53) {
		var keep []host
		for _, h := range hs {
			if strings.Contains(h.HypervisorHost, pat) {
				keep = append(keep, h)
			}
		}
		if len(keep) == 0 {
			return nil, api.NotFound("No hypervisor matching '%s' could be found.", pat)
		}
		hs = keep
	}
	idOf := func(h host) string {
		if at(r, 53) {
			return h.ID
		}
		return fmt.Sprint(h.Seq)
	}
	if at(r, 33) {
		if hs, _, err = paginate(hs, p, idOf); err != nil {
			return nil, err
		}
	}
	withServers, err := s.withServers(r)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(hs))
	for _, h := range hs {
		v := s.hypervisorView(r, h, us[h.Host], detail)
		if withServers {
			if err := s.addServers(r, v, h.Host); err != nil {
				return nil, err
			}
		}
		out = append(out, v)
	}
	body := map[string]any{"hypervisors": out}
	if at(r, 33) && len(hs) > 0 {
		if l := s.nextLinks(r, p, len(hs), idOf(hs[len(hs)-1])); l != nil {
			body["hypervisors_links"] = l
		}
	}
	return api.JSON(http.StatusOK, body), nil
}

func (s *Service) listHypervisors(r *http.Request) (*api.Response, error) {
	return s.hypervisorList(r, false)
}

func (s *Service) listHypervisorsDetail(r *http.Request) (*api.Response, error) {
	return s.hypervisorList(r, true)
}

// hypervisorByID finds the host a hypervisor URL names: by its UUID
// from 2.53, by its sequence number before.
func (s *Service) hypervisorByID(r *http.Request, id string) (host, bool, error) {
	hs, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return host{}, false, err
	}
	for _, h := range hs {
		if (at(r, 53) && h.ID == id) || (!at(r, 53) && fmt.Sprint(h.Seq) == id) {
			return h, true, nil
		}
	}
	return host{}, false, nil
}

func (s *Service) showHypervisor(r *http.Request) (*api.Response, error) {
	id := r.PathValue("id")
	h, ok, err := s.hypervisorByID(r, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		if at(r, 53) && !isUUID(id) {
			return nil, api.BadRequest("Invalid uuid %s", id)
		}
		return nil, api.NotFound("Hypervisor with ID '%s' could not be found.", id)
	}
	us, err := s.hostUsage(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	v := s.hypervisorView(r, h, us[h.Host], true)
	withServers, err := s.withServers(r)
	if err != nil {
		return nil, err
	}
	if withServers {
		if err := s.addServers(r, v, h.Host); err != nil {
			return nil, err
		}
	}
	return api.JSON(http.StatusOK, map[string]any{"hypervisor": v}), nil
}

func (s *Service) hypervisorStatistics(r *http.Request) (*api.Response, error) {
	hs, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	us, err := s.hostUsage(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	st := map[string]int{"count": 0, "vcpus": 0, "vcpus_used": 0, "memory_mb": 0, "memory_mb_used": 0, "free_ram_mb": 0,
		"local_gb": 0, "local_gb_used": 0, "free_disk_gb": 0, "disk_available_least": 0, "running_vms": 0, "current_workload": 0}
	for _, h := range hs {
		u := us[h.Host]
		st["count"]++
		st["vcpus"] += h.VCPUs
		st["vcpus_used"] += u.VCPUs
		st["memory_mb"] += h.MemoryMB
		st["memory_mb_used"] += u.MemoryMB
		st["free_ram_mb"] += h.MemoryMB - u.MemoryMB
		st["local_gb"] += h.LocalGB
		st["local_gb_used"] += u.DiskGB
		st["free_disk_gb"] += h.LocalGB - u.DiskGB
		st["disk_available_least"] += h.LocalGB - u.DiskGB
		st["running_vms"] += u.Instances
	}
	return api.JSON(http.StatusOK, map[string]any{"hypervisor_statistics": st}), nil
}

// withServers reads the with_servers query parameter (2.53).
func (s *Service) withServers(r *http.Request) (bool, error) {
	v, ok := r.URL.Query()["with_servers"]
	if !ok || !at(r, 53) {
		return false, nil
	}
	b, valid := queryBool(v[0])
	if !valid {
		return false, api.BadRequest("Invalid input for query parameters with_servers. Value: %s.", v[0])
	}
	return b, nil
}

// addServers lists a hypervisor's servers in its view, as Nova's
// with_servers and /servers do: the key is left out when there are none.
func (s *Service) addServers(r *http.Request, v map[string]any, hostName string) error {
	is, err := store.QueryAll(r.Context(), s.db, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE host = ? AND deleted = 0 ORDER BY seq`, hostName)
	if err != nil {
		return fmt.Errorf("servers on %s: %w", hostName, err)
	}
	if len(is) == 0 {
		return nil
	}
	list := make([]map[string]string, 0, len(is))
	for _, i := range is {
		list = append(list, map[string]string{"name": i.instanceName(), "uuid": i.ID})
	}
	v["servers"] = list
	return nil
}

// hypervisorsMatching serves the pre-2.53 /os-hypervisors/{pattern}/search
// and /servers routes.
func (s *Service) hypervisorsMatching(r *http.Request, servers bool) (*api.Response, error) {
	if at(r, 53) {
		return nil, api.NotFound("The resource could not be found.")
	}
	pat := r.PathValue("pattern")
	hs, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, h := range hs {
		if !strings.Contains(h.HypervisorHost, pat) {
			continue
		}
		v := s.hypervisorView(r, h, usage{}, false)
		if servers {
			if err := s.addServers(r, v, h.Host); err != nil {
				return nil, err
			}
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, api.NotFound("No hypervisor matching '%s' could be found.", pat)
	}
	return api.JSON(http.StatusOK, map[string]any{"hypervisors": out}), nil
}

func (s *Service) searchHypervisors(r *http.Request) (*api.Response, error) {
	return s.hypervisorsMatching(r, false)
}

func (s *Service) hypervisorServers(r *http.Request) (*api.Response, error) {
	return s.hypervisorsMatching(r, true)
}

// hypervisorUptime answers with the time since the host registered; the
// agents do not report the kernel's uptime.
func (s *Service) hypervisorUptime(r *http.Request) (*api.Response, error) {
	id := r.PathValue("id")
	h, ok, err := s.hypervisorByID(r, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, api.NotFound("Hypervisor with ID '%s' could not be found.", id)
	}
	v := s.hypervisorView(r, h, usage{}, false)
	up := time.Since(parseTime(h.CreatedAt)).Truncate(time.Second)
	v["uptime"] = fmt.Sprintf(" %s up %s,  1 user,  load average: 0.00, 0.00, 0.00", time.Now().UTC().Format("15:04:05"), up)
	return api.JSON(http.StatusOK, map[string]any{"hypervisor": v}), nil
}
