package volumeagent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// gib is one GiB, the unit of volume sizes.
const gib = int64(1) << 30

// The files of a storage host, all in the state directory: volumes and
// snapshots are standalone qcow2 files (snapshots are full copies, not
// backing chains, so volumes, snapshots and clones can be deleted in any
// order). A file being made has a ".part" name until it is complete and
// renamed, so a file under its final name is always whole.
func (a *Agent) volumePath(id string) string {
	return filepath.Join(a.cfg.StateDir, "volume-"+id+".qcow2")
}
func (a *Agent) snapshotPath(id string) string {
	return filepath.Join(a.cfg.StateDir, "snapshot-"+id+".qcow2")
}

// partPath is where a file is made before it gets its final name.
func partPath(final string) string {
	return filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+".part")
}

// validID accepts canonical UUIDs only: ids become file and node names.
func validID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// qemuImg runs qemu-img and returns its stdout; errors carry its stderr.
func qemuImg(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("qemu-img %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// createBlank makes an empty sparse qcow2 file of size bytes.
func createBlank(ctx context.Context, path string, size int64) error {
	_, err := qemuImg(ctx, "create", "-q", "-f", "qcow2", "-o", "preallocation=off", path, strconv.FormatInt(size, 10))
	return err
}

// convert copies src (of format srcFormat, "" to let qemu-img probe a
// file we made ourselves) into a new dst of format dstFormat, sparse.
func convert(ctx context.Context, src, srcFormat, dst, dstFormat string) error {
	args := []string{"convert", "-q", "-O", dstFormat}
	if srcFormat != "" {
		args = append(args, "-f", srcFormat)
	}
	_, err := qemuImg(ctx, append(args, src, dst)...)
	return err
}

// resize grows the qcow2 file at path to size bytes.
func resize(ctx context.Context, path string, size int64) error {
	_, err := qemuImg(ctx, "resize", "-q", "-f", "qcow2", path, strconv.FormatInt(size, 10))
	return err
}

// imageInfo is what qemu-img info says of a file.
type imageInfo struct {
	VirtualSize int64  `json:"virtual-size"`
	Format      string `json:"format"`
}

// info reads a file's format and virtual size; format "" probes.
// force-share (-U) lets it read a file the storage daemon has open.
func info(ctx context.Context, path, format string) (imageInfo, error) {
	args := []string{"info", "-U", "--output=json"}
	if format != "" {
		args = append(args, "-f", format)
	}
	out, err := qemuImg(ctx, append(args, path)...)
	if err != nil {
		return imageInfo{}, err
	}
	var ii imageInfo
	if err := json.Unmarshal(out, &ii); err != nil {
		return imageInfo{}, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return ii, nil
}

// qcow2Size reads a qcow2 file's virtual size from its header (bytes 24
// to 32, big-endian) without opening it through QEMU, so it works on
// files the storage daemon holds locked and costs one read.
func qcow2Size(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var hdr [32]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return 0, fmt.Errorf("read qcow2 header of %s: %w", path, err)
	}
	if string(hdr[:4]) != "QFI\xfb" {
		return 0, fmt.Errorf("%s is not a qcow2 file", path)
	}
	return int64(binary.BigEndian.Uint64(hdr[24:32])), nil
}

// sizeGB rounds bytes up to whole GiB.
func sizeGB(bytes int64) int { return int((bytes + gib - 1) / gib) }

// publish moves a finished part file to its final name, durably: the
// bytes reach the disk before the name does.
func publish(part, final string) error {
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("publish %s: %w", filepath.Base(final), err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("publish %s: %w", filepath.Base(final), err)
	}
	if err := os.Rename(part, final); err != nil {
		return fmt.Errorf("publish %s: %w", filepath.Base(final), err)
	}
	if d, err := os.Open(filepath.Dir(final)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// removeFile deletes path; a file already gone is success.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// qemuFormat maps an image's disk_format to qemu-img's name for it; ""
// for formats qemu-img should not be asked to read.
func qemuFormat(diskFormat string) string {
	switch diskFormat {
	case "raw", "iso", "ami", "ari", "aki":
		return "raw"
	case "qcow2", "vmdk", "vdi", "vhdx":
		return diskFormat
	case "vhd":
		return "vpc"
	}
	return ""
}
