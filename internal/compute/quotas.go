package compute

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// defaultQuotas are Nova's default per-project limits; -1 is unlimited.
var defaultQuotas = map[string]int{
	"instances": 10, "cores": 20, "ram": 51200, "metadata_items": 128, "injected_files": 5,
	"injected_file_content_bytes": 10240, "injected_file_path_bytes": 255, "key_pairs": 100,
	"server_groups": 10, "server_group_members": 10,
	// Proxied to networking before 2.36; kept for the old views.
	"fixed_ips": -1, "floating_ips": 10, "security_groups": 10, "security_group_rules": 20,
}

// quotaKeys are the resources a quota set shows at a microversion.
func quotaKeys(r *http.Request) []string {
	keys := []string{"cores", "instances", "key_pairs", "metadata_items", "ram", "server_group_members", "server_groups"}
	if !at(r, 57) {
		keys = append(keys, "injected_file_content_bytes", "injected_file_path_bytes", "injected_files")
	}
	if !at(r, 36) {
		keys = append(keys, "fixed_ips", "floating_ips", "security_group_rules", "security_groups")
	}
	sort.Strings(keys)
	return keys
}

func (s *Service) quotaLimitDefault(res string) int {
	if v, ok := s.cfg.Quotas[res]; ok {
		return v
	}
	return defaultQuotas[res]
}

// defaultClass is the compute_quotas key of the "default" quota class,
// which os-quota-class-sets edits and every project inherits.
const defaultClass = "class:default"

// defaultsFor returns the default limits: the configuration's, then what
// an admin set on the default quota class, as Nova lets the class win.
func (s *Service) defaultsFor(ctx context.Context, q store.Querier) (map[string]int, error) {
	out := map[string]int{}
	for k := range defaultQuotas {
		out[k] = s.quotaLimitDefault(k)
	}
	return out, s.overlayQuotas(ctx, q, defaultClass, out)
}

// limitsFor returns a project's limits: its overrides over the defaults.
func (s *Service) limitsFor(ctx context.Context, q store.Querier, project string) (map[string]int, error) {
	out, err := s.defaultsFor(ctx, q)
	if err != nil {
		return nil, err
	}
	return out, s.overlayQuotas(ctx, q, project, out)
}

func (s *Service) overlayQuotas(ctx context.Context, q store.Querier, project string, out map[string]int) error {
	rows, err := q.Query(ctx, `SELECT resource, hard_limit FROM compute_quotas WHERE project_id = ?`, project)
	if err != nil {
		return fmt.Errorf("quotas of %s: %w", project, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v int
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		out[k] = v
	}
	return rows.Err()
}

// usageOf counts what a project uses, from the servers themselves so it
// can never drift from them.
func usageOf(ctx context.Context, q store.Querier, project string) (map[string]int, error) {
	u := map[string]int{}
	var n, cores, ram int
	if err := q.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0) FROM compute_instances WHERE project_id = ? AND deleted = 0`,
		project).Scan(&n, &cores, &ram); err != nil {
		return nil, fmt.Errorf("usage of %s: %w", project, err)
	}
	u["instances"], u["cores"], u["ram"] = n, cores, ram
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM compute_server_groups WHERE project_id = ?`, project).Scan(&n); err != nil {
		return nil, fmt.Errorf("usage of %s: %w", project, err)
	}
	u["server_groups"] = n
	return u, nil
}

// usageIfLimited is usageOf when at least one of resources has a limit.
// With all of them unlimited (-1) no count could refuse the request, and
// counting is O(servers of the project) on every boot.
func usageIfLimited(ctx context.Context, q store.Querier, project string, limits map[string]int, resources ...string) (map[string]int, error) {
	for _, res := range resources {
		if limits[res] >= 0 {
			return usageOf(ctx, q, project)
		}
	}
	return map[string]int{}, nil
}

