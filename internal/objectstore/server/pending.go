package server

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// A container database's pending file (<db>.pending) holds listing rows
// that are durable but may not be in SQLite yet.
//
// Every object PUT or DELETE adds a row to each container replica. A
// SQLite transaction per batch of rows (begin, a select and an insert or
// update per row, the counters, the bucket hashes, commit into the WAL)
// was a third of a lone PUT's CPU, and it ran on the sync leader's path,
// before the sync every writer waits for. Swift appends such rows to a
// .pending file and merges them when the database is next read; here too:
// the sync leader appends the queued rows in one write, the filesystem
// sync that follows makes them durable with the objects of the same PUTs,
// and the rows are merged into SQLite when someone reads the database.
//
// Who merges, and when:
//   - The container server's own handle (rowCommitter) keeps the rows it
//     appended in memory and merges them before every read through its
//     database cache (listings, HEAD, the emptiness check of a DELETE,
//     replication hashes, the account report that follows every change
//     within a fraction of a second), without a sync: until it is
//     truncated, the file still holds them.
//   - It truncates the file once it grows past pendingCompactBytes, when
//     the database leaves the cache, and when the server closes: after
//     merging what is left and syncing the WAL, so that nothing exists
//     only in a volatile WAL when the file is emptied.
//   - Anyone else who opens the database (OpenDB: the replicator, the
//     expirer, the reaper, container sync, in this process or another),
//     and the cache when it first opens a database (a file left by a
//     crash), merge the whole file through a handle that syncs at commit
//     and truncate it.
//
// The file is locked with flock(2) by every append, merge-and-truncate
// and by RemoveDB, so that no row is appended between a merge's read and
// its truncation, and no row is appended to the file of a database
// RemoveDB just removed (an append checks, under the lock, that the
// database it belongs to is still in place). Only the container server
// that holds the database in its cache appends; one server per device,
// as with Swift.
//
// Re-merging a row is harmless (rows merge with last-write-wins by
// timestamp and change the counters only when they win), so a crash
// between a merge and its truncation costs only the repeated work.
//
// Records: a 4-byte little-endian payload length, the CRC-32C of the
// payload, then the payload (see appendRowRecord). A crash can leave a
// torn tail (a record whose data never reached the disk reads as zeros
// or garbage); reading stops at the first record that does not check,
// and those rows were never acknowledged: a row is acknowledged only
// after a sync that covered its append and every append before it.

// pendingSuffix names a database's pending file.
const pendingSuffix = ".pending"

// pendingCompactBytes is the size past which the server merges and
// truncates a pending file: a few hundred rows, so that a merge of what
// the reads left takes a fraction of a millisecond and the file never
// grows far.
const pendingCompactBytes = 64 << 10

// maxRowRecord bounds one record's payload: far beyond any valid row (a
// name of at most a few KiB and two short strings), small enough that a
// corrupt length cannot make the reader allocate much.
const maxRowRecord = 1 << 20

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// appendRowRecord appends row's record to b.
func appendRowRecord(b []byte, r objectRow) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // length and checksum, set below
	b = binary.AppendUvarint(b, uint64(len(r.name)))
	b = append(b, r.name...)
	b = binary.AppendVarint(b, r.ts.Ticks)
	b = binary.AppendVarint(b, r.ts.Offset)
	b = binary.AppendVarint(b, r.size)
	b = binary.AppendUvarint(b, uint64(len(r.ctype)))
	b = append(b, r.ctype...)
	b = binary.AppendUvarint(b, uint64(len(r.etag)))
	b = append(b, r.etag...)
	del := byte(0)
	if r.deleted {
		del = 1
	}
	b = append(b, del)
	payload := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crc32c))
	return b
}

// decodeRowRecords reads the records in b in order, up to the first one
// that is incomplete or does not check; it returns the rows and how many
// bytes they took.
func decodeRowRecords(b []byte) (rows []objectRow, n int) {
	for {
		rest := b[n:]
		if len(rest) < 8 {
			return rows, n
		}
		size := binary.LittleEndian.Uint32(rest)
		if size == 0 || size > maxRowRecord || uint64(len(rest)-8) < uint64(size) {
			return rows, n
		}
		payload := rest[8 : 8+size]
		if crc32.Checksum(payload, crc32c) != binary.LittleEndian.Uint32(rest[4:]) {
			return rows, n
		}
		r, ok := decodeRowPayload(payload)
		if !ok {
			return rows, n
		}
		rows = append(rows, r)
		n += 8 + int(size)
	}
}

