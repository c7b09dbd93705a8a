// Package requestid carries the OpenStack request id (req-<uuid>) in a
// context. The HTTP layer sets it from X-OpenStack-Request-Id and the bus
// puts it on every message, so one id follows an operation across
// services and hosts; both use this package so they share one context key.
package requestid

import (
	"context"

	"github.com/google/uuid"
)

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the id carried by ctx, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// New returns a fresh id in OpenStack's "req-<uuid>" form.
func New() string { return "req-" + uuid.NewString() }
