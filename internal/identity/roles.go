package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

type role struct {
	ID, Name, DomainID, Description, Options, Extra string
}

const roleColumns = `id, name, domain_id, description, options, extra`

func scanRole(row store.Scanner) (*role, error) {
	r := &role{}
	err := row.Scan(&r.ID, &r.Name, &r.DomainID, &r.Description, &r.Options, &r.Extra)
	if r.DomainID == globalRoleDomain {
		r.DomainID = ""
	}
	return r, err
}

func (s *Service) getRole(ctx context.Context, id string) (*role, error) {
	r, err := store.QueryOne(ctx, s.db, scanRole, `SELECT `+roleColumns+` FROM roles WHERE id = ?`, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get role %s: %w", id, err)
	}
	return r, err
}

func (s *Service) roleByName(ctx context.Context, name, domainID string) (*role, error) {
	if domainID == "" {
		domainID = globalRoleDomain
	}
	r, err := store.QueryOne(ctx, s.db, scanRole, `SELECT `+roleColumns+` FROM roles WHERE name = ? AND domain_id = ?`, name, domainID)
	return r, err
}

func (r *role) immutable() bool {
	var opts map[string]any
	_ = json.Unmarshal([]byte(r.Options), &opts)
	v, _ := opts["immutable"].(bool)
	return v
}

func (s *Service) roleJSON(req *http.Request, r *role) map[string]any {
	var opts map[string]any
	_ = json.Unmarshal([]byte(r.Options), &opts)
	return withExtra(map[string]any{
		"id": r.ID, "name": r.Name, "domain_id": nullable(r.DomainID), "description": r.Description,
		"options": nonNil(opts), "links": s.selfLinks(req, "/v3/roles/"+r.ID),
	}, r.Extra)
}

// roleRefJSON is the short form used in inferences: id, name, links.
func (s *Service) roleRefJSON(req *http.Request, r *role) map[string]any {
	return map[string]any{"id": r.ID, "name": r.Name, "links": s.selfLinks(req, "/v3/roles/"+r.ID)}
}

type roleBody struct {
	Name        api.Optional[string] `json:"name"`
	DomainID    api.Optional[string] `json:"domain_id"`
	Description api.Optional[string] `json:"description"`
	Options     map[string]any       `json:"options"`
}

func validRoleOptions(opts map[string]any) (string, error) {
	for k, v := range opts {
		if k != "immutable" {
			return "", api.BadRequest("Invalid input for field 'role.options': '%s' is not a valid option.", k)
		}
		if _, ok := v.(bool); !ok && v != nil {
			return "", api.BadRequest("Invalid input for field 'role.options.immutable': expected boolean.")
		}
	}
	b, _ := json.Marshal(nonNil(opts))
	return string(b), nil
}

func (s *Service) createRole(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b roleBody
	extra, err := readEnvelope(r, "role", &b, false)
	if err != nil {
		return nil, err
	}
	if err := validName("role", b.Name.Value); err != nil {
		return nil, err
	}
	opts, err := validRoleOptions(b.Options)
	if err != nil {
		return nil, err
	}
	ro := &role{ID: newID(), Name: b.Name.Value, DomainID: b.DomainID.Value, Description: b.Description.Value, Options: opts, Extra: encodeExtra(extra)}
	if ro.DomainID != "" {
		if _, err := s.getDomain(ctx, s.db, ro.DomainID); errors.Is(err, store.ErrNotFound) {
			return nil, api.NotFound("Could not find domain: %s.", ro.DomainID)
		} else if err != nil {
			return nil, err
		}
	}
	if err := s.insertRole(ctx, ro); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, map[string]any{"role": s.roleJSON(r, ro)}), nil
}

func (s *Service) insertRole(ctx context.Context, ro *role) error {
	dom := ro.DomainID
	if dom == "" {
		dom = globalRoleDomain
	}
	_, err := s.db.Exec(ctx, `INSERT INTO roles (id, name, domain_id, description, options, extra) VALUES (?, ?, ?, ?, ?, ?)`,
		ro.ID, ro.Name, dom, ro.Description, ro.Options, ro.Extra)
	if store.IsConflict(err) {
		return api.Conflict("Conflict occurred attempting to store role - Duplicate entry found with name %s.", ro.Name)
	}
	if err != nil {
		return fmt.Errorf("create role: %w", err)
	}
	s.changed()
	return nil
}

func (s *Service) loadRole(r *http.Request, param string) (*role, error) {
	id := r.PathValue(param)
	ro, err := s.getRole(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find role: %s.", id)
	}
	return ro, err
}

func (s *Service) showRole(r *http.Request) (*api.Response, error) {
	ro, err := s.loadRole(r, "role_id")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"role": s.roleJSON(r, ro)}), nil
}

func (s *Service) listRoles(r *http.Request) (*api.Response, error) {
	q := r.URL.Query()
	dom := q.Get("domain_id")
	if dom == "" {
		dom = globalRoleDomain
	}
	query, args := `SELECT `+roleColumns+` FROM roles WHERE domain_id = ?`, []any{dom}
	if v := q.Get("name"); v != "" {
		query, args = query+` AND name = ?`, append(args, v)
	}
	return s.queryRoles(r, query+` ORDER BY name`, args...)
}