// decodeRowPayload decodes one record's payload; ok is false unless it
// is exactly one well-formed row.
func decodeRowPayload(p []byte) (r objectRow, ok bool) {
	d := recordDecoder{b: p}
	r.name = d.str()
	r.ts.Ticks = d.varint()
	r.ts.Offset = d.varint()
	r.size = d.varint()
	r.ctype = d.str()
	r.etag = d.str()
	if d.err || len(d.b) != 1 || d.b[0] > 1 || r.ts.Ticks <= 0 || r.ts.Offset < 0 || r.size < 0 || r.name == "" {
		return objectRow{}, false
	}
	r.deleted = d.b[0] == 1
	return r, true
}

// recordDecoder reads a payload's fields in order; err sticks once a
// field does not fit.
type recordDecoder struct {
	b   []byte
	err bool
}

func (d *recordDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) str() string {
	l, n := binary.Uvarint(d.b)
	if n <= 0 || l > uint64(len(d.b)-n) {
		d.err = true
		return ""
	}
	s := string(d.b[n : n+int(l)])
	d.b = d.b[n+int(l):]
	return s
}

// lockFile takes f's exclusive flock, waiting for the holder.
func lockFile(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			if err != nil {
				return fmt.Errorf("lock %s: %w", f.Name(), err)
			}
			return nil
		}
	}
}

func unlockFile(f *os.File) { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN) }

// mergePendingFile merges every row of dbPath's pending file into db and
// truncates the file, under its lock. db must sync at commit (a handle
// with synchronous=FULL): the rows are only in the WAL once the file is
// emptied. No file is no work.
func mergePendingFile(ctx context.Context, db *sql.DB, dbPath string) error {
	f, err := os.OpenFile(dbPath+pendingSuffix, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pending rows: %w", err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return err
	}
	defer unlockFile(f)
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if len(b) == 0 {
		return nil
	}
	if rows, _ := decodeRowRecords(b); len(rows) > 0 {
		if err := mergeObjectRows(ctx, db, rows); err != nil {
			return fmt.Errorf("merge %s: %w", f.Name(), err)
		}
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("truncate %s: %w", f.Name(), err)
	}
	return nil
}

// pendingRows is the rowCommitter's side of a pending file: appends, and
// truncation after everything appended was merged.
type pendingRows struct {
	dbPath string
	dbFile os.FileInfo // the database the rows belong to
	f      *os.File    // opened on the first append
	size   int64       // bytes appended since the last truncation by us
	buf    []byte      // reused encoding buffer
}

// append writes rows to the file in one write, under its lock, and
// reports whether another had merged and emptied the file since the last
// append.
func (p *pendingRows) append(rows []objectRow) (emptied bool, err error) {
	if p.f == nil {
		f, err := os.OpenFile(p.dbPath+pendingSuffix, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return false, fmt.Errorf("open pending rows: %w", err)
		}
		p.f = f
	}
	p.buf = p.buf[:0]
	for _, r := range rows {
		p.buf = appendRowRecord(p.buf, r)
	}
	if err := lockFile(p.f); err != nil {
		return false, err
	}
	defer unlockFile(p.f)
	// RemoveDB takes this lock before it removes the database: under it,
	// a database still in place stays so until the append is done.
	if fi, err := os.Stat(p.dbPath); err != nil || !os.SameFile(fi, p.dbFile) {
		return false, fmt.Errorf("append pending rows: database %s was removed", p.dbPath)
	}
	emptied = p.emptiedElsewhere()
	if _, err := p.f.Write(p.buf); err != nil {
		return emptied, fmt.Errorf("append pending rows: %w", err)
	}
	p.size += int64(len(p.buf))
	return emptied, nil
}

// emptiedElsewhere reports whether the file is shorter than the appends
// made it: another merged it and emptied it (mergePendingFile), and with
// it every row appended so far.
func (p *pendingRows) emptiedElsewhere() bool {
	if p.f == nil || p.size == 0 {
		return false
	}
	fi, err := p.f.Stat()
	if err != nil || fi.Size() >= p.size {
		return false
	}
	p.size = fi.Size()
	return true
}

// sync makes the appended rows durable by themselves (the lone writer's
// path; others wait for a filesystem sync).
func (p *pendingRows) sync() error {
	if p.f == nil {
		return nil
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("fsync pending rows: %w", err)
	}
	return nil
}

// truncate empties the file, under its lock; every row appended must be
// merged and durable in the database.
func (p *pendingRows) truncate() error {
	if p.f == nil {
		return nil
	}
	if err := lockFile(p.f); err != nil {
		return err
	}
	defer unlockFile(p.f)
	if err := p.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate pending rows: %w", err)
	}
	p.size = 0
	return nil
}

func (p *pendingRows) close() error {
	if p.f == nil {
		return nil
	}
	return p.f.Close()
}
