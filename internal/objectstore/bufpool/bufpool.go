// Package bufpool holds the buffers object bodies are copied through,
// shared by the proxy, the object servers and their body hashing.
//
// Each step of a copy is a hand-over to another goroutine or a system
// call: io.Copy's 32 KiB steps made a 1 GiB GET 32,768 hand-overs, and
// 256 KiB steps took a third less CPU (docs/performance.md). Bodies of a
// megabyte or less use 64 KiB buffers, so that small requests do not
// hold large ones.
package bufpool

import "sync"

// Sizes of the two kinds of buffers.
const (
	SmallSize = 64 << 10
	LargeSize = 256 << 10
)

var (
	// Small holds *[]byte of SmallSize.
	Small = sync.Pool{New: func() any { b := make([]byte, SmallSize); return &b }}
	// Large holds *[]byte of LargeSize.
	Large = sync.Pool{New: func() any { b := make([]byte, LargeSize); return &b }}
)

// For is the pool for copying a body of n bytes (-1: unknown).
func For(n int64) *sync.Pool {
	if n < 0 || n > 1<<20 {
		return &Large
	}
	return &Small
}
