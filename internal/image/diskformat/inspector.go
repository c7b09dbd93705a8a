// Package diskformat recognises disk image formats in a stream and refuses
// images that are unsafe to hand to QEMU.
//
// The image service cannot trust the disk_format a user declares: a qcow2
// that names a backing file (or an external data file), or a vmdk whose
// descriptor lists extent files, makes QEMU open arbitrary host paths when
// the image is booted or converted, and an image declared "raw" that really
// is qcow2 does the same the moment anything autodetects its format. So the
// upload path feeds every byte through an [Inspector], which keeps only a
// bounded prefix (and a small tail) of the stream, learns the virtual size
// on the way, and reports unsafe or mismatching images from [Inspector.Check]
// before the image becomes active.
//
// [Convert] and [Info] wrap qemu-img for the operator-enabled import
// conversion between formats; they always name the source format explicitly
// so qemu-img never probes.
package diskformat

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Disk format names, spelled as Glance spells disk_format (so "vhd", which
// qemu calls "vpc").
const (
	Raw   = "raw"
	QCOW2 = "qcow2"
	VMDK  = "vmdk"
	VHD   = "vhd"
	VHDX  = "vhdx"
	VDI   = "vdi"
	ISO   = "iso"
)

// Sentinel errors returned (wrapped) by [Inspector.Check], [Convert] and
// [Info]. Callers map all three to a client error; they differ so that logs
// and messages can tell an attack from a mistake.
var (
	// ErrUnsafe means the image would make QEMU read files other than the
	// image itself: a backing file, an external data file, extent files.
	ErrUnsafe = errors.New("unsafe disk image")
	// ErrFormatMismatch means the data is not in the declared disk_format,
	// or looks like more than one format at once.
	ErrFormatMismatch = errors.New("disk image format mismatch")
	// ErrMalformed means the image claims a format but its headers are
	// truncated or inconsistent, so its safety cannot be established.
	ErrMalformed = errors.New("malformed disk image")
)

const (
	// headLimit bounds the prefix kept in memory. Every header this package
	// reads lives in it (the furthest, the VHDX region table, ends at
	// 256 KiB), except VHDX metadata items, which are captured separately.
	headLimit = 1 << 20
	// tailSize is how much of the end of the stream is remembered, enough
	// for the footer of a fixed VHD.
	tailSize = 512
)

// MaxRetained is the most memory, in bytes, an Inspector holds on to however
// long the stream: the head, the tail and the VHDX captures. The upload path
// relies on it to keep per-upload memory flat whatever the image size.
const MaxRetained = headLimit + tailSize + vhdxMaxCapture

// Inspector learns the format and virtual size of a disk image while it
// streams past. It implements io.Writer so it can sit in an io.MultiWriter
// beside the hashers; Write never fails. An Inspector is not safe for
// concurrent use, and its answers are final only once the whole image has
// been written.
type Inspector struct {
	declared string
	n        int64  // bytes written so far
	head     []byte // the first min(n, headLimit) bytes

	tail    [tailSize]byte // the last tailLen bytes written
	tailLen int

	captures []*capture // ranges beyond head that a parser asked for
	vhdx     vhdxPlan
}

var _ io.Writer = (*Inspector)(nil)

// NewInspector returns an Inspector for an image declared as the given
// Glance disk_format. The declared format decides what Check accepts; it is
// matched case-insensitively.
func NewInspector(declared string) *Inspector {
	return &Inspector{declared: strings.ToLower(strings.TrimSpace(declared))}
}

// Write records p. It keeps at most MaxRetained bytes in total and always
// reports len(p), nil.
func (in *Inspector) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		// Split the write where a parser may want to ask for more of the
		// stream, so that a single huge Write cannot carry the wanted
		// bytes past before the request is made.
		k := len(p)
		if b := in.nextBoundary(); b > in.n && b-in.n < int64(k) {
			k = int(b - in.n)
		}
		in.consume(p[:k])
		p = p[k:]
		in.planVHDX()
	}
	return total, nil
}

// Size reports how many bytes have been written.
func (in *Inspector) Size() int64 { return in.n }

// Declared reports the declared disk format, normalised.
func (in *Inspector) Declared() string { return in.declared }

func (in *Inspector) consume(p []byte) {
	if in.n < headLimit {
		m := min(int64(len(p)), headLimit-in.n)
		in.appendHead(p[:m])
	}
	for _, c := range in.captures {
		c.fill(in.n, p)
	}
	in.appendTail(p)
	in.n += int64(len(p))
}

// appendHead grows head itself rather than with append, whose capacity
// growth could overshoot headLimit.
func (in *Inspector) appendHead(p []byte) {
	need := len(in.head) + len(p)
	if need > cap(in.head) {
		c := max(2*cap(in.head), need, 4096)
		c = min(c, headLimit)
		grown := make([]byte, len(in.head), c)
		copy(grown, in.head)
		in.head = grown
	}
	in.head = append(in.head, p...)
}

func (in *Inspector) appendTail(p []byte) {
	if len(p) >= tailSize {
		copy(in.tail[:], p[len(p)-tailSize:])
		in.tailLen = tailSize
		return
	}
	if keep := tailSize - len(p); in.tailLen > keep {
		copy(in.tail[:], in.tail[in.tailLen-keep:in.tailLen])
		in.tailLen = keep
	}
	copy(in.tail[in.tailLen:], p)
	in.tailLen += len(p)
}

// lastBytes returns the final n bytes of the stream, or nil if fewer than n
// were written.
func (in *Inspector) lastBytes(n int) []byte {
	if n > in.tailLen {
		return nil
	}
	return in.tail[in.tailLen-n : in.tailLen]
}

