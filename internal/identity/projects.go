package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// DefaultDomainID is the id of the domain bootstrap creates, as Keystone's.
const DefaultDomainID = "default"

// project is a project or, when IsDomain, a domain.
type project struct {
	ID          string
	Name        string
	DomainID    string
	ParentID    string
	Description string
	Enabled     bool
	IsDomain    bool
	Extra       string
	Tags        []string
}

const projectColumns = `id, name, domain_id, COALESCE(parent_id, ''), description, enabled, is_domain, extra`

func scanProject(row store.Scanner) (*project, error) {
	p := &project{}
	err := row.Scan(&p.ID, &p.Name, &p.DomainID, &p.ParentID, &p.Description, &p.Enabled, &p.IsDomain, &p.Extra)
	return p, err
}

// getProject loads a project or domain by id, with its tags.
func (s *Service) getProject(ctx context.Context, q store.Querier, id string) (*project, error) {
	p, err := store.QueryOne(ctx, q, scanProject, `SELECT `+projectColumns+` FROM projects WHERE id = ?`, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("get project %s: %w", id, err)
	}
	p.Tags, err = s.projectTags(ctx, q, id)
	return p, err
}

func (s *Service) projectTags(ctx context.Context, q store.Querier, id string) ([]string, error) {
	tags, err := store.QueryStrings(ctx, q, `SELECT tag FROM project_tags WHERE project_id = ? ORDER BY tag`, id)
	if err != nil {
		return nil, fmt.Errorf("project tags: %w", err)
	}
	if tags == nil {
		tags = []string{} // "tags": [], not null
	}
	return tags, nil
}

// loadProjectTags fills in the tags of each of ps.
func (s *Service) loadProjectTags(ctx context.Context, ps []*project) error {
	for _, p := range ps {
		tags, err := s.projectTags(ctx, s.db, p.ID)
		if err != nil {
			return err
		}
		p.Tags = tags
	}
	return nil
}

// getDomain loads a domain; a project id is not a domain.
func (s *Service) getDomain(ctx context.Context, q store.Querier, id string) (*project, error) {
	p, err := s.getProject(ctx, q, id)
	if err != nil {
		return nil, err
	}
	if !p.IsDomain {
		return nil, store.ErrNotFound
	}
	return p, nil
}

