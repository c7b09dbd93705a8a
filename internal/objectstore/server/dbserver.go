package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// dbServer is what the account and container servers share, as Swift's
// database broker and its server base: one SQLite database per account or
// container at <hash dir>/<hash>.db, created atomically, whose stat row
// carries the timestamps, counts and metadata, and whose rows are listed.
type dbServer struct {
	base
	dbs    *dbCache
	kind   string // "account" or "container"; the stat table is <kind>_stat
	hdr    string // "X-Account-" or "X-Container-"
	schema []string
	// statCols selects the status, container_count and storage_policy_index
	// of the stat row, or constants where the kind has no such column.
	statCols string
	isMeta   func(string) bool
	// statHeaders sets the headers only this kind answers HEAD with, or
	// returns the error that answers a deleted database.
	statHeaders func(context.Context, *sql.DB, http.Header, stat) error
	rows        rowSource // what GET lists
}

// Close closes the cached database handles.
func (s *dbServer) Close() error { return s.dbs.close() }

// stat is the stat row of an account or container database.
type stat struct {
	createdAt, put, del, status, statusChanged string
	containers, objects, bytes                 int64 // containers: accounts only
	policy                                     int64 // containers only
	md                                         dbMetadata
}

// deleted reports whether the database is deleted: marked so (accounts)
// or deleted after its last PUT.
func (st stat) deleted() bool {
	if st.status == "DELETED" {
		return true
	}
	p, _ := parseTimestamp(st.put)
	d, _ := parseTimestamp(st.del)
	return d.Compare(p) > 0
}

func (s *dbServer) loadStat(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (stat, error) {
	var st stat
	var md string
	err := q.QueryRowContext(ctx, `SELECT created_at, put_timestamp, delete_timestamp, status_changed_at,
		object_count, bytes_used, metadata, `+s.statCols+` FROM `+s.kind+`_stat`).
		Scan(&st.createdAt, &st.put, &st.del, &st.statusChanged, &st.objects, &st.bytes, &md, &st.status, &st.containers, &st.policy)
	if err != nil {
		return st, fmt.Errorf("read %s stat: %w", s.kind, err)
	}
	st.md = loadMetadata(md)
	return st, nil
}

// create makes t's database unless it exists, with a stat row created and
// put at ts whose cols (naming what it is about) are set to vals. created
// is false when it existed.
func (s *dbServer) create(ctx context.Context, t target, ts Timestamp, cols string, vals ...any) (created bool, err error) {
	created, err = createDB(ctx, t.devPath, t.dbPath(), s.schema, func(tx *sql.Tx) error {
		now := timestampNow().Internal()
		q := fmt.Sprintf(`INSERT INTO %s_stat (created_at, status_changed_at, put_timestamp, %s) VALUES (?, ?, ?%s)`,
			s.kind, cols, strings.Repeat(", ?", len(vals)))
		_, err := tx.ExecContext(ctx, q, append([]any{now, now, ts.Internal()}, vals...)...)
		return err
	})
	if err != nil {
		return false, storageErr(err)
	}
	return created, nil
}

// open returns the handle of an existing database, or a 404.
func (s *dbServer) open(ctx context.Context, t target) (*sql.DB, func(), error) {
	db, release, err := s.dbs.get(ctx, t.dbPath())
	return db, release, mapNoDB(err)
}

// mapNoDB answers a missing database with 404.
func mapNoDB(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return httpErr(http.StatusNotFound, "")
	}
	return err
}

// update runs fn in one transaction on t's database with its stat row
// loaded, and commits if fn succeeds. what names the operation in errors.
func (s *dbServer) update(ctx context.Context, t target, what string, fn func(*sql.Tx, *stat) error) error {
	db, release, err := s.open(ctx, t)
	if err != nil {
		return err
	}
	defer release()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	st, err := s.loadStat(ctx, tx)
	if err != nil {
		return err
	}
	if err := fn(tx, &st); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// mergeMeta merges the request's metadata at ts into st, applying the
// limits to the result.
func (s *dbServer) mergeMeta(st *stat, h http.Header, ts Timestamp) error {
	st.md.update(h, ts, s.isMeta)
	return st.md.checkAfterMerge(s.hdr + "Meta-")
}

// checkDelete is the check shared by both DELETEs: the database exists and
// ts is newer than its last PUT.
func (st stat) checkDelete(ts Timestamp) error {
	if st.deleted() {
		return httpErr(http.StatusNotFound, "")
	}
	if put, _ := parseTimestamp(st.put); put.Compare(ts) >= 0 {
		return conflict(put)
	}
	return nil
}

// writePut answers a PUT of the database itself.
func writePut(w http.ResponseWriter, created bool) {
	if created {
		writeEmpty(w, http.StatusCreated)
	} else {
		writeEmpty(w, http.StatusAccepted)
	}
}

func (s *dbServer) post(w http.ResponseWriter, r *http.Request) error {
	t, err := s.ownTarget(r)
	if err != nil {
		return err
	}
	ts, err := requestTimestamp(r, "X-Timestamp")
	if err != nil {
		return err
	}
	if err := checkMetadata(r.Header, s.hdr+"Meta-"); err != nil {
		return err
	}
	err = s.update(r.Context(), t, s.kind+" post", func(tx *sql.Tx, st *stat) error {
		if st.deleted() {
			return httpErr(http.StatusNotFound, "")
		}
		if err := s.mergeMeta(st, r.Header, ts); err != nil {
			return err
		}
		_, err := tx.ExecContext(r.Context(), `UPDATE `+s.kind+`_stat SET metadata = ?`, st.md.String())
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// get answers HEAD with the stat row and GET with a listing of the rows.
func (s *dbServer) get(w http.ResponseWriter, r *http.Request) error {
	t, err := s.ownTarget(r)
	if err != nil {
		return err
	}
	p, err := parseListParams(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	db, release, err := s.open(ctx, t)
	if err != nil {
		return err
	}
	defer release()
	st, err := s.loadStat(ctx, db)
	if err != nil {
		return err
	}
	h := w.Header()
	if err := s.statHeaders(ctx, db, h, st); err != nil {
		return err
	}
	st.md.headers(h)
	h.Set(s.hdr+"Object-Count", strconv.FormatInt(st.objects, 10))
	h.Set(s.hdr+"Bytes-Used", strconv.FormatInt(st.bytes, 10))
	created, _ := parseTimestamp(st.createdAt)
	put, _ := parseTimestamp(st.put)
	h.Set("X-Timestamp", created.Normal())
	h.Set("X-Put-Timestamp", put.Normal())
	h.Set("X-Backend-Timestamp", st.put)
	if r.Method == http.MethodHead {
		h.Set("Content-Type", formatContentType(p.format))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	entries, err := listRows(ctx, db, s.rows, p)
	if err != nil {
		return err
	}
	name := t.rp.Account
	if s.kind == "container" {
		name = t.rp.Container
	}
	renderListing(w, r, p, s.kind, name, entries)
	return nil
}
