package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// objectRow is one object's row in a container listing, or its tombstone.
type objectRow struct {
	name        string
	ts          Timestamp
	size        int64
	ctype, etag string
	deleted     bool
}

// groupCommit runs one commit for the items that callers submit while
// another commit is in flight, and returns to each caller once the commit
// holding its item is done. It is how a disk flush is shared: N
// concurrent writers that each need one pay for one together.
//
// A commit starts only after every item of its batch was submitted, so a
// caller that submits once its own work is complete is covered by the
// commit that answers it (a syncfs started after its write; a
// transaction that contains its row).
//
// No goroutine of its own: the caller that finds no commit in flight
// leads one batch (its own item and whatever queued), then hands the lead
// to the first item that queued meanwhile, so no caller commits more than
// one batch and no caller waits for a commit that started before it came.
type groupCommit[T any] struct {
	commit func(ctx context.Context, batch []T) error
	// gather, if set, is called by a leader before it takes the queue, to
	// wait for items known to be on their way (see fsCommitter.gather).
	gather func()
	// arrived, if set, is called after an item was queued (outside mu).
	arrived func()

	mu      sync.Mutex
	queue   []*queuedItem[T] // guarded by mu
	leading bool             // guarded by mu: a batch is being committed
}

type queuedItem[T any] struct {
	item T
	done chan commitResult // buffered: the leader never blocks on it
}

// commitResult ends a queued item's wait: its batch committed (or failed
// with err), or lead says it is its turn to commit the queue.
type commitResult struct {
	err  error
	lead bool
}

// submit queues item and returns once a commit that started after this
// call holds it. It does not give up when ctx ends: a queued item belongs
// to a batch other callers wait for.
func (g *groupCommit[T]) submit(ctx context.Context, item T) error {
	q := &queuedItem[T]{item: item, done: make(chan commitResult, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, q)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if g.arrived != nil {
		g.arrived()
	}
	if !lead {
		if res := <-q.done; !res.lead {
			return res.err
		}
	}
	return g.commitQueue(context.WithoutCancel(ctx), q)
}

// queued is how many items wait for the next batch.
func (g *groupCommit[T]) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// busy reports whether a commit is in flight.
func (g *groupCommit[T]) busy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leading
}

// commitQueue commits every queued item (own among them) in one batch,
// tells the others, and passes the lead on.
func (g *groupCommit[T]) commitQueue(ctx context.Context, own *queuedItem[T]) error {
	if g.gather != nil {
		g.gather()
	}
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()
	items := make([]T, len(batch))
	for i, q := range batch {
		items[i] = q.item
	}
	err := g.commit(ctx, items)
	for _, q := range batch {
		if q != own {
			q.done <- commitResult{err: err}
		}
	}
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.leading = false
	} else {
		g.queue[0].done <- commitResult{lead: true}
	}
	g.mu.Unlock()
	return err
}

// rowCommitter batches the object rows of one container database.
//
// Every object PUT or DELETE updates the listing on each container
// replica. A row is queued, and the next sync of the database's
// filesystem (fscommit.go) first appends every row queued to the
// database's pending file in one write, then syncs: the batch is whatever
// arrived since the last sync, and a row waits no longer than it would
// for the sync alone. The syncfs makes the appended rows durable with the
// objects of the same PUTs, whose servers wait for the same sync. The
// rows reach SQLite when the database is next read (pending.go says who
// merges them, and when). A writer alone on the filesystem appends its
// row itself and fsyncs the file.
//
// Each caller returns only after its row is durable, so a crash loses
// only rows that were never acknowledged; a torn tail of the file fails
// its checksum and is dropped.
type rowCommitter struct {
	db   *sql.DB // the rows' own handle: synchronous=NORMAL, one connection
	path string  // of the database
	log  *slog.Logger

	mergeMu sync.Mutex      // one merge at a time, and compaction
	stmts   *objectRowStmts // guarded by mergeMu; prepared once per handle

	flushMu    sync.Mutex  // one append at a time
	pending    pendingRows // guarded by flushMu
	appended   []objectRow // guarded by flushMu: in the pending file, not merged yet
	dirSynced  bool        // guarded by flushMu: the pending file's directory was fsynced once (the file may be new)
	closed     bool        // guarded by flushMu: the handles are closed
	compacting atomic.Bool // a compaction is running or about to

	mu     sync.Mutex
	queued []*queuedRow // guarded by mu: waiting for the next flush
}

