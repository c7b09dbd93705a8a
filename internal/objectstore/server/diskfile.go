package server

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/swiftfmt"
)

// objectFiles is what a hash directory holds, resolved Swift's way: the
// newest .data or .ts wins; a .meta counts only if newer than a winning
// .data; everything else is obsolete.
type objectFiles struct {
	dir      string
	data     string // file name of the winning .data, if any
	dataTS   Timestamp
	meta     string
	metaTS   Timestamp
	ts       string // winning tombstone, if any
	tsTS     Timestamp
	obsolete []string
}

// exists reports whether a live object (not a tombstone) is on disk.
func (o *objectFiles) exists() bool { return o.data != "" }

// empty reports whether the hash dir held no object file at all.
func (o *objectFiles) empty() bool {
	return o.data == "" && o.meta == "" && o.ts == "" && len(o.obsolete) == 0
}

// newest is the timestamp of the winning .data or .ts (zero if none).
func (o *objectFiles) newest() Timestamp {
	if o.data != "" {
		return o.dataTS
	}
	return o.tsTS
}

type onDisk struct {
	name string
	ts   Timestamp
	ext  string
}

// listObjectDir reads and resolves dir. A missing dir is an empty result.
func listObjectDir(dir string) (objectFiles, error) {
	of := objectFiles{dir: dir}
	var stack [4]string
	names, err := readDirNames(dir, stack[:0])
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return of, nil
		}
		return of, fmt.Errorf("list %s: %w", dir, err)
	}
	files := make([]onDisk, 0, len(names))
	for _, name := range names {
		ext := filepath.Ext(name)
		if ext != ".data" && ext != ".meta" && ext != ".ts" {
			continue
		}
		ts, err := parseTimestamp(name[:len(name)-len(ext)])
		if err != nil {
			continue
		}
		files = append(files, onDisk{name: name, ts: ts, ext: ext})
	}
	// Newest first; at equal timestamps a tombstone beats data and data
	// beats meta, so the outcome never depends on directory order.
	slices.SortFunc(files, func(a, b onDisk) int {
		if c := a.ts.Compare(b.ts); c != 0 {
			return -c
		}
		return extRank(a.ext) - extRank(b.ext)
	})
	var metaCand *onDisk
	for i := range files {
		f := &files[i]
		if of.data != "" || of.ts != "" {
			of.obsolete = append(of.obsolete, f.name)
			continue
		}
		switch f.ext {
		case ".meta":
			if metaCand == nil {
				metaCand = f
			} else {
				of.obsolete = append(of.obsolete, f.name)
			}
		case ".data":
			of.data, of.dataTS = f.name, f.ts
		case ".ts":
			of.ts, of.tsTS = f.name, f.ts
		}
	}
	if metaCand != nil {
		if of.data != "" {
			of.meta, of.metaTS = metaCand.name, metaCand.ts
		} else {
			of.obsolete = append(of.obsolete, metaCand.name)
		}
	}
	return of, nil
}

// extRank orders files of equal timestamp: tombstone, data, meta.
func extRank(ext string) int {
	switch ext {
	case ".ts":
		return 0
	case ".data":
		return 1
	}
	return 2
}

// cleanupObjectDir removes obsolete files and tombstones older than
// reclaimAge, then the directory itself once empty, and returns what the
// dir holds after that (its winning files). Failures are harmless — the
// next write or the replicator tries again — so they are only logged by
// callers that care.
func cleanupObjectDir(dir string, reclaimAge time.Duration) (objectFiles, error) {
	of, err := listObjectDir(dir)
	if err != nil {
		return of, err
	}
	var firstErr error
	for _, n := range of.obsolete {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) && firstErr == nil {
			firstErr = fmt.Errorf("cleanup %s: %w", dir, err)
		}
	}
	of.obsolete = nil
	if of.ts != "" && time.Since(of.tsTS.Time()) > reclaimAge {
		if os.Remove(filepath.Join(dir, of.ts)) == nil {
			of.ts, of.tsTS = "", Timestamp{}
			suffixHashCache.invalidateHashDir(dir)
		}
	}
	if of.data == "" && of.meta == "" && of.ts == "" {
		_ = unix.Rmdir(dir) // fails if a file arrived meanwhile, as it should
	}
	return of, firstErr
}

