package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// userRequest is shaped like a Keystone create/update-user body.
type userRequest struct {
	User struct {
		Name        string               `json:"name"`
		Enabled     *bool                `json:"enabled"`
		Count       int                  `json:"count"`
		Ratio       float64              `json:"ratio"`
		Tags        []string             `json:"tags"`
		Options     map[string]int       `json:"options"`
		Description api.Optional[string] `json:"description"`
		Limits      struct {
			Cores int `json:"cores"`
		} `json:"limits"`
	} `json:"user"`
}

// decodeString runs DecodeJSON (or DecodeJSONLoose) on a request carrying body.
func decodeString(body string, v any, loose bool) error {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	if loose {
		return api.DecodeJSONLoose(req, v)
	}
	return api.DecodeJSON(req, v)
}

// want400 asserts err is a 400 whose message contains every fragment.
func want400(t *testing.T, body string, err error, fragments ...string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
		t.Errorf("%s: error = %v, want a 400 *api.Error", body, err)
		return
	}
	for _, f := range fragments {
		if !strings.Contains(e.Message, f) {
			t.Errorf("%s: message %q does not contain %q", body, e.Message, f)
		}
	}
	if strings.Contains(e.Message, "Go struct") || strings.Contains(e.Message, "api_test.") {
		t.Errorf("%s: message %q exposes Go types", body, e.Message)
	}
}

func TestDecodeJSONValid(t *testing.T) {
	var v userRequest
	err := decodeString(`{"user": {"name": "bob", "enabled": false, "count": 3, "ratio": 0.5,
		"tags": ["a", "b"], "options": {"x": 1}, "limits": {"cores": 8}}}`+"\n", &v, false)
	if err != nil {
		t.Fatal(err)
	}
	u := v.User
	if u.Name != "bob" || u.Enabled == nil || *u.Enabled || u.Count != 3 || u.Ratio != 0.5 ||
		!reflect.DeepEqual(u.Tags, []string{"a", "b"}) || u.Options["x"] != 1 || u.Limits.Cores != 8 {
		t.Errorf("decoded %+v", u)
	}
}

func TestDecodeJSONMalformed(t *testing.T) {
	for _, tc := range []struct {
		body   string
		offset string
	}{
		{`{"user":{"name":}}`, "offset 17"},
		{`{"user" "x"}`, "offset 9"},
		{`{"user":{},}`, "offset 12"},
		{`{'user':{}}`, "offset 2"},
		{"\xef\xbb\xbf{}", "offset 1"},
	} {
		var v userRequest
		want400(t, tc.body, decodeString(tc.body, &v, false), "Malformed request body", tc.offset)
	}
	for _, body := range []string{`{"user":{"name":"x"`, `{`, `[`, `"abc`} {
		var v userRequest
		want400(t, body, decodeString(body, &v, false), "unexpected end")
	}
}

func TestDecodeJSONUnknownField(t *testing.T) {
	for _, tc := range []struct{ body, field string }{
		{`{"usr": {}}`, "'usr'"},
		{`{"user": {"name": "a", "colour": "red"}}`, "'colour'"},
		{`{"user": {"limits": {"cores": 1, "ram": 2}}}`, "'ram'"},
	} {
		var v userRequest
		want400(t, tc.body, decodeString(tc.body, &v, false), tc.field, "Additional properties are not allowed")
	}
}