// queuedRow is a row waiting for the next flush of its database.
type queuedRow struct {
	row  objectRow
	done chan error // buffered: the result of the append that held it
}

// newRowCommitter opens the row handle of the database at path, whose
// file is fi.
func newRowCommitter(path string, fi os.FileInfo, log *slog.Logger) (*rowCommitter, error) {
	// A small page cache: the handle only merges rows (the listing's
	// pages stay in the main handle's cache and the OS's), and SQLite's
	// default of 2 MiB per connection, for every open container, showed
	// as a third more resident memory under load.
	db, err := sql.Open("sqlite", sqliteDSN(path, "WAL", "NORMAL")+"&_pragma=cache_size(-256)"+existingOnly)
	if err != nil {
		return nil, fmt.Errorf("open %s for listing rows: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return &rowCommitter{db: db, path: path, log: log, pending: pendingRows{dbPath: path, dbFile: fi}}, nil
}

// close merges what is pending, empties the pending file and closes the
// row handle.
func (c *rowCommitter) close() error {
	err := c.compact(context.Background())
	return errors.Join(err, c.discard())
}

// discard closes the row handle without merging (dbEntry.discard). A
// compaction started by a flush before that finds it closed and stops.
func (c *rowCommitter) discard() error {
	c.flushMu.Lock()
	c.closed = true
	err := c.pending.close()
	c.flushMu.Unlock()
	return errors.Join(err, c.db.Close())
}

// merge adds row to the listing (last-write-wins) and returns once it is
// durable. The update is idempotent, so a caller whose context ended
// still waits for the batch its row is in.
func (c *rowCommitter) merge(ctx context.Context, row objectRow) error {
	// The ticket comes first: a sync error reported from here on may be
	// about this row's pages.
	ticket, err := beginFSCommit(filepath.Dir(c.path))
	if err != nil {
		return fmt.Errorf("merge object row: %w", err)
	}
	q := &queuedRow{row: row, done: make(chan error, 1)}
	c.mu.Lock()
	c.queued = append(c.queued, q)
	c.mu.Unlock()
	ticket.c.flushBeforeSync(c)
	if ticket.alone() {
		ticket.release()
		c.flush()
		if err := <-q.done; err != nil {
			return err
		}
		return c.syncPending()
	}
	// The sync that answers began after the row was queued, and every
	// sync first flushes what was queued before it began.
	if err := ticket.commit(ctx); err != nil {
		return fmt.Errorf("merge object row: %w", err)
	}
	return <-q.done
}

// flush appends every queued row to the pending file in one write and
// tells each its result. It runs before each sync of the filesystem that
// a row asked for, and never fails the sync: a failed append fails only
// its rows.
func (c *rowCommitter) flush() {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	batch := c.queued
	c.queued = nil
	c.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	rows := make([]objectRow, len(batch))
	for i, q := range batch {
		rows[i] = q.row
	}
	emptied, err := c.pending.append(rows)
	if emptied {
		c.appended = nil // merged by whoever emptied the file
	}
	if err == nil {
		c.appended = append(c.appended, rows...)
	}
	for _, q := range batch {
		q.done <- err
	}
	if c.pending.size >= pendingCompactBytes && c.compacting.CompareAndSwap(false, true) {
		go func() {
			defer c.compacting.Store(false)
			if err := c.compact(context.Background()); err != nil {
				c.log.Warn("merge pending listing rows", "db", c.path, "err", err)
			}
		}()
	}
}

// syncPending fsyncs the pending file, and its directory after the file
// was created: the lone writer's commit.
func (c *rowCommitter) syncPending() error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if err := c.pending.sync(); err != nil {
		return err
	}
	if !c.dirSynced {
		if err := fsyncPath(filepath.Dir(c.path)); err != nil {
			return err
		}
		c.dirSynced = true
	}
	return nil
}

// mergeAppended merges the rows appended so far into the database; a
// reader calls it first, so that it sees every acknowledged row. The
// merge does not sync: the pending file holds the rows until compact.
// Appends go on meanwhile.
func (c *rowCommitter) mergeAppended(ctx context.Context) error {
	c.mergeMu.Lock()
	defer c.mergeMu.Unlock()
	c.flushMu.Lock()
	rows := c.takeAppendedLocked()
	c.flushMu.Unlock()
	err := c.commit(ctx, rows)
	if err != nil {
		c.flushMu.Lock()
		c.restoreLocked(rows)
		c.flushMu.Unlock()
	}
	return err
}

// restoreLocked puts back rows whose merge failed, before those appended
// since, for the next merge; flushMu is held.
func (c *rowCommitter) restoreLocked(rows []objectRow) { c.appended = append(rows, c.appended...) }

// takeAppendedLocked returns the rows appended and not merged yet, and
// forgets them; flushMu is held. None when another merged and emptied
// the file since (mergePendingFile): merging its rows again could bring
// back a row reclaimed after that merge.
func (c *rowCommitter) takeAppendedLocked() []objectRow {
	if c.pending.emptiedElsewhere() {
		c.appended = nil
	}
	rows := c.appended
	c.appended = nil
	return rows
}

// compact merges what is left, makes the merged rows durable in the WAL
// and empties the pending file; no row is appended meanwhile.
func (c *rowCommitter) compact(ctx context.Context) error {
	c.mergeMu.Lock()
	defer c.mergeMu.Unlock()
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if c.closed {
		return nil
	}
	rows := c.takeAppendedLocked()
	if err := c.commit(ctx, rows); err != nil {
		c.restoreLocked(rows)
		return err
	}
	if c.pending.size == 0 {
		return nil
	}
	if err := fsyncPath(c.path + "-wal"); err != nil {
		return err
	}
	return c.pending.truncate()
}

// commit merges one batch, with statements prepared once per database
// handle rather than per batch (compiling them was a fifth of the
// merge's CPU). mergeMu is held.
func (c *rowCommitter) commit(ctx context.Context, rows []objectRow) error {
	if len(rows) == 0 {
		return nil
	}
	if c.stmts == nil {
		st, err := prepareObjectRowStmts(ctx, c.db)
		if err != nil {
			return fmt.Errorf("merge object rows: %w", err)
		}
		c.stmts = st
	}
	return inTx(ctx, c.db, func(tx *sql.Tx) error {
		return mergeObjectRowsTx(ctx, c.stmts.in(ctx, tx), rows)
	})
}

// mergeObjectRows applies rows in order in one transaction.
func mergeObjectRows(ctx context.Context, db *sql.DB, rows []objectRow) error {
	return inTx(ctx, db, func(tx *sql.Tx) error {
		st, err := prepareObjectRowStmts(ctx, tx)
		if err != nil {
			return err
		}
		return mergeObjectRowsTx(ctx, st, rows)
	})
}

// inTx runs fn in a transaction on db and commits if it succeeds.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("merge object rows: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return fmt.Errorf("merge object rows: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("merge object rows: commit: %w", err)
	}
	return nil
}

