package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nimbus-cloud/nimbus/internal/requestid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMaxBodyBytes bounds request bodies, as oslo.middleware's
// sizelimit does (its default is 112 KiB); services that take uploads use
// streaming routes instead.
const DefaultMaxBodyBytes = 112 * 1024

// Service holds what every route of one OpenStack service shares: its error
// format, how tokens are validated and policy enforced, logs and metrics.
type Service struct {
	// Name labels logs and metrics ("identity", "compute", ...).
	Name string
	// Errors renders error bodies; KeystoneErrors when nil.
	Errors ErrorFormat
	// ErrorsFor, when set, picks the error format per request and
	// overrides Errors: Glance's errors follow the Accept header (webob's
	// content negotiation), and its clients parse what they asked for.
	ErrorsFor func(r *http.Request) ErrorFormat
	// Tokens validates X-Auth-Token; routes needing auth fail with 401 when nil.
	Tokens TokenValidator
	// Policy decides whether a caller may perform an action.
	Policy Authorizer
	// MaxBodyBytes bounds request bodies; DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// AuthURI is advertised in WWW-Authenticate on 401 answers, as
	// keystonemiddleware does, so clients know where to authenticate.
	AuthURI string
	// Log receives access and error logs; slog.Default() when nil.
	Log *slog.Logger
	// Metrics records request counts and latencies; none when nil.
	Metrics *Metrics
}

type ctxKey int

const (
	identityKey ctxKey = iota
	routeKey
)

// RequestIDHeader is the header OpenStack services use to tag a request.
const RequestIDHeader = "X-Openstack-Request-Id"

