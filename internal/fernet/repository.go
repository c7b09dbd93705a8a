package fernet

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Key repository layout, identical to keystone-manage fernet_setup /
// fernet_rotate so an existing Keystone repository can be used as is:
//
//   - the directory holds files named 0, 1, 2, ... each containing one
//     padded url-safe base64 key;
//   - key 0 is the staged key: not yet used to encrypt, but already
//     accepted, so that every node has it before any node promotes it;
//   - the highest-numbered key is the primary key and encrypts new tokens;
//   - every other key is a secondary key, kept only to decrypt tokens
//     issued before the rotations that demoted it.
//
// Files whose names are not canonical non-negative decimal numbers
// ("01", "-1", ".lock", temp files) are ignored, as Keystone ignores
// names int() cannot parse.

const (
	// DefaultMaxActiveKeys is Keystone's default for
	// [fernet_tokens] max_active_keys: staged + primary + one secondary.
	DefaultMaxActiveKeys = 3

	// MinActiveKeys is the smallest max_active_keys Rotate accepts. With
	// fewer, a rotation would drop the previous primary immediately and
	// invalidate every token issued moments before it.
	MinActiveKeys = 3

	stagedIndex = 0
	tempPrefix  = ".tmp-key-"
	lockName    = ".lock"
	maxKeyFile  = 1024 // a key file is 44 bytes; anything much larger is not a key
)

var (
	// ErrNotSetUp is returned when a repository lacks a staged key (0) or
	// a primary key (any number above 0). Run Setup first.
	ErrNotSetUp = errors.New("fernet: key repository is not set up")

	// ErrInsecurePermissions is matched (errors.Is) by every
	// *PermissionError.
	ErrInsecurePermissions = errors.New("fernet: key repository has insecure permissions")
)

// PermissionError reports a key file readable or writable by group or
// others, or a repository directory writable by group or others (which
// would let another user plant a key and forge tokens). Load refuses such
// a repository instead of warning: a leaked Fernet key lets its holder mint
// tokens for any user, and the fix (chmod 0600 the keys, chmod go-w the
// directory) is cheap. Keystone-style Kubernetes secret mounts need
// defaultMode 0400 or 0600.
type PermissionError struct {
	Path string
	Mode fs.FileMode
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("fernet: %s has insecure permissions %v", e.Path, e.Mode.Perm())
}

// Unwrap lets errors.Is(err, ErrInsecurePermissions) match.
func (e *PermissionError) Unwrap() error { return ErrInsecurePermissions }

// KeySet is a snapshot of a key repository.
type KeySet struct {
	// Primary encrypts new tokens. It is the highest-numbered key.
	Primary *Key
	// PrimaryIndex is the file number of Primary, for logs and metrics.
	PrimaryIndex int
	// Keys holds every key in the order Decrypt tries them: the primary,
	// then the staged key (the next primary, which a node that rotated
	// before this one is already encrypting with), then the secondaries
	// from newest to oldest. Keystone tries staged last; trying it second
	// only changes how fast a mixed-rotation cluster validates.
	Keys []*Key
}

// Encrypt seals plaintext with the primary key.
func (s *KeySet) Encrypt(plaintext []byte, now time.Time) (string, error) {
	return Encrypt(s.Primary, plaintext, now)
}

// Decrypt opens token with any key in the set. See the package-level
// Decrypt for ttl semantics and errors.
func (s *KeySet) Decrypt(token string, ttl time.Duration, now time.Time) ([]byte, time.Time, error) {
	return Decrypt(s.Keys, token, ttl, now)
}

// equal reports whether s and o hold the same keys in the same roles.
func (s *KeySet) equal(o *KeySet) bool {
	return s.PrimaryIndex == o.PrimaryIndex && slices.EqualFunc(s.Keys, o.Keys, (*Key).Equal)
}

