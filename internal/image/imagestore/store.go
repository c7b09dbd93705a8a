// Package imagestore is the storage behind the image service: where image
// data lives. Every store streams (memory stays flat whatever the image
// size), and a Put is durable before it returns, so an image only turns
// active once its data is safely stored.
package imagestore

import (
	"context"
	"errors"
	"io"
)

// Location says where one image's data is kept in a store.
type Location struct {
	// Store is the id of the store holding the data.
	Store string `json:"store"`
	// URL is the store-specific address, e.g. file:///var/lib/nimbus/images/<id>,
	// s3://bucket/key or the http(s) URL of a read-only location.
	URL string `json:"url"`
}

// Store keeps image data.
type Store interface {
	// ID is the store's id, as listed by /v2/info/stores.
	ID() string
	// Description is shown in /v2/info/stores.
	Description() string
	// ReadOnly stores (HTTP locations) refuse Put and Delete with ErrReadOnly.
	ReadOnly() bool
	// Put streams r into the store under imageID and returns where it is
	// and how many bytes were written. The data is durable when Put
	// returns. On any error, including ctx being cancelled or r failing
	// mid-stream, nothing is left behind.
	Put(ctx context.Context, imageID string, r io.Reader) (Location, int64, error)
	// Get streams the data at loc, starting at offset; length < 0 means to
	// the end. ErrNotFound when the data is gone.
	Get(ctx context.Context, loc Location, offset, length int64) (io.ReadCloser, error)
	// Delete removes the data at loc; deleting what is gone is not an error.
	Delete(ctx context.Context, loc Location) error
}

var (
	// ErrNotFound: the data is not in the store.
	ErrNotFound = errors.New("image data not found")
	// ErrReadOnly: the store does not accept writes.
	ErrReadOnly = errors.New("store is read-only")
	// ErrFull: the store has no room (quota or disk).
	ErrFull = errors.New("store is full")
)
