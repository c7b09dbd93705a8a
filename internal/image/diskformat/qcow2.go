package diskformat

import (
	"encoding/binary"
	"fmt"
	"math"
)

// qcow2 header layout (big-endian), from QEMU's docs/interop/qcow2.txt.
const (
	qcow2Magic            = "QFI\xfb"
	qcow2OffVersion       = 4
	qcow2OffBackingOffset = 8
	qcow2OffClusterBits   = 20
	qcow2OffSize          = 24
	qcow2V2HeaderLen      = 72
	qcow2OffIncompatible  = 72
	qcow2OffHeaderLength  = 100
	qcow2V3MinHeaderLen   = 104
	qcow2IncompatDataFile = 1 << 2
	qcow2ExtEnd           = 0x00000000
	qcow2ExtDataFileName  = 0x44415441
	qcow2MinClusterBits   = 9
	qcow2MaxClusterBits   = 21
)

// detectQCOW2 refuses a qcow2 that would make QEMU open another file: a
// backing file (the classic host-file-read: point it at /etc/shadow and read
// it from the guest) or an external data file.
func detectQCOW2(in *Inspector) (verdict, bool) {
	h := in.head
	if len(h) < len(qcow2Magic) || string(h[:len(qcow2Magic)]) != qcow2Magic {
		return verdict{}, false
	}
	v := verdict{format: QCOW2}
	if len(h) < qcow2V2HeaderLen {
		v.err = fmt.Errorf("%w: qcow2 header truncated at %d bytes", ErrMalformed, len(h))
		return v, true
	}
	be := binary.BigEndian
	version := be.Uint32(h[qcow2OffVersion:])
	if version != 2 && version != 3 {
		// Version 1 (qcow) also has backing files; nothing newer exists.
		v.err = fmt.Errorf("%w: qcow2 version %d is not supported", ErrMalformed, version)
		return v, true
	}
	size := be.Uint64(h[qcow2OffSize:])
	if size > math.MaxInt64 {
		v.err = fmt.Errorf("%w: qcow2 size %d out of range", ErrMalformed, size)
		return v, true
	}
	v.size, v.sizeKnown = int64(size), true

	clusterBits := be.Uint32(h[qcow2OffClusterBits:])
	if clusterBits < qcow2MinClusterBits || clusterBits > qcow2MaxClusterBits {
		v.err = fmt.Errorf("%w: qcow2 cluster_bits %d out of range", ErrMalformed, clusterBits)
		return v, true
	}
	if be.Uint64(h[qcow2OffBackingOffset:]) != 0 {
		v.err = fmt.Errorf("%w: qcow2 image names a backing file", ErrUnsafe)
		return v, true
	}
	if version == 2 {
		return v, true
	}
	if len(h) < qcow2V3MinHeaderLen {
		v.err = fmt.Errorf("%w: qcow2 v3 header truncated at %d bytes", ErrMalformed, len(h))
		return v, true
	}
	if be.Uint64(h[qcow2OffIncompatible:])&qcow2IncompatDataFile != 0 {
		v.err = fmt.Errorf("%w: qcow2 image uses an external data file", ErrUnsafe)
		return v, true
	}
	headerLen := be.Uint32(h[qcow2OffHeaderLength:])
	if headerLen < qcow2V3MinHeaderLen || uint64(headerLen) > uint64(1)<<clusterBits {
		v.err = fmt.Errorf("%w: qcow2 header_length %d out of range", ErrMalformed, headerLen)
		return v, true
	}
	// The data file bit is what makes QEMU use a data file, so the name
	// extension alone is inert; refusing it anyway costs nothing and keeps
	// a half-crafted image out.
	if qcow2HasExtension(h, int(headerLen), uint64(1)<<clusterBits, qcow2ExtDataFileName) {
		v.err = fmt.Errorf("%w: qcow2 image carries an external data file name", ErrUnsafe)
	}
	return v, true
}

// qcow2HasExtension walks the header extensions, which follow the header
// inside the first cluster, looking for typ. It stops quietly at the end of
// the retained prefix.
func qcow2HasExtension(h []byte, off int, clusterSize uint64, typ uint32) bool {
	limit := min(uint64(len(h)), clusterSize)
	for pos := uint64(off); pos+8 <= limit; {
		t := binary.BigEndian.Uint32(h[pos:])
		n := uint64(binary.BigEndian.Uint32(h[pos+4:]))
		if t == typ {
			return true
		}
		if t == qcow2ExtEnd {
			return false
		}
		pos += 8 + (n+7)&^7
	}
	return false
}
