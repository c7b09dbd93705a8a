package compute

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

type serverGroup struct {
	ID, Name, ProjectID, UserID, Policy, Rules, CreatedAt string
}

func scanGroup(row store.Scanner) (serverGroup, error) {
	var g serverGroup
	err := row.Scan(&g.ID, &g.Name, &g.ProjectID, &g.UserID, &g.Policy, &g.Rules, &g.CreatedAt)
	return g, err
}

const groupCols = `id, name, project_id, user_id, policy, rules, created_at`

func (s *Service) groupView(r *http.Request, g serverGroup, members []string) map[string]any {
	if members == nil {
		members = []string{}
	}
	out := map[string]any{"id": g.ID, "name": g.Name, "members": members}
	if at(r, 64) {
		out["policy"] = g.Policy
		out["rules"] = fromJSON[map[string]any](g.Rules)
		if out["rules"] == nil {
			out["rules"] = map[string]any{}
		}
	} else {
		out["policies"] = []string{g.Policy}
		out["metadata"] = map[string]any{}
	}
	if at(r, 13) {
		out["project_id"] = g.ProjectID
		out["user_id"] = g.UserID
	}
	return out
}

func (s *Service) groupMembers(r *http.Request, id string) ([]string, error) {
	ms, err := store.QueryStrings(r.Context(), s.db, `SELECT m.instance_id FROM compute_server_group_members m
		JOIN compute_instances i ON i.id = m.instance_id WHERE m.group_id = ? AND i.deleted = 0 ORDER BY i.seq`, id)
	if err != nil {
		return nil, fmt.Errorf("members of server group %s: %w", id, err)
	}
	return ms, nil
}

func (s *Service) listServerGroups(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	if err := s.authorize(r, "os_compute_api:os-server-groups:index", projectTarget(c.project, c.user)); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	where, args := "project_id = ?", []any{c.project}
	if v, ok := q["all_projects"]; ok {
		b, _ := queryBool(v[0])
		if v[0] == "" {
			b = true
		}
		if b && s.can(r, "os_compute_api:os-server-groups:index:all_projects", projectTarget(c.project, c.user)) {
			where, args = "1 = 1", nil
		}
	}
	gs, err := store.QueryAll(r.Context(), s.db, scanGroup, `SELECT `+groupCols+` FROM compute_server_groups WHERE `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list server groups: %w", err)
	}
	offset, limit := 0, 1000
	for name, dst := range map[string]*int{"offset": &offset, "limit": &limit} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || (name == "limit" && n < 1) {
				return nil, api.BadRequest("Invalid input for query parameters %s. Value: %s.", name, v)
			}
			*dst = n
		}
	}
	if offset > len(gs) {
		offset = len(gs)
	}
	gs = gs[offset:]
	if len(gs) > limit {
		gs = gs[:limit]
	}
	out := make([]map[string]any, 0, len(gs))
	for _, g := range gs {
		ms, err := s.groupMembers(r, g.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, s.groupView(r, g, ms))
	}
	return api.JSON(http.StatusOK, map[string]any{"server_groups": out}), nil
}

func (s *Service) getGroup(r *http.Request, action string) (serverGroup, error) {
	c := s.caller(r)
	id := r.PathValue("group_id")
	g, err := store.QueryOne(r.Context(), s.db, scanGroup, `SELECT `+groupCols+` FROM compute_server_groups WHERE id = ?`, id)
	if isNoRows(err) || (err == nil && !c.admin && g.ProjectID != c.project) {
		return g, api.NotFound("Instance group %s could not be found.", id)
	}
	if err != nil {
		return g, fmt.Errorf("get server group %s: %w", id, err)
	}
	return g, s.authorize(r, action, projectTarget(g.ProjectID, g.UserID))
}

func (s *Service) showServerGroup(r *http.Request) (*api.Response, error) {
	g, err := s.getGroup(r, "os_compute_api:os-server-groups:show")
	if err != nil {
		return nil, err
	}
	ms, err := s.groupMembers(r, g.ID)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"server_group": s.groupView(r, g, ms)}), nil
}

