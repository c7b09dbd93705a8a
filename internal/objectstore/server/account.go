package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
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
		storage_policy_index INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX ix_container_deleted_name ON container (deleted, name)`,
}

func isAccountMeta(k string) bool {
	return strings.HasPrefix(k, "X-Account-Meta-") || strings.HasPrefix(k, "X-Account-Sysmeta-")
}

// AccountServer keeps one SQLite database per account and answers Swift's
// internal account protocol.
type AccountServer struct {
	cfg    Config
	log    *slog.Logger
	dbs    *dbCache
	routes map[string]handlerFunc
}

var _ http.Handler = (*AccountServer)(nil)

// NewAccountServer returns the account server for cfg's devices. Close
// releases its open databases.
func NewAccountServer(cfg Config) (*AccountServer, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &AccountServer{cfg: c, log: c.Logger.With("server", "account"), dbs: newDBCache(256)}
	s.routes = map[string]handlerFunc{
		http.MethodPut:    s.put,
		http.MethodGet:    s.get,
		http.MethodHead:   s.get,
		http.MethodPost:   s.post,
		http.MethodDelete: s.delete,
	}
	return s, nil
}

// ServeHTTP dispatches on the method; see the package doc for the protocol.
func (s *AccountServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serve(w, r, s.routes, s.log)
}

// Close closes the cached database handles.
func (s *AccountServer) Close() error { return s.dbs.close() }

type accountTarget struct {
	rp      reqPath
	devPath string
	path    string
}

func (s *AccountServer) target(r *http.Request) (accountTarget, error) {
	var t accountTarget
	rp, err := parsePath(r.URL.Path, 1, 2)
	if err != nil {
		return t, err
	}
	dev, err := devicePath(&s.cfg, rp.Device)
	if err != nil {
		return t, err
	}
	h := hashPath(s.cfg.HashPathPrefix, s.cfg.HashPathSuffix, rp.Account)
	t.rp, t.devPath = rp, dev
	t.path = filepath.Join(hashDir(dev, accountsDir, rp.Partition, h), h+".db")
	return t, nil
}

type accountInfo struct {
	createdAt, put, del, status, statusChanged string
	containers, objects, bytes                 int64
	md                                         dbMetadata
}

func (ai accountInfo) deleted() bool {
	if ai.status == "DELETED" {
		return true
	}
	p, _ := parseTimestamp(ai.put)
	d, _ := parseTimestamp(ai.del)
	return d.Compare(p) > 0
}

func loadAccountInfo(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (accountInfo, error) {
	var ai accountInfo
	var md string
	err := q.QueryRowContext(ctx, `SELECT created_at, put_timestamp, delete_timestamp, status, status_changed_at,
		container_count, object_count, bytes_used, metadata FROM account_stat`).
		Scan(&ai.createdAt, &ai.put, &ai.del, &ai.status, &ai.statusChanged, &ai.containers, &ai.objects, &ai.bytes, &md)
	if err != nil {
		return ai, fmt.Errorf("read account stat: %w", err)
	}
	ai.md = loadMetadata(md)
	return ai, nil
}

func (s *AccountServer) open(t accountTarget) (*sql.DB, func(), error) {
	db, release, err := s.dbs.get(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, httpErr(http.StatusNotFound, "")
	}
	return db, release, err
}

func (s *AccountServer) put(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	if t.rp.Container != "" {
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
	created, err := createDB(ctx, t.devPath, t.path, accountSchema, func(tx *sql.Tx) error {
		now := timestampNow().Internal()
		_, err := tx.ExecContext(ctx, `INSERT INTO account_stat (account, created_at, put_timestamp, status_changed_at) VALUES (?, ?, ?, ?)`,
			t.rp.Account, now, ts.Internal(), now)
		return err
	})
	if err != nil {
		return storageErr(err)
	}
	db, release, err := s.open(t)
	if err != nil {
		return err
	}
	defer release()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("account put: %w", err)
	}
	defer tx.Rollback()
	ai, err := loadAccountInfo(ctx, tx)
	if err != nil {
		return err
	}
	if ai.status == "DELETED" {
		return httpErr(http.StatusForbidden, "Recently deleted")
	}
	if put, _ := parseTimestamp(ai.put); ts.Compare(put) > 0 {
		ai.put = ts.Internal()
	}
	ai.md.update(r.Header, ts, isAccountMeta)
	if err := ai.md.checkAfterMerge("X-Account-Meta-"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE account_stat SET put_timestamp = ?, metadata = ?`, ai.put, ai.md.String()); err != nil {
		return fmt.Errorf("account put: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("account put: %w", err)
	}
	w.Header().Set("Content-Length", "0")
	if created {
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusAccepted)
	}
	return nil
}

