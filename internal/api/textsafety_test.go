package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// NUL and invalid UTF-8 in URLs are refused with a 400 before any handler
// runs: PostgreSQL errors on both, which would otherwise surface as a 500.
func TestURLsWithNULOrInvalidUTF8AreRefused(t *testing.T) {
	ran := false
	svc := &api.Service{Name: "test"}
	rt := api.NewRouter(svc)
	rt.Handle(api.Route{Method: "GET", Pattern: "/things/{id}", Auth: api.AuthNone, Handler: func(r *http.Request) (*api.Response, error) {
		ran = true
		return api.JSON(http.StatusOK, map[string]any{"id": r.PathValue("id")}), nil
	}})
	h := svc.Handler(rt)
	for _, target := range []string{"/things/a%00b", "/things/%ff%fe", "/things/x?name=%00", "/things/x?name=%c3%28", "/things/x?%00=1"} {
		ran = false
		rec := do(h, "GET", target, nil)
		decodeKeystoneError(t, rec, http.StatusBadRequest)
		if ran {
			t.Errorf("%s: handler ran", target)
		}
	}
	if rec := do(h, "GET", "/things/caf%C3%A9?name=%E2%9C%93", nil); rec.Code != http.StatusOK {
		t.Fatalf("valid UTF-8 refused: %d %s", rec.Code, rec.Body)
	}
}

func TestBodiesWithNULAreRefused(t *testing.T) {
	type inner struct {
		Tags []string          `json:"tags"`
		Meta map[string]string `json:"meta"`
	}
	var v struct {
		Name  string               `json:"name"`
		Inner inner                `json:"inner"`
		Opt   api.Optional[string] `json:"opt"`
		Any   map[string]any       `json:"any"`
	}
	for _, body := range []string{
		`{"name": "a\u0000b"}`,
		`{"inner": {"tags": ["ok", "\u0000"]}}`,
		`{"inner": {"meta": {"k\u0000": "v"}}}`,
		`{"opt": "x\u0000"}`,
		`{"any": {"deep": [{"x": "\u0000"}]}}`,
	} {
		err := api.DecodeBytes([]byte(body), &v, true)
		e := apiError(t, err, http.StatusBadRequest)
		if !strings.Contains(e.Message, "NUL") {
			t.Errorf("%s: message %q does not name the problem", body, e.Message)
		}
	}
	// An escaped backslash followed by "u0000" is ordinary text.
	if err := api.DecodeBytes([]byte(`{"name": "\\u0000"}`), &v, true); err != nil || v.Name != `\u0000` {
		t.Fatalf("literal backslash-u text: %v, name %q", err, v.Name)
	}
}
