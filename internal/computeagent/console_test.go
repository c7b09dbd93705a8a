package computeagent

import "testing"

func TestTailLog(t *testing.T) {
	cases := []struct {
		log    string
		length int
		want   string
	}{
		{"a\nb\nc\nd\n", 3, "c\nd\n"},
		{"a\nb\nc\nd", 3, "b\nc\nd"},
		{"a\nb", 5, "a\nb"},
		{"a\nb\n", 0, "a\nb\n"},
		{"", 3, ""},
	}
	for _, c := range cases {
		if got := tailLog(c.log, c.length); got != c.want {
			t.Errorf("tailLog(%q, %d) = %q, want %q", c.log, c.length, got, c.want)
		}
	}
}
