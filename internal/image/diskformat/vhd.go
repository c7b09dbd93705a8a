package diskformat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// VHD footer layout (big-endian), from Microsoft's "Virtual Hard Disk Image
// Format Specification". Dynamic and differencing disks carry a copy of the
// footer at offset 0; fixed disks only have it as the last 512 bytes.
const (
	vhdCookie         = "conectix"
	vhdFooterLen      = 512
	vhdOffCurrentSize = 48
	vhdOffDiskType    = 60
	vhdOffChecksum    = 64
	vhdTypeFixed      = 2
	vhdTypeDynamic    = 3
	vhdTypeDiff       = 4
)

// detectVHD recognises the leading footer copy of a dynamic VHD, or failing
// that the trailing footer of a fixed one. The trailing match is weak: it
// says nothing about the data in front of it.
func detectVHD(in *Inspector) (verdict, bool) {
	if bytes.HasPrefix(in.head, []byte(vhdCookie)) {
		if len(in.head) < vhdFooterLen {
			return verdict{format: VHD, err: fmt.Errorf(
				"%w: vhd footer truncated at %d bytes", ErrMalformed, len(in.head))}, true
		}
		return parseVHDFooter(in.head[:vhdFooterLen], false), true
	}
	f := in.lastBytes(vhdFooterLen)
	if f == nil || !bytes.HasPrefix(f, []byte(vhdCookie)) || !vhdChecksumOK(f) {
		return verdict{}, false
	}
	return parseVHDFooter(f, true), true
}

func parseVHDFooter(f []byte, weak bool) verdict {
	v := verdict{format: VHD, weak: weak}
	if !vhdChecksumOK(f) {
		v.err = fmt.Errorf("%w: vhd footer checksum mismatch", ErrMalformed)
		return v
	}
	size := binary.BigEndian.Uint64(f[vhdOffCurrentSize:])
	if size > math.MaxInt64 {
		v.err = fmt.Errorf("%w: vhd current size %d out of range", ErrMalformed, size)
		return v
	}
	v.size, v.sizeKnown = int64(size), true
	switch t := binary.BigEndian.Uint32(f[vhdOffDiskType:]); t {
	case vhdTypeFixed, vhdTypeDynamic:
	case vhdTypeDiff:
		v.err = fmt.Errorf("%w: vhd differencing disk refers to a parent image", ErrUnsafe)
	default:
		v.err = fmt.Errorf("%w: vhd disk type %d is not supported", ErrMalformed, t)
	}
	return v
}

// vhdChecksumOK verifies the footer checksum: the ones' complement of the
// byte sum with the checksum field itself left out. Checking it keeps raw
// data that merely ends in "conectix" from passing for a fixed VHD.
func vhdChecksumOK(f []byte) bool {
	var sum uint32
	for i, b := range f[:vhdFooterLen] {
		if i >= vhdOffChecksum && i < vhdOffChecksum+4 {
			continue
		}
		sum += uint32(b)
	}
	return ^sum == binary.BigEndian.Uint32(f[vhdOffChecksum:])
}

// VHDX layout (little-endian), from Microsoft's [MS-VHDX]. The virtual size
// is a metadata item; finding it takes three hops: region table (at 192 KiB)
// → metadata region table → the item itself, which QEMU places at 3 MiB.
// The inspector keeps the head, so it asks for the metadata table and items
// as captures once it knows where they are.
const (
	vhdxSignature        = "vhdxfile"
	vhdxRegionTableOff   = 192 << 10
	vhdxRegionTableEnd   = vhdxRegionTableOff + 64<<10
	vhdxRegionSig        = "regi"
	vhdxRegionHeaderLen  = 16
	vhdxRegionEntryLen   = 32
	vhdxMaxRegions       = 2047
	vhdxMetaSig          = "metadata"
	vhdxMetaHeaderLen    = 32
	vhdxMetaEntryLen     = 32
	vhdxMaxMetaEntries   = 2047
	vhdxMetaTableMax     = vhdxMetaHeaderLen + vhdxMaxMetaEntries*vhdxMetaEntryLen
	vhdxItemLen          = 8
	vhdxMaxCapture       = vhdxMetaTableMax + 2*vhdxItemLen
	vhdxFileParamsParent = 1 << 1
)

// GUIDs as they are stored on disk (first three groups little-endian).
var (
	// 8B7CA206-4790-4B9A-B8FE-575F050F886E
	vhdxMetadataRegionGUID = []byte{0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
		0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e}
	// 2FA54224-CD1B-4876-B211-5DBED83BF4B8
	vhdxVirtualDiskSizeGUID = []byte{0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48,
		0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8}
	// CAA16737-FA36-4D43-B3B6-33F0AA44E76B
	vhdxFileParametersGUID = []byte{0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
		0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b}
)

// vhdxPlan tracks where the VHDX metadata is, as it is learned.
type vhdxPlan struct {
	planned   bool  // the region table has been read
	metaOff   int64 // stream offset of the metadata region, -1 if none
	table     *capture
	itemsDone bool // item captures have been requested
	sizeOff   int64
	paramsOff int64
}