// checkQuota answers 403 with Nova's message when adding want to the
// project's usage would exceed a limit. Callers hold the project's quota
// lock so concurrent requests cannot both pass.
func (s *Service) checkQuota(ctx context.Context, tx *store.Tx, project string, want map[string]int) error {
	limits, err := s.limitsFor(ctx, tx, project)
	if err != nil {
		return err
	}
	used, err := usageIfLimited(ctx, tx, project, limits, sortedKeys(want)...)
	if err != nil {
		return err
	}
	var overs []string
	for res, n := range want {
		if l := limits[res]; l >= 0 && used[res]+n > l {
			overs = append(overs, res)
		}
	}
	if len(overs) == 0 {
		return nil
	}
	sort.Strings(overs)
	var req, use, allowed []string
	for _, res := range overs {
		req = append(req, fmt.Sprint(want[res]))
		use = append(use, fmt.Sprint(used[res]))
		allowed = append(allowed, fmt.Sprint(limits[res]))
	}
	o := strings.Join(overs, ", ")
	return api.Forbidden("Quota exceeded for %s: Requested %s, but already used %s of %s %s",
		o, strings.Join(req, ", "), strings.Join(use, ", "), strings.Join(allowed, ", "), o)
}

// quotaProject resolves the project of a quota call and checks the caller
// may see it.
func (s *Service) quotaProject(r *http.Request, action string) (string, error) {
	project := r.PathValue("project_id")
	return project, s.authorize(r, action, map[string]any{"project_id": project})
}

func (s *Service) quotaSet(r *http.Request, project string, limits map[string]int, used map[string]int, detail bool) map[string]any {
	out := map[string]any{"id": project}
	for _, k := range quotaKeys(r) {
		if detail {
			out[k] = map[string]int{"limit": limits[k], "in_use": used[k], "reserved": 0}
		} else {
			out[k] = limits[k]
		}
	}
	return out
}

func (s *Service) showQuotas(r *http.Request) (*api.Response, error) {
	return s.showQuotaSet(r, false)
}

func (s *Service) showQuotaDetail(r *http.Request) (*api.Response, error) {
	return s.showQuotaSet(r, true)
}

// showQuotaSet answers a project's limits, and with detail what its
// servers and keypairs use of each.
func (s *Service) showQuotaSet(r *http.Request, detail bool) (*api.Response, error) {
	rule := "os_compute_api:os-quota-sets:show"
	if detail {
		rule = "os_compute_api:os-quota-sets:detail"
	}
	project, err := s.quotaProject(r, rule)
	if err != nil {
		return nil, err
	}
	limits, err := s.limitsFor(r.Context(), s.db, project)
	if err != nil {
		return nil, err
	}
	var used map[string]int
	if detail {
		if used, err = usageOf(r.Context(), s.db, project); err != nil {
			return nil, err
		}
	}
	return api.JSON(http.StatusOK, map[string]any{"quota_set": s.quotaSet(r, project, limits, used, detail)}), nil
}

func (s *Service) showQuotaDefaults(r *http.Request) (*api.Response, error) {
	project := r.PathValue("project_id")
	limits, err := s.defaultsFor(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"quota_set": s.quotaSet(r, project, limits, nil, false)}), nil
}

func (s *Service) updateQuotas(r *http.Request) (*api.Response, error) {
	project, err := s.quotaProject(r, "os_compute_api:os-quota-sets:update")
	if err != nil {
		return nil, err
	}
	set, force, err := decodeQuotaBody(r, "quota_set", quotaKeys(r), true)
	if err != nil {
		return nil, err
	}
	var limits map[string]int
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		if !force {
			used, err := usageOf(r.Context(), tx, project)
			if err != nil {
				return err
			}
			for k, v := range set {
				if v >= 0 && used[k] > v {
					return api.BadRequest("Quota limit %d for %s must be greater than or equal to already used and reserved %d.", v, k, used[k])
				}
			}
		}
		if err := setQuotas(r.Context(), tx, project, set); err != nil {
			return err
		}
		var err error
		limits, err = s.limitsFor(r.Context(), tx, project)
		return err
	})
	if err != nil {
		return nil, err
	}
	qs := s.quotaSet(r, project, limits, nil, false)
	delete(qs, "id")
	return api.JSON(http.StatusOK, map[string]any{"quota_set": qs}), nil
}