// queryRoles answers a list call with the roles q selects.
func (s *Service) queryRoles(r *http.Request, q string, args ...any) (*api.Response, error) {
	roles, err := store.QueryAll(r.Context(), s.db, scanRole, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return listResponse(s, r, "roles", roles, s.roleJSON), nil
}

func (s *Service) updateRole(r *http.Request) (*api.Response, error) {
	var b roleBody
	extra, err := readEnvelope(r, "role", &b, false)
	if err != nil {
		return nil, err
	}
	ro, err := s.loadRole(r, "role_id")
	if err != nil {
		return nil, err
	}
	if b.Options != nil {
		if v, ok := b.Options["immutable"]; ok && v == false && ro.immutable() && len(b.Options) == 1 && !b.Name.Set && !b.Description.Set {
			// Clearing the immutable flag is the one update allowed.
		} else if ro.immutable() {
			return nil, api.Forbidden("Role %s is immutable.", ro.ID)
		}
		opts, err := validRoleOptions(b.Options)
		if err != nil {
			return nil, err
		}
		ro.Options = opts
	} else if ro.immutable() {
		return nil, api.Forbidden("Role %s is immutable.", ro.ID)
	}
	if b.DomainID.Set && b.DomainID.Value != ro.DomainID {
		return nil, api.BadRequest("Update of `domain_id` is not allowed.")
	}
	if b.Name.Set {
		if err := validName("role", b.Name.Value); err != nil {
			return nil, err
		}
		ro.Name = b.Name.Value
	}
	if b.Description.Set {
		ro.Description = b.Description.Value
	}
	ro.Extra = mergeExtra(ro.Extra, extra)
	_, err = s.db.Exec(r.Context(), `UPDATE roles SET name = ?, description = ?, options = ?, extra = ? WHERE id = ?`, ro.Name, ro.Description, ro.Options, ro.Extra, ro.ID)
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store role - Duplicate entry found with name %s.", ro.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("update role %s: %w", ro.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"role": s.roleJSON(r, ro)}), nil
}

func (s *Service) deleteRole(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	ro, err := s.loadRole(r, "role_id")
	if err != nil {
		return nil, err
	}
	if ro.immutable() {
		return nil, api.Forbidden("Role %s is immutable.", ro.ID)
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := execAll(ctx, tx, ro.ID,
			`DELETE FROM assignments WHERE role_id = ?`,
			`DELETE FROM implied_roles WHERE prior_role_id = ?`,
			`DELETE FROM implied_roles WHERE implied_role_id = ?`,
			`DELETE FROM application_credential_roles WHERE role_id = ?`,
			`DELETE FROM roles WHERE id = ?`,
		); err != nil {
			return err
		}
		return s.deleteRoleExtras(ctx, tx, ro.ID)
	})
	if err != nil {
		return nil, fmt.Errorf("delete role %s: %w", ro.ID, err)
	}
	s.changed()
	return api.NoContent(), nil
}

// Implied roles.

func (s *Service) inferenceRoles(r *http.Request) (*role, *role, error) {
	prior, err := s.loadRole(r, "prior_role_id")
	if err != nil {
		return nil, nil, err
	}
	implied, err := s.loadRole(r, "implied_role_id")
	if err != nil {
		return nil, nil, err
	}
	return prior, implied, nil
}

