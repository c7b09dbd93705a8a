package server

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Container sync (internal/objectstore/containersync) walks a container
// database's object rows in ROWID order and remembers how far it got in
// the stat row, as Swift's container-sync does with
// x_container_sync_point1 (rows this replica has offered for sync) and
// x_container_sync_point2 (rows every replica has surely sent).
// x_container_sync_points_for names the X-Container-Sync-To the points
// were reached for: a new target restarts from the first row, as Swift's
// container server resets the points when the setting changes.

// SyncState is what container sync needs of one container database.
type SyncState struct {
	Account, Container string
	// Deleted: the container is deleted and nothing is synced.
	Deleted bool
	// SyncTo and SyncKey are X-Container-Sync-To and -Key ("" when unset).
	SyncTo, SyncKey string
	// Versioned: the container has object versioning, which Swift does
	// not sync.
	Versioned bool
	// Policy is the container's storage policy index.
	Policy int64
	// Point1 and Point2 are the sync points (-1: none yet), already reset
	// when they were reached for another target than SyncTo.
	Point1, Point2 int64
}

// SyncRow is one object row as container sync sends it.
type SyncRow struct {
	RowID     int64
	Name      string
	CreatedAt string
	Size      int64
	Deleted   bool
}

// objectRowMovesTrigger gives an object row a new, highest ROWID whenever
// a newer update replaces it in place, so that container sync, which
// sends the rows past its sync points, sees overwrites and deletes of
// names it already sent. Swift gets the same by deleting and re-inserting
// the row. The AUTOINCREMENT counter is raised too, so that no later
// insert reuses a ROWID a sync point already passed.
const objectRowMovesTrigger = `CREATE TRIGGER IF NOT EXISTS object_row_moves AFTER UPDATE OF created_at ON object
BEGIN
	UPDATE object SET ROWID = (SELECT max(ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'object'), 0),
		(SELECT max(ROWID) FROM object)) + 1) WHERE ROWID = NEW.ROWID;
	UPDATE sqlite_sequence SET seq = (SELECT max(ROWID) FROM object) WHERE name = 'object';
END`

// syncPointColumns are what older databases lack; they are added on first
// use, as Swift migrates its databases.
var syncPointColumns = []string{
	`ALTER TABLE container_stat ADD COLUMN x_container_sync_point1 INTEGER NOT NULL DEFAULT -1`,
	`ALTER TABLE container_stat ADD COLUMN x_container_sync_point2 INTEGER NOT NULL DEFAULT -1`,
	`ALTER TABLE container_stat ADD COLUMN x_container_sync_points_for TEXT NOT NULL DEFAULT ''`,
}

// withSyncColumns runs f and, if the database predates the sync point
// columns, adds them and runs f again.
func withSyncColumns(ctx context.Context, db *sql.DB, f func() error) error {
	err := f()
	if err == nil || !strings.Contains(err.Error(), "no such column") {
		return err
	}
	for _, q := range append(syncPointColumns, objectRowMovesTrigger) {
		if _, aerr := db.ExecContext(ctx, q); aerr != nil && !strings.Contains(aerr.Error(), "duplicate column") {
			return fmt.Errorf("add sync point columns: %w", aerr)
		}
	}
	return f()
}

// ReadSyncState reads the container's sync settings and sync points.
func ReadSyncState(ctx context.Context, db *sql.DB) (SyncState, error) {
	var st SyncState
	var put, del, md, pointsFor string
	err := withSyncColumns(ctx, db, func() error {
		return db.QueryRowContext(ctx, `SELECT account, container, put_timestamp, delete_timestamp, metadata,
			storage_policy_index, x_container_sync_point1, x_container_sync_point2, x_container_sync_points_for
			FROM container_stat`).Scan(&st.Account, &st.Container, &put, &del, &md, &st.Policy, &st.Point1, &st.Point2, &pointsFor)
	})
	if err != nil {
		return st, fmt.Errorf("read container sync state: %w", err)
	}
	st.Deleted = stat{put: put, del: del}.deleted()
	meta := loadMetadata(md)
	st.SyncTo = meta["X-Container-Sync-To"][0]
	st.SyncKey = meta["X-Container-Sync-Key"][0]
	st.Versioned = meta["X-Container-Sysmeta-Versions-Location"][0] != "" || meta["X-Versions-Location"][0] != ""
	if pointsFor != st.SyncTo {
		st.Point1, st.Point2 = -1, -1
	}
	return st, nil
}

// ReadSyncRows returns up to limit object rows with a ROWID above after,
// in ROWID order, deleted ones included.
func ReadSyncRows(ctx context.Context, db *sql.DB, after int64, limit int) ([]SyncRow, error) {
	rs, err := db.QueryContext(ctx, `SELECT ROWID, name, created_at, size, deleted FROM object WHERE ROWID > ? ORDER BY ROWID LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read rows to sync: %w", err)
	}
	defer rs.Close()
	var out []SyncRow
	for rs.Next() {
		var r SyncRow
		if err := rs.Scan(&r.RowID, &r.Name, &r.CreatedAt, &r.Size, &r.Deleted); err != nil {
			return nil, fmt.Errorf("read rows to sync: %w", err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read rows to sync: %w", err)
	}
	return out, nil
}

// SaveSyncPoints records the sync points reached for target (the
// container's X-Container-Sync-To).
func SaveSyncPoints(ctx context.Context, db *sql.DB, point1, point2 int64, target string) error {
	err := withSyncColumns(ctx, db, func() error {
		_, err := db.ExecContext(ctx, `UPDATE container_stat SET x_container_sync_point1 = ?, x_container_sync_point2 = ?,
			x_container_sync_points_for = ?`, point1, point2, target)
		return err
	})
	if err != nil {
		return fmt.Errorf("save container sync points: %w", err)
	}
	return nil
}

// ParseTimestamp parses an X-Timestamp ("1700000000.12345", with an
// optional "_<offset>"), for daemons comparing the timestamps storage
// servers answer with.
func ParseTimestamp(s string) (Timestamp, error) { return parseTimestamp(s) }
