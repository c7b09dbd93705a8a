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
	"time"
)

// containerSchema is modelled on Swift's container database: one stat row
// and one row per object name (tombstoned rows keep deleted = 1 so that
// replication and late updates merge by timestamp).
var containerSchema = []string{
	`CREATE TABLE container_stat (
		account TEXT NOT NULL,
		container TEXT NOT NULL,
		created_at TEXT NOT NULL,
		put_timestamp TEXT NOT NULL DEFAULT '0',
		delete_timestamp TEXT NOT NULL DEFAULT '0',
		status_changed_at TEXT NOT NULL DEFAULT '0',
		object_count INTEGER NOT NULL DEFAULT 0,
		bytes_used INTEGER NOT NULL DEFAULT 0,
		reported_put_timestamp TEXT NOT NULL DEFAULT '0',
		reported_delete_timestamp TEXT NOT NULL DEFAULT '0',
		reported_object_count INTEGER NOT NULL DEFAULT 0,
		reported_bytes_used INTEGER NOT NULL DEFAULT 0,
		account_host TEXT NOT NULL DEFAULT '',
		account_partition TEXT NOT NULL DEFAULT '',
		account_device TEXT NOT NULL DEFAULT '',
		storage_policy_index INTEGER NOT NULL DEFAULT 0,
		metadata TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE TABLE object (
		ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL UNIQUE,
		created_at TEXT NOT NULL,
		size INTEGER NOT NULL,
		content_type TEXT NOT NULL,
		etag TEXT NOT NULL,
		deleted INTEGER NOT NULL DEFAULT 0,
		storage_policy_index INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX ix_object_deleted_name ON object (deleted, name)`,
}

// isContainerMeta reports whether a header is container metadata kept in
// the database.
func isContainerMeta(k string) bool {
	switch k {
	case "X-Container-Read", "X-Container-Write", "X-Container-Sync-To", "X-Container-Sync-Key",
		"X-Versions-Location", "X-History-Location":
		return true
	}
	return strings.HasPrefix(k, "X-Container-Meta-") || strings.HasPrefix(k, "X-Container-Sysmeta-")
}

// ContainerServer keeps one SQLite database per container and answers
// Swift's internal container protocol. Its updater reports container stats
// to the account servers.
type ContainerServer struct {
	cfg    Config
	log    *slog.Logger
	dbs    *dbCache
	dirty  chan string // container db paths whose stats changed
	routes map[string]handlerFunc
}

var _ http.Handler = (*ContainerServer)(nil)

