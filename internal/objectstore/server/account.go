package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// accountSchema is modelled on Swift's account database: one stat row and
// one row per container, carrying the stats its container servers report.
var accountSchema = []string{
	`CREATE TABLE account_stat (
		account TEXT NOT NULL,
		created_at TEXT NOT NULL,
		put_timestamp TEXT NOT NULL DEFAULT '0',
		delete_timestamp TEXT NOT NULL DEFAULT '0',
		status TEXT NOT NULL DEFAULT '',
		status_changed_at TEXT NOT NULL DEFAULT '0',
		container_count INTEGER NOT NULL DEFAULT 0,
		object_count INTEGER NOT NULL DEFAULT 0,
		bytes_used INTEGER NOT NULL DEFAULT 0,
		metadata TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE TABLE container (
		ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL UNIQUE,
		put_timestamp TEXT NOT NULL,
		delete_timestamp TEXT NOT NULL,
		object_count INTEGER NOT NULL,
		bytes_used INTEGER NOT NULL,
		deleted INTEGER NOT NULL DEFAULT 0,
		storage_policy_index INTEGER NOT NULL DEFAULT 0,
		bucket INTEGER NOT NULL DEFAULT -1
	)`,
	`CREATE INDEX ix_container_deleted_name ON container (deleted, name)`,
	rowBucketSchema("container")[0],
	rowBucketSchema("container")[1],
}

func isAccountMeta(k string) bool {
	return strings.HasPrefix(k, "X-Account-Meta-") || strings.HasPrefix(k, "X-Account-Sysmeta-")
}

// AccountServer keeps one SQLite database per account and answers Swift's
// internal account protocol.
type AccountServer struct {
	dbServer
}

var _ http.Handler = (*AccountServer)(nil)

// NewAccountServer returns the account server for cfg's devices. Close
// releases its open databases.
func NewAccountServer(cfg Config) (*AccountServer, error) {
	b, err := newBase(cfg, "account", accountsDir, 1)
	if err != nil {
		return nil, err
	}
	s := &AccountServer{dbServer{base: b, dbs: newDBCache(256, b.log), kind: "account", hdr: "X-Account-",
		schema: accountSchema, statCols: "status, container_count, 0", isMeta: isAccountMeta,
		rows: containerRows}}
	s.statHeaders = s.accountStatHeaders
	s.route(s.put, s.get, s.post, s.delete)
	s.routes[MethodReplicate] = s.replicate
	return s, nil
}

