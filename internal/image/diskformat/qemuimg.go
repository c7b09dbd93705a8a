package diskformat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/ctxio"
)

// QemuImgPath is the qemu-img binary Convert and Info run; a bare name is
// looked up in PATH. It is a variable so tests and odd installs can point
// elsewhere.
var QemuImgPath = "qemu-img"

// qemuDrivers maps the Glance disk formats qemu-img can convert to QEMU's
// block driver names. iso is left out on purpose: it is raw to QEMU, and
// converting it would only hide what the user uploaded.
var qemuDrivers = map[string]string{
	Raw:   "raw",
	QCOW2: "qcow2",
	VMDK:  "vmdk",
	VHD:   "vpc",
	VHDX:  "vhdx",
	VDI:   "vdi",
}

const (
	// stderrLimit bounds how much qemu-img chatter lands in an error.
	stderrLimit = 4 << 10
	// waitDelay is how long to wait for qemu-img's pipes after the context
	// kills it.
	waitDelay = 5 * time.Second
)

func qemuDriver(format string) (string, error) {
	d, ok := qemuDrivers[strings.ToLower(format)]
	if !ok {
		return "", fmt.Errorf("disk format %q is not supported by qemu-img conversion", format)
	}
	return d, nil
}

// absPath makes path absolute. qemu-img reads "proto:..." and "json:{...}"
// file names as protocol specifications that can open anything; an
// absolute path starts with "/" and so can never be one.
func absPath(path string) (string, error) {
	if path == "" {
		return "", errors.New("empty path")
	}
	return filepath.Abs(path)
}

// Convert rewrites the image at src, in format from, into a new image at dst
// in format to, using qemu-img convert. Formats are Glance disk_format names
// (vhd, not vpc). The source format is always passed with -f so qemu-img
// never probes it, and the source is first run through an Inspector so an
// unchecked qcow2 or vmdk cannot make qemu-img read host files. The context
// bounds the whole conversion. If qemu-img fails, dst is removed and the
// error carries qemu-img's stderr.
func Convert(ctx context.Context, src, dst, from, to string) error {
	fromDrv, err := qemuDriver(from)
	if err != nil {
		return fmt.Errorf("convert %s: %w", src, err)
	}
	toDrv, err := qemuDriver(to)
	if err != nil {
		return fmt.Errorf("convert %s: %w", src, err)
	}
	if src, err = absPath(src); err != nil {
		return fmt.Errorf("convert: source: %w", err)
	}
	if dst, err = absPath(dst); err != nil {
		return fmt.Errorf("convert: destination: %w", err)
	}
	if src == dst {
		return fmt.Errorf("convert %s: source and destination are the same file", src)
	}
	if err := checkFile(ctx, src, from); err != nil {
		return fmt.Errorf("convert %s: %w", src, err)
	}
	if _, err := runQemuImg(ctx, "convert", "-q", "-f", fromDrv, "-O", toDrv, src, dst); err != nil {
		err = fmt.Errorf("convert %s (%s) to %s (%s): %w", src, from, dst, to, err)
		// qemu-img may have created dst before failing; a half-written
		// image must not be mistaken for a converted one.
		if rmErr := os.Remove(dst); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove partial %s: %w", dst, rmErr))
		}
		return err
	}
	return nil
}

// checkFile runs the file through an Inspector declared as format. Only
// formats that can refer to other files need it; for the rest, -f already
// pins down how qemu-img reads the bytes.
func checkFile(ctx context.Context, path, format string) error {
	format = strings.ToLower(format)
	if format != QCOW2 && format != VMDK {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	in := NewInspector(format)
	if _, err := io.Copy(in, ctxio.Reader(ctx, f)); err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	return in.Check()
}

// qemuImgInfo is the part of `qemu-img info --output=json` Info reads.
type qemuImgInfo struct {
	VirtualSize     int64  `json:"virtual-size"`
	Format          string `json:"format"`
	BackingFilename string `json:"backing-filename"`
	FormatSpecific  struct {
		Data struct {
			DataFile string `json:"data-file"`
		} `json:"data"`
	} `json:"format-specific"`
}

// Info asks qemu-img for the virtual size of the image at path, read as the
// given Glance disk format (never probed). It refuses images with a backing
// file or a data file, which qemu-img reports but an Inspector should have
// caught earlier. Meant for images this service wrote itself, such as
// Convert's output.
func Info(ctx context.Context, path, format string) (int64, error) {
	drv, err := qemuDriver(format)
	if err != nil {
		return 0, fmt.Errorf("info %s: %w", path, err)
	}
	if path, err = absPath(path); err != nil {
		return 0, fmt.Errorf("info: %w", err)
	}
	out, err := runQemuImg(ctx, "info", "--output=json", "-f", drv, path)
	if err != nil {
		return 0, fmt.Errorf("info %s: %w", path, err)
	}
	var info qemuImgInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return 0, fmt.Errorf("info %s: decode qemu-img output: %w", path, err)
	}
	if info.BackingFilename != "" {
		return 0, fmt.Errorf("info %s: %w: backing file %q", path, ErrUnsafe, info.BackingFilename)
	}
	if info.FormatSpecific.Data.DataFile != "" {
		return 0, fmt.Errorf("info %s: %w: data file %q", path, ErrUnsafe, info.FormatSpecific.Data.DataFile)
	}
	return info.VirtualSize, nil
}

// runQemuImg runs qemu-img with args and returns its stdout. A failure
// carries the (bounded) stderr, and the context's error when the context
// ended it, so callers can tell a timeout from a bad image.
func runQemuImg(ctx context.Context, args ...string) ([]byte, error) {
	var stdout bytes.Buffer
	stderr := &limitedBuffer{max: stderrLimit}
	cmd := exec.CommandContext(ctx, QemuImgPath, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay
	// Untranslated messages, so errors read the same in every log.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	msg := strings.TrimSpace(stderr.String())
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	if msg != "" {
		return nil, fmt.Errorf("qemu-img %s: %w: %s", args[0], err, msg)
	}
	return nil, fmt.Errorf("qemu-img %s: %w", args[0], err)
}

// limitedBuffer keeps the first max bytes written and drops the rest, so a
// chatty child cannot grow an error without bound.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }
