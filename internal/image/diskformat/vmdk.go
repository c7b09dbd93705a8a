package diskformat

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// VMDK sparse extent header layout (little-endian), from VMware's "Virtual
// Disk Format 5.0" technote.
const (
	vmdkSparseMagic   = "KDMV"
	vmdkCOWDMagic     = "COWD"
	vmdkOffCapacity   = 12
	vmdkOffDescOffset = 28
	vmdkOffDescSize   = 36
	vmdkOffGDOffset   = 56
	vmdkHeaderLen     = 512
	vmdkGDAtEnd       = math.MaxUint64
	sectorSize        = 512
	// vmdkProbeLen is how far into a text descriptor we look for its first
	// statement, as QEMU's probe does.
	vmdkProbeLen = 4096
)

// vmdkSafeCreateTypes are the single-file VMDK variants: the data is in the
// same file as the descriptor. Every other create type (monolithicFlat,
// twoGbMaxExtent*, vmfs*, fullDevice, partitionedDevice…) keeps data in
// files or devices named by the descriptor.
var vmdkSafeCreateTypes = map[string]bool{
	"monolithicSparse": true,
	"streamOptimized":  true,
}

// detectVMDK accepts only monolithic sparse VMDKs whose embedded descriptor
// names a single sparse extent in the same directory. QEMU honours the
// extent list of an embedded descriptor, so anything else lets the image
// pull in host files or devices.
func detectVMDK(in *Inspector) (verdict, bool) {
	h := in.head
	switch {
	case bytes.HasPrefix(h, []byte(vmdkSparseMagic)):
		return inspectSparseVMDK(h), true
	case bytes.HasPrefix(h, []byte(vmdkCOWDMagic)):
		return verdict{format: VMDK, err: fmt.Errorf(
			"%w: vmdk COWD (ESX 2) sparse format is not supported", ErrUnsafe)}, true
	case looksLikeVMDKDescriptor(h):
		return verdict{format: VMDK, err: fmt.Errorf(
			"%w: vmdk is a bare descriptor whose extents live in other files", ErrUnsafe)}, true
	}
	return verdict{}, false
}

func inspectSparseVMDK(h []byte) verdict {
	v := verdict{format: VMDK}
	if len(h) < vmdkHeaderLen {
		v.err = fmt.Errorf("%w: vmdk header truncated at %d bytes", ErrMalformed, len(h))
		return v
	}
	le := binary.LittleEndian
	capacity := le.Uint64(h[vmdkOffCapacity:])
	if capacity > math.MaxInt64/sectorSize {
		v.err = fmt.Errorf("%w: vmdk capacity %d sectors out of range", ErrMalformed, capacity)
		return v
	}
	v.size, v.sizeKnown = int64(capacity)*sectorSize, true

	if le.Uint64(h[vmdkOffGDOffset:]) == vmdkGDAtEnd {
		// QEMU then rereads the whole header, descriptor offset included,
		// from a footer near the end of the file. A stream cannot go back
		// to check a descriptor the footer points at.
		v.err = fmt.Errorf("%w: vmdk with a footer header cannot be verified while streaming", ErrUnsafe)
		return v
	}
	descOff, descSize := le.Uint64(h[vmdkOffDescOffset:]), le.Uint64(h[vmdkOffDescSize:])
	if descOff == 0 && descSize == 0 {
		// A bare sparse extent: nothing refers elsewhere.
		return v
	}
	if descOff > headLimit/sectorSize || descSize > headLimit/sectorSize ||
		(descOff+descSize)*sectorSize > headLimit {
		v.err = fmt.Errorf("%w: vmdk descriptor at sector %d (+%d) lies beyond the inspected %d bytes",
			ErrUnsafe, descOff, descSize, headLimit)
		return v
	}
	start, end := descOff*sectorSize, (descOff+descSize)*sectorSize
	if end > uint64(len(h)) {
		v.err = fmt.Errorf("%w: vmdk descriptor truncated", ErrMalformed)
		return v
	}
	desc := h[start:end]
	if i := bytes.IndexByte(desc, 0); i >= 0 {
		desc = desc[:i]
	}
	if err := checkVMDKDescriptor(desc); err != nil {
		v.err = err
	}
	return v
}

// checkVMDKDescriptor enforces the single-extent rule on an embedded
// descriptor.
func checkVMDKDescriptor(desc []byte) error {
	var createType string
	var extents []vmdkExtent
	sc := bufio.NewScanner(bytes.NewReader(desc))
	sc.Buffer(make([]byte, 0, 4096), len(desc)+1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if val, ok := strings.CutPrefix(line, "createType="); ok {
			createType = strings.Trim(strings.TrimSpace(val), `"`)
			continue
		}
		if e, ok := parseVMDKExtent(line); ok {
			extents = append(extents, e)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: vmdk descriptor: %v", ErrMalformed, err)
	}
	if !vmdkSafeCreateTypes[createType] {
		return fmt.Errorf("%w: vmdk createType %q keeps data outside the image", ErrUnsafe, createType)
	}
	if len(extents) != 1 {
		return fmt.Errorf("%w: vmdk descriptor lists %d extents, want exactly 1", ErrUnsafe, len(extents))
	}
	e := extents[0]
	if e.kind != "SPARSE" {
		return fmt.Errorf("%w: vmdk extent type %q refers to another file or device", ErrUnsafe, e.kind)
	}
	if e.file == "" || strings.ContainsAny(e.file, `/\`) || e.file == "." || e.file == ".." {
		return fmt.Errorf("%w: vmdk extent file name %q is not a plain file name", ErrUnsafe, e.file)
	}
	return nil
}

type vmdkExtent struct {
	kind string // SPARSE, FLAT, VMFS, ZERO, …
	file string
}

// parseVMDKExtent parses `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
func parseVMDKExtent(line string) (vmdkExtent, bool) {
	fields := strings.Fields(line)
	if len(fields) < 3 {
		return vmdkExtent{}, false
	}
	switch fields[0] {
	case "RW", "RDONLY", "NOACCESS":
	default:
		return vmdkExtent{}, false
	}
	e := vmdkExtent{kind: strings.ToUpper(fields[2])}
	if i := strings.IndexByte(line, '"'); i >= 0 {
		rest := line[i+1:]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			e.file = rest[:j]
		} else {
			e.file = rest
		}
	} else if len(fields) > 3 {
		e.file = fields[3]
	}
	return e, true
}

// looksLikeVMDKDescriptor mirrors how QEMU probes a text descriptor: after
// blank and comment lines, the first statement sets "version=". Matching
// QEMU matters more than matching the spec, since QEMU is what would
// autodetect it.
func looksLikeVMDKDescriptor(h []byte) bool {
	h = h[:min(len(h), vmdkProbeLen)]
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		line = bytes.TrimLeft(line, " \t\r")
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		return bytes.HasPrefix(line, []byte("version="))
	}
	return false
}
