package consoleproxy

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrame: no input makes the parser panic or over-read, a frame it
// accepts obeys the rules it enforces, and encoding that frame again
// gives back the same frame.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, opBinary, []byte("RFB 003.008\n"), true, [4]byte{1, 2, 3, 4}))
	f.Add(appendFrame(nil, opClose, []byte{0x03, 0xe8}, true, [4]byte{9, 9, 9, 9}))
	f.Add(appendFrame(nil, opText, bytes.Repeat([]byte("x"), 300), true, [4]byte{0, 0, 0, 1}))
	f.Add([]byte{0x02, 0xff, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0x82, 0x7e, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		r := bytes.NewReader(data)
		fr, err := readFrame(r, limit)
		if err != nil {
			var ce *closeError
			if !errors.As(err, &ce) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if len(fr.payload) > limit {
			t.Fatalf("payload of %d bytes over the limit", len(fr.payload))
		}
		if fr.opcode >= opClose && (len(fr.payload) > 125 || !fr.fin) {
			t.Fatalf("accepted control frame %#x fin=%v len=%d", fr.opcode, fr.fin, len(fr.payload))
		}
		enc := appendFrame(nil, fr.opcode, fr.payload, true, [4]byte{0xa, 0xb, 0xc, 0xd})
		if !fr.fin {
			enc[0] &^= 0x80
		}
		again, err := readFrame(bytes.NewReader(enc), limit)
		if err != nil || again.fin != fr.fin || again.opcode != fr.opcode || !bytes.Equal(again.payload, fr.payload) {
			t.Fatalf("round trip: %+v -> %+v (%v)", fr, again, err)
		}
	})
}
