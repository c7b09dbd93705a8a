package swiftfmt

import "strings"

// A static large object's total size travels to the container listing as a
// swift_bytes parameter of its content type (Swift's slo appends it to the
// manifest's type), because the listing's size column must stay the
// manifest's own for the container's byte count.
const swiftBytesParam = "swift_bytes"

// ExtractSwiftBytes splits the swift_bytes parameter out of a content type
// as Swift's extract_swift_bytes does: the other parameters are kept,
// rewritten as ";key=value" (so listings show a type the same way Swift's
// container server does), and ok reports whether swift_bytes was there.
func ExtractSwiftBytes(ct string) (rest, swiftBytes string, ok bool) {
	base, params, found := strings.Cut(ct, ";")
	if !found {
		return ct, "", false
	}
	var sb strings.Builder
	sb.WriteString(base)
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			continue
		}
		if k == swiftBytesParam {
			swiftBytes, ok = v, true
			continue
		}
		sb.WriteString(";" + k + "=" + v)
	}
	return sb.String(), swiftBytes, ok
}

// CleanContentType drops a trailing swift_bytes parameter, as Swift's
// clean_content_type does before a client sees an object's type.
func CleanContentType(ct string) string {
	if left, right, ok := cutLast(ct, ";"); ok && strings.HasPrefix(strings.TrimLeft(right, " \t"), swiftBytesParam+"=") {
		return left
	}
	return ct
}

// WithSwiftBytes is ct with its swift_bytes parameter set to n, the form
// a manifest's content type is stored in.
func WithSwiftBytes(ct, n string) string {
	if rest, _, ok := ExtractSwiftBytes(ct); ok {
		ct = rest
	}
	return ct + ";" + swiftBytesParam + "=" + n
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
