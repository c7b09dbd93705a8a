package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an error with an HTTP status that handlers return to have it
// rendered in the service's own error format. Message is shown to the
// client, so it must never carry internals (SQL, paths, stack traces).
type Error struct {
	Status  int
	Message string
	// Type names the failure for formats that carry one, such as
	// Neutron's exception types (OverQuota, IpAddressAlreadyAllocated),
	// which clients branch on; formats pick one by status when empty.
	Type string
	// Header holds extra response headers, such as WWW-Authenticate on a
	// 401 or Allow on a 405.
	Header http.Header
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Title is the short reason phrase OpenStack services put beside the code.
func (e *Error) Title() string { return http.StatusText(e.Status) }

// Errorf returns an *Error with the given status and a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 with the given message.
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, format, args...)
}

// Unauthorized is a 401; services add the WWW-Authenticate header when rendering.
func Unauthorized(format string, args ...any) *Error {
	return Errorf(http.StatusUnauthorized, format, args...)
}

// Forbidden is a 403 with the given message.
func Forbidden(format string, args ...any) *Error {
	return Errorf(http.StatusForbidden, format, args...)
}

// NotFound is a 404 with the given message.
func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, format, args...)
}

// Conflict is a 409 with the given message.
func Conflict(format string, args ...any) *Error {
	return Errorf(http.StatusConflict, format, args...)
}

// AsError converts any error into an *Error: an *Error anywhere in the chain
// is used as is; anything else is an internal error whose text is not shown.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Message: "An unexpected error prevented the server from fulfilling your request."}
}

// ErrorFormat renders an *Error as the body a service's clients expect.
// Keystone, Nova, Glance and Neutron each shape their error bodies
// differently, and clients parse them, so the format is per service.
type ErrorFormat func(e *Error, requestID string) (contentType string, body []byte)

// KeystoneErrors renders {"error": {"code", "message", "title"}}, the format
// Keystone (and the shared layer by default) uses.
func KeystoneErrors(e *Error, _ string) (string, []byte) {
	return "application/json", mustJSON(map[string]any{
		"error": map[string]any{"code": e.Status, "message": e.Message, "title": e.Title()},
	})
}

// NovaErrors renders {"<fault name>": {"code", "message"}}, as Nova does,
// where the fault name follows the status (itemNotFound, badRequest, ...).
func NovaErrors(e *Error, _ string) (string, []byte) {
	name := map[int]string{
		400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
		405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
		429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable",
	}[e.Status]
	if name == "" {
		name = "computeFault"
	}
	return "application/json", mustJSON(map[string]any{name: map[string]any{"code": e.Status, "message": e.Message}})
}

// NeutronErrors renders {"NeutronError": {"type", "message", "detail"}},
// with the error's Type or one following its status.
func NeutronErrors(e *Error, _ string) (string, []byte) {
	typ := e.Type
	if typ == "" {
		typ = map[int]string{400: "BadRequest", 401: "NotAuthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 413: "RequestEntityTooLarge"}[e.Status]
	}
	if typ == "" {
		typ = "NeutronException"
	}
	return "application/json", mustJSON(map[string]any{"NeutronError": map[string]any{"type": typ, "message": e.Message, "detail": ""}})
}