func TestDecodeJSONWrongType(t *testing.T) {
	for _, tc := range []struct {
		body      string
		fragments []string
	}{
		{`{"user": {"name": 5}}`, []string{"'user.name'", "expected string", "got number"}},
		{`{"user": {"enabled": "yes"}}`, []string{"'user.enabled'", "expected boolean", "got string"}},
		{`{"user": {"count": 1.5}}`, []string{"'user.count'", "expected integer"}},
		{`{"user": {"count": "3"}}`, []string{"'user.count'", "expected integer", "got string"}},
		{`{"user": {"ratio": true}}`, []string{"'user.ratio'", "expected number", "got bool"}},
		{`{"user": {"tags": "a"}}`, []string{"'user.tags'", "expected array", "got string"}},
		{`{"user": {"tags": [1]}}`, []string{"'user.tags'", "expected string", "got number"}},
		{`{"user": {"options": {"x": "y"}}}`, []string{"'user.options'", "expected integer"}},
		{`{"user": {"limits": {"cores": []}}}`, []string{"'user.limits.cores'", "expected integer", "got array"}},
		{`{"user": []}`, []string{"'user'", "expected object", "got array"}},
		{`{"user": {"description": 7}}`, []string{"'user.description'", "expected string", "got number"}},
		{`[]`, []string{"expected object", "got array"}},
		{`"user"`, []string{"expected object", "got string"}},
	} {
		var v userRequest
		want400(t, tc.body, decodeString(tc.body, &v, false), tc.fragments...)
	}
}

func TestDecodeJSONTrailingData(t *testing.T) {
	for _, body := range []string{
		`{} x`,
		`{}{}`,
		`{"user":{}} {"user":{}}`,
		`{} 1`,
		`{}]`,
		`{}}`,
		`{"user":{}}]`,
	} {
		var v userRequest
		want400(t, body, decodeString(body, &v, false))
		var loose userRequest
		want400(t, body, decodeString(body, &loose, true))
	}
	// Trailing white space is fine.
	var v userRequest
	if err := decodeString("{}\r\n\t ", &v, false); err != nil {
		t.Errorf("trailing white space: %v", err)
	}
}

func TestDecodeJSONEmptyBody(t *testing.T) {
	for _, body := range []string{"", "   ", "\n\t\r\n"} {
		var v userRequest
		want400(t, body, decodeString(body, &v, false), "Expecting to find valid JSON")
	}
	var v userRequest
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	want400(t, "no body", api.DecodeJSON(req, &v), "Expecting to find valid JSON")
	req.Body = nil
	want400(t, "nil body", api.DecodeJSON(req, &v), "Expecting to find valid JSON")
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

func TestDecodeJSONReadErrors(t *testing.T) {
	var v userRequest
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Body = http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(`{"user":{"name":"abcdefgh"}}`)), 10)
	apiError(t, api.DecodeJSON(req, &v), http.StatusRequestEntityTooLarge)

	req.Body = io.NopCloser(failingReader{})
	e := apiError(t, api.DecodeJSON(req, &v), http.StatusBadRequest)
	if strings.Contains(e.Message, "reset") {
		t.Errorf("message %q leaks the read error", e.Message)
	}
}

func TestOptional(t *testing.T) {
	type patch struct {
		Description api.Optional[string]   `json:"description"`
		Enabled     api.Optional[bool]     `json:"enabled"`
		Tags        api.Optional[[]string] `json:"tags"`
	}
	for _, tc := range []struct {
		body string
		want patch
	}{
		{`{}`, patch{}},
		{`{"description": null}`, patch{Description: api.Optional[string]{Set: true, Null: true}}},
		{`{"description": ""}`, patch{Description: api.Optional[string]{Set: true}}},
		{`{"description": "hi"}`, patch{Description: api.Optional[string]{Set: true, Value: "hi"}}},
		{`{"enabled": false}`, patch{Enabled: api.Optional[bool]{Set: true}}},
		{`{"enabled": null, "tags": ["a"]}`, patch{
			Enabled: api.Optional[bool]{Set: true, Null: true},
			Tags:    api.Optional[[]string]{Set: true, Value: []string{"a"}},
		}},
		{`{"tags": []}`, patch{Tags: api.Optional[[]string]{Set: true, Value: []string{}}}},
		{`{"tags": null}`, patch{Tags: api.Optional[[]string]{Set: true, Null: true}}},
		{`{"description":  null  }`, patch{Description: api.Optional[string]{Set: true, Null: true}}},
	} {
		var got patch
		if err := decodeString(tc.body, &got, false); err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.body, got, tc.want)
		}
	}
}

