package server

import (
	"encoding/json"
	"unicode/utf8"
)

// decodeMetadata parses stored object metadata: the JSON object of string
// values that writeMetadata encodes.
//
// Every GET and HEAD decodes its object's metadata, and encoding/json's
// reflection was a tenth of a GET's CPU. What writeMetadata stores is
// almost always plain: no escapes, valid UTF-8. decodePlainObject parses
// exactly that in one pass and declines anything else, which
// encoding/json then decodes, so the two never disagree
// (FuzzDecodeMetadata checks it).
func decodeMetadata(b []byte) (map[string]string, error) {
	if md, ok := decodePlainObject(b); ok {
		return md, nil
	}
	md := map[string]string{}
	if err := json.Unmarshal(b, &md); err != nil {
		return nil, err
	}
	return md, nil
}

// decodePlainObject parses a JSON object whose keys and values are strings
// without escapes or control characters and with valid UTF-8. It reports
// false for any other input, valid JSON or not.
func decodePlainObject(b []byte) (map[string]string, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	md := make(map[string]string, 8)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return md, skipSpace(b, i+1) == len(b)
	}
	for {
		key, j, ok := plainString(b, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		val, j, ok := plainString(b, skipSpace(b, i+1))
		if !ok {
			return nil, false
		}
		md[metadataKeyString(key)] = string(val)
		i = skipSpace(b, j)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return md, skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

// plainString reads the JSON string starting at b[i] and returns its
// contents and the index after its closing quote; ok is false for a string
// with an escape, a control character or invalid UTF-8 (which
// encoding/json would rewrite), and for anything that is not a string.
func plainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s = b[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// metadataKeyString returns the key as a string, without allocating for the
// keys every object has.
func metadataKeyString(k []byte) string {
	switch string(k) {
	case "name":
		return "name"
	case "X-Timestamp":
		return "X-Timestamp"
	case "Content-Length":
		return "Content-Length"
	case "Content-Type":
		return "Content-Type"
	case "ETag":
		return "ETag"
	}
	return string(k)
}
