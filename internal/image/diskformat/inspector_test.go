package diskformat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// chunkSizes exercise headers split across writes (1, 7), io.Copy-like
// writes (64 KiB) and a single write of everything (0).
var chunkSizes = []int{1, 7, 64 << 10, 0}

const mib = 1 << 20

// TestRealImages checks every format qemu-img can create: detected format,
// virtual size agreeing with qemu-img itself, and a clean Check, however
// the stream is cut.
func TestRealImages(t *testing.T) {
	dir := t.TempDir()
	fixed := createImage(t, dir, "fixed.vhd", "10M", "-f", "vpc", "-o", "subformat=fixed")
	cases := []struct {
		name   string
		format string
		data   []byte
		size   int64
	}{
		{"qcow2", QCOW2, createImage(t, dir, "a.qcow2", "100M", "-f", "qcow2"), 100 * mib},
		{"qcow2 v2", QCOW2, createImage(t, dir, "v2.qcow2", "100M", "-f", "qcow2", "-o", "compat=0.10"), 100 * mib},
		{"vmdk monolithicSparse", VMDK, createImage(t, dir, "a.vmdk", "100M", "-f", "vmdk"), 100 * mib},
		{"vmdk streamOptimized", VMDK, createImage(t, dir, "so.vmdk", "100M", "-f", "vmdk", "-o", "subformat=streamOptimized"), 100 * mib},
		{"vhd dynamic", VHD, createImage(t, dir, "a.vhd", "100M", "-f", "vpc"), qemuVirtualSize(t, filepath.Join(dir, "a.vhd"), "vpc")},
		// qemu-img reports the file length for a fixed VHD; the disk is
		// the data in front of the 512-byte footer.
		{"vhd fixed", VHD, fixed, int64(len(fixed) - 512)},
		{"vhdx", VHDX, createImage(t, dir, "a.vhdx", "100M", "-f", "vhdx"), 100 * mib},
		{"vdi", VDI, createImage(t, dir, "a.vdi", "100M", "-f", "vdi"), 100 * mib},
		{"iso", ISO, makeISO(200), 200 * 2048},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "vhd dynamic" && c.size != 104865792 {
				t.Logf("qemu-img sized the dynamic VHD as %d", c.size)
			}
			for _, chunk := range chunkSizes {
				in := inspect(c.format, c.data, chunk)
				if got := in.Format(); got != c.format {
					t.Errorf("chunk %d: Format = %q, want %q", chunk, got, c.format)
				}
				if size, ok := in.VirtualSize(); !ok || size != c.size {
					t.Errorf("chunk %d: VirtualSize = %d, %v; want %d, true", chunk, size, ok, c.size)
				}
				if err := in.Check(); err != nil {
					t.Errorf("chunk %d: Check = %v, want nil", chunk, err)
				}
				if r := in.retained(); r > MaxRetained {
					t.Errorf("chunk %d: retained %d bytes, bound is %d", chunk, r, MaxRetained)
				}
			}
		})
	}
}

func TestRaw(t *testing.T) {
	data := make([]byte, 3*mib+13)
	rand.NewChaCha8([32]byte{1}).Read(data)
	// Raw data that happens to end like a VHD footer, but without a valid
	// checksum, must stay raw.
	copy(data[len(data)-512:], "conectix")
	for _, chunk := range chunkSizes {
		in := inspect("RAW", data, chunk)
		if got := in.Format(); got != Raw {
			t.Errorf("chunk %d: Format = %q, want raw", chunk, got)
		}
		if size, ok := in.VirtualSize(); !ok || size != int64(len(data)) {
			t.Errorf("chunk %d: VirtualSize = %d, %v; want %d", chunk, size, ok, len(data))
		}
		if err := in.Check(); err != nil {
			t.Errorf("chunk %d: Check = %v", chunk, err)
		}
		if r := in.retained(); r > MaxRetained {
			t.Errorf("chunk %d: retained %d bytes, bound is %d", chunk, r, MaxRetained)
		}
	}
	in := inspect(Raw, nil, 0)
	if size, ok := in.VirtualSize(); !ok || size != 0 || in.Check() != nil {
		t.Errorf("empty raw: size %d %v, Check %v", size, ok, in.Check())
	}
}

// TestRetentionBound streams far more than the bound in one Write and in
// many; the inspector must not keep it.
func TestRetentionBound(t *testing.T) {
	big := make([]byte, 24*mib)
	copy(big, "vhdxfile")
	for _, chunk := range []int{0, 1 << 20, 4096} {
		in := inspect(VHDX, big, chunk)
		if r := in.retained(); r > MaxRetained {
			t.Errorf("chunk %d: retained %d bytes, bound is %d", chunk, r, MaxRetained)
		}
		if in.Size() != int64(len(big)) {
			t.Errorf("Size = %d, want %d", in.Size(), len(big))
		}
	}
}