// openObject is an object opened for reading: the .data file and its merged
// metadata.
type openObject struct {
	files objectFiles
	f     *os.File
	md    map[string]string
	size  int64 // bytes of object data at the start of f
}

// Close releases the data file.
func (o *openObject) Close() error {
	if o.f == nil {
		return nil
	}
	return o.f.Close()
}

// timestamp is the object's X-Timestamp: the newer of data and meta.
func (o *openObject) timestamp() Timestamp {
	if o.files.meta != "" {
		return o.files.metaTS
	}
	return o.files.dataTS
}

// openObjectDir opens the live object in dir. It returns the resolved files
// with a nil object when there is none (404). A cleanup racing with the open
// is retried.
func openObjectDir(dir string) (objectFiles, *openObject, error) {
	for attempt := 0; ; attempt++ {
		of, err := listObjectDir(dir)
		if err != nil || !of.exists() {
			return of, nil, err
		}
		f, err := os.Open(filepath.Join(dir, of.data))
		if errors.Is(err, os.ErrNotExist) && attempt < 3 {
			continue
		}
		if err != nil {
			return of, nil, fmt.Errorf("open object: %w", err)
		}
		md, size, err := readMetadataFile(f)
		if err != nil {
			f.Close()
			return of, nil, err
		}
		if of.meta != "" {
			mmd, err := readMetadata(filepath.Join(dir, of.meta))
			if errors.Is(err, os.ErrNotExist) && attempt < 3 {
				f.Close()
				continue
			}
			if err != nil {
				f.Close()
				return of, nil, err
			}
			md = mergeMeta(md, mmd)
		}
		return of, &openObject{files: of, f: f, md: md, size: size}, nil
	}
}

// dataSystemKeys survive a fast-POST: they describe the bytes of the .data
// file. Everything else (user metadata, X-Delete-At, Content-Disposition,
// ...) is replaced wholesale by the newest .meta, as Swift does.
func isDataSystemKey(k string) bool {
	switch k {
	case "name", "Content-Length", "Content-Type", "ETag", "X-Static-Large-Object", dataChecksumKey:
		return true
	}
	return strings.HasPrefix(k, "X-Object-Sysmeta-")
}

func mergeMeta(data, meta map[string]string) map[string]string {
	out := make(map[string]string, len(data)+len(meta))
	for k, v := range data {
		if isDataSystemKey(k) {
			out[k] = v
		}
	}
	for k, v := range meta {
		if k == "Content-Length" || k == "ETag" || k == dataChecksumKey {
			continue
		}
		out[k] = v
	}
	// A POST's content type keeps the data's swift_bytes: the large
	// object's size still belongs in its listing, as Swift's object server
	// re-appends it.
	if ct, ok := meta["Content-Type"]; ok {
		if _, n, found := swiftfmt.ExtractSwiftBytes(data["Content-Type"]); found {
			out["Content-Type"] = swiftfmt.WithSwiftBytes(ct, n)
		}
	}
	return out
}

// diskWriter streams a new file while hashing it, then commits it into a
// hash dir atomically: xattr, link or rename, and a group commit of its
// filesystem (fscommit.go) that makes file and directories durable.
// Abort (or a crash) leaves nothing visible: an unnamed O_TMPFILE
// vanishes, a named tmp file is reclaimed by the updater's sweep.
type diskWriter struct {
	f       *os.File
	md5     hash.Hash
	hashed  bool   // Write feeds md5 (not when the body's digest comes from elsewhere)
	crc     uint32 // CRC-32C of what was written (checksum.go)
	n       int64
	devPath string
	// ticket is the claim on the filesystem commit, taken before the file
	// was created.
	ticket *fsTicket
	// anon: f is an O_TMPFILE without a name, to be linked into place.
	anon bool
	// created are the directories newDiskWriterIn made, deepest first;
	// abort removes them if empty.
	created []string
	// Write-behind: bytes below started have been handed to the disk,
	// bytes below waited have reached it (see Write).
	started, waited int64
	done            bool
}

