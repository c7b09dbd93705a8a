package identity

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// OS-EP-FILTER limits the catalog of project-scoped tokens: a project
// associated with endpoints, directly or through endpoint groups (saved
// filters on interface, service and region), sees only those endpoints.
// A project without associations sees the whole catalog, as with
// Keystone's default return_all_endpoints_if_no_filter.

func (s *Service) epFilterRoutes(rt *api.Router) {
	type R = api.Route
	const p = "/v3/OS-EP-FILTER"
	rt.Handle(
		R{Method: http.MethodPost, Pattern: p + "/endpoint_groups", Handler: s.createEndpointGroup, Policy: "identity:create_endpoint_group"},
		R{Method: http.MethodGet, Pattern: p + "/endpoint_groups", Handler: s.listEndpointGroups, Policy: "identity:list_endpoint_groups"},
		R{Method: http.MethodGet, Pattern: p + "/endpoint_groups/{endpoint_group_id}", Handler: s.showEndpointGroup, Policy: "identity:get_endpoint_group"},
		R{Method: http.MethodPatch, Pattern: p + "/endpoint_groups/{endpoint_group_id}", Handler: s.updateEndpointGroup, Policy: "identity:update_endpoint_group"},
		R{Method: http.MethodDelete, Pattern: p + "/endpoint_groups/{endpoint_group_id}", Handler: s.deleteEndpointGroup, Policy: "identity:delete_endpoint_group"},
		R{Method: http.MethodGet, Pattern: p + "/endpoint_groups/{endpoint_group_id}/projects", Handler: s.listEndpointGroupProjects, Policy: "identity:list_projects_associated_with_endpoint_group"},
		R{Method: http.MethodGet, Pattern: p + "/endpoint_groups/{endpoint_group_id}/endpoints", Handler: s.listEndpointGroupEndpoints, Policy: "identity:list_endpoints_associated_with_endpoint_group"},
		R{Method: http.MethodGet, Pattern: p + "/endpoint_groups/{endpoint_group_id}/projects/{project_id}", Handler: s.showEndpointGroupProject, Policy: "identity:get_endpoint_group_in_project"},
		R{Method: http.MethodPut, Pattern: p + "/endpoint_groups/{endpoint_group_id}/projects/{project_id}", Handler: s.addEndpointGroupProject, Policy: "identity:add_endpoint_group_to_project"},
		R{Method: http.MethodDelete, Pattern: p + "/endpoint_groups/{endpoint_group_id}/projects/{project_id}", Handler: s.removeEndpointGroupProject, Policy: "identity:remove_endpoint_group_from_project"},
		R{Method: http.MethodGet, Pattern: p + "/endpoints/{endpoint_id}/projects", Handler: s.listEndpointProjects, Policy: "identity:list_projects_for_endpoint"},
		R{Method: http.MethodGet, Pattern: p + "/projects/{project_id}/endpoints", Handler: s.listProjectEndpoints, Policy: "identity:list_endpoints_for_project"},
		R{Method: http.MethodGet, Pattern: p + "/projects/{project_id}/endpoints/{endpoint_id}", Handler: s.checkProjectEndpoint, Policy: "identity:check_endpoint_in_project"},
		R{Method: http.MethodPut, Pattern: p + "/projects/{project_id}/endpoints/{endpoint_id}", Handler: s.addProjectEndpoint, Policy: "identity:add_endpoint_to_project"},
		R{Method: http.MethodDelete, Pattern: p + "/projects/{project_id}/endpoints/{endpoint_id}", Handler: s.removeProjectEndpoint, Policy: "identity:remove_endpoint_from_project"},
		R{Method: http.MethodGet, Pattern: p + "/projects/{project_id}/endpoint_groups", Handler: s.listProjectEndpointGroups, Policy: "identity:list_endpoint_groups_for_project"},
	)
}

// endpointGroup is a saved endpoint filter.
type endpointGroup struct {
	ID, Name    string
	Description sql.NullString
	Filters     map[string]string
}