// accountStatHeaders answers HEAD of a deleted account; a live one tells
// its container count and its usage per storage policy that holds any of
// its containers (X-Account-Storage-Policy-<name>-Container-Count,
// -Object-Count, -Bytes-Used), which Swift's account server reports and
// clients such as Tempest require. The sums come from the container rows,
// each of which carries its container's policy; a policy this node does
// not know is left out, as Swift does.
func (s *AccountServer) accountStatHeaders(ctx context.Context, db *sql.DB, h http.Header, st stat) error {
	if st.deleted() {
		h.Set("X-Account-Status", "Deleted")
		return httpErr(http.StatusNotFound, "")
	}
	h.Set("X-Account-Container-Count", strconv.FormatInt(st.containers, 10))
	if st.containers == 0 {
		return nil
	}
	rows, err := db.QueryContext(ctx, `SELECT storage_policy_index, COUNT(*), COALESCE(SUM(object_count), 0), COALESCE(SUM(bytes_used), 0)
		FROM container WHERE deleted = 0 GROUP BY storage_policy_index`)
	if err != nil {
		return fmt.Errorf("account usage per policy: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var idx, containers, objects, bytes int64
		if err := rows.Scan(&idx, &containers, &objects, &bytes); err != nil {
			return fmt.Errorf("account usage per policy: %w", err)
		}
		p, ok := s.cfg.Policies.ByIndex(int(idx))
		if !ok {
			continue
		}
		pre := "X-Account-Storage-Policy-" + p.Name + "-"
		h.Set(pre+"Container-Count", strconv.FormatInt(containers, 10))
		h.Set(pre+"Object-Count", strconv.FormatInt(objects, 10))
		h.Set(pre+"Bytes-Used", strconv.FormatInt(bytes, 10))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("account usage per policy: %w", err)
	}
	return nil
}

func (s *AccountServer) put(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	if t.sub != "" {
		return s.putContainer(w, r, t)
	}
	ts, err := requestTimestamp(r, "X-Timestamp")
	if err != nil {
		return err
	}
	if err := checkMetadata(r.Header, "X-Account-Meta-"); err != nil {
		return err
	}
	ctx := r.Context()
	created, err := s.create(ctx, t, ts, "account", t.rp.Account)
	if err != nil {
		return err
	}
	err = s.update(ctx, t, "account put", func(tx *sql.Tx, st *stat) error {
		if st.status == "DELETED" {
			return httpErr(http.StatusForbidden, "Recently deleted")
		}
		if put, _ := parseTimestamp(st.put); ts.Compare(put) > 0 {
			st.put = ts.Internal()
		}
		if err := s.mergeMeta(st, r.Header, ts); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE account_stat SET put_timestamp = ?, metadata = ?`, st.put, st.md.String())
		return err
	})
	if err != nil {
		return err
	}
	writePut(w, created)
	return nil
}

// putContainer merges a container server's report into the container row
// and adjusts the account totals by the difference.
func (s *AccountServer) putContainer(w http.ResponseWriter, r *http.Request, t target) error {
	put, err := requestTimestamp(r, "X-Put-Timestamp")
	if err != nil {
		return err
	}
	del := Timestamp{}
	if v := r.Header.Get("X-Delete-Timestamp"); v != "" && v != "0" {
		if del, err = parseTimestamp(v); err != nil {
			return httpErr(http.StatusBadRequest, "Invalid X-Delete-Timestamp")
		}
	}
	objs, err1 := strconv.ParseInt(r.Header.Get("X-Object-Count"), 10, 64)
	bytes, err2 := strconv.ParseInt(r.Header.Get("X-Bytes-Used"), 10, 64)
	if err1 != nil || err2 != nil || objs < 0 || bytes < 0 {
		return httpErr(http.StatusBadRequest, "Invalid X-Object-Count or X-Bytes-Used")
	}
	policy, _ := strconv.ParseInt(r.Header.Get("X-Backend-Storage-Policy-Index"), 10, 64)
	ctx := r.Context()
	var deleted bool
	err = s.update(ctx, t, "account container update", func(tx *sql.Tx, st *stat) error {
		// A deleted account takes no new or live containers, but does
		// record a container's deletion: the account reaper deletes the
		// containers of deleted accounts, and their rows must end
		// deleted for the account to end empty (Swift's reaper sends
		// X-Account-Override-Deleted for the same purpose).
		if st.deleted() && del.Compare(put) <= 0 {
			return httpErr(http.StatusNotFound, "")
		}
		var err error
		deleted, err = mergeContainerRow(ctx, tx, containerRow{name: t.sub, put: put, del: del, objects: objs, bytes: bytes, policy: policy})
		return err
	})
	if err != nil {
		return err
	}
	if deleted {
		writeEmpty(w, http.StatusNoContent)
	} else {
		writeEmpty(w, http.StatusCreated)
	}
	return nil
}

func (s *AccountServer) delete(w http.ResponseWriter, r *http.Request) error {
	t, err := s.ownTarget(r)
	if err != nil {
		return err
	}
	ts, err := requestTimestamp(r, "X-Timestamp")
	if err != nil {
		return err
	}
	err = s.update(r.Context(), t, "account delete", func(tx *sql.Tx, st *stat) error {
		if err := st.checkDelete(ts); err != nil {
			return err
		}
		// As in Swift, deleting an account marks it; the account reaper
		// (internal/objectstore/reaper) empties it.
		_, err := tx.ExecContext(r.Context(), `UPDATE account_stat SET delete_timestamp = ?, status = 'DELETED', status_changed_at = ?`,
			ts.Internal(), timestampNow().Internal())
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// containerRow is one row of an account database: what a container server
// last reported, or what a replica pushed.
type containerRow struct {
	name           string
	put, del       Timestamp
	objects, bytes int64
	policy         int64
}

// mergeContainerRow merges row into the container table in tx and adjusts
// the account totals by the difference. Timestamps only move forward; the
// counts are the latest word. It reports whether the row ends up deleted.
func mergeContainerRow(ctx context.Context, tx *sql.Tx, row containerRow) (bool, error) {
	put, del, objs, bytes := row.put, row.del, row.objects, row.bytes
	var oPut, oDel string
	var oObjs, oBytes, oDeleted, oPolicy int64
	err := tx.QueryRowContext(ctx, `SELECT put_timestamp, delete_timestamp, object_count, bytes_used, deleted, storage_policy_index FROM container WHERE name = ?`,
		row.name).Scan(&oPut, &oDel, &oObjs, &oBytes, &oDeleted, &oPolicy)
	exists := true
	if errors.Is(err, sql.ErrNoRows) {
		exists, oDeleted = false, 1
	} else if err != nil {
		return false, err
	} else {
		if op, _ := parseTimestamp(oPut); op.Compare(put) > 0 {
			put = op
		}
		if od, _ := parseTimestamp(oDel); od.Compare(del) > 0 {
			del = od
		}
	}
	deleted := int64(0)
	if del.Compare(put) > 0 {
		deleted, objs, bytes = 1, 0, 0
	}
	delStr := "0"
	if !del.IsZero() {
		delStr = del.Internal()
	}
	delta := bucketDelta{}
	if exists {
		_, err = tx.ExecContext(ctx, `UPDATE container SET put_timestamp = ?, delete_timestamp = ?, object_count = ?, bytes_used = ?, deleted = ?, storage_policy_index = ? WHERE name = ?`,
			put.Internal(), delStr, objs, bytes, deleted, row.policy, row.name)
		delta.flip(DBRow{Name: row.name, Put: oPut, Delete: oDel, Objects: oObjs, Bytes: oBytes, Deleted: oDeleted != 0, Policy: oPolicy})
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO container (name, put_timestamp, delete_timestamp, object_count, bytes_used, deleted, storage_policy_index, bucket) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			row.name, put.Internal(), delStr, objs, bytes, deleted, row.policy, rowBucket(row.name))
	}
	if err != nil {
		return false, err
	}
	delta.flip(DBRow{Name: row.name, Put: put.Internal(), Delete: delStr, Objects: objs, Bytes: bytes, Deleted: deleted != 0, Policy: row.policy})
	bput, err := prepareBucketPut(ctx, tx)
	if err != nil {
		return false, err
	}
	if err := delta.apply(ctx, bput); err != nil {
		return false, err
	}
	var dC, dO, dB int64
	if oDeleted == 0 {
		dC, dO, dB = -1, -oObjs, -oBytes
	}
	if deleted == 0 {
		dC, dO, dB = dC+1, dO+objs, dB+bytes
	}
	_, err = tx.ExecContext(ctx, `UPDATE account_stat SET container_count = container_count + ?, object_count = object_count + ?, bytes_used = bytes_used + ?`,
		dC, dO, dB)
	return deleted == 1, err
}