// domainByName finds an enabled-or-not domain by name.
func (s *Service) domainByName(ctx context.Context, name string) (*project, error) {
	var id string
	err := s.db.QueryRow(ctx, `SELECT id FROM projects WHERE domain_id = ? AND name = ?`, rootDomainID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return s.getProject(ctx, s.db, id)
}

func (s *Service) projectJSON(r *http.Request, p *project) map[string]any {
	if p.IsDomain {
		return withExtra(map[string]any{
			"id": p.ID, "name": p.Name, "description": p.Description, "enabled": p.Enabled,
			"tags": p.Tags, "options": map[string]any{},
			"links": s.selfLinks(r, "/v3/domains/"+p.ID),
		}, p.Extra)
	}
	parent := p.ParentID
	return withExtra(map[string]any{
		"id": p.ID, "name": p.Name, "domain_id": p.DomainID, "parent_id": nullable(parent),
		"description": p.Description, "enabled": p.Enabled, "is_domain": false,
		"tags": p.Tags, "options": map[string]any{},
		"links": s.selfLinks(r, "/v3/projects/"+p.ID),
	}, p.Extra)
}

// projectListingJSON renders a project, or a domain acting as one, as a
// member of a project listing.
func (s *Service) projectListingJSON(r *http.Request, p *project) map[string]any {
	if p.IsDomain {
		return s.domainAsProjectJSON(r, p)
	}
	return s.projectJSON(r, p)
}

// domainAsProjectJSON renders a domain in a project listing (is_domain=true).
func (s *Service) domainAsProjectJSON(r *http.Request, p *project) map[string]any {
	return withExtra(map[string]any{
		"id": p.ID, "name": p.Name, "domain_id": nil, "parent_id": nil,
		"description": p.Description, "enabled": p.Enabled, "is_domain": true,
		"tags": p.Tags, "options": map[string]any{},
		"links": s.selfLinks(r, "/v3/projects/"+p.ID),
	}, p.Extra)
}

type projectBody struct {
	Name        api.Optional[string]   `json:"name"`
	DomainID    api.Optional[string]   `json:"domain_id"`
	ParentID    api.Optional[string]   `json:"parent_id"`
	Description api.Optional[string]   `json:"description"`
	Enabled     api.Optional[bool]     `json:"enabled"`
	IsDomain    api.Optional[bool]     `json:"is_domain"`
	Tags        api.Optional[[]string] `json:"tags"`
	Options     map[string]any         `json:"options"`
	ExplicitID  string                 `json:"explicit_domain_id"`
}

func validTags(tags []string) error {
	if len(tags) > 80 {
		return api.BadRequest("Invalid input for field 'tags': at most 80 tags are allowed.")
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if t == "" || len([]rune(t)) > 255 || strings.ContainsAny(t, "/,") {
			return api.BadRequest("Invalid input for field 'tags': tag %q must be 1 to 255 characters without '/' or ','.", t)
		}
		if seen[t] {
			return api.BadRequest("Invalid input for field 'tags': duplicate tag %q.", t)
		}
		seen[t] = true
	}
	return nil
}

// createProjectRow inserts a project or domain with its tags.
func (s *Service) createProjectRow(ctx context.Context, p *project) error {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		parent := any(nil)
		if p.ParentID != "" {
			parent = p.ParentID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO projects (id, name, domain_id, parent_id, description, enabled, is_domain, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.Name, p.DomainID, parent, p.Description, p.Enabled, p.IsDomain, p.Extra); err != nil {
			return err
		}
		return replaceTags(ctx, tx, p.ID, p.Tags)
	})
	if store.IsConflict(err) {
		kind, where := "project", "domain ID "+p.DomainID
		if p.IsDomain {
			kind, where = "domain", "the cloud"
		}
		return api.Conflict("Conflict occurred attempting to store %s - Duplicate entry found with name %s at %s.", kind, p.Name, where)
	}
	if err != nil {
		return fmt.Errorf("create project: %w", err)
	}
	s.changed()
	return nil
}

