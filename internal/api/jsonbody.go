package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// DecodeJSON reads the request body into v strictly: malformed JSON, a
// field v does not declare, a value of the wrong type or trailing data is a
// 400 that names the field, and an oversize body is a 413. Nothing is
// applied from a body that fails.
func DecodeJSON(r *http.Request, v any) error {
	return decode(r, v, true)
}

// DecodeJSONLoose is DecodeJSON without the unknown-field check, for
// resources that keep arbitrary extra attributes (Keystone users, projects).
func DecodeJSONLoose(r *http.Request, v any) error {
	return decode(r, v, false)
}

func decode(r *http.Request, v any, strict bool) error {
	if r.Body == nil {
		return BadRequest("Expecting to find valid JSON in request body.")
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Errorf(http.StatusRequestEntityTooLarge, "Request is too large.")
		}
		return BadRequest("Could not read the request body.")
	}
	return DecodeBytes(data, v, strict)
}

// DecodeBytes is the decoding half of DecodeJSON, for bodies already read.
func DecodeBytes(data []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return BadRequest("Expecting to find valid JSON in request body.")
	}
	// Decode into a fresh value and copy it over only on success:
	// encoding/json fills fields before it meets an error, and a failed
	// body must leave nothing applied.
	dst := reflect.ValueOf(v)
	if dst.Kind() != reflect.Pointer || dst.IsNil() {
		return fmt.Errorf("decode json: target must be a non-nil pointer, not %T", v)
	}
	fresh := reflect.New(dst.Elem().Type())
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(fresh.Interface()); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF { // dec.More() would miss a stray "]" or "}"
		return BadRequest("Malformed request body: unexpected data after the JSON document.")
	}
	if bytes.Contains(data, []byte(`\u0000`)) && hasNUL(fresh) {
		// Databases refuse NUL in text; say so instead of failing later.
		return BadRequest("Invalid input: strings must not contain NUL characters.")
	}
	dst.Elem().Set(fresh.Elem())
	return nil
}

// hasNUL reports whether any string reachable from v contains a NUL.
func hasNUL(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		return strings.ContainsRune(v.String(), 0)
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil() && hasNUL(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && hasNUL(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return false // []byte / json.RawMessage: checked where decoded
		}
		for i := range v.Len() {
			if hasNUL(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if hasNUL(it.Key()) || hasNUL(it.Value()) {
				return true
			}
		}
	}
	return false
}

// jsonError turns encoding/json's errors into messages a client can act on.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return BadRequest("Malformed request body: invalid JSON at offset %d.", syntax.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return BadRequest("Invalid input: expected %s, got %s.", jsonKind(typ.Type), typ.Value)
		}
		return BadRequest("Invalid input for field '%s': expected %s, got %s.", field, jsonKind(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("Malformed request body: unexpected end of JSON input.")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return BadRequest("Invalid input for field '%s': Additional properties are not allowed ('%s' was unexpected).", name, name)
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return BadRequest("Malformed request body: %s.", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names a Go type the way a JSON schema would.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return fmt.Sprint(t)
}

// Optional is a JSON field that distinguishes absent, null and a value,
// which PATCH semantics need ("description": null clears it).
type Optional[T any] struct {
	Set   bool // the field was present
	Null  bool // the field was present and null
	Value T
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	*o = Optional[T]{Set: true} // with duplicate keys the last one wins, as for plain fields
	if string(bytes.TrimSpace(b)) == "null" {
		o.Null = true
		return nil
	}
	// Strict like the document around it: unknown fields nested in an
	// optional object are refused too.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(&o.Value)
}
