package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// The inline store keeps the files of small objects in one SQLite
// database per storage policy dir of a device (<dev>/objects[-N]/
// inline.db), rows named like the files they stand for: the object's
// hash, and <timestamp>.data. A hash dir and a file cost the filesystem
// two inode allocations per replica, which on this class of disk were
// most of a small PUT's CPU, and a sync that writes back each one's
// inode, bitmap and directory blocks; a row is a few pages appended to
// the database's WAL, committed with the rows of concurrent PUTs in one
// transaction just before the filesystem's next sync (batchCommitter).
// MinIO inlines small objects in their metadata for the same reason.
//
// Everything that reads a hash dir sees its rows as if they were files
// in it (listObjectDir): resolution by timestamp, cleanup, replication's
// suffix hashes and pushes, the auditor and quarantine treat both alike,
// so a device can hold an object's older version as a file and its newer
// one inline, and a store written with inlining on stays readable with
// it off.
const inlineDBName = "inline.db"

// inlineSchema is the store's table. part and suffix are the hash dir's
// place, for replication's per-suffix listings.
const inlineSchema = `
CREATE TABLE IF NOT EXISTS inline_file (
	hash TEXT NOT NULL,
	name TEXT NOT NULL,
	part INTEGER NOT NULL,
	suffix TEXT NOT NULL,
	metadata BLOB NOT NULL,
	body BLOB NOT NULL,
	PRIMARY KEY (hash, name)
);
CREATE INDEX IF NOT EXISTS inline_file_place ON inline_file (part, suffix);
`

// inlineStore is one policy dir's database: a reader pool and a batched
// writer.
type inlineStore struct {
	root string  // <dev>/objects[-N]
	read *sql.DB // query_only readers
	w    *sql.DB // the writer's one connection (synchronous=NORMAL)
	ins  *sql.Stmt
	del  *sql.Stmt
	batchCommitter[inlineWrite]
}

// inlineWrite is one queued change: a file stored, or a file removed.
type inlineWrite struct {
	place  inlinePlace
	name   string
	md     []byte // nil: remove the file
	body   []byte
	remove bool
}

// inlinePlace is where a hash dir sits in its policy dir.
type inlinePlace struct {
	root   string
	part   int
	suffix string
	hash   string
}

// placeOf splits a hash dir <root>/<part>/<suffix>/<hash>.
func placeOf(dir string) (inlinePlace, bool) {
	suffixDir := filepath.Dir(dir)
	partDir := filepath.Dir(suffixDir)
	p := inlinePlace{root: filepath.Dir(partDir), suffix: filepath.Base(suffixDir), hash: filepath.Base(dir)}
	part, err := strconv.Atoi(filepath.Base(partDir))
	if err != nil || !isHash(p.hash) || !isSuffix(p.suffix) || validPartition(filepath.Base(partDir)) != nil {
		return p, false
	}
	p.part = part
	return p, true
}

// hashDir is the place's directory.
func (p inlinePlace) hashDir() string {
	return filepath.Join(p.root, strconv.Itoa(p.part), p.suffix, p.hash)
}

// inlineStores are the open stores by policy dir; a nil entry records
// that the dir had no database when it was looked for, so the common
// case of a device without one costs a map lookup, not a stat.
var inlineStores = struct {
	mu sync.Mutex
	m  map[string]*inlineStore
}{m: map[string]*inlineStore{}}

// inlineStoreAt returns the store of a policy dir, nil if it has none
// and create is false.
func inlineStoreAt(root string, create bool) (*inlineStore, error) {
	inlineStores.mu.Lock()
	defer inlineStores.mu.Unlock()
	st, known := inlineStores.m[root]
	if st != nil || (known && !create) {
		return st, nil
	}
	path := filepath.Join(root, inlineDBName)
	if !create {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			inlineStores.m[root] = nil
			return nil, nil
		}
	} else if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("inline store: %w", err)
	}
	st, err := openInlineStore(root, path)
	if err != nil {
		return nil, err
	}
	inlineStores.m[root] = st
	return st, nil
}

