package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

var requestIDForm = regexp.MustCompile(`^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// echoRequestID answers the request id the handler saw in its context.
func echoRequestID(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, map[string]string{"request_id": api.RequestID(r.Context())}), nil
}

// serviceWith builds a service handler over the given routes.
func serviceWith(svc *api.Service, routes ...api.Route) http.Handler {
	rt := api.NewRouter(svc)
	rt.Handle(routes...)
	return svc.Handler(rt)
}

func TestNewRequestIDForm(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := api.NewRequestID()
		if !requestIDForm.MatchString(id) {
			t.Fatalf("NewRequestID() = %q, not req-<uuid4>", id)
		}
		if seen[id] {
			t.Fatalf("NewRequestID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestRequestIDGenerated(t *testing.T) {
	h := serviceWith(&api.Service{}, api.Route{Method: http.MethodGet, Pattern: "/", Handler: echoRequestID, Auth: api.AuthNone})
	first := do(h, http.MethodGet, "/", nil)
	second := do(h, http.MethodGet, "/", nil)
	id1, id2 := first.Header().Get(api.RequestIDHeader), second.Header().Get(api.RequestIDHeader)
	if !requestIDForm.MatchString(id1) || !requestIDForm.MatchString(id2) {
		t.Fatalf("request ids %q, %q are not req-<uuid>", id1, id2)
	}
	if id1 == id2 {
		t.Errorf("two requests got the same id %q", id1)
	}
	if got := jsonBody(t, first)["request_id"]; got != id1 {
		t.Errorf("handler saw request id %v, header says %q", got, id1)
	}
}

func TestRequestIDEchoedWhenWellFormed(t *testing.T) {
	h := serviceWith(&api.Service{}, api.Route{Method: http.MethodGet, Pattern: "/v3/echo", Handler: echoRequestID, Auth: api.AuthNone})
	const sent = "req-0123abcd-4567-4890-abcd-0123456789ef"
	rec := do(h, http.MethodGet, "/v3/echo", nil, api.RequestIDHeader, sent)
	if got := rec.Header().Get(api.RequestIDHeader); got != sent {
		t.Errorf("response id = %q, want the caller's %q", got, sent)
	}
	if got := jsonBody(t, rec)["request_id"]; got != sent {
		t.Errorf("handler saw %v, want %q", got, sent)
	}
	// Errors rendered before routing (404) echo it too.
	missing := do(h, http.MethodGet, "/nope", nil, api.RequestIDHeader, sent)
	if got := missing.Header().Get(api.RequestIDHeader); missing.Code != http.StatusNotFound || got != sent {
		t.Errorf("404: status %d id %q, want 404 with %q", missing.Code, got, sent)
	}
}

func TestRequestIDReplacedWhenMalformed(t *testing.T) {
	h := serviceWith(&api.Service{}, api.Route{Method: http.MethodGet, Pattern: "/", Handler: echoRequestID, Auth: api.AuthNone})
	for _, bad := range []string{
		"hello",
		"req-",
		"0123abcd-4567-4890-abcd-0123456789ef", // no req- prefix
		"req-0123ABCD-4567-4890-ABCD-0123456789EF",  // upper case
		"req-0123abcd-4567-4890-abcd-0123456789ef0", // too long
		"req-0123abcd45674890abcd0123456789ef",      // no dashes
		"req-0123abcd-4567-4890-abcd-0123456789ef x",
		"req-0123abcd-4567-4890-abcd-0123456789e<",
		"<script>alert(1)</script>",
		strings.Repeat("a", 4096),
	} {
		rec := do(h, http.MethodGet, "/", nil, api.RequestIDHeader, bad)
		got := rec.Header().Get(api.RequestIDHeader)
		if got == bad || !requestIDForm.MatchString(got) {
			t.Errorf("sent %q: response id %q, want a fresh req-<uuid>", bad, got)
		}
		if jsonBody(t, rec)["request_id"] != got {
			t.Errorf("sent %q: handler and header disagree", bad)
		}
	}
}

func TestPanicBecomes500WithoutInternals(t *testing.T) {
	const secret = "boom: password=hunter2 at /srv/nimbus/db.go"
	for _, tc := range []struct {
		name   string
		format api.ErrorFormat
		fault  string
	}{
		{"keystone", nil, "error"},
		{"nova", api.NovaErrors, "computeFault"},
		{"neutron", api.NeutronErrors, "NeutronError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newTestLogger()
			h := serviceWith(&api.Service{Errors: tc.format, Log: log}, api.Route{
				Method: http.MethodGet, Pattern: "/v3/panic", Auth: api.AuthNone,
				Handler: func(*http.Request) (*api.Response, error) { panic(secret) },
			})
			rec := do(h, http.MethodGet, "/v3/panic", nil)
			if rec.Code != http.StatusInternalServerError {
				t.Fatalf("status = %d, want 500; body %s", rec.Code, rec.Body)
			}
			id := rec.Header().Get(api.RequestIDHeader)
			body := rec.Body.String()
			fault, ok := jsonBody(t, rec)[tc.fault].(map[string]any)
			if !ok {
				t.Fatalf("body %s lacks %q", body, tc.fault)
			}
			if msg, _ := fault["message"].(string); !strings.Contains(msg, id) || id == "" {
				t.Errorf("message %q does not carry request id %q", msg, id)
			}
			for _, leak := range []string{"boom", "hunter2", "db.go", "goroutine", "panic", "runtime/debug"} {
				if strings.Contains(body, leak) {
					t.Errorf("body leaks %q: %s", leak, body)
				}
			}
			// The operator gets the details, tied to the same request id.
			var found bool
			for _, r := range logRecords(t, logs) {
				if r["msg"] == "panic serving request" {
					found = true
					if r["request_id"] != id || !strings.Contains(fmt.Sprint(r["panic"]), "hunter2") || !strings.Contains(fmt.Sprint(r["stack"]), "goroutine") {
						t.Errorf("panic log = %v, want request id %s, panic text and stack", r, id)
					}
				}
			}
			if !found {
				t.Errorf("no panic logged: %s", logs)
			}
		})
	}
}

func TestHandlerErrorsAndResponses(t *testing.T) {
	log, _ := newTestLogger()
	h := serviceWith(&api.Service{Log: log},
		api.Route{Method: http.MethodGet, Pattern: "/internal", Auth: api.AuthNone, Handler: func(*http.Request) (*api.Response, error) {
			return nil, errors.New("pq: relation users does not exist")
		}},
		api.Route{Method: http.MethodGet, Pattern: "/conflict", Auth: api.AuthNone, Handler: func(*http.Request) (*api.Response, error) {
			return nil, fmt.Errorf("create user: %w", api.Conflict("Duplicate entry for user %s.", "bob"))
		}},
		api.Route{Method: http.MethodDelete, Pattern: "/thing", Auth: api.AuthNone, Handler: func(*http.Request) (*api.Response, error) {
			return nil, nil
		}},
		api.Route{Method: http.MethodGet, Pattern: "/raw", Auth: api.AuthNone, Handler: func(*http.Request) (*api.Response, error) {
			return (&api.Response{Status: http.StatusCreated, Raw: []byte("plain")}).WithHeader("Content-Type", "text/plain").WithHeader("Location", "/raw/1"), nil
		}},
	)

	rec := do(h, http.MethodGet, "/internal", nil)
	decodeKeystoneError(t, rec, http.StatusInternalServerError)
	if strings.Contains(rec.Body.String(), "pq:") || strings.Contains(rec.Body.String(), "relation") {
		t.Errorf("500 leaks the internal error: %s", rec.Body)
	}

	rec = do(h, http.MethodGet, "/conflict", nil)
	if e := decodeKeystoneError(t, rec, http.StatusConflict); e.Error.Message != "Duplicate entry for user bob." {
		t.Errorf("message = %q", e.Error.Message)
	}

	rec = do(h, http.MethodDelete, "/thing", nil)
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "" {
		t.Errorf("nil response: status %d, body %q, Content-Length %q; want bare 204", rec.Code, rec.Body, rec.Header().Get("Content-Length"))
	}

	rec = do(h, http.MethodGet, "/raw", nil)
	if rec.Code != http.StatusCreated || rec.Body.String() != "plain" || rec.Header().Get("Content-Type") != "text/plain" ||
		rec.Header().Get("Location") != "/raw/1" || rec.Header().Get("Content-Length") != "5" {
		t.Errorf("raw response: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
}

func TestAsError(t *testing.T) {
	conflict := api.Conflict("taken")
	if got := api.AsError(fmt.Errorf("wrap: %w", conflict)); got != conflict {
		t.Errorf("AsError(wrapped) = %v, want the wrapped *Error", got)
	}
	got := api.AsError(errors.New("disk /dev/sda1 on fire"))
	if got.Status != http.StatusInternalServerError || strings.Contains(got.Message, "sda1") {
		t.Errorf("AsError(plain) = %+v, want a 500 hiding the text", got)
	}
}

func TestErrorFormats(t *testing.T) {
	for _, tc := range []struct {
		format api.ErrorFormat
		status int
		want   string
	}{
		{api.KeystoneErrors, 401, `{"error":{"code":401,"message":"m","title":"Unauthorized"}}`},
		{api.NovaErrors, 400, `{"badRequest":{"code":400,"message":"m"}}`},
		{api.NovaErrors, 403, `{"forbidden":{"code":403,"message":"m"}}`},
		{api.NovaErrors, 409, `{"conflictingRequest":{"code":409,"message":"m"}}`},
		{api.NovaErrors, 413, `{"overLimit":{"code":413,"message":"m"}}`},
		{api.NovaErrors, 500, `{"computeFault":{"code":500,"message":"m"}}`},
		{api.NeutronErrors, 409, `{"NeutronError":{"detail":"","message":"m","type":"Conflict"}}`},
		{api.NeutronErrors, 500, `{"NeutronError":{"detail":"","message":"m","type":"NeutronException"}}`},
	} {
		ctype, body := tc.format(&api.Error{Status: tc.status, Message: "m"}, "req-x")
		if ctype != "application/json" || string(body) != tc.want {
			t.Errorf("%d: got %s %s, want %s", tc.status, ctype, body, tc.want)
		}
	}
}

func TestBodyTooLargeByContentLength(t *testing.T) {
	called := false
	h := serviceWith(&api.Service{MaxBodyBytes: 64}, api.Route{
		Method: http.MethodPost, Pattern: "/v3/users", Auth: api.AuthNone,
		Handler: func(*http.Request) (*api.Response, error) { called = true; return api.NoContent(), nil },
	})
	rec := do(h, http.MethodPost, "/v3/users", strings.NewReader(`{"user":{"name":"`+strings.Repeat("x", 100)+`"}}`))
	decodeKeystoneError(t, rec, http.StatusRequestEntityTooLarge)
	if called {
		t.Error("handler ran for an oversize body")
	}
	if rec.Header().Get(api.RequestIDHeader) == "" {
		t.Error("413 carries no request id")
	}
}

func TestDefaultMaxBodyBytes(t *testing.T) {
	h := serviceWith(&api.Service{}, api.Route{
		Method: http.MethodPost, Pattern: "/", Auth: api.AuthNone,
		Handler: func(r *http.Request) (*api.Response, error) {
			var v struct{ S string }
			if err := api.DecodeJSON(r, &v); err != nil {
				return nil, err
			}
			return api.JSON(http.StatusOK, map[string]int{"len": len(v.S)}), nil
		},
	})
	body := func(n int) string { // a JSON document of exactly n bytes
		return `{"S":"` + strings.Repeat("a", n-8) + `"}`
	}
	if rec := do(h, http.MethodPost, "/", strings.NewReader(body(api.DefaultMaxBodyBytes))); rec.Code != http.StatusOK {
		t.Errorf("body of exactly the default limit: status %d, body %s", rec.Code, rec.Body)
	}
	decodeKeystoneError(t, do(h, http.MethodPost, "/", strings.NewReader(body(api.DefaultMaxBodyBytes+1))), http.StatusRequestEntityTooLarge)
}

// chunked hides a reader's length so the request has no Content-Length.
type chunked struct{ io.Reader }

func TestBodyTooLargeWhileDecoding(t *testing.T) {
	const limit = 64
	decoded := 0
	h := serviceWith(&api.Service{MaxBodyBytes: limit}, api.Route{
		Method: http.MethodPost, Pattern: "/v3/users", Auth: api.AuthNone,
		Handler: func(r *http.Request) (*api.Response, error) {
			var v map[string]any
			if err := api.DecodeJSON(r, &v); err != nil {
				return nil, err
			}
			decoded++
			return api.NoContent(), nil
		},
	})
	doc := func(n int) string { return `{"a":"` + strings.Repeat("x", n-8) + `"}` }
	for _, tc := range []struct {
		size   int
		status int
	}{
		{limit, http.StatusNoContent},
		{limit + 1, http.StatusRequestEntityTooLarge},
		{10 * limit, http.StatusRequestEntityTooLarge},
	} {
		req := httptest.NewRequest(http.MethodPost, "/v3/users", chunked{strings.NewReader(doc(tc.size))})
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("chunked body of %d bytes: status %d, want %d; body %s", tc.size, rec.Code, tc.status, rec.Body)
		}
		if tc.status == http.StatusRequestEntityTooLarge {
			decodeKeystoneError(t, rec, tc.status)
		}
	}
	if decoded != 1 {
		t.Errorf("handler decoded %d bodies, want only the one within the limit", decoded)
	}
}

func TestBodyTooLargeChunkedOverHTTP(t *testing.T) {
	lengths := make(chan int64, 1) // the Content-Length the server saw
	h := serviceWith(&api.Service{MaxBodyBytes: 1024}, api.Route{
		Method: http.MethodPost, Pattern: "/v3/users", Auth: api.AuthNone,
		Handler: func(r *http.Request) (*api.Response, error) {
			lengths <- r.ContentLength
			var v map[string]any
			return api.NoContent(), api.DecodeJSON(r, &v)
		},
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	// A pipe has no known length, so the client sends it chunked.
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, `{"a":"`)
		chunk := bytes.Repeat([]byte("x"), 512)
		for range 8 {
			if _, err := pw.Write(chunk); err != nil {
				return // the server stopped reading: expected
			}
		}
		_, _ = io.WriteString(pw, `"}`)
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v3/users", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	_ = pr.CloseWithError(errors.New("test done"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if n := <-lengths; n != -1 {
		t.Fatalf("server saw Content-Length %d, want a chunked (-1) body", n)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(body, []byte(`"code":413`)) {
		t.Errorf("status %d body %s, want a Keystone 413", resp.StatusCode, body)
	}
}

func TestAuthTokenMode(t *testing.T) {
	alice := &api.Identity{UserID: "u-alice", ProjectID: "p1", Roles: []api.Role{{ID: "r1", Name: "member"}}}
	unavailable := api.Errorf(http.StatusServiceUnavailable, "Identity is unavailable.")
	for _, tc := range []struct {
		name      string
		svc       api.Service
		token     string
		status    int
		challenge string // expected WWW-Authenticate
	}{
		{"no token, no auth uri", api.Service{Tokens: &fakeTokens{}}, "", 401, ""},
		{"no token advertises auth uri", api.Service{Tokens: &fakeTokens{}, AuthURI: "http://keystone:5000"}, "", 401, `Keystone uri="http://keystone:5000"`},
		{"invalid token", api.Service{Tokens: &fakeTokens{}, AuthURI: "http://keystone:5000"}, "bogus", 401, `Keystone uri="http://keystone:5000"`},
		{"no validator", api.Service{}, "alice", 401, ""},
		{"validator *Error passes through", api.Service{Tokens: &fakeTokens{err: unavailable}}, "bogus", 503, ""},
		{"valid token", api.Service{Tokens: &fakeTokens{tokens: map[string]*api.Identity{"alice": alice}}}, "alice", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var caller *api.Identity
			ran := false
			h := serviceWith(&tc.svc, api.Route{Method: http.MethodGet, Pattern: "/v3/users", Handler: func(r *http.Request) (*api.Response, error) {
				ran, caller = true, api.Caller(r)
				return api.JSON(http.StatusOK, map[string]string{}), nil
			}})
			var hdr []string
			if tc.token != "" {
				hdr = []string{"X-Auth-Token", tc.token}
			}
			rec := do(h, http.MethodGet, "/v3/users", nil, hdr...)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.challenge)
			}
			if tc.status != 200 {
				e := decodeKeystoneError(t, rec, tc.status)
				if ran {
					t.Error("handler ran for a rejected request")
				}
				if strings.Contains(e.Error.Message, "secret") || strings.Contains(e.Error.Message, "tokens.db") {
					t.Errorf("message leaks the validator's error: %q", e.Error.Message)
				}
				return
			}
			if caller != alice {
				t.Errorf("Caller = %+v, want the validated identity", caller)
			}
		})
	}
}

