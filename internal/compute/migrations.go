package compute

import (
	"context"
	"fmt"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Migrations record resizes (Nova's "resize" migrations) for the admin
// os-migrations view; servers here are resized on their own host.

// Nova's migration statuses used here.
const (
	migrationPre       = "pre-migrating"
	migrationFinished  = "finished"
	migrationConfirmed = "confirmed"
	migrationReverted  = "reverted"
	migrationError     = "error"
)

// recordMigration opens a resize migration for an instance.
func recordMigration(ctx context.Context, tx *store.Tx, i instance, host string, oldFlavorID, newFlavorID string) error {
	seq := func(flavorID string) int {
		var n int
		_ = tx.QueryRow(ctx, `SELECT seq FROM compute_flavors WHERE id = ?`, flavorID).Scan(&n)
		return n
	}
	var id int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM compute_migrations`).Scan(&id); err != nil {
		return err
	}
	ts := store.FormatTime(now())
	_, err := tx.Exec(ctx, `INSERT INTO compute_migrations (id, uuid, instance_id, project_id, user_id, source_host, dest_host, old_flavor_id,
		new_flavor_id, migration_type, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'resize', ?, ?, ?)`,
		id, newID(), i.ID, i.ProjectID, i.UserID, host, host, seq(oldFlavorID), seq(newFlavorID), migrationPre, ts, ts)
	if err != nil {
		return fmt.Errorf("record migration of %s: %w", i.ID, err)
	}
	return nil
}

// setMigration moves the instance's newest open migration to status.
func setMigration(ctx context.Context, tx *store.Tx, instanceID, status string) error {
	_, err := tx.Exec(ctx, `UPDATE compute_migrations SET status = ?, updated_at = ? WHERE id = (SELECT MAX(id) FROM compute_migrations WHERE instance_id = ?)`,
		status, store.FormatTime(now()), instanceID)
	return err
}

type migrationRow struct {
	ID                                          int
	UUID, Instance, Project, User, Source, Dest string
	OldFlavor, NewFlavor                        int
	Type, Status, CreatedAt, UpdatedAt          string
}

func scanMigration(row store.Scanner) (migrationRow, error) {
	var m migrationRow
	err := row.Scan(&m.ID, &m.UUID, &m.Instance, &m.Project, &m.User, &m.Source, &m.Dest, &m.OldFlavor, &m.NewFlavor, &m.Type, &m.Status, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

// listMigrations answers GET /os-migrations (admin).
func (s *Service) listMigrations(r *http.Request) (*api.Response, error) {
	q := r.URL.Query()
	where, args := "1 = 1", []any{}
	for param, col := range map[string]string{"host": "source_host", "source_compute": "source_host", "status": "status",
		"instance_uuid": "instance_id", "migration_type": "migration_type"} {
		if v := q.Get(param); v != "" {
			if param == "migration_type" && !at(r, 23) {
				continue
			}
			where += " AND " + col + " = ?"
			args = append(args, v)
		}
	}
	if at(r, 59) {
		for param, op := range map[string]string{"changes-since": ">=", "changes-before": "<="} {
			if v := q.Get(param); v != "" && (param == "changes-since" || at(r, 66)) {
				t, err := parseISO(v)
				if err != nil {
					return nil, api.BadRequest("Invalid input for query parameters %s. Value: %s.", param, v)
				}
				where += " AND updated_at " + op + " ?"
				args = append(args, store.FormatTime(t))
			}
		}
	}
	ms, err := store.QueryAll(r.Context(), s.db, scanMigration, `SELECT id, uuid, instance_id, project_id, user_id, source_host, dest_host,
		old_flavor_id, new_flavor_id, migration_type, status, created_at, updated_at FROM compute_migrations WHERE `+where+` ORDER BY created_at DESC, id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var p api.Page
	if at(r, 59) {
		if p, err = page(r); err != nil {
			return nil, err
		}
		if ms, _, err = paginate(ms, p, func(m migrationRow) string { return m.UUID }); err != nil {
			return nil, api.BadRequest("Marker %s could not be found.", p.Marker)
		}
	}
	out := make([]map[string]any, 0, len(ms))
	for _, m := range ms {
		v := map[string]any{"id": m.ID, "status": m.Status, "instance_uuid": m.Instance, "source_node": m.Source, "dest_node": m.Dest,
			"source_compute": m.Source, "dest_compute": m.Dest, "dest_host": m.Dest, "source_region": nil, "dest_region": nil,
			"old_instance_type_id": m.OldFlavor, "new_instance_type_id": m.NewFlavor,
			"created_at": isoMicro(parseTime(m.CreatedAt)), "updated_at": isoMicro(parseTime(m.UpdatedAt))}
		if at(r, 23) {
			v["migration_type"] = m.Type
		}
		if at(r, 59) {
			v["uuid"] = m.UUID
		}
		out = append(out, v)
	}
	body := map[string]any{"migrations": out}
	if at(r, 59) && len(ms) > 0 {
		if l := s.nextLinks(r, p, len(ms), ms[len(ms)-1].UUID); l != nil {
			body["migrations_links"] = l
		}
	}
	return api.JSON(http.StatusOK, body), nil
}

// listServerMigrations answers GET /servers/{id}/migrations (2.23):
// in-progress live migrations, of which there are none here.
func (s *Service) listServerMigrations(r *http.Request) (*api.Response, error) {
	if !at(r, 23) {
		return nil, api.NotFound("The resource could not be found.")
	}
	if _, err := s.serverFor(r, "os_compute_api:servers:migrations:index"); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"migrations": []any{}}), nil
}
