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

// DefaultTypeName is the volume type of volumes that ask for none. Cinder
// creates it at install time and refuses to delete it; so does this
// service.
const DefaultTypeName = "__DEFAULT__"

// volumeType is a row of volume_types.
type volumeType struct {
	ID          string
	Name        string
	Description *string
	IsPublic    bool
	ExtraSpecs  map[string]string
}

const typeCols = `id, name, description, is_public, extra_specs`

func scanType(row store.Scanner) (*volumeType, error) {
	var t volumeType
	var desc *string
	var pub int
	var specs string
	if err := row.Scan(&t.ID, &t.Name, &desc, &pub, &specs); err != nil {
		return nil, err
	}
	t.Description, t.IsPublic = desc, pub == 1
	t.ExtraSpecs = map[string]string{}
	_ = json.Unmarshal([]byte(specs), &t.ExtraSpecs)
	return &t, nil
}

// Cinder's type bodies differ by call: show and list carry every key,
// create has no qos_specs_id, update neither that nor the access alias.
const (
	typeFull = iota
	typeCreated
	typeUpdated
)

func (t *volumeType) view(kind int) map[string]any {
	out := map[string]any{"id": t.ID, "name": t.Name, "description": t.Description, "is_public": t.IsPublic, "extra_specs": t.ExtraSpecs}
	if kind != typeUpdated {
		out["os-volume-type-access:is_public"] = t.IsPublic
	}
	if kind == typeFull {
		out["qos_specs_id"] = nil
	}
	return out
}

// ensureDefaultType creates __DEFAULT__ when missing; concurrent starters
// race harmlessly on the unique name.
func (s *Service) ensureDefaultType(ctx context.Context) error {
	_, err := s.db.Exec(ctx, `INSERT INTO volume_types (id, name, description, is_public, extra_specs, created_at)
		VALUES (?, ?, ?, 1, '{}', ?) ON CONFLICT (name) DO NOTHING`,
		newID(), DefaultTypeName, "Default Volume Type", store.FormatTime(now()))
	if err != nil {
		return fmt.Errorf("volume service: create default volume type: %w", err)
	}
	return nil
}

// findType resolves a type by id or name, as Cinder's volume_type
// parameter takes either; a private type is found only by admins and the
// projects it was shared with. Unknown is a 404.
func (s *Service) findType(ctx context.Context, q store.Querier, c caller, ref string) (*volumeType, error) {
	t, err := store.QueryOne(ctx, q, scanType, `SELECT `+typeCols+` FROM volume_types WHERE id = ?`, ref)
	if err == store.ErrNotFound {
		t, err = store.QueryOne(ctx, q, scanType, `SELECT `+typeCols+` FROM volume_types WHERE name = ?`, ref)
	}
	if err == store.ErrNotFound {
		return nil, api.NotFound("Volume type %s could not be found.", ref)
	}
	if err != nil {
		return nil, fmt.Errorf("find volume type %s: %w", ref, err)
	}
	if !t.IsPublic && !c.admin {
		var n int
		if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM volume_type_projects WHERE type_id = ? AND project_id = ?`, t.ID, c.project).Scan(&n); err != nil {
			return nil, fmt.Errorf("volume type access: %w", err)
		}
		if n == 0 {
			return nil, api.NotFound("Volume type %s could not be found.", ref)
		}
	}
	return t, nil
}

// typeNames maps type ids to names, for volume bodies.
func (s *Service) typeNames(ctx context.Context) (map[string]string, error) {
	rows, err := store.QueryAll(ctx, s.db, scanType, `SELECT `+typeCols+` FROM volume_types`)
	if err != nil {
		return nil, fmt.Errorf("list volume types: %w", err)
	}
	out := make(map[string]string, len(rows))
	for _, t := range rows {
		out[t.ID] = t.Name
	}
	return out, nil
}

func (s *Service) listTypes(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	q := r.URL.Query()
	all, err := store.QueryAll(r.Context(), s.db, scanType, `SELECT `+typeCols+` FROM volume_types ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list volume types: %w", err)
	}
	shared, err := store.QueryStrings(r.Context(), s.db, `SELECT type_id FROM volume_type_projects WHERE project_id = ?`, c.project)
	if err != nil {
		return nil, fmt.Errorf("list volume type access: %w", err)
	}
	// is_public: admins may list private types (false) or both (None);
	// others always see the public ones and those shared with them.
	wantPublic := "true"
	if c.admin {
		switch strings.ToLower(q.Get("is_public")) {
		case "false":
			wantPublic = "false"
		case "none":
			wantPublic = "none"
		}
	}
	out := []any{}
	for _, t := range all {
		switch {
		case wantPublic == "none":
		case wantPublic == "false" && t.IsPublic:
			continue
		case wantPublic == "true" && !t.IsPublic && !containsStr(shared, t.ID):
			continue
		}
		out = append(out, t.view(typeFull))
	}
	return api.JSON(http.StatusOK, map[string]any{"volume_types": out}), nil
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Service) showType(r *http.Request) (*api.Response, error) {
	id := r.PathValue("type_id")
	var t *volumeType
	var err error
	if id == "default" {
		t, err = s.findType(r.Context(), s.db, s.caller(r), DefaultTypeName)
	} else {
		t, err = s.findType(r.Context(), s.db, s.caller(r), id)
	}
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"volume_type": t.view(typeFull)}), nil
}