func TestAuthOptionalMode(t *testing.T) {
	alice := &api.Identity{UserID: "u-alice"}
	tokens := &fakeTokens{tokens: map[string]*api.Identity{"alice": alice}}
	var caller *api.Identity
	h := serviceWith(&api.Service{Tokens: tokens}, api.Route{Method: http.MethodGet, Pattern: "/v3", Auth: api.AuthOptional, Handler: func(r *http.Request) (*api.Response, error) {
		caller = api.Caller(r)
		return api.JSON(http.StatusOK, map[string]string{}), nil
	}})
	if rec := do(h, http.MethodGet, "/v3", nil); rec.Code != http.StatusOK || caller != nil {
		t.Errorf("no token: status %d caller %+v, want 200 anonymous", rec.Code, caller)
	}
	if rec := do(h, http.MethodGet, "/v3", nil, "X-Auth-Token", "alice"); rec.Code != http.StatusOK || caller != alice {
		t.Errorf("valid token: status %d caller %+v, want 200 as alice", rec.Code, caller)
	}
	// A token that is sent is checked: a bad one is not silently ignored.
	decodeKeystoneError(t, do(h, http.MethodGet, "/v3", nil, "X-Auth-Token", "bogus"), http.StatusUnauthorized)
}

func TestAuthNoneMode(t *testing.T) {
	tokens := &fakeTokens{tokens: map[string]*api.Identity{"alice": {UserID: "u-alice"}}}
	var caller *api.Identity
	h := serviceWith(&api.Service{Tokens: tokens}, api.Route{Method: http.MethodGet, Pattern: "/", Auth: api.AuthNone, Handler: func(r *http.Request) (*api.Response, error) {
		caller = api.Caller(r)
		return api.JSON(http.StatusOK, map[string]string{}), nil
	}})
	for _, tok := range []string{"", "bogus", "alice"} {
		var hdr []string
		if tok != "" {
			hdr = []string{"X-Auth-Token", tok}
		}
		if rec := do(h, http.MethodGet, "/", nil, hdr...); rec.Code != http.StatusOK || caller != nil {
			t.Errorf("token %q: status %d caller %+v, want 200 with no caller", tok, rec.Code, caller)
		}
	}
	if n := tokens.callCount(); n != 0 {
		t.Errorf("AuthNone route validated %d tokens", n)
	}
}