func (s *Service) deleteServerGroup(r *http.Request) (*api.Response, error) {
	g, err := s.getGroup(r, "os_compute_api:os-server-groups:delete")
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM compute_server_groups WHERE id = ?`, g.ID); err != nil {
		return nil, fmt.Errorf("delete server group %s: %w", g.ID, err)
	}
	return api.NoContent(), nil
}

func (s *Service) createServerGroup(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	if err := s.authorize(r, "os_compute_api:os-server-groups:create", projectTarget(c.project, c.user)); err != nil {
		return nil, err
	}
	var body struct {
		ServerGroup *struct {
			Name     *string                    `json:"name"`
			Policies []string                   `json:"policies"`
			Policy   *string                    `json:"policy"`
			Rules    map[string]json.RawMessage `json:"rules"`
		} `json:"server_group"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.ServerGroup
	if in == nil {
		return nil, api.BadRequest("Invalid input for field/attribute server_group. 'server_group' is a required property")
	}
	if in.Name == nil {
		return nil, api.BadRequest("Invalid input for field/attribute server_group. 'name' is a required property")
	}
	if err := checkName("name", *in.Name, 255); err != nil {
		return nil, err
	}
	allowed := []string{"affinity", "anti-affinity"}
	if at(r, 15) {
		allowed = append(allowed, "soft-affinity", "soft-anti-affinity")
	}
	var policy string
	rules := map[string]int{}
	if at(r, 64) {
		if in.Policies != nil {
			return nil, api.BadRequest("Invalid input for field/attribute server_group. Additional properties are not allowed ('policies' was unexpected)")
		}
		if in.Policy == nil {
			return nil, api.BadRequest("Invalid input for field/attribute server_group. 'policy' is a required property")
		}
		policy = *in.Policy
		for k, raw := range in.Rules {
			if k != "max_server_per_host" {
				return nil, api.BadRequest("Invalid input for field/attribute rules. Additional properties are not allowed ('%s' was unexpected)", k)
			}
			var f flexInt
			if err := json.Unmarshal(raw, &f); err != nil {
				return nil, api.BadRequest("Invalid input for field/attribute max_server_per_host. Value: %s.", raw)
			}
			v, err := intField("max_server_per_host", f, 1, dbMaxInt)
			if err != nil {
				return nil, err
			}
			rules[k] = v
		}
		if len(rules) > 0 && policy != "anti-affinity" {
			return nil, api.BadRequest("Only anti-affinity policy supports rules.")
		}
	} else {
		if in.Policy != nil || in.Rules != nil {
			return nil, api.BadRequest("Invalid input for field/attribute server_group. Additional properties are not allowed ('policy' was unexpected)")
		}
		if len(in.Policies) != 1 {
			return nil, api.BadRequest("Invalid input for field/attribute policies. Value: %v. %v is not valid under any of the given schemas", in.Policies, in.Policies)
		}
		policy = in.Policies[0]
	}
	if !contains(allowed, policy) {
		return nil, api.BadRequest("Invalid input for field/attribute policy. Value: %s. '%s' is not one of %v", policy, policy, allowed)
	}
	g := serverGroup{ID: newID(), Name: *in.Name, ProjectID: c.project, UserID: c.user, Policy: policy, Rules: jsonText(rules), CreatedAt: store.FormatTime(now())}
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		if err := store.LockKey(r.Context(), tx, "quota:"+c.project); err != nil {
			return err
		}
		limits, err := s.limitsFor(r.Context(), tx, c.project)
		if err != nil {
			return err
		}
		used, err := usageOf(r.Context(), tx, c.project)
		if err != nil {
			return err
		}
		if l := limits["server_groups"]; l >= 0 && used["server_groups"]+1 > l {
			return api.Forbidden("Quota exceeded, too many server groups.")
		}
		_, err = tx.Exec(r.Context(), `INSERT INTO compute_server_groups (`+groupCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			g.ID, g.Name, g.ProjectID, g.UserID, g.Policy, g.Rules, g.CreatedAt)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"server_group": s.groupView(r, g, nil)}), nil
}
