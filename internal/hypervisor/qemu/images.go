package qemu

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// ensureBase returns the path of img in the host's base-image cache,
// copying it there first if needed. The copy is hashed on the way and
// written under a temporary name, fsynced and renamed, so a base file that
// exists has been verified and is complete: an agent killed mid-copy
// leaves only a temporary file, which the next copy replaces.
func (d *Driver) ensureBase(img *hypervisor.Image) (string, error) {
	algo := strings.ToLower(img.Algorithm)
	if algo == "" {
		algo = "sha256"
	}
	var h hash.Hash
	switch algo {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	case "md5":
		h = md5.New()
	default:
		return "", fmt.Errorf("image %s: unsupported checksum algorithm %q", img.ID, img.Algorithm)
	}
	want := strings.ToLower(img.Checksum)
	if _, err := hex.DecodeString(want); err != nil || len(want) != 2*h.Size() {
		return "", fmt.Errorf("image %s: malformed %s checksum %q", img.ID, algo, img.Checksum)
	}
	base := filepath.Join(d.baseDir(), algo+"-"+want)

	mu := d.baseLock(base)
	mu.Lock()
	defer mu.Unlock()
	if _, err := os.Stat(base); err == nil {
		return base, nil
	}
	src, err := os.Open(img.Path)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", img.ID, err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(d.baseDir(), ".tmp-"+algo+"-"+want[:16]+"-")
	if err != nil {
		return "", fmt.Errorf("image %s: cache: %w", img.ID, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := io.Copy(io.MultiWriter(tmp, h), src); err != nil {
		tmp.Close()
		return "", fmt.Errorf("image %s: copy into cache: %w", img.ID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		tmp.Close()
		return "", fmt.Errorf("image %s: %s checksum mismatch: got %s, want %s", img.ID, algo, got, want)
	}
	if err := tmp.Chmod(0o444); err != nil {
		tmp.Close()
		return "", fmt.Errorf("image %s: cache: %w", img.ID, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("image %s: cache: %w", img.ID, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("image %s: cache: %w", img.ID, err)
	}
	if err := os.Rename(tmp.Name(), base); err != nil {
		return "", fmt.Errorf("image %s: cache: %w", img.ID, err)
	}
	syncDir(d.baseDir())
	return base, nil
}

// imageInfo is the part of `qemu-img info --output=json` the driver uses.
type imageInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

func (d *Driver) qemuImgInfo(ctx context.Context, path string) (imageInfo, error) {
	out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, "info", "--output=json", "-U", path).Output()
	if err != nil {
		return imageInfo{}, fmt.Errorf("qemu-img info %s: %w", path, exitErr(err))
	}
	var info imageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return imageInfo{}, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return info, nil
}

// createOverlay makes a qcow2 copy-on-write disk over base, at least
// size bytes large.
func (d *Driver) createOverlay(ctx context.Context, base, path string, size int64) error {
	info, err := d.qemuImgInfo(ctx, base)
	if err != nil {
		return err
	}
	if info.Format != "qcow2" && info.Format != "raw" {
		return fmt.Errorf("base image %s: unsupported format %q", base, info.Format)
	}
	args := []string{"create", "-q", "-f", "qcow2", "-F", info.Format, "-b", base, path}
	if size > info.VirtualSize {
		args = append(args, strconv.FormatInt(size, 10))
	}
	if out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img create %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (d *Driver) createBlank(ctx context.Context, path string, size int64) error {
	out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, "create", "-q", "-f", "qcow2", path, strconv.FormatInt(size, 10)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// buildConfigDrive writes cd's files into an ISO 9660 image labelled
// config-2 with Rock Ridge and Joliet names, as Nova's configdrive does
// (genisoimage with the same flags), atomically at path.
func (d *Driver) buildConfigDrive(ctx context.Context, cd *hypervisor.ConfigDrive, path string) error {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".configdrive-")
	if err != nil {
		return fmt.Errorf("config drive: %w", err)
	}
	defer os.RemoveAll(dir)
	names := make([]string, 0, len(cd.Files))
	for name := range cd.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		clean := filepath.Clean("/" + name)
		if clean == "/" || strings.Contains(name, "..") {
			return fmt.Errorf("config drive: invalid file name %q", name)
		}
		p := filepath.Join(dir, clean)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("config drive: %w", err)
		}
		if err := os.WriteFile(p, cd.Files[name], 0o644); err != nil {
			return fmt.Errorf("config drive: %w", err)
		}
	}
	tmp := path + ".tmp"
	out, err := exec.CommandContext(ctx, d.cfg.GenISOImage, "-o", tmp, "-ldots", "-allow-lowercase",
		"-allow-multidot", "-l", "-publisher", "Nimbus", "-quiet", "-J", "-r", "-V", "config-2", dir).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("config drive: %s: %w: %s", d.cfg.GenISOImage, exitErr(err), strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("config drive: %w", err)
	}
	return nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// exitErr adds a command's stderr to its error.
func exitErr(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