// putContainer merges a container server's report into the container row
// and adjusts the account totals by the difference.
func (s *AccountServer) putContainer(w http.ResponseWriter, r *http.Request, t accountTarget) error {
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
	db, release, err := s.open(t)
	if err != nil {
		return err
	}
	defer release()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("account container update: %w", err)
	}
	defer tx.Rollback()
	ai, err := loadAccountInfo(ctx, tx)
	if err != nil {
		return err
	}
	if ai.deleted() {
		return httpErr(http.StatusNotFound, "")
	}
	var oPut, oDel string
	var oObjs, oBytes, oDeleted int64
	err = tx.QueryRowContext(ctx, `SELECT put_timestamp, delete_timestamp, object_count, bytes_used, deleted FROM container WHERE name = ?`,
		t.rp.Container).Scan(&oPut, &oDel, &oObjs, &oBytes, &oDeleted)
	exists := true
	if errors.Is(err, sql.ErrNoRows) {
		exists, oDeleted = false, 1
	} else if err != nil {
		return fmt.Errorf("account container update: %w", err)
	} else {
		// Timestamps only move forward; the counts are the container's
		// latest word.
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
	if exists {
		_, err = tx.ExecContext(ctx, `UPDATE container SET put_timestamp = ?, delete_timestamp = ?, object_count = ?, bytes_used = ?, deleted = ?, storage_policy_index = ? WHERE name = ?`,
			put.Internal(), delStr, objs, bytes, deleted, policy, t.rp.Container)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO container (name, put_timestamp, delete_timestamp, object_count, bytes_used, deleted, storage_policy_index) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			t.rp.Container, put.Internal(), delStr, objs, bytes, deleted, policy)
	}
	if err != nil {
		return fmt.Errorf("account container update: %w", err)
	}
	var dC, dO, dB int64
	if oDeleted == 0 {
		dC, dO, dB = -1, -oObjs, -oBytes
	}
	if deleted == 0 {
		dC, dO, dB = dC+1, dO+objs, dB+bytes
	}
	if _, err := tx.ExecContext(ctx, `UPDATE account_stat SET container_count = container_count + ?, object_count = object_count + ?, bytes_used = bytes_used + ?`,
		dC, dO, dB); err != nil {
		return fmt.Errorf("account container update: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("account container update: %w", err)
	}
	w.Header().Set("Content-Length", "0")
	if deleted == 1 {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
	return nil
}

func (s *AccountServer) delete(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	if t.rp.Container != "" {
		return httpErr(http.StatusBadRequest, "invalid path")
	}
	ts, err := requestTimestamp(r, "X-Timestamp")
	if err != nil {
		return err
	}
	ctx := r.Context()
	db, release, err := s.open(t)
	if err != nil {
		return err
	}
	defer release()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("account delete: %w", err)
	}
	defer tx.Rollback()
	ai, err := loadAccountInfo(ctx, tx)
	if err != nil {
		return err
	}
	if ai.deleted() {
		return httpErr(http.StatusNotFound, "")
	}
	if put, _ := parseTimestamp(ai.put); put.Compare(ts) >= 0 {
		return conflict(put)
	}
	// As in Swift, deleting an account marks it; the reaper (not yet
	// written) empties it.
	if _, err := tx.ExecContext(ctx, `UPDATE account_stat SET delete_timestamp = ?, status = 'DELETED', status_changed_at = ?`,
		ts.Internal(), timestampNow().Internal()); err != nil {
		return fmt.Errorf("account delete: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("account delete: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *AccountServer) post(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	if t.rp.Container != "" {
		return httpErr(http.StatusBadRequest, "invalid path")
	}
	ts, err := requestTimestamp(r, "X-Timestamp")
	if err != nil {
		return err
	}
	if err := checkMetadata(r.Header, "X-Account-Meta-"); err != nil {
		return err
	}
	ctx := r.Context()
	db, release, err := s.open(t)
	if err != nil {
		return err
	}
	defer release()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("account post: %w", err)
	}
	defer tx.Rollback()
	ai, err := loadAccountInfo(ctx, tx)
	if err != nil {
		return err
	}
	if ai.deleted() {
		return httpErr(http.StatusNotFound, "")
	}
	ai.md.update(r.Header, ts, isAccountMeta)
	if err := ai.md.checkAfterMerge("X-Account-Meta-"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE account_stat SET metadata = ?`, ai.md.String()); err != nil {
		return fmt.Errorf("account post: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("account post: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *AccountServer) get(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	if t.rp.Container != "" {
		return httpErr(http.StatusBadRequest, "invalid path")
	}
	p, err := parseListParams(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	db, release, err := s.open(t)
	if err != nil {
		return err
	}
	defer release()
	ai, err := loadAccountInfo(ctx, db)
	if err != nil {
		return err
	}
	h := w.Header()
	if ai.deleted() {
		h.Set("X-Account-Status", "Deleted")
		return httpErr(http.StatusNotFound, "")
	}
	ai.md.headers(h)
	h.Set("X-Account-Container-Count", strconv.FormatInt(ai.containers, 10))
	h.Set("X-Account-Object-Count", strconv.FormatInt(ai.objects, 10))
	h.Set("X-Account-Bytes-Used", strconv.FormatInt(ai.bytes, 10))
	created, _ := parseTimestamp(ai.createdAt)
	put, _ := parseTimestamp(ai.put)
	h.Set("X-Timestamp", created.Normal())
	h.Set("X-Put-Timestamp", put.Normal())
	h.Set("X-Backend-Timestamp", ai.put)
	if r.Method == http.MethodHead {
		h.Set("Content-Type", formatContentType(p.format))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	entries, err := listRows(ctx, db, "container", "put_timestamp, object_count, bytes_used", p, func(rows *sql.Rows) ([]any, error) {
		var name, put string
		var objs, bytes int64
		err := rows.Scan(&name, &put, &objs, &bytes)
		return []any{name, put, objs, bytes}, err
	})
	if err != nil {
		return err
	}
	item := func(e listEntry) containerListing {
		ts, _ := parseTimestamp(e.row[0].(string))
		return containerListing{Name: e.name, Count: e.row[1].(int64), Bytes: e.row[2].(int64), LastModified: ts.isoListing()}
	}
	renderListing(w, r, p, "account", t.rp.Account, entries,
		func(e listEntry) any { return item(e) },
		func(sb *strings.Builder, e listEntry) {
			it := item(e)
			sb.WriteString("<container>")
			xmlElem(sb, "name", it.Name)
			xmlElem(sb, "count", strconv.FormatInt(it.Count, 10))
			xmlElem(sb, "bytes", strconv.FormatInt(it.Bytes, 10))
			xmlElem(sb, "last_modified", it.LastModified)
			sb.WriteString("</container>")
		})
	return nil
}
