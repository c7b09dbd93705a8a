package identity

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Unified limits: registered limits are a service's default for a
// resource (optionally per region); limits override them for one project
// or domain. Keystone only stores them; services enforce them through
// oslo.limit. The enforcement model is flat: the project hierarchy plays
// no part.

const maxLimit = 0x7FFFFFFF // the largest signed 32-bit integer, as Keystone's schema

func (s *Service) limitRoutes(rt *api.Router) {
	type R = api.Route
	rt.Handle(
		R{Method: http.MethodPost, Pattern: "/v3/registered_limits", Handler: s.createRegisteredLimits, Policy: "identity:create_registered_limits"},
		R{Method: http.MethodGet, Pattern: "/v3/registered_limits", Handler: s.listRegisteredLimits, Policy: "identity:list_registered_limits"},
		R{Method: http.MethodGet, Pattern: "/v3/registered_limits/{registered_limit_id}", Handler: s.showRegisteredLimit, Policy: "identity:get_registered_limit"},
		R{Method: http.MethodPatch, Pattern: "/v3/registered_limits/{registered_limit_id}", Handler: s.updateRegisteredLimit, Policy: "identity:update_registered_limit"},
		R{Method: http.MethodDelete, Pattern: "/v3/registered_limits/{registered_limit_id}", Handler: s.deleteRegisteredLimit, Policy: "identity:delete_registered_limit"},
		R{Method: http.MethodPost, Pattern: "/v3/limits", Handler: s.createLimits, Policy: "identity:create_limits"},
		R{Method: http.MethodGet, Pattern: "/v3/limits", Handler: s.listLimits, Policy: "identity:list_limits"},
		R{Method: http.MethodGet, Pattern: "/v3/limits/model", Handler: s.limitModel, Policy: "identity:get_limit_model"},
		R{Method: http.MethodGet, Pattern: "/v3/limits/{limit_id}", Handler: s.showLimit},
		R{Method: http.MethodPatch, Pattern: "/v3/limits/{limit_id}", Handler: s.updateLimit, Policy: "identity:update_limit"},
		R{Method: http.MethodDelete, Pattern: "/v3/limits/{limit_id}", Handler: s.deleteLimit, Policy: "identity:delete_limit"},
	)
}

// Body checking. Limit bodies are validated field by field, with the
// field's path in every message, as Keystone's JSON schemas do.

// jsonObject is a decoded JSON object whose numbers kept their text.
type jsonObject map[string]any

// readLimitBody reads {"<key>": <value>} with numbers as json.Number.
func readLimitBody(r *http.Request, key string) (any, error) {
	raw, err := readEnvelopeMember(r, key)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, api.BadRequest("Invalid input for field '%s': malformed JSON.", key)
	}
	return v, nil
}

// readLimitObject reads {"<key>": {...}}, the body of a limit update.
func readLimitObject(r *http.Request, key string) (jsonObject, error) {
	body, err := readLimitBody(r, key)
	if err != nil {
		return nil, err
	}
	it, ok := body.(map[string]any)
	if !ok {
		return nil, api.BadRequest("Invalid input for field '%s': expected object.", key)
	}
	return jsonObject(it), nil
}

func limitItems(v any, key string) ([]jsonObject, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, api.BadRequest("Invalid input for field '%s': expected array.", key)
	}
	if len(list) == 0 {
		return nil, api.BadRequest("Invalid input for field '%s': at least one item is required.", key)
	}
	out := make([]jsonObject, len(list))
	for i, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, api.BadRequest("Invalid input for field '%s[%d]': expected object.", key, i)
		}
		out[i] = m
	}
	return out, nil
}

// only refuses attributes the schema does not declare.
func (o jsonObject) only(path string, allowed ...string) error {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return api.BadRequest("Invalid input for field '%s': Additional properties are not allowed ('%s' was unexpected).", path, k)
		}
	}
	return nil
}

