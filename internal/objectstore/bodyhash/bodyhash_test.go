package bodyhash

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"testing"
)

// The digest of writes of any sizes (several chunks, some larger than a
// buffer) is the body's MD5; a count that differs, or an abandoned body,
// is an error, never a sum.
func TestDigest(t *testing.T) {
	body := make([]byte, 4*chunkSize+777)
	for i := range body {
		body[i] = byte(i * 31)
	}
	sum := md5.Sum(body)
	ctx := context.Background()

	d := Start()
	for _, n := range []int{1, 1000, chunkSize, 2*chunkSize + 5} {
		d.Write(body[:n])
		body = body[n:]
	}
	d.Write(body)
	d.Finish(nil)
	d.Finish(errors.New("ignored: already finished"))
	total := int64(1 + 1000 + chunkSize + 2*chunkSize + 5 + len(body))
	got, err := d.Sum(ctx, total)
	if err != nil || got != hex.EncodeToString(sum[:]) {
		t.Fatalf("sum %s, %v; want %x", got, err, sum)
	}
	if _, err := d.Sum(ctx, total-1); err == nil {
		t.Fatal("a sum for a different byte count")
	}

	d = Start()
	d.Write([]byte("partial"))
	d.Finish(errors.New("client went away"))
	if s, err := d.Sum(ctx, 7); !errors.Is(err, errUnfinished) {
		t.Fatalf("abandoned body: %q, %v", s, err)
	}

	d = Start()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Sum(cctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("sum before finish, context ended: %v", err)
	}
	d.Finish(nil)

	if FromContext(ctx) != nil || FromContext(WithDigest(ctx, d)) != d {
		t.Fatal("context round trip")
	}
}
