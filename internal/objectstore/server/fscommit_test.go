package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// injectSync replaces the process's filesystem committers with ones that
// call sync instead of syncfs, for the rest of the test.
func injectSync(t *testing.T, sync func(fd int) error) {
	old := fsCommits.Swap(newFSCommitters(sync))
	t.Cleanup(func() { fsCommits.Store(old) })
}

// TestFSCommitAcksAfterALaterSync has writers finish their writes at
// random moments while syncs run, and checks for each writer that its
// commit returned only after a sync that had *started* after its write
// ended: a sync already running may have missed the write.
func TestFSCommitAcksAfterALaterSync(t *testing.T) {
	var clock atomic.Int64 // orders events across goroutines
	type span struct{ start, end int64 }
	var mu sync.Mutex
	var syncs []span
	injectSync(t, func(int) error {
		s := span{start: clock.Add(1)}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		s.end = clock.Add(1)
		mu.Lock()
		syncs = append(syncs, s)
		mu.Unlock()
		return nil
	})
	dir := t.TempDir()
	const writers = 200
	written := make([]int64, writers)
	acked := make([]int64, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk, err := beginFSCommit(dir)
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) // the write
			written[i] = clock.Add(1)
			if err := tk.commit(t.Context()); err != nil {
				t.Error(err)
			}
			acked[i] = clock.Add(1)
		}()
	}
	wg.Wait()
	if len(syncs) >= writers {
		t.Errorf("%d syncs for %d writers: nothing was grouped", len(syncs), writers)
	}
	for i := range writers {
		ok := false
		for _, s := range syncs {
			if s.start > written[i] && s.end < acked[i] {
				ok = true
				break
			}
		}
		if !ok {
			t.Fatalf("writer %d (written at %d, acked at %d) had no sync between: %v", i, written[i], acked[i], syncs)
		}
	}
	if c := fsCommits.Load().get(devOf(t, dir)); c.fd != -1 || c.tickets != 0 || c.writing != 0 {
		t.Fatalf("idle committer holds fd %d, %d tickets, %d writing", c.fd, c.tickets, c.writing)
	}
}

// TestFSCommitWaitsForTheNextSync pins the order down with a sync that
// blocks: a writer that submits while a sync runs is answered by the
// next one, never by the running one.
func TestFSCommitWaitsForTheNextSync(t *testing.T) {
	started := make(chan int, 2)
	release := make(chan struct{})
	var n atomic.Int32
	injectSync(t, func(int) error {
		started <- int(n.Add(1))
		<-release
		return nil
	})
	dir := t.TempDir()
	a, err := beginFSCommit(dir)
	if err != nil {
		t.Fatal(err)
	}
	aDone := make(chan error, 1)
	go func() { aDone <- a.commit(t.Context()) }()
	if got := <-started; got != 1 {
		t.Fatalf("first sync is %d", got)
	}
	b, err := beginFSCommit(dir)
	if err != nil {
		t.Fatal(err)
	}
	bDone := make(chan error, 1)
	go func() { bDone <- b.commit(t.Context()) }()
	time.Sleep(20 * time.Millisecond) // let b queue behind sync 1
	release <- struct{}{}
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bDone:
		t.Fatalf("b acknowledged by the sync that was running when it submitted (%v)", err)
	case got := <-started:
		if got != 2 {
			t.Fatalf("second sync is %d", got)
		}
	}
	select {
	case <-bDone:
		t.Fatal("b acknowledged before its sync ended")
	case <-time.After(20 * time.Millisecond):
	}
	release <- struct{}{}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
}

