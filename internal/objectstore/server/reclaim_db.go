package server

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Reclaim of account and container databases, which the database
// replicator runs at the start of each pass (Swift's reclaim_age).

// ReclaimDBRows removes the deleted rows whose deletion is older than
// before (now less Swift's reclaim_age), with their bucket hashes, in one
// transaction, and returns how many went. Without it a container that
// sees many deletes keeps a row for every name it ever held. Every
// replica reclaims at the same age, so their buckets agree again once
// each has run; a peer that pushes a reclaimed row back before its own
// pass gets it removed again on the next one.
func ReclaimDBRows(ctx context.Context, db *sql.DB, kind string, before time.Time) (int, error) {
	cutoff := Timestamp{Ticks: before.UnixNano() / 10000}
	removed := 0
	err := inTx(ctx, db, func(tx *sql.Tx) error {
		rows, ids, err := scanDBRows(ctx, tx, kind, "deleted = 1")
		if err != nil {
			return err
		}
		del, err := tx.PrepareContext(ctx, `DELETE FROM `+rowTable(kind)+` WHERE ROWID = ?`)
		if err != nil {
			return err
		}
		delta := bucketDelta{}
		for i, r := range rows {
			when := r.Created
			if kind == KindAccount {
				when = r.Delete
			}
			if ts, err := parseTimestamp(when); err != nil || ts.Compare(cutoff) >= 0 {
				continue
			}
			if _, err := del.ExecContext(ctx, ids[i]); err != nil {
				return fmt.Errorf("reclaim row: %w", err)
			}
			delta.flip(r)
			removed++
		}
		put, err := prepareBucketPut(ctx, tx)
		if err != nil {
			return err
		}
		return delta.apply(ctx, put)
	})
	if err != nil {
		return 0, fmt.Errorf("reclaim deleted %s rows: %w", kind, err)
	}
	return removed, nil
}

// DBReclaimable reports whether a database may be removed: deleted
// before the given time and holding nothing (no objects in a container, no
// containers in an account), as Swift's replicator removes such
// databases once reclaim_age has passed. Until then a deleted database
// stays, so that a replica which missed the DELETE learns of it.
func DBReclaimable(ctx context.Context, db *sql.DB, kind string, before time.Time) (bool, error) {
	q := `SELECT put_timestamp, delete_timestamp, '', object_count FROM container_stat`
	if kind == KindAccount {
		q = `SELECT put_timestamp, delete_timestamp, status, container_count FROM account_stat`
	}
	var st stat
	var count int64
	if err := db.QueryRowContext(ctx, q).Scan(&st.put, &st.del, &st.status, &count); err != nil {
		return false, fmt.Errorf("read %s stat: %w", kind, err)
	}
	del, err := parseTimestamp(st.del)
	if err != nil || !st.deleted() || count != 0 {
		return false, nil
	}
	return del.Compare(Timestamp{Ticks: before.UnixNano() / 10000}) < 0, nil
}