// endpointFilterKeys are the endpoint attributes a group may filter on.
var endpointFilterKeys = []string{"interface", "service_id", "region_id"}

func (g *endpointGroup) matches(e *endpoint) bool {
	for k, v := range g.Filters {
		var have string
		switch k {
		case "interface":
			have = e.Interface
		case "service_id":
			have = e.ServiceID
		case "region_id":
			have = e.RegionID
		}
		if have != v {
			return false
		}
	}
	return true
}

func scanEndpointGroup(row store.Scanner) (*endpointGroup, error) {
	g := &endpointGroup{}
	var filters string
	if err := row.Scan(&g.ID, &g.Name, &g.Description, &filters); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(filters), &g.Filters); err != nil {
		return nil, fmt.Errorf("endpoint group %s filters: %w", g.ID, err)
	}
	return g, nil
}

const endpointGroupColumns = `id, name, description, filters`

func (s *Service) getEndpointGroup(ctx context.Context, id string) (*endpointGroup, error) {
	g, err := store.QueryOne(ctx, s.db, scanEndpointGroup, `SELECT `+endpointGroupColumns+` FROM endpoint_groups WHERE id = ?`, id)
	return g, err
}

func (s *Service) loadEndpointGroup(r *http.Request) (*endpointGroup, error) {
	id := r.PathValue("endpoint_group_id")
	g, err := s.getEndpointGroup(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find Endpoint Group: %s.", id)
	}
	return g, err
}

