package store_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store"
	_ "modernc.org/sqlite"
)

// TestRetryBusy takes SQLite's write lock on one connection and writes
// from another with no busy timeout, so the write fails with SQLITE_BUSY
// at once: IsBusy knows it, and RetryBusy runs the write again until the
// lock is gone, but not other errors.
func TestRetryBusy(t *testing.T) {
	ctx := context.Background()
	dsn := "file:" + filepath.Join(t.TempDir(), "busy.db") + "?_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	holder, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO t VALUES (1)`); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	if err := write(); !store.IsBusy(err) {
		t.Fatalf("write under another's lock: %v, want SQLITE_BUSY", err)
	}
	calls := 0
	err = store.RetryBusy(ctx, 3, func() error {
		calls++
		if calls == 2 {
			_ = holder.Rollback() // the other writer finishes
		}
		return write()
	})
	if err != nil || calls != 2 {
		t.Fatalf("RetryBusy: %v after %d calls, want a busy 1st and a successful 2nd", err, calls)
	}
	other := errors.New("not busy")
	calls = 0
	if err := store.RetryBusy(ctx, 3, func() error { calls++; return other }); err != other || calls != 1 {
		t.Fatalf("RetryBusy on another error: %v after %d calls", err, calls)
	}
}
