package server

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// containerSchema is modelled on Swift's container database: one stat row
// and one row per object name (tombstoned rows keep deleted = 1 so that
// replication and late updates merge by timestamp). The stat row also
// keeps the container sync daemon's progress (see sync_points.go).
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
		metadata TEXT NOT NULL DEFAULT '',
		x_container_sync_point1 INTEGER NOT NULL DEFAULT -1,
		x_container_sync_point2 INTEGER NOT NULL DEFAULT -1,
		x_container_sync_points_for TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE TABLE object (
		ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL UNIQUE,
		created_at TEXT NOT NULL,
		size INTEGER NOT NULL,
		content_type TEXT NOT NULL,
		etag TEXT NOT NULL,
		deleted INTEGER NOT NULL DEFAULT 0,
		storage_policy_index INTEGER NOT NULL DEFAULT 0,
		bucket INTEGER NOT NULL DEFAULT -1
	)`,
	`CREATE INDEX ix_object_deleted_name ON object (deleted, name)`,
	objectRowMovesTrigger,
	rowBucketSchema("object")[0],
	rowBucketSchema("object")[1],
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
	dbServer
	dirty chan string // container db paths whose stats changed
}

var _ http.Handler = (*ContainerServer)(nil)

// NewContainerServer returns the container server for cfg's devices. Close
// releases its open databases.
func NewContainerServer(cfg Config) (*ContainerServer, error) {
	b, err := newBase(cfg, "container", containersDir, 2)
	if err != nil {
		return nil, err
	}
	s := &ContainerServer{dbServer: dbServer{base: b, dbs: newDBCache(256, b.log), kind: "container", hdr: "X-Container-",
		schema: containerSchema, statCols: "'', 0, storage_policy_index", isMeta: isContainerMeta,
		statHeaders: containerStatHeaders, rows: objectRows}, dirty: make(chan string, 4096)}
	s.route(s.put, s.get, s.post, s.delete)
	s.routes[MethodReplicate] = s.replicate
	return s, nil
}

// containerStatHeaders sets the backend headers the replicator and the
// proxy read, on a deleted container too.
func containerStatHeaders(_ context.Context, _ *sql.DB, h http.Header, st stat) error {
	h.Set("X-Backend-Put-Timestamp", st.put)
	h.Set("X-Backend-Delete-Timestamp", st.del)
	h.Set("X-Backend-Status-Changed-At", st.statusChanged)
	h.Set("X-Backend-Storage-Policy-Index", strconv.FormatInt(st.policy, 10))
	if st.deleted() {
		return httpErrHeaders(http.StatusNotFound, http.Header{"X-Backend-Timestamp": {st.del}})
	}
	// Swift's container server answers with the last PUT or POST as
	// Last-Modified (rounded up to a second); clients such as Swift's
	// versioned-writes tests read it.
	if put, err := parseTimestamp(st.put); err == nil {
		h.Set("Last-Modified", put.lastModified().Format(http.TimeFormat))
	}
	return nil
}

// createContainer makes the container's database unless it exists.
func (s *ContainerServer) createContainer(ctx context.Context, t target, ts Timestamp, policy int64) (bool, error) {
	return s.create(ctx, t, ts, "account, container, storage_policy_index", t.rp.Account, t.rp.Container, policy)
}

func (s *ContainerServer) put(w http.ResponseWriter, r *http.Request) error {
	t, ts, err := s.writeTarget(r)
	if err != nil {
		return err
	}
	if t.sub != "" {
		return s.putObject(w, r, t, ts, false)
	}
	if err := checkMetadata(r.Header, "X-Container-Meta-"); err != nil {
		return err
	}
	ctx := r.Context()
	policy, explicit, err := putPolicy(r, int64(s.cfg.Policies.Default().Index))
	if err != nil {
		return err
	}
	if _, ok := s.cfg.Policies.ByIndex(int(policy)); !ok {
		return httpErr(http.StatusBadRequest, "Invalid X-Storage-Policy-Index "+strconv.FormatInt(policy, 10))
	}
	created, err := s.createContainer(ctx, t, ts, policy)
	if err != nil {
		return err
	}
	err = s.update(ctx, t, "container put", func(tx *sql.Tx, st *stat) error {
		wasDeleted := st.deleted()
		if !created && !wasDeleted && explicit && policy != st.policy {
			// A container's policy is fixed while it exists (its
			// objects live in that policy's ring); Swift answers 409
			// naming the policy it has.
			return httpErrHeaders(http.StatusConflict, http.Header{
				"X-Backend-Storage-Policy-Index": {strconv.FormatInt(st.policy, 10)}})
		}
		if put, _ := parseTimestamp(st.put); ts.Compare(put) > 0 {
			st.put = ts.Internal()
		}
		if wasDeleted && st.deleted() {
			del, _ := parseTimestamp(st.del)
			return conflict(del)
		}
		if wasDeleted {
			// A container made again after a delete takes the policy
			// of this PUT, as in Swift: it is empty.
			created = true
			st.statusChanged = timestampNow().Internal()
			if _, err := tx.ExecContext(ctx, `UPDATE container_stat SET storage_policy_index = ?`, policy); err != nil {
				return err
			}
		}
		if err := s.mergeMeta(st, r.Header, ts); err != nil {
			return err
		}
		acct := [3]string{r.Header.Get("X-Account-Host"), r.Header.Get("X-Account-Partition"), r.Header.Get("X-Account-Device")}
		_, err := tx.ExecContext(ctx, `UPDATE container_stat SET put_timestamp = ?, status_changed_at = ?, metadata = ?,
			account_host = CASE WHEN ? != '' THEN ? ELSE account_host END,
			account_partition = CASE WHEN ? != '' THEN ? ELSE account_partition END,
			account_device = CASE WHEN ? != '' THEN ? ELSE account_device END`,
			st.put, st.statusChanged, st.md.String(), acct[0], acct[0], acct[1], acct[1], acct[2], acct[2])
		return err
	})
	if err != nil {
		return err
	}
	s.reportAccount(ctx, t.dbPath())
	writePut(w, created)
	return nil
}

// putPolicy is the storage policy a container PUT asks for: the proxy's
// X-Backend-Storage-Policy-Index when the client named one (explicit),
// else X-Backend-Storage-Policy-Default or, without either, this node's
// default policy (as Swift), which apply only to a container that does
// not exist yet.
func putPolicy(r *http.Request, def int64) (idx int64, explicit bool, err error) {
	parse := func(k string) (int64, bool, error) {
		v := r.Header.Get(k)
		if v == "" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, false, httpErr(http.StatusBadRequest, "Invalid "+k)
		}
		return n, true, nil
	}
	if idx, explicit, err = parse("X-Backend-Storage-Policy-Index"); err != nil || explicit {
		return idx, explicit, err
	}
	idx, given, err := parse("X-Backend-Storage-Policy-Default")
	if !given {
		idx = def
	}
	return idx, false, err
}

// putObject merges an object row (PUT) or its tombstone (DELETE) by
// timestamp and keeps the container's counters in step.
func (s *ContainerServer) putObject(w http.ResponseWriter, r *http.Request, t target, ts Timestamp, deleted bool) error {
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
		if _, err := s.createContainer(r.Context(), t, ts, 0); err != nil {
			return err
		}
	}
	row := objectRow{name: t.sub, ts: ts, size: size, ctype: ctype, etag: etag, deleted: deleted}
	if err := s.commitObjectRow(r.Context(), t, row); err != nil {
		return err
	}
	s.markDirty(t.dbPath())
	if deleted {
		writeEmpty(w, http.StatusNoContent)
	} else {
		writeEmpty(w, http.StatusCreated)
	}
	return nil
}

func (s *ContainerServer) delete(w http.ResponseWriter, r *http.Request) error {
	t, ts, err := s.writeTarget(r)
	if err != nil {
		return err
	}
	if t.sub != "" {
		return s.putObject(w, r, t, ts, true)
	}
	ctx := r.Context()
	err = s.update(ctx, t, "container delete", func(tx *sql.Tx, st *stat) error {
		if st.deleted() {
			return httpErr(http.StatusNotFound, "")
		}
		if st.objects > 0 {
			return httpErr(http.StatusConflict, "There was a conflict when trying to complete your request.")
		}
		if err := st.checkDelete(ts); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE container_stat SET delete_timestamp = ?, status_changed_at = ?`,
			ts.Internal(), timestampNow().Internal())
		return err
	})
	if err != nil {
		return err
	}
	if h := r.Header.Get("X-Account-Host"); h != "" {
		if db, release, err := s.open(ctx, t); err == nil {
			_, _ = db.ExecContext(ctx, `UPDATE container_stat SET account_host = ?, account_partition = ?, account_device = ?`,
				h, r.Header.Get("X-Account-Partition"), r.Header.Get("X-Account-Device"))
			release()
		}
	}
	s.reportAccount(ctx, t.dbPath())
	w.WriteHeader(http.StatusNoContent)
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
	db, release, err := s.dbs.get(ctx, path)
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
// promptly for containers that just changed (paced by a reportPacer),
// and in a full sweep every UpdaterInterval for anything a failed report
// left behind. The reported_* columns are the durable queue: a report is
// pending exactly while they differ from the live values, which survives
// restarts like async_pending.
func (s *ContainerServer) RunUpdater(ctx context.Context) {
	sweep := time.NewTicker(s.cfg.UpdaterInterval)
	defer sweep.Stop()
	pace := newReportPacer()
	timer := time.NewTimer(time.Hour)
	timer.Stop() // set once a report is due
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.dirty:
			pace.changed(p, time.Now())
		case now := <-timer.C:
			for _, p := range pace.due(now) {
				if _, err := s.reportOne(ctx, p); err != nil {
					s.log.Debug("container report failed; sweep will retry", "db", p, "err", err)
				}
			}
		case <-sweep.C:
			s.UpdateOnce(ctx)
		}
		// Aim the timer at the next report (Reset also discards a firing
		// that was not received, since Go 1.23).
		if next, ok := pace.next(); ok {
			timer.Reset(time.Until(next))
		}
	}
}