type typeBody struct {
	Name        api.Optional[string]         `json:"name"`
	Description api.Optional[string]         `json:"description"`
	IsPublic    api.Optional[bool]           `json:"is_public"`
	AccessAlias api.Optional[bool]           `json:"os-volume-type-access:is_public"`
	ExtraSpecs  api.Optional[map[string]any] `json:"extra_specs"`
}

// oneSpecFromBody reads the body of a PUT to one spec's URL (of a volume
// type or a group type): exactly that key, checked as specsFromBody does.
func oneSpecFromBody(r *http.Request, key string) (map[string]string, error) {
	var body map[string]any
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if len(body) != 1 {
		return nil, api.BadRequest("Request body contains too many items.")
	}
	if _, ok := body[key]; !ok {
		return nil, api.BadRequest("Request body and URI mismatch.")
	}
	return specsFromBody(body)
}

// specsFromBody checks extra specs: string keys of 1-255 characters and
// values that are strings (numbers and booleans are taken as their text,
// as Cinder does).
func specsFromBody(in map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(in))
	for k, v := range in {
		if k == "" || len(k) > 255 {
			return nil, api.BadRequest("Invalid input: extra spec keys must be 1 to 255 characters.")
		}
		var val string
		switch x := v.(type) {
		case string:
			val = x
		case bool:
			if x {
				val = "True"
			} else {
				val = "False"
			}
		case float64:
			val = fmt.Sprint(x)
		default:
			return nil, api.BadRequest("Invalid input for extra spec %s: the value must be a string.", k)
		}
		if len(val) > 255 {
			return nil, api.BadRequest("Invalid input for extra spec %s: the value is longer than 255 characters.", k)
		}
		out[k] = val
	}
	return out, nil
}

