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

func TestConsoleAddr(t *testing.T) {
	rep, err := consoleAddr("i", "serial", "127.0.0.1:10003")
	if err != nil || rep.Host != "127.0.0.1" || rep.Port != 10003 {
		t.Fatalf("consoleAddr = %+v, %v", rep, err)
	}
	// A guest that is not running reports no address: no console, not
	// a console on port 0.
	for _, addr := range []string{"", "127.0.0.1:x"} {
		if rep, err := consoleAddr("i", "serial", addr); err == nil {
			t.Errorf("consoleAddr(%q) = %+v, want an error", addr, rep)
		}
	}
}
