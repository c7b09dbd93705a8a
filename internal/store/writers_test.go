package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// TestBurstOfWritersAllCommit runs more concurrent writers than the pool
// has connections, each reading through the shared prepared statements
// both outside and inside its transaction. Every transaction must commit:
// none may starve until its busy timeout (SQLite's busy handler polls, so
// writers queue in the process instead), and a transaction must never
// wait for a pool connection to prepare a statement while it holds the
// write lock the connections' holders wait for.
func TestBurstOfWritersAllCommit(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Exec(ctx, `CREATE TABLE burst (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		const writers, each = 24, 40
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for g := range writers {
			wg.Go(func() {
				for i := range each {
					var n int
					if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM burst WHERE id < ?`, 10).Scan(&n); err != nil {
						errs <- err
						return
					}
					err := db.InTx(ctx, func(tx *store.Tx) error {
						var m int
						// A text seen first inside a transaction is not in
						// the cache yet.
						if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM burst WHERE id = ? AND %d = %d`, i%7, i%7), i).Scan(&m); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, `INSERT INTO burst (id, v) VALUES (?, ?)`, g*each+i+1, "x")
						return err
					})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM burst`).Scan(&n); err != nil || n != writers*each {
			t.Fatalf("%d rows (%v), want %d", n, err, writers*each)
		}
	})
}
