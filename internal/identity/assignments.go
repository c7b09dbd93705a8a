package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// systemTarget is the target id of system role assignments.
const systemTarget = "system"

// Assignment types, as Keystone names them.
const (
	userProject  = "UserProject"
	groupProject = "GroupProject"
	userDomain   = "UserDomain"
	groupDomain  = "GroupDomain"
	userSystem   = "UserSystem"
	groupSystem  = "GroupSystem"
)

type assignment struct {
	Type, ActorID, TargetID, RoleID string
	Inherited                       bool
}

func (a assignment) isUser() bool   { return strings.HasPrefix(a.Type, "User") }
func (a assignment) onSystem() bool { return strings.HasSuffix(a.Type, "System") }
func (a assignment) onDomain() bool { return strings.HasSuffix(a.Type, "Domain") }

// grantTarget describes one grant URL: who, on what, which role.
type grantTarget struct {
	typ       string
	actorID   string
	targetID  string
	roleID    string
	inherited bool
}

// resolveGrant checks that the actor, target and role in a grant URL exist.
func (s *Service) resolveGrant(r *http.Request, actor, target string, inherited bool) (grantTarget, error) {
	ctx := r.Context()
	g := grantTarget{inherited: inherited, roleID: r.PathValue("role_id")}
	switch actor {
	case "user":
		g.actorID = r.PathValue("user_id")
		if _, err := s.getUser(ctx, g.actorID); errors.Is(err, store.ErrNotFound) {
			return g, api.NotFound("Could not find user: %s.", g.actorID)
		} else if err != nil {
			return g, err
		}
	case "group":
		g.actorID = r.PathValue("group_id")
		if _, err := s.getGroup(ctx, g.actorID); errors.Is(err, store.ErrNotFound) {
			return g, api.NotFound("Could not find group: %s.", g.actorID)
		} else if err != nil {
			return g, err
		}
	}
	var targetDomain string
	switch target {
	case "project":
		g.targetID = r.PathValue("project_id")
		p, err := s.getProject(ctx, s.db, g.targetID)
		if errors.Is(err, store.ErrNotFound) {
			return g, api.NotFound("Could not find project: %s.", g.targetID)
		} else if err != nil {
			return g, err
		}
		targetDomain = p.DomainID
	case "domain":
		g.targetID = r.PathValue("domain_id")
		if _, err := s.getDomain(ctx, s.db, g.targetID); errors.Is(err, store.ErrNotFound) {
			return g, api.NotFound("Could not find domain: %s.", g.targetID)
		} else if err != nil {
			return g, err
		}
		targetDomain = g.targetID
	case "system":
		g.targetID = systemTarget
	}
	ro, err := s.getRole(ctx, g.roleID)
	if errors.Is(err, store.ErrNotFound) {
		return g, api.NotFound("Could not find role: %s.", g.roleID)
	} else if err != nil {
		return g, err
	}
	// A domain-specific role may only be granted within its domain.
	if ro.DomainID != "" && target != "system" && ro.DomainID != targetDomain {
		return g, api.Forbidden("Role %s is specific to domain %s and cannot be assigned outside it.", ro.ID, ro.DomainID)
	}
	if ro.DomainID != "" && target == "system" {
		return g, api.Forbidden("Domain-specific role %s cannot be assigned on the system.", ro.ID)
	}
	g.typ = assignmentType(actor, target)
	return g, nil
}

func assignmentType(actor, target string) string {
	a := map[string]string{"user": "User", "group": "Group"}[actor]
	t := map[string]string{"project": "Project", "domain": "Domain", "system": "System"}[target]
	return a + t
}

