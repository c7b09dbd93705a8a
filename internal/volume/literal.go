package volume

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseDictLiteral reads the metadata filter of a volume list. Cinder
// runs Python's ast.literal_eval on it, and clients that urlencode a
// dict (Tempest, cinderclient) send its Python repr, {'Type': 'work'};
// others send JSON. Both are dicts of literals, and this parser takes
// exactly that subset: a dict whose keys are strings and whose values are
// strings, integers, floats, True, False or None (None matches no value;
// the others match their text). Anything else is an error.
func parseDictLiteral(s string) (map[string]*string, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("metadata filter is not valid UTF-8")
	}
	p := &litParser{src: s}
	p.space()
	if !p.eat('{') {
		return nil, fmt.Errorf("metadata filter must be a dict, like {'key': 'value'}")
	}
	out := map[string]*string{}
	p.space()
	if p.eat('}') {
		return out, p.end()
	}
	for {
		p.space()
		key, err := p.str()
		if err != nil {
			return nil, fmt.Errorf("metadata filter key: %w", err)
		}
		p.space()
		if !p.eat(':') {
			return nil, fmt.Errorf("metadata filter: expected ':' after key %q", key)
		}
		p.space()
		val, err := p.value()
		if err != nil {
			return nil, fmt.Errorf("metadata filter value of %q: %w", key, err)
		}
		out[key] = val
		p.space()
		if p.eat('}') {
			return out, p.end()
		}
		if !p.eat(',') {
			return nil, fmt.Errorf("metadata filter: expected ',' or '}' at offset %d", p.pos)
		}
		p.space()
		if p.eat('}') { // a trailing comma, which Python allows
			return out, p.end()
		}
	}
}

type litParser struct {
	src string
	pos int
}

func (p *litParser) space() {
	for p.pos < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *litParser) eat(c byte) bool {
	if p.pos < len(p.src) && p.src[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *litParser) end() error {
	p.space()
	if p.pos != len(p.src) {
		return fmt.Errorf("metadata filter: unexpected text after the dict at offset %d", p.pos)
	}
	return nil
}

// str reads a single- or double-quoted string with Python's common
// escapes (\\, \', \", \n, \t, \r, \xNN, \uNNNN).
func (p *litParser) str() (string, error) {
	if p.pos >= len(p.src) || (p.src[p.pos] != '\'' && p.src[p.pos] != '"') {
		return "", fmt.Errorf("expected a quoted string at offset %d", p.pos)
	}
	quote := p.src[p.pos]
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == quote:
			p.pos++
			return b.String(), nil
		case c == '\n':
			return "", fmt.Errorf("unterminated string")
		case c == '\\':
			if p.pos+1 >= len(p.src) {
				return "", fmt.Errorf("unterminated string")
			}
			e := p.src[p.pos+1]
			p.pos += 2
			switch e {
			case '\\', '\'', '"':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'x', 'u':
				n := 2
				if e == 'u' {
					n = 4
				}
				if p.pos+n > len(p.src) {
					return "", fmt.Errorf("truncated \\%c escape", e)
				}
				code, err := strconv.ParseUint(p.src[p.pos:p.pos+n], 16, 32)
				if err != nil {
					return "", fmt.Errorf("invalid \\%c escape", e)
				}
				if !utf8.ValidRune(rune(code)) {
					return "", fmt.Errorf("invalid \\%c escape", e)
				}
				b.WriteRune(rune(code))
				p.pos += n
			default:
				// Python keeps unknown escapes as they are.
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", fmt.Errorf("unterminated string")
}

// value reads a string, a number, True/False/None (or JSON's
// true/false/null).
func (p *litParser) value() (*string, error) {
	if p.pos >= len(p.src) {
		return nil, fmt.Errorf("missing value")
	}
	if c := p.src[p.pos]; c == '\'' || c == '"' {
		s, err := p.str()
		return &s, err
	}
	start := p.pos
	for p.pos < len(p.src) && strings.IndexByte(",} \t\r\n", p.src[p.pos]) < 0 {
		p.pos++
	}
	word := p.src[start:p.pos]
	switch word {
	case "True", "true":
		s := "True"
		return &s, nil
	case "False", "false":
		s := "False"
		return &s, nil
	case "None", "null":
		return nil, nil
	}
	if n, err := strconv.ParseInt(word, 10, 64); err == nil {
		s := strconv.FormatInt(n, 10)
		return &s, nil
	}
	if f, err := strconv.ParseFloat(word, 64); err == nil && !strings.ContainsAny(word, "xXpP_") && strings.ToLower(word) != "inf" && strings.ToLower(word) != "nan" && !strings.Contains(strings.ToLower(word), "inf") {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return &s, nil
	}
	return nil, fmt.Errorf("%q is not a literal", word)
}