// closeInlineStores closes every store under dir (a test's devices).
func closeInlineStores(dir string) {
	inlineStores.mu.Lock()
	defer inlineStores.mu.Unlock()
	for root, st := range inlineStores.m {
		if rel, err := filepath.Rel(dir, root); err == nil && filepath.IsLocal(rel) {
			if st != nil {
				st.close()
			}
			delete(inlineStores.m, root)
		}
	}
}

func openInlineStore(root, path string) (*inlineStore, error) {
	w, err := sql.Open("sqlite", sqliteDSN(path, "WAL", "NORMAL")+"&_pragma=cache_size(-512)")
	if err != nil {
		return nil, fmt.Errorf("open inline store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	if _, err := w.Exec(inlineSchema); err != nil {
		w.Close()
		return nil, fmt.Errorf("create inline store %s: %w", path, err)
	}
	// The schema is created before the directory entry is durable: make
	// it so, or a crash could keep rows' WAL frames but lose the file.
	if err := fsyncPath(root); err != nil {
		w.Close()
		return nil, err
	}
	read, err := sql.Open("sqlite", "file:"+dsnEscaper.Replace(path)+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=cache_size(-512)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open inline store %s: %w", path, err)
	}
	read.SetMaxIdleConns(4)
	st := &inlineStore{root: root, read: read, w: w}
	for _, s := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&st.ins, `INSERT OR REPLACE INTO inline_file (hash, name, part, suffix, metadata, body) VALUES (?, ?, ?, ?, ?, ?)`},
		{&st.del, `DELETE FROM inline_file WHERE hash = ? AND name = ?`},
	} {
		if *s.dst, err = w.Prepare(s.q); err != nil {
			st.close()
			return nil, fmt.Errorf("inline store %s: prepare: %w", path, err)
		}
	}
	st.batchCommitter = batchCommitter[inlineWrite]{path: path, commit: st.commit}
	return st, nil
}

func (st *inlineStore) close() {
	st.read.Close()
	st.w.Close()
}

// commit applies one batch in order. The batch's flush lock is held.
func (st *inlineStore) commit(ctx context.Context, batch []inlineWrite) error {
	return inTx(ctx, st.w, func(tx *sql.Tx) error {
		ins, del := tx.StmtContext(ctx, st.ins), tx.StmtContext(ctx, st.del)
		for _, wr := range batch {
			var err error
			if wr.remove {
				_, err = del.ExecContext(ctx, wr.place.hash, wr.name)
			} else {
				_, err = ins.ExecContext(ctx, wr.place.hash, wr.name, wr.place.part, wr.place.suffix, wr.md, wr.body)
			}
			if err != nil {
				return fmt.Errorf("inline store %s: %w", st.path, err)
			}
		}
		return nil
	})
}

// put queues the file name of the hash dir at p and returns the wait for
// it to be durable; it becomes visible when its batch commits.
func (st *inlineStore) put(p inlinePlace, name string, md map[string]string, body []byte) (func(context.Context) error, error) {
	b, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	wait, err := st.enqueue(inlineWrite{place: p, name: name, md: b, body: body})
	if err != nil {
		return nil, err
	}
	suffixHashCache.invalidateHashDir(p.hashDir())
	return wait, nil
}

// remove drops files of the hash dir at p with the next commit, without
// waiting for it: they are obsolete, and one a crash brings back is
// removed again by the next cleanup.
func (st *inlineStore) remove(p inlinePlace, names ...string) error {
	for _, n := range names {
		if err := st.enqueueUnwaited(inlineWrite{place: p, name: n, remove: true}); err != nil {
			return err
		}
	}
	suffixHashCache.invalidateHashDir(p.hashDir())
	return nil
}

// removeNow drops a file and returns once that is durable.
func (st *inlineStore) removeNow(ctx context.Context, p inlinePlace, name string) error {
	wait, err := st.enqueue(inlineWrite{place: p, name: name, remove: true})
	if err != nil {
		return err
	}
	suffixHashCache.invalidateHashDir(p.hashDir())
	return wait(ctx)
}

// names are the files the store holds for a hash, appended to dst.
func (st *inlineStore) names(hash string, dst []string) ([]string, error) {
	names, err := st.strings(`SELECT name FROM inline_file WHERE hash = ?`, hash)
	return append(dst, names...), err
}

