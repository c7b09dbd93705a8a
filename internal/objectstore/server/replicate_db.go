package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Account and container replication. Swift's db_replicator pushes rows
// above a per-peer sync point. Here rows are grouped into 256 buckets by
// the md5 of their name, each bucket's hash is kept up to date in the
// database (rowbuckets.go), and a replica pushes the rows of the buckets
// that differ from its peer's: no state per peer, and a replica that
// lost rows gets them back whichever peer has them. Every row carries its timestamps and the receiver merges it with
// last-write-wins, exactly as it merges a live update, so pushing a row
// twice or out of order is harmless. Both verbs use REPLICATE on the
// database's own path with a JSON body:
//
//	{"op": "hashes"}                        → {"exists": bool, "info": DBInfo}
//	{"op": "merge", "info": DBInfo, "rows": [DBRow, ...]} → 204
//
// merge creates the database when the peer has none (a replica lost or
// never written), then merges the stat row (timestamps forward, metadata
// per key by timestamp) and the rows.

// Database kinds.
const (
	KindAccount   = "account"
	KindContainer = "container"
)

// DBInfo is the replicated state of an account or container database
// besides its rows, plus the hashes of its row buckets.
type DBInfo struct {
	Account       string               `json:"account"`
	Container     string               `json:"container,omitempty"`
	Put           string               `json:"put_timestamp"`
	Delete        string               `json:"delete_timestamp"`
	StatusChanged string               `json:"status_changed_at"`
	Status        string               `json:"status,omitempty"`
	Policy        int64                `json:"storage_policy_index"`
	Metadata      map[string][2]string `json:"metadata"`
	Buckets       map[string]string    `json:"buckets,omitempty"`
}

