// Package ctxio makes long copies stoppable: io.Copy has no context, and a
// copy of a multi-gigabyte image should end when its request does.
package ctxio

import (
	"context"
	"io"
)

// Reader returns a reader that fails with ctx's error once ctx is done,
// checked before every read of r.
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
