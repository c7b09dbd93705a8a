package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode"
)

// evaluator carries what one Enforce call checks against.
type evaluator struct {
	rules  map[string]Rule // the published rule set; read-only
	target map[string]any
	creds  *Credentials
}

// child returns v[key] when v is a string-keyed map (or the credentials).
func child(v any, key string) (any, bool) {
	switch m := v.(type) {
	case map[string]any:
		c, ok := m[key]
		return c, ok
	case map[string]string:
		c, ok := m[key]
		return c, ok
	case *Credentials:
		return m.attr(key)
	case nil:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	c := rv.MapIndex(reflect.ValueOf(key).Convert(rv.Type().Key()))
	if !c.IsValid() {
		return nil, false
	}
	return c.Interface(), true
}

// lookupValue resolves a dotted key such as "target.user.domain_id" in v.
// oslo consumers flatten nested targets into exactly such keys, while Go
// callers naturally nest maps, so both work: an exact key wins, then each
// dotted prefix that names a map is descended into, longest first.
func lookupValue(v any, key string) (any, bool) {
	if c, ok := child(v, key); ok {
		return c, true
	}
	for i := strings.LastIndexByte(key, '.'); i > 0; i = strings.LastIndexByte(key[:i], '.') {
		if i == len(key)-1 {
			continue
		}
		if c, ok := child(v, key[:i]); ok {
			if r, ok := lookupValue(c, key[i+1:]); ok {
				return r, true
			}
		}
	}
	return nil, false
}

// matchPath reports whether any value at the dotted path in v satisfies
// pred. Like oslo's GenericCheck, a list anywhere on the path matches when
// any of its elements does, so roles:admin works against a role list and
// groups.name:ops against a list of group maps.
func matchPath(v any, path string, pred func(any) bool) bool {
	matched := false
	if eachElem(v, func(e any) bool {
		matched = matchPath(e, path, pred)
		return matched
	}) {
		return matched
	}
	if path == "" {
		return pred(v)
	}
	if c, ok := child(v, path); ok && matchPath(c, "", pred) {
		return true
	}
	for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
		if i == len(path)-1 {
			continue
		}
		if c, ok := child(v, path[:i]); ok && matchPath(c, path[i+1:], pred) {
			return true
		}
	}
	return false
}

// eachElem calls fn on each element of v until fn returns true, and reports
// whether v was a list at all. Byte slices are not lists.
func eachElem(v any, fn func(any) bool) bool {
	switch l := v.(type) {
	case []any:
		for _, e := range l {
			if fn(e) {
				break
			}
		}
		return true
	case []string:
		for _, e := range l {
			if fn(e) {
				break
			}
		}
		return true
	case nil, string, []byte:
		return false
	}
	rv := reflect.ValueOf(v)
	if k := rv.Kind(); k != reflect.Slice && k != reflect.Array {
		return false
	}
	if rv.Type().Elem().Kind() == reflect.Uint8 {
		return false
	}
	for i := range rv.Len() {
		if fn(rv.Index(i).Interface()) {
			break
		}
	}
	return true
}

// scalarString renders v the way Python's str() would, which is what oslo
// compares. Booleans are reported so callers can compare them
// case-insensitively. Values without a meaningful scalar form (nil, maps,
// lists, structs) are not ok and never match.
func scalarString(v any) (s string, isBool, ok bool) {
	switch x := v.(type) {
	case nil:
		return "", false, false
	case string:
		return x, false, true
	case bool:
		if x {
			return "True", true, true
		}
		return "False", true, true
	case json.Number:
		return x.String(), false, true
	case fmt.Stringer:
		return x.String(), false, true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), false, true
	case reflect.Bool:
		return scalarString(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), false, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10), false, true
	case reflect.Float32, reflect.Float64:
		return formatFloat(rv.Float()), false, true
	}
	return "", false, false
}

// formatFloat writes integral floats without a fraction: encoding/json
// decodes every number as float64, while the Python side saw an int.
func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// isSpace matches what Python's str.split() splits on, which is how oslo
// tokenizes: Unicode white space plus the ASCII separators U+001C..U+001F.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}
