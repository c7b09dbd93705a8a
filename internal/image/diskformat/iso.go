package diskformat

import (
	"encoding/binary"
)

// ISO 9660 volume descriptors are 2 KiB sectors starting at sector 16
// (32 KiB), each tagged "CD001"; the set ends with a terminator. Both-endian
// fields are read from their little-endian half.
const (
	isoSectorSize     = 2048
	isoFirstSector    = 16
	isoMaxDescriptors = 32
	isoStandardID     = "CD001"
	isoTypePrimary    = 1
	isoTypeTerminator = 255
	isoOffVolumeSpace = 80
	isoOffBlockSize   = 128
)

// detectISO recognises an ISO 9660 image and sizes it from the primary
// volume descriptor. An ISO is a plain byte layout with nothing to refer
// elsewhere, so it has no safety findings.
func detectISO(in *Inspector) (verdict, bool) {
	h := in.head
	found := false
	v := verdict{format: ISO}
	for i := range isoMaxDescriptors {
		off := (isoFirstSector + i) * isoSectorSize
		if off+isoSectorSize > len(h) {
			break
		}
		d := h[off : off+isoSectorSize]
		if string(d[1:6]) != isoStandardID {
			break
		}
		found = true
		if d[0] == isoTypeTerminator {
			break
		}
		if d[0] != isoTypePrimary {
			continue
		}
		blocks := int64(binary.LittleEndian.Uint32(d[isoOffVolumeSpace:]))
		blockSize := int64(binary.LittleEndian.Uint16(d[isoOffBlockSize:]))
		// ISO 9660 allows logical blocks of 512, 1024 or 2048 bytes.
		if blockSize == 512 || blockSize == 1024 || blockSize == 2048 {
			v.size, v.sizeKnown = blocks*blockSize, true
		}
		break
	}
	return v, found
}