// reportPacer decides when the updater reports a changed container: a
// report waits reportDelay after a change, so that a burst of changes is
// one report, and comes at most every reportEvery for a container that
// keeps changing. Each report merges the container's appended rows into
// its database, updates it and has the account server update its own:
// about a tenth of a small PUT's CPU when it ran every reportDelay
// during uploads one at a time. A single change still reaches the
// account within reportDelay (Swift's container updater reports every
// few minutes).
type reportPacer struct {
	pending  map[string]time.Time // containers to report, and when
	reported map[string]time.Time // when each was last reported, while that limits the next
}

const (
	reportDelay = 100 * time.Millisecond
	reportEvery = time.Second
)

func newReportPacer() *reportPacer {
	return &reportPacer{pending: map[string]time.Time{}, reported: map[string]time.Time{}}
}

// changed notes that container p changed at now.
func (rp *reportPacer) changed(p string, now time.Time) {
	if _, ok := rp.pending[p]; ok {
		return
	}
	at := now.Add(reportDelay)
	if last, ok := rp.reported[p]; ok && last.Add(reportEvery).After(at) {
		at = last.Add(reportEvery)
	}
	rp.pending[p] = at
}

// due returns the containers to report at now, as reported.
func (rp *reportPacer) due(now time.Time) []string {
	var out []string
	for p, at := range rp.pending {
		if !at.After(now) {
			out = append(out, p)
			delete(rp.pending, p)
			rp.reported[p] = now
		}
	}
	for p, at := range rp.reported {
		if now.Sub(at) >= reportEvery {
			delete(rp.reported, p)
		}
	}
	return out
}

// next is when the earliest pending report is due; false if none is.
func (rp *reportPacer) next() (time.Time, bool) {
	var next time.Time
	for _, at := range rp.pending {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero()
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