// setQuotas stores limits for a project (or quota class).
func setQuotas(ctx context.Context, tx *store.Tx, project string, set map[string]int) error {
	for k, v := range set {
		if _, err := tx.Exec(ctx, `DELETE FROM compute_quotas WHERE project_id = ? AND resource = ?`, project, k); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO compute_quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)`, project, k, v); err != nil {
			return err
		}
	}
	return nil
}

// decodeQuotaBody reads a request body {wrapper: {key: limit, ...}}, the
// shape of both quota sets and quota class sets, refusing a missing
// wrapper as Nova's schema does.
func decodeQuotaBody(r *http.Request, wrapper string, keys []string, allowForce bool) (map[string]int, bool, error) {
	var body map[string]json.RawMessage
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, false, err
	}
	var inner map[string]json.RawMessage
	if raw, ok := body[wrapper]; ok {
		if err := json.Unmarshal(raw, &inner); err != nil {
			return nil, false, api.BadRequest("Invalid input for field/attribute %s. Value: %s. %s is not of type 'object'", wrapper, raw, raw)
		}
	}
	if inner == nil {
		return nil, false, api.BadRequest("Invalid input for field/attribute %s. '%s' is a required property", wrapper, wrapper)
	}
	return parseQuotaBody(inner, keys, allowForce)
}

// parseQuotaBody validates a quota update: known resources only, each an
// integer of -1 or more; force is allowed for quota sets.
func parseQuotaBody(body map[string]json.RawMessage, keys []string, allowForce bool) (map[string]int, bool, error) {
	allowed := map[string]bool{}
	for _, k := range keys {
		allowed[k] = true
	}
	force := false
	set := map[string]int{}
	for k, raw := range body {
		switch {
		case k == "force" && allowForce:
			var b any
			_ = json.Unmarshal(raw, &b)
			switch v := b.(type) {
			case bool:
				force = v
			case string:
				force, _ = queryBool(v)
			}
			continue
		case !allowed[k]:
			return nil, false, api.BadRequest("Invalid input for field/attribute quota_set. Additional properties are not allowed ('%s' was unexpected)", k)
		}
		var f flexInt
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, false, api.BadRequest("Invalid input for field/attribute %s. Value: %s. %s is not of type 'integer', 'string'", k, raw, raw)
		}
		v, err := intField(k, f, -1, dbMaxInt)
		if err != nil {
			return nil, false, err
		}
		set[k] = v
	}
	return set, force, nil
}

// classKeys are the resources of a quota class set at a microversion.
func classKeys(r *http.Request) []string {
	keys := []string{"cores", "instances", "key_pairs", "metadata_items", "ram"}
	if at(r, 50) {
		keys = append(keys, "server_group_members", "server_groups")
	} else {
		keys = append(keys, "fixed_ips", "floating_ips", "security_group_rules", "security_groups")
	}
	if !at(r, 57) {
		keys = append(keys, "injected_file_content_bytes", "injected_file_path_bytes", "injected_files")
	}
	sort.Strings(keys)
	return keys
}

func (s *Service) classView(r *http.Request, limits map[string]int) map[string]any {
	out := map[string]any{}
	for _, k := range classKeys(r) {
		out[k] = limits[k]
	}
	return out
}

// showQuotaClass answers os-quota-class-sets: Nova supports the implicit
// "default" class only, and shows the defaults under any name.
func (s *Service) showQuotaClass(r *http.Request) (*api.Response, error) {
	limits, err := s.defaultsFor(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	out := s.classView(r, limits)
	out["id"] = r.PathValue("class")
	return api.JSON(http.StatusOK, map[string]any{"quota_class_set": out}), nil
}

// updateQuotaClass changes the defaults when the class is "default";
// other names are accepted and change nothing, as Nova.
func (s *Service) updateQuotaClass(r *http.Request) (*api.Response, error) {
	set, _, err := decodeQuotaBody(r, "quota_class_set", classKeys(r), false)
	if err != nil {
		return nil, err
	}
	var limits map[string]int
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		if r.PathValue("class") == "default" {
			if err := setQuotas(r.Context(), tx, defaultClass, set); err != nil {
				return err
			}
		}
		var err error
		limits, err = s.defaultsFor(r.Context(), tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"quota_class_set": s.classView(r, limits)}), nil
}

func (s *Service) deleteQuotas(r *http.Request) (*api.Response, error) {
	project, err := s.quotaProject(r, "os_compute_api:os-quota-sets:delete")
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM compute_quotas WHERE project_id = ?`, project); err != nil {
		return nil, fmt.Errorf("delete quotas of %s: %w", project, err)
	}
	return accepted(), nil
}

