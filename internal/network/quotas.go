package network

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

var quotaExtensions = []extension{
	{"quotas", "Quota management support", "Expose functions for quotas management per project", "2012-07-29T10:00:00-00:00"},
	{"quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project", "2017-02-10T10:00:00-00:00"},
}

// defaultQuotas are Neutron's default per-project limits; -1 is unlimited.
var defaultQuotas = map[string]int{
	"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
	"security_group": 10, "security_group_rule": 100, "subnetpool": -1,
}

// quotaTables names the table each quota resource counts.
var quotaTables = map[string]string{
	"network": "networks", "subnet": "subnets", "port": "ports", "router": "routers", "floatingip": "floatingips",
	"security_group": "security_groups", "security_group_rule": "security_group_rules", "subnetpool": "subnetpools",
}

func (s *Service) defaultLimit(resource string) int {
	if v, ok := s.cfg.Quotas[resource]; ok {
		return v
	}
	return defaultQuotas[resource]
}

// limits returns a project's effective limits.
func (s *Service) limits(ctx context.Context, q store.Querier, project string) (map[string]int, error) {
	out := map[string]int{}
	for res := range defaultQuotas {
		out[res] = s.defaultLimit(res)
	}
	type row struct {
		res   string
		limit int
	}
	rows, err := store.QueryAll(ctx, q, func(sc store.Scanner) (row, error) {
		var r row
		err := sc.Scan(&r.res, &r.limit)
		return r, err
	}, `SELECT resource, hard_limit FROM quotas WHERE project_id = ?`, project)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.res] = r.limit
	}
	return out, nil
}

func usage(ctx context.Context, q store.Querier, project, resource string) (int, error) {
	return count(ctx, q, `SELECT COUNT(*) FROM `+quotaTables[resource]+` WHERE project_id = ?`, project)
}

// checkQuota refuses to create n more of a resource beyond the project's
// limit, counting inside the creating transaction.
func (s *Service) checkQuota(ctx context.Context, tx *store.Tx, project, resource string, n int) error {
	lim, err := s.limits(ctx, tx, project)
	if err != nil {
		return err
	}
	limit := lim[resource]
	if limit < 0 {
		return nil
	}
	used, err := usage(ctx, tx, project, resource)
	if err != nil {
		return err
	}
	if used+n > limit {
		return overQuota(resource)
	}
	return nil
}

func quotaObj(project string, lim map[string]int) obj {
	o := obj{}
	for k, v := range lim {
		o[k] = v
	}
	o["project_id"], o["tenant_id"] = project, project
	return o
}

func (s *Service) listQuotas(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "get_quotas", obj{}); err != nil {
		return nil, err
	}
	projects, err := store.QueryStrings(r.Context(), s.db, `SELECT DISTINCT project_id FROM quotas`)
	if err != nil {
		return nil, err
	}
	sort.Strings(projects)
	out := make([]obj, 0, len(projects))
	for _, p := range projects {
		lim, err := s.limits(r.Context(), s.db, p)
		if err != nil {
			return nil, err
		}
		out = append(out, quotaObj(p, lim))
	}
	return api.JSON(http.StatusOK, obj{"quotas": out}), nil
}

func (s *Service) showQuota(r *http.Request) (*api.Response, error) {
	return s.showQuotaWith(r, func(_, _ string, limit int) (any, error) { return limit, nil })
}

// showQuotaWith answers GET on the quota of the project the path names,
// with each resource's entry made by item from its limit.
func (s *Service) showQuotaWith(r *http.Request, item func(project, resource string, limit int) (any, error)) (*api.Response, error) {
	project := r.PathValue("project_id")
	if err := s.authorizeOwned(r, "get_quota", project); err != nil {
		return nil, err
	}
	lim, err := s.limits(r.Context(), s.db, project)
	if err != nil {
		return nil, err
	}
	o := obj{}
	for res, limit := range lim {
		if o[res], err = item(project, res, limit); err != nil {
			return nil, err
		}
	}
	return api.JSON(http.StatusOK, obj{"quota": o}), nil
}

func (s *Service) showDefaultQuota(r *http.Request) (*api.Response, error) {
	project := r.PathValue("project_id")
	if err := s.authorize(r, "get_quota", obj{"project_id": project}); err != nil {
		return nil, err
	}
	o := obj{}
	for k := range defaultQuotas {
		o[k] = s.defaultLimit(k)
	}
	return api.JSON(http.StatusOK, obj{"quota": o}), nil
}

func (s *Service) showQuotaDetails(r *http.Request) (*api.Response, error) {
	return s.showQuotaWith(r, func(project, res string, limit int) (any, error) {
		used, err := usage(r.Context(), s.db, project, res)
		return obj{"limit": limit, "used": used, "reserved": 0}, err
	})
}

func (s *Service) updateQuota(r *http.Request) (*api.Response, error) {
	project := r.PathValue("project_id")
	if err := s.authorize(r, "update_quota", obj{"project_id": project}); err != nil {
		return nil, err
	}
	body, err := decodeBody[map[string]json.RawMessage](r, "quota")
	if err != nil {
		return nil, err
	}
	set := map[string]int{}
	for k, raw := range body {
		if _, ok := defaultQuotas[k]; !ok {
			if k == "project_id" || k == "tenant_id" || k == "force" || k == "check_limit" {
				continue
			}
			return nil, invalidInput("Unrecognized attribute(s) '%s'", k)
		}
		var v int
		if err := json.Unmarshal(raw, &v); err != nil {
			var text string
			if json.Unmarshal(raw, &text) != nil || jsonInt(text, &v) != nil {
				return nil, attrInvalid(k, "'%s' is not an integer", string(raw))
			}
		}
		if v < -1 {
			return nil, attrInvalid(k, "'%d' is too small - must be at least '-1'", v)
		}
		set[k] = v
	}
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		for k, v := range set {
			if _, err := tx.Exec(r.Context(), `DELETE FROM quotas WHERE project_id = ? AND resource = ?`, project, k); err != nil {
				return err
			}
			if _, err := tx.Exec(r.Context(), `INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)`, project, k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	lim, err := s.limits(r.Context(), s.db, project)
	if err != nil {
		return nil, err
	}
	o := obj{}
	for k, v := range lim {
		o[k] = v
	}
	return api.JSON(http.StatusOK, obj{"quota": o}), nil
}

func jsonInt(text string, v *int) error { return json.Unmarshal([]byte(text), v) }

func (s *Service) deleteQuota(r *http.Request) (*api.Response, error) {
	project := r.PathValue("project_id")
	if err := s.authorize(r, "delete_quota", obj{"project_id": project}); err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM quotas WHERE project_id = ?`, project); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}
