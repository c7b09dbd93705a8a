package bus

import (
	"context"
	"errors"
	"fmt"
)

// Error codes set by the bus itself on a [RemoteError]. Handlers may use any
// other code by returning a *RemoteError; the HTTP layer maps codes to
// status codes.
const (
	// CodeInternal marks a handler error that was not a *RemoteError: the
	// handler failed for a reason the caller cannot act on.
	CodeInternal = "internal"
	// CodePanic marks a handler that panicked; the panic was recovered so
	// one bad request cannot take a service down.
	CodePanic = "panic"
	// CodeBadRequest marks a request the handler could not decode, usually
	// a type mismatch between caller and handler versions.
	CodeBadRequest = "bad_request"
)

var (
	// ErrNoResponders is returned by [Call] when no handler is subscribed to
	// the subject. NATS reports this at once, so callers learn that a
	// service is down without waiting for the timeout.
	ErrNoResponders = errors.New("bus: no responders")

	// ErrTimeout is returned (wrapped) by [Call] when no reply arrived before
	// the deadline. It also matches context.DeadlineExceeded under
	// errors.Is, so code that checks either one works.
	ErrTimeout error = timeoutError{}

	// ErrClosed is returned when the [Bus] has been closed, so shutdown
	// paths can tell a deliberate close from a failure.
	ErrClosed = errors.New("bus: closed")
)

// timeoutError lets ErrTimeout match context.DeadlineExceeded without
// every call site wrapping two errors.
type timeoutError struct{}

func (timeoutError) Error() string { return "bus: timed out waiting for reply" }

// Is makes errors.Is(ErrTimeout, context.DeadlineExceeded) true.
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Timeout marks the error as a timeout in the style of net.Error.
func (timeoutError) Timeout() bool { return true }

// RemoteError is an error returned by a handler on another service, carried
// back to the caller of [Call]. Callers inspect it with errors.As; handlers
// return one (possibly wrapped) to choose the Code the caller sees.
type RemoteError struct {
	// Code classifies the error for programs, e.g. "not_found"; the bus
	// sets [CodeInternal], [CodePanic] or [CodeBadRequest] itself.
	Code string `json:"code,omitempty"`
	// Message is the human-readable error text from the handler.
	Message string `json:"message"`
}

// Error implements error.
func (e *RemoteError) Error() string {
	if e.Code == "" {
		return "remote error: " + e.Message
	}
	return fmt.Sprintf("remote error (%s): %s", e.Code, e.Message)
}

// toRemoteError converts a handler's error to what travels back: a
// *RemoteError anywhere in the chain keeps its code, anything else becomes
// CodeInternal with the error text.
func toRemoteError(err error) *RemoteError {
	if re, ok := errors.AsType[*RemoteError](err); ok {
		return re
	}
	return &RemoteError{Code: CodeInternal, Message: err.Error()}
}

// permanentError marks a durable handler failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that a [Consume] handler returning it makes the bus
// drop the message instead of redelivering it. Use it for failures retrying
// cannot fix (the target was deleted, the input is invalid); without it a
// durable message is retried until it succeeds.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// isPermanent reports whether err was wrapped by Permanent.
func isPermanent(err error) bool {
	_, ok := errors.AsType[*permanentError](err)
	return ok
}