// wantErr asserts err wraps target, and names what went wrong.
func wantErr(t *testing.T, err, target error, mention string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("Check = %v, want %v", err, target)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Errorf("error %q does not mention %q", err, mention)
	}
}

func TestQCOW2Unsafe(t *testing.T) {
	dir := t.TempDir()
	createImage(t, dir, "base.qcow2", "10M", "-f", "qcow2")
	backed := createImage(t, dir, "over.qcow2", "10M", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2")
	dataFile := createImage(t, dir, "df.qcow2", "10M", "-f", "qcow2", "-o", "data_file=df.raw")

	for _, declared := range []string{QCOW2, Raw, ISO, "ami"} {
		for _, chunk := range []int{1, 0} {
			wantErr(t, inspect(declared, backed, chunk).Check(), ErrUnsafe, "backing file")
			wantErr(t, inspect(declared, dataFile, chunk).Check(), ErrUnsafe, "data file")
		}
	}

	// The data file name extension without the feature bit is inert to
	// QEMU but still refused.
	nameOnly := bytes.Clone(dataFile)
	incompat := binary.BigEndian.Uint64(nameOnly[qcow2OffIncompatible:])
	binary.BigEndian.PutUint64(nameOnly[qcow2OffIncompatible:], incompat&^qcow2IncompatDataFile)
	wantErr(t, inspect(QCOW2, nameOnly, 7).Check(), ErrUnsafe, "data file name")

	// Backing file offset set by hand in a v2 image.
	v2 := bytes.Clone(createImage(t, dir, "v2.qcow2", "10M", "-f", "qcow2", "-o", "compat=0.10"))
	binary.BigEndian.PutUint64(v2[qcow2OffBackingOffset:], 512)
	wantErr(t, inspect(QCOW2, v2, 0).Check(), ErrUnsafe, "backing file")

	// qcow version 1 also supports backing files and is refused.
	v1 := bytes.Clone(v2)
	binary.BigEndian.PutUint32(v1[qcow2OffVersion:], 1)
	wantErr(t, inspect(QCOW2, v1, 0).Check(), ErrMalformed, "version 1")
}

func TestVMDKUnsafe(t *testing.T) {
	dir := t.TempDir()
	flat := createImage(t, dir, "flat.vmdk", "10M", "-f", "vmdk", "-o", "subformat=monolithicFlat")
	split := createImage(t, dir, "split.vmdk", "10M", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse")
	for name, data := range map[string][]byte{"monolithicFlat": flat, "twoGbMaxExtentSparse": split} {
		in := inspect(VMDK, data, 7)
		if in.Format() != VMDK {
			t.Errorf("%s: Format = %q, want vmdk", name, in.Format())
		}
		wantErr(t, in.Check(), ErrUnsafe, "descriptor")
		wantErr(t, inspect(Raw, data, 0).Check(), ErrUnsafe, "descriptor")
	}

	sparse := createImage(t, dir, "s.vmdk", "10M", "-f", "vmdk")
	const extent = `RW 20480 SPARSE "s.vmdk"`
	if !bytes.Contains(sparse, []byte(extent)) {
		t.Fatalf("qemu-img's descriptor lacks %q; test needs updating", extent)
	}
	// patched overwrites descriptor text in place, padding with newlines,
	// so the descriptor keeps its offset and length.
	patched := func(repl ...string) []byte {
		b := bytes.Clone(sparse)
		for i := 0; i < len(repl); i += 2 {
			old, new := repl[i], repl[i+1]
			if len(new) > len(old) {
				t.Fatalf("replacement %q longer than %q", new, old)
			}
			at := bytes.Index(b, []byte(old))
			if at < 0 {
				t.Fatalf("descriptor lacks %q", old)
			}
			copy(b[at:], new)
			copy(b[at+len(new):], bytes.Repeat([]byte("\n"), len(old)-len(new)))
		}
		return b
	}
	const createType = `createType="monolithicSparse"`
	cases := []struct {
		name    string
		repl    []string
		mention string
	}{
		{"flat extent on host file", []string{createType, `createType="monolithicFlat"`, extent, `RW 1 FLAT "/etc/passwd"`}, "createType"},
		{"flat extent in sparse", []string{`RW 20480 SPARSE`, `RW 20480 FLAT`}, "extent type"},
		{"absolute extent path", []string{`"s.vmdk"`, `"/s.vmd"`}, "not a plain file name"},
		{"parent directory", []string{`"s.vmdk"`, `".."`}, "not a plain file name"},
		{"no file name", []string{`"s.vmdk"`, ``}, "not a plain file name"},
		{"second extent", []string{extent, "RW 1 SPARSE a\nRW 1 ZERO"}, "2 extents"},
		{"no extent", []string{extent, ""}, "0 extents"},
		{"create type", []string{createType, `createType="vmfs"`}, "createType"},
		{"no create type", []string{createType, ""}, "createType"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, chunk := range []int{1, 0} {
				wantErr(t, inspect(VMDK, patched(c.repl...), chunk).Check(), ErrUnsafe, c.mention)
			}
		})
	}

	// A header that defers to a footer cannot be verified in a stream.
	footer := bytes.Clone(sparse)
	binary.LittleEndian.PutUint64(footer[vmdkOffGDOffset:], vmdkGDAtEnd)
	wantErr(t, inspect(VMDK, footer, 0).Check(), ErrUnsafe, "footer")
}

func TestDifferencingDisks(t *testing.T) {
	dir := t.TempDir()

	vhd := bytes.Clone(createImage(t, dir, "a.vhd", "10M", "-f", "vpc"))
	binary.BigEndian.PutUint32(vhd[vhdOffDiskType:], vhdTypeDiff)
	setVHDChecksum(vhd[:512])
	wantErr(t, inspect(VHD, vhd, 7).Check(), ErrUnsafe, "parent")

	vdi := bytes.Clone(createImage(t, dir, "a.vdi", "10M", "-f", "vdi"))
	binary.LittleEndian.PutUint32(vdi[vdiOffType:], vdiTypeDiff)
	wantErr(t, inspect(VDI, vdi, 7).Check(), ErrUnsafe, "parent")

	// Set HasParent in the VHDX file parameters item, found by walking the
	// structures the way the inspector does.
	vhdx := bytes.Clone(createImage(t, dir, "a.vhdx", "10M", "-f", "vhdx"))
	meta := vhdxFindMetadataRegion(vhdx)
	if meta < 0 {
		t.Fatal("no metadata region in qemu-img's vhdx")
	}
	count := int(binary.LittleEndian.Uint16(vhdx[meta+10:]))
	patchedParams := false
	for i := range count {
		e := vhdx[meta+32+int64(i)*32:]
		if bytes.Equal(e[:16], vhdxFileParametersGUID) {
			item := meta + int64(binary.LittleEndian.Uint32(e[16:]))
			vhdx[item+4] |= vhdxFileParamsParent
			patchedParams = true
		}
	}
	if !patchedParams {
		t.Fatal("no file parameters item in qemu-img's vhdx")
	}
	for _, chunk := range chunkSizes {
		wantErr(t, inspect(VHDX, vhdx, chunk).Check(), ErrUnsafe, "parent")
	}
}

func TestFormatMismatch(t *testing.T) {
	dir := t.TempDir()
	qcow2 := createImage(t, dir, "a.qcow2", "10M", "-f", "qcow2")
	vmdk := createImage(t, dir, "a.vmdk", "10M", "-f", "vmdk")
	fixed := createImage(t, dir, "f.vhd", "1M", "-f", "vpc", "-o", "subformat=fixed")
	raw := make([]byte, 1*mib)
	rand.NewChaCha8([32]byte{2}).Read(raw)

	// The attack this exists for: qcow2 uploaded as raw or iso.
	for _, declared := range []string{Raw, ISO, VMDK, VHD, VHDX, VDI} {
		wantErr(t, inspect(declared, qcow2, 0).Check(), ErrFormatMismatch, "data is qcow2")
	}
	wantErr(t, inspect(VHDX, vmdk, 7).Check(), ErrFormatMismatch, "declared vhdx but data is vmdk")
	wantErr(t, inspect(Raw, fixed, 0).Check(), ErrFormatMismatch, "data is vhd")
	wantErr(t, inspect(QCOW2, raw, 0).Check(), ErrFormatMismatch, "declared qcow2 but data is raw")
	wantErr(t, inspect(QCOW2, nil, 0).Check(), ErrFormatMismatch, "data is raw")

	// A qcow2 that also carries an ISO volume descriptor in its unused
	// header cluster: whichever reading a checker picks, QEMU may pick the
	// other.
	polyglot := bytes.Clone(qcow2)
	copy(polyglot[32<<10:], makeISO(18)[32<<10:])
	for _, declared := range []string{ISO, QCOW2, Raw} {
		in := inspect(declared, polyglot, 7)
		wantErr(t, in.Check(), ErrFormatMismatch, "several formats")
		if in.Format() != "" {
			t.Errorf("polyglot Format = %q, want \"\"", in.Format())
		}
	}
}

func TestQED(t *testing.T) {
	dir := t.TempDir()
	createImage(t, dir, "base.raw", "1M", "-f", "raw")
	plain := createImage(t, dir, "a.qed", "10M", "-f", "qed")
	backed := createImage(t, dir, "b.qed", "10M", "-f", "qed", "-b", "base.raw", "-F", "raw")
	in := inspect(Raw, plain, 7)
	if in.Format() != QED {
		t.Errorf("Format = %q, want qed", in.Format())
	}
	wantErr(t, in.Check(), ErrFormatMismatch, "data is qed")
	for _, declared := range []string{Raw, "ami"} {
		wantErr(t, inspect(declared, backed, 7).Check(), ErrUnsafe, "backing file")
	}
}

func TestPlainLayouts(t *testing.T) {
	iso := makeISO(100)
	raw := make([]byte, 70000)

	in := inspect(Raw, iso, 7)
	if in.Format() != ISO || in.Check() != nil {
		t.Errorf("iso declared raw: Format %q, Check %v; want iso, nil", in.Format(), in.Check())
	}
	if size, _ := in.VirtualSize(); size != int64(len(iso)) {
		t.Errorf("iso declared raw: VirtualSize %d, want byte count %d", size, len(iso))
	}
	in = inspect(ISO, raw, 0)
	if in.Check() != nil {
		t.Errorf("raw declared iso: Check %v", in.Check())
	}
	if size, ok := in.VirtualSize(); !ok || size != int64(len(raw)) {
		t.Errorf("raw declared iso: VirtualSize %d %v", size, ok)
	}

	// An ISO inside a fixed VHD is a VHD when declared so.
	wrapped := append(bytes.Clone(iso), make([]byte, 512)...)
	f := wrapped[len(iso):]
	copy(f, vhdCookie)
	binary.BigEndian.PutUint64(f[vhdOffCurrentSize:], uint64(len(iso)))
	binary.BigEndian.PutUint32(f[vhdOffDiskType:], vhdTypeFixed)
	setVHDChecksum(f)
	in = inspect(VHD, wrapped, 64<<10)
	if in.Format() != VHD || in.Check() != nil {
		t.Errorf("iso in fixed vhd: Format %q, Check %v", in.Format(), in.Check())
	}
	if size, _ := in.VirtualSize(); size != int64(len(iso)) {
		t.Errorf("iso in fixed vhd: VirtualSize %d, want %d", size, len(iso))
	}
}

func TestUninspectableDeclared(t *testing.T) {
	dir := t.TempDir()
	qcow2 := createImage(t, dir, "a.qcow2", "10M", "-f", "qcow2")
	for _, declared := range []string{"ami", "aki", "ari", "ploop"} {
		for _, data := range [][]byte{qcow2, make([]byte, 4096)} {
			in := inspect(declared, data, 0)
			if err := in.Check(); err != nil {
				t.Errorf("%s: Check = %v, want nil", declared, err)
			}
			if size, ok := in.VirtualSize(); ok {
				t.Errorf("%s: VirtualSize = %d, true; want unknown", declared, size)
			}
		}
	}
}

func TestTruncated(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		format string
		data   []byte
		keep   int
	}{
		{QCOW2, createImage(t, dir, "a.qcow2", "10M", "-f", "qcow2"), 50},
		{QCOW2, createImage(t, dir, "b.qcow2", "10M", "-f", "qcow2"), 90},
		{VMDK, createImage(t, dir, "a.vmdk", "10M", "-f", "vmdk"), 300},
		{VMDK, createImage(t, dir, "b.vmdk", "10M", "-f", "vmdk"), 1024},
		{VHD, createImage(t, dir, "a.vhd", "10M", "-f", "vpc"), 100},
		{VHDX, createImage(t, dir, "a.vhdx", "10M", "-f", "vhdx"), 300 << 10},
		{VDI, createImage(t, dir, "a.vdi", "10M", "-f", "vdi"), 0x100},
	}
	for _, c := range cases {
		in := inspect(c.format, c.data[:c.keep], 7)
		if in.Format() != c.format {
			t.Errorf("%s cut at %d: Format = %q", c.format, c.keep, in.Format())
		}
		if err := in.Check(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s cut at %d: Check = %v, want ErrMalformed", c.format, c.keep, err)
		}
	}
}