func (s *Service) createType(r *http.Request) (*api.Response, error) {
	var body struct {
		VolumeType *typeBody `json:"volume_type"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	b := body.VolumeType
	if b == nil || !b.Name.Set || b.Name.Null || strings.TrimSpace(b.Name.Value) == "" || len(b.Name.Value) > 255 {
		return nil, api.BadRequest("Volume type name can not be empty and must be at most 255 characters.")
	}
	t := volumeType{ID: newID(), Name: strings.TrimSpace(b.Name.Value), IsPublic: true, ExtraSpecs: map[string]string{}}
	if b.Description.Set && !b.Description.Null {
		d := b.Description.Value
		t.Description = &d
	}
	if b.IsPublic.Set && !b.IsPublic.Null {
		t.IsPublic = b.IsPublic.Value
	} else if b.AccessAlias.Set && !b.AccessAlias.Null {
		t.IsPublic = b.AccessAlias.Value
	}
	if b.ExtraSpecs.Set && !b.ExtraSpecs.Null {
		specs, err := specsFromBody(b.ExtraSpecs.Value)
		if err != nil {
			return nil, err
		}
		t.ExtraSpecs = specs
	}
	specs, _ := json.Marshal(t.ExtraSpecs)
	_, err := s.db.Exec(r.Context(), `INSERT INTO volume_types (id, name, description, is_public, extra_specs, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.Description, boolInt(t.IsPublic), string(specs), store.FormatTime(now()))
	if store.IsConflict(err) {
		return nil, api.Conflict("Volume Type %s already exists.", t.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("create volume type: %w", err)
	}
	return api.JSON(http.StatusOK, map[string]any{"volume_type": t.view(typeCreated)}), nil
}

func (s *Service) updateType(r *http.Request) (*api.Response, error) {
	var body struct {
		VolumeType *typeBody `json:"volume_type"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	b := body.VolumeType
	if b == nil || (!b.Name.Set && !b.Description.Set && !b.IsPublic.Set) {
		return nil, api.BadRequest("Specify volume type name, description, is_public or a combination thereof.")
	}
	if b.Name.Set && (b.Name.Null || strings.TrimSpace(b.Name.Value) == "" || len(b.Name.Value) > 255) {
		return nil, api.BadRequest("Volume type name can not be empty and must be at most 255 characters.")
	}
	var t *volumeType
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		var err error
		t, err = s.findType(r.Context(), tx, caller{admin: true}, r.PathValue("type_id"))
		if err != nil {
			return err
		}
		if b.Name.Set {
			if t.Name == DefaultTypeName && b.Name.Value != DefaultTypeName {
				return api.BadRequest("The default volume type %s cannot be renamed.", DefaultTypeName)
			}
			t.Name = strings.TrimSpace(b.Name.Value)
		}
		if b.Description.Set {
			t.Description = nil
			if !b.Description.Null {
				d := b.Description.Value
				t.Description = &d
			}
		}
		if b.IsPublic.Set && !b.IsPublic.Null {
			t.IsPublic = b.IsPublic.Value
		}
		_, err = tx.Exec(r.Context(), `UPDATE volume_types SET name = ?, description = ?, is_public = ? WHERE id = ?`,
			t.Name, t.Description, boolInt(t.IsPublic), t.ID)
		if store.IsConflict(err) {
			return api.Conflict("Volume Type %s already exists.", t.Name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"volume_type": t.view(typeUpdated)}), nil
}

func (s *Service) deleteType(r *http.Request) (*api.Response, error) {
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		t, err := s.findType(r.Context(), tx, caller{admin: true}, r.PathValue("type_id"))
		if err != nil {
			return err
		}
		if t.Name == DefaultTypeName {
			return api.BadRequest("The default volume type %s cannot be deleted.", DefaultTypeName)
		}
		var n int
		if err := tx.QueryRow(r.Context(), `SELECT COUNT(*) FROM volume_volumes WHERE type_id = ?`, t.ID).Scan(&n); err != nil {
			return fmt.Errorf("count volumes of type: %w", err)
		}
		if n > 0 {
			return api.BadRequest("Target volume type is still in use.")
		}
		_, err = tx.Exec(r.Context(), `DELETE FROM volume_types WHERE id = ?`, t.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

// Extra specs.

func (s *Service) saveSpecs(ctx context.Context, typeID string, change func(map[string]string) error) (map[string]string, error) {
	var specs map[string]string
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		t, err := s.findType(ctx, tx, caller{admin: true}, typeID)
		if err != nil {
			return err
		}
		if err := change(t.ExtraSpecs); err != nil {
			return err
		}
		data, _ := json.Marshal(t.ExtraSpecs)
		specs = t.ExtraSpecs
		_, err = tx.Exec(ctx, `UPDATE volume_types SET extra_specs = ? WHERE id = ?`, string(data), t.ID)
		return err
	})
	return specs, err
}

func (s *Service) listExtraSpecs(r *http.Request) (*api.Response, error) {
	t, err := s.findType(r.Context(), s.db, s.caller(r), r.PathValue("type_id"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"extra_specs": t.ExtraSpecs}), nil
}

func (s *Service) createExtraSpecs(r *http.Request) (*api.Response, error) {
	var body struct {
		ExtraSpecs map[string]any `json:"extra_specs"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.ExtraSpecs == nil {
		return nil, api.BadRequest("Missing required element 'extra_specs' in request body.")
	}
	in, err := specsFromBody(body.ExtraSpecs)
	if err != nil {
		return nil, err
	}
	if _, err := s.saveSpecs(r.Context(), r.PathValue("type_id"), func(m map[string]string) error {
		for k, v := range in {
			m[k] = v
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"extra_specs": in}), nil
}

func (s *Service) showExtraSpec(r *http.Request) (*api.Response, error) {
	t, err := s.findType(r.Context(), s.db, s.caller(r), r.PathValue("type_id"))
	if err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	v, ok := t.ExtraSpecs[key]
	if !ok {
		return nil, api.NotFound("Volume Type %s has no extra specs with key %s.", t.ID, key)
	}
	return api.JSON(http.StatusOK, map[string]any{key: v}), nil
}

func (s *Service) updateExtraSpec(r *http.Request) (*api.Response, error) {
	key := r.PathValue("key")
	in, err := oneSpecFromBody(r, key)
	if err != nil {
		return nil, err
	}
	if _, err := s.saveSpecs(r.Context(), r.PathValue("type_id"), func(m map[string]string) error {
		m[key] = in[key]
		return nil
	}); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{key: in[key]}), nil
}

func (s *Service) deleteExtraSpec(r *http.Request) (*api.Response, error) {
	key := r.PathValue("key")
	if _, err := s.saveSpecs(r.Context(), r.PathValue("type_id"), func(m map[string]string) error {
		if _, ok := m[key]; !ok {
			return api.NotFound("Volume Type %s has no extra specs with key %s.", r.PathValue("type_id"), key)
		}
		delete(m, key)
		return nil
	}); err != nil {
		return nil, err
	}
	return accepted(), nil
}

// Type access.

func (s *Service) listTypeAccess(r *http.Request) (*api.Response, error) {
	t, err := s.findType(r.Context(), s.db, caller{admin: true}, r.PathValue("type_id"))
	if err != nil {
		return nil, err
	}
	if t.IsPublic {
		return nil, api.NotFound("Access list not available for public volume types.")
	}
	projects, err := store.QueryStrings(r.Context(), s.db, `SELECT project_id FROM volume_type_projects WHERE type_id = ? ORDER BY project_id`, t.ID)
	if err != nil {
		return nil, fmt.Errorf("list volume type access: %w", err)
	}
	out := []any{}
	for _, p := range projects {
		out = append(out, map[string]any{"volume_type_id": t.ID, "project_id": p})
	}
	return api.JSON(http.StatusOK, map[string]any{"volume_type_access": out}), nil
}

func (s *Service) typeAction(r *http.Request) (*api.Response, error) {
	var body struct {
		Add *struct {
			Project string `json:"project"`
		} `json:"addProjectAccess"`
		Remove *struct {
			Project string `json:"project"`
		} `json:"removeProjectAccess"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if (body.Add == nil) == (body.Remove == nil) {
		return nil, api.BadRequest("Specify exactly one of addProjectAccess and removeProjectAccess.")
	}
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		t, err := s.findType(r.Context(), tx, caller{admin: true}, r.PathValue("type_id"))
		if err != nil {
			return err
		}
		if t.IsPublic {
			return api.BadRequest("Invalid volume type: Type access modification is not applicable to public volume type.")
		}
		if body.Add != nil {
			if body.Add.Project == "" {
				return api.BadRequest("Missing required element 'project'.")
			}
			_, err := tx.Exec(r.Context(), `INSERT INTO volume_type_projects (type_id, project_id) VALUES (?, ?)`, t.ID, body.Add.Project)
			if store.IsConflict(err) {
				return api.Conflict("Volume type access for %s / %s combination already exists.", t.ID, body.Add.Project)
			}
			return err
		}
		res, err := tx.Exec(r.Context(), `DELETE FROM volume_type_projects WHERE type_id = ? AND project_id = ?`, t.ID, body.Remove.Project)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return api.NotFound("Volume type access not found for %s / %s combination.", t.ID, body.Remove.Project)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}
