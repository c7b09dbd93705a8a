package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Group types (3.11) describe generic volume groups by their
// group_specs, as volume types describe volumes. Admins manage them;
// others see the public ones. No default group type is configured
// (Cinder's default_group_type is unset by default), so
// /group_types/default is a 404.

type groupType struct {
	ID          string
	Name        string
	Description *string
	IsPublic    bool
	Specs       map[string]string
}

const groupTypeCols = `id, name, description, is_public, group_specs`

func scanGroupType(row store.Scanner) (*groupType, error) {
	var g groupType
	var pub int
	var specs string
	if err := row.Scan(&g.ID, &g.Name, &g.Description, &pub, &specs); err != nil {
		return nil, err
	}
	g.IsPublic, g.Specs = pub == 1, map[string]string{}
	_ = json.Unmarshal([]byte(specs), &g.Specs)
	return &g, nil
}

func (g *groupType) view() map[string]any {
	return map[string]any{"id": g.ID, "name": g.Name, "description": g.Description, "is_public": g.IsPublic, "group_specs": g.Specs}
}

// findGroupType looks a group type up by id; a private one is visible
// to admins only.
func findGroupType(ctx context.Context, q store.Querier, c caller, id string) (*groupType, error) {
	g, err := store.QueryOne(ctx, q, scanGroupType, `SELECT `+groupTypeCols+` FROM volume_group_types WHERE id = ?`, id)
	if err == store.ErrNotFound || (err == nil && !g.IsPublic && !c.admin) {
		return nil, api.NotFound("Group type with id %s could not be found.", id)
	}
	if err != nil {
		return nil, fmt.Errorf("load group type %s: %w", id, err)
	}
	return g, nil
}

// listGroupTypes: the public types; admins may ask for is_public=false
// or is_public=none (all), as with volume types.
func (s *Service) listGroupTypes(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	where, args := "is_public = 1", []any{}
	if c.admin {
		switch strings.ToLower(r.URL.Query().Get("is_public")) {
		case "none":
			where = "1 = 1"
		case "false", "0", "f", "no", "n", "off":
			where = "is_public = 0"
		}
	}
	rows, err := store.QueryAll(r.Context(), s.db, scanGroupType, `SELECT `+groupTypeCols+` FROM volume_group_types WHERE `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list group types: %w", err)
	}
	out := make([]any, 0, len(rows))
	for _, g := range rows {
		out = append(out, g.view())
	}
	return api.JSON(http.StatusOK, map[string]any{"group_types": out}), nil
}

func (s *Service) showGroupType(r *http.Request) (*api.Response, error) {
	id := r.PathValue("group_type_id")
	if id == "default" {
		return nil, api.NotFound("Default group type can not be found.")
	}
	g, err := findGroupType(r.Context(), s.db, s.caller(r), id)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"group_type": g.view()}), nil
}

type groupTypeBody struct {
	GroupType *struct {
		Name        api.Optional[string]         `json:"name"`
		Description api.Optional[string]         `json:"description"`
		IsPublic    api.Optional[any]            `json:"is_public"`
		GroupSpecs  api.Optional[map[string]any] `json:"group_specs"`
	} `json:"group_type"`
}

// strictBool is oslo's bool_from_string(strict=True) over JSON values.
func strictBool(field string, v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "1", "t", "on", "y", "yes":
			return true, nil
		case "false", "0", "f", "off", "n", "no":
			return false, nil
		}
	}
	return false, api.BadRequest("Invalid input received: %s must be a boolean, not %v.", field, v)
}

