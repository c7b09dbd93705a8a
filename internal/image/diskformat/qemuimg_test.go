package diskformat

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConvertRoundTrip(t *testing.T) {
	requireQemuImg(t)
	ctx := context.Background()
	dir := t.TempDir()
	data := make([]byte, 3*mib)
	rand.NewChaCha8([32]byte{3}).Read(data)
	// Leave holes so the sparse formats have something to skip.
	clear(data[mib : 2*mib])
	src := filepath.Join(dir, "src.raw")
	writeFile(t, src, data)

	for _, format := range []string{QCOW2, VMDK, VHDX, VDI} {
		t.Run(format, func(t *testing.T) {
			img := filepath.Join(dir, "img."+format)
			back := filepath.Join(dir, "back-"+format+".raw")
			if err := Convert(ctx, src, img, Raw, format); err != nil {
				t.Fatal(err)
			}
			in := inspect(format, readFile(t, img), 64<<10)
			if err := in.Check(); err != nil {
				t.Errorf("converted image fails Check: %v", err)
			}
			if size, ok := in.VirtualSize(); !ok || size != int64(len(data)) {
				t.Errorf("inspector VirtualSize = %d, %v; want %d", size, ok, len(data))
			}
			size, err := Info(ctx, img, format)
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(data)) {
				t.Errorf("Info = %d, want %d", size, len(data))
			}
			if err := Convert(ctx, img, back, format, Raw); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readFile(t, back), data) {
				t.Errorf("raw → %s → raw changed the data", format)
			}
		})
	}
}

func TestConvertRefusesUnsafeSource(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	createImage(t, dir, "base.qcow2", "1M", "-f", "qcow2")
	createImage(t, dir, "over.qcow2", "1M", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2")
	dst := filepath.Join(dir, "out.raw")
	err := Convert(ctx, filepath.Join(dir, "over.qcow2"), dst, QCOW2, Raw)
	if !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Convert = %v, want ErrUnsafe", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination exists after refusal: %v", err)
	}
	// Info reports the backing file too.
	if _, err := Info(ctx, filepath.Join(dir, "over.qcow2"), QCOW2); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Info = %v, want ErrUnsafe", err)
	}
}

func TestConvertFailureRemovesPartial(t *testing.T) {
	requireQemuImg(t)
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "junk")
	writeFile(t, src, bytes.Repeat([]byte("junk"), 1024))
	dst := filepath.Join(dir, "out.qcow2")
	writeFile(t, dst, []byte("stale"))

	// Declared vdi, but it is not: qemu-img itself must fail.
	err := Convert(ctx, src, dst, VDI, QCOW2)
	if err == nil {
		t.Fatal("Convert of junk succeeded")
	}
	if !strings.Contains(err.Error(), "qemu-img convert") || !strings.Contains(err.Error(), src) {
		t.Errorf("error lacks context: %v", err)
	}
	// qemu-img prefixes what it prints on stderr with its name.
	if !strings.Contains(err.Error(), "qemu-img: ") {
		t.Errorf("error carries no stderr: %v", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial destination left behind: %v", err)
	}
}

// TestConvertTimeout runs a stand-in qemu-img that writes a partial file
// and hangs, and checks the context ends it and the partial file goes.
func TestConvertTimeout(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "qemu-img")
	script := "#!/bin/sh\nfor last; do :; done\necho partial > \"$last\"\nexec sleep 30\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	old := QemuImgPath
	QemuImgPath = fake
	t.Cleanup(func() { QemuImgPath = old })

	src := filepath.Join(dir, "src.raw")
	writeFile(t, src, make([]byte, 4096))
	dst := filepath.Join(dir, "dst.qcow2")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Convert(ctx, src, dst, Raw, QCOW2)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Convert = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Convert took %v after a 300ms deadline", d)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial destination left behind: %v", err)
	}
}

func TestConvertArguments(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "a.raw")
	writeFile(t, src, make([]byte, 512))
	for _, c := range []struct{ src, dst, from, to string }{
		{src, filepath.Join(dir, "b"), "ami", Raw},
		{src, filepath.Join(dir, "b"), Raw, ISO},
		{src, src, Raw, QCOW2},
		{"", filepath.Join(dir, "b"), Raw, QCOW2},
	} {
		if err := Convert(ctx, c.src, c.dst, c.from, c.to); err == nil {
			t.Errorf("Convert(%q, %q, %q, %q) succeeded", c.src, c.dst, c.from, c.to)
		}
	}
	if _, err := os.Stat(src); err != nil {
		t.Errorf("refused conversion touched the source: %v", err)
	}
}

// TestConvertRelativePath shows a relative name cannot be read as a
// qemu-img protocol ("json:", "nbd:") — it is made absolute first.
func TestConvertRelativePath(t *testing.T) {
	requireQemuImg(t)
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, "nbd:x", make([]byte, mib))
	if err := Convert(context.Background(), "nbd:x", "out.qcow2", Raw, QCOW2); err != nil {
		t.Fatalf("Convert of a file named like a protocol: %v", err)
	}
	if size, err := Info(context.Background(), "out.qcow2", QCOW2); err != nil || size != mib {
		t.Errorf("Info = %d, %v; want %d", size, err, mib)
	}
}
