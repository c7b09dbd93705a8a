package diskformat

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzDeclared are the declared formats the fuzzer picks from, including
// ones the inspector does not recognise.
var fuzzDeclared = []string{Raw, QCOW2, VMDK, VHD, VHDX, VDI, ISO, "ami", ""}

// Fuzz inputs are small, so to reach the headers that live deep in a file
// the first byte may ask for the input to be placed there.
const (
	layoutAsIs = iota
	layoutISO  // input starts at the first ISO volume descriptor, 32 KiB
	layoutVHDX // "vhdxfile", then input from the region table at 192 KiB
	layoutCount
)

var zeros = make([]byte, vhdxRegionTableOff)

// FuzzInspector feeds arbitrary bytes, cut into arbitrary chunks, and
// checks the inspector never panics, never retains more than its bound,
// only reports its own sentinels, and answers the same however the stream
// was cut.
func FuzzInspector(f *testing.F) {
	requireQemuImg(f)
	dir := f.TempDir()
	seed := func(layout byte, b []byte) {
		b = b[:min(len(b), 8192)]
		f.Add(append([]byte{layout}, b...), uint16(7), uint8(0))
	}
	for _, args := range [][]string{
		{"a.qcow2", "-f", "qcow2"},
		{"b.qcow2", "-f", "qcow2", "-o", "data_file=b.raw"},
		{"a.vmdk", "-f", "vmdk"},
		{"b.vmdk", "-f", "vmdk", "-o", "subformat=monolithicFlat"},
		{"a.vhd", "-f", "vpc"},
		{"a.vdi", "-f", "vdi"},
		{"a.qed", "-f", "qed"},
	} {
		seed(layoutAsIs, createImage(f, dir, args[0], "10M", args[1:]...))
	}
	vhdx := createImage(f, dir, "a.vhdx", "10M", "-f", "vhdx")
	seed(layoutVHDX, vhdx[vhdxRegionTableOff:])
	seed(layoutISO, makeISO(20)[16*isoSectorSize:])
	seed(layoutAsIs, []byte("# Disk DescriptorFile\nversion=1\n"))

	f.Fuzz(func(t *testing.T, data []byte, chunk uint16, pick uint8) {
		declared := fuzzDeclared[int(pick)%len(fuzzDeclared)]
		layout := layoutAsIs
		if len(data) > 0 {
			layout, data = int(data[0])%layoutCount, data[1:]
		}
		var prefix []byte
		switch layout {
		case layoutISO:
			prefix = zeros[:16*isoSectorSize]
		case layoutVHDX:
			prefix = append([]byte(vhdxSignature), zeros[len(vhdxSignature):]...)
		}

		feed := func(chunk int) *Inspector {
			in := NewInspector(declared)
			in.Write(prefix)
			for p := data; len(p) > 0; {
				k := min(max(chunk, 1), len(p))
				if n, err := in.Write(p[:k]); n != k || err != nil {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, k)
				}
				p = p[k:]
			}
			return in
		}
		in := feed(int(chunk))
		whole := feed(len(data))

		if r := in.retained(); r > MaxRetained {
			t.Fatalf("retained %d bytes, bound is %d", r, MaxRetained)
		}
		format := in.Format()
		if format != "" && format != QED && !inspectable(format) {
			t.Fatalf("Format = %q", format)
		}
		size, sizeOK := in.VirtualSize()
		if sizeOK && size < 0 {
			t.Fatalf("VirtualSize = %d", size)
		}
		err := in.Check()
		if err != nil && !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrFormatMismatch) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("Check = %v, not a sentinel", err)
		}
		if err == nil && declared == Raw && (!sizeOK || size != int64(len(prefix)+len(data))) {
			t.Fatalf("raw VirtualSize = %d, %v; want byte count %d", size, sizeOK, len(prefix)+len(data))
		}
		if err == nil && inspectable(declared) && !plainLayout(declared) && format != declared {
			t.Fatalf("Check passed declared %s detected %q", declared, format)
		}

		wSize, wOK := whole.VirtualSize()
		if whole.Format() != format || wSize != size || wOK != sizeOK || errString(whole.Check()) != errString(err) {
			t.Fatalf("chunking changed the answer: chunk %d gave %q %d %v %v; one write gave %q %d %v %v",
				chunk, format, size, sizeOK, err, whole.Format(), wSize, wOK, whole.Check())
		}
		if !bytes.Equal(in.head, whole.head) {
			t.Fatalf("chunking changed the retained head")
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