func (s *Service) listEndpointGroupRows(ctx context.Context, where string, args ...any) ([]*endpointGroup, error) {
	q := `SELECT ` + endpointGroupColumns + ` FROM endpoint_groups`
	if where != "" {
		q += ` WHERE ` + where
	}
	out, err := store.QueryAll(ctx, s.db, scanEndpointGroup, q+` ORDER BY name, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list endpoint groups: %w", err)
	}
	return out, nil
}

func (s *Service) endpointGroupJSON(r *http.Request, g *endpointGroup) map[string]any {
	var desc any
	if g.Description.Valid {
		desc = g.Description.String
	}
	return map[string]any{"id": g.ID, "name": g.Name, "description": desc, "filters": g.Filters,
		"links": s.selfLinks(r, "/v3/OS-EP-FILTER/endpoint_groups/"+g.ID)}
}

type endpointGroupBody struct {
	Name        api.Optional[string]         `json:"name"`
	Description api.Optional[string]         `json:"description"`
	Filters     api.Optional[map[string]any] `json:"filters"`
}

// validFilters checks a group's filters: a non-empty object of string
// values on interface, service_id and region_id only.
func validFilters(in map[string]any) (map[string]string, error) {
	if len(in) == 0 {
		return nil, api.BadRequest("Invalid input for field 'endpoint_group.filters': filters field is required and cannot be empty.")
	}
	out := map[string]string{}
	for k, v := range in {
		known := false
		for _, f := range endpointFilterKeys {
			known = known || f == k
		}
		if !known {
			return nil, api.BadRequest("Invalid input for field 'endpoint_group.filters': %q is not one of interface, service_id or region_id.", k)
		}
		sv, ok := v.(string)
		if !ok {
			return nil, api.BadRequest("Invalid input for field 'endpoint_group.filters.%s': expected string.", k)
		}
		out[k] = sv
	}
	return out, nil
}

func (s *Service) createEndpointGroup(r *http.Request) (*api.Response, error) {
	var b endpointGroupBody
	if _, err := readEnvelope(r, "endpoint_group", &b, false); err != nil {
		return nil, err
	}
	if err := validName("endpoint_group", b.Name.Value); err != nil {
		return nil, err
	}
	filters, err := validFilters(b.Filters.Value)
	if err != nil {
		return nil, err
	}
	g := &endpointGroup{ID: newID(), Name: b.Name.Value, Filters: filters}
	if b.Description.Set && !b.Description.Null {
		g.Description = sql.NullString{String: b.Description.Value, Valid: true}
	}
	raw, _ := json.Marshal(g.Filters)
	if _, err := s.db.Exec(r.Context(), `INSERT INTO endpoint_groups (id, name, description, filters) VALUES (?, ?, ?, ?)`,
		g.ID, g.Name, g.Description, string(raw)); err != nil {
		return nil, fmt.Errorf("create endpoint group: %w", err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"endpoint_group": s.endpointGroupJSON(r, g)}), nil
}

func (s *Service) listEndpointGroups(r *http.Request) (*api.Response, error) {
	where, args := "", []any{}
	if name := r.URL.Query().Get("name"); name != "" {
		where, args = `name = ?`, append(args, name)
	}
	gs, err := s.listEndpointGroupRows(r.Context(), where, args...)
	if err != nil {
		return nil, err
	}
	return listResponse(s, r, "endpoint_groups", gs, s.endpointGroupJSON), nil
}

func (s *Service) showEndpointGroup(r *http.Request) (*api.Response, error) {
	g, err := s.loadEndpointGroup(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"endpoint_group": s.endpointGroupJSON(r, g)}), nil
}

func (s *Service) updateEndpointGroup(r *http.Request) (*api.Response, error) {
	var b endpointGroupBody
	if _, err := readEnvelope(r, "endpoint_group", &b, false); err != nil {
		return nil, err
	}
	if !b.Name.Set && !b.Description.Set && !b.Filters.Set {
		return nil, api.BadRequest("Invalid input for field 'endpoint_group': at least one property is required.")
	}
	g, err := s.loadEndpointGroup(r)
	if err != nil {
		return nil, err
	}
	if b.Name.Set {
		if err := validName("endpoint_group", b.Name.Value); err != nil {
			return nil, err
		}
		g.Name = b.Name.Value
	}
	if b.Description.Set {
		g.Description = sql.NullString{String: b.Description.Value, Valid: !b.Description.Null}
	}
	if b.Filters.Set {
		if g.Filters, err = validFilters(b.Filters.Value); err != nil {
			return nil, err
		}
	}
	raw, _ := json.Marshal(g.Filters)
	if _, err := s.db.Exec(r.Context(), `UPDATE endpoint_groups SET name = ?, description = ?, filters = ? WHERE id = ?`,
		g.Name, g.Description, string(raw), g.ID); err != nil {
		return nil, fmt.Errorf("update endpoint group %s: %w", g.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"endpoint_group": s.endpointGroupJSON(r, g)}), nil
}

func (s *Service) deleteEndpointGroup(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	g, err := s.loadEndpointGroup(r)
	if err != nil {
		return nil, err
	}
	return s.deleteResource(ctx, "endpoint group", g.ID,
		`DELETE FROM project_endpoint_groups WHERE endpoint_group_id = ?`,
		`DELETE FROM endpoint_groups WHERE id = ?`)
}

// loadPathProject fetches the project named in the path.
func (s *Service) loadPathProject(r *http.Request) (*project, error) {
	id := r.PathValue("project_id")
	p, err := s.getProject(r.Context(), s.db, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find project: %s.", id)
	}
	return p, err
}

// projectsJSON renders projects (or domains acting as projects) by id,
// skipping any that have gone.
func (s *Service) projectsJSON(r *http.Request, ids []string) []any {
	out := []any{}
	for _, id := range ids {
		p, err := s.getProject(r.Context(), s.db, id)
		if err != nil {
			continue
		}
		out = append(out, s.projectListingJSON(r, p))
	}
	return out
}

// associatedProjects answers a list call with the projects whose ids q
// selects.
func (s *Service) associatedProjects(r *http.Request, q string, args ...any) (*api.Response, error) {
	ids, err := store.QueryStrings(r.Context(), s.db, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list associated projects: %w", err)
	}
	return api.JSON(http.StatusOK, s.listBody(r, "projects", s.projectsJSON(r, ids))), nil
}

func (s *Service) listEndpointGroupProjects(r *http.Request) (*api.Response, error) {
	g, err := s.loadEndpointGroup(r)
	if err != nil {
		return nil, err
	}
	return s.associatedProjects(r, `SELECT project_id FROM project_endpoint_groups WHERE endpoint_group_id = ? ORDER BY project_id`, g.ID)
}

func (s *Service) listEndpointGroupEndpoints(r *http.Request) (*api.Response, error) {
	g, err := s.loadEndpointGroup(r)
	if err != nil {
		return nil, err
	}
	eps, err := s.listEndpointRows(r.Context(), "")
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, e := range eps {
		if g.matches(e) {
			out = append(out, s.endpointJSON(r, e))
		}
	}
	return api.JSON(http.StatusOK, s.listBody(r, "endpoints", out)), nil
}

// loadGroupAndProject resolves the group and project of an association
// URL, answering 404 for either.
func (s *Service) loadGroupAndProject(r *http.Request) (*endpointGroup, *project, error) {
	p, err := s.loadPathProject(r)
	if err != nil {
		return nil, nil, err
	}
	g, err := s.loadEndpointGroup(r)
	if err != nil {
		return nil, nil, err
	}
	return g, p, nil
}

func (s *Service) showEndpointGroupProject(r *http.Request) (*api.Response, error) {
	g, p, err := s.loadGroupAndProject(r)
	if err != nil {
		return nil, err
	}
	if err := s.mustExist(r.Context(), api.NotFound("Endpoint Group Project Association not found"),
		`SELECT COUNT(*) FROM project_endpoint_groups WHERE endpoint_group_id = ? AND project_id = ?`, g.ID, p.ID); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"project_endpoint_group": map[string]any{
		"endpoint_group_id": g.ID, "project_id": p.ID,
		"links": s.selfLinks(r, "/v3/OS-EP-FILTER/endpoint_groups/"+g.ID+"/projects/"+p.ID),
	}}), nil
}

func (s *Service) addEndpointGroupProject(r *http.Request) (*api.Response, error) {
	g, p, err := s.loadGroupAndProject(r)
	if err != nil {
		return nil, err
	}
	_, err = s.db.Exec(r.Context(), `INSERT INTO project_endpoint_groups (endpoint_group_id, project_id) VALUES (?, ?)`, g.ID, p.ID)
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store project_endpoint_group - Duplicate entry.")
	}
	if err != nil {
		return nil, fmt.Errorf("associate endpoint group %s: %w", g.ID, err)
	}
	s.changed()
	return api.NoContent(), nil
}

func (s *Service) removeEndpointGroupProject(r *http.Request) (*api.Response, error) {
	g, p, err := s.loadGroupAndProject(r)
	if err != nil {
		return nil, err
	}
	return s.deleteOne(r.Context(), api.NotFound("Endpoint Group Project Association not found"),
		`DELETE FROM project_endpoint_groups WHERE endpoint_group_id = ? AND project_id = ?`, g.ID, p.ID)
}

func (s *Service) listEndpointProjects(r *http.Request) (*api.Response, error) {
	e, err := s.loadEndpoint(r)
	if err != nil {
		return nil, err
	}
	return s.associatedProjects(r, `SELECT project_id FROM project_endpoints WHERE endpoint_id = ? ORDER BY project_id`, e.ID)
}

// projectEndpoints resolves the endpoints a project is associated with,
// directly and through its endpoint groups, enabled or not.
func (s *Service) projectEndpoints(ctx context.Context, projectID string) (map[string]*endpoint, error) {
	out := map[string]*endpoint{}
	direct, err := s.listEndpointRows(ctx, `id IN (SELECT endpoint_id FROM project_endpoints WHERE project_id = ?)`, projectID)
	if err != nil {
		return nil, err
	}
	for _, e := range direct {
		out[e.ID] = e
	}
	groups, err := s.listEndpointGroupRows(ctx, `id IN (SELECT endpoint_group_id FROM project_endpoint_groups WHERE project_id = ?)`, projectID)
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		return out, nil
	}
	all, err := s.listEndpointRows(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, e := range all {
		for _, g := range groups {
			if g.matches(e) {
				out[e.ID] = e
				break
			}
		}
	}
	return out, nil
}

func (s *Service) listProjectEndpoints(r *http.Request) (*api.Response, error) {
	p, err := s.loadPathProject(r)
	if err != nil {
		return nil, err
	}
	eps, err := s.projectEndpoints(r.Context(), p.ID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(eps))
	for id := range eps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	sorted := make([]*endpoint, 0, len(ids))
	for _, id := range ids {
		sorted = append(sorted, eps[id])
	}
	return listResponse(s, r, "endpoints", sorted, s.endpointJSON), nil
}

// loadProjectAndEndpoint resolves both ends of a project-endpoint URL.
func (s *Service) loadProjectAndEndpoint(r *http.Request) (*project, *endpoint, error) {
	e, err := s.loadEndpoint(r)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.loadPathProject(r)
	if err != nil {
		return nil, nil, err
	}
	return p, e, nil
}

func (s *Service) checkProjectEndpoint(r *http.Request) (*api.Response, error) {
	p, e, err := s.loadProjectAndEndpoint(r)
	if err != nil {
		return nil, err
	}
	if err := s.mustExist(r.Context(), api.NotFound("Endpoint %s not found in project %s", e.ID, p.ID),
		`SELECT COUNT(*) FROM project_endpoints WHERE endpoint_id = ? AND project_id = ?`, e.ID, p.ID); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (s *Service) addProjectEndpoint(r *http.Request) (*api.Response, error) {
	p, e, err := s.loadProjectAndEndpoint(r)
	if err != nil {
		return nil, err
	}
	_, err = s.db.Exec(r.Context(), `INSERT INTO project_endpoints (endpoint_id, project_id) VALUES (?, ?)`, e.ID, p.ID)
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store project_endpoint - Duplicate entry.")
	}
	if err != nil {
		return nil, fmt.Errorf("associate endpoint %s: %w", e.ID, err)
	}
	s.changed()
	return api.NoContent(), nil
}

func (s *Service) removeProjectEndpoint(r *http.Request) (*api.Response, error) {
	eid, pid := r.PathValue("endpoint_id"), r.PathValue("project_id")
	return s.deleteOne(r.Context(), api.NotFound("Endpoint %s not found in project %s", eid, pid),
		`DELETE FROM project_endpoints WHERE endpoint_id = ? AND project_id = ?`, eid, pid)
}

func (s *Service) listProjectEndpointGroups(r *http.Request) (*api.Response, error) {
	p, err := s.loadPathProject(r)
	if err != nil {
		return nil, err
	}
	gs, err := s.listEndpointGroupRows(r.Context(), `id IN (SELECT endpoint_group_id FROM project_endpoint_groups WHERE project_id = ?)`, p.ID)
	if err != nil {
		return nil, err
	}
	return listResponse(s, r, "endpoint_groups", gs, s.endpointGroupJSON), nil
}

// projectEndpointFilter returns the endpoints a project-scoped token's
// catalog is limited to (OS-EP-FILTER), or nil for no filter: tokens not
// scoped to a project, and projects without associations, see all.
func (s *Service) projectEndpointFilter(ctx context.Context, v *tokenView) (map[string]bool, error) {
	if v == nil || v.project == nil {
		return nil, nil
	}
	eps, err := s.projectEndpoints(ctx, v.project.ID)
	if err != nil {
		return nil, fmt.Errorf("endpoint filter of project %s: %w", v.project.ID, err)
	}
	if len(eps) == 0 {
		return nil, nil
	}
	allowed := make(map[string]bool, len(eps))
	for id := range eps {
		allowed[id] = true
	}
	return allowed, nil
}
