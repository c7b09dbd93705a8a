package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Object files are made durable by filesystem-wide group commit rather
// than by fsyncs of their own.
//
// A durable small PUT used to fsync its file, its hash dir and the parent
// of every directory it created, on each of three replicas: about nine
// device cache flushes per object, and on ext4 without a journal each
// fsync is its own flush. Here a writer writes its file and links it into
// place without any fsync, then asks its filesystem's committer for a
// syncfs(2) that starts after that; every writer that asked meanwhile is
// answered by the same syncfs. Ceph's FileStore committed the same way.
//
// What one syncfs makes durable (fs/sync.c, sync_filesystem): it writes
// back every dirty inode of the filesystem and waits (data pages, and the
// inode with its xattrs), has the filesystem commit its metadata
// (->sync_fs: a journal commit with a flush on ext4 with a journal, a
// log force on XFS, which logs directory changes and inode sizes), and
// writes and waits for the block device's dirty buffers, where ext4
// without a journal keeps its directory blocks, inode tables and bitmaps.
// In that last case the device flush is issued from ->sync_fs *before*
// the final write of those buffers, so they could sit in the disk's
// volatile cache when syncfs returns; an fsync of any file there issues
// one more flush (ext4_sync_file always flushes without a journal), so
// the committer fsyncs the directory it holds open after the syncfs. On a
// filesystem with a journal that fsync finds nothing to do.
//
// Errors: syncfs reports writeback errors of the whole filesystem that
// happened since the descriptor last saw one (errseq), even when the
// failed write was started by the kernel's own writeback before the
// syncfs. A writer therefore fails if any commit that ended after it
// began reported an error, not only the one holding it: the error may
// have been its own pages, reported to an earlier commit.

// fsCommitter group-commits the writes to one filesystem.
type fsCommitter struct {
	sync  func(fd int) error
	group groupCommit[struct{}]

	mu       sync.Mutex
	fd       int                  // guarded by mu: a directory on the filesystem, open while tickets > 0
	tickets  int                  // guarded by mu: writers between begin and commit or release
	writing  int                  // guarded by mu: tickets not yet submitted for commit
	settled  chan struct{}        // guarded by mu: closed when writing falls to 0
	awaiting int                  // guarded by mu: tickets done writing (written) but not yet submitted
	company  chan struct{}        // guarded by mu: closed when a commit is queued
	started  uint64               // guarded by mu: commits begun (one runs at a time)
	commits  uint64               // guarded by mu: commits ended
	flushers map[flusher]struct{} // guarded by mu: to run before the next sync
	failedAt uint64               // guarded by mu: number of the last commit that failed, 0 if none
}

// fsTicket is one writer's claim on a commit of its filesystem, taken
// before it writes (so that errors reported after that are its own) and
// ended by commit or release.
type fsTicket struct {
	c         *fsCommitter
	since     uint64 // commits ended when the ticket was taken
	wrote     bool   // the writer said it was done writing (written or commit)
	awaiting  bool   // it said so with written and has not submitted or released since
	writtenAt uint64 // commits begun at that moment
	submitted bool   // commit was called
	ended     bool
}

// errEarlierCommitFailed fails a writer whose own commit succeeded but an
// earlier one, ended while it was writing, did not: that error may have
// been about its pages.
var errEarlierCommitFailed = errors.New("a filesystem sync during the write reported an error")

// begin takes a ticket. dir must be a directory on the committer's
// filesystem; it is opened when no ticket is held, so no descriptor keeps
// an idle device from being unmounted.
func (c *fsCommitter) begin(dir string) (*fsTicket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tickets == 0 {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s for syncfs: %w", dir, err)
		}
		c.fd = fd
	}
	c.tickets++
	c.writing++
	return &fsTicket{c: c, since: c.commits}, nil
}

// gatherMax bounds how long a commit waits for writers still writing.
// The replicas of one object arrive at a node's devices together and
// finish within a fraction of a millisecond of each other; without the
// wait the first would sync alone and the others would need a second
// sync after it, two flushes of latency for a lone PUT instead of one.
const gatherMax = time.Millisecond

