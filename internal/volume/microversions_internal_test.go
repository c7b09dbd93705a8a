package volume

import "testing"

// TestMaxVersionIsTheHonouredRun: the advertised maximum is the end of
// the unbroken run of honoured versions in history, never past a gap.
func TestMaxVersionIsTheHonouredRun(t *testing.T) {
	honoured := map[int]bool{}
	listed := map[int]bool{}
	for _, h := range history {
		listed[h.minor] = true
		honoured[h.minor] = h.honoured
	}
	run := 0
	for m := 1; honoured[m]; m++ {
		run = m
	}
	if MaxVersion.Major != 3 || MaxVersion.Minor != run {
		t.Fatalf("MaxVersion %s, but the honoured run ends at 3.%d", MaxVersion, run)
	}
	for m := 1; m <= 44; m++ {
		if !listed[m] {
			t.Errorf("history says nothing of 3.%d", m)
		}
	}
	if !listed[run+1] || honoured[run+1] {
		t.Fatalf("history must name the first version not honoured (3.%d)", run+1)
	}
}