// DBRow is one object row of a container or one container row of an
// account, with the timestamps that order it.
type DBRow struct {
	Name        string `json:"name"`
	Created     string `json:"created_at,omitempty"`
	Size        int64  `json:"size,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	ETag        string `json:"etag,omitempty"`
	Put         string `json:"put_timestamp,omitempty"`
	Delete      string `json:"delete_timestamp,omitempty"`
	Objects     int64  `json:"object_count,omitempty"`
	Bytes       int64  `json:"bytes_used,omitempty"`
	Deleted     bool   `json:"deleted"`
	Policy      int64  `json:"storage_policy_index"`
}

// DBFile is a database found on a device.
type DBFile struct {
	Partition int
	Path      string
}

// ListDBs finds the account or container databases on a device.
func ListDBs(devPath, kind string) ([]DBFile, error) {
	root := filepath.Join(devPath, kind+"s")
	var out []DBFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".db") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		part, err := strconv.Atoi(strings.SplitN(rel, string(filepath.Separator), 2)[0])
		if err == nil {
			out = append(out, DBFile{Partition: part, Path: p})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s databases on %s: %w", kind, devPath, err)
	}
	return out, nil
}

// errPendingRows refuses to remove a database whose pending file gained
// rows since it was opened.
var errPendingRows = errors.New("listing rows arrived; the database stays until the next pass")

// RemoveDB deletes a handoff database once its primaries have its rows,
// or a deleted one past its reclaim age. It holds the lock of the
// database's pending file (created if there is none) while it checks
// that no rows arrived since the caller opened the database (OpenDB
// merged and emptied the file) and removes the files, so that no append
// lands between the check and the removal.
func RemoveDB(path string) error {
	f, err := os.OpenFile(path+pendingSuffix, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("remove db: %w", err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return fmt.Errorf("remove db: %w", err)
	}
	defer unlockFile(f)
	if fi, err := f.Stat(); err != nil {
		return fmt.Errorf("remove db: %w", err)
	} else if fi.Size() > 0 {
		return fmt.Errorf("remove %s: %w", path, errPendingRows)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + pendingSuffix} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	_ = os.Remove(filepath.Dir(path)) // the hash dir, when empty
	return nil
}

// OpenDB opens a database file for the replicator, which runs beside the
// servers; SQLite's WAL mode lets both use it at once. The listing rows
// of the database's pending file are merged first.
func OpenDB(path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open db: %w", err)
	}
	db, err := sql.Open("sqlite", sqliteDSN(path, "WAL", "FULL")+existingOnly)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := openedDB(context.Background(), db, path); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// openedDB brings a database just opened up to date: the bucket column
// of older databases, and the rows of its pending file. db must sync at
// commit.
func openedDB(ctx context.Context, db *sql.DB, path string) error {
	if err := migrateRowBuckets(ctx, db); err != nil {
		return err
	}
	return mergePendingFile(ctx, db, path)
}

// ReadDBInfo reads a database's stat row and bucket hashes.
func ReadDBInfo(ctx context.Context, db *sql.DB, kind string) (DBInfo, error) {
	var info DBInfo
	var md string
	q := `SELECT account, '', put_timestamp, delete_timestamp, status_changed_at, status, 0, metadata FROM account_stat`
	if kind == KindContainer {
		q = `SELECT account, container, put_timestamp, delete_timestamp, status_changed_at, '', storage_policy_index, metadata FROM container_stat`
	}
	err := db.QueryRowContext(ctx, q).Scan(&info.Account, &info.Container, &info.Put, &info.Delete,
		&info.StatusChanged, &info.Status, &info.Policy, &md)
	if err != nil {
		return info, fmt.Errorf("read %s stat: %w", kind, err)
	}
	info.Metadata = loadMetadata(md)
	if info.Buckets, err = readBucketHashes(ctx, db); err != nil {
		return info, err
	}
	return info, nil
}

// ReadDBRows reads the rows in the given buckets (all rows when nil).
func ReadDBRows(ctx context.Context, db *sql.DB, kind string, buckets []string) ([]DBRow, error) {
	where, args := "", []any(nil)
	if buckets != nil {
		where, args = bucketsWhere(buckets)
	}
	rows, _, err := scanDBRows(ctx, db, kind, where, args...)
	return rows, err
}

// ReplicateRequest is the body of REPLICATE on an account or container.
type ReplicateRequest struct {
	Op   string  `json:"op"` // "hashes" or "merge"
	Info DBInfo  `json:"info"`
	Rows []DBRow `json:"rows,omitempty"`
}

// ReplicateHashes is the answer to {"op": "hashes"}.
type ReplicateHashes struct {
	Exists bool   `json:"exists"`
	Info   DBInfo `json:"info"`
}

// maxReplicateBody bounds one REPLICATE body; pushers send rows in batches
// well below it.
const maxReplicateBody = 64 << 20

// replicate answers REPLICATE on the database's path.
func (s *dbServer) replicate(w http.ResponseWriter, r *http.Request) error {
	t, err := s.ownTarget(r)
	if err != nil {
		return err
	}
	var req ReplicateRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReplicateBody+1))
	if err != nil {
		return httpErr(499, "client disconnected")
	}
	if len(body) > maxReplicateBody || json.Unmarshal(body, &req) != nil {
		return httpErr(http.StatusBadRequest, "invalid replication request")
	}
	ctx := r.Context()
	switch req.Op {
	case "hashes":
		db, release, err := s.dbs.get(ctx, t.dbPath())
		if errors.Is(err, os.ErrNotExist) {
			return writeJSON(w, ReplicateHashes{})
		}
		if err != nil {
			return err
		}
		defer release()
		info, err := ReadDBInfo(ctx, db, s.kind)
		if err != nil {
			return err
		}
		return writeJSON(w, ReplicateHashes{Exists: true, Info: info})
	case "merge":
		if err := s.merge(ctx, t, req); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return httpErr(http.StatusBadRequest, "unknown replication op")
}

// merge applies a peer's stat row and rows to t's database, creating it
// first if needed.
func (s *dbServer) merge(ctx context.Context, t target, req ReplicateRequest) error {
	in := req.Info
	put, err := parseTimestamp(in.Put)
	if err != nil {
		return httpErr(http.StatusBadRequest, "invalid put_timestamp")
	}
	// Every object row is checked before anything is applied, and the
	// rows go in one transaction: a pass pushes up to a thousand per
	// request, and a transaction each (with its fsync) made replication
	// after a burst of uploads cost as much as the uploads.
	var rows []objectRow
	if s.kind == KindContainer {
		rows = make([]objectRow, len(req.Rows))
		for i, row := range req.Rows {
			ts, err := parseTimestamp(row.Created)
			if err != nil {
				return httpErr(http.StatusBadRequest, "invalid created_at")
			}
			rows[i] = objectRow{name: row.Name, ts: ts, size: row.Size, ctype: row.ContentType, etag: row.ETag, deleted: row.Deleted}
		}
	}
	if s.kind == KindContainer {
		_, err = s.create(ctx, t, put, "account, container, storage_policy_index", t.rp.Account, t.rp.Container, in.Policy)
	} else {
		_, err = s.create(ctx, t, put, "account", t.rp.Account)
	}
	if err != nil {
		return err
	}
	err = s.update(ctx, t, s.kind+" replication merge", func(tx *sql.Tx, st *stat) error {
		later := func(a, b string) string {
			ta, _ := parseTimestamp(a)
			tb, _ := parseTimestamp(b)
			if tb.Compare(ta) > 0 {
				return b
			}
			return a
		}
		status := st.status
		if sc, _ := parseTimestamp(in.StatusChanged); s.kind == KindAccount && sc.Compare(mustTimestamp(st.statusChanged)) > 0 {
			status = in.Status
		}
		for k, v := range in.Metadata {
			cur, ok := st.md[k]
			if !ok || mustTimestamp(v[1]).Compare(mustTimestamp(cur[1])) > 0 {
				st.md[k] = v
			}
		}
		q := `UPDATE ` + s.kind + `_stat SET put_timestamp = ?, delete_timestamp = ?, status_changed_at = ?, metadata = ?`
		args := []any{later(st.put, in.Put), later(st.del, in.Delete), later(st.statusChanged, in.StatusChanged), st.md.String()}
		if s.kind == KindAccount {
			q += `, status = ?`
			args = append(args, status)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		if s.kind != KindAccount {
			return nil
		}
		for _, row := range req.Rows {
			if _, err := mergeContainerRow(ctx, tx, containerRow{name: row.Name, put: mustTimestamp(row.Put),
				del: mustTimestamp(row.Delete), objects: row.Objects, bytes: row.Bytes, policy: row.Policy}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || s.kind != KindContainer {
		return err
	}
	db, release, err := s.open(ctx, t)
	if err != nil {
		return err
	}
	defer release()
	if err := mergeObjectRows(ctx, db, rows); err != nil {
		return err
	}
	// The new counts reach the account server with the updater's next
	// sweep, which finds them unreported.
	return nil
}

// mustTimestamp parses a stored timestamp; "0" and garbage are zero.
func mustTimestamp(s string) Timestamp {
	ts, _ := parseTimestamp(s)
	return ts
}

// ReadDBNames reads the account and container a container database
// belongs to, cheaply, for daemons that only want some containers.
func ReadDBNames(ctx context.Context, db *sql.DB) (account, container string, err error) {
	if err := db.QueryRowContext(ctx, `SELECT account, container FROM container_stat`).Scan(&account, &container); err != nil {
		return "", "", fmt.Errorf("read container names: %w", err)
	}
	return account, container, nil
}

// TimestampNow is the current time as an X-Timestamp, for daemons that
// write to the storage servers.
func TimestampNow() string { return timestampNow().Internal() }
