package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// metadataKey is the xattr holding object metadata, as Swift names it. Long
// values continue in metadataKey+"1", +"2", ... in chunks of xattrChunk bytes
// so that each attribute stays small on every filesystem.
const (
	metadataKey = "user.swift.metadata"
	xattrChunk  = 254
)

// ErrNoXattr means the filesystem under a device cannot store extended
// attributes (ext3 without user_xattr, tmpfs without them, some overlays);
// objects cannot be stored there.
var ErrNoXattr = errors.New("filesystem does not support user extended attributes (use XFS or ext4 with user_xattr)")

func mapXattrErr(op, path string, err error) error {
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%s %s: %w", op, path, ErrNoXattr)
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// spillKey marks metadata that did not fit in the filesystem's xattr space
// (ext4 keeps all of a file's xattrs in one 4 KiB block, less than Swift's
// metadata limits allow). The JSON then follows the object's bytes in the
// same file, from the offset the key holds, and the small marker is the
// only xattr. One file still carries everything, so writes stay atomic and
// replication copies it as is.
const spillKey = "X-Nimbus-Metadata-Offset"

// writeMetadata stores md on the open file f, whose content is complete.
func writeMetadata(f *os.File, md map[string]string) error {
	b, err := json.Marshal(md)
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	n, err := setMetadataXattrs(f, b)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.E2BIG) {
		return mapXattrErr("set metadata on", f.Name(), err)
	}
	// Too big for the xattr space: drop the chunks that did fit and spill.
	for i := 1; i < n; i++ {
		_ = unix.Fremovexattr(int(f.Fd()), metadataKey+strconv.Itoa(i))
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("spill metadata of %s: %w", f.Name(), err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("spill metadata of %s: %w", f.Name(), err)
	}
	marker, _ := json.Marshal(map[string]string{spillKey: strconv.FormatInt(off, 10)})
	if _, err := setMetadataXattrs(f, marker); err != nil {
		return mapXattrErr("set metadata on", f.Name(), err)
	}
	return nil
}

// setMetadataXattrs writes b in chunks and returns how many it wrote.
func setMetadataXattrs(f *os.File, b []byte) (int, error) {
	fd := int(f.Fd())
	i := 0
	for ; len(b) > 0 || i == 0; i++ {
		n := min(len(b), xattrChunk)
		key := metadataKey
		if i > 0 {
			key += strconv.Itoa(i)
		}
		if err := unix.Fsetxattr(fd, key, b[:n], 0); err != nil {
			return i, err
		}
		b = b[n:]
	}
	return i, nil
}

// readMetadata loads the metadata of the file at path.
func readMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	md, _, err := readMetadataFile(f)
	return md, err
}

// readMetadataFile loads f's metadata and says how many leading bytes of f
// are object data (all of them, unless metadata was spilled after them).
func readMetadataFile(f *os.File) (map[string]string, int64, error) {
	md, err := readMetadataXattrs(f)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	offStr, spilled := md[spillKey]
	if !spilled {
		return md, st.Size(), nil
	}
	off, err := strconv.ParseInt(offStr, 10, 64)
	if err != nil || off < 0 || off > st.Size() {
		return nil, 0, fmt.Errorf("read metadata of %s: %w: bad spill offset", f.Name(), errNoMetadata)
	}
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, 0, fmt.Errorf("read spilled metadata of %s: %w", f.Name(), err)
	}
	if md, err = decodeMetadata(b); err != nil {
		return nil, 0, fmt.Errorf("read metadata of %s: %w: %v", f.Name(), errNoMetadata, err)
	}
	return md, off, nil
}

func readMetadataXattrs(f *os.File) (map[string]string, error) {
	fd := int(f.Fd())
	var all []byte
	buf := make([]byte, 4096)
	for i := 0; ; i++ {
		key := metadataKey
		if i > 0 {
			key += strconv.Itoa(i)
		}
		n, err := unix.Fgetxattr(fd, key, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, serr := unix.Fgetxattr(fd, key, nil)
			if serr != nil {
				return nil, mapXattrErr("read metadata of", f.Name(), serr)
			}
			buf = make([]byte, sz)
			n, err = unix.Fgetxattr(fd, key, buf)
		}
		if errors.Is(err, unix.ENODATA) {
			if i == 0 {
				return nil, fmt.Errorf("read metadata of %s: %w", f.Name(), errNoMetadata)
			}
			break
		}
		if err != nil {
			return nil, mapXattrErr("read metadata of", f.Name(), err)
		}
		all = append(all, buf[:n]...)
		if n < xattrChunk {
			break // a short chunk is the last one; saves a syscall per read
		}
	}
	md, err := decodeMetadata(all)
	if err != nil {
		return nil, fmt.Errorf("read metadata of %s: %w: %v", f.Name(), errNoMetadata, err)
	}
	return md, nil
}

// errNoMetadata marks a file whose metadata is missing or unreadable; the
// object is treated as corrupt.
var errNoMetadata = errors.New("missing or corrupt metadata")

// CheckXattr verifies that dir's filesystem stores user extended attributes.
// Call it at start-up on each device so a bad filesystem fails loudly before
// the first PUT does.
func CheckXattr(dir string) error {
	f, err := os.CreateTemp(dir, ".xattr-check-*")
	if err != nil {
		return fmt.Errorf("check xattr support in %s: %w", dir, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := unix.Fsetxattr(int(f.Fd()), "user.nimbus.check", []byte("1"), 0); err != nil {
		return mapXattrErr("check xattr support in", filepath.Clean(dir), err)
	}
	return nil
}
