package server

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Data directory names under a device, as Swift names them.
const (
	objectsDir      = "objects"
	containersDir   = "containers"
	accountsDir     = "accounts"
	tmpDir          = "tmp"
	asyncPendingDir = "async_pending"
	quarantineDir   = "quarantined"
)

// reqPath is a parsed storage-server request path.
type reqPath struct {
	Device    string
	Partition string
	Account   string
	Container string
	Object    string
}

// parsePath splits /<device>/<partition>/<account>[/<container>[/<object>]]
// and validates every part. minParts and maxParts count the name parts after
// the partition (1 = account, 2 = container, 3 = object). The object part
// keeps any further slashes. Device and partition are the only parts that
// become path components; names are only ever hashed.
func parsePath(p string, minParts, maxParts int) (reqPath, error) {
	var rp reqPath
	if !strings.HasPrefix(p, "/") {
		return rp, httpErr(http.StatusBadRequest, "invalid path")
	}
	segs := strings.SplitN(p[1:], "/", 5)
	if len(segs) < 2+minParts {
		return rp, httpErr(http.StatusBadRequest, "invalid path")
	}
	if len(segs) > 2+maxParts {
		return rp, httpErr(http.StatusBadRequest, "invalid path")
	}
	rp.Device, rp.Partition = segs[0], segs[1]
	if err := validDevice(rp.Device); err != nil {
		return rp, err
	}
	if err := validPartition(rp.Partition); err != nil {
		return rp, err
	}
	names := segs[2:]
	for i, n := range names {
		if err := validName(i, n); err != nil {
			return rp, err
		}
	}
	if len(names) > 0 {
		rp.Account = names[0]
	}
	if len(names) > 1 {
		rp.Container = names[1]
	}
	if len(names) > 2 {
		rp.Object = names[2]
	}
	return rp, nil
}

// validName applies Swift's constraints to the account (0), container (1) or
// object (2) name: empty or too long → 400, bad UTF-8 or NUL → 412.
func validName(kind int, n string) error {
	what := [...]string{"Account", "Container", "Object"}[kind]
	max := [...]int{MaxAccountNameLength, MaxContainerNameLength, MaxObjectNameLength}[kind]
	if n == "" {
		return httpErr(http.StatusBadRequest, what+" name required")
	}
	// Names starting with NUL are Swift's reserved namespace (object
	// versioning's hidden containers and versions): only the proxy makes
	// them, as clients' names never contain NUL.
	if !utf8.ValidString(n) || (n[0] != 0 && strings.IndexByte(n, 0) > 0) {
		return httpErr(http.StatusPreconditionFailed, "Invalid UTF8 or contains NULL")
	}
	if len(n) > max {
		return httpErr(http.StatusBadRequest, fmt.Sprintf("%s name length of %d longer than %d", what, len(n), max))
	}
	if kind == 1 && strings.Contains(n, "/") {
		return httpErr(http.StatusBadRequest, "Container name cannot contain slashes")
	}
	return nil
}

// validDevice accepts a single plain path component.
func validDevice(d string) error {
	if d == "" || d == "." || d == ".." || len(d) > 255 || strings.ContainsAny(d, "/\\\x00") || !utf8.ValidString(d) {
		return httpErr(http.StatusBadRequest, "invalid device")
	}
	return nil
}

// validPartition accepts a decimal partition number only.
func validPartition(p string) error {
	if p == "" || len(p) > 10 {
		return httpErr(http.StatusBadRequest, "invalid partition")
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return httpErr(http.StatusBadRequest, "invalid partition")
		}
	}
	if _, err := strconv.ParseUint(p, 10, 32); err != nil {
		return httpErr(http.StatusBadRequest, "invalid partition")
	}
	return nil
}

// hashPath is Swift's hash_path: md5 of prefix + "/" + the names joined by
// "/" + suffix, in hex.
func hashPath(prefix, suffix string, names ...string) string {
	h := md5.New()
	h.Write([]byte(prefix))
	for _, n := range names {
		if n == "" {
			break
		}
		h.Write([]byte{'/'})
		h.Write([]byte(n))
	}
	h.Write([]byte(suffix))
	return hex.EncodeToString(h.Sum(nil))
}

// hashDir is <device>/<datadir>/<partition>/<suffix>/<hash>.
func hashDir(devPath, datadir, partition, hash string) string {
	return filepath.Join(devPath, datadir, partition, hash[len(hash)-3:], hash)
}

// devicePath resolves a validated device name to its directory, refusing
// anything that is not a real directory directly under the root (symlinks
// included) and, with mount checking, anything that is not a mount point.
func devicePath(cfg *Config, device string) (string, error) {
	if err := validDevice(device); err != nil {
		return "", err
	}
	p := filepath.Join(cfg.DevicesRoot, device)
	if filepath.Dir(p) != filepath.Clean(cfg.DevicesRoot) {
		return "", httpErr(http.StatusBadRequest, "invalid device")
	}
	st, err := os.Lstat(p)
	if err != nil || !st.IsDir() {
		return "", httpErr(http.StatusInsufficientStorage, "")
	}
	if cfg.MountCheck {
		ok, err := isMount(p)
		if err != nil || !ok {
			return "", httpErr(http.StatusInsufficientStorage, "")
		}
	}
	return p, nil
}

// isMount reports whether p is a mount point: its filesystem differs from its
// parent's, or it is the root of its filesystem.
func isMount(p string) (bool, error) {
	var st, pst syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", p, err)
	}
	if err := syscall.Lstat(filepath.Dir(p), &pst); err != nil {
		return false, fmt.Errorf("stat parent of %s: %w", p, err)
	}
	return st.Dev != pst.Dev || st.Ino == pst.Ino, nil
}
