package server

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Object replication protocol. Swift's replicator asks each peer for the
// hashes of a partition's suffix directories (REPLICATE) and rsyncs the
// suffixes that differ. Nimbus keeps the first half and replaces rsync with
// two verbs of its own, so that replication needs nothing but HTTP and
// every pushed file is checked before it becomes visible:
//
//	REPLICATE /<device>/<partition>            → {"<suffix>": "<md5>", ...}
//	REPLICATE /<device>/<partition>/<s1>-<s2>   → {"<hash>": ["<file>", ...], ...}
//	SYNC /<device>/<partition>/<hash>/<file>    ← file body, X-Backend-Sync-Metadata
//
// A suffix's hash covers the names of the files that win in each of its
// hash dirs (newest .data or .ts, newer .meta), so two replicas agree
// exactly when they would serve the same objects. Hashes are cached in
// memory and dropped by the writes that change them (suffixcache.go).

// Replication verbs of the object server.
const (
	MethodReplicate = "REPLICATE"
	MethodSync      = "SYNC"
)

// SyncMetadataHeader carries a pushed file's metadata: base64 of its JSON,
// so that any byte a user put in metadata survives the header.
const SyncMetadataHeader = "X-Backend-Sync-Metadata"

// ObjectPartitions lists the partitions of storage policy pol present on
// a device.
func ObjectPartitions(devPath string, pol int) ([]int, error) {
	ents, err := os.ReadDir(filepath.Join(devPath, policy.ObjectsDir(pol)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", devPath, err)
	}
	var parts []int
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() && validPartition(e.Name()) == nil {
			parts = append(parts, p)
		}
	}
	return parts, nil
}

// partDir is a partition's directory in storage policy pol's objects dir.
func partDir(devPath string, pol, part int) string {
	return filepath.Join(devPath, policy.ObjectsDir(pol), strconv.Itoa(part))
}

// ObjectSuffixHashes returns the hash of every non-empty suffix of an
// object partition, from the cache (suffixcache.go) where a suffix was
// not written since it was last computed. Recomputing a suffix also
// reclaims what cleanup would (obsolete files, tombstones older than
// reclaimAge), so tombstones age out of every replica alike.
func ObjectSuffixHashes(devPath string, pol, part int, reclaimAge time.Duration) (map[string]string, error) {
	dir := partDir(devPath, pol, part)
	names, ino, err := listPartition(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list partition %s: %w", dir, err)
	}
	suffixes := make([]string, 0, len(names))
	for _, n := range names {
		if isSuffix(n) {
			suffixes = append(suffixes, n)
		}
	}
	now := time.Now()
	snap := suffixHashCache.snapshot(dir, ino, suffixes, now)
	computed := make(map[string]string, len(suffixes)-len(snap.hashes))
	out := make(map[string]string, len(suffixes))
	for _, suf := range suffixes {
		h, ok := snap.hashes[suf]
		if !ok {
			if h, err = suffixHash(filepath.Join(dir, suf), reclaimAge); err != nil {
				return nil, err
			}
			computed[suf] = h
		}
		if h != "" {
			out[suf] = h
		}
	}
	suffixHashCache.store(dir, snap, computed, len(snap.hashes) == 0, now)
	return out, nil
}

// listPartition returns the entry names of a partition dir and its inode
// number, by which the cache tells a partition dir made anew (a device
// wiped and refilled) from the one it knew.
func listPartition(dir string) ([]string, uint64, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, 0, err
	}
	names, err := f.Readdirnames(-1)
	return names, st.Ino, err
}

