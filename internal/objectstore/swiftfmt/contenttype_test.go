package swiftfmt

import "testing"

// TestSwiftBytes checks the content type handling of Swift's
// extract_swift_bytes and clean_content_type.
func TestSwiftBytes(t *testing.T) {
	for _, c := range []struct{ in, rest, n string }{
		{"text/plain", "text/plain", ""},
		{"text/plain; charset=utf-8", "text/plain;charset=utf-8", ""},
		{"application/octet-stream;swift_bytes=6", "application/octet-stream", "6"},
		{"a/b; x=1;swift_bytes=6; y=2", "a/b;x=1;y=2", "6"},
	} {
		rest, n, ok := ExtractSwiftBytes(c.in)
		if rest != c.rest || n != c.n || ok != (c.n != "") {
			t.Errorf("ExtractSwiftBytes(%q) = %q, %q, %v", c.in, rest, n, ok)
		}
	}
	if got := CleanContentType("a/b; x=1; swift_bytes=6"); got != "a/b; x=1" {
		t.Errorf("CleanContentType = %q", got)
	}
	if got := CleanContentType("a/b; swift_bytes=6; x=1"); got != "a/b; swift_bytes=6; x=1" {
		t.Errorf("CleanContentType of a non-trailing swift_bytes = %q", got)
	}
	if got := WithSwiftBytes("image/jpeg;swift_bytes=1", "6"); got != "image/jpeg;swift_bytes=6" {
		t.Errorf("WithSwiftBytes = %q", got)
	}
}
