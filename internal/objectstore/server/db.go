package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// dbCache keeps SQLite handles of recently used account and container
// databases open; opening a file per request would dominate small-object
// latency.
type dbCache struct {
	max int
	log *slog.Logger
	mu  sync.Mutex
	dbs map[string]*dbEntry // guarded by mu
}

type dbEntry struct {
	db   *sql.DB
	rows *rowCommitter // group-commits container listing rows
	refs int           // guarded by dbCache.mu
	used time.Time     // guarded by dbCache.mu
	file os.FileInfo   // the file opened, to notice its removal

	// migrated runs openedDB once, outside dbCache.mu (an old database's
	// rows are read in full), before the entry's first use.
	migrated    sync.Once
	migratedErr error
}

// close closes both handles of the entry, the listing rows merged.
func (e *dbEntry) close() error { return errors.Join(e.rows.close(), e.db.Close()) }

// discard closes the handles of an entry whose file was removed. Its
// rows are not merged: RemoveDB removes a database only when its pending
// file was empty, so they are in the removed file already, and a merge
// could open a new connection on the database that took its path.
func (e *dbEntry) discard() { _ = errors.Join(e.rows.discard(), e.db.Close()) }

func newDBCache(max int, log *slog.Logger) *dbCache {
	return &dbCache{max: max, log: log, dbs: map[string]*dbEntry{}}
}

var dsnEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// sqliteDSN opens path with a journal mode and a synchronous level
// (FULL everywhere but the listing rows' own handle, see rowCommitter).
func sqliteDSN(path, journal, synchronous string) string {
	return "file:" + dsnEscaper.Replace(path) + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(" + journal +
		")&_pragma=synchronous(" + synchronous + ")&_txlock=immediate"
}

// existingOnly makes a handle's connections fail on a missing file
// instead of creating an empty database there: database/sql connects
// lazily, and a database may be removed (RemoveDB) after its handle was
// opened.
const existingOnly = "&mode=rw"

// get returns an open handle on the existing database at path, with
// every listing row acknowledged so far merged into it, and a release
// func; os.ErrNotExist if there is none.
func (c *dbCache) get(ctx context.Context, path string) (*sql.DB, func(), error) {
	e, release, err := c.acquire(path)
	if err != nil {
		return nil, nil, err
	}
	if err := e.rows.mergeAppended(ctx); err != nil {
		release()
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	return e.db, release, nil
}

// acquire is get returning the whole cache entry. The entry stays open
// until release: eviction closes only unreferenced entries.
func (c *dbCache) acquire(path string) (*dbEntry, func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fi, err := os.Stat(path)
	e, ok := c.dbs[path]
	if ok && e.refs == 0 && (err != nil || !os.SameFile(fi, e.file)) {
		// The replicator removed the file (a handoff that reached its
		// primaries, a deleted database past its reclaim age), and maybe
		// a new one took its place: writes through the old handle would
		// go to a file no one will read again.
		delete(c.dbs, path)
		e.discard()
		ok = false
	}
	if !ok {
		if err != nil {
			return nil, nil, err
		}
		db, err := sql.Open("sqlite", sqliteDSN(path, "WAL", "FULL")+existingOnly)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", path, err)
		}
		db.SetMaxOpenConns(2)
		db.SetMaxIdleConns(2)
		rows, err := newRowCommitter(path, fi, c.log)
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		e = &dbEntry{db: db, rows: rows, file: fi}
		c.dbs[path] = e
	}
	e.refs++
	e.used = time.Now()
	// Evict only once the new entry is referenced: before that it is idle
	// with the oldest use time, and eviction would close the very handle
	// about to be returned ("sql: database is closed" once more than max
	// databases are in use).
	c.evictLocked()
	release := func() {
		c.mu.Lock()
		e.refs--
		c.mu.Unlock()
	}
	c.mu.Unlock()
	e.migrated.Do(func() { e.migratedErr = openedDB(context.Background(), e.db, path) })
	c.mu.Lock()
	if err := e.migratedErr; err != nil {
		// Dropped from the cache once unused, so that the next request
		// tries again rather than meet the same error for good.
		if e.refs--; e.refs == 0 && c.dbs[path] == e {
			delete(c.dbs, path)
			e.close()
		}
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	return e, release, nil
}

// evictLocked closes the least recently used idle handles above max.
func (c *dbCache) evictLocked() {
	if len(c.dbs) <= c.max {
		return
	}
	type kv struct {
		k string
		e *dbEntry
	}
	var idle []kv
	for k, e := range c.dbs {
		if e.refs == 0 {
			idle = append(idle, kv{k, e})
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].e.used.Before(idle[j].e.used) })
	for _, x := range idle {
		if len(c.dbs) <= c.max {
			break
		}
		x.e.close()
		delete(c.dbs, x.k)
	}
}

// close closes every cached handle.
func (c *dbCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for k, e := range c.dbs {
		if err := e.close(); err != nil && first == nil {
			first = err
		}
		delete(c.dbs, k)
	}
	return first
}

// createDB builds a new database with schema and initial statements in the
// device's tmp dir, then links it into place, so a half-initialised database
// is never visible. created is false when another request won the race.
func createDB(ctx context.Context, devPath, path string, schema []string, init func(*sql.Tx) error) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	f, err := createTmp(devPath, "db-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	db, err := sql.Open("sqlite", sqliteDSN(tmp, "DELETE", "FULL"))
	if err != nil {
		return false, fmt.Errorf("open tmp db: %w", err)
	}
	err = func() error {
		defer db.Close()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for _, q := range schema {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("schema: %w", err)
			}
		}
		if err := init(tx); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		return false, fmt.Errorf("initialise db: %w", err)
	}
	dir := filepath.Dir(path)
	made, err := mkdirAllTracked(dir)
	if err != nil {
		return false, err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("link db into place: %w", err)
	}
	return true, fsyncCreated(dir, made)
}

// metadata of accounts and containers: name → [value, timestamp]. An empty
// value records a deletion, so that merges keep last-write-wins semantics.
type dbMetadata map[string][2]string

func loadMetadata(s string) dbMetadata {
	md := dbMetadata{}
	if s != "" {
		_ = json.Unmarshal([]byte(s), &md)
	}
	return md
}

func (md dbMetadata) String() string {
	b, _ := json.Marshal(md)
	return string(b)
}

// update merges the request headers that are metadata (per isMeta) at ts.
func (md dbMetadata) update(h http.Header, ts Timestamp, isMeta func(string) bool) {
	for k, vs := range h {
		if !isMeta(k) {
			continue
		}
		cur, ok := md[k]
		if ok {
			if old, err := parseTimestamp(cur[1]); err == nil && old.Compare(ts) > 0 {
				continue
			}
		}
		md[k] = [2]string{vs[0], ts.Internal()}
	}
}

// headers sets the non-empty metadata as response headers.
func (md dbMetadata) headers(h http.Header) {
	for k, v := range md {
		if v[0] != "" {
			h.Set(k, v[0])
		}
	}
}

// checkAfterMerge applies the metadata limits to the merged result, so
// many small POSTs cannot grow metadata past what one PUT may set.
func (md dbMetadata) checkAfterMerge(prefix string) error {
	h := http.Header{}
	for k, v := range md {
		if v[0] != "" {
			h.Set(k, v[0])
		}
	}
	return checkMetadata(h, prefix)
}