// With duplicate keys encoding/json lets the last one win; an Optional
// must agree, or a handler sees Null and a value at once.
func TestOptionalDuplicateKeyLastWins(t *testing.T) {
	type patch struct {
		Description api.Optional[string] `json:"description"`
	}
	for _, tc := range []struct {
		body string
		want api.Optional[string]
	}{
		{`{"description": null, "description": "x"}`, api.Optional[string]{Set: true, Value: "x"}},
		{`{"description": "x", "description": null}`, api.Optional[string]{Set: true, Null: true}},
	} {
		var got patch
		if err := decodeString(tc.body, &got, false); err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if got.Description != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.body, got.Description, tc.want)
		}
	}
}

// DecodeJSON's strictness must reach into values wrapped in Optional.
func TestDecodeJSONStrictInsideOptional(t *testing.T) {
	type limits struct {
		Cores int `json:"cores"`
	}
	var v struct {
		Limits api.Optional[limits] `json:"limits"`
	}
	body := `{"limits": {"cores": 1, "ram": 2}}`
	want400(t, body, decodeString(body, &v, false), "'ram'")
}

// "Nothing is applied from a body that fails", as DecodeJSON promises.
func TestDecodeJSONFailureLeavesTargetUntouched(t *testing.T) {
	for _, body := range []string{
		`{"user": {"name": "mallory", "count": "x"}}`,
		`{"user": {"name": "mallory", "colour": "red"}}`,
		`{"user": {"name": "mallory"}} trailing`,
	} {
		var v userRequest
		v.User.Name = "bob"
		if err := decodeString(body, &v, false); err == nil {
			t.Fatalf("%s: decoded without error", body)
		}
		if v.User.Name != "bob" {
			t.Errorf("%s: failed decode changed name to %q", body, v.User.Name)
		}
	}
}

func TestDecodeJSONLoose(t *testing.T) {
	var v userRequest
	body := `{"user": {"name": "bob", "email": "bob@example.com", "extra": {"deep": [1]}}, "top": 1}`
	if err := decodeString(body, &v, true); err != nil {
		t.Fatalf("loose decode: %v", err)
	}
	if v.User.Name != "bob" {
		t.Errorf("name = %q", v.User.Name)
	}
	// Only the unknown-field check is relaxed.
	var strict userRequest
	want400(t, body, decodeString(body, &strict, false), "'email'")
	want400(t, "loose type", decodeString(`{"user": {"name": 5, "email": 1}}`, &v, true), "'user.name'")
	want400(t, "loose syntax", decodeString(`{"user": `, &v, true), "unexpected end")
	want400(t, "loose empty", decodeString(``, &v, true))
}

func TestDecodeBytes(t *testing.T) {
	var v struct {
		A int `json:"a"`
	}
	if err := api.DecodeBytes([]byte(`{"a": 1}`), &v, true); err != nil || v.A != 1 {
		t.Errorf("DecodeBytes = %v, %+v", err, v)
	}
	want400(t, "strict", api.DecodeBytes([]byte(`{"a": 1, "b": 2}`), &v, true), "'b'")
	if err := api.DecodeBytes([]byte(`{"a": 2, "b": 2}`), &v, false); err != nil || v.A != 2 {
		t.Errorf("loose DecodeBytes = %v, %+v", err, v)
	}
}

func TestDecodeJSONDeepNesting(t *testing.T) {
	var v struct {
		Extra any `json:"extra"`
	}
	body := `{"extra": ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`
	want400(t, "20000 nested arrays", api.DecodeBytes([]byte(body), &v, true), "Malformed request body")
}

// fuzzBody has the shapes request bodies use: nesting, slices of structs,
// maps, pointers, Optional and free-form values.
type fuzzBody struct {
	Server struct {
		Name     string            `json:"name"`
		Count    int               `json:"count"`
		Small    uint8             `json:"small"`
		Ratio    float64           `json:"ratio"`
		Enabled  *bool             `json:"enabled"`
		Tags     []string          `json:"tags"`
		Metadata map[string]string `json:"metadata"`
		Networks []struct {
			UUID  string `json:"uuid"`
			Fixed struct {
				IP string `json:"ip"`
			} `json:"fixed"`
		} `json:"networks"`
		Description api.Optional[string]         `json:"description"`
		Quota       api.Optional[map[string]int] `json:"quota"`
		Extra       any                          `json:"extra"`
	} `json:"server"`
	Raw json.RawMessage `json:"raw"`
}

