// Package bodyhash computes an object body's MD5 on a goroutine of its
// own, beside the reads and writes that move the body, and lets a proxy
// hand that one digest to the object servers of its own process.
//
// MD5 costs about as much CPU as everything else done to a large body.
// Hashed inline, each chunk waited for it before it moved on; and with
// three replicas on the servers of one process (`nimbus up`), the same
// bytes were hashed three times in the object servers. A Digest hashes
// copies of the chunks while the originals travel on. The proxy puts
// its Digest in the context of the requests it sends through the
// in-process transport; an object server that finds one there uses it
// instead of hashing (WithDigest, FromContext). A context value cannot
// cross the network, so a server reached over HTTP always hashes what it
// received itself.
package bodyhash

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/bufpool"
)

// chunkSize is the size of the hasher's buffers: writes are copied in
// pieces of at most this much.
const chunkSize = bufpool.LargeSize

// Digest is the MD5 of a stream of writes, computed on its own
// goroutine. Write from one goroutine, then Finish exactly once; Sum
// may be called from any goroutine.
type Digest struct {
	h      hash.Hash
	free   chan *[]byte // the hasher's free buffers
	chunks chan []byte  // queued for hashing, in order
	hashed chan struct{}
	done   chan struct{} // closed by Finish once the hash is complete
	n      int64
	sum    string
	err    error
	once   sync.Once
}

// buffers is how many chunks the hasher may lag behind the writes (2
// MiB). The body's path stalls now and then, on the disk between chunks
// written back (diskWriter) or on the network; the hasher works through
// what is queued meanwhile instead of idling, and the writes go on while
// it catches up. With 2 buffers, a 1-replica 1 GiB PUT reached 429–483
// MB/s (alternated runs), with 8 buffers 479–577, with 16 514–519.
const buffers = 8

// Start begins a digest.
func Start() *Digest {
	d := &Digest{h: md5.New(), free: make(chan *[]byte, buffers), chunks: make(chan []byte, buffers),
		hashed: make(chan struct{}), done: make(chan struct{})}
	for range cap(d.free) {
		d.free <- bufpool.Large.Get().(*[]byte)
	}
	go func() {
		defer close(d.hashed)
		for c := range d.chunks {
			d.h.Write(c)
			b := c[:cap(c)]
			d.free <- &b
		}
	}()
	return d
}

// Write queues a copy of p for hashing; it waits only when all of the
// hasher's buffers are queued.
func (d *Digest) Write(p []byte) {
	for len(p) > 0 {
		b := <-d.free
		m := copy((*b)[:chunkSize], p)
		d.chunks <- (*b)[:m]
		p = p[m:]
		d.n += int64(m)
	}
}

// errUnfinished is the failure of a digest whose body did not arrive
// whole (Finish with an error).
var errUnfinished = errors.New("the body's digest was abandoned")

// Finish ends the writes: err nil says the body is complete, else Sum
// fails. It waits for the hasher and returns its buffers.
func (d *Digest) Finish(err error) {
	d.once.Do(func() {
		close(d.chunks)
		<-d.hashed
		for range cap(d.free) {
			bufpool.Large.Put(<-d.free)
		}
		if err != nil {
			d.err = fmt.Errorf("%w: %w", errUnfinished, err)
		} else {
			d.sum = hex.EncodeToString(d.h.Sum(nil))
		}
		close(d.done)
	})
}

// Sum waits for Finish and returns the hex MD5 of the n bytes written;
// an error if the writes were abandoned or were not n bytes (the caller
// received something other than what was hashed).
func (d *Digest) Sum(ctx context.Context, n int64) (string, error) {
	select {
	case <-d.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if d.err != nil {
		return "", d.err
	}
	if d.n != n {
		return "", fmt.Errorf("body digest covers %d bytes, %d were received", d.n, n)
	}
	return d.sum, nil
}

type ctxKey struct{}

// WithDigest returns ctx carrying d, for requests served in this process.
func WithDigest(ctx context.Context, d *Digest) context.Context {
	return context.WithValue(ctx, ctxKey{}, d)
}

// FromContext returns the digest a proxy of this process attached, or nil.
func FromContext(ctx context.Context) *Digest {
	d, _ := ctx.Value(ctxKey{}).(*Digest)
	return d
}
