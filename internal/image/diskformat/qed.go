package diskformat

import (
	"encoding/binary"
	"fmt"
	"math"
)

// QED is not a Glance disk format, but QEMU still autodetects it and it has
// backing files, so raw data that is really QED is the qcow2 attack under
// another name. It is recognised only so that it can be refused.
const QED = "qed"

// QED header layout (little-endian), from QEMU's docs/interop/qed_spec.txt.
const (
	qedMagic            = "QED\x00"
	qedOffFeatures      = 16
	qedOffImageSize     = 48
	qedOffBackingOffset = 56
	qedHeaderLen        = 64
	qedFeatureBacking   = 1 << 0
)

// detectQED refuses QED images that name a backing file.
func detectQED(in *Inspector) (verdict, bool) {
	h := in.head
	if len(h) < len(qedMagic) || string(h[:len(qedMagic)]) != qedMagic {
		return verdict{}, false
	}
	v := verdict{format: QED}
	if len(h) < qedHeaderLen {
		v.err = fmt.Errorf("%w: qed header truncated at %d bytes", ErrMalformed, len(h))
		return v, true
	}
	le := binary.LittleEndian
	if size := le.Uint64(h[qedOffImageSize:]); size <= math.MaxInt64 {
		v.size, v.sizeKnown = int64(size), true
	}
	if le.Uint64(h[qedOffFeatures:])&qedFeatureBacking != 0 || le.Uint32(h[qedOffBackingOffset:]) != 0 {
		v.err = fmt.Errorf("%w: qed image names a backing file", ErrUnsafe)
	}
	return v, true
}
