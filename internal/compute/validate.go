package compute

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// flexInt is an integer that Nova's schemas also accept as a string of
// digits ("ram": "512"), as python-novaclient and older tools send.
type flexInt struct {
	Set   bool
	Value int64
	raw   string
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexInt) UnmarshalJSON(b []byte) error {
	f.Set = true
	f.raw = string(b)
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return &json.UnmarshalTypeError{Value: "null", Type: nil}
	}
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	s = strings.TrimSpace(s)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return api.BadRequest("Invalid input: %s is not a valid integer.", string(b))
	}
	f.Value = n
	return nil
}

// intField checks a flexInt against Nova's bounds for field.
func intField(field string, f flexInt, min, max int64) (int, error) {
	if f.Value < min {
		return 0, api.BadRequest("Invalid input for field/attribute %s. Value: %s. %d is less than the minimum of %d", field, f.raw, f.Value, min)
	}
	if f.Value > max {
		return 0, api.BadRequest("Invalid input for field/attribute %s. Value: %s. %d is greater than the maximum of %d", field, f.raw, f.Value, max)
	}
	return int(f.Value), nil
}

// dbMaxInt is the largest value Nova's integer columns hold.
const dbMaxInt = math.MaxInt32

// checkName applies Nova's name rules: 1-255 characters, no leading or
// trailing white space, no control characters.
func checkName(field, name string, maxLen int) error {
	if name == "" || len([]rune(name)) > maxLen {
		return api.BadRequest("Invalid input for field/attribute %s. Value: %s. '%s' must be between 1 and %d characters long", field, name, name, maxLen)
	}
	if strings.TrimSpace(name) != name {
		return api.BadRequest("Invalid input for field/attribute %s. Value: %s. '%s' has leading or trailing whitespace", field, name, name)
	}
	for _, c := range name {
		if unicode.IsControl(c) {
			return api.BadRequest("Invalid input for field/attribute %s. Value: %s. Invalid characters in the name", field, name)
		}
	}
	return nil
}

// queryBool parses a boolean query parameter as oslo's strict
// bool_from_string does.
func queryBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "on", "y", "yes":
		return true, true
	case "0", "f", "false", "off", "n", "no":
		return false, true
	}
	return false, false
}

// page reads limit and marker as Nova does: limit must be a non-negative
// integer; 0 or anything over 1000 (osapi_max_limit) means 1000.
func page(r *http.Request) (api.Page, error) {
	q := r.URL.Query()
	p := api.Page{Limit: 1000, Marker: q.Get("marker")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, api.BadRequest("limit param must be an integer")
		}
		if n > 0 && n < 1000 {
			p.Limit = n
		}
	}
	return p, nil
}

// paginate applies a Nova page: an unknown marker is a 400 naming it.
func paginate[T any](items []T, p api.Page, id func(T) string) ([]T, bool, error) {
	out, more, err := api.Paginate(items, p, id)
	if err != nil {
		return nil, false, api.BadRequest("marker [%s] not found", p.Marker)
	}
	return out, more, nil
}

// nextLinks returns Nova's "<collection>_links" for a full page.
func (s *Service) nextLinks(r *http.Request, p api.Page, n int, lastID string) []api.Link {
	if p.Limit <= 0 || n < p.Limit || lastID == "" {
		return nil
	}
	return []api.Link{api.NextLink(s.baseURL(r), r, lastID)}
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err))
	}
	return string(b)
}

func fromJSON[T any](s string) T {
	var v T
	if s != "" {
		_ = json.Unmarshal([]byte(s), &v)
	}
	return v
}

// novaBool is a boolean as Nova's parameter_types.boolean takes it: JSON
// true/false or one of the strings "True", "true", "1", "on", "yes", …
// (Tempest creates flavors with "os-flavor-access:is_public": "True").
type novaBool bool

var novaBoolStrings = map[string]bool{
	"True": true, "TRUE": true, "true": true, "1": true, "ON": true, "On": true, "on": true, "YES": true, "Yes": true, "yes": true,
	"False": false, "FALSE": false, "false": false, "0": false, "OFF": false, "Off": false, "off": false, "NO": false, "No": false, "no": false,
}

func (b *novaBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		*b = novaBool(x)
		return nil
	case string:
		if t, ok := novaBoolStrings[x]; ok {
			*b = novaBool(t)
			return nil
		}
	}
	return fmt.Errorf("%s is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']", data)
}