// companyMax bounds how long a commit waits for the listing rows of
// objects that are done writing: an object server sends its container
// updates before it commits (see ObjectServer.put), the rows of one PUT
// reach their containers within a fraction of a millisecond of each
// other, and a sync that started with the first row alone would leave
// the others (and so the PUT) to the next.
const companyMax = 300 * time.Microsecond

// gather waits, at most gatherMax, until every ticket holder has finished
// writing and submitted or released, and then, at most companyMax, until
// as many commits are queued as there are writers waiting on their
// container updates.
func (c *fsCommitter) gather() {
	start := time.Now()
	var companyFrom time.Time // when the wait for rows began
	yielded := false          // runtime.Gosched once, see below
	for {
		c.mu.Lock()
		var wait chan struct{}
		var until time.Time
		switch {
		case c.writing > 0:
			if c.settled == nil {
				c.settled = make(chan struct{})
			}
			wait, until = c.settled, start.Add(gatherMax)
		case c.group.queued() < c.awaiting:
			if c.company == nil {
				c.company = make(chan struct{})
			}
			if companyFrom.IsZero() {
				companyFrom = time.Now()
			}
			wait, until = c.company, companyFrom.Add(companyMax)
		}
		c.mu.Unlock()
		// Nobody known to be on the way: before syncing, let goroutines
		// that are runnable but not running go first. A PUT's replicas
		// start together, but with fewer cores than replicas the last may
		// not have begun when the first row commits; it would then need a
		// sync of its own after this one (1.5 syncs per PUT at c=1 here).
		if wait == nil && !yielded {
			yielded = true
			runtime.Gosched()
			continue
		}
		d := time.Until(until)
		if wait == nil || d <= 0 {
			return
		}
		t := time.NewTimer(d)
		select {
		case <-wait:
		case <-t.C:
		}
		t.Stop()
	}
}

// arrived wakes a gather waiting for company: a commit was queued.
func (c *fsCommitter) arrived() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.company != nil {
		close(c.company)
		c.company = nil
	}
}

// doneWriting records that a ticket holder stopped writing. c.mu is held.
func (c *fsCommitter) doneWriting() {
	if c.writing--; c.writing == 0 && c.settled != nil {
		close(c.settled)
		c.settled = nil
	}
}

// written records that the writer made every change it wants durable:
// any sync that begins from now on covers them. A writer that has other
// work to do before it needs its commit (the object server's container
// update, whose own commit runs a sync of the same filesystem) says so
// first; its commit is then answered at once if such a sync has ended.
func (t *fsTicket) written() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if !t.wrote {
		t.awaiting = true
		t.c.awaiting++
	}
	t.writtenLocked()
}

// stopAwaitingLocked ends the ticket's count as a writer awaiting its
// container updates; c.mu is held.
func (t *fsTicket) stopAwaitingLocked() {
	if t.awaiting {
		t.awaiting = false
		t.c.awaiting--
	}
}

func (t *fsTicket) writtenLocked() {
	if !t.wrote {
		t.wrote = true
		t.writtenAt = t.c.started
		t.c.doneWriting()
	}
}

// covered reports whether a sync that began after the writer was done
// writing has ended; c.mu is held. Commits run one at a time, so the one
// begun next after written ended once more than writtenAt have ended.
func (t *fsTicket) coveredLocked() bool { return t.wrote && t.c.commits > t.writtenAt }

// commit returns once a filesystem sync that started after the writer
// was done writing (this call, or written) ended, with its error or that
// of any sync that ended after the ticket was taken.
func (t *fsTicket) commit(ctx context.Context) error {
	if t.ended || t.submitted {
		return errors.New("fs commit: ticket already used")
	}
	t.submitted = true
	t.c.mu.Lock()
	covered := t.coveredLocked()
	t.writtenLocked()
	t.stopAwaitingLocked()
	t.c.mu.Unlock()
	var err error
	if !covered {
		err = t.c.group.submit(ctx, struct{}{})
	}
	t.c.mu.Lock()
	failed := t.c.failedAt > t.since
	t.c.mu.Unlock()
	t.release()
	if err == nil && failed {
		err = errEarlierCommitFailed
	}
	return err
}

