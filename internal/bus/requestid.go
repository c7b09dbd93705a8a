package bus

import (
	"context"

	"github.com/nimbus-cloud/nimbus/internal/requestid"
)

// WithRequestID returns ctx carrying the request id id. The HTTP layer calls
// it with the X-OpenStack-Request-Id of the incoming API request so that
// every bus message sent on behalf of that request carries the same id and
// logs across services can be correlated.
func WithRequestID(ctx context.Context, id string) context.Context {
	return requestid.With(ctx, id)
}

// RequestID returns the request id carried by ctx, or "" if there is none.
// Handlers use it to log and to pass the id on to the next hop; it is set for
// every handler context this package creates.
func RequestID(ctx context.Context) string {
	return requestid.From(ctx)
}

// NewRequestID returns a fresh id in the OpenStack format "req-<uuid>", so
// ids minted by the bus look like ids minted by the API layer.
func NewRequestID() string {
	return requestid.New()
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