func replaceTags(ctx context.Context, tx *store.Tx, id string, tags []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM project_tags WHERE project_id = ?`, id); err != nil {
		return err
	}
	for _, t := range tags {
		if _, err := tx.Exec(ctx, `INSERT INTO project_tags (project_id, tag) VALUES (?, ?)`, id, t); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) createDomain(r *http.Request) (*api.Response, error) {
	var b projectBody
	extra, err := readEnvelope(r, "domain", &b, false)
	if err != nil {
		return nil, err
	}
	if err := validName("domain", b.Name.Value); err != nil {
		return nil, err
	}
	if len([]rune(b.Name.Value)) > 64 {
		return nil, api.BadRequest("Invalid input for field 'domain.name': name is longer than 64 characters.")
	}
	if err := validTags(b.Tags.Value); err != nil {
		return nil, err
	}
	p := &project{ID: newID(), Name: b.Name.Value, DomainID: rootDomainID, IsDomain: true,
		Description: b.Description.Value, Enabled: !b.Enabled.Set || b.Enabled.Value, Extra: encodeExtra(extra), Tags: b.Tags.Value}
	if b.ExplicitID != "" {
		p.ID = b.ExplicitID
	}
	if p.Tags == nil {
		p.Tags = []string{}
	}
	if err := s.createProjectRow(r.Context(), p); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, map[string]any{"domain": s.projectJSON(r, p)}), nil
}

func (s *Service) createProject(r *http.Request) (*api.Response, error) {
	var b projectBody
	extra, err := readEnvelope(r, "project", &b, false)
	if err != nil {
		return nil, err
	}
	if err := validName("project", b.Name.Value); err != nil {
		return nil, err
	}
	if len([]rune(b.Name.Value)) > 64 {
		return nil, api.BadRequest("Invalid input for field 'project.name': name is longer than 64 characters.")
	}
	if err := validTags(b.Tags.Value); err != nil {
		return nil, err
	}
	ctx := r.Context()
	p := &project{ID: newID(), Name: b.Name.Value, Description: b.Description.Value,
		Enabled: !b.Enabled.Set || b.Enabled.Value, IsDomain: b.IsDomain.Value, Extra: encodeExtra(extra), Tags: b.Tags.Value}
	if p.Tags == nil {
		p.Tags = []string{}
	}
	if p.IsDomain {
		p.DomainID = rootDomainID
		if err := s.createProjectRow(ctx, p); err != nil {
			return nil, err
		}
		return api.JSON(http.StatusCreated, map[string]any{"project": s.domainAsProjectJSON(r, p)}), nil
	}
	// The domain defaults to the parent's, then the token's domain scope,
	// then the default domain, as Keystone decides it.
	var parent *project
	if b.ParentID.Value != "" {
		parent, err = s.getProject(ctx, s.db, b.ParentID.Value)
		if errors.Is(err, store.ErrNotFound) {
			return nil, api.NotFound("Could not find project: %s.", b.ParentID.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case b.DomainID.Value != "":
		p.DomainID = b.DomainID.Value
	case parent != nil && parent.IsDomain:
		p.DomainID = parent.ID
	case parent != nil:
		p.DomainID = parent.DomainID
	case api.Caller(r) != nil && api.Caller(r).DomainID != "":
		p.DomainID = api.Caller(r).DomainID
	default:
		p.DomainID = DefaultDomainID
	}
	dom, err := s.getDomain(ctx, s.db, p.DomainID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find domain: %s.", p.DomainID)
	}
	if err != nil {
		return nil, err
	}
	_ = dom
	if parent != nil {
		if parent.IsDomain && parent.ID != p.DomainID || !parent.IsDomain && parent.DomainID != p.DomainID {
			return nil, api.BadRequest("Cannot create project, the parent (%s) is in a different domain.", parent.ID)
		}
		if !parent.IsDomain {
			p.ParentID = parent.ID
		}
	}
	if p.ParentID == "" {
		p.ParentID = p.DomainID
	}
	if err := s.api.Authorize(r, "identity:create_project", map[string]any{"target": map[string]any{"project": map[string]any{"domain_id": p.DomainID}}}); err != nil {
		return nil, err
	}
	if err := s.createProjectRow(ctx, p); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, map[string]any{"project": s.projectJSON(r, p)}), nil
}

// projectView hides the domain a top-level project points at from
// parent_id, as Keystone shows the domain as its parent.
func (s *Service) projectNotFound(kind, id string) error {
	return api.NotFound("Could not find %s: %s.", kind, id)
}

func (s *Service) showDomain(r *http.Request) (*api.Response, error) {
	p, err := s.getDomain(r.Context(), s.db, r.PathValue("domain_id"))
	if errors.Is(err, store.ErrNotFound) {
		id := r.PathValue("domain_id")
		if err := s.api.Authorize(r, "identity:get_domain", map[string]any{"target": map[string]any{"domain": map[string]any{"id": id}}, "domain_id": id}); err != nil {
			return nil, err
		}
		return nil, s.projectNotFound("domain", id)
	}
	if err != nil {
		return nil, err
	}
	if err := s.api.Authorize(r, "identity:get_domain", map[string]any{"target": map[string]any{"domain": map[string]any{"id": p.ID}}, "domain_id": p.ID}); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"domain": s.projectJSON(r, p)}), nil
}

func (s *Service) showProject(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	id := r.PathValue("project_id")
	p, err := s.getProject(ctx, s.db, id)
	if errors.Is(err, store.ErrNotFound) {
		// Policy first, so a caller without the right cannot tell which
		// ids exist, as Keystone answers.
		if err := s.api.Authorize(r, "identity:get_project", map[string]any{"target": map[string]any{"project": map[string]any{"id": id}}, "project_id": id}); err != nil {
			return nil, err
		}
		return nil, s.projectNotFound("project", id)
	}
	if err != nil {
		return nil, err
	}
	if err := s.api.Authorize(r, "identity:get_project", map[string]any{"target": map[string]any{"project": map[string]any{"id": p.ID, "domain_id": p.DomainID}}, "project_id": p.ID}); err != nil {
		return nil, err
	}
	var body map[string]any
	if p.IsDomain {
		body = s.domainAsProjectJSON(r, p)
	} else {
		body = s.projectJSON(r, p)
	}
	q := r.URL.Query()
	if q.Has("parents_as_list") || q.Has("parents_as_ids") {
		parents, err := s.projectAncestors(ctx, p)
		if err != nil {
			return nil, err
		}
		if q.Has("parents_as_list") {
			list := []any{}
			for _, a := range parents {
				list = append(list, map[string]any{"project": s.projectJSON(r, a)})
			}
			body["parents"] = list
		} else {
			body["parents"] = nestIDs(parents)
		}
	}
	if q.Has("subtree_as_list") || q.Has("subtree_as_ids") {
		sub, err := s.projectDescendants(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		if q.Has("subtree_as_list") {
			list := []any{}
			for _, d := range sub {
				list = append(list, map[string]any{"project": s.projectJSON(r, d)})
			}
			body["subtree"] = list
		} else {
			body["subtree"] = subtreeIDs(sub, p.ID)
		}
	}
	return api.JSON(http.StatusOK, map[string]any{"project": body}), nil
}

// nestIDs renders ancestors (nearest first) as Keystone's parents_as_ids:
// {"parent": {"grandparent": null}}.
func nestIDs(ancestors []*project) any {
	if len(ancestors) == 0 {
		return nil
	}
	var cur any
	for i := len(ancestors) - 1; i >= 0; i-- {
		cur = map[string]any{ancestors[i].ID: cur}
	}
	return cur
}

func subtreeIDs(sub []*project, root string) any {
	children := map[string][]string{}
	for _, d := range sub {
		children[d.ParentID] = append(children[d.ParentID], d.ID)
	}
	var build func(id string) any
	build = func(id string) any {
		kids := children[id]
		if len(kids) == 0 {
			return nil
		}
		m := map[string]any{}
		for _, k := range kids {
			m[k] = build(k)
		}
		return m
	}
	return build(root)
}

// projectAncestors returns the project's non-domain ancestors, nearest first.
func (s *Service) projectAncestors(ctx context.Context, p *project) ([]*project, error) {
	var out []*project
	seen := map[string]bool{p.ID: true}
	cur := p
	for cur.ParentID != "" && !seen[cur.ParentID] {
		seen[cur.ParentID] = true
		parent, err := s.getProject(ctx, s.db, cur.ParentID)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if parent.IsDomain {
			break
		}
		out = append(out, parent)
		cur = parent
	}
	return out, nil
}

// projectDescendants returns every project below id, breadth first.
func (s *Service) projectDescendants(ctx context.Context, id string) ([]*project, error) {
	var out []*project
	queue := []string{id}
	seen := map[string]bool{id: true}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		children, err := store.QueryAll(ctx, s.db, scanProject, `SELECT `+projectColumns+` FROM projects WHERE parent_id = ? AND is_domain = ? ORDER BY name`, cur, false)
		if err != nil {
			return nil, fmt.Errorf("list child projects: %w", err)
		}
		for _, p := range children {
			if !seen[p.ID] {
				seen[p.ID] = true
				out = append(out, p)
				queue = append(queue, p.ID)
			}
		}
	}
	if err := s.loadProjectTags(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// listProjectRows lists projects or domains matching the query filters.
func (s *Service) listProjectRows(ctx context.Context, r *http.Request, domains bool) ([]*project, error) {
	q := r.URL.Query()
	where := []string{"is_domain = ?"}
	args := []any{domains}
	if isDomain, ok := queryBool(r, "is_domain"); domains || ok && isDomain {
		where[0] = "is_domain = ?"
		args[0] = true
		domains = true
	}
	if v := q.Get("name"); v != "" {
		where, args = append(where, "name = ?"), append(args, v)
	}
	if v := q.Get("domain_id"); v != "" && !domains {
		where, args = append(where, "domain_id = ?"), append(args, v)
	}
	if v := q.Get("parent_id"); v != "" {
		where, args = append(where, "parent_id = ?"), append(args, v)
	}
	if v, ok := queryBool(r, "enabled"); ok {
		where, args = append(where, "enabled = ?"), append(args, v)
	}
	out, err := store.QueryAll(ctx, s.db, scanProject, `SELECT `+projectColumns+` FROM projects WHERE `+strings.Join(where, " AND ")+` ORDER BY name, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	if err := s.loadProjectTags(ctx, out); err != nil {
		return nil, err
	}
	return filterByTags(out, q.Get("tags"), q.Get("tags-any"), q.Get("not-tags"), q.Get("not-tags-any")), nil
}

