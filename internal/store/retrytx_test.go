package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// TestRetryTx loses a unique-name race twice and then wins with a fresh
// name: each lost attempt is rolled back, a rejected error ends at once,
// and a race lost every time comes back as ErrRetriesExhausted wrapping
// the last conflict.
func TestRetryTx(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.Migrate(ctx, "test", testMigrations); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `INSERT INTO widgets (id, name) VALUES ('w0', 'taken')`); err != nil {
			t.Fatal(err)
		}
		calls := 0
		err := db.RetryTx(ctx, 5, store.IsRaceLost, func(tx *store.Tx) error {
			calls++
			if _, err := tx.Exec(ctx, `UPDATE widgets SET count = count + 1 WHERE id = 'w0'`); err != nil {
				return err
			}
			name := "taken"
			if calls == 3 {
				name = "free"
			}
			_, err := tx.Exec(ctx, `INSERT INTO widgets (id, name) VALUES (?, ?)`, fmt.Sprintf("w%d", calls), name)
			return err
		})
		if err != nil || calls != 3 {
			t.Fatalf("RetryTx: %v after %d calls, want success on the 3rd", err, calls)
		}
		var count int
		if err := db.QueryRow(ctx, `SELECT count FROM widgets WHERE id = 'w0'`).Scan(&count); err != nil || count != 1 {
			t.Fatalf("count = %d, %v: want 1 (lost attempts rolled back)", count, err)
		}

		other := errors.New("bad request")
		calls = 0
		err = db.RetryTx(ctx, 5, store.IsRaceLost, func(*store.Tx) error { calls++; return other })
		if err != other || calls != 1 {
			t.Fatalf("non-retryable: %v after %d calls, want it returned as is after 1", err, calls)
		}

		calls = 0
		err = db.RetryTx(ctx, 4, store.IsRaceLost, func(*store.Tx) error { calls++; return store.ErrRetry })
		if !errors.Is(err, store.ErrRetriesExhausted) || !errors.Is(err, store.ErrRetry) || calls != 4 {
			t.Fatalf("always lost: %v after %d calls, want ErrRetriesExhausted wrapping ErrRetry after 4", err, calls)
		}
	})
}

func TestIsSerialization(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("ERROR: could not serialize access due to concurrent update (SQLSTATE 40001)"), true},
		{fmt.Errorf("update: %w", errors.New("ERROR: deadlock detected (SQLSTATE 40P01)")), true},
		{errors.New("ERROR: duplicate key value (SQLSTATE 23505)"), false},
	} {
		if got := store.IsSerialization(c.err); got != c.want {
			t.Errorf("IsSerialization(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestLockKeySerializes has writers check a limit and then insert under
// one LockKey: without the lock, PostgreSQL's read-committed writers would
// all see room and overshoot the limit.
func TestLockKeySerializes(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.Migrate(ctx, "test", testMigrations); err != nil {
			t.Fatal(err)
		}
		const limit, workers = 3, 8
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := db.InTx(ctx, func(tx *store.Tx) error {
					if err := store.LockKey(ctx, tx, "widgets-limit"); err != nil {
						return err
					}
					var n int
					if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM widgets`).Scan(&n); err != nil {
						return err
					}
					if n >= limit {
						return nil
					}
					_, err := tx.Exec(ctx, `INSERT INTO widgets (id, name) VALUES (?, ?)`, fmt.Sprintf("w%d", w), fmt.Sprintf("n%d", w))
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM widgets`).Scan(&n); err != nil || n != limit {
			t.Fatalf("widgets = %d, %v; want exactly %d", n, err, limit)
		}
	})
}