// suffixHash hashes the winning files of a suffix dir's hash dirs; ""
// when it holds none.
func suffixHash(dir string, reclaimAge time.Duration) (string, error) {
	files, err := suffixFiles(dir, reclaimAge)
	if err != nil || len(files) == 0 {
		return "", err
	}
	h := md5.New()
	for _, hash := range slices.Sorted(maps.Keys(files)) {
		h.Write([]byte(hash))
		for _, f := range files[hash] {
			h.Write([]byte{' '})
			h.Write([]byte(f))
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ObjectSuffixFiles lists, per object hash, the winning files of the
// given suffixes of a partition.
func ObjectSuffixFiles(devPath string, pol, part int, suffixes []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, s := range suffixes {
		if !isSuffix(s) {
			return nil, fmt.Errorf("list suffix %q: not a suffix", s)
		}
		files, err := suffixFiles(filepath.Join(partDir(devPath, pol, part), s), 0)
		if err != nil {
			return nil, err
		}
		for k, v := range files {
			out[k] = v
		}
	}
	return out, nil
}

// suffixFiles resolves every hash dir of a suffix dir; reclaimAge > 0
// cleans each first.
func suffixFiles(dir string, reclaimAge time.Duration) (map[string][]string, error) {
	names, err := readDirNames(dir, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list suffix %s: %w", dir, err)
	}
	out := map[string][]string{}
	for _, name := range names {
		if !isHash(name) {
			continue
		}
		hd := filepath.Join(dir, name)
		var of objectFiles
		if reclaimAge > 0 {
			of, err = cleanupObjectDir(hd, reclaimAge)
		}
		if reclaimAge <= 0 || err != nil {
			// Cleanup is best effort; a listing of its own is what counts.
			if of, err = listObjectDir(hd); err != nil {
				return nil, err
			}
		}
		var files []string
		for _, f := range []string{of.data, of.ts, of.meta} {
			if f != "" {
				files = append(files, f)
			}
		}
		if len(files) > 0 {
			out[name] = files
		}
	}
	return out, nil
}

// ObjectFile is one file of an object's hash dir opened for pushing to a
// peer: its metadata and the object bytes (none for .ts and .meta).
type ObjectFile struct {
	Metadata map[string]string
	Size     int64
	Body     io.Reader
	f        *os.File
}

// Close releases the file.
func (o *ObjectFile) Close() error { return o.f.Close() }

// OpenObjectFile opens <hash dir>/<file> of a partition for pushing.
func OpenObjectFile(devPath string, pol, part int, hash, file string) (*ObjectFile, error) {
	if !isHash(hash) || !validObjectFile(file) {
		return nil, fmt.Errorf("open object file %s/%s: bad name", hash, file)
	}
	p := filepath.Join(partDir(devPath, pol, part), hash[len(hash)-3:], hash, file)
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open object file: %w", err)
	}
	md, size, err := readMetadataFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open object file %s: %w", p, err)
	}
	return &ObjectFile{Metadata: md, Size: size, Body: io.LimitReader(f, size), f: f}, nil
}

// RemoveObjectPartition deletes a partition directory, once a handoff's
// objects have all reached their primaries.
func RemoveObjectPartition(devPath string, pol, part int) error {
	dir := partDir(devPath, pol, part)
	err := os.RemoveAll(dir)
	suffixHashCache.invalidatePartition(dir)
	if err != nil {
		return fmt.Errorf("remove partition %d of %s: %w", part, devPath, err)
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// isSuffix accepts a suffix dir name: the last three hex digits of a hash.
func isSuffix(s string) bool { return len(s) == 3 && isHex("0"+s, 4) }

// isHash accepts a hash dir name.
func isHash(s string) bool { return isHex(s, 32) }

// validObjectFile accepts "<timestamp>.data|.meta|.ts".
func validObjectFile(name string) bool {
	ext := filepath.Ext(name)
	if ext != ".data" && ext != ".meta" && ext != ".ts" {
		return false
	}
	_, err := parseTimestamp(strings.TrimSuffix(name, ext))
	return err == nil && !strings.ContainsAny(name, "/\\")
}

// replicateTarget parses /<device>/<partition>[/<rest>] of the replication
// verbs.
func (s *ObjectServer) replicateTarget(r *http.Request) (devPath string, part int, rest string, err error) {
	segs := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	if len(segs) < 2 || validPartition(segs[1]) != nil {
		return "", 0, "", httpErr(http.StatusBadRequest, "invalid path")
	}
	if devPath, err = devicePath(&s.cfg, segs[0]); err != nil {
		return "", 0, "", err
	}
	part, _ = strconv.Atoi(segs[1])
	if len(segs) == 3 {
		rest = segs[2]
	}
	return devPath, part, rest, nil
}

// replicate answers REPLICATE: the partition's suffix hashes, or with a
// dash-separated suffix list, the winning files of those suffixes.
func (s *ObjectServer) replicate(w http.ResponseWriter, r *http.Request) error {
	devPath, part, rest, err := s.replicateTarget(r)
	if err != nil {
		return err
	}
	pol, err := s.requestPolicy(r)
	if err != nil {
		return err
	}
	var out any
	if rest == "" {
		out, err = ObjectSuffixHashes(devPath, pol.Index, part, s.cfg.ReclaimAge)
	} else {
		sufs := strings.Split(rest, "-")
		for _, x := range sufs {
			if !isSuffix(x) {
				return httpErr(http.StatusBadRequest, "invalid suffix")
			}
		}
		out, err = ObjectSuffixFiles(devPath, pol.Index, part, sufs)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode replication answer: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
	return nil
}

// sync receives one pushed file. The file must belong where it is pushed
// (its metadata's name hashes to the hash dir), a .data must match its
// ETag and length, and it must not be obsolete next to what is already
// there (409 then, which the pusher counts as in sync). Container
// listings are not updated: the container replicator reconciles those.
func (s *ObjectServer) sync(w http.ResponseWriter, r *http.Request) error {
	devPath, part, rest, err := s.replicateTarget(r)
	if err != nil {
		return err
	}
	pol, err := s.requestPolicy(r)
	if err != nil {
		return err
	}
	hash, file, ok := strings.Cut(rest, "/")
	if !ok || !isHash(hash) || !validObjectFile(file) {
		return httpErr(http.StatusBadRequest, "invalid path")
	}
	raw, err := base64.StdEncoding.DecodeString(r.Header.Get(SyncMetadataHeader))
	md := map[string]string{}
	if err != nil || json.Unmarshal(raw, &md) != nil {
		return httpErr(http.StatusBadRequest, "invalid "+SyncMetadataHeader)
	}
	names := strings.SplitN(strings.TrimPrefix(md["name"], "/"), "/", 3)
	if len(names) != 3 || hashPath(s.cfg.HashPathPrefix, s.cfg.HashPathSuffix, names...) != hash {
		return httpErr(http.StatusUnprocessableEntity, "metadata name does not match the hash")
	}
	ext := filepath.Ext(file)
	ts, _ := parseTimestamp(strings.TrimSuffix(file, ext))
	dir := hashDir(devPath, policy.ObjectsDir(pol.Index), strconv.Itoa(part), hash)
	of, err := listObjectDir(dir)
	if err != nil {
		return err
	}
	newest := of.newest()
	switch {
	case ext == ".meta" && (of.data == "" || of.dataTS.Compare(ts) >= 0 || (of.meta != "" && of.metaTS.Compare(ts) >= 0)):
		// A .meta only counts next to an older .data; the .data comes first.
		return conflict(newest)
	case ext != ".meta" && !newest.IsZero() && newest.Compare(ts) >= 0:
		return conflict(newest)
	}
	dw, err := newDiskWriter(devPath)
	if err != nil {
		return storageErr(err)
	}
	defer dw.abort()
	size := int64(0)
	if ext == ".data" {
		if size, err = strconv.ParseInt(md["Content-Length"], 10, 64); err != nil || size < 0 {
			return httpErr(http.StatusUnprocessableEntity, "invalid Content-Length in metadata")
		}
	}
	if err := receive(dw, r.Body, size, true); err != nil {
		return err
	}
	if ext == ".data" {
		if dw.etag() != md["ETag"] {
			return httpErr(http.StatusUnprocessableEntity, "body does not match its ETag")
		}
		// The checksum is this copy's own, of the bytes that matched.
		md[dataChecksumKey] = dw.checksum()
	}
	if err := dw.commit(md, dir, file); err != nil {
		return storageErr(err)
	}
	if _, err := cleanupObjectDir(dir, s.cfg.ReclaimAge); err != nil {
		s.log.Warn("cleanup after sync", "dir", dir, "err", err)
	}
	writeEmpty(w, http.StatusCreated)
	return nil
}