// filterByTags applies Keystone's tag filters: tags (all of), tags-any,
// not-tags (not all of), not-tags-any (none of).
func filterByTags(ps []*project, all, anyOf, notAll, notAny string) []*project {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	hasAll := func(p *project, want []string) bool {
		for _, w := range want {
			if !slices.Contains(p.Tags, w) {
				return false
			}
		}
		return true
	}
	hasAny := func(p *project, want []string) bool {
		for _, w := range want {
			if slices.Contains(p.Tags, w) {
				return true
			}
		}
		return false
	}
	var out []*project
	for _, p := range ps {
		if a := split(all); a != nil && !hasAll(p, a) {
			continue
		}
		if a := split(anyOf); a != nil && !hasAny(p, a) {
			continue
		}
		if a := split(notAll); a != nil && hasAll(p, a) {
			continue
		}
		if a := split(notAny); a != nil && hasAny(p, a) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func (s *Service) listDomains(r *http.Request) (*api.Response, error) {
	ps, err := s.listProjectRows(r.Context(), r, true)
	if err != nil {
		return nil, err
	}
	caller := api.Caller(r)
	out := []any{}
	for _, p := range ps {
		// A domain-scoped reader sees only their own domain.
		if ok, _ := s.allow(r, "identity:list_domains", nil); !ok {
			if caller == nil || caller.DomainID != p.ID {
				continue
			}
		}
		out = append(out, s.projectJSON(r, p))
	}
	if ok, _ := s.allow(r, "identity:list_domains", nil); !ok && len(out) == 0 {
		return nil, api.Forbidden("You are not authorized to perform the requested action: identity:list_domains.")
	}
	return api.JSON(http.StatusOK, s.listBody(r, "domains", out)), nil
}

func (s *Service) listProjects(r *http.Request) (*api.Response, error) {
	ps, err := s.listProjectRows(r.Context(), r, false)
	if err != nil {
		return nil, err
	}
	return listResponse(s, r, "projects", ps, s.projectListingJSON), nil
}

// allow evaluates a policy action without failing the request.
func (s *Service) allow(r *http.Request, action string, target map[string]any) (bool, error) {
	if s.api.Policy == nil {
		return true, nil
	}
	return s.api.Policy.Allow(action, target, api.Caller(r))
}

func (s *Service) updateDomain(r *http.Request) (*api.Response, error) {
	return s.updateProjectOrDomain(r, r.PathValue("domain_id"), true)
}

func (s *Service) updateProject(r *http.Request) (*api.Response, error) {
	return s.updateProjectOrDomain(r, r.PathValue("project_id"), false)
}

func (s *Service) updateProjectOrDomain(r *http.Request, id string, domain bool) (*api.Response, error) {
	ctx := r.Context()
	kind := "project"
	if domain {
		kind = "domain"
	}
	var b projectBody
	extra, err := readEnvelope(r, kind, &b, false)
	if err != nil {
		return nil, err
	}
	p, err := s.getProject(ctx, s.db, id)
	// A domain may be updated through /v3/projects too, not the reverse.
	if errors.Is(err, store.ErrNotFound) || err == nil && domain && !p.IsDomain {
		return nil, s.projectNotFound(kind, id)
	}
	if err != nil {
		return nil, err
	}
	if b.DomainID.Set && b.DomainID.Value != p.DomainID && !p.IsDomain {
		return nil, api.BadRequest("Update of `domain_id` is not allowed.")
	}
	if b.IsDomain.Set && b.IsDomain.Value != p.IsDomain {
		return nil, api.BadRequest("Update of `is_domain` is not allowed.")
	}
	if b.ParentID.Set && b.ParentID.Value != p.ParentID {
		return nil, api.Forbidden("Update of `parent_id` is not allowed.")
	}
	if b.Name.Set {
		if err := validName(kind, b.Name.Value); err != nil {
			return nil, err
		}
		p.Name = b.Name.Value
	}
	if b.Description.Set {
		p.Description = b.Description.Value
	}
	if b.Enabled.Set {
		if b.Enabled.Null {
			return nil, api.BadRequest("Invalid input for field '%s.enabled': None is not of type 'boolean'.", kind)
		}
		if p.ID == DefaultDomainID && !b.Enabled.Value {
			return nil, api.Forbidden("The default domain cannot be disabled.")
		}
		p.Enabled = b.Enabled.Value
	}
	if b.Tags.Set {
		if err := validTags(b.Tags.Value); err != nil {
			return nil, err
		}
		p.Tags = b.Tags.Value
		if p.Tags == nil {
			p.Tags = []string{}
		}
	}
	p.Extra = mergeExtra(p.Extra, extra)
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE projects SET name = ?, description = ?, enabled = ?, extra = ? WHERE id = ?`,
			p.Name, p.Description, p.Enabled, p.Extra, p.ID); err != nil {
			return err
		}
		if b.Tags.Set {
			return replaceTags(ctx, tx, p.ID, p.Tags)
		}
		return nil
	})
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store %s - Duplicate entry found with name %s.", kind, p.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("update %s %s: %w", kind, id, err)
	}
	if b.Enabled.Set && !p.Enabled {
		// Disabling a project or domain revokes every token scoped to it.
		if err := s.recordRevocation(ctx, revocationEvent{ProjectID: p.ID, DomainID: domainIfDomain(p)}); err != nil {
			return nil, err
		}
	}
	s.changed()
	if domain {
		return api.JSON(http.StatusOK, map[string]any{"domain": s.projectJSON(r, p)}), nil
	}
	if p.IsDomain {
		return api.JSON(http.StatusOK, map[string]any{"project": s.domainAsProjectJSON(r, p)}), nil
	}
	return api.JSON(http.StatusOK, map[string]any{"project": s.projectJSON(r, p)}), nil
}

func domainIfDomain(p *project) string {
	if p.IsDomain {
		return p.ID
	}
	return ""
}

func (s *Service) deleteDomain(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	id := r.PathValue("domain_id")
	p, err := s.getDomain(ctx, s.db, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.projectNotFound("domain", id)
	}
	if err != nil {
		return nil, err
	}
	if p.Enabled {
		return nil, api.Forbidden("Cannot delete a domain that is enabled, please disable it first.")
	}
	// A domain takes its projects, users, groups, roles and their
	// assignments with it.
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		stmts := []string{
			`DELETE FROM assignments WHERE target_id IN (SELECT id FROM projects WHERE domain_id = ?)`,
			`DELETE FROM assignments WHERE actor_id IN (SELECT id FROM users WHERE domain_id = ?)`,
			`DELETE FROM assignments WHERE actor_id IN (SELECT id FROM groups WHERE domain_id = ?)`,
			`DELETE FROM assignments WHERE target_id = ?`,
			`DELETE FROM projects WHERE domain_id = ?`,
			`DELETE FROM users WHERE domain_id = ?`,
			`DELETE FROM groups WHERE domain_id = ?`,
			`DELETE FROM roles WHERE domain_id = ?`,
			`DELETE FROM projects WHERE id = ?`,
		}
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return err
			}
		}
		return s.deleteDomainExtras(ctx, tx, id)
	})
	if err != nil {
		return nil, fmt.Errorf("delete domain %s: %w", id, err)
	}
	s.changed()
	return api.NoContent(), nil
}

func (s *Service) deleteProject(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	id := r.PathValue("project_id")
	p, err := s.getProject(ctx, s.db, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.projectNotFound("project", id)
	}
	if err != nil {
		return nil, err
	}
	if err := s.api.Authorize(r, "identity:delete_project", map[string]any{"target": map[string]any{"project": map[string]any{"id": p.ID, "domain_id": p.DomainID}}}); err != nil {
		return nil, err
	}
	if p.IsDomain {
		if p.Enabled {
			return nil, api.Forbidden("Cannot delete a domain that is enabled, please disable it first.")
		}
		r.SetPathValue("domain_id", id)
		return s.deleteDomain(r)
	}
	var children int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM projects WHERE parent_id = ?`, id).Scan(&children); err != nil {
		return nil, err
	}
	if children > 0 {
		return nil, api.Forbidden("Cannot delete the project %s since it is not a leaf in the hierarchy. Use the cascade option if you want to delete a whole subtree.", id)
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := execAll(ctx, tx, id,
			`DELETE FROM assignments WHERE target_id = ?`,
			`DELETE FROM projects WHERE id = ?`,
		); err != nil {
			return err
		}
		return s.deleteProjectExtras(ctx, tx, id)
	})
	if err != nil {
		return nil, fmt.Errorf("delete project %s: %w", id, err)
	}
	if err := s.recordRevocation(ctx, revocationEvent{ProjectID: id}); err != nil {
		return nil, err
	}
	s.changed()
	return api.NoContent(), nil
}

