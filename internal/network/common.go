package network

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

// fromJSON decodes a stored JSON column; stored JSON is always ours, so
// a failure is a corrupt row and reported as such.
func fromJSON(text string, v any) error {
	return json.Unmarshal([]byte(text), v)
}

func nullString(n sql.NullString) *string {
	if !n.Valid {
		return nil
	}
	return &n.String
}

func nullInt(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

func strOrNil(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func intOrNil(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func orEmpty[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// validUUID normalises an id given in a path or body; anything that is
// not a UUID cannot name a resource.
func validUUID(s string) (string, bool) {
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// decodeBody decodes {"<name>": {...}} strictly into v.
func decodeBody[T any](r *http.Request, name string) (T, error) {
	var env map[string]json.RawMessage
	var zero T
	if err := api.DecodeJSON(r, &env); err != nil {
		return zero, err
	}
	raw, ok := env[name]
	if !ok || len(env) != 1 {
		return zero, badRequest(name, "Resource body required")
	}
	var v T
	if err := api.DecodeBytes(raw, &v, true); err != nil {
		var e *api.Error
		if errors.As(err, &e) {
			return zero, invalidInput("%s", strings.TrimSuffix(e.Message, "."))
		}
		return zero, err
	}
	return v, nil
}

// ownerFor resolves the project a new resource belongs to: the caller's,
// or for an admin whatever the body names. project_id and tenant_id must
// agree when both are given.
func ownerFor(c caller, projectID, tenantID *string) (string, error) {
	var want string
	switch {
	case projectID != nil && tenantID != nil && *projectID != *tenantID:
		return "", badRequest("request", "project_id and tenant_id do not match")
	case projectID != nil:
		want = *projectID
	case tenantID != nil:
		want = *tenantID
	}
	if want == "" || want == c.project {
		return c.project, nil
	}
	if !c.admin {
		return "", badRequest("request", "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges")
	}
	return want, nil
}

// tagsFor returns the tags of the given resources.
func tagsFor(ctx context.Context, q store.Querier, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	err := forChunks(ids, func(chunk []string, in string, args []any) error {
		type row struct{ id, tag string }
		rows, err := store.QueryAll(ctx, q, func(sc store.Scanner) (row, error) {
			var r row
			err := sc.Scan(&r.id, &r.tag)
			return r, err
		}, `SELECT resource_id, tag FROM tags WHERE resource_id IN `+in+` ORDER BY tag`, args...)
		for _, r := range rows {
			out[r.id] = append(out[r.id], r.tag)
		}
		return err
	})
	return out, err
}

// chunkSize bounds the ids of one IN (...) list, well below the
// parameter limits of both engines.
const chunkSize = 500

// forChunks calls fn for each chunk of ids with an "(?, ?, ...)" list
// and its arguments.
func forChunks(ids []string, fn func(chunk []string, in string, args []any) error) error {
	for len(ids) > 0 {
		n := min(len(ids), chunkSize)
		chunk := ids[:n]
		ids = ids[n:]
		args := make([]any, n)
		for i, id := range chunk {
			args[i] = id
		}
		if err := fn(chunk, "("+strings.TrimSuffix(strings.Repeat("?, ", n), ", ")+")", args); err != nil {
			return err
		}
	}
	return nil
}

// scope returns a WHERE clause limiting a list to what the caller may
// see: everything for admins, else rows matching clause with the
// caller's project bound to each '?'.
func (c caller) scope(clause string) (string, []any) {
	if c.admin {
		return "", nil
	}
	args := make([]any, strings.Count(clause, "?"))
	for i := range args {
		args[i] = c.project
	}
	return " WHERE " + clause, args
}

// standardAttrs adds the attributes every Neutron resource with standard
// attributes carries.
func standardAttrs(o obj, id, project, description string, revision int, created, updated string, tags []string) obj {
	o["id"] = id
	o["project_id"] = project
	o["tenant_id"] = project
	o["description"] = description
	o["revision_number"] = revision
	o["created_at"] = created
	o["updated_at"] = updated
	o["tags"] = orEmpty(tags)
	return o
}

// bump records an update of a row: a new revision and update time.
func bump(ctx context.Context, tx *store.Tx, table, id string) error {
	_, err := tx.Exec(ctx, `UPDATE `+table+` SET revision_number = revision_number + 1, updated_at = ? WHERE id = ?`,
		neutronTime(now()), id)
	return err
}

// count runs a COUNT(*) query.
func count(ctx context.Context, q store.Querier, query string, args ...any) (int, error) {
	var n int
	err := q.QueryRow(ctx, query, args...).Scan(&n)
	return n, err
}

// checkLen validates a string attribute's length as Neutron's
// attribute validators do (255 characters for names and descriptions).
func checkLen(field string, v *string, max int) error {
	if v != nil && len([]rune(*v)) > max {
		return attrInvalid(field, "'%s' exceeds maximum length of %d", *v, max)
	}
	return nil
}