// Setup initialises a key repository in dir the way keystone-manage
// fernet_setup does: it creates dir (mode 0700) if needed and writes a
// primary key 1 and a staged key 0. If dir already holds any key file,
// Setup does nothing, so it is safe to run on every start.
func Setup(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("fernet setup: %w", err)
	}
	unlock, err := lockRepository(dir)
	if err != nil {
		return fmt.Errorf("fernet setup: %w", err)
	}
	defer unlock()
	indexes, err := listKeyIndexes(dir)
	if err != nil {
		return fmt.Errorf("fernet setup: %w", err)
	}
	if len(indexes) > 0 {
		return nil
	}
	removeStaleTemps(dir)
	// Primary first, then staged: a reader racing with Setup sees either
	// nothing, a primary alone, or the finished repository.
	for _, index := range []int{1, stagedIndex} {
		key, err := GenerateKey()
		if err != nil {
			return fmt.Errorf("fernet setup: %w", err)
		}
		if err := writeKeyFile(dir, index, key); err != nil {
			return fmt.Errorf("fernet setup: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("fernet setup: %w", err)
	}
	return nil
}

// Rotate performs keystone-manage fernet_rotate on dir: the staged key 0
// becomes the new primary under the number highest+1, a fresh staged key
// 0 is written, and the lowest-numbered secondaries are deleted until at
// most maxActiveKeys keys remain (staged and primary included).
//
// With maxActiveKeys = 3 the repository goes {0,1} → {0,1,2} → {0,2,3} →
// {0,3,4}: a token survives the rotation that demotes its key and becomes
// invalid at the next one.
//
// Every step leaves a valid repository behind, so a server reloading
// concurrently never sees a half-rotated state: the old staged key is first
// copied to its new number (so for a moment it is both staged and
// primary), then atomically replaced by the new staged key, then old keys
// are removed oldest first. Concurrent Rotate and Setup calls on one
// machine are serialised with a lock file (flock) in dir; as with
// Keystone, rotate on one node and distribute the repository to the
// others.
func Rotate(dir string, maxActiveKeys int) error {
	if maxActiveKeys < MinActiveKeys {
		return fmt.Errorf("fernet rotate: max active keys must be at least %d, got %d", MinActiveKeys, maxActiveKeys)
	}
	unlock, err := lockRepository(dir)
	if err != nil {
		return fmt.Errorf("fernet rotate: %w", err)
	}
	defer unlock()
	removeStaleTemps(dir)

	indexes, err := listKeyIndexes(dir)
	if err != nil {
		return fmt.Errorf("fernet rotate: %w", err)
	}
	if len(indexes) == 0 || indexes[0] != stagedIndex {
		return fmt.Errorf("fernet rotate: %w: no staged key 0 in %s", ErrNotSetUp, dir)
	}
	staged, err := readKeyFile(filepath.Join(dir, strconv.Itoa(stagedIndex)))
	if err != nil {
		return fmt.Errorf("fernet rotate: %w", err)
	}
	highest := indexes[len(indexes)-1]
	if highest == int(^uint(0)>>1) {
		return fmt.Errorf("fernet rotate: key number %d cannot be incremented", highest)
	}
	newPrimary := highest + 1
	if err := writeKeyFile(dir, newPrimary, staged); err != nil {
		return fmt.Errorf("fernet rotate: promote staged key: %w", err)
	}
	next, err := GenerateKey()
	if err != nil {
		return fmt.Errorf("fernet rotate: %w", err)
	}
	if err := writeKeyFile(dir, stagedIndex, next); err != nil {
		return fmt.Errorf("fernet rotate: write staged key: %w", err)
	}

	// Same purge rule as Keystone: of the non-staged keys (now including
	// the new primary) keep the newest maxActiveKeys-1.
	active := append(indexes[1:], newPrimary)
	for len(active) > maxActiveKeys-1 {
		if err := os.Remove(filepath.Join(dir, strconv.Itoa(active[0]))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fernet rotate: purge key %d: %w", active[0], err)
		}
		active = active[1:]
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("fernet rotate: %w", err)
	}
	return nil
}

// Load reads the key repository in dir. It fails with ErrNotSetUp if the
// staged or primary key is missing and with a *PermissionError if the
// repository is readable or writable by others (see PermissionError).
//
// Load needs only read access and takes no lock. It is safe to run while
// another process rotates: if the set of key files changes while it reads
// them, it starts over.
func Load(dir string) (*KeySet, error) {
	const attempts = 10
	for i := 0; ; i++ {
		ks, err := loadOnce(dir)
		if errors.Is(err, errRepositoryChanged) && i < attempts-1 {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fernet load %s: %w", dir, err)
		}
		return ks, nil
	}
}

var errRepositoryChanged = errors.New("key repository changed while it was being read")

func loadOnce(dir string) (*KeySet, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if insecure(info.Mode(), 0o022) {
		return nil, &PermissionError{Path: dir, Mode: info.Mode()}
	}
	indexes, err := listKeyIndexes(dir)
	if err != nil {
		return nil, err
	}
	if len(indexes) == 0 {
		return nil, fmt.Errorf("%w: no key files", ErrNotSetUp)
	}
	if indexes[0] != stagedIndex {
		return nil, fmt.Errorf("%w: no staged key 0", ErrNotSetUp)
	}
	if len(indexes) < 2 {
		return nil, fmt.Errorf("%w: no primary key", ErrNotSetUp)
	}

	keys := make(map[int]*Key, len(indexes))
	for _, index := range indexes {
		key, err := readKeyFile(filepath.Join(dir, strconv.Itoa(index)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errRepositoryChanged // purged by a concurrent rotation
		}
		if err != nil {
			return nil, err
		}
		keys[index] = key
	}
	// Each rotation renames at least one key, so an unchanged list means
	// the keys read belong to one consistent state of the repository.
	again, err := listKeyIndexes(dir)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(indexes, again) {
		return nil, errRepositoryChanged
	}

	primary := indexes[len(indexes)-1]
	ks := &KeySet{
		Primary:      keys[primary],
		PrimaryIndex: primary,
		Keys:         make([]*Key, 0, len(indexes)),
	}
	ks.Keys = append(ks.Keys, keys[primary], keys[stagedIndex])
	for i := len(indexes) - 2; i >= 1; i-- {
		ks.Keys = append(ks.Keys, keys[indexes[i]])
	}
	return ks, nil
}

// listKeyIndexes returns the numbers of the key files in dir, ascending.
func listKeyIndexes(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var indexes []int
	for _, e := range entries {
		index, ok := parseIndex(e.Name())
		if !ok {
			continue
		}
		// Symlinks are allowed (Kubernetes secret volumes are made of
		// them); readKeyFile checks that the target is a regular file.
		if t := e.Type(); !t.IsRegular() && t&fs.ModeSymlink == 0 {
			continue
		}
		indexes = append(indexes, index)
	}
	slices.Sort(indexes)
	return indexes, nil
}

// parseIndex accepts only canonical non-negative decimals, so that "1"
// and "01" cannot both name key 1.
func parseIndex(name string) (int, bool) {
	n, err := strconv.Atoi(name)
	if err != nil || n < 0 || strconv.Itoa(n) != name {
		return 0, false
	}
	return n, true
}

func readKeyFile(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if insecure(info.Mode(), 0o077) {
		return nil, &PermissionError{Path: path, Mode: info.Mode()}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s is too large to be a key", path)
	}
	key, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// insecure reports whether mode has any of the forbidden permission bits.
// Windows has no meaningful Unix mode bits, so nothing is insecure there.
func insecure(mode fs.FileMode, forbidden fs.FileMode) bool {
	return runtime.GOOS != "windows" && mode.Perm()&forbidden != 0
}

// writeKeyFile atomically replaces dir/<index> with key, mode 0600: the
// key is written and synced to a temp file in dir, then renamed over the
// target, so readers see either the old file or the complete new one.
func writeKeyFile(dir string, index int, key *Key) (err error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil { // CreateTemp's default, made explicit
		return err
	}
	if _, err := io.WriteString(f, key.Encode()); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, strconv.Itoa(index)))
}

// removeStaleTemps deletes temp files left by a writer that crashed. Only
// call it while holding the repository lock, when no writer is active.
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// syncDir makes the renames and removals in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