func (s *Service) createImpliedRole(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	prior, implied, err := s.inferenceRoles(r)
	if err != nil {
		return nil, err
	}
	if prior.ID == implied.ID {
		return nil, api.BadRequest("A role cannot imply itself.")
	}
	// A global role may not imply a domain-specific one (that would leak
	// the domain's role everywhere), and nothing may imply admin, as
	// Keystone's prohibited_implied_role default says.
	if prior.DomainID == "" && implied.DomainID != "" {
		return nil, api.Forbidden("Global role %s cannot imply domain-specific role %s.", prior.ID, implied.ID)
	}
	if implied.Name == "admin" && implied.DomainID == "" {
		return nil, api.Forbidden("%s is not permitted to be an implied role.", implied.Name)
	}
	// Refuse a cycle: the implied role must not already (transitively)
	// imply the prior one.
	graph, err := s.impliedRoleGraph(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range expandImplied(graph, []string{implied.ID}) {
		if id == prior.ID {
			return nil, api.Conflict("Implied role %s would create a cycle with %s.", implied.ID, prior.ID)
		}
	}
	_, err = s.db.Exec(ctx, `INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES (?, ?)`, prior.ID, implied.ID)
	if err != nil && !store.IsConflict(err) {
		return nil, fmt.Errorf("create implied role: %w", err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"role_inference": map[string]any{
		"prior_role": s.roleRefJSON(r, prior), "implies": s.roleRefJSON(r, implied)}}), nil
}

func (s *Service) impliedExists(ctx context.Context, prior, implied string) (bool, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM implied_roles WHERE prior_role_id = ? AND implied_role_id = ?`, prior, implied).Scan(&n)
	return n > 0, err
}

func (s *Service) showImpliedRole(r *http.Request) (*api.Response, error) {
	prior, implied, err := s.inferenceRoles(r)
	if err != nil {
		return nil, err
	}
	ok, err := s.impliedExists(r.Context(), prior.ID, implied.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, api.NotFound("%s is not an implied role of %s.", implied.ID, prior.ID)
	}
	return api.JSON(http.StatusOK, map[string]any{"role_inference": map[string]any{
		"prior_role": s.roleRefJSON(r, prior), "implies": s.roleRefJSON(r, implied)}}), nil
}

func (s *Service) checkImpliedRole(r *http.Request) (*api.Response, error) {
	if _, err := s.showImpliedRole(r); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (s *Service) deleteImpliedRole(r *http.Request) (*api.Response, error) {
	prior, implied, err := s.inferenceRoles(r)
	if err != nil {
		return nil, err
	}
	return s.deleteOne(r.Context(), api.NotFound("%s is not an implied role of %s.", implied.ID, prior.ID),
		`DELETE FROM implied_roles WHERE prior_role_id = ? AND implied_role_id = ?`, prior.ID, implied.ID)
}

func (s *Service) listImpliedRoles(r *http.Request) (*api.Response, error) {
	prior, err := s.loadRole(r, "prior_role_id")
	if err != nil {
		return nil, err
	}
	implies, err := s.impliedOf(r, prior.ID)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{
		"role_inference": map[string]any{"prior_role": s.roleRefJSON(r, prior), "implies": implies},
		"links":          s.selfLinks(r, r.URL.Path),
	}), nil
}

func (s *Service) impliedOf(r *http.Request, priorID string) ([]any, error) {
	implied, err := store.QueryAll(r.Context(), s.db, scanRole, `SELECT `+roleColumns+` FROM roles WHERE id IN (SELECT implied_role_id FROM implied_roles WHERE prior_role_id = ?) ORDER BY name`, priorID)
	if err != nil {
		return nil, fmt.Errorf("roles implied by %s: %w", priorID, err)
	}
	return renderAll(r, implied, s.roleRefJSON), nil
}

func (s *Service) listRoleInferences(r *http.Request) (*api.Response, error) {
	priors, err := store.QueryStrings(r.Context(), s.db, `SELECT DISTINCT prior_role_id FROM implied_roles ORDER BY prior_role_id`)
	if err != nil {
		return nil, fmt.Errorf("list role inferences: %w", err)
	}
	out := []any{}
	for _, id := range priors {
		prior, err := s.getRole(r.Context(), id)
		if err != nil {
			return nil, err
		}
		implies, err := s.impliedOf(r, id)
		if err != nil {
			return nil, err
		}
		out = append(out, map[string]any{"prior_role": s.roleRefJSON(r, prior), "implies": implies})
	}
	return api.JSON(http.StatusOK, map[string]any{"role_inferences": out, "links": s.selfLinks(r, r.URL.Path)}), nil
}

// impliedRoleGraph loads prior -> implied edges.
func (s *Service) impliedRoleGraph(ctx context.Context) (map[string][]string, error) {
	g, err := s.queryMultimap(ctx, `SELECT prior_role_id, implied_role_id FROM implied_roles`)
	if err != nil {
		return nil, fmt.Errorf("load implied roles: %w", err)
	}
	return g, nil
}

// existingRoles loads the roles of ids in order, skipping any that have
// been deleted since they were granted.
func (s *Service) existingRoles(ctx context.Context, ids []string) []*role {
	var out []*role
	for _, id := range ids {
		if ro, err := s.getRole(ctx, id); err == nil {
			out = append(out, ro)
		}
	}
	return out
}

// linkedRoleIDs returns, sorted, the role ids a link table (trust_roles,
// application_credential_roles, ...) holds for id in column.
func (s *Service) linkedRoleIDs(ctx context.Context, table, column, id string) ([]string, error) {
	ids, err := store.QueryStrings(ctx, s.db, `SELECT role_id FROM `+table+` WHERE `+column+` = ? ORDER BY role_id`, id)
	if err != nil {
		return nil, fmt.Errorf("roles in %s of %s: %w", table, id, err)
	}
	return ids, nil
}

// queryMultimap loads a query of two text columns as first -> seconds, in
// row order.
func (s *Service) queryMultimap(ctx context.Context, q string, args ...any) (map[string][]string, error) {
	pairs, err := store.QueryAll(ctx, s.db, func(row store.Scanner) (pair [2]string, err error) {
		err = row.Scan(&pair[0], &pair[1])
		return pair, err
	}, q, args...)
	if err != nil {
		return nil, err
	}
	m := map[string][]string{}
	for _, p := range pairs {
		m[p[0]] = append(m[p[0]], p[1])
	}
	return m, nil
}

// expandImplied returns roles plus everything they imply, transitively,
// in first-seen order.
func expandImplied(graph map[string][]string, roles []string) []string {
	seen := map[string]bool{}
	var out []string
	var visit func(string)
	visit = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		out = append(out, id)
		for _, next := range graph[id] {
			visit(next)
		}
	}
	for _, id := range roles {
		visit(id)
	}
	return out
}