// FuzzDecodeJSON checks DecodeJSON on arbitrary bytes: it never panics,
// fails only with a 400 or (over the limit) a 413 *api.Error, accepts only
// valid JSON, is at least as strict as DecodeJSONLoose, and leaves Optional
// fields consistent. Plain `go test` runs only the seeds.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		``,
		` `,
		`{}`,
		`null`,
		`[]`,
		`{"server": {"name": "vm1", "count": 2, "small": 255, "ratio": 1e3, "enabled": true}}`,
		`{"server": {"tags": ["a"], "metadata": {"k": "v"}, "networks": [{"uuid": "n1", "fixed": {"ip": "10.0.0.2"}}]}}`,
		`{"server": {"description": null, "quota": {"cores": 4}}}`,
		`{"server": {"description": "x", "description": null, "description": "y"}}`,
		`{"server": {"quota": null, "quota": {"cores": 1}}}`,
		`{"server": {"extra": {"deep": [1, {"x": null}]}}, "raw": [1,2]}`,
		`{"server": {"small": 256}}`,
		`{"server": {"networks": [{"fixed": {"ip": 1}}]}}`,
		`{"server": {"networks": [{"fixed": {"mac": "x"}}]}}`,
		`{"server": {"unknown": 1}}`,
		`{"SERVER": {"NAME": "x"}}`,
		`{} {}`,
		`{}]`,
		`{"server": {"name": "\ud800"}}`,
		"{\"server\": {\"name\": \"\xff\"}}",
		`{"server": {"name": "x"`,
		strings.Repeat(` `, 4097), // over the body limit
		`{"raw": ` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}`,
		`{"server": {"name": "` + strings.Repeat("x", 5000) + `"}}`, // over the limit mid-document
	} {
		f.Add([]byte(seed))
	}
	const limit = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		decode := func(v any, loose bool) error {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			req.Body = http.MaxBytesReader(rec, io.NopCloser(bytes.NewReader(data)), limit)
			if loose {
				return api.DecodeJSONLoose(req, v)
			}
			return api.DecodeJSON(req, v)
		}
		var strict, loose fuzzBody
		strictErr := decode(&strict, false)
		looseErr := decode(&loose, true)
		for _, err := range []error{strictErr, looseErr} {
			if err == nil {
				continue
			}
			e, ok := err.(*api.Error)
			if !ok {
				t.Fatalf("error %v is %T, not *api.Error", err, err)
			}
			switch {
			case len(data) > limit && e.Status != http.StatusRequestEntityTooLarge:
				t.Fatalf("%d-byte body: status %d, want 413", len(data), e.Status)
			case len(data) <= limit && e.Status != http.StatusBadRequest:
				t.Fatalf("error status %d (%s), want 400", e.Status, e.Message)
			}
			if e.Message == "" {
				t.Fatal("error with an empty message")
			}
		}
		if strictErr == nil {
			if !json.Valid(data) {
				t.Fatalf("DecodeJSON accepted invalid JSON %q", data)
			}
			if looseErr != nil {
				t.Fatalf("strict decode succeeded but loose failed: %v", looseErr)
			}
			if !reflect.DeepEqual(strict, loose) {
				t.Fatalf("strict and loose decode differ:\n%+v\n%+v", strict, loose)
			}
		}
		if looseErr == nil {
			if !json.Valid(data) {
				t.Fatalf("DecodeJSONLoose accepted invalid JSON %q", data)
			}
			d, q := loose.Server.Description, loose.Server.Quota
			if (d.Null && d.Value != "") || (q.Null && q.Value != nil) {
				t.Fatalf("Optional both null and valued: %+v %+v", d, q)
			}
			if (!d.Set && (d.Null || d.Value != "")) || (!q.Set && (q.Null || q.Value != nil)) {
				t.Fatalf("unset Optional carries data: %+v %+v", d, q)
			}
		}
	})
}
