package volume

import (
	"testing"
)

func TestParseDictLiteral(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		in   string
		want map[string]*string
	}{
		{`{'Type': 'work'}`, map[string]*string{"Type": str("work")}},
		{`{"Type": "work"}`, map[string]*string{"Type": str("work")}},
		{`{}`, map[string]*string{}},
		{` { 'a' : 'b' , "c": 'd', } `, map[string]*string{"a": str("b"), "c": str("d")}},
		{`{'n': 1, 'f': 2.5, 't': True, 'x': false, 'z': None}`, map[string]*string{"n": str("1"), "f": str("2.5"), "t": str("True"), "x": str("False"), "z": nil}},
		{`{'q': 'it\'s', 'e': "a\"b", 'u': '\u00e9\x41', 'k': 'a\qb'}`, map[string]*string{"q": str("it's"), "e": str(`a"b`), "u": str("éA"), "k": str(`a\qb`)}},
		{`{'a': 'x', 'a': 'y'}`, map[string]*string{"a": str("y")}},
	} {
		got, err := parseDictLiteral(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%s: got %v", c.in, got)
		}
		for k, w := range c.want {
			g, ok := got[k]
			if !ok || (w == nil) != (g == nil) || (w != nil && *w != *g) {
				t.Fatalf("%s: key %s = %v, want %v", c.in, k, g, w)
			}
		}
	}
	for _, bad := range []string{``, `[]`, `{`, `{'a'}`, `{'a': }`, `{'a': 'b'`, `{'a': 'b'} x`, `{a: 'b'}`, `{'a': 'b' 'c': 'd'}`,
		`{'a': nope}`, `{'a': 'b\x4'}`, `{'a': [1]}`, `{'a': {'b': 'c'}}`, `{'a': 'unterminated}`, `{'a': inf}`, `{'a': 1e309x}`} {
		if got, err := parseDictLiteral(bad); err == nil {
			t.Fatalf("%q parsed as %v", bad, got)
		}
	}
}

// FuzzParseDictLiteral: the parser never panics, and whatever it accepts
// it accepts again when the dict is written back out (its output is
// stable).
func FuzzParseDictLiteral(f *testing.F) {
	for _, s := range []string{`{'Type': 'work'}`, `{"a": "b", 'c': 1}`, `{}`, `{'x': None, 'y': True}`, `{'u': '\u00e9'}`, `{'a': 'b',}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseDictLiteral(s)
		if err != nil {
			return
		}
		// Write it back in JSON form and parse again: the same dict.
		out := "{"
		i := 0
		for k, v := range got {
			if i > 0 {
				out += ", "
			}
			i++
			out += quote(k) + ": "
			if v == nil {
				out += "None"
			} else {
				out += quote(*v)
			}
		}
		out += "}"
		again, err := parseDictLiteral(out)
		if err != nil {
			t.Fatalf("%q parsed to %v, whose repr %q does not parse: %v", s, got, out, err)
		}
		if len(again) != len(got) {
			t.Fatalf("%q: %v then %v", s, got, again)
		}
		for k, v := range got {
			w, ok := again[k]
			if !ok || (v == nil) != (w == nil) || (v != nil && *v != *w) {
				t.Fatalf("%q: key %q %v then %v", s, k, v, w)
			}
		}
	})
}

// quote writes s as a single-quoted Python literal with \\, \' and \uXXXX
// escapes for control characters.
func quote(s string) string {
	out := []rune{'\''}
	for _, r := range s {
		switch {
		case r == '\\' || r == '\'':
			out = append(out, '\\', r)
		case r < 0x20:
			out = append(out, []rune(hex4(r))...)
		default:
			out = append(out, r)
		}
	}
	return string(append(out, '\''))
}

func hex4(r rune) string {
	const digits = "0123456789abcdef"
	return `\u` + string([]byte{digits[r>>12&0xf], digits[r>>8&0xf], digits[r>>4&0xf], digits[r&0xf]})
}
