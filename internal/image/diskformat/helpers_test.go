package diskformat

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireQemuImg fails, rather than skips, when qemu-img is missing: these
// tests are the only evidence the inspector agrees with real images, so a
// host without qemu-utils must not pass them quietly.
func requireQemuImg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatalf("qemu-img not found in PATH (install Debian package qemu-utils): %v", err)
	}
}

// qemuImg runs the real qemu-img in dir and fails the test on error.
func qemuImg(t testing.TB, dir string, args ...string) {
	t.Helper()
	requireQemuImg(t)
	cmd := exec.Command("qemu-img", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}

// qemuVirtualSize asks qemu-img directly, as an independent oracle.
func qemuVirtualSize(t testing.TB, path, driver string) int64 {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", "-f", driver, path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("decode qemu-img info: %v", err)
	}
	return info.VirtualSize
}

// createImage runs `qemu-img create -q opts... name size` in dir and
// returns the image's bytes.
func createImage(t testing.TB, dir, name, size string, opts ...string) []byte {
	t.Helper()
	args := append([]string{"create", "-q"}, opts...)
	qemuImg(t, dir, append(args, name, size)...)
	return readFile(t, filepath.Join(dir, name))
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// inspect feeds data to a new Inspector in chunks of the given size (0
// means one Write).
func inspect(declared string, data []byte, chunk int) *Inspector {
	in := NewInspector(declared)
	if chunk <= 0 {
		chunk = len(data) + 1
	}
	for len(data) > 0 {
		k := min(chunk, len(data))
		in.Write(data[:k])
		data = data[k:]
	}
	return in
}

// makeISO builds a minimal ISO 9660 image by hand (no xorriso on the build
// hosts): a primary volume descriptor at 32 KiB and a set terminator.
func makeISO(blocks uint32) []byte {
	img := make([]byte, int(blocks)*isoSectorSize)
	pvd := img[16*isoSectorSize:]
	pvd[0] = isoTypePrimary
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	binary.LittleEndian.PutUint32(pvd[80:], blocks)
	binary.BigEndian.PutUint32(pvd[84:], blocks)
	binary.LittleEndian.PutUint16(pvd[128:], isoSectorSize)
	binary.BigEndian.PutUint16(pvd[130:], isoSectorSize)
	term := img[17*isoSectorSize:]
	term[0] = isoTypeTerminator
	copy(term[1:], "CD001")
	term[6] = 1
	return img
}

// setVHDChecksum recomputes the footer checksum after a test edits it.
func setVHDChecksum(f []byte) {
	var sum uint32
	for i, b := range f[:512] {
		if i < 64 || i >= 68 {
			sum += uint32(b)
		}
	}
	binary.BigEndian.PutUint32(f[64:], ^sum)
}
