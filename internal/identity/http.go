package identity

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// readEnvelope reads a body of the form {"<key>": {...}} into dst, and
// returns the attributes dst does not declare as extras: Keystone keeps
// unknown attributes of users, projects and friends and returns them.
// strict rejects unknown attributes instead.
func readEnvelope(r *http.Request, key string, dst any, strict bool) (map[string]any, error) {
	inner, err := readEnvelopeMember(r, key)
	if err != nil {
		return nil, err
	}
	if len(inner) == 0 || inner[0] != '{' {
		return nil, api.BadRequest("Invalid input for field '%s': expected object.", key)
	}
	if err := api.DecodeBytes(inner, dst, strict); err != nil {
		return nil, prefixField(err, key)
	}
	var all map[string]any
	if err := json.Unmarshal(inner, &all); err != nil {
		return nil, api.BadRequest("Invalid input for field '%s': expected object.", key)
	}
	for _, name := range jsonFieldNames(dst) {
		delete(all, name)
	}
	delete(all, "links")
	delete(all, "id")
	return all, nil
}

// readEnvelopeMember reads a body of the form {"<key>": ...} and returns
// the member, undecoded; a missing or null member is a 400.
func readEnvelopeMember(r *http.Request, key string) (json.RawMessage, error) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if asMaxBytes(err, &tooBig) {
			return nil, api.Errorf(http.StatusRequestEntityTooLarge, "Request is too large.")
		}
		return nil, api.BadRequest("Could not read the request body.")
	}
	var env map[string]json.RawMessage
	if err := api.DecodeBytes(data, &env, false); err != nil {
		return nil, err
	}
	inner, ok := env[key]
	if !ok || string(inner) == "null" {
		return nil, api.BadRequest("Invalid input for field '%s': '%s' is a required property.", key, key)
	}
	return inner, nil
}

func asMaxBytes(err error, target **http.MaxBytesError) bool {
	e, ok := err.(*http.MaxBytesError)
	if ok {
		*target = e
	}
	return ok
}

// prefixField makes "field 'enabled'" read "field 'user.enabled'".
func prefixField(err error, key string) error {
	e := api.AsError(err)
	if e.Status == http.StatusBadRequest && strings.Contains(e.Message, "field '") {
		return api.BadRequest("%s", strings.Replace(e.Message, "field '", "field '"+key+".", 1))
	}
	return err
}

// jsonFieldNames lists the JSON names of a struct's fields.
func jsonFieldNames(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = t.Field(i).Name
		}
		if name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// decodeExtra parses a stored extra-attributes column.
func decodeExtra(s string) map[string]any {
	m := map[string]any{}
	if s != "" {
		_ = json.Unmarshal([]byte(s), &m)
	}
	return m
}

// encodeExtra renders extra attributes for storage.
func encodeExtra(m map[string]any) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// mergeExtra applies an update's extra attributes to the stored ones: a
// value replaces, null removes.
func mergeExtra(stored string, changes map[string]any) string {
	merged := decodeExtra(stored)
	for k, v := range changes {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = v
		}
	}
	return encodeExtra(merged)
}

// withExtra copies extras into obj without overriding its own attributes.
func withExtra(obj map[string]any, extra string) map[string]any {
	for k, v := range decodeExtra(extra) {
		if _, own := obj[k]; !own {
			obj[k] = v
		}
	}
	return obj
}

// selfLinks is the "links" member of a resource.
func (s *Service) selfLinks(r *http.Request, path string) map[string]any {
	return map[string]any{"self": s.baseURL(r) + path}
}

// listBody is Keystone's collection envelope.
func (s *Service) listBody(r *http.Request, key string, items any) map[string]any {
	self := s.baseURL(r) + r.URL.Path
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	return map[string]any{key: items, "links": map[string]any{"self": self, "previous": nil, "next": nil}}
}

// listResponse answers a list call: each item rendered by render, in the
// collection envelope under key. An empty list is [] on the wire, not null.
func listResponse[T any](s *Service, r *http.Request, key string, items []T, render func(*http.Request, T) map[string]any) *api.Response {
	return api.JSON(http.StatusOK, s.listBody(r, key, renderAll(r, items, render)))
}

// renderAll renders each item with render. The result is never nil, so an
// empty list is [] on the wire, not null.
func renderAll[T any](r *http.Request, items []T, render func(*http.Request, T) map[string]any) []any {
	out := make([]any, 0, len(items))
	for _, it := range items {
		out = append(out, render(r, it))
	}
	return out
}

// queryBool reads a boolean filter the way Keystone does: "0", "false",
// "no", "off" (any case) are false, anything else present is true.
func queryBool(r *http.Request, name string) (value, present bool) {
	q := r.URL.Query()
	if !q.Has(name) {
		return false, false
	}
	switch strings.ToLower(q.Get(name)) {
	case "0", "false", "no", "off", "f", "n":
		return false, true
	}
	return true, true
}

// nullable renders "" as JSON null.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// validName checks a resource name the way Keystone's schemas do: required,
// at most 255 characters, not only whitespace.
func validName(kind, name string) error {
	if strings.TrimSpace(name) == "" {
		return api.BadRequest("Invalid input for field '%s.name': name must not be empty.", kind)
	}
	if len([]rune(name)) > 255 {
		return api.BadRequest("Invalid input for field '%s.name': name is longer than 255 characters.", kind)
	}
	return nil
}