// bytesAt returns n bytes at stream offset off if they were retained.
func (in *Inspector) bytesAt(off int64, n int) []byte {
	if off < 0 || n < 0 {
		return nil
	}
	if end := off + int64(n); end >= off && end <= int64(len(in.head)) {
		return in.head[off:end]
	}
	for _, c := range in.captures {
		if b := c.slice(off, n); b != nil {
			return b
		}
	}
	return nil
}

// retained reports the bytes of memory held for image data.
func (in *Inspector) retained() int {
	r := cap(in.head) + len(in.tail)
	for _, c := range in.captures {
		r += cap(c.buf)
	}
	return r
}

// verdict is what one format parser concluded about the data.
type verdict struct {
	format    string
	weak      bool // matched only by a trailing footer, not a leading header
	size      int64
	sizeKnown bool
	err       error // why the image must be refused; nil if it may be used
}

// detectors run in this order; each reports whether its signature is
// present.
var detectors = []func(*Inspector) (verdict, bool){
	detectQCOW2,
	detectQED,
	detectVMDK,
	detectVHD,
	detectVHDX,
	detectVDI,
	detectISO,
}

// resolve picks the one format the data is in. Data carrying several
// leading signatures is a polyglot built to be read one way by the checker
// and another by QEMU, so it is refused rather than resolved.
func (in *Inspector) resolve() (verdict, error) {
	var strong []verdict
	var weak *verdict
	for _, detect := range detectors {
		v, ok := detect(in)
		switch {
		case !ok:
		case v.weak:
			weak = &v
		default:
			strong = append(strong, v)
		}
	}
	switch {
	case len(strong) > 1:
		names := make([]string, len(strong))
		for i, v := range strong {
			names[i] = v.format
		}
		return verdict{}, fmt.Errorf("%w: data matches several formats (%s)",
			ErrFormatMismatch, strings.Join(names, ", "))
	case len(strong) == 1:
		// A fixed VHD is raw data plus a footer, and the data may well be
		// an ISO; when the user says VHD, the footer is what QEMU uses.
		if weak != nil && in.declared == VHD && strong[0].format == ISO {
			return *weak, nil
		}
		return strong[0], nil
	case weak != nil:
		return *weak, nil
	}
	return verdict{format: Raw, size: in.n, sizeKnown: true}, nil
}

// Format reports the format the data is in: one of the format constants,
// Raw when no format is recognised, or "" when the data matches several
// formats (which Check refuses).
func (in *Inspector) Format() string {
	v, err := in.resolve()
	if err != nil {
		return ""
	}
	return v.format
}

// VirtualSize reports the size of the disk a guest would see when the image
// is used as its declared format: the byte count for raw, the header's size
// field otherwise. It reports false when the size is unknown, which includes
// declared formats this package does not inspect (ami, aki, ari, ploop, …).
// It is meaningful only once Check returns nil.
func (in *Inspector) VirtualSize() (int64, bool) {
	if !inspectable(in.declared) {
		return 0, false
	}
	if in.declared == Raw {
		return in.n, true
	}
	v, err := in.resolve()
	if err != nil || !v.sizeKnown {
		return 0, false
	}
	return v.size, true
}

// Check reports whether the image may be stored and booted as its declared
// format. Call it after the last Write. It returns nil, or an error wrapping
// ErrUnsafe, ErrFormatMismatch or ErrMalformed.
//
// Safety problems of the detected format are reported whatever was
// declared, because a qcow2 with a backing file is dangerous under any
// label. The declared format must match the detected one, except that raw
// and iso are interchangeable (both are plain byte layouts, so neither
// reading is an escalation) and formats this package does not inspect are
// accepted as they are.
func (in *Inspector) Check() error {
	v, err := in.resolve()
	if err != nil {
		return err
	}
	if v.err != nil {
		return v.err
	}
	if !inspectable(in.declared) || in.declared == v.format {
		return nil
	}
	if plainLayout(in.declared) && plainLayout(v.format) {
		return nil
	}
	return fmt.Errorf("%w: declared %s but data is %s", ErrFormatMismatch, in.declared, v.format)
}

// inspectable reports whether the inspector can recognise format, and so
// whether a mismatch with it can be detected.
func inspectable(format string) bool {
	switch format {
	case Raw, QCOW2, VMDK, VHD, VHDX, VDI, ISO:
		return true
	}
	return false
}

func plainLayout(format string) bool { return format == Raw || format == ISO }

// capture keeps a range of the stream beyond the head that a parser needs.
type capture struct {
	off int64
	buf []byte
	got int // bytes of buf filled, always a prefix
}

func newCapture(off int64, n int) *capture {
	return &capture{off: off, buf: make([]byte, n)}
}

// fill copies the part of p (which starts at stream offset pos) that falls
// in the capture's range.
func (c *capture) fill(pos int64, p []byte) {
	end := c.off + int64(len(c.buf))
	lo := max(c.off, pos)
	hi := min(end, pos+int64(len(p)))
	if lo >= hi {
		return
	}
	copy(c.buf[lo-c.off:], p[lo-pos:hi-pos])
	c.got = int(hi - c.off)
}

func (c *capture) slice(off int64, n int) []byte {
	if off < c.off || off-c.off > int64(c.got) || int64(n) > int64(c.got)-(off-c.off) {
		return nil
	}
	s := int(off - c.off)
	return c.buf[s : s+n]
}

// nextBoundary is the next stream offset at which Write must stop and let
// planVHDX look at what has arrived.
func (in *Inspector) nextBoundary() int64 {
	b := int64(-1)
	consider := func(x int64) {
		if x > in.n && (b < 0 || x < b) {
			b = x
		}
	}
	consider(vhdxRegionTableEnd)
	for _, c := range in.captures {
		consider(c.off + int64(len(c.buf)))
	}
	return b
}
