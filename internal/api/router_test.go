package api_test

import (
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// tagged answers {"handler": tag}, so tests see which route ran.
func tagged(tag string) api.HandlerFunc {
	return func(*http.Request) (*api.Response, error) {
		return api.JSON(http.StatusOK, map[string]string{"handler": tag}), nil
	}
}

// userRoutes is a small Keystone-like route table.
func userRoutes(svc *api.Service) *api.Router {
	rt := api.NewRouter(svc)
	rt.Handle(
		api.Route{Method: http.MethodGet, Pattern: "/v3/users", Handler: tagged("list"), Auth: api.AuthNone},
		api.Route{Method: http.MethodPost, Pattern: "/v3/users", Handler: tagged("create"), Auth: api.AuthNone},
		api.Route{Method: http.MethodGet, Pattern: "/v3/users/{user_id}", Handler: tagged("get"), Auth: api.AuthNone},
		api.Route{Method: http.MethodPatch, Pattern: "/v3/users/{user_id}", Handler: tagged("update"), Auth: api.AuthNone},
		api.Route{Method: http.MethodDelete, Pattern: "/v3/users/{user_id}", Handler: tagged("delete"), Auth: api.AuthNone},
	)
	return rt
}

func TestRouterDispatchesByMethod(t *testing.T) {
	h := userRoutes(&api.Service{Name: "identity"})
	for _, tc := range []struct {
		method, path, want string
	}{
		{http.MethodGet, "/v3/users", "list"},
		{http.MethodPost, "/v3/users", "create"},
		{http.MethodGet, "/v3/users/u1", "get"},
		{http.MethodPatch, "/v3/users/u1", "update"},
		{http.MethodDelete, "/v3/users/u1", "delete"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := do(h, tc.method, tc.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
			}
			if got := jsonBody(t, rec)["handler"]; got != tc.want {
				t.Errorf("handler = %v, want %s", got, tc.want)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestRouterNotFoundInServiceFormat(t *testing.T) {
	paths := []string{"/", "/v3", "/v3/nope", "/v3/users/u1/extra", "/v2.0/users"}
	for _, tc := range []struct {
		name   string
		format api.ErrorFormat
		check  func(t *testing.T, body map[string]any)
	}{
		{"keystone-default", nil, func(t *testing.T, body map[string]any) {
			e, _ := body["error"].(map[string]any)
			if e["code"] != float64(404) || e["title"] != "Not Found" || e["message"] != "The resource could not be found." || len(body) != 1 || len(e) != 3 {
				t.Errorf("body = %v, want Keystone 404", body)
			}
		}},
		{"nova", api.NovaErrors, func(t *testing.T, body map[string]any) {
			e, _ := body["itemNotFound"].(map[string]any)
			if e["code"] != float64(404) || e["message"] != "The resource could not be found." || len(body) != 1 || len(e) != 2 {
				t.Errorf("body = %v, want Nova itemNotFound", body)
			}
		}},
		{"neutron", api.NeutronErrors, func(t *testing.T, body map[string]any) {
			e, _ := body["NeutronError"].(map[string]any)
			if e["type"] != "NotFound" || e["message"] != "The resource could not be found." || e["detail"] != "" || len(body) != 1 {
				t.Errorf("body = %v, want NeutronError NotFound", body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &api.Service{Name: "x", Errors: tc.format}
			h := svc.Handler(userRoutes(svc))
			for _, p := range paths {
				rec := do(h, http.MethodGet, p, nil)
				if rec.Code != http.StatusNotFound {
					t.Fatalf("GET %s: status = %d, body %s", p, rec.Code, rec.Body)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("GET %s: Content-Type = %q", p, ct)
				}
				if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
					t.Errorf("GET %s: Content-Length = %q, body is %d bytes", p, cl, rec.Body.Len())
				}
				if rec.Header().Get(api.RequestIDHeader) == "" {
					t.Errorf("GET %s: 404 carries no request id", p)
				}
				tc.check(t, jsonBody(t, rec))
			}
		})
	}
}

func TestRouterMethodNotAllowed(t *testing.T) {
	for _, tc := range []struct {
		path, method, allow string
	}{
		{"/v3/users/u1", http.MethodPut, "DELETE, GET, PATCH"},
		{"/v3/users/u1", http.MethodPost, "DELETE, GET, PATCH"},
		{"/v3/users", http.MethodDelete, "GET, POST"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := do(userRoutes(&api.Service{}), tc.method, tc.path, nil)
			e := decodeKeystoneError(t, rec, http.StatusMethodNotAllowed)
			// HEAD may be listed too, since GET routes answer it.
			got := strings.Replace(rec.Header().Get("Allow"), "GET, HEAD", "GET", 1)
			if got != tc.allow {
				t.Errorf("Allow = %q, want %q", rec.Header().Get("Allow"), tc.allow)
			}
			if !strings.Contains(e.Error.Message, tc.method) {
				t.Errorf("message %q does not name the method", e.Error.Message)
			}
		})
	}
	t.Run("nova format", func(t *testing.T) {
		rec := do(userRoutes(&api.Service{Errors: api.NovaErrors}), http.MethodPut, "/v3/users/u1", nil)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" {
			t.Fatalf("status = %d, Allow = %q", rec.Code, rec.Header().Get("Allow"))
		}
		e, _ := jsonBody(t, rec)["badMethod"].(map[string]any)
		if e["code"] != float64(405) {
			t.Errorf("body = %s, want Nova badMethod", rec.Body)
		}
	})
}

func TestRouterHeadFallsBackToGet(t *testing.T) {
	h := userRoutes(&api.Service{})
	get := do(h, http.MethodGet, "/v3/users/u1", nil)
	head := do(h, http.MethodHead, "/v3/users/u1", nil)
	if head.Code != http.StatusOK {
		t.Fatalf("HEAD status = %d, body %s", head.Code, head.Body)
	}
	if head.Body.Len() != 0 {
		t.Errorf("HEAD wrote a body: %q", head.Body)
	}
	if cl := head.Header().Get("Content-Length"); cl != strconv.Itoa(get.Body.Len()) {
		t.Errorf("HEAD Content-Length = %q, GET body is %d bytes", cl, get.Body.Len())
	}
	if ct := head.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("HEAD Content-Type = %q", ct)
	}
}

func TestRouterDeclaredHeadWinsOverGet(t *testing.T) {
	var ran []string
	rt := api.NewRouter(&api.Service{})
	rt.Handle(
		api.Route{Method: http.MethodGet, Pattern: "/v3/roles/{role_id}", Auth: api.AuthNone, Handler: func(*http.Request) (*api.Response, error) {
			ran = append(ran, "GET")
			return api.JSON(http.StatusOK, map[string]string{}), nil
		}},
		api.Route{Method: http.MethodHead, Pattern: "/v3/roles/{role_id}", Auth: api.AuthNone, Handler: func(*http.Request) (*api.Response, error) {
			ran = append(ran, "HEAD")
			return api.NoContent(), nil
		}},
	)
	rec := do(rt, http.MethodHead, "/v3/roles/r1", nil)
	if rec.Code != http.StatusNoContent || len(ran) != 1 || ran[0] != "HEAD" {
		t.Fatalf("status = %d, handlers run = %v; want 204 from the HEAD route", rec.Code, ran)
	}
}

func TestRouterHeadErrorsHaveNoBody(t *testing.T) {
	rt := api.NewRouter(&api.Service{})
	rt.Handle(api.Route{Method: http.MethodPost, Pattern: "/v3/users", Auth: api.AuthNone, Handler: tagged("create")})
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/nope", http.StatusNotFound},
		// Only POST is declared: HEAD falls back to GET alone, so 405.
		{"/v3/users", http.StatusMethodNotAllowed},
	} {
		rec := do(rt, http.MethodHead, tc.path, nil)
		if rec.Code != tc.status {
			t.Errorf("HEAD %s: status = %d, want %d", tc.path, rec.Code, tc.status)
		}
		if rec.Body.Len() != 0 {
			t.Errorf("HEAD %s: wrote body %q", tc.path, rec.Body)
		}
	}
	if rec := do(rt, http.MethodHead, "/v3/users", nil); rec.Header().Get("Allow") != "POST" {
		t.Errorf("Allow = %q, want POST", rec.Header().Get("Allow"))
	}
}

func TestRouterDuplicateRoutePanics(t *testing.T) {
	route := api.Route{Method: http.MethodGet, Pattern: "/v3/users/{user_id}", Handler: tagged("a")}
	mustPanic := func(t *testing.T, f func()) {
		t.Helper()
		defer func() {
			p := recover()
			if p == nil {
				t.Fatal("no panic on a duplicate route")
			}
			if msg := fmt.Sprint(p); !strings.Contains(msg, "GET") || !strings.Contains(msg, "/v3/users/{user_id}") {
				t.Errorf("panic %q does not name the route", msg)
			}
		}()
		f()
	}
	t.Run("same call", func(t *testing.T) {
		mustPanic(t, func() { api.NewRouter(&api.Service{}).Handle(route, route) })
	})
	t.Run("separate calls", func(t *testing.T) {
		rt := api.NewRouter(&api.Service{})
		rt.Handle(route)
		mustPanic(t, func() { rt.Handle(route) })
	})
	t.Run("other method is fine", func(t *testing.T) {
		rt := api.NewRouter(&api.Service{})
		rt.Handle(route)
		other := route
		other.Method = http.MethodDelete
		rt.Handle(other) // must not panic
	})
}

func TestPathValues(t *testing.T) {
	var got map[string]any
	rt := api.NewRouter(&api.Service{})
	rt.Handle(api.Route{
		Method: http.MethodPut, Pattern: "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", Auth: api.AuthNone,
		Handler: func(r *http.Request) (*api.Response, error) {
			got = api.PathValues(r, "project_id", "user_id", "role_id", "not_in_pattern")
			return api.NoContent(), nil
		},
	})
	rec := do(rt, http.MethodPut, "/v3/projects/p1/users/u%2F1/roles/r1", nil)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
	}
	want := map[string]any{"project_id": "p1", "user_id": "u/1", "role_id": "r1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PathValues = %v, want %v", got, want)
	}
}
