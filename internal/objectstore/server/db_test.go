package server

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
)

// TestDBCacheEvictsOnlyIdle opens more databases than the cache holds and
// checks every handle it returns is usable: the entry just opened must not
// be the one evicted, and a handle still in use must stay open.
func TestDBCacheEvictsOnlyIdle(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var paths []string
	for i := range 4 {
		p := filepath.Join(dir, fmt.Sprintf("%d.db", i))
		db, err := sql.Open("sqlite", sqliteDSN(p, "WAL", "FULL"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `CREATE TABLE x (v INTEGER)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		paths = append(paths, p)
	}
	c := newDBCache(2, slog.Default())
	defer c.close()
	held, releaseHeld, err := c.get(context.Background(), paths[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths[1:] {
		db, release, err := c.get(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO x VALUES (1)`); err != nil {
			t.Fatalf("%s just opened: %v", filepath.Base(p), err)
		}
		release()
	}
	if _, err := held.ExecContext(ctx, `INSERT INTO x VALUES (1)`); err != nil {
		t.Fatalf("handle in use was closed: %v", err)
	}
	releaseHeld()
	if n := len(c.dbs); n > 2 {
		t.Fatalf("%d handles cached, want at most 2", n)
	}
}

// TestDBCacheNoticesRemovedFile: once the replicator removed a database
// file and a new one took its path, writes go to the new file, not to
// the removed one through a handle cached before.
func TestDBCacheNoticesRemovedFile(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	n.putRow(t, "a", "c", "before", "1")
	dbs, err := ListDBs(n.dev, KindContainer)
	if err != nil || len(dbs) != 1 {
		t.Fatalf("container databases: %v, %v", dbs, err)
	}
	// As the replicator does: open (which merges the pending rows), then remove.
	before, err := OpenDB(dbs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	before.Close()
	if err := RemoveDB(dbs[0].Path); err != nil {
		t.Fatal(err)
	}
	n.putContainer(t, "a", "c")
	n.putRow(t, "a", "c", "after", "1")
	db, err := OpenDB(dbs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := ReadDBRows(context.Background(), db, KindContainer, nil)
	if err != nil || len(rows) != 1 || rows[0].Name != "after" {
		t.Fatalf("rows in the database now at the path: %v (%v), want only \"after\"", rows, err)
	}
}
