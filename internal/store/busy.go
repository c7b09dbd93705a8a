package store

import (
	"context"
	"errors"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsBusy reports whether err is SQLite's "database is locked": the busy
// timeout ran out while other writers held the write lock. Nothing of the
// failed transaction was written, so it can simply run again.
func IsBusy(err error) bool {
	if errors.Is(err, ErrBusy) {
		return true
	}
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff { // extended codes keep the primary in the low byte
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// RetryBusy runs fn, and again while it fails with IsBusy, at most
// attempts times in all, pausing a little longer each time. Under a burst
// of writers a client should wait longer rather than get a 500 for a
// request that would have succeeded. fn must be safe to run again (a
// whole transaction, as InTx runs it).
func RetryBusy(ctx context.Context, attempts int, fn func() error) error {
	var err error
	for i := range attempts {
		if err = fn(); !IsBusy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(i+1) * 50 * time.Millisecond):
		}
	}
	return err
}