// str reads a string attribute; set reports presence, and a JSON null
// reads as unset when nullable.
func (o jsonObject) str(path, name string, required, nullable bool, maxLen int) (value string, set bool, err error) {
	v, ok := o[name]
	if !ok {
		if required {
			return "", false, api.BadRequest("Invalid input for field '%s.%s': '%s' is a required property.", path, name, name)
		}
		return "", false, nil
	}
	if v == nil {
		if nullable {
			return "", true, nil
		}
		return "", false, api.BadRequest("Invalid input for field '%s.%s': None is not of type 'string'.", path, name)
	}
	sv, ok := v.(string)
	if !ok {
		return "", false, api.BadRequest("Invalid input for field '%s.%s': expected string.", path, name)
	}
	if maxLen > 0 && (len([]rune(sv)) > maxLen || sv == "") {
		return "", false, api.BadRequest("Invalid input for field '%s.%s': must be 1 to %d characters.", path, name, maxLen)
	}
	return sv, true, nil
}

// description reads the optional, nullable description of a limit.
func (o jsonObject) description(path string) (value sql.NullString, set bool, err error) {
	v, set, err := o.str(path, "description", false, true, 0)
	if err != nil {
		return sql.NullString{}, false, err
	}
	return sql.NullString{String: v, Valid: set && o["description"] != nil}, set, nil
}

// limitValue reads a limit: an integer from -1 (unlimited) to maxLimit.
func (o jsonObject) limitValue(path, name string, required bool) (int64, bool, error) {
	v, ok := o[name]
	if !ok {
		if required {
			return 0, false, api.BadRequest("Invalid input for field '%s.%s': '%s' is a required property.", path, name, name)
		}
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	i, err := n.Int64()
	if !isNum || err != nil {
		return 0, false, api.BadRequest("Invalid input for field '%s.%s': expected integer.", path, name)
	}
	if i < -1 || i > maxLimit {
		return 0, false, api.BadRequest("Invalid input for field '%s.%s': %d is not between -1 and %d.", path, name, i, maxLimit)
	}
	return i, true, nil
}

// Registered limits.

type registeredLimit struct {
	ID, ServiceID, RegionID, ResourceName string
	DefaultLimit                          int64
	Description                           sql.NullString
}

const registeredLimitColumns = `id, service_id, region_id, resource_name, default_limit, description`

func scanRegisteredLimit(row store.Scanner) (*registeredLimit, error) {
	l := &registeredLimit{}
	return l, row.Scan(&l.ID, &l.ServiceID, &l.RegionID, &l.ResourceName, &l.DefaultLimit, &l.Description)
}

func (s *Service) getRegisteredLimit(ctx context.Context, q store.Querier, id string) (*registeredLimit, error) {
	l, err := store.QueryOne(ctx, q, scanRegisteredLimit, `SELECT `+registeredLimitColumns+` FROM registered_limits WHERE id = ?`, id)
	return l, err
}

func nullString(n sql.NullString) any {
	if n.Valid {
		return n.String
	}
	return nil
}

func (s *Service) registeredLimitJSON(r *http.Request, l *registeredLimit) map[string]any {
	return map[string]any{"id": l.ID, "service_id": l.ServiceID, "region_id": nullable(l.RegionID),
		"resource_name": l.ResourceName, "default_limit": l.DefaultLimit, "description": nullString(l.Description),
		"links": s.selfLinks(r, "/v3/registered_limits/"+l.ID)}
}

// checkLimitRefs checks that a limit's service and region exist.
func (s *Service) checkLimitRefs(ctx context.Context, path, serviceID, regionID string) error {
	if _, err := s.getService(ctx, serviceID); errors.Is(err, store.ErrNotFound) {
		return api.BadRequest("Invalid input for field '%s.service_id': could not find service: %s.", path, serviceID)
	} else if err != nil {
		return err
	}
	if regionID != "" {
		if _, err := s.getRegion(ctx, regionID); errors.Is(err, store.ErrNotFound) {
			return api.BadRequest("Invalid input for field '%s.region_id': could not find region: %s.", path, regionID)
		} else if err != nil {
			return err
		}
	}
	return nil
}

func duplicateLimit(kind string) error {
	return api.Conflict("Conflict occurred attempting to store %s - Duplicate entry.", kind)
}

func (s *Service) createRegisteredLimits(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	body, err := readLimitBody(r, "registered_limits")
	if err != nil {
		return nil, err
	}
	items, err := limitItems(body, "registered_limits")
	if err != nil {
		return nil, err
	}
	var limits []*registeredLimit
	for i, it := range items {
		path := fmt.Sprintf("registered_limits[%d]", i)
		if err := it.only(path, "service_id", "region_id", "resource_name", "default_limit", "description"); err != nil {
			return nil, err
		}
		l := &registeredLimit{ID: newID()}
		if l.ServiceID, _, err = it.str(path, "service_id", true, false, 64); err != nil {
			return nil, err
		}
		if l.RegionID, _, err = it.str(path, "region_id", false, true, 255); err != nil {
			return nil, err
		}
		if l.ResourceName, _, err = it.str(path, "resource_name", true, false, 255); err != nil {
			return nil, err
		}
		if l.DefaultLimit, _, err = it.limitValue(path, "default_limit", true); err != nil {
			return nil, err
		}
		if l.Description, _, err = it.description(path); err != nil {
			return nil, err
		}
		if err := s.checkLimitRefs(ctx, path, l.ServiceID, l.RegionID); err != nil {
			return nil, err
		}
		limits = append(limits, l)
	}
	return storeLimits(s, r, "registered_limit", limits, func(ctx context.Context, tx *store.Tx, l *registeredLimit) error {
		_, err := tx.Exec(ctx, `INSERT INTO registered_limits (id, service_id, region_id, resource_name, default_limit, description) VALUES (?, ?, ?, ?, ?, ?)`,
			l.ID, l.ServiceID, l.RegionID, l.ResourceName, l.DefaultLimit, l.Description)
		return err
	}, s.registeredLimitJSON)
}

// storeLimits inserts a create call's limits (or registered limits) in one
// transaction and answers 201 with them, under kind+"s"; a duplicate is a
// 409 and nothing is stored.
func storeLimits[T any](s *Service, r *http.Request, kind string, limits []T,
	insert func(context.Context, *store.Tx, T) error, render func(*http.Request, T) map[string]any) (*api.Response, error) {
	ctx := r.Context()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, l := range limits {
			if err := insert(ctx, tx, l); err != nil {
				return err
			}
		}
		return nil
	})
	if store.IsConflict(err) {
		return nil, duplicateLimit(kind)
	}
	if err != nil {
		return nil, fmt.Errorf("create %ss: %w", strings.ReplaceAll(kind, "_", " "), err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{kind + "s": renderAll(r, limits, render)}), nil
}