// Project tags, /v3/projects/{id}/tags.

func (s *Service) loadProjectForTags(r *http.Request) (*project, error) {
	p, err := s.getProject(r.Context(), s.db, r.PathValue("project_id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.projectNotFound("project", r.PathValue("project_id"))
	}
	return p, err
}

func (s *Service) listProjectTags(r *http.Request) (*api.Response, error) {
	p, err := s.loadProjectForTags(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"tags": p.Tags, "links": s.selfLinks(r, r.URL.Path)}), nil
}

func (s *Service) replaceProjectTags(r *http.Request) (*api.Response, error) {
	p, err := s.loadProjectForTags(r)
	if err != nil {
		return nil, err
	}
	var b struct {
		Tags []string `json:"tags"`
	}
	if err := api.DecodeJSON(r, &b); err != nil {
		return nil, err
	}
	if err := validTags(b.Tags); err != nil {
		return nil, err
	}
	if b.Tags == nil {
		b.Tags = []string{}
	}
	if err := s.db.InTx(r.Context(), func(tx *store.Tx) error { return replaceTags(r.Context(), tx, p.ID, b.Tags) }); err != nil {
		return nil, err
	}
	s.changed()
	p.Tags = b.Tags
	return api.JSON(http.StatusOK, map[string]any{"tags": b.Tags, "links": s.selfLinks(r, r.URL.Path)}), nil
}

