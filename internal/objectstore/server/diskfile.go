package server

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
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
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return of, nil
		}
		return of, fmt.Errorf("list %s: %w", dir, err)
	}
	var files []onDisk
	for _, e := range ents {
		name := e.Name()
		ext := filepath.Ext(name)
		if ext != ".data" && ext != ".meta" && ext != ".ts" {
			continue
		}
		ts, err := parseTimestamp(strings.TrimSuffix(name, ext))
		if err != nil {
			continue
		}
		files = append(files, onDisk{name: name, ts: ts, ext: ext})
	}
	// Newest first; at equal timestamps a tombstone beats data and data
	// beats meta, so the outcome never depends on directory order.
	rank := map[string]int{".ts": 0, ".data": 1, ".meta": 2}
	sort.Slice(files, func(i, j int) bool {
		if c := files[i].ts.Compare(files[j].ts); c != 0 {
			return c > 0
		}
		return rank[files[i].ext] < rank[files[j].ext]
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

// cleanupObjectDir removes obsolete files and tombstones older than
// reclaimAge, then the directory itself once empty. Failures are harmless —
// the next write or the replicator tries again — so they are only logged by
// callers that care.
func cleanupObjectDir(dir string, reclaimAge time.Duration) error {
	of, err := listObjectDir(dir)
	if err != nil {
		return err
	}
	var firstErr error
	for _, n := range of.obsolete {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) && firstErr == nil {
			firstErr = fmt.Errorf("cleanup %s: %w", dir, err)
		}
	}
	if of.ts != "" && time.Since(of.tsTS.Time()) > reclaimAge {
		_ = os.Remove(filepath.Join(dir, of.ts))
	}
	_ = os.Remove(dir) // succeeds only when empty
	return firstErr
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
	case "name", "Content-Length", "Content-Type", "ETag", "X-Static-Large-Object":
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
		if k == "Content-Length" || k == "ETag" {
			continue
		}
		out[k] = v
	}
	return out
}

// diskWriter streams a new file into a device's tmp dir while hashing it,
// then commits it into a hash dir atomically: fsync, xattr, rename, fsync
// of the directories that changed. Abort (or a crash) leaves only a tmp file
// that the updater loop reclaims.
type diskWriter struct {
	f       *os.File
	md5     hash.Hash
	n       int64
	devPath string
	done    bool
}

func newDiskWriter(devPath string) (*diskWriter, error) {
	f, err := createTmp(devPath, "obj-*")
	if err != nil {
		return nil, err
	}
	return &diskWriter{f: f, md5: md5.New(), devPath: devPath}, nil
}

// createTmp creates a file in the device's tmp dir, where the updater's
// sweep reclaims what a crash leaves behind.
func createTmp(devPath, pattern string) (*os.File, error) {
	td := filepath.Join(devPath, tmpDir)
	if err := os.MkdirAll(td, 0o750); err != nil {
		return nil, fmt.Errorf("create tmp dir: %w", err)
	}
	f, err := os.CreateTemp(td, pattern)
	if err != nil {
		return nil, fmt.Errorf("create tmp file: %w", err)
	}
	return f, nil
}

func (w *diskWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.md5.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write tmp file: %w", err)
	}
	return n, nil
}

// etag is the hex MD5 of what was written.
func (w *diskWriter) etag() string { return hex.EncodeToString(w.md5.Sum(nil)) }

// abort discards the tmp file.
func (w *diskWriter) abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// commit makes the file durable and visible as dir/name, with md in its
// metadata xattr unless md is nil.
func (w *diskWriter) commit(md map[string]string, dir, name string) error {
	defer w.abort()
	// Metadata first, so the one fsync covers data and xattr together.
	if md != nil {
		if err := writeMetadata(w.f, md); err != nil {
			return err
		}
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", w.f.Name(), err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", w.f.Name(), err)
	}
	// A cleanup of the same object may remove the (empty) hash dir between
	// our mkdir and rename; recreate it and try again.
	var created []string
	for attempt := 0; ; attempt++ {
		made, err := mkdirAllTracked(dir)
		if err != nil {
			return err
		}
		created = append(created, made...)
		err = os.Rename(w.f.Name(), filepath.Join(dir, name))
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) || attempt >= 3 {
			return fmt.Errorf("rename into %s: %w", dir, err)
		}
	}
	w.done = true
	return fsyncCreated(dir, created)
}

// fsyncCreated makes a new entry of dir durable: dir is synced, and so is
// the parent of every directory created on the way to it.
func fsyncCreated(dir string, created []string) error {
	dirs := []string{dir}
	for _, d := range created {
		dirs = append(dirs, filepath.Dir(d))
	}
	return fsyncDirs(dirs)
}

// fsyncDirs syncs dirs concurrently: the filesystem journal folds
// simultaneous syncs into one commit, where one after another would each
// pay for a cache flush.
func fsyncDirs(dirs []string) error {
	if len(dirs) == 1 {
		return fsyncDir(dirs[0])
	}
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fsyncDir(d)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mkdirAllTracked is os.MkdirAll that returns the directories it created,
// deepest first.
func mkdirAllTracked(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	return missing, nil
}

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s for fsync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes b as dir/name through the device tmp dir (used for
// tombstones, .meta files and async pendings).
func writeFileAtomic(devPath, dir, name string, b []byte, md map[string]string) error {
	w, err := newDiskWriter(devPath)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.abort()
		return err
	}
	return w.commit(md, dir, name)
}