func TestRoutePolicy(t *testing.T) {
	alice := &api.Identity{UserID: "u-alice", ProjectID: "p1"}
	tokens := &fakeTokens{tokens: map[string]*api.Identity{"alice": alice}}
	authz := &fakeAuthorizer{allow: map[string]bool{"object:get": true}}
	ran := map[string]int{}
	handler := func(name string) api.HandlerFunc {
		return func(*http.Request) (*api.Response, error) {
			ran[name]++
			return api.JSON(http.StatusOK, map[string]string{}), nil
		}
	}
	h := serviceWith(&api.Service{Tokens: tokens, Policy: authz},
		api.Route{Method: http.MethodGet, Pattern: "/v1/{account}/{container}/{object...}", Handler: handler("get"), Policy: "object:get"},
		api.Route{Method: http.MethodDelete, Pattern: "/v1/{account}/{container}/{object...}", Handler: handler("delete"), Policy: "object:delete"},
		api.Route{Method: http.MethodGet, Pattern: "/v1/{account}", Handler: handler("open")},
	)

	rec := do(h, http.MethodDelete, "/v1/p1/photos/2024/cat.jpg", nil, "X-Auth-Token", "alice")
	e := decodeKeystoneError(t, rec, http.StatusForbidden)
	if !strings.Contains(e.Error.Message, "object:delete") {
		t.Errorf("403 message %q does not name the action", e.Error.Message)
	}
	if ran["delete"] != 0 {
		t.Error("denied handler ran")
	}

	if rec := do(h, http.MethodGet, "/v1/p1/photos/2024/cat.jpg", nil, "X-Auth-Token", "alice"); rec.Code != http.StatusOK || ran["get"] != 1 {
		t.Errorf("allowed call: status %d, handler ran %d times", rec.Code, ran["get"])
	}
	calls := authz.recorded()
	if len(calls) != 2 {
		t.Fatalf("authorizer called %d times, want 2: %+v", len(calls), calls)
	}
	want := map[string]any{"account": "p1", "container": "photos", "object": "2024/cat.jpg"}
	if got := calls[1]; got.action != "object:get" || !reflect.DeepEqual(got.target, want) || got.caller != alice {
		t.Errorf("authorizer saw %+v, want object:get on %v by alice", got, want)
	}

	// Routes without a policy do not consult the authorizer.
	if rec := do(h, http.MethodGet, "/v1/p1", nil, "X-Auth-Token", "alice"); rec.Code != http.StatusOK {
		t.Errorf("policy-less route: status %d", rec.Code)
	}
	if n := len(authz.recorded()); n != 2 {
		t.Errorf("authorizer consulted for a policy-less route (%d calls)", n)
	}

	// Authentication comes first: no token is a 401, never a 403.
	decodeKeystoneError(t, do(h, http.MethodDelete, "/v1/p1/photos/a", nil), http.StatusUnauthorized)
	if n := len(authz.recorded()); n != 2 {
		t.Errorf("authorizer consulted for an unauthenticated call (%d calls)", n)
	}
}