// TestFSCommitReportsErrorsOfSyncsDuringTheWrite: a writeback error is
// reported once, to whichever syncfs comes next, and may concern the
// pages of a writer that is still writing; that writer must fail too.
func TestFSCommitReportsErrorsOfSyncsDuringTheWrite(t *testing.T) {
	var fail atomic.Bool
	injectSync(t, func(int) error {
		if fail.Load() {
			return errors.New("EIO")
		}
		return nil
	})
	dir := t.TempDir()
	slow, err := beginFSCommit(dir) // still writing when the error comes
	if err != nil {
		t.Fatal(err)
	}
	fast, err := beginFSCommit(dir)
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	if err := fast.commit(t.Context()); err == nil {
		t.Fatal("failed sync acknowledged")
	}
	fail.Store(false)
	if err := slow.commit(t.Context()); !errors.Is(err, errEarlierCommitFailed) {
		t.Fatalf("writer during a failed sync: %v", err)
	}
	later, err := beginFSCommit(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := later.commit(t.Context()); err != nil {
		t.Fatalf("writer after the failure: %v", err)
	}
}

// TestAcknowledgedPutsAreInTheLastSync stores objects concurrently
// through the object server with a sync that records the object files on
// the device at the moment it starts (what a real syncfs would make
// durable), and checks that every acknowledged PUT's file, with its
// bytes, is in a record completed before the acknowledgement: a crash
// right after it keeps the object.
func TestAcknowledgedPutsAreInTheLastSync(t *testing.T) {
	n := newNode(t)
	var mu sync.Mutex
	var images []map[string]string // completed syncs' views of the device
	injectSync(t, func(int) error {
		img := snapshotData(n.dev)
		time.Sleep(time.Millisecond) // a flush takes time; let writers queue
		mu.Lock()
		images = append(images, img)
		mu.Unlock()
		return nil
	})
	// A writer alone on its filesystem fsyncs on its own (fsyncAlone);
	// a ticket held throughout keeps every PUT on the group path.
	hold, err := beginFSCommit(n.dev)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.release()
	const objs, workers = 64, 16
	type ack struct {
		dir, body string
		images    int // syncs completed when the PUT was acknowledged
	}
	acks := make([]ack, objs)
	concurrently(objs, workers, func(i int) {
		part, name, body := fmt.Sprint(i%8), fmt.Sprintf("o%02d", i), fmt.Sprintf("body %d", i)
		r := n.putObject(t, "/sda/"+part+"/a/c/"+name, n.ts(), body, nil)
		mu.Lock()
		acks[i] = ack{dir: n.objDir(part, "a", "c", name), body: body, images: len(images)}
		mu.Unlock()
		if r.status != 201 {
			t.Errorf("put %s: %d", name, r.status)
		}
	})
	if len(images) >= objs {
		t.Errorf("%d syncs for %d PUTs: nothing was grouped", len(images), objs)
	}
	for i, a := range acks {
		if a.images == 0 {
			t.Fatalf("object %d acknowledged before any sync", i)
		}
		found := false
		for p, b := range images[a.images-1] {
			if filepath.Dir(p) == a.dir && b == a.body {
				found = true
			}
		}
		if !found {
			t.Fatalf("object %d (%s) acknowledged but not in the sync before its acknowledgement", i, a.dir)
		}
	}
}

// TestLoneWriterSyncsAlone: with no other writer on the filesystem a PUT
// does not wait for a syncfs (two flushes in a row); with one it does.
func TestLoneWriterSyncsAlone(t *testing.T) {
	n := newNode(t)
	var syncs atomic.Int32
	injectSync(t, func(int) error { syncs.Add(1); return nil })
	expectStatus(t, n.putObject(t, "/sda/1/a/c/lone", n.ts(), "x", nil), 201, "lone put")
	if got := syncs.Load(); got != 0 {
		t.Fatalf("a lone PUT waited for %d syncfs", got)
	}
	hold, err := beginFSCommit(n.dev)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.release()
	expectStatus(t, n.putObject(t, "/sda/1/a/c/shared", n.ts(), "x", nil), 201, "shared put")
	if got := syncs.Load(); got != 1 {
		t.Fatalf("a PUT beside another writer waited for %d syncfs, want 1", got)
	}
}

// TestOverwriteIsDurableBeforeItsName: a syncfs orders nothing, so a
// file linked beside an older version must have been fsynced before the
// link (or a crash could leave a corrupt newer file hiding the older
// one); a file in a new hash dir needs no fsync before its name.
func TestOverwriteIsDurableBeforeItsName(t *testing.T) {
	n := newNode(t)
	c := newFSCommitters(func(int) error { return nil })
	var mu sync.Mutex
	var filesAtSync []int // per fsync of a file: files in the hash dir then
	dir := n.objDir("1", "a", "c", "o")
	c.syncFile = func(f *os.File) error {
		mu.Lock()
		defer mu.Unlock()
		filesAtSync = append(filesAtSync, len(listDir(t, dir)))
		return f.Sync()
	}
	old := fsCommits.Swap(c)
	t.Cleanup(func() { fsCommits.Store(old) })
	hold, err := beginFSCommit(n.dev) // keep PUTs on the group path
	if err != nil {
		t.Fatal(err)
	}
	defer hold.release()

	expectStatus(t, n.putObject(t, "/sda/1/a/c/o", n.ts(), "first", nil), 201, "new object")
	if len(filesAtSync) != 0 {
		t.Fatalf("a new object's file was fsynced on its own: %v", filesAtSync)
	}
	expectStatus(t, n.putObject(t, "/sda/1/a/c/o", n.ts(), "second", nil), 201, "overwrite")
	// One fsync, while the hash dir held only the first version.
	if len(filesAtSync) != 1 || filesAtSync[0] != 1 {
		t.Fatalf("overwrite: files in the hash dir at each fsync of the new file %v, want [1]", filesAtSync)
	}
}

// snapshotData reads every .data file under dev, tolerating files that
// vanish while it walks.
func snapshotData(dev string) map[string]string {
	img := map[string]string{}
	filepath.WalkDir(filepath.Join(dev, objectsDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".data" {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil {
			img[p] = string(b)
		}
		return nil
	})
	return img
}

func devOf(t *testing.T, dir string) uint64 {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Dev
}

// TestFSCommitCoveredBySyncAfterWritten: a writer that said it was done
// writing is answered without a sync of its own once a sync that began
// after that has ended (the container row's sync covers the object), but
// never by one that was already running when it finished writing.
func TestFSCommitCoveredBySyncAfterWritten(t *testing.T) {
	started := make(chan struct{}, 4)
	release := make(chan struct{}, 4)
	var syncs atomic.Int32
	injectSync(t, func(int) error {
		syncs.Add(1)
		started <- struct{}{}
		<-release
		return nil
	})
	dir := t.TempDir()
	begin := func() *fsTicket {
		tk, err := beginFSCommit(dir)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}

	// A sync already running when the writer finishes does not cover it.
	obj, other := begin(), begin()
	otherDone := make(chan error, 1)
	go func() { otherDone <- other.commit(t.Context()) }()
	<-started
	obj.written()
	release <- struct{}{}
	if err := <-otherDone; err != nil {
		t.Fatal(err)
	}
	objDone := make(chan error, 1)
	go func() { objDone <- obj.commit(t.Context()) }()
	select {
	case <-started: // it needs a sync of its own
	case err := <-objDone:
		t.Fatalf("answered (%v) by a sync that was running when it finished writing", err)
	}
	release <- struct{}{}
	if err := <-objDone; err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load(); n != 2 {
		t.Fatalf("%d syncs, want 2", n)
	}

	// A sync that began after written covers it.
	obj, row := begin(), begin()
	obj.written()
	release <- struct{}{} // let the row's sync through at once
	if err := row.commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := obj.commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load(); n != 3 {
		t.Fatalf("%d syncs, want 3: the object's commit was not covered by the row's sync", n)
	}

	// A covering sync that failed fails the covered writer too.
	injectSync(t, func(int) error { return errors.New("EIO") })
	obj, row = begin(), begin()
	obj.written()
	if err := row.commit(t.Context()); err == nil {
		t.Fatal("the failing sync reported no error")
	}
	if err := obj.commit(t.Context()); err == nil {
		t.Fatal("a writer covered by a failed sync was acknowledged")
	}
}

// TestPutAndItsRowShareOneSync: an object PUT sends its container update
// before it commits, so the sync that makes the listing row durable
// (which began after the object was written) answers the object too.
func TestPutAndItsRowShareOneSync(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	var syncs atomic.Int32
	injectSync(t, func(int) error { syncs.Add(1); return nil })
	expectStatus(t, n.putObject(t, "/sda/1/a/c/o", n.ts(), "x", n.containerHeaders()), 201, "put")
	if got := syncs.Load(); got != 1 {
		t.Fatalf("a PUT and its listing row took %d syncs, want 1", got)
	}
	if got := listing(t, n.contURL+"/sda/1/a/c", nil); len(got) != 1 {
		t.Fatalf("listing %v", got)
	}
}

// A leader about to sync with no other writer known first lets runnable
// goroutines run: a writer started but not yet scheduled (the third
// replica of a PUT, with fewer cores than replicas) joins its sync
// instead of needing one of its own. One P makes the order certain.
func TestFSCommitLetsAStartedWriterJoin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var syncs atomic.Int32
	injectSync(t, func(int) error { syncs.Add(1); return nil })
	dir := t.TempDir()
	first, err := beginFSCommit(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { // runnable, but not running until the first writer yields
		second, err := beginFSCommit(dir)
		if err != nil {
			done <- err
			return
		}
		done <- second.commit(context.Background())
	}()
	if err := first.commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load(); got != 1 {
		t.Fatalf("two writers took %d syncs, want 1", got)
	}
}