// limits answers GET /limits: the project's absolute limits and usage.
func (s *Service) limits(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	project := c.project
	if t := r.URL.Query().Get("tenant_id"); t != "" && t != project {
		if s.can(r, "os_compute_api:limits:other_project", map[string]any{"project_id": t}) {
			project = t
		}
	}
	limits, err := s.limitsFor(r.Context(), s.db, project)
	if err != nil {
		return nil, err
	}
	used, err := usageOf(r.Context(), s.db, project)
	if err != nil {
		return nil, err
	}
	abs := map[string]int{
		"maxServerMeta": limits["metadata_items"], "maxTotalInstances": limits["instances"], "maxTotalCores": limits["cores"],
		"maxTotalRAMSize": limits["ram"], "maxTotalKeypairs": limits["key_pairs"], "maxServerGroups": limits["server_groups"],
		"maxServerGroupMembers": limits["server_group_members"],
		"totalInstancesUsed":    used["instances"], "totalCoresUsed": used["cores"], "totalRAMUsed": used["ram"],
		"totalServerGroupsUsed": used["server_groups"],
	}
	if !at(r, 39) {
		abs["maxImageMeta"] = limits["metadata_items"]
	}
	if !at(r, 57) {
		abs["maxPersonality"] = limits["injected_files"]
		abs["maxPersonalitySize"] = limits["injected_file_content_bytes"]
	}
	if !at(r, 36) {
		abs["maxSecurityGroups"] = limits["security_groups"]
		abs["maxSecurityGroupRules"] = limits["security_group_rules"]
		abs["maxTotalFloatingIps"] = limits["floating_ips"]
		abs["totalSecurityGroupsUsed"] = 0
		abs["totalFloatingIpsUsed"] = 0
	}
	return api.JSON(http.StatusOK, map[string]any{"limits": map[string]any{"absolute": abs, "rate": []any{}}}), nil
}

// os-simple-tenant-usage

func (s *Service) usagePeriod(r *http.Request) (time.Time, time.Time, error) {
	q := r.URL.Query()
	end := time.Now().UTC()
	start := end
	var err error
	if v := q.Get("start"); v != "" {
		if start, err = parseISO(v); err != nil {
			return start, end, api.BadRequest("Invalid start time. The start time cannot occur after the end time.")
		}
	}
	if v := q.Get("end"); v != "" {
		if end, err = parseISO(v); err != nil {
			return start, end, api.BadRequest("Invalid end time.")
		}
	}
	if start.After(end) {
		return start, end, api.BadRequest("Invalid start time. The start time cannot occur after the end time.")
	}
	return start, end, nil
}