// writeBehind is how much a large write may run ahead of the disk. Every
// writeBehind bytes Write starts writeback of what came in and waits for
// the chunk before it, so the disk works while the body arrives and the
// final fsync has little left to do, where it would otherwise write the
// whole object at the end (three whole objects at once, with three
// replicas on one disk). The same as Swift's mb_per_sync, with a smaller
// step. It changes when bytes reach the disk, not what is acknowledged:
// commit still fsyncs.
const writeBehind = 8 << 20

// ownSyncMin is the size from which a file is fsynced by its writer
// before the group commit: syncfs writes back every dirty page of the
// filesystem, and the small writes that share a commit should not wait
// for a large object's data.
const ownSyncMin = 1 << 20

// newDiskWriter starts a named file in the device's tmp dir.
func newDiskWriter(devPath string) (*diskWriter, error) {
	ticket, err := beginFSCommit(devPath)
	if err != nil {
		return nil, err
	}
	f, err := createTmp(devPath, "obj-*")
	if err != nil {
		ticket.release()
		return nil, err
	}
	return &diskWriter{f: f, md5: md5.New(), hashed: true, devPath: devPath, ticket: ticket}, nil
}

// newDiskWriterIn starts a file that commit will put into dir: an unnamed
// O_TMPFILE in dir itself, as Swift 2.30 writes objects, or a named tmp
// file where the filesystem has no O_TMPFILE. Unlike a named file in the
// device's tmp dir it needs no create there and no rename out of it,
// directory operations that every concurrent write on the device would
// otherwise take that one directory's lock for.
func newDiskWriterIn(devPath, dir string) (*diskWriter, error) {
	if !tmpfileOK.Load() {
		return newDiskWriter(devPath)
	}
	ticket, err := beginFSCommit(devPath)
	if err != nil {
		return nil, err
	}
	created, err := mkdirAllTracked(dir)
	if err != nil {
		ticket.release()
		return nil, err
	}
	f, err := openTmpfile(dir)
	if err != nil {
		removeEmptyDirs(created)
		ticket.release()
		if errors.Is(err, errNoTmpfile) {
			tmpfileOK.Store(false)
			return newDiskWriter(devPath)
		}
		return nil, err
	}
	return &diskWriter{f: f, md5: md5.New(), hashed: true, devPath: devPath, ticket: ticket, anon: true, created: created}, nil
}

// tmpfileOK is cleared the first time a filesystem refuses O_TMPFILE (or
// /proc, needed to link one, is missing); writes then use named files.
var tmpfileOK = func() *atomic.Bool {
	var b atomic.Bool
	_, err := os.Stat("/proc/self/fd")
	b.Store(err == nil)
	return &b
}()

var errNoTmpfile = errors.New("O_TMPFILE not supported")

// openTmpfile opens an unnamed file in dir.
func openTmpfile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o640)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return nil, errNoTmpfile
		}
		return nil, fmt.Errorf("create tmp file in %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(tmpfile)")), nil
}

// removeEmptyDirs removes dirs (deepest first) while they are empty.
func removeEmptyDirs(dirs []string) {
	for _, d := range dirs {
		if unix.Rmdir(d) != nil {
			return
		}
	}
}

// createTmp creates a file in the device's tmp dir, where the updater's
// sweep reclaims what a crash leaves behind.
func createTmp(devPath, pattern string) (*os.File, error) {
	td := filepath.Join(devPath, tmpDir)
	f, err := os.CreateTemp(td, pattern)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(td, 0o750); err != nil {
			return nil, fmt.Errorf("create tmp dir: %w", err)
		}
		f, err = os.CreateTemp(td, pattern)
	}
	if err != nil {
		return nil, fmt.Errorf("create tmp file: %w", err)
	}
	return f, nil
}