var requestIDPattern = regexp.MustCompile(`^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// NewRequestID returns a fresh id in OpenStack's req-<uuid> form.
func NewRequestID() string { return requestid.New() }

// WithRequestID returns ctx carrying the request id; bus messages sent
// with this context carry it too.
func WithRequestID(ctx context.Context, id string) context.Context { return requestid.With(ctx, id) }

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string { return requestid.From(ctx) }

type routeHolder struct{ pattern string }

func setRoutePattern(r *http.Request, pattern string) {
	if h, ok := r.Context().Value(routeKey).(*routeHolder); ok {
		h.pattern = pattern
	}
}

// Handler wraps the service's router with the middleware every call passes
// through: request id, panic recovery, access log and metrics, body limit.
// /metrics is served beside the API when the service has metrics.
func (s *Service) Handler(routes http.Handler) http.Handler {
	limit := s.MaxBodyBytes
	if limit == 0 {
		limit = DefaultMaxBodyBytes
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// A caller may pass its own id so that one operation can be
		// followed across services; anything malformed is replaced.
		id := r.Header.Get(RequestIDHeader)
		if !requestIDPattern.MatchString(id) {
			id = NewRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		holder := &routeHolder{}
		ctx := context.WithValue(WithRequestID(r.Context(), id), routeKey, holder)
		r = r.WithContext(ctx)
		if !cleanURL(r) {
			s.WriteError(w, r, BadRequest("The request URL contains characters that are not allowed (NUL or invalid UTF-8)."))
			return
		}
		if r.ContentLength > limit {
			s.WriteError(w, r, Errorf(http.StatusRequestEntityTooLarge, "Request is too large."))
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p) // the handler asked for the connection to be dropped
				}
				s.logger().Error("panic serving request", "request_id", id, "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !rec.wrote {
					s.WriteError(rec, r, &Error{Status: http.StatusInternalServerError, Message: "An unexpected error prevented the server from fulfilling your request. Request id: " + id})
				}
			}
			elapsed := time.Since(start)
			route := holder.pattern
			if route == "" {
				route = "unmatched"
			}
			s.logger().Info("request", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", rec.status, "bytes", rec.bytes, "duration_ms", float64(elapsed.Microseconds())/1000, "remote", r.RemoteAddr)
			if s.Metrics != nil {
				s.Metrics.observe(s.Name, r.Method, route, rec.status, elapsed)
			}
		}()
		routes.ServeHTTP(rec, r)
	})
	if s.Metrics == nil {
		return inner
	}
	outer := http.NewServeMux()
	outer.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	outer.Handle("/", inner)
	return outer
}

// cleanURL reports whether the path and query are valid UTF-8 without NUL
// characters. Databases refuse such text (PostgreSQL errors on both), so
// they are turned away at the door instead of failing deep inside.
func cleanURL(r *http.Request) bool {
	ok := func(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
	if !ok(r.URL.Path) {
		return false
	}
	if r.URL.RawQuery == "" {
		return true
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return true // handlers answer malformed queries themselves
	}
	for k, vs := range q {
		if !ok(k) {
			return false
		}
		for _, v := range vs {
			if !ok(v) {
				return false
			}
		}
	}
	return true
}

func (s *Service) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// serveRoute authenticates, authorizes and runs one route, then renders.
func (s *Service) serveRoute(w http.ResponseWriter, r *http.Request, route Route) {
	resp, err := s.runRoute(r, route)
	if err != nil {
		e := AsError(err)
		if e.Status >= 500 {
			s.logger().Error("request failed", "request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path, "err", err)
		}
		s.WriteError(w, r, e)
		return
	}
	s.write(w, r, resp)
}

func (s *Service) runRoute(r *http.Request, route Route) (*Response, error) {
	if route.Auth != AuthNone {
		token := r.Header.Get("X-Auth-Token")
		switch {
		case token == "" && route.Auth == AuthOptional:
		case token == "":
			return nil, Unauthorized("The request you have made requires authentication.")
		default:
			if s.Tokens == nil {
				return nil, Unauthorized("The request you have made requires authentication.")
			}
			ident, err := s.Tokens.ValidateToken(r.Context(), token)
			if err != nil {
				var e *Error
				if errors.As(err, &e) {
					return nil, e
				}
				s.logger().Debug("token rejected", "request_id", RequestID(r.Context()), "err", err)
				return nil, Unauthorized("The request you have made requires authentication.")
			}
			*r = *r.WithContext(context.WithValue(r.Context(), identityKey, ident))
		}
	}
	if route.Policy != "" {
		if err := s.Authorize(r, route.Policy, PathValues(r, wildcardNames(route.Pattern)...)); err != nil {
			return nil, err
		}
	}
	return route.Handler(r)
}

// Caller returns the identity the request's token proved, or nil for an
// unauthenticated request.
func Caller(r *http.Request) *Identity {
	id, _ := r.Context().Value(identityKey).(*Identity)
	return id
}

// Requester is who makes a request, as handlers that scope and filter by
// it need it: the token's project and user, the token itself (for calls
// to other services on the caller's behalf), and whether policy counts
// the caller as an admin.
type Requester struct {
	ProjectID, UserID, Token string
	// Admin is the context_is_admin rule, or the admin role when the
	// service has no policy.
	Admin bool
}

// Requester describes the request's caller; the zero value when the
// route is unauthenticated.
func (s *Service) Requester(r *http.Request) Requester {
	id := Caller(r)
	if id == nil {
		return Requester{}
	}
	q := Requester{ProjectID: id.ProjectID, UserID: id.UserID, Token: id.Token}
	if q.Token == "" {
		q.Token = r.Header.Get("X-Auth-Token")
	}
	if s.Policy == nil {
		q.Admin = id.HasRole("admin")
		return q
	}
	ok, err := s.Policy.Allow("context_is_admin", map[string]any{}, id)
	q.Admin = err == nil && ok
	return q
}

// WithCaller returns ctx carrying ident; tests and in-process callers use it.
func WithCaller(ctx context.Context, ident *Identity) context.Context {
	return context.WithValue(ctx, identityKey, ident)
}

// Authorize enforces a policy action for the request's caller against
// target. Denials are 403, as OpenStack answers them.
func (s *Service) Authorize(r *http.Request, action string, target map[string]any) error {
	if s.Policy == nil {
		return nil
	}
	ident := Caller(r)
	ok, err := s.Policy.Allow(action, target, ident)
	if err != nil {
		return fmt.Errorf("policy %s: %w", action, err)
	}
	if !ok {
		return Forbidden("You are not authorized to perform the requested action: %s.", action)
	}
	return nil
}

// WriteError renders e in the service's format with the request id.
func (s *Service) WriteError(w http.ResponseWriter, r *http.Request, e *Error) {
	format := s.Errors
	if s.ErrorsFor != nil {
		format = s.ErrorsFor(r)
	}
	if format == nil {
		format = KeystoneErrors
	}
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if e.Status == http.StatusUnauthorized && s.AuthURI != "" && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Keystone uri=%q", s.AuthURI))
	}
	ctype, body := format(e, RequestID(r.Context()))
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func (s *Service) write(w http.ResponseWriter, r *http.Request, resp *Response) {
	if resp == nil {
		resp = NoContent()
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	var body []byte
	switch {
	case resp.Raw != nil:
		body = resp.Raw
	case resp.Body != nil:
		body = mustJSON(resp.Body)
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
	}
	if status != http.StatusNoContent && status != http.StatusNotModified {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead && len(body) > 0 {
		_, _ = w.Write(body)
	}
}

// statusRecorder remembers what was written for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status = code
		s.wrote = true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// Flush lets streaming handlers flush through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController access to the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Metrics holds the Prometheus collectors shared by a process's services.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.HistogramVec
}

// NewMetrics returns a registry with the HTTP collectors and the Go runtime
// and process collectors registered.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nimbus_http_request_duration_seconds",
			Help:    "Latency of API requests by service, method, route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"service", "method", "route", "code"}),
	}
	reg.MustRegister(m.requests, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observe(service, method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(service, method, route, strconv.Itoa(status)).Observe(d.Seconds())
}
