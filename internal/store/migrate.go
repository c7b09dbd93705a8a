package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Migration is one schema change of a component. Versions are ordered and
// applied once; a migration's SQL is portable between SQLite and
// PostgreSQL, or PostgresSQL overrides it where the two must differ.
type Migration struct {
	Version     int
	Name        string
	SQL         string
	PostgresSQL string
}

// Migrate applies the component's migrations that have not been applied
// yet, each in its own transaction together with its bookkeeping row, so a
// failed migration leaves the schema at the previous version. Versions must
// be strictly increasing; a database newer than the code is refused.
func (db *DB) Migrate(ctx context.Context, component string, migrations []Migration) error {
	if _, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL,
		version INTEGER NOT NULL,
		name TEXT NOT NULL,
		applied_at TEXT NOT NULL,
		PRIMARY KEY (component, version))`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for i := 1; i < len(migrations); i++ {
		if migrations[i].Version <= migrations[i-1].Version {
			return fmt.Errorf("migrate %s: versions out of order at %d", component, migrations[i].Version)
		}
	}
	current, err := db.SchemaVersion(ctx, component)
	if err != nil {
		return err
	}
	if n := len(migrations); n > 0 && current > migrations[n-1].Version {
		return fmt.Errorf("migrate %s: database is at version %d, newer than this binary's %d", component, current, migrations[n-1].Version)
	}
	for _, m := range migrations {
		if m.Version <= current {
			continue
		}
		stmt := m.SQL
		if db.dialect == Postgres && m.PostgresSQL != "" {
			stmt = m.PostgresSQL
		}
		err := db.InTx(ctx, func(tx *Tx) error {
			for _, s := range splitStatements(stmt) {
				if _, err := tx.Exec(ctx, s); err != nil {
					return fmt.Errorf("%q: %w", firstLine(s), err)
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)`,
				component, m.Version, m.Name, FormatTime(time.Now()))
			return err
		})
		if err != nil {
			// Concurrent starters race to migrate; whoever lost sees the
			// version row already there and the schema in place.
			if IsConflict(err) {
				continue
			}
			return fmt.Errorf("migrate %s to %d (%s): %w", component, m.Version, m.Name, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration of a component, 0 if none.
func (db *DB) SchemaVersion(ctx context.Context, component string) (int, error) {
	var v int
	err := db.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?`, component).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version of %s: %w", component, err)
	}
	return v, nil
}

// splitStatements splits a migration on semicolons that end a line; the
// migrations are written so that no literal contains one.
func splitStatements(sql string) []string {
	var out []string
	for _, s := range strings.Split(sql, ";\n") {
		s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";"))
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// timeLayout is fixed-width so that stored times sort as text in both
// engines.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// FormatTime renders t in UTC in the stored layout.
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// ParseTime reads a stored time; the empty string is the zero time.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(timeLayout, s)
}
