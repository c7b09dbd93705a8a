package diskformat

import (
	"encoding/binary"
	"fmt"
	"math"
)

// VDI header layout (little-endian), as VirtualBox and QEMU's block/vdi.c
// use it: a 64-byte text banner, then the binary header.
const (
	vdiSignature   = 0xbeda107f
	vdiOffSig      = 0x40
	vdiOffType     = 0x4c
	vdiOffDiskSize = 0x170
	vdiHeaderLen   = vdiOffDiskSize + 8
	vdiTypeDiff    = 4
)

// detectVDI reads the disk size and refuses differencing images, which
// name a parent by UUID.
func detectVDI(in *Inspector) (verdict, bool) {
	h := in.head
	if len(h) < vdiOffSig+4 || binary.LittleEndian.Uint32(h[vdiOffSig:]) != vdiSignature {
		return verdict{}, false
	}
	v := verdict{format: VDI}
	if len(h) < vdiHeaderLen {
		v.err = fmt.Errorf("%w: vdi header truncated at %d bytes", ErrMalformed, len(h))
		return v, true
	}
	size := binary.LittleEndian.Uint64(h[vdiOffDiskSize:])
	if size > math.MaxInt64 {
		v.err = fmt.Errorf("%w: vdi disk size %d out of range", ErrMalformed, size)
		return v, true
	}
	v.size, v.sizeKnown = int64(size), true
	if binary.LittleEndian.Uint32(h[vdiOffType:]) == vdiTypeDiff {
		v.err = fmt.Errorf("%w: vdi differencing image refers to a parent image", ErrUnsafe)
	}
	return v, true
}