func (s *Service) listRegisteredLimits(r *http.Request) (*api.Response, error) {
	where, args := []string{"1 = 1"}, []any{}
	q := r.URL.Query()
	for _, f := range []string{"service_id", "region_id", "resource_name"} {
		if q.Has(f) {
			where, args = append(where, f+" = ?"), append(args, q.Get(f))
		}
	}
	limits, err := store.QueryAll(r.Context(), s.db, scanRegisteredLimit, `SELECT `+registeredLimitColumns+` FROM registered_limits WHERE `+strings.Join(where, " AND ")+` ORDER BY service_id, region_id, resource_name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list registered limits: %w", err)
	}
	return listResponse(s, r, "registered_limits", limits, s.registeredLimitJSON), nil
}

func (s *Service) loadRegisteredLimit(r *http.Request) (*registeredLimit, error) {
	id := r.PathValue("registered_limit_id")
	l, err := s.getRegisteredLimit(r.Context(), s.db, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find registered limit for %s.", id)
	}
	return l, err
}

func (s *Service) showRegisteredLimit(r *http.Request) (*api.Response, error) {
	l, err := s.loadRegisteredLimit(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"registered_limit": s.registeredLimitJSON(r, l)}), nil
}

// registeredLimitInUse refuses changes to a registered limit that project
// or domain limits refer to, as Keystone does.
func (s *Service) registeredLimitInUse(ctx context.Context, id string) error {
	var n int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM unified_limits WHERE registered_limit_id = ?`, id).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return api.Forbidden("Unable to update or delete registered limit %s because there are project limits associated with it.", id)
	}
	return nil
}

