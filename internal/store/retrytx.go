package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrRetry, returned by a transaction's function, asks RetryTx to run the
// transaction again: the function lost a race it can only detect itself
// (a unique sequence number taken, a row claimed by another writer).
var ErrRetry = errors.New("retry transaction")

// ErrRetriesExhausted wraps the last error of a transaction that still lost
// its race after every attempt; services answer it with their own 409.
var ErrRetriesExhausted = errors.New("transaction retries exhausted")

// IsSerialization reports a PostgreSQL serialization failure (40001) or
// deadlock (40P01): the database aborted the transaction only because of a
// concurrent one, so running it again is the documented remedy.
func IsSerialization(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLSTATE 40001") || strings.Contains(msg, "SQLSTATE 40P01")
}

// IsRaceLost reports the errors every service retries: ErrRetry, a
// constraint violation (the loser re-reads and sees the winner's row) and a
// PostgreSQL serialization failure.
func IsRaceLost(err error) bool {
	return errors.Is(err, ErrRetry) || IsConflict(err) || IsSerialization(err)
}

// RetryTx runs fn in a transaction (InTx) up to attempts times while it
// fails with an error retryable accepts, sleeping a little longer after
// each loss so that racing writers spread out. fn must read afresh each
// time. An error retryable rejects is returned as is; when every attempt
// lost, the last error is returned wrapped in ErrRetriesExhausted.
func (db *DB) RetryTx(ctx context.Context, attempts int, retryable func(error) bool, fn func(tx *Tx) error) error {
	var err error
	for i := 0; i < attempts; i++ {
		err = db.InTx(ctx, fn)
		if err == nil || !retryable(err) {
			return err
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
	return fmt.Errorf("%w after %d attempts: %w", ErrRetriesExhausted, attempts, err)
}

// LockKey serialises transactions that check a limit and then write
// (quotas, capacity, host claims). SQLite transactions already hold the
// write lock from their first statement (_txlock=immediate), so it does
// nothing there; PostgreSQL takes a transaction-scoped advisory lock on
// the key's hash, released at commit or rollback.
func LockKey(ctx context.Context, tx *Tx, key string) error {
	if tx.Dialect() != Postgres {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(?))`, key); err != nil {
		return fmt.Errorf("lock %s: %w", key, err)
	}
	return nil
}