func (w *diskWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if w.hashed {
		w.md5.Write(p[:n])
	}
	w.crc = crc32.Update(w.crc, castagnoli, p[:n])
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write tmp file: %w", err)
	}
	if w.n-w.started >= writeBehind {
		if err := w.startWriteback(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// startWriteback waits until the previously started chunk is on the disk
// and starts writeback of the bytes written since. Its errors must not be
// dropped: the kernel reports a writeback error once per file, and the
// final fsync would not see it again.
func (w *diskWriter) startWriteback() error {
	fd := int(w.f.Fd())
	if w.started > w.waited {
		err := unix.SyncFileRange(fd, w.waited, w.started-w.waited,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		if err != nil {
			return fmt.Errorf("write back %s: %w", w.f.Name(), err)
		}
		w.waited = w.started
	}
	if err := unix.SyncFileRange(fd, w.started, w.n-w.started, unix.SYNC_FILE_RANGE_WRITE); err != nil {
		return fmt.Errorf("write back %s: %w", w.f.Name(), err)
	}
	w.started = w.n
	return nil
}

// preallocate reserves size bytes for the file, so that a full disk
// refuses a large object before its body is read (507), and the file is
// laid out in few extents. Filesystems without fallocate just skip it.
func (w *diskWriter) preallocate(size int64) error {
	err := unix.Fallocate(int(w.f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, size)
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("preallocate %s: %w", w.f.Name(), err)
	}
	return nil
}

// etag is the hex MD5 of what was written, when hashed.
func (w *diskWriter) etag() string { return hex.EncodeToString(w.md5.Sum(nil)) }

// checksum is the data checksum of what was written, as metadata keeps it.
func (w *diskWriter) checksum() string { return formatChecksum(w.crc) }

// abort discards the file.
func (w *diskWriter) abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	w.ticket.release()
	if w.anon {
		removeEmptyDirs(w.created)
		return
	}
	os.Remove(w.f.Name())
}

// commit makes the file durable and visible as dir/name, with md in its
// metadata xattr unless md is nil.
func (w *diskWriter) commit(md map[string]string, dir, name string) error {
	durable, err := w.publish(md, dir, name)
	if err != nil {
		return err
	}
	return durable()
}

// publish is commit up to the point where dir/name is visible; the
// returned func makes file and name durable (the filesystem's group
// commit, answered at once by any sync of the filesystem that began after
// publish returned and has ended). Callers may do other work before it
// but must not acknowledge the write before it returned nil.
func (w *diskWriter) publish(md map[string]string, dir, name string) (durable func() error, err error) {
	defer w.abort()
	if md != nil {
		if err := writeMetadata(w.f, md); err != nil {
			return nil, err
		}
	}
	// A syncfs makes names and data durable in no particular order, so a
	// crash during one may keep a name whose data never reached the disk.
	// That is harmless for a new hash dir: the write was not acknowledged
	// and a corrupt file is quarantined. Beside an older version it is
	// not: the corrupt newer file would hide it, and quarantine moves the
	// whole hash dir. Such files, and large ones (see ownSyncMin), are
	// therefore made durable before they get their name, as before.
	newDir := w.anon && len(w.created) > 0 && w.created[0] == dir
	synced := w.n >= ownSyncMin || !newDir
	if synced {
		if err := fsCommits.Load().syncFile(w.f); err != nil {
			return nil, fmt.Errorf("fsync %s: %w", w.f.Name(), err)
		}
	}
	// A cleanup of the same object may remove the (empty) hash dir between
	// our mkdir and the link or rename; recreate it and try again.
	created := w.created
	dst := filepath.Join(dir, name)
	for attempt := 0; ; attempt++ {
		if attempt > 0 || !w.anon {
			made, err := mkdirAllTracked(dir)
			if err != nil {
				return nil, err
			}
			created = append(created, made...)
		}
		if w.anon {
			err = linkTmpfile(w.f, dst)
		} else {
			err = os.Rename(w.f.Name(), dst)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) || attempt >= 3 {
			return nil, fmt.Errorf("put %s into %s: %w", name, dir, err)
		}
	}
	suffixHashCache.invalidateHashDir(dir)
	// File and ticket now belong to the returned func: abort must not
	// end them.
	w.done = true
	f, ticket := w.f, w.ticket
	ticket.written()
	return func() error {
		var err error
		if ticket.alone() {
			ticket.release()
			err = fsyncAlone(f, synced, dir, created)
		} else {
			err = ticket.commit(context.Background())
		}
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("commit %s: %w", dst, err)
		}
		return nil
	}, nil
}

// fsyncAlone makes a writer's file durable with fsyncs of its own, when
// no other write on its filesystem could share a syncfs: the file (unless
// synced already), its directory and the parents of the directories
// created for it, all at once so that their flushes overlap. A syncfs
// would take two flushes one after the other (see fscommit.go), and all
// the filesystem's dirty data.
func fsyncAlone(f *os.File, synced bool, dir string, created []string) error {
	fileErr := make(chan error, 1)
	go func() {
		if synced {
			fileErr <- nil
			return
		}
		if err := fsCommits.Load().syncFile(f); err != nil {
			fileErr <- fmt.Errorf("fsync %s: %w", f.Name(), err)
			return
		}
		fileErr <- nil
	}()
	err := fsyncCreated(dir, created)
	return errors.Join(<-fileErr, err)
}

// linkTmpfile gives the O_TMPFILE f the name dst, replacing what is
// there, as a rename would.
func linkTmpfile(f *os.File, dst string) error {
	src := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
	if !errors.Is(err, unix.EEXIST) {
		if err != nil {
			return &os.LinkError{Op: "link", Old: src, New: dst, Err: err}
		}
		return nil
	}
	// Only a write that raced one with the same timestamp gets here:
	// link beside it, then rename over it.
	tmp := dst + ".tmp-" + strconv.FormatUint(rand.Uint64(), 36)
	if err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, tmp, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "link", Old: src, New: tmp, Err: err}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// fsyncCreated makes a new entry of dir durable: dir is synced, and so is
// the parent of every directory created on the way to it.
func fsyncCreated(dir string, created []string) error {
	return fsyncDirs(append([]string{dir}, parentDirs(created)...))
}

// parentDirs are the parents of dirs.
func parentDirs(dirs []string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = filepath.Dir(d)
	}
	return out
}