func (s *Service) updateRegisteredLimit(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	path := "registered_limit"
	obj, err := readLimitObject(r, path)
	if err != nil {
		return nil, err
	}
	if err := obj.only(path, "service_id", "region_id", "resource_name", "default_limit", "description"); err != nil {
		return nil, err
	}
	l, err := s.loadRegisteredLimit(r)
	if err != nil {
		return nil, err
	}
	if v, set, err := obj.str(path, "service_id", false, false, 64); err != nil {
		return nil, err
	} else if set {
		l.ServiceID = v
	}
	if v, set, err := obj.str(path, "region_id", false, true, 255); err != nil {
		return nil, err
	} else if set {
		l.RegionID = v
	}
	if v, set, err := obj.str(path, "resource_name", false, false, 255); err != nil {
		return nil, err
	} else if set {
		l.ResourceName = v
	}
	if v, set, err := obj.limitValue(path, "default_limit", false); err != nil {
		return nil, err
	} else if set {
		l.DefaultLimit = v
	}
	if v, set, err := obj.description(path); err != nil {
		return nil, err
	} else if set {
		l.Description = v
	}
	if err := s.checkLimitRefs(ctx, path, l.ServiceID, l.RegionID); err != nil {
		return nil, err
	}
	if err := s.registeredLimitInUse(ctx, l.ID); err != nil {
		return nil, err
	}
	_, err = s.db.Exec(ctx, `UPDATE registered_limits SET service_id = ?, region_id = ?, resource_name = ?, default_limit = ?, description = ? WHERE id = ?`,
		l.ServiceID, l.RegionID, l.ResourceName, l.DefaultLimit, l.Description, l.ID)
	if store.IsConflict(err) {
		return nil, duplicateLimit("registered_limit")
	}
	if err != nil {
		return nil, fmt.Errorf("update registered limit %s: %w", l.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"registered_limit": s.registeredLimitJSON(r, l)}), nil
}