func TestRoutePolicyError(t *testing.T) {
	log, _ := newTestLogger()
	authz := &fakeAuthorizer{err: errors.New("rule cycle in /etc/nimbus/policy.yaml")}
	ran := false
	h := serviceWith(&api.Service{Policy: authz, Log: log}, api.Route{
		Method: http.MethodGet, Pattern: "/x", Auth: api.AuthNone, Policy: "x:get",
		Handler: func(*http.Request) (*api.Response, error) { ran = true; return nil, nil },
	})
	rec := do(h, http.MethodGet, "/x", nil)
	decodeKeystoneError(t, rec, http.StatusInternalServerError)
	if ran || strings.Contains(rec.Body.String(), "policy.yaml") {
		t.Errorf("broken policy: handler ran=%v, body %s", ran, rec.Body)
	}
}

func TestAuthorizeWithoutPolicyAllows(t *testing.T) {
	svc := &api.Service{}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if err := svc.Authorize(req, "anything", nil); err != nil {
		t.Errorf("Authorize with no Policy = %v, want nil", err)
	}
	authz := &fakeAuthorizer{}
	svc.Policy = authz
	bob := &api.Identity{UserID: "bob"}
	req = req.WithContext(api.WithCaller(context.Background(), bob))
	apiError(t, svc.Authorize(req, "thing:delete", map[string]any{"id": "1"}), http.StatusForbidden)
	if calls := authz.recorded(); len(calls) != 1 || calls[0].caller != bob {
		t.Errorf("authorizer saw %+v, want bob from WithCaller", calls)
	}
}

