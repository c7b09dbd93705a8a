package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

var testMigrations = []store.Migration{
	{Version: 1, Name: "widgets", SQL: `
CREATE TABLE widgets (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX widgets_name ON widgets (name)`},
	{Version: 2, Name: "widget flag", SQL: `ALTER TABLE widgets ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT TRUE`},
}

// eachEngine runs a test against SQLite and, when the test setup provides
// one, PostgreSQL.
func eachEngine(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "nimbus.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, storetest.Postgres(t))
	})
}

func TestMigrateIsOrderedAndIdempotent(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.Migrate(ctx, "test", testMigrations[:1]); err != nil {
			t.Fatal(err)
		}
		if v, _ := db.SchemaVersion(ctx, "test"); v != 1 {
			t.Fatalf("version after first migration = %d, want 1", v)
		}
		for range 2 {
			if err := db.Migrate(ctx, "test", testMigrations); err != nil {
				t.Fatal(err)
			}
		}
		if v, _ := db.SchemaVersion(ctx, "test"); v != 2 {
			t.Fatalf("version = %d, want 2", v)
		}
		if _, err := db.Exec(ctx, `INSERT INTO widgets (id, name) VALUES (?, ?)`, "a", "alpha"); err != nil {
			t.Fatal(err)
		}
		var enabled bool
		if err := db.QueryRow(ctx, `SELECT enabled FROM widgets WHERE id = ?`, "a").Scan(&enabled); err != nil || !enabled {
			t.Fatalf("enabled = %v, %v; want true from migration 2's default", enabled, err)
		}
		// A binary older than the database must refuse to run on it.
		if err := db.Migrate(ctx, "test", testMigrations[:1]); err == nil {
			t.Fatal("migrating with an older migration set succeeded")
		}
	})
}

func TestFailedMigrationRollsBack(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		bad := append([]store.Migration{}, testMigrations[0], store.Migration{Version: 2, Name: "broken", SQL: `
CREATE TABLE gadgets (id TEXT PRIMARY KEY);
THIS IS NOT SQL`})
		if err := db.Migrate(ctx, "test", bad); err == nil {
			t.Fatal("broken migration succeeded")
		}
		if v, _ := db.SchemaVersion(ctx, "test"); v != 1 {
			t.Fatalf("version = %d after failed migration, want 1", v)
		}
		if _, err := db.Exec(ctx, `INSERT INTO gadgets (id) VALUES ('x')`); err == nil {
			t.Fatal("table from the failed migration exists")
		}
	})
}

func TestUniqueViolationIsConflict(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.Migrate(ctx, "test", testMigrations); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `INSERT INTO widgets (id, name) VALUES (?, ?)`, "a", "alpha"); err != nil {
			t.Fatal(err)
		}
		_, err := db.Exec(ctx, `INSERT INTO widgets (id, name) VALUES (?, ?)`, "b", "alpha")
		if !store.IsConflict(err) {
			t.Fatalf("duplicate insert: err = %v, want ErrConflict", err)
		}
	})
}

func TestInTxRollsBackOnError(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.Migrate(ctx, "test", testMigrations); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO widgets (id, name) VALUES (?, ?)`, "a", "alpha"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx err = %v, want boom", err)
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM widgets`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("rows after rollback = %d, %v; want 0", n, err)
		}
	})
}

// Concurrent read-modify-write transactions must serialize: no lost update,
// no "database is locked" surfacing to callers.
func TestConcurrentTransactionsSerialize(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.Migrate(ctx, "test", testMigrations); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `INSERT INTO widgets (id, name) VALUES ('c', 'counter')`); err != nil {
			t.Fatal(err)
		}
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					err := db.InTx(ctx, func(tx *store.Tx) error {
						var n int
						q := `SELECT count FROM widgets WHERE id = 'c'`
						if db.Dialect() == store.Postgres {
							q += ` FOR UPDATE`
						}
						if err := tx.QueryRow(ctx, q).Scan(&n); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, `UPDATE widgets SET count = ? WHERE id = 'c'`, n+1)
						return err
					})
					if err != nil {
						errs <- fmt.Errorf("worker %d: %w", w, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT count FROM widgets WHERE id = 'c'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != workers*each {
			t.Fatalf("counter = %d, want %d (lost updates)", n, workers*each)
		}
	})
}

func TestRebind(t *testing.T) {
	cases := []struct{ in, want string }{
		{`SELECT a FROM t WHERE x = ? AND y = ?`, `SELECT a FROM t WHERE x = $1 AND y = $2`},
		{`SELECT '?' FROM t WHERE x = ?`, `SELECT '?' FROM t WHERE x = $1`},
	}
	for _, c := range cases {
		if got := store.RebindPostgres(c.in); got != c.want {
			t.Errorf("Rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