func (s *Service) deleteProjectTags(r *http.Request) (*api.Response, error) {
	p, err := s.loadProjectForTags(r)
	if err != nil {
		return nil, err
	}
	if err := s.db.InTx(r.Context(), func(tx *store.Tx) error { return replaceTags(r.Context(), tx, p.ID, nil) }); err != nil {
		return nil, err
	}
	s.changed()
	return api.NoContent(), nil
}

func (s *Service) checkProjectTag(r *http.Request) (*api.Response, error) {
	p, err := s.loadProjectForTags(r)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(p.Tags, r.PathValue("tag")) {
		return nil, api.NotFound("Tag %s not found on project %s.", r.PathValue("tag"), p.ID)
	}
	return api.NoContent(), nil
}

func (s *Service) addProjectTag(r *http.Request) (*api.Response, error) {
	p, err := s.loadProjectForTags(r)
	if err != nil {
		return nil, err
	}
	tag := r.PathValue("tag")
	if !slices.Contains(p.Tags, tag) {
		tags := append(slices.Clone(p.Tags), tag)
		if err := validTags(tags); err != nil {
			return nil, err
		}
		if _, err := s.db.Exec(r.Context(), `INSERT INTO project_tags (project_id, tag) VALUES (?, ?)`, p.ID, tag); err != nil && !store.IsConflict(err) {
			return nil, err
		}
		s.changed()
	}
	return api.JSON(http.StatusCreated, nil).WithHeader("Location", s.baseURL(r)+r.URL.Path), nil
}

func (s *Service) deleteProjectTag(r *http.Request) (*api.Response, error) {
	p, err := s.loadProjectForTags(r)
	if err != nil {
		return nil, err
	}
	return s.deleteOne(r.Context(), api.NotFound("Tag %s not found on project %s.", r.PathValue("tag"), p.ID),
		`DELETE FROM project_tags WHERE project_id = ? AND tag = ?`, p.ID, r.PathValue("tag"))
}