// grantHandlers returns PUT, HEAD/GET and DELETE handlers for one kind of
// grant URL, e.g. /v3/projects/{project_id}/users/{user_id}/roles/{role_id}.
func (s *Service) grantHandlers(actor, target string, inherited bool) (put, check, del api.HandlerFunc) {
	policyName := func(verb string) string {
		if inherited {
			return "identity:" + verb + "_grant"
		}
		if target == "system" {
			return fmt.Sprintf("identity:%s_system_grant_for_%s", verb, actor)
		}
		return "identity:" + verb + "_grant"
	}
	authorize := func(r *http.Request, verb string, g grantTarget) error {
		t := map[string]any{"role": map[string]any{"id": g.roleID}}
		t[target] = map[string]any{"id": g.targetID}
		t[actor] = map[string]any{"id": g.actorID}
		return s.api.Authorize(r, policyName(verb), map[string]any{"target": t, "project_id": r.PathValue("project_id"), "domain_id": r.PathValue("domain_id")})
	}
	notFound := func(g grantTarget) error {
		return api.NotFound("Could not find role assignment with role: %s, %s: %s, %s: %s.", g.roleID, actor, g.actorID, target, g.targetID)
	}
	// load resolves the URL's grant and checks the caller may verb it.
	load := func(r *http.Request, verb string) (grantTarget, error) {
		g, err := s.resolveGrant(r, actor, target, inherited)
		if err != nil {
			return g, err
		}
		return g, authorize(r, verb, g)
	}
	put = func(r *http.Request) (*api.Response, error) {
		g, err := load(r, "create")
		if err != nil {
			return nil, err
		}
		_, err = s.db.Exec(r.Context(), `INSERT INTO assignments (type, actor_id, target_id, role_id, inherited) VALUES (?, ?, ?, ?, ?)`,
			g.typ, g.actorID, g.targetID, g.roleID, g.inherited)
		if err != nil && !store.IsConflict(err) {
			return nil, fmt.Errorf("grant role: %w", err)
		}
		s.changed()
		return api.NoContent(), nil
	}
	check = func(r *http.Request) (*api.Response, error) {
		g, err := load(r, "check")
		if err != nil {
			return nil, err
		}
		if err := s.mustExist(r.Context(), notFound(g), `SELECT COUNT(*) FROM assignments WHERE type = ? AND actor_id = ? AND target_id = ? AND role_id = ? AND inherited = ?`,
			g.typ, g.actorID, g.targetID, g.roleID, g.inherited); err != nil {
			return nil, err
		}
		return api.NoContent(), nil
	}
	del = func(r *http.Request) (*api.Response, error) {
		g, err := load(r, "revoke")
		if err != nil {
			return nil, err
		}
		return s.deleteOne(r.Context(), notFound(g), `DELETE FROM assignments WHERE type = ? AND actor_id = ? AND target_id = ? AND role_id = ? AND inherited = ?`,
			g.typ, g.actorID, g.targetID, g.roleID, g.inherited)
	}
	return put, check, del
}

// listGrantsHandler lists the roles an actor holds directly on a target.
func (s *Service) listGrantsHandler(actor, target string, inherited bool) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		r.SetPathValue("role_id", "")
		g, err := s.resolveGrantNoRole(r, actor, target)
		if err != nil {
			return nil, err
		}
		return s.queryRoles(r, `SELECT `+roleColumns+` FROM roles WHERE id IN (SELECT role_id FROM assignments WHERE type = ? AND actor_id = ? AND target_id = ? AND inherited = ?) ORDER BY name`,
			assignmentType(actor, target), g.actorID, g.targetID, inherited)
	}
}

func (s *Service) resolveGrantNoRole(r *http.Request, actor, target string) (grantTarget, error) {
	ctx := r.Context()
	g := grantTarget{}
	switch actor {
	case "user":
		g.actorID = r.PathValue("user_id")
		if _, err := s.getUser(ctx, g.actorID); errors.Is(err, store.ErrNotFound) {
			return g, api.NotFound("Could not find user: %s.", g.actorID)
		}
	case "group":
		g.actorID = r.PathValue("group_id")
		if _, err := s.getGroup(ctx, g.actorID); errors.Is(err, store.ErrNotFound) {
			return g, api.NotFound("Could not find group: %s.", g.actorID)
		}
	}
	switch target {
	case "project":
		g.targetID = r.PathValue("project_id")
		if _, err := s.getProject(ctx, s.db, g.targetID); errors.Is(err, store.ErrNotFound) {
			return g, api.NotFound("Could not find project: %s.", g.targetID)
		}
	case "domain":
		g.targetID = r.PathValue("domain_id")
		if _, err := s.getDomain(ctx, s.db, g.targetID); errors.Is(err, store.ErrNotFound) {
			return g, api.NotFound("Could not find domain: %s.", g.targetID)
		}
	case "system":
		g.targetID = systemTarget
	}
	return g, nil
}

