package server

import "testing"

func TestTimestamp(t *testing.T) {
	for _, tc := range []struct{ in, normal, internal string }{
		{"1400000000.12345", "1400000000.12345", "1400000000.12345"},
		{"1400000000.1", "1400000000.10000", "1400000000.10000"},
		{"1400000000", "1400000000.00000", "1400000000.00000"},
		{"1400000000.12345_000000000000000a", "1400000000.12345", "1400000000.12345_000000000000000a"},
	} {
		ts, err := parseTimestamp(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if ts.Normal() != tc.normal || ts.Internal() != tc.internal {
			t.Errorf("%s: %s %s", tc.in, ts.Normal(), ts.Internal())
		}
	}
	for _, bad := range []string{"", "abc", "-1", "NaN", "1e20", "1.0_zz"} {
		if _, err := parseTimestamp(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	a, _ := parseTimestamp("1400000000.12345")
	b, _ := parseTimestamp("1400000000.12345_0000000000000001")
	c, _ := parseTimestamp("1400000000.12346")
	if a.Compare(b) >= 0 || b.Compare(c) >= 0 || c.Compare(a) <= 0 {
		t.Fatal("ordering")
	}
}
