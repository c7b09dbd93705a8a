package server

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/bufpool"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
)

// AuditStats counts one auditor pass.
type AuditStats struct {
	Files, Bytes, Quarantined, Errors int64
}

// RunAuditor checksums every object on every device, pass after pass, until
// ctx ends. Reads are rate-limited by AuditorBytesPerSecond and
// AuditorFilesPerSecond so that auditing never competes with clients.
func (s *ObjectServer) RunAuditor(ctx context.Context) {
	for {
		st, err := s.AuditOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("object auditor pass", "err", err)
		}
		s.log.Info("object auditor pass", "files", st.Files, "bytes", st.Bytes, "quarantined", st.Quarantined, "errors", st.Errors)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.AuditorInterval):
		}
	}
}

// AuditOnce makes one pass: for every live .data file it re-reads the bytes,
// compares their MD5 and length with the stored ETag and Content-Length, and
// quarantines the object's directory on a mismatch or unreadable metadata.
func (s *ObjectServer) AuditOnce(ctx context.Context) (AuditStats, error) {
	var st AuditStats
	lim := newLimiter(s.cfg.AuditorBytesPerSecond, s.cfg.AuditorFilesPerSecond)
	for _, dev := range s.devices() {
		for _, pol := range s.cfg.Policies.All() {
			if err := s.auditPolicy(ctx, dev, filepath.Join(dev, policy.ObjectsDir(pol.Index)), lim, &st); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// auditPolicy audits one policy's objects dir on one device.
func (s *ObjectServer) auditPolicy(ctx context.Context, dev, root string, lim *limiter, st *AuditStats) error {
	parts, _ := os.ReadDir(root)
	for _, p := range parts {
		suffixes, _ := os.ReadDir(filepath.Join(root, p.Name()))
		for _, sfx := range suffixes {
			sdir := filepath.Join(root, p.Name(), sfx.Name())
			hashes, _ := os.ReadDir(sdir)
			for _, h := range hashes {
				if err := ctx.Err(); err != nil {
					return err
				}
				dir := filepath.Join(sdir, h.Name())
				if err := s.auditDir(ctx, dev, dir, lim, st); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					st.Errors++
					s.log.Warn("audit object", "dir", dir, "err", err)
				}
			}
		}
	}
	return nil
}

func (s *ObjectServer) auditDir(ctx context.Context, dev, dir string, lim *limiter, st *AuditStats) error {
	of, err := listObjectDir(dir)
	if err != nil || !of.exists() {
		return err
	}
	if err := lim.wait(ctx, 0, 1); err != nil {
		return err
	}
	st.Files++
	f, err := os.Open(filepath.Join(dir, of.data))
	if errors.Is(err, os.ErrNotExist) {
		return nil // replaced or cleaned up meanwhile
	}
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	md, size, err := readMetadataFile(f)
	if err != nil {
		if errors.Is(err, errNoMetadata) {
			st.Quarantined++
			s.quarantine(dev, dir, of.data, "bad metadata")
			return nil
		}
		return err
	}
	h, crc := md5.New(), uint32(0)
	bp := bufpool.Small.Get().(*[]byte)
	defer bufpool.Small.Put(bp)
	var n int64
	data := io.LimitReader(f, size)
	for {
		k, rerr := data.Read(*bp)
		if k > 0 {
			h.Write((*bp)[:k])
			crc = crc32.Update(crc, castagnoli, (*bp)[:k])
			n += int64(k)
			if err := lim.wait(ctx, int64(k), 0); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read: %w", rerr)
		}
	}
	st.Bytes += n
	// The ETag decides what the object is; a kept checksum that disagrees
	// with good data would fail every GET of it, so it counts as damage too.
	got, gotCRC := hex.EncodeToString(h.Sum(nil)), formatChecksum(crc)
	wantCRC, keepsCRC := md[dataChecksumKey]
	if got != md["ETag"] || strconv.FormatInt(n, 10) != md["Content-Length"] || (keepsCRC && gotCRC != wantCRC) {
		st.Quarantined++
		s.quarantine(dev, dir, of.data, fmt.Sprintf("MD5 %s, CRC-32C %s, size %d; metadata says %s, %s, %s",
			got, gotCRC, n, md["ETag"], wantCRC, md["Content-Length"]))
	}
	return nil
}

// limiter paces a pass to a byte rate and a file rate by sleeping whenever
// the work done so far is ahead of the allowed schedule.
type limiter struct {
	start       time.Time
	bytesPerSec float64
	filesPerSec float64
	bytes       int64
	files       int64
}

func newLimiter(bytesPerSec int64, filesPerSec int) *limiter {
	return &limiter{start: time.Now(), bytesPerSec: float64(bytesPerSec), filesPerSec: float64(filesPerSec)}
}

func (l *limiter) wait(ctx context.Context, bytes int64, files int64) error {
	l.bytes += bytes
	l.files += files
	due := time.Duration(float64(l.bytes) / l.bytesPerSec * float64(time.Second))
	if fd := time.Duration(float64(l.files) / l.filesPerSec * float64(time.Second)); fd > due {
		due = fd
	}
	d := due - time.Since(l.start)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
