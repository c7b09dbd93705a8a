package bus

import (
	"context"

	"github.com/google/uuid"
)

// requestIDKey is the context key for the request id; unexported so only
// this package can set it, which keeps the format under our control.
type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id id. The HTTP layer calls
// it with the X-OpenStack-Request-Id of the incoming API request so that
// every bus message sent on behalf of that request carries the same id and
// logs across services can be correlated.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id carried by ctx, or "" if there is none.
// Handlers use it to log and to pass the id on to the next hop; it is set for
// every handler context this package creates.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewRequestID returns a fresh id in the OpenStack format "req-<uuid>", so
// ids minted by the bus look like ids minted by the API layer.
func NewRequestID() string {
	return "req-" + uuid.NewString()
}

// ensureRequestID returns ctx with a request id, minting one if ctx has
// none, so that no message leaves without an id.
func ensureRequestID(ctx context.Context) (context.Context, string) {
	if id := RequestID(ctx); id != "" {
		return ctx, id
	}
	id := NewRequestID()
	return WithRequestID(ctx, id), id
}