// scrape fetches /metrics through h.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := do(h, http.MethodGet, "/metrics", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics status %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// sample returns the value of the metric line that starts with prefix.
func sample(text, prefix string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, prefix+" "); ok {
			return v
		}
	}
	return ""
}

func TestMetricsCountByRoutePattern(t *testing.T) {
	svc := &api.Service{Name: "identity", Metrics: api.NewMetrics()}
	h := svc.Handler(userRoutes(svc))

	const count = `nimbus_http_request_duration_seconds_count{code="200",method="GET",route="/v3/users/{user_id}",service="identity"}`
	if v := sample(scrape(t, h), count); v != "" {
		t.Fatalf("sample present before any request: %s", v)
	}
	do(h, http.MethodGet, "/v3/users/u1", nil)
	do(h, http.MethodGet, "/v3/users/u2", nil)
	do(h, http.MethodGet, "/nowhere", nil)
	do(h, http.MethodPut, "/v3/users/u1", nil)
	text := scrape(t, h)
	for _, tc := range []struct{ prefix, want string }{
		// Both users count under one pattern, not one series per id.
		{count, "2"},
		{`nimbus_http_request_duration_seconds_count{code="404",method="GET",route="unmatched",service="identity"}`, "1"},
		{`nimbus_http_request_duration_seconds_count{code="405",method="PUT",route="unmatched",service="identity"}`, "1"},
	} {
		if got := sample(text, tc.prefix); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	for _, leak := range []string{`route="/v3/users/u1"`, `/nowhere`} {
		if strings.Contains(text, leak) {
			t.Errorf("metrics carry raw path %s", leak)
		}
	}
	if !strings.Contains(text, "go_goroutines") {
		t.Error("Go runtime collector missing")
	}
}

func TestNoMetricsEndpointWithoutMetrics(t *testing.T) {
	svc := &api.Service{}
	decodeKeystoneError(t, do(svc.Handler(userRoutes(svc)), http.MethodGet, "/metrics", nil), http.StatusNotFound)
}

func TestAccessLogCarriesRequestID(t *testing.T) {
	log, logs := newTestLogger()
	svc := &api.Service{Name: "identity", Log: log}
	h := svc.Handler(userRoutes(svc))
	ok := do(h, http.MethodGet, "/v3/users/u1", nil)
	missing := do(h, http.MethodGet, "/gone", nil)

	type want struct {
		id, path string
		status   float64
	}
	var got []want
	for _, r := range logRecords(t, logs) {
		if r["msg"] == "request" {
			id, _ := r["request_id"].(string)
			path, _ := r["path"].(string)
			status, _ := r["status"].(float64)
			got = append(got, want{id, path, status})
			if r["method"] != "GET" {
				t.Errorf("access log method = %v", r["method"])
			}
		}
	}
	expect := []want{
		{ok.Header().Get(api.RequestIDHeader), "/v3/users/u1", 200},
		{missing.Header().Get(api.RequestIDHeader), "/gone", 404},
	}
	if !slices.Equal(got, expect) {
		t.Errorf("access log = %+v, want %+v", got, expect)
	}
}