// loadAssignments returns assignments matching the optional filters.
func (s *Service) loadAssignments(ctx context.Context, where string, args ...any) ([]assignment, error) {
	q := `SELECT type, actor_id, target_id, role_id, inherited FROM assignments`
	if where != "" {
		q += ` WHERE ` + where
	}
	out, err := store.QueryAll(ctx, s.db, func(row store.Scanner) (a assignment, err error) {
		err = row.Scan(&a.Type, &a.ActorID, &a.TargetID, &a.RoleID, &a.Inherited)
		return a, err
	}, q+` ORDER BY type, actor_id, target_id, role_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("load assignments: %w", err)
	}
	return out, nil
}

// scopeRoles computes the roles a user effectively holds on a scope:
// direct grants, grants to their groups, grants inherited from the
// project's ancestors and domain, and everything those roles imply.
// Domain-specific roles are dropped at the end: they only ever confer the
// global roles they imply, as in Keystone.
func (s *Service) scopeRoles(ctx context.Context, userID string, sc scope) ([]string, error) {
	actors, err := s.userGroupIDs(ctx, userID)
	if err != nil {
		return nil, err
	}
	actors = append(actors, userID)
	ph := strings.TrimSuffix(strings.Repeat("?,", len(actors)), ",")
	args := make([]any, 0, len(actors)+4)
	for _, a := range actors {
		args = append(args, a)
	}
	var where string
	switch {
	case sc.System:
		where = `target_id = ? AND inherited = ?`
		args = append(args, systemTarget, false)
	case sc.DomainID != "":
		where = `target_id = ? AND inherited = ? AND type IN ('UserDomain', 'GroupDomain')`
		args = append(args, sc.DomainID, false)
	case sc.ProjectID != "":
		p, err := s.getProject(ctx, s.db, sc.ProjectID)
		if err != nil {
			return nil, err
		}
		ancestors, err := s.projectAncestors(ctx, p)
		if err != nil {
			return nil, err
		}
		inheritedFrom := []any{p.DomainID}
		for _, a := range ancestors {
			inheritedFrom = append(inheritedFrom, a.ID)
		}
		iph := strings.TrimSuffix(strings.Repeat("?,", len(inheritedFrom)), ",")
		where = `((target_id = ? AND inherited = ? AND type IN ('UserProject', 'GroupProject')) OR (target_id IN (` + iph + `) AND inherited = ?))`
		args = append(args, p.ID, false)
		args = append(args, inheritedFrom...)
		args = append(args, true)
	default:
		return nil, nil
	}
	as, err := s.loadAssignments(ctx, `actor_id IN (`+ph+`) AND `+where, args...)
	if err != nil {
		return nil, err
	}
	var direct []string
	for _, a := range as {
		if !slices.Contains(direct, a.RoleID) {
			direct = append(direct, a.RoleID)
		}
	}
	if len(direct) == 0 {
		return nil, nil
	}
	expand, err := s.roleExpander(ctx)
	if err != nil {
		return nil, err
	}
	return expand(direct), nil
}

// roleExpander returns a function that turns directly granted roles into
// the roles they confer: themselves and everything they imply, less
// domain-specific roles, which only ever confer the global roles they
// imply, as in Keystone.
func (s *Service) roleExpander(ctx context.Context) (func(roles []string) []string, error) {
	graph, err := s.impliedRoleGraph(ctx)
	if err != nil {
		return nil, err
	}
	local, err := s.domainSpecificRoles(ctx)
	if err != nil {
		return nil, err
	}
	return func(roles []string) []string {
		var out []string
		for _, id := range expandImplied(graph, roles) {
			if !local[id] {
				out = append(out, id)
			}
		}
		return out
	}, nil
}

// domainSpecificRoles returns the ids of roles that belong to a domain.
func (s *Service) domainSpecificRoles(ctx context.Context) (map[string]bool, error) {
	return cached(s, "domain-specific-roles", func() (map[string]bool, error) {
		list, err := store.QueryStrings(ctx, s.db, `SELECT id FROM roles WHERE domain_id <> ?`, globalRoleDomain)
		if err != nil {
			return nil, fmt.Errorf("list domain-specific roles: %w", err)
		}
		ids := map[string]bool{}
		for _, id := range list {
			ids[id] = true
		}
		return ids, nil
	})
}

// roleAssignmentsQuery is the parsed filter set of GET /v3/role_assignments.
type roleAssignmentsQuery struct {
	userID, groupID, roleID, projectID, domainID string
	system, inheritedOnly, effective, names      bool
	includeSubtree                               bool
}

func parseRoleAssignmentsQuery(r *http.Request) (roleAssignmentsQuery, error) {
	q := r.URL.Query()
	f := roleAssignmentsQuery{
		userID: q.Get("user.id"), groupID: q.Get("group.id"), roleID: q.Get("role.id"),
		projectID: q.Get("scope.project.id"), domainID: q.Get("scope.domain.id"),
		system:         q.Has("scope.system"),
		inheritedOnly:  q.Get("scope.OS-INHERIT:inherited_to") == "projects",
		effective:      q.Has("effective"),
		names:          q.Has("include_names") && q.Get("include_names") != "0" && !strings.EqualFold(q.Get("include_names"), "false"),
		includeSubtree: q.Has("include_subtree") && q.Get("include_subtree") != "0" && !strings.EqualFold(q.Get("include_subtree"), "false"),
	}
	if f.userID != "" && f.groupID != "" {
		return f, api.BadRequest("Specify a user or group, not both.")
	}
	if f.projectID != "" && f.domainID != "" {
		return f, api.BadRequest("Specify a project or domain, not both.")
	}
	if f.effective && f.groupID != "" {
		return f, api.BadRequest("Combining effective and group filter will always result in an empty list.")
	}
	if f.includeSubtree && f.projectID == "" {
		return f, api.BadRequest("scope.project.id must be specified if include_subtree is also specified.")
	}
	return f, nil
}

// expanded is one listed assignment, possibly derived from another.
type expanded struct {
	assignment
	inheritedTo string // "projects" when listed as an inherited assignment
	viaGroup    string // effective: the group it came through
	priorRole   string // effective: the role that implied it
	source      assignment
}

func (s *Service) listRoleAssignments(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	f, err := parseRoleAssignmentsQuery(r)
	if err != nil {
		return nil, err
	}
	all, err := s.loadAssignments(ctx, "")
	if err != nil {
		return nil, err
	}
	var list []expanded
	for _, a := range all {
		e := expanded{assignment: a, source: a}
		if a.Inherited {
			e.inheritedTo = "projects"
		}
		list = append(list, e)
	}
	if f.effective {
		if list, err = s.effectiveAssignments(ctx, list); err != nil {
			return nil, err
		}
	}
	var subtree map[string]bool
	if f.includeSubtree {
		subtree = map[string]bool{f.projectID: true}
		desc, err := s.projectDescendants(ctx, f.projectID)
		if err != nil {
			return nil, err
		}
		for _, d := range desc {
			subtree[d.ID] = true
		}
	}
	out := []any{}
	for _, e := range list {
		switch {
		case f.userID != "" && !(e.isUser() && e.ActorID == f.userID):
			continue
		case f.groupID != "" && !(!e.isUser() && e.ActorID == f.groupID):
			continue
		case f.roleID != "" && e.RoleID != f.roleID:
			continue
		case f.projectID != "" && subtree == nil && (e.onDomain() || e.onSystem() || e.TargetID != f.projectID):
			continue
		case subtree != nil && (e.onDomain() || e.onSystem() || !subtree[e.TargetID]):
			continue
		case f.domainID != "" && !(e.onDomain() && e.TargetID == f.domainID):
			continue
		case f.system && !e.onSystem():
			continue
		case f.inheritedOnly && e.inheritedTo == "":
			continue
		}
		out = append(out, s.assignmentJSON(r, e, f.names))
	}
	return api.JSON(http.StatusOK, s.listBody(r, "role_assignments", out)), nil
}

// effectiveAssignments expands group grants to the group's members,
// inherited grants to the projects below their target, and roles to the
// roles they imply; inherited grants themselves are not effective on their
// own target and drop out.
func (s *Service) effectiveAssignments(ctx context.Context, in []expanded) ([]expanded, error) {
	expand, err := s.roleExpander(ctx)
	if err != nil {
		return nil, err
	}
	members, err := s.queryMultimap(ctx, `SELECT group_id, user_id FROM group_members`)
	if err != nil {
		return nil, fmt.Errorf("load group members: %w", err)
	}
	var out []expanded
	add := func(e expanded) {
		for _, id := range expand([]string{e.RoleID}) {
			c := e
			if id != e.RoleID {
				c.priorRole = e.RoleID
				c.RoleID = id
			}
			out = append(out, c)
		}
	}
	for _, e := range in {
		targets := []expanded{e}
		if e.Inherited {
			targets = nil
			var below []*project
			if e.onDomain() {
				ps, err := s.domainProjects(ctx, e.TargetID)
				if err != nil {
					return nil, err
				}
				below = ps
			} else {
				ps, err := s.projectDescendants(ctx, e.TargetID)
				if err != nil {
					return nil, err
				}
				below = ps
			}
			for _, p := range below {
				c := e
				c.TargetID = p.ID
				c.Inherited = false
				c.inheritedTo = ""
				if e.isUser() {
					c.Type = userProject
				} else {
					c.Type = groupProject
				}
				targets = append(targets, c)
			}
		}
		for _, t := range targets {
			if t.isUser() {
				add(t)
				continue
			}
			for _, u := range members[t.ActorID] {
				c := t
				c.viaGroup = t.ActorID
				c.ActorID = u
				c.Type = "User" + strings.TrimPrefix(t.Type, "Group")
				add(c)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ActorID < out[j].ActorID })
	return out, nil
}

func (s *Service) domainProjects(ctx context.Context, domainID string) ([]*project, error) {
	out, err := store.QueryAll(ctx, s.db, scanProject, `SELECT `+projectColumns+` FROM projects WHERE domain_id = ? AND is_domain = ?`, domainID, false)
	if err != nil {
		return nil, fmt.Errorf("projects of domain %s: %w", domainID, err)
	}
	return out, nil
}

func (s *Service) assignmentJSON(r *http.Request, e expanded, names bool) map[string]any {
	ctx := r.Context()
	base := s.baseURL(r)
	src := e.source
	actorKind, actorPath := "user", "users"
	if !src.isUser() {
		actorKind, actorPath = "group", "groups"
	}
	targetKind, targetPath := "project", "projects"
	switch {
	case src.onDomain():
		targetKind, targetPath = "domain", "domains"
	case src.onSystem():
		targetKind = "system"
	}
	var link string
	switch {
	case src.onSystem():
		link = fmt.Sprintf("%s/v3/system/%s/%s/roles/%s", base, actorPath, src.ActorID, src.RoleID)
	case src.Inherited:
		link = fmt.Sprintf("%s/v3/OS-INHERIT/%s/%s/%s/%s/roles/%s/inherited_to_projects", base, targetPath, src.TargetID, actorPath, src.ActorID, src.RoleID)
	default:
		link = fmt.Sprintf("%s/v3/%s/%s/%s/%s/roles/%s", base, targetPath, src.TargetID, actorPath, src.ActorID, src.RoleID)
	}
	links := map[string]any{"assignment": link}
	if e.viaGroup != "" {
		links["membership"] = fmt.Sprintf("%s/v3/groups/%s/users/%s", base, e.viaGroup, e.ActorID)
	}
	if e.priorRole != "" {
		links["prior_role"] = base + "/v3/roles/" + e.priorRole
	}
	out := map[string]any{"links": links}

	roleObj := map[string]any{"id": e.RoleID}
	if names {
		if ro, err := s.getRole(ctx, e.RoleID); err == nil {
			roleObj["name"] = ro.Name
			if ro.DomainID != "" {
				roleObj["domain"] = s.domainRef(ctx, ro.DomainID)
			}
		}
	}
	out["role"] = roleObj

	actor := map[string]any{"id": e.ActorID}
	kind := actorKind
	if e.viaGroup != "" || e.isUser() {
		kind = "user"
	}
	if names {
		if kind == "user" {
			if u, err := s.getUser(ctx, e.ActorID); err == nil {
				actor["name"] = u.Name
				actor["domain"] = s.domainRef(ctx, u.DomainID)
			}
		} else if g, err := s.getGroup(ctx, e.ActorID); err == nil {
			actor["name"] = g.Name
			actor["domain"] = s.domainRef(ctx, g.DomainID)
		}
	}
	out[kind] = actor

	scope := map[string]any{}
	switch {
	case e.onSystem():
		scope["system"] = map[string]any{"all": true}
	default:
		t := map[string]any{"id": e.TargetID}
		if names {
			if p, err := s.getProject(ctx, s.db, e.TargetID); err == nil {
				t["name"] = p.Name
				if !p.IsDomain {
					t["domain"] = s.domainRef(ctx, p.DomainID)
				}
			}
		}
		k := targetKind
		if e.Type == userProject || e.Type == groupProject {
			k = "project"
		}
		scope[k] = t
	}
	if e.inheritedTo != "" {
		scope["OS-INHERIT:inherited_to"] = e.inheritedTo
	}
	out["scope"] = scope
	return out
}

func (s *Service) domainRef(ctx context.Context, id string) map[string]any {
	ref := map[string]any{"id": id}
	if d, err := s.getProject(ctx, s.db, id); err == nil {
		ref["name"] = d.Name
	}
	return ref
}