// planVHDX runs after every Write segment; it advances through the hops as
// the bytes each one needs arrive.
func (in *Inspector) planVHDX() {
	p := &in.vhdx
	if !bytes.HasPrefix(in.head, []byte(vhdxSignature)) {
		return
	}
	if !p.planned {
		if in.n < vhdxRegionTableEnd {
			return
		}
		p.planned = true
		p.metaOff = vhdxFindMetadataRegion(in.head)
		if p.metaOff < 0 {
			return
		}
		if !in.rangeRetainable(p.metaOff, vhdxMetaTableMax) {
			p.metaOff = -1
			return
		}
		if p.metaOff+vhdxMetaTableMax > headLimit {
			// Not (wholly) in the head: capture it as it streams past.
			p.table = newCapture(p.metaOff, vhdxMetaTableMax)
			in.captures = append(in.captures, p.table)
		}
	}
	if p.metaOff < 0 || p.itemsDone {
		return
	}
	hdr := in.bytesAt(p.metaOff, vhdxMetaHeaderLen)
	if hdr == nil {
		return // not arrived yet
	}
	p.itemsDone = true
	if string(hdr[:len(vhdxMetaSig)]) != vhdxMetaSig {
		return
	}
	count := int(binary.LittleEndian.Uint16(hdr[10:]))
	if count > vhdxMaxMetaEntries {
		return
	}
	entries := in.bytesAt(p.metaOff+vhdxMetaHeaderLen, count*vhdxMetaEntryLen)
	if entries == nil {
		p.itemsDone = false // the rest of the table is still coming
		return
	}
	p.sizeOff = in.vhdxRequestItem(entries, vhdxVirtualDiskSizeGUID)
	p.paramsOff = in.vhdxRequestItem(entries, vhdxFileParametersGUID)
}

// vhdxRequestItem finds the metadata item id and arranges for its first
// eight bytes to be retained; it returns the item's stream offset or -1.
func (in *Inspector) vhdxRequestItem(entries, id []byte) int64 {
	for e := entries; len(e) >= vhdxMetaEntryLen; e = e[vhdxMetaEntryLen:] {
		if !bytes.Equal(e[:16], id) {
			continue
		}
		off := in.vhdx.metaOff + int64(binary.LittleEndian.Uint32(e[16:]))
		if binary.LittleEndian.Uint32(e[20:]) < vhdxItemLen {
			return -1
		}
		if in.bytesAt(off, vhdxItemLen) != nil {
			return off
		}
		if off < in.n || !in.rangeRetainable(off, vhdxItemLen) {
			return -1 // already streamed past
		}
		in.captures = append(in.captures, newCapture(off, vhdxItemLen))
		return off
	}
	return -1
}

// rangeRetainable reports whether [off, off+n) is either in the head or can
// still be captured.
func (in *Inspector) rangeRetainable(off int64, n int) bool {
	if off < 0 || off > math.MaxInt64-int64(n) {
		return false
	}
	return off+int64(n) <= headLimit || off >= in.n
}

// vhdxFindMetadataRegion returns the file offset of the metadata region
// from the first region table, or -1.
func vhdxFindMetadataRegion(h []byte) int64 {
	if len(h) < vhdxRegionTableEnd {
		return -1
	}
	t := h[vhdxRegionTableOff:vhdxRegionTableEnd]
	if string(t[:len(vhdxRegionSig)]) != vhdxRegionSig {
		return -1
	}
	count := binary.LittleEndian.Uint32(t[8:])
	if count > vhdxMaxRegions {
		return -1
	}
	for i := range int(count) {
		e := t[vhdxRegionHeaderLen+i*vhdxRegionEntryLen:]
		if !bytes.Equal(e[:16], vhdxMetadataRegionGUID) {
			continue
		}
		off := binary.LittleEndian.Uint64(e[16:])
		if off > math.MaxInt64/2 {
			return -1
		}
		return int64(off)
	}
	return -1
}

// detectVHDX reports the format from the signature and the virtual size
// from the metadata, refusing images whose metadata is missing (QEMU could
// not open them either) or that declare a parent.
func detectVHDX(in *Inspector) (verdict, bool) {
	if !bytes.HasPrefix(in.head, []byte(vhdxSignature)) {
		return verdict{}, false
	}
	v := verdict{format: VHDX}
	p := &in.vhdx
	size := in.bytesAt(p.sizeOff, vhdxItemLen)
	params := in.bytesAt(p.paramsOff, vhdxItemLen)
	if !p.itemsDone || p.sizeOff <= 0 || p.paramsOff <= 0 || size == nil || params == nil {
		v.err = fmt.Errorf("%w: vhdx metadata (virtual size, file parameters) not found", ErrMalformed)
		return v, true
	}
	s := binary.LittleEndian.Uint64(size)
	if s > math.MaxInt64 {
		v.err = fmt.Errorf("%w: vhdx virtual size %d out of range", ErrMalformed, s)
		return v, true
	}
	v.size, v.sizeKnown = int64(s), true
	if binary.LittleEndian.Uint32(params[4:])&vhdxFileParamsParent != 0 {
		v.err = fmt.Errorf("%w: vhdx differencing disk refers to a parent image", ErrUnsafe)
	}
	return v, true
}
