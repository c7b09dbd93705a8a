package image

import (
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

// digester computes an image's MD5 (checksum) and SHA-512 (multihash)
// while it streams into a store. Hashing is most of an upload's CPU
// (SHA-512 and MD5 together cost more than the write itself), so each
// hash runs in its own goroutine on copies of the data, alongside the
// store's write, instead of one after another on the request's
// goroutine. Memory stays bounded: at most digestDepth chunks are in
// flight, after which reading waits for the hashes to catch up.
type digester struct {
	r       io.Reader
	inspect io.Writer // the disk format inspector; it never fails

	workers []*hashWorker
	once    sync.Once
	// free recycles chunks (a sync.Pool would do, but the race detector
	// makes pools drop items, and uploads must allocate little whatever
	// their size). Each chunk grows to the size of the reads it carries,
	// 32 KiB from io.Copy, so what is in flight stays small.
	free chan *digestChunk
}

// digestChunk is one read's data, shared by the hash workers and
// returned to the pool when the last of them is done with it.
type digestChunk struct {
	buf  []byte
	refs atomic.Int32
}

const (
	digestChunkSize = 256 << 10
	digestDepth     = 16
)

type hashWorker struct {
	h    hash.Hash
	in   chan *digestChunk
	done chan struct{}
}

func newDigester(r io.Reader, inspect io.Writer) *digester {
	d := &digester{r: r, inspect: inspect, free: make(chan *digestChunk, digestDepth+4)}
	for _, h := range []hash.Hash{md5.New(), sha512.New()} {
		w := &hashWorker{h: h, in: make(chan *digestChunk, digestDepth), done: make(chan struct{})}
		go func() {
			defer close(w.done)
			for c := range w.in {
				w.h.Write(c.buf)
				if c.refs.Add(-1) == 0 {
					select {
					case d.free <- c:
					default:
					}
				}
			}
		}()
		d.workers = append(d.workers, w)
	}
	return d
}

func (d *digester) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	for off := 0; off < n; {
		var c *digestChunk
		select {
		case c = <-d.free:
		default:
			c = new(digestChunk)
		}
		k := min(n-off, digestChunkSize)
		c.buf = append(c.buf[:0], p[off:off+k]...)
		c.refs.Store(int32(len(d.workers)))
		for _, w := range d.workers {
			w.in <- c
		}
		d.inspect.Write(p[off : off+k])
		off += k
	}
	return n, err
}

// sums waits for the hashes of everything read and returns them as hex:
// MD5 then SHA-512. Call it once reading is over.
func (d *digester) sums() (md5hex, sha512hex string) {
	d.stop()
	return hex.EncodeToString(d.workers[0].h.Sum(nil)), hex.EncodeToString(d.workers[1].h.Sum(nil))
}

// stop ends the hash workers; safe to call more than once.
func (d *digester) stop() {
	d.once.Do(func() {
		for _, w := range d.workers {
			close(w.in)
		}
		for _, w := range d.workers {
			<-w.done
		}
	})
}
