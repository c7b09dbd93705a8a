package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// NATS header names used for message metadata. They are exported so that
// tests and operators know what to look for with the nats CLI.
const (
	// HeaderRequestID carries the OpenStack request id ("req-<uuid>") of
	// the API request on whose behalf the message was sent.
	HeaderRequestID = "Nimbus-Request-Id"
	// HeaderTimeout carries the caller's remaining time budget on a call
	// as a Go duration ("1.5s"). It is relative rather than an absolute
	// deadline so that clock skew between hosts does not matter.
	HeaderTimeout = "Nimbus-Timeout"
	// HeaderSender names the sending service ([Config.Name]), for logs.
	HeaderSender = "Nimbus-Sender"
)

// envelope is the JSON body of every message. Payload is a pointer so that
// error replies omit it; Error is only set on replies.
type envelope[T any] struct {
	Payload *T           `json:"payload,omitempty"`
	Error   *RemoteError `json:"error,omitempty"`
}

// encode builds the body for payload.
func encode[T any](payload T) ([]byte, error) {
	data, err := json.Marshal(envelope[T]{Payload: &payload})
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", payload, err)
	}
	return data, nil
}

// encodeError builds the body of an error reply.
func encodeError(re *RemoteError) []byte {
	// Marshalling two strings cannot fail.
	data, _ := json.Marshal(envelope[struct{}]{Error: re})
	return data
}

// decode parses a body; a missing payload yields the zero value.
func decode[T any](data []byte) (T, *RemoteError, error) {
	var env envelope[T]
	var zero T
	if err := json.Unmarshal(data, &env); err != nil {
		return zero, nil, fmt.Errorf("decode %T: %w", zero, err)
	}
	if env.Payload == nil {
		return zero, env.Error, nil
	}
	return *env.Payload, env.Error, nil
}

// newMsg builds an outgoing message carrying the request id from ctx (minted
// if absent) and, when withTimeout is set, the remaining time until ctx's
// deadline.
func (b *Bus) newMsg(ctx context.Context, subject string, data []byte, withTimeout bool) *nats.Msg {
	_, id := ensureRequestID(ctx)
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(HeaderRequestID, id)
	if b.cfg.Name != "" {
		msg.Header.Set(HeaderSender, b.cfg.Name)
	}
	if withTimeout {
		if deadline, ok := ctx.Deadline(); ok {
			msg.Header.Set(HeaderTimeout, time.Until(deadline).String())
		}
	}
	return msg
}

// handlerContext derives the context a handler runs with from parent and
// the metadata of msg: the caller's request id (minted if the sender did not
// set one) and, for calls, the caller's deadline, so that handlers stop
// working once nobody waits for the answer.
func handlerContext(parent context.Context, h nats.Header) (context.Context, context.CancelFunc) {
	ctx := parent
	if id := h.Get(HeaderRequestID); id != "" {
		ctx = WithRequestID(ctx, id)
	} else {
		ctx, _ = ensureRequestID(ctx)
	}
	if v := h.Get(HeaderTimeout); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return context.WithTimeout(ctx, d)
		}
	}
	return context.WithCancel(ctx)
}
