package compute

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// accepted is the empty 202 that actions and proxied deletes answer.
func accepted() *api.Response { return &api.Response{Status: http.StatusAccepted} }

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func contextTimeout(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}

// RequestIDFrom is the request id a context carries, passed on to the
// services the compute API calls so one operation can be followed.
func RequestIDFrom(ctx context.Context) string { return api.RequestID(ctx) }

// ioCopyLimit copies at most n bytes, failing beyond, so a misbehaving
// service cannot make the API buffer without bound.
func ioCopyLimit(dst io.Writer, src io.Reader, n int64) (int64, error) {
	m, err := io.Copy(dst, io.LimitReader(src, n+1))
	if err == nil && m > n {
		return m, errors.New("response too large")
	}
	return m, err
}