// NewContainerServer returns the container server for cfg's devices. Close
// releases its open databases.
func NewContainerServer(cfg Config) (*ContainerServer, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &ContainerServer{cfg: c, log: c.Logger.With("server", "container"), dbs: newDBCache(256), dirty: make(chan string, 4096)}
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
func (s *ContainerServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serve(w, r, s.routes, s.log)
}

// Close closes the cached database handles.
func (s *ContainerServer) Close() error { return s.dbs.close() }

type containerTarget struct {
	rp      reqPath
	devPath string
	path    string // the .db file
}

func (s *ContainerServer) target(r *http.Request) (containerTarget, error) {
	var t containerTarget
	rp, err := parsePath(r.URL.Path, 2, 3)
	if err != nil {
		return t, err
	}
	dev, err := devicePath(&s.cfg, rp.Device)
	if err != nil {
		return t, err
	}
	h := hashPath(s.cfg.HashPathPrefix, s.cfg.HashPathSuffix, rp.Account, rp.Container)
	t.rp, t.devPath = rp, dev
	t.path = filepath.Join(hashDir(dev, containersDir, rp.Partition, h), h+".db")
	return t, nil
}

// containerInfo is the stat row.
type containerInfo struct {
	createdAt, put, del, statusChanged string
	objects, bytes                     int64
	policy                             int64
	md                                 dbMetadata
}

func (ci containerInfo) deleted() bool {
	p, _ := parseTimestamp(ci.put)
	d, _ := parseTimestamp(ci.del)
	return d.Compare(p) > 0
}

func loadContainerInfo(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (containerInfo, error) {
	var ci containerInfo
	var md string
	err := q.QueryRowContext(ctx, `SELECT created_at, put_timestamp, delete_timestamp, status_changed_at,
		object_count, bytes_used, storage_policy_index, metadata FROM container_stat`).
		Scan(&ci.createdAt, &ci.put, &ci.del, &ci.statusChanged, &ci.objects, &ci.bytes, &ci.policy, &md)
	if err != nil {
		return ci, fmt.Errorf("read container stat: %w", err)
	}
	ci.md = loadMetadata(md)
	return ci, nil
}

// open returns the handle of an existing container db, or a 404.
func (s *ContainerServer) open(t containerTarget) (*sql.DB, func(), error) {
	db, release, err := s.dbs.get(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, httpErr(http.StatusNotFound, "")
	}
	return db, release, err
}

func (s *ContainerServer) put(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	ts, err := requestTimestamp(r, "X-Timestamp")
	if err != nil {
		return err
	}
	if t.rp.Object != "" {
		return s.putObject(w, r, t, ts, false)
	}
	if err := checkMetadata(r.Header, "X-Container-Meta-"); err != nil {
		return err
	}
	ctx := r.Context()
	created, err := createDB(ctx, t.devPath, t.path, containerSchema, func(tx *sql.Tx) error {
		now := timestampNow().Internal()
		policy, _ := strconv.ParseInt(r.Header.Get("X-Backend-Storage-Policy-Index"), 10, 64)
		_, err := tx.ExecContext(ctx, `INSERT INTO container_stat (account, container, created_at, put_timestamp, status_changed_at, storage_policy_index)
			VALUES (?, ?, ?, ?, ?, ?)`, t.rp.Account, t.rp.Container, now, ts.Internal(), now, policy)
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
		return fmt.Errorf("container put: %w", err)
	}
	defer tx.Rollback()
	ci, err := loadContainerInfo(ctx, tx)
	if err != nil {
		return err
	}
	wasDeleted := ci.deleted()
	put, _ := parseTimestamp(ci.put)
	if ts.Compare(put) > 0 {
		ci.put = ts.Internal()
	}
	if wasDeleted && ci.deleted() {
		del, _ := parseTimestamp(ci.del)
		return conflict(del)
	}
	if wasDeleted {
		created = true
		ci.statusChanged = timestampNow().Internal()
	}
	ci.md.update(r.Header, ts, isContainerMeta)
	if err := ci.md.checkAfterMerge("X-Container-Meta-"); err != nil {
		return err
	}
	acct := [3]string{r.Header.Get("X-Account-Host"), r.Header.Get("X-Account-Partition"), r.Header.Get("X-Account-Device")}
	if _, err := tx.ExecContext(ctx, `UPDATE container_stat SET put_timestamp = ?, status_changed_at = ?, metadata = ?,
		account_host = CASE WHEN ? != '' THEN ? ELSE account_host END,
		account_partition = CASE WHEN ? != '' THEN ? ELSE account_partition END,
		account_device = CASE WHEN ? != '' THEN ? ELSE account_device END`,
		ci.put, ci.statusChanged, ci.md.String(), acct[0], acct[0], acct[1], acct[1], acct[2], acct[2]); err != nil {
		return fmt.Errorf("container put: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("container put: %w", err)
	}
	s.reportAccount(ctx, t.path)
	w.Header().Set("Content-Length", "0")
	if created {
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusAccepted)
	}
	return nil
}

// putObject merges an object row (PUT) or its tombstone (DELETE) by
// timestamp and keeps the container's counters in step.
func (s *ContainerServer) putObject(w http.ResponseWriter, r *http.Request, t containerTarget, ts Timestamp, deleted bool) error {
	var size int64
	var ctype, etag string
	if !deleted {
		var err error
		size, err = strconv.ParseInt(r.Header.Get("X-Size"), 10, 64)
		if err != nil || size < 0 {
			return httpErr(http.StatusBadRequest, "Invalid X-Size")
		}
		ctype, etag = r.Header.Get("X-Content-Type"), r.Header.Get("X-Etag")
		if ctype == "" {
			return httpErr(http.StatusBadRequest, "Missing X-Content-Type")
		}
	}
	if strings.HasPrefix(t.rp.Account, ".") {
		// Hidden accounts (the expirer queue) get their containers on
		// first use, as Swift's auto_create_account_prefix does.
		if _, err := createDB(r.Context(), t.devPath, t.path, containerSchema, func(tx *sql.Tx) error {
			now := timestampNow().Internal()
			_, err := tx.ExecContext(r.Context(), `INSERT INTO container_stat (account, container, created_at, put_timestamp, status_changed_at)
				VALUES (?, ?, ?, ?, ?)`, t.rp.Account, t.rp.Container, now, ts.Internal(), now)
			return err
		}); err != nil {
			return storageErr(err)
		}
	}
	db, release, err := s.open(t)
	if err != nil {
		return err
	}
	defer release()
	if err := mergeObjectRow(r.Context(), db, t.rp.Object, ts, size, ctype, etag, deleted); err != nil {
		return err
	}
	s.markDirty(t.path)
	w.Header().Set("Content-Length", "0")
	if deleted {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
	return nil
}

// mergeObjectRow applies one object update with last-write-wins.
func mergeObjectRow(ctx context.Context, db *sql.DB, name string, ts Timestamp, size int64, ctype, etag string, deleted bool) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("merge object row: %w", err)
	}
	defer tx.Rollback()
	var oldTS string
	var oldSize, oldDeleted int64
	err = tx.QueryRowContext(ctx, `SELECT created_at, size, deleted FROM object WHERE name = ?`, name).Scan(&oldTS, &oldSize, &oldDeleted)
	del := int64(0)
	if deleted {
		del = 1
	}
	var dCount, dBytes int64
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO object (name, created_at, size, content_type, etag, deleted) VALUES (?, ?, ?, ?, ?, ?)`,
			name, ts.Internal(), size, ctype, etag, del); err != nil {
			return fmt.Errorf("merge object row: %w", err)
		}
	case err != nil:
		return fmt.Errorf("merge object row: %w", err)
	default:
		old, _ := parseTimestamp(oldTS)
		if old.Compare(ts) >= 0 {
			return nil // what we hold is as new or newer
		}
		if _, err := tx.ExecContext(ctx, `UPDATE object SET created_at = ?, size = ?, content_type = ?, etag = ?, deleted = ? WHERE name = ?`,
			ts.Internal(), size, ctype, etag, del, name); err != nil {
			return fmt.Errorf("merge object row: %w", err)
		}
		if oldDeleted == 0 {
			dCount, dBytes = -1, -oldSize
		}
	}
	if !deleted {
		dCount++
		dBytes += size
	}
	if dCount != 0 || dBytes != 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE container_stat SET object_count = object_count + ?, bytes_used = bytes_used + ?`, dCount, dBytes); err != nil {
			return fmt.Errorf("merge object row: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("merge object row: %w", err)
	}
	return nil
}

func (s *ContainerServer) delete(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	ts, err := requestTimestamp(r, "X-Timestamp")
	if err != nil {
		return err
	}
	if t.rp.Object != "" {
		return s.putObject(w, r, t, ts, true)
	}
	ctx := r.Context()
	db, release, err := s.open(t)
	if err != nil {
		return err
	}
	defer release()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("container delete: %w", err)
	}
	defer tx.Rollback()
	ci, err := loadContainerInfo(ctx, tx)
	if err != nil {
		return err
	}
	if ci.deleted() {
		return httpErr(http.StatusNotFound, "")
	}
	if ci.objects > 0 {
		return httpErr(http.StatusConflict, "There was a conflict when trying to complete your request.")
	}
	if put, _ := parseTimestamp(ci.put); put.Compare(ts) >= 0 {
		return conflict(put)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE container_stat SET delete_timestamp = ?, status_changed_at = ?`,
		ts.Internal(), timestampNow().Internal()); err != nil {
		return fmt.Errorf("container delete: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("container delete: %w", err)
	}
	if h := r.Header.Get("X-Account-Host"); h != "" {
		_, _ = db.ExecContext(ctx, `UPDATE container_stat SET account_host = ?, account_partition = ?, account_device = ?`,
			h, r.Header.Get("X-Account-Partition"), r.Header.Get("X-Account-Device"))
	}
	s.reportAccount(ctx, t.path)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *ContainerServer) post(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	if t.rp.Object != "" {
		return httpErr(http.StatusBadRequest, "invalid path")
	}
	ts, err := requestTimestamp(r, "X-Timestamp")
	if err != nil {
		return err
	}
	if err := checkMetadata(r.Header, "X-Container-Meta-"); err != nil {
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
		return fmt.Errorf("container post: %w", err)
	}
	defer tx.Rollback()
	ci, err := loadContainerInfo(ctx, tx)
	if err != nil {
		return err
	}
	if ci.deleted() {
		return httpErr(http.StatusNotFound, "")
	}
	ci.md.update(r.Header, ts, isContainerMeta)
	if err := ci.md.checkAfterMerge("X-Container-Meta-"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE container_stat SET metadata = ?`, ci.md.String()); err != nil {
		return fmt.Errorf("container post: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("container post: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *ContainerServer) get(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	if t.rp.Object != "" {
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
	ci, err := loadContainerInfo(ctx, db)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("X-Backend-Put-Timestamp", ci.put)
	h.Set("X-Backend-Delete-Timestamp", ci.del)
	h.Set("X-Backend-Status-Changed-At", ci.statusChanged)
	h.Set("X-Backend-Storage-Policy-Index", strconv.FormatInt(ci.policy, 10))
	if ci.deleted() {
		return httpErrHeaders(http.StatusNotFound, http.Header{"X-Backend-Timestamp": {ci.del}})
	}
	ci.md.headers(h)
	h.Set("X-Container-Object-Count", strconv.FormatInt(ci.objects, 10))
	h.Set("X-Container-Bytes-Used", strconv.FormatInt(ci.bytes, 10))
	created, _ := parseTimestamp(ci.createdAt)
	put, _ := parseTimestamp(ci.put)
	h.Set("X-Timestamp", created.Normal())
	h.Set("X-Put-Timestamp", put.Normal())
	h.Set("X-Backend-Timestamp", ci.put)
	if r.Method == http.MethodHead {
		h.Set("Content-Type", formatContentType(p.format))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	entries, err := listRows(ctx, db, "object", "created_at, size, content_type, etag", p, func(rows *sql.Rows) ([]any, error) {
		var name, created, ctype, etag string
		var size int64
		err := rows.Scan(&name, &created, &size, &ctype, &etag)
		return []any{name, created, size, ctype, etag}, err
	})
	if err != nil {
		return err
	}
	item := func(e listEntry) objectListing {
		ts, _ := parseTimestamp(e.row[0].(string))
		return objectListing{Name: e.name, Hash: e.row[3].(string), Bytes: e.row[1].(int64), ContentType: e.row[2].(string), LastModified: ts.isoListing()}
	}
	renderListing(w, r, p, "container", t.rp.Container, entries,
		func(e listEntry) any { return item(e) },
		func(sb *strings.Builder, e listEntry) {
			it := item(e)
			sb.WriteString("<object>")
			xmlElem(sb, "name", it.Name)
			xmlElem(sb, "hash", it.Hash)
			xmlElem(sb, "bytes", strconv.FormatInt(it.Bytes, 10))
			xmlElem(sb, "content_type", it.ContentType)
			xmlElem(sb, "last_modified", it.LastModified)
			sb.WriteString("</object>")
		})
	return nil
}

// markDirty asks the updater to report path's stats soon. It never blocks:
// a full queue is caught by the periodic sweep.
func (s *ContainerServer) markDirty(path string) {
	select {
	case s.dirty <- path:
	default:
	}
}

// reportAccount sends the container's current stats to its account server
// right away; on failure the unreported difference stays in the database
// and the updater retries it.
func (s *ContainerServer) reportAccount(ctx context.Context, path string) {
	if _, err := s.reportOne(ctx, path); err != nil {
		s.log.Warn("account update failed; updater will retry", "db", path, "err", err)
	}
}

// reportOne reports one container database if its stats or timestamps
// changed since the last accepted report; sent says whether it did.
func (s *ContainerServer) reportOne(ctx context.Context, path string) (sent bool, err error) {
	db, release, err := s.dbs.get(path)
	if err != nil {
		return false, err
	}
	defer release()
	var acct, cont, put, del, rput, rdel, host, part, dev string
	var objs, bytes, robjs, rbytes, policy int64
	err = db.QueryRowContext(ctx, `SELECT account, container, put_timestamp, delete_timestamp, reported_put_timestamp,
		reported_delete_timestamp, object_count, bytes_used, reported_object_count, reported_bytes_used,
		account_host, account_partition, account_device, storage_policy_index FROM container_stat`).
		Scan(&acct, &cont, &put, &del, &rput, &rdel, &objs, &bytes, &robjs, &rbytes, &host, &part, &dev, &policy)
	if err != nil {
		return false, fmt.Errorf("read container stat %s: %w", path, err)
	}
	if host == "" || (put == rput && del == rdel && objs == robjs && bytes == rbytes) {
		return false, nil
	}
	u := pendingUpdate{Method: http.MethodPut, Host: host, Device: dev, Partition: part, Account: acct, Container: cont,
		Headers: map[string]string{
			"X-Put-Timestamp":                put,
			"X-Delete-Timestamp":             del,
			"X-Object-Count":                 strconv.FormatInt(objs, 10),
			"X-Bytes-Used":                   strconv.FormatInt(bytes, 10),
			"X-Timestamp":                    timestampNow().Internal(),
			"X-Backend-Storage-Policy-Index": strconv.FormatInt(policy, 10),
		}}
	if err := sendUpdate(ctx, &s.cfg, u); err != nil {
		return false, err
	}
	if _, err := db.ExecContext(ctx, `UPDATE container_stat SET reported_put_timestamp = ?, reported_delete_timestamp = ?,
		reported_object_count = ?, reported_bytes_used = ?`, put, del, objs, bytes); err != nil {
		return false, fmt.Errorf("record report of %s: %w", path, err)
	}
	return true, nil
}

// RunUpdater reports container stats to account servers until ctx ends:
// promptly for containers that just changed, and in a full sweep every
// UpdaterInterval for anything a failed report left behind. The reported_*
// columns are the durable queue: a report is pending exactly while they
// differ from the live values, which survives restarts like async_pending.
func (s *ContainerServer) RunUpdater(ctx context.Context) {
	sweep := time.NewTicker(s.cfg.UpdaterInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.dirty:
			// Coalesce a burst of updates to the same containers.
			batch := map[string]bool{p: true}
			timer := time.NewTimer(100 * time.Millisecond)
		drain:
			for {
				select {
				case p := <-s.dirty:
					batch[p] = true
				case <-timer.C:
					break drain
				case <-ctx.Done():
					timer.Stop()
					return
				}
			}
			for p := range batch {
				if _, err := s.reportOne(ctx, p); err != nil {
					s.log.Debug("container report failed; sweep will retry", "db", p, "err", err)
				}
			}
		case <-sweep.C:
			s.UpdateOnce(ctx)
		}
	}
}

// UpdateOnce sweeps every container database on every device and reports
// those with unreported changes. It returns how many reports were accepted
// and how many failed.
func (s *ContainerServer) UpdateOnce(ctx context.Context) (sent, failed int) {
	for _, dev := range listDevices(&s.cfg) {
		_ = filepath.WalkDir(filepath.Join(dev, containersDir), func(p string, d os.DirEntry, err error) error {
			if err != nil || ctx.Err() != nil {
				return nil
			}
			if d.IsDir() || !strings.HasSuffix(p, ".db") {
				return nil
			}
			ok, err := s.reportOne(ctx, p)
			switch {
			case err != nil:
				failed++
				s.log.Debug("container report failed", "db", p, "err", err)
			case ok:
				sent++
			}
			return nil
		})
		cleanTmp(filepath.Join(dev, tmpDir), s.cfg.TmpMaxAge)
	}
	return sent, failed
}
