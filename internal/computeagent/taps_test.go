package computeagent

import (
	"context"
	"testing"
	"time"
)

// TestWaitTapsNoticesSoon: the tap is looked for often enough that a
// tap which appears while the build waits is noticed within tens of
// milliseconds, not at the next step of a long backoff (the wait is on
// the path of every boot).
func TestWaitTapsNoticesSoon(t *testing.T) {
	const appears = 310 * time.Millisecond
	start := time.Now()
	a := &Agent{cfg: Config{TapPrefix: "nb", TapTimeout: 5 * time.Second,
		TapExists: func(string) bool { return time.Since(start) >= appears }}}
	if err := a.waitTaps(context.Background(), []port{{ID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	// Generous for a loaded machine; a 500 ms backoff notices at 620 ms.
	if late := time.Since(start) - appears; late > 150*time.Millisecond {
		t.Errorf("tap noticed %v after it appeared", late)
	}
}
