package image

import (
	"bytes"
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// The digester's sums equal the plain hashes of the data however it is
// read: in tiny pieces, in reads larger than a chunk, and up to an error.
func TestDigesterMatchesPlainHashes(t *testing.T) {
	data := make([]byte, 3*digestChunkSize+12345)
	r := rand.New(rand.NewPCG(7, 9))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	wantMD5 := md5.Sum(data)
	wantSHA := sha512.Sum512(data)
	for name, src := range map[string]io.Reader{
		"one byte at a time": iotest.OneByteReader(bytes.NewReader(data)),
		"half reads":         iotest.HalfReader(bytes.NewReader(data)),
		"whole":              bytes.NewReader(data),
	} {
		t.Run(name, func(t *testing.T) {
			var inspected bytes.Buffer
			d := newDigester(src, &inspected)
			got, err := io.ReadAll(d)
			if err != nil {
				t.Fatal(err)
			}
			m, s := d.sums()
			if !bytes.Equal(got, data) || !bytes.Equal(inspected.Bytes(), data) {
				t.Fatal("the data changed on its way through")
			}
			if m != hex.EncodeToString(wantMD5[:]) || s != hex.EncodeToString(wantSHA[:]) {
				t.Fatalf("sums %s %s", m, s)
			}
		})
	}
}

func BenchmarkDigester(b *testing.B) {
	data := make([]byte, 64<<20)
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 32<<10)
	for b.Loop() {
		d := newDigester(bytes.NewReader(data), io.Discard)
		if _, err := io.CopyBuffer(io.Discard, d, buf); err != nil {
			b.Fatal(err)
		}
		d.sums()
	}
}

// BenchmarkSequentialHashes is the one-goroutine baseline the digester
// replaces, for comparison on the same machine.
func BenchmarkSequentialHashes(b *testing.B) {
	data := make([]byte, 64<<20)
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 32<<10)
	for b.Loop() {
		m, s := md5.New(), sha512.New()
		if _, err := io.CopyBuffer(io.MultiWriter(m, s), bytes.NewReader(data), buf); err != nil {
			b.Fatal(err)
		}
	}
}