// fsyncDirs syncs dirs concurrently: the filesystem journal folds
// simultaneous syncs into one commit, where one after another would each
// pay for a cache flush.
func fsyncDirs(dirs []string) error {
	if len(dirs) == 1 {
		return fsyncPath(dirs[0])
	}
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fsyncPath(d)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mkdirAllTracked is os.MkdirAll that returns the directories it created,
// deepest first. It tries the mkdir first: in the common case (the hash
// dir is new, its suffix dir is not) that is one system call, where
// stat-ing every level first costs several.
func mkdirAllTracked(dir string) ([]string, error) {
	err := os.Mkdir(dir, 0o750)
	switch {
	case err == nil:
		return []string{dir}, nil
	case errors.Is(err, os.ErrExist):
		return nil, nil
	case !errors.Is(err, os.ErrNotExist) || filepath.Dir(dir) == dir:
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	made, err := mkdirAllTracked(filepath.Dir(dir))
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		if errors.Is(err, os.ErrExist) {
			return made, nil
		}
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	return append([]string{dir}, made...), nil
}

// fsyncPath makes what was written to a file or directory durable (an
// fsync on a read-only descriptor syncs the inode all the same).
func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s for fsync: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// writeFileAtomic writes b as dir/name through the device tmp dir (used for
// tombstones, .meta files and async pendings).
func writeFileAtomic(devPath, dir, name string, b []byte, md map[string]string) error {
	w, err := newDiskWriterIn(devPath, dir)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.abort()
		return err
	}
	return w.commit(md, dir, name)
}