func (s *Service) deleteRegisteredLimit(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	l, err := s.loadRegisteredLimit(r)
	if err != nil {
		return nil, err
	}
	if err := s.registeredLimitInUse(ctx, l.ID); err != nil {
		return nil, err
	}
	_, err = s.db.Exec(ctx, `DELETE FROM registered_limits WHERE id = ?`, l.ID)
	if store.IsConflict(err) {
		// A limit referring to it was created meanwhile.
		return nil, api.Forbidden("Unable to update or delete registered limit %s because there are project limits associated with it.", l.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("delete registered limit %s: %w", l.ID, err)
	}
	s.changed()
	return api.NoContent(), nil
}

// Project and domain limits.

type limit struct {
	ID, ProjectID, DomainID   string
	ServiceID, RegionID, Name string // from the registered limit
	RegisteredLimitID         string
	ResourceLimit             int64
	Description               sql.NullString
}

const limitColumns = `l.id, COALESCE(l.project_id, ''), COALESCE(l.domain_id, ''), rl.service_id, rl.region_id, rl.resource_name,
	l.registered_limit_id, l.resource_limit, l.description`

const limitFrom = ` FROM unified_limits l JOIN registered_limits rl ON rl.id = l.registered_limit_id`

func scanLimit(row store.Scanner) (*limit, error) {
	l := &limit{}
	return l, row.Scan(&l.ID, &l.ProjectID, &l.DomainID, &l.ServiceID, &l.RegionID, &l.Name, &l.RegisteredLimitID, &l.ResourceLimit, &l.Description)
}

func (s *Service) getLimit(ctx context.Context, id string) (*limit, error) {
	l, err := store.QueryOne(ctx, s.db, scanLimit, `SELECT `+limitColumns+limitFrom+` WHERE l.id = ?`, id)
	return l, err
}

func (s *Service) limitJSON(r *http.Request, l *limit) map[string]any {
	return map[string]any{"id": l.ID, "project_id": nullable(l.ProjectID), "domain_id": nullable(l.DomainID),
		"service_id": l.ServiceID, "region_id": nullable(l.RegionID), "resource_name": l.Name,
		"resource_limit": l.ResourceLimit, "description": nullString(l.Description),
		"links": s.selfLinks(r, "/v3/limits/"+l.ID)}
}

func (s *Service) createLimits(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	body, err := readLimitBody(r, "limits")
	if err != nil {
		return nil, err
	}
	items, err := limitItems(body, "limits")
	if err != nil {
		return nil, err
	}
	var limits []*limit
	for i, it := range items {
		path := fmt.Sprintf("limits[%d]", i)
		l := &limit{ID: newID()}
		if err := it.only(path, "project_id", "domain_id", "service_id", "region_id", "resource_name", "resource_limit", "description"); err != nil {
			return nil, err
		}
		_, hasProject := it["project_id"]
		_, hasDomain := it["domain_id"]
		if hasProject == hasDomain {
			return nil, api.BadRequest("Invalid input for field '%s': exactly one of 'project_id' or 'domain_id' is required.", path)
		}
		if l.ProjectID, _, err = it.str(path, "project_id", hasProject, false, 64); err != nil {
			return nil, err
		}
		if l.DomainID, _, err = it.str(path, "domain_id", hasDomain, false, 64); err != nil {
			return nil, err
		}
		if l.ServiceID, _, err = it.str(path, "service_id", true, false, 64); err != nil {
			return nil, err
		}
		if l.RegionID, _, err = it.str(path, "region_id", false, false, 255); err != nil {
			return nil, err
		}
		if l.Name, _, err = it.str(path, "resource_name", true, false, 255); err != nil {
			return nil, err
		}
		if l.ResourceLimit, _, err = it.limitValue(path, "resource_limit", true); err != nil {
			return nil, err
		}
		if l.Description, _, err = it.description(path); err != nil {
			return nil, err
		}
		if err := s.checkLimitRefs(ctx, path, l.ServiceID, l.RegionID); err != nil {
			return nil, err
		}
		if err := s.checkLimitOwner(ctx, path, l); err != nil {
			return nil, err
		}
		err = s.db.QueryRow(ctx, `SELECT id FROM registered_limits WHERE service_id = ? AND region_id = ? AND resource_name = ?`,
			l.ServiceID, l.RegionID, l.Name).Scan(&l.RegisteredLimitID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, api.Forbidden("Unable to create a limit that has no corresponding registered limit.")
		}
		if err != nil {
			return nil, err
		}
		limits = append(limits, l)
	}
	return storeLimits(s, r, "limit", limits, func(ctx context.Context, tx *store.Tx, l *limit) error {
		owner := l.ProjectID + l.DomainID
		_, err := tx.Exec(ctx, `INSERT INTO unified_limits (id, registered_limit_id, project_id, domain_id, owner_id, resource_limit, description) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			l.ID, l.RegisteredLimitID, nullable(l.ProjectID), nullable(l.DomainID), owner, l.ResourceLimit, l.Description)
		return err
	}, s.limitJSON)
}

// checkLimitOwner checks the project or domain of a limit exists. A
// project id that names a domain makes a domain limit, as in Keystone.
func (s *Service) checkLimitOwner(ctx context.Context, path string, l *limit) error {
	if l.ProjectID != "" {
		p, err := s.getProject(ctx, s.db, l.ProjectID)
		if errors.Is(err, store.ErrNotFound) {
			return api.BadRequest("Invalid input for field '%s.project_id': could not find project: %s.", path, l.ProjectID)
		}
		if err != nil {
			return err
		}
		if p.IsDomain {
			l.DomainID, l.ProjectID = l.ProjectID, ""
		}
		return nil
	}
	if _, err := s.getDomain(ctx, s.db, l.DomainID); errors.Is(err, store.ErrNotFound) {
		return api.BadRequest("Invalid input for field '%s.domain_id': could not find domain: %s.", path, l.DomainID)
	} else if err != nil {
		return err
	}
	return nil
}

// listLimits shows what the caller's scope covers: everything to admins
// and system-scoped callers, a domain's limits and its projects' to a
// domain-scoped caller, and the project's own to a project-scoped one.
func (s *Service) listLimits(r *http.Request) (*api.Response, error) {
	where, args := []string{"1 = 1"}, []any{}
	q := r.URL.Query()
	for _, f := range []struct{ param, col string }{
		{"service_id", "rl.service_id"}, {"region_id", "rl.region_id"}, {"resource_name", "rl.resource_name"},
		{"project_id", "l.project_id"}, {"domain_id", "l.domain_id"},
	} {
		if q.Has(f.param) {
			where, args = append(where, f.col+" = ?"), append(args, q.Get(f.param))
		}
	}
	c := api.Caller(r)
	admin, err := s.allow(r, "admin_required", map[string]any{})
	if err != nil {
		return nil, err
	}
	switch {
	case c == nil:
		where = append(where, "1 = 0")
	case c.System || admin:
	case c.DomainID != "":
		where = append(where, "(l.domain_id = ? OR l.project_id IN (SELECT id FROM projects WHERE domain_id = ?))")
		args = append(args, c.DomainID, c.DomainID)
	case c.ProjectID != "":
		where, args = append(where, "l.project_id = ?"), append(args, c.ProjectID)
	default:
		where = append(where, "1 = 0")
	}
	limits, err := store.QueryAll(r.Context(), s.db, scanLimit, `SELECT `+limitColumns+limitFrom+` WHERE `+strings.Join(where, " AND ")+` ORDER BY l.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list limits: %w", err)
	}
	return listResponse(s, r, "limits", limits, s.limitJSON), nil
}

func limitTarget(l *limit) map[string]any {
	if l == nil {
		return map[string]any{"target": map[string]any{"limit": map[string]any{}}}
	}
	t := map[string]any{"id": l.ID, "project_id": l.ProjectID, "domain_id": l.DomainID}
	if l.ProjectID != "" {
		t["project"] = map[string]any{"id": l.ProjectID}
	}
	if l.DomainID != "" {
		t["domain"] = map[string]any{"id": l.DomainID}
	}
	return map[string]any{"target": map[string]any{"limit": t}}
}

func (s *Service) loadLimit(r *http.Request, action string) (*limit, error) {
	id := r.PathValue("limit_id")
	l, err := s.getLimit(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		if err := s.api.Authorize(r, action, limitTarget(nil)); err != nil {
			return nil, err
		}
		return nil, api.NotFound("Could not find limit for %s.", id)
	}
	if err != nil {
		return nil, err
	}
	if err := s.api.Authorize(r, action, limitTarget(l)); err != nil {
		return nil, err
	}
	return l, nil
}

func (s *Service) showLimit(r *http.Request) (*api.Response, error) {
	l, err := s.loadLimit(r, "identity:get_limit")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"limit": s.limitJSON(r, l)}), nil
}

func (s *Service) updateLimit(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	path := "limit"
	obj, err := readLimitObject(r, path)
	if err != nil {
		return nil, err
	}
	if err := obj.only(path, "resource_limit", "description"); err != nil {
		return nil, err
	}
	l, err := s.loadLimit(r, "identity:update_limit")
	if err != nil {
		return nil, err
	}
	if v, set, err := obj.limitValue(path, "resource_limit", false); err != nil {
		return nil, err
	} else if set {
		l.ResourceLimit = v
	}
	if v, set, err := obj.description(path); err != nil {
		return nil, err
	} else if set {
		l.Description = v
	}
	if _, err := s.db.Exec(ctx, `UPDATE unified_limits SET resource_limit = ?, description = ? WHERE id = ?`, l.ResourceLimit, l.Description, l.ID); err != nil {
		return nil, fmt.Errorf("update limit %s: %w", l.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"limit": s.limitJSON(r, l)}), nil
}

func (s *Service) deleteLimit(r *http.Request) (*api.Response, error) {
	l, err := s.loadLimit(r, "identity:delete_limit")
	if err != nil {
		return nil, err
	}
	return s.deleteResource(r.Context(), "limit", l.ID, `DELETE FROM unified_limits WHERE id = ?`)
}

func (s *Service) limitModel(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, map[string]any{"model": map[string]any{
		"name":        "flat",
		"description": "Limit enforcement and validation does not take project hierarchy into consideration.",
	}}), nil
}