// usageFor sums the servers of a project (all projects when "") that
// existed in the period, as Nova's simple tenant usage does.
func (s *Service) usageFor(r *http.Request, project string, start, end time.Time) (map[string]map[string]any, []string, string, error) {
	where, args := `created_at < ? AND (terminated_at IS NULL OR terminated_at > ?)`, []any{store.FormatTime(end), store.FormatTime(start)}
	if project != "" {
		where += ` AND project_id = ?`
		args = append(args, project)
	}
	is, err := store.QueryAll(r.Context(), s.db, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE `+where+` ORDER BY seq`, args...)
	if err != nil {
		return nil, nil, "", fmt.Errorf("usage: %w", err)
	}
	// Paged by instance from 2.40; older requests are capped at the
	// maximum page, as Nova does to bound the work.
	p := api.Page{Limit: 1000}
	if at(r, 40) {
		if p, err = page(r); err != nil {
			return nil, nil, "", err
		}
	}
	if is, _, err = paginate(is, p, func(i instance) string { return i.ID }); err != nil {
		return nil, nil, "", err
	}
	next := ""
	if at(r, 40) && p.Limit > 0 && len(is) == p.Limit {
		next = is[len(is)-1].ID
	}
	detailed, _ := queryBool(r.URL.Query().Get("detailed"))
	if project != "" {
		detailed = true
	}
	out := map[string]map[string]any{}
	var order []string
	for _, i := range is {
		from, to := parseTime(i.CreatedAt), end
		if i.TerminatedAt != nil {
			to = parseTime(*i.TerminatedAt)
		}
		from = maxTime(from, start)
		to = minTime(to, end)
		hours := max(to.Sub(from).Hours(), 0)
		f := i.flavorSpec()
		u, ok := out[i.ProjectID]
		if !ok {
			u = map[string]any{"tenant_id": i.ProjectID, "start": isoMicro(start), "stop": isoMicro(end),
				"total_hours": 0.0, "total_local_gb_usage": 0.0, "total_memory_mb_usage": 0.0, "total_vcpus_usage": 0.0}
			if detailed {
				u["server_usages"] = []map[string]any{}
			}
			out[i.ProjectID] = u
			order = append(order, i.ProjectID)
		}
		u["total_hours"] = u["total_hours"].(float64) + hours
		u["total_local_gb_usage"] = u["total_local_gb_usage"].(float64) + hours*float64(f.RootGB+f.EphemeralG)
		u["total_memory_mb_usage"] = u["total_memory_mb_usage"].(float64) + hours*float64(f.MemoryMB)
		u["total_vcpus_usage"] = u["total_vcpus_usage"].(float64) + hours*float64(f.VCPUs)
		if detailed {
			state := i.VMState
			if i.Deleted {
				state = "terminated"
			}
			uptime := int(time.Since(parseTime(i.CreatedAt)).Seconds())
			su := map[string]any{"instance_id": i.ID, "name": i.Name, "hours": hours, "memory_mb": f.MemoryMB, "local_gb": f.RootGB + f.EphemeralG,
				"vcpus": f.VCPUs, "tenant_id": i.ProjectID, "flavor": f.Name, "started_at": isoMicro(parseTime(i.CreatedAt)),
				"ended_at": nullTime(i.TerminatedAt, isoMicro), "state": state, "uptime": uptime}
			u["server_usages"] = append(u["server_usages"].([]map[string]any), su)
		}
	}
	return out, order, next, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *Service) listUsage(r *http.Request) (*api.Response, error) {
	start, end, err := s.usagePeriod(r)
	if err != nil {
		return nil, err
	}
	us, order, next, err := s.usageFor(r, "", start, end)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(order))
	for _, p := range order {
		out = append(out, us[p])
	}
	body := map[string]any{"tenant_usages": out}
	if next != "" {
		body["tenant_usages_links"] = []api.Link{api.NextLink(s.baseURL(r), r, next)}
	}
	return api.JSON(http.StatusOK, body), nil
}

func (s *Service) showUsage(r *http.Request) (*api.Response, error) {
	project := r.PathValue("tenant_id")
	if err := s.authorize(r, "os_compute_api:os-simple-tenant-usage:show", map[string]any{"project_id": project}); err != nil {
		return nil, err
	}
	start, end, err := s.usagePeriod(r)
	if err != nil {
		return nil, err
	}
	us, _, next, err := s.usageFor(r, project, start, end)
	if err != nil {
		return nil, err
	}
	u, ok := us[project]
	if !ok {
		u = map[string]any{}
	}
	body := map[string]any{"tenant_usage": u}
	if next != "" {
		body["tenant_usage_links"] = []api.Link{api.NextLink(s.baseURL(r), r, next)}
	}
	return api.JSON(http.StatusOK, body), nil
}