// objectRowStmts are the statements that merge object rows.
type objectRowStmts struct{ sel, ins, upd, stat, bput *sql.Stmt }

// prepareObjectRowStmts prepares them on a database handle (reused on
// every connection and transaction) or on one transaction.
func prepareObjectRowStmts(ctx context.Context, p interface {
	PrepareContext(context.Context, string) (*sql.Stmt, error)
}) (*objectRowStmts, error) {
	var st objectRowStmts
	for _, s := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&st.sel, `SELECT created_at, size, content_type, etag, deleted, storage_policy_index FROM object WHERE name = ?`},
		{&st.ins, `INSERT INTO object (name, created_at, size, content_type, etag, deleted, bucket) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&st.upd, `UPDATE object SET created_at = ?, size = ?, content_type = ?, etag = ?, deleted = ? WHERE name = ?`},
		{&st.stat, `UPDATE container_stat SET object_count = object_count + ?, bytes_used = bytes_used + ?`},
		{&st.bput, bucketPutQuery},
	} {
		var err error
		if *s.dst, err = p.PrepareContext(ctx, s.q); err != nil {
			return nil, fmt.Errorf("prepare: %w", err)
		}
	}
	return &st, nil
}

// in binds database-level statements to tx; database/sql reuses what it
// prepared on tx's connection before.
func (st *objectRowStmts) in(ctx context.Context, tx *sql.Tx) *objectRowStmts {
	return &objectRowStmts{sel: tx.StmtContext(ctx, st.sel), ins: tx.StmtContext(ctx, st.ins),
		upd: tx.StmtContext(ctx, st.upd), stat: tx.StmtContext(ctx, st.stat),
		bput: tx.StmtContext(ctx, st.bput)}
}

// mergeObjectRowsTx applies rows in order with last-write-wins by
// timestamp (a later row of the same name sees the earlier ones) and
// moves the container's counters and the bucket hashes once for all of
// them. st's statements belong to the transaction.
func mergeObjectRowsTx(ctx context.Context, st *objectRowStmts, rows []objectRow) error {
	var dCount, dBytes int64
	delta := bucketDelta{}
	for _, r := range rows {
		del := int64(0)
		if r.deleted {
			del = 1
		}
		var old DBRow
		var oldDeleted int64
		err := st.sel.QueryRowContext(ctx, r.name).Scan(&old.Created, &old.Size, &old.ContentType, &old.ETag, &oldDeleted, &old.Policy)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := st.ins.ExecContext(ctx, r.name, r.ts.Internal(), r.size, r.ctype, r.etag, del, rowBucket(r.name)); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if ts, _ := parseTimestamp(old.Created); ts.Compare(r.ts) >= 0 {
				continue // what we hold is as new or newer
			}
			if _, err := st.upd.ExecContext(ctx, r.ts.Internal(), r.size, r.ctype, r.etag, del, r.name); err != nil {
				return err
			}
			old.Name, old.Deleted = r.name, oldDeleted != 0
			delta.flip(old)
			if oldDeleted == 0 {
				dCount, dBytes = dCount-1, dBytes-old.Size
			}
		}
		// The row as stored: an update keeps the row's policy, an
		// insert takes the column's default.
		delta.flip(DBRow{Name: r.name, Created: r.ts.Internal(), Size: r.size, ContentType: r.ctype,
			ETag: r.etag, Deleted: r.deleted, Policy: old.Policy})
		if !r.deleted {
			dCount++
			dBytes += r.size
		}
	}
	if dCount != 0 || dBytes != 0 {
		if _, err := st.stat.ExecContext(ctx, dCount, dBytes); err != nil {
			return err
		}
	}
	return delta.apply(ctx, st.bput)
}

// commitObjectRow merges row into t's container database through the
// database's group committer; 404 when there is no database.
func (s *dbServer) commitObjectRow(ctx context.Context, t target, row objectRow) error {
	e, release, err := s.dbs.acquire(t.dbPath())
	if err != nil {
		return mapNoDB(err)
	}
	defer release()
	return e.rows.merge(ctx, row)
}