// file reads one file: its metadata and its bytes. os.ErrNotExist if
// the store does not hold it (a cleanup removed it meanwhile).
func (st *inlineStore) file(hash, name string) (map[string]string, []byte, error) {
	var mdb, body []byte
	err := st.read.QueryRow(`SELECT metadata, body FROM inline_file WHERE hash = ? AND name = ?`, hash, name).Scan(&mdb, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("inline %s/%s: %w", hash, name, os.ErrNotExist)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("inline store %s: %w", st.root, err)
	}
	md, err := decodeMetadata(mdb)
	if err != nil {
		return nil, nil, fmt.Errorf("inline %s/%s: %w: %v", hash, name, errNoMetadata, err)
	}
	return md, body, nil
}

// strings runs a one-column query.
func (st *inlineStore) strings(q string, args ...any) ([]string, error) {
	rows, err := st.read.Query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("inline store %s: %w", st.root, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("inline store %s: %w", st.root, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inline store %s: %w", st.root, err)
	}
	return out, nil
}

// partitions are the partitions the store holds files of.
func (st *inlineStore) partitions() ([]string, error) {
	return st.strings(`SELECT DISTINCT CAST(part AS TEXT) FROM inline_file`)
}

// suffixes are the suffixes of a partition the store holds files of.
func (st *inlineStore) suffixes(part int) ([]string, error) {
	return st.strings(`SELECT DISTINCT suffix FROM inline_file WHERE part = ?`, part)
}

// hashes are the hashes of a suffix the store holds files of.
func (st *inlineStore) hashes(part int, suffix string) ([]string, error) {
	return st.strings(`SELECT DISTINCT hash FROM inline_file WHERE part = ? AND suffix = ?`, part, suffix)
}

// removePartition drops a partition's files and returns once that is
// durable.
func (st *inlineStore) removePartition(ctx context.Context, part int) error {
	st.flushMu.Lock()
	defer st.flushMu.Unlock()
	if _, err := st.w.ExecContext(ctx, `DELETE FROM inline_file WHERE part = ?`, part); err != nil {
		return fmt.Errorf("inline store %s: remove partition %d: %w", st.root, part, err)
	}
	return fsyncPath(st.path + "-wal")
}

// walkHashes calls fn for every hash the store holds files of, in hash
// order, a page at a time, so that no read transaction stays open while
// fn works.
func (st *inlineStore) walkHashes(ctx context.Context, fn func(inlinePlace) error) error {
	after := ""
	for {
		rows, err := st.read.QueryContext(ctx, `SELECT hash, part, suffix FROM inline_file WHERE hash > ? GROUP BY hash ORDER BY hash LIMIT 256`, after)
		if err != nil {
			return fmt.Errorf("inline store %s: %w", st.root, err)
		}
		var page []inlinePlace
		for rows.Next() {
			p := inlinePlace{root: st.root}
			if err := rows.Scan(&p.hash, &p.part, &p.suffix); err != nil {
				rows.Close()
				return fmt.Errorf("inline store %s: %w", st.root, err)
			}
			page = append(page, p)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("inline store %s: %w", st.root, err)
		}
		for _, p := range page {
			if err := fn(p); err != nil {
				return err
			}
		}
		if len(page) < 256 {
			return nil
		}
		after = page[len(page)-1].hash
	}
}

// inlineStoreOf returns the store of the policy dir holding hash dir
// dir, nil if there is none.
func inlineStoreOf(dir string) (*inlineStore, inlinePlace, error) {
	p, ok := placeOf(dir)
	if !ok {
		return nil, p, nil
	}
	st, err := inlineStoreAt(p.root, false)
	return st, p, err
}

// memBody collects a small object's bytes and their MD5.
type memBody struct {
	b   []byte
	md5 hash.Hash
}

func newMemBody(size int64) *memBody {
	return &memBody{b: make([]byte, 0, size), md5: md5.New()}
}

func (m *memBody) Write(p []byte) (int, error) {
	m.b = append(m.b, p...)
	m.md5.Write(p)
	return len(p), nil
}

// readerAt serves an inline file's bytes as a file would.
func readerAt(b []byte) *bytes.Reader { return bytes.NewReader(b) }
