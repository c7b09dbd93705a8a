package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
)

// swiftError is a response the proxy answers instead of relaying a storage
// server's: a status, and either Swift's stock HTML body for it or a plain
// text body (the constraint messages clients and tests match on).
type swiftError struct {
	status int
	body   string // plain text; empty means the stock HTML body
	header http.Header
}

func (e *swiftError) Error() string {
	if e.body != "" {
		return e.body
	}
	return reasonTitle(e.status)
}

// errStatus answers status with Swift's stock body.
func errStatus(status int) *swiftError { return &swiftError{status: status} }

// errText answers status with a plain text body, as Swift's constraint
// checks do.
func errText(status int, body string) *swiftError { return &swiftError{status: status, body: body} }

// errHTML is errText with swob's default content type, which Swift's
// proxy answers its own constraint errors with (clients check it).
func errHTML(status int, body string) *swiftError {
	return &swiftError{status: status, body: body, header: http.Header{"Content-Type": {"text/html; charset=UTF-8"}}}
}

// reasons are Swift's swob titles and explanations, so error bodies read
// as Swift's do ("<html><h1>Not Found</h1><p>The resource could not be
// found.</p></html>").
var reasons = map[int][2]string{
	http.StatusBadRequest:                   {"Bad Request", "The server could not comply with the request since it is either malformed or otherwise incorrect."},
	http.StatusUnauthorized:                 {"Unauthorized", "This server could not verify that you are authorized to access the document you requested."},
	http.StatusForbidden:                    {"Forbidden", "Access was denied to this resource."},
	http.StatusNotFound:                     {"Not Found", "The resource could not be found."},
	http.StatusMethodNotAllowed:             {"Method Not Allowed", "The method is not allowed for this resource."},
	http.StatusConflict:                     {"Conflict", "There was a conflict when trying to complete your request."},
	http.StatusLengthRequired:               {"Length Required", "Content-Length header required."},
	http.StatusPreconditionFailed:           {"Precondition Failed", "A precondition for this request was not met."},
	http.StatusRequestEntityTooLarge:        {"Request Entity Too Large", "The body of your request was too large for this server."},
	http.StatusRequestURITooLong:            {"Request URI Too Long", "The request URI was too long for this server."},
	http.StatusRequestedRangeNotSatisfiable: {"Requested Range Not Satisfiable", "The Range requested is not available."},
	http.StatusUnprocessableEntity:          {"Unprocessable Entity", "Unable to process the contained instructions"},
	statusClientDisconnect:                  {"Client Disconnect", "The client was disconnected during request."},
	http.StatusInternalServerError:          {"Internal Error", "The server has either erred or is incapable of performing the requested operation."},
	http.StatusNotImplemented:               {"Not Implemented", "The requested method is not implemented by this server."},
	http.StatusBadGateway:                   {"Bad Gateway", "Bad gateway."},
	http.StatusServiceUnavailable:           {"Service Unavailable", "The server is currently unavailable. Please try again at a later time."},
	http.StatusGatewayTimeout:               {"Gateway Timeout", "A timeout has occurred speaking to a backend server."},
	http.StatusInsufficientStorage:          {"Insufficient Storage", "There was not enough space to save the resource."},
}

// statusClientDisconnect is Swift's status for a client that went away
// mid-upload.
const statusClientDisconnect = 499

func reasonTitle(status int) string {
	if r, ok := reasons[status]; ok {
		return r[0]
	}
	return http.StatusText(status)
}

// errorBody is Swift's body for status: its HTML page, or nothing for the
// statuses that carry no body.
func errorBody(status int) (contentType, body string) {
	switch {
	case status == http.StatusNotModified, status == http.StatusNoContent, status < 300:
		return "", ""
	}
	r, ok := reasons[status]
	if !ok {
		r = [2]string{http.StatusText(status), ""}
	}
	return "text/html; charset=UTF-8", "<html><h1>" + r[0] + "</h1><p>" + r[1] + "</p></html>"
}

// writeError renders err: a swiftError as itself, anything else as a 500
// whose detail goes to the log only.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var se *swiftError
	if !errors.As(err, &se) {
		log.Error("proxy request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		se = errStatus(http.StatusInternalServerError)
	}
	for k, vs := range se.header {
		w.Header()[k] = vs
	}
	ct, body := "text/plain", se.body
	if v := se.header.Get("Content-Type"); v != "" {
		ct = v // the error chose its own (a bulk or SLO report, swob's HTML)
	}
	if body == "" {
		ct, body = errorBody(se.status)
	}
	writeBody(w, r, se.status, ct, body)
}

// writeBody writes a small complete response; HEAD gets the headers only.
func writeBody(w http.ResponseWriter, r *http.Request, status int, contentType, body string) {
	h := w.Header()
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if status != http.StatusNoContent && status != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead && body != "" {
		_, _ = w.Write([]byte(body))
	}
}