// alone reports whether t's writer is the only one on its filesystem, no
// commit is in flight and none covers it already: nothing could share a
// commit with it.
func (t *fsTicket) alone() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tickets == 1 && !c.group.busy() && !t.coveredLocked()
}

// release ends the ticket without a commit (an aborted write); it is a
// no-op after commit.
func (t *fsTicket) release() {
	if t.ended {
		return
	}
	t.ended = true
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.wrote {
		c.doneWriting()
	}
	t.stopAwaitingLocked()
	if c.tickets--; c.tickets == 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// flusher is work that must reach the filesystem just before a sync:
// a container database's queued listing rows (rowCommitter).
type flusher interface{ flush() }

// flushBeforeSync has the next sync run f.flush first. A writer that
// registers before it submits its commit is answered by a sync that
// began after that, so by one that flushed f (or by a later one).
func (c *fsCommitter) flushBeforeSync(f flusher) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flushers == nil {
		c.flushers = map[flusher]struct{}{}
	}
	c.flushers[f] = struct{}{}
}

// syncBatch is the group's commit: the registered flushes, then the sync.
// Its leader holds a ticket, so the descriptor stays open.
func (c *fsCommitter) syncBatch(context.Context, []struct{}) error {
	c.mu.Lock()
	fd := c.fd
	c.started++
	flushers := c.flushers
	c.flushers = nil
	c.mu.Unlock()
	flushAll(flushers)
	err := c.sync(fd)
	c.mu.Lock()
	c.commits++
	if err != nil {
		c.failedAt = c.commits
	}
	c.mu.Unlock()
	return err
}

// flushAll runs the flushers at once: they are transactions on
// different databases, CPU work more than I/O (their pages reach the disk
// with the sync that follows), and a leader that ran them one after
// another kept every writer of the filesystem waiting for their sum.
// One runs on the leader's own goroutine, whose stack has grown already.
func flushAll(flushers map[flusher]struct{}) {
	var wg sync.WaitGroup
	for f := range flushers {
		if len(flushers) == 1 {
			f.flush()
			return
		}
		wg.Go(f.flush)
	}
	wg.Wait()
}

// syncfsAndFlush makes everything written to fd's filesystem durable; see
// the comment at the top of the file for why it fsyncs after the syncfs.
func syncfsAndFlush(fd int) error {
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs: %w", err)
	}
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("flush after syncfs: %w", err)
	}
	return nil
}

// fsCommitters holds one committer per filesystem, keyed by device id:
// the devices of one node may be directories on one filesystem (as with
// `nimbus up`), which then share a committer, and in production each
// disk has its own.
type fsCommitters struct {
	sync func(fd int) error
	// syncFile is how a writer fsyncs its own file (fsync; tests watch it).
	syncFile func(*os.File) error
	mu       sync.Mutex
	byDev    map[uint64]*fsCommitter
}

func newFSCommitters(sync func(fd int) error) *fsCommitters {
	return &fsCommitters{sync: sync, syncFile: (*os.File).Sync, byDev: map[uint64]*fsCommitter{}}
}

// fsCommits is the process's committers; a pointer so that tests can
// inject sync functions.
var fsCommits atomic.Pointer[fsCommitters]

func init() { fsCommits.Store(newFSCommitters(syncfsAndFlush)) }

// beginFSCommit takes a ticket on the committer of dir's filesystem.
func beginFSCommit(dir string) (*fsTicket, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dir, err)
	}
	return fsCommits.Load().get(st.Dev).begin(dir)
}

func (r *fsCommitters) get(dev uint64) *fsCommitter {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.byDev[dev]
	if c == nil {
		c = &fsCommitter{sync: r.sync, fd: -1}
		c.group.commit, c.group.gather, c.group.arrived = c.syncBatch, c.gather, c.arrived
		r.byDev[dev] = c
	}
	return c
}
