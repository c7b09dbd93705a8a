package server

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
)

// statusError is an error with the HTTP status it is answered with. Handlers
// return it; writeError renders it. Headers carry extra response headers
// such as X-Backend-Timestamp on a 409.
type statusError struct {
	Status  int
	Msg     string
	Headers http.Header
}

func (e *statusError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return statusText(e.Status)
}

func httpErr(status int, msg string) *statusError {
	return &statusError{Status: status, Msg: msg}
}

func httpErrHeaders(status int, h http.Header) *statusError {
	return &statusError{Status: status, Headers: h}
}

// statusText includes the non-standard codes Swift uses.
func statusText(code int) string {
	if code == 499 {
		return "Client Disconnect"
	}
	return http.StatusText(code)
}

// writeError renders err: a statusError as its status, anything else as a
// 500 whose detail goes to the log, not to the client.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var se *statusError
	if !errors.As(err, &se) {
		log.Error("storage request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		se = httpErr(http.StatusInternalServerError, "")
	}
	for k, vs := range se.Headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := se.Msg
	if body == "" {
		body = statusText(se.Status)
	}
	if se.Status == http.StatusNotModified || se.Status == http.StatusNoContent {
		w.WriteHeader(se.Status)
		return
	}
	body = "<html><h1>" + statusText(se.Status) + "</h1><p>" + htmlEscape(body) + "</p></html>"
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(se.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

func htmlEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			out = append(out, "&lt;"...)
		case '>':
			out = append(out, "&gt;"...)
		case '&':
			out = append(out, "&amp;"...)
		case '"':
			out = append(out, "&#34;"...)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}