func (s *Service) createGroupType(r *http.Request) (*api.Response, error) {
	var body groupTypeBody
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	b := body.GroupType
	if b == nil {
		return nil, api.BadRequest("Missing required element 'group_type' in request body.")
	}
	if !b.Name.Set || b.Name.Null || strings.TrimSpace(b.Name.Value) == "" || len(b.Name.Value) > 255 {
		return nil, api.BadRequest("Group type name can not be empty and must be at most 255 characters.")
	}
	g := groupType{ID: newID(), Name: strings.TrimSpace(b.Name.Value), IsPublic: true, Specs: map[string]string{}}
	if b.Description.Set && !b.Description.Null {
		d := b.Description.Value
		g.Description = &d
	}
	if b.IsPublic.Set && !b.IsPublic.Null {
		var err error
		if g.IsPublic, err = strictBool("is_public", b.IsPublic.Value); err != nil {
			return nil, err
		}
	}
	if b.GroupSpecs.Set && !b.GroupSpecs.Null {
		specs, err := specsFromBody(b.GroupSpecs.Value)
		if err != nil {
			return nil, err
		}
		g.Specs = specs
	}
	_, err := s.db.Exec(r.Context(), `INSERT INTO volume_group_types (id, name, description, is_public, group_specs, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		g.ID, g.Name, g.Description, boolInt(g.IsPublic), jsonText(g.Specs), store.FormatTime(now()))
	if store.IsConflict(err) {
		return nil, api.Conflict("Group Type %s already exists.", g.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("create group type: %w", err)
	}
	return api.JSON(http.StatusAccepted, map[string]any{"group_type": g.view()}), nil
}

func (s *Service) updateGroupType(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var body groupTypeBody
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	b := body.GroupType
	if b == nil {
		return nil, api.BadRequest("Missing required element 'group_type' in request body.")
	}
	if b.GroupSpecs.Set {
		return nil, api.BadRequest("Invalid input received: group_specs are changed through /group_specs.")
	}
	if b.Name.Set && (b.Name.Null || strings.TrimSpace(b.Name.Value) == "" || len(b.Name.Value) > 255) {
		return nil, api.BadRequest("Group type name can not be empty.")
	}
	if (!b.Name.Set || b.Name.Null) && (!b.Description.Set) && (!b.IsPublic.Set || b.IsPublic.Null) {
		return nil, api.BadRequest("Specify group type name, description or a combination thereof.")
	}
	var g *groupType
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if g, err = findGroupType(ctx, tx, caller{admin: true}, r.PathValue("group_type_id")); err != nil {
			return err
		}
		if b.Name.Set {
			g.Name = strings.TrimSpace(b.Name.Value)
		}
		if b.Description.Set {
			g.Description = nil
			if !b.Description.Null {
				d := b.Description.Value
				g.Description = &d
			}
		}
		if b.IsPublic.Set && !b.IsPublic.Null {
			if g.IsPublic, err = strictBool("is_public", b.IsPublic.Value); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE volume_group_types SET name = ?, description = ?, is_public = ? WHERE id = ?`,
			g.Name, g.Description, boolInt(g.IsPublic), g.ID)
		if store.IsConflict(err) {
			return api.Conflict("Group Type %s already exists.", g.Name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"group_type": g.view()}), nil
}

// deleteGroupType refuses a type a group still uses.
func (s *Service) deleteGroupType(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		g, err := findGroupType(ctx, tx, caller{admin: true}, r.PathValue("group_type_id"))
		if err != nil {
			return err
		}
		// Cinder refuses a type a group still uses ("Target group type
		// is still in use."); Nimbus has no generic volume groups yet
		// (3.13), so no group can.
		_, err = tx.Exec(ctx, `DELETE FROM volume_group_types WHERE id = ?`, g.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

func (s *Service) saveGroupSpecs(ctx context.Context, id string, change func(map[string]string) error) error {
	return s.writeTx(ctx, func(tx *store.Tx) error {
		g, err := findGroupType(ctx, tx, caller{admin: true}, id)
		if err != nil {
			return err
		}
		if err := change(g.Specs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE volume_group_types SET group_specs = ? WHERE id = ?`, jsonText(g.Specs), g.ID)
		return err
	})
}

func (s *Service) listGroupSpecs(r *http.Request) (*api.Response, error) {
	g, err := findGroupType(r.Context(), s.db, caller{admin: true}, r.PathValue("group_type_id"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"group_specs": g.Specs}), nil
}

func (s *Service) createGroupSpecs(r *http.Request) (*api.Response, error) {
	var body struct {
		GroupSpecs map[string]any `json:"group_specs"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.GroupSpecs == nil {
		return nil, api.BadRequest("Missing required element 'group_specs' in request body.")
	}
	in, err := specsFromBody(body.GroupSpecs)
	if err != nil {
		return nil, err
	}
	if err := s.saveGroupSpecs(r.Context(), r.PathValue("group_type_id"), func(m map[string]string) error {
		for k, v := range in {
			m[k] = v
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusAccepted, map[string]any{"group_specs": in}), nil
}

func (s *Service) showGroupSpec(r *http.Request) (*api.Response, error) {
	g, err := findGroupType(r.Context(), s.db, caller{admin: true}, r.PathValue("group_type_id"))
	if err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	v, ok := g.Specs[key]
	if !ok {
		return nil, api.NotFound("Group Type %s has no extra spec with key %s.", g.ID, key)
	}
	return api.JSON(http.StatusOK, map[string]any{key: v}), nil
}

func (s *Service) updateGroupSpec(r *http.Request) (*api.Response, error) {
	key := r.PathValue("key")
	in, err := oneSpecFromBody(r, key)
	if err != nil {
		return nil, err
	}
	if err := s.saveGroupSpecs(r.Context(), r.PathValue("group_type_id"), func(m map[string]string) error {
		m[key] = in[key]
		return nil
	}); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{key: in[key]}), nil
}

func (s *Service) deleteGroupSpec(r *http.Request) (*api.Response, error) {
	key := r.PathValue("key")
	id := r.PathValue("group_type_id")
	if err := s.saveGroupSpecs(r.Context(), id, func(m map[string]string) error {
		if _, ok := m[key]; !ok {
			return api.NotFound("Group Type %s has no extra spec with key %s.", id, key)
		}
		delete(m, key)
		return nil
	}); err != nil {
		return nil, err
	}
	return accepted(), nil
}
