package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strings"
)

// HandlerFunc serves one API call. It returns the response to render or an
// error; one renderer writes both, so every handler's failures come out in the
// service's error format with the request id attached.
type HandlerFunc func(r *http.Request) (*Response, error)

// Response is what a handler answers: a status, a body marshalled as JSON
// (or Raw bytes written as they are), and extra headers.
type Response struct {
	Status int
	Body   any
	Raw    []byte
	Header http.Header
}

// JSON answers status with body encoded as JSON.
func JSON(status int, body any) *Response { return &Response{Status: status, Body: body} }

// NoContent answers 204 with no body.
func NoContent() *Response { return &Response{Status: http.StatusNoContent} }

// WithHeader sets a response header and returns the response for chaining.
func (resp *Response) WithHeader(key, value string) *Response {
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	resp.Header.Set(key, value)
	return resp
}

// Route binds a method and a net/http ServeMux path pattern to a handler.
// Auth says what the caller must present; Policy, when set, is the policy
// action enforced before the handler runs, with the path values as target.
type Route struct {
	Method  string
	Pattern string
	Handler HandlerFunc
	Auth    AuthMode
	Policy  string
}

// AuthMode says how the router authenticates a route.
type AuthMode int

const (
	// AuthToken requires a valid X-Auth-Token (the default).
	AuthToken AuthMode = iota
	// AuthNone serves anyone: version documents, token creation.
	AuthNone
	// AuthOptional validates a token when one is sent but serves without.
	AuthOptional
)

// Router is a declarative route table on http.ServeMux with OpenStack's
// error rendering for unknown paths (404) and methods (405).
type Router struct {
	svc     *Service
	mux     *http.ServeMux
	byPath  map[string]map[string]Route // guarded by construction: filled before serving
	ordered []string
}

// NewRouter returns an empty router for the service.
func NewRouter(svc *Service) *Router {
	return &Router{svc: svc, mux: http.NewServeMux(), byPath: map[string]map[string]Route{}}
}

// Handle adds routes. Patterns are ServeMux patterns without the method,
// e.g. "/v3/users/{user_id}". Registering the same method and pattern twice
// panics, as that is a programming error.
func (rt *Router) Handle(routes ...Route) {
	for _, r := range routes {
		methods, ok := rt.byPath[r.Pattern]
		if !ok {
			methods = map[string]Route{}
			rt.byPath[r.Pattern] = methods
			pattern := r.Pattern
			rt.ordered = append(rt.ordered, pattern)
			rt.mux.HandleFunc(pattern, func(w http.ResponseWriter, req *http.Request) {
				rt.dispatch(w, req, pattern)
			})
		}
		if _, dup := methods[r.Method]; dup {
			panic("api: duplicate route " + r.Method + " " + r.Pattern)
		}
		methods[r.Method] = r
	}
}

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := rt.mux.Handler(r)
	if pattern == "" && len(r.URL.Path) > 1 && strings.HasSuffix(r.URL.Path, "/") {
		// OpenStack services answer /v3/things/ like /v3/things.
		r.URL.Path = strings.TrimRight(r.URL.Path, "/")
		r.URL.RawPath = ""
		_, pattern = rt.mux.Handler(r)
	}
	if pattern == "" {
		rt.svc.WriteError(w, r, NotFound("The resource could not be found."))
		return
	}
	rt.mux.ServeHTTP(w, r)
}

func (rt *Router) dispatch(w http.ResponseWriter, r *http.Request, pattern string) {
	methods := rt.byPath[pattern]
	route, ok := methods[r.Method]
	if !ok && r.Method == http.MethodHead {
		route, ok = methods[http.MethodGet]
	}
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		if _, get := methods[http.MethodGet]; get {
			if _, head := methods[http.MethodHead]; !head {
				allow = append(allow, http.MethodHead)
			}
		}
		sort.Strings(allow)
		e := Errorf(http.StatusMethodNotAllowed, "The method %s is not allowed for this resource.", r.Method)
		e.Header = http.Header{"Allow": {strings.Join(allow, ", ")}}
		rt.svc.WriteError(w, r, e)
		return
	}
	setRoutePattern(r, pattern)
	rt.svc.serveRoute(w, r, route)
}

// PathValues returns the named wildcards of the route that matched r, which
// routes use as the policy target of path-scoped calls.
func PathValues(r *http.Request, names ...string) map[string]any {
	out := make(map[string]any, len(names))
	for _, n := range names {
		if v := r.PathValue(n); v != "" {
			out[n] = v
		}
	}
	return out
}

// wildcardNames lists the {name} segments in a ServeMux pattern.
func wildcardNames(pattern string) []string {
	var names []string
	for _, seg := range strings.Split(pattern, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			names = append(names, strings.TrimSuffix(strings.Trim(seg, "{}"), "..."))
		}
	}
	return names
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("marshal response", "err", err)
		return []byte(`{}`)
	}
	return b
}
