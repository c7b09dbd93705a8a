package server

import (
	"context"
	"strings"
	"testing"
	"time"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunLoops drives the background loops the lead wires: the object
// updater replays a queued update on its own, and the container updater
// reports fresh stats to the account without a sweep.
func TestRunLoops(t *testing.T) {
	n := newNode(t)
	n.obj.cfg.UpdaterInterval = 50 * time.Millisecond
	n.cont.cfg.UpdaterInterval = time.Hour // only the prompt path may report
	n.putAccount(t, "a")
	n.putContainer(t, "a", "c")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{}, 2)
	go func() { n.obj.RunUpdater(ctx); done <- struct{}{} }()
	go func() { n.cont.RunUpdater(ctx); done <- struct{}{} }()

	n.contDown.Store(true)
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), "abc", n.containerHeaders()), 201, "put")
	n.contDown.Store(false)
	eventually(t, "object listed by the updater", func() bool {
		return strings.Join(listing(t, n.contURL+"/sda/1/a/c", nil), ",") == "o"
	})
	eventually(t, "account stats reported", func() bool {
		h := do(t, "HEAD", n.acctURL+"/sda/2/a", nil, "")
		return h.header.Get("X-Account-Object-Count") == "1" && h.header.Get("X-Account-Bytes-Used") == "3"
	})
	// A change right after a report is reported too, later.
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o2", n.ts(), "defg", n.containerHeaders()), 201, "put")
	eventually(t, "second change reported", func() bool {
		h := do(t, "HEAD", n.acctURL+"/sda/2/a", nil, "")
		return h.header.Get("X-Account-Object-Count") == "2" && h.header.Get("X-Account-Bytes-Used") == "7"
	})
	cancel()
	<-done
	<-done
}

// A changed container is reported reportDelay after its change, once per
// burst, and at most every reportEvery while it keeps changing; another
// container is not held up by it.
func TestReportPacer(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	rp := newReportPacer()
	if _, ok := rp.next(); ok {
		t.Fatal("a report is due before any change")
	}
	rp.changed("c1", at(0))
	rp.changed("c1", at(50*time.Millisecond))
	if next, ok := rp.next(); !ok || !next.Equal(at(reportDelay)) {
		t.Fatalf("first report due at %v, %v; want %v", next, ok, at(reportDelay))
	}
	if got := rp.due(at(reportDelay - time.Millisecond)); len(got) != 0 {
		t.Fatalf("reported early: %v", got)
	}
	if got := rp.due(at(reportDelay)); len(got) != 1 || got[0] != "c1" {
		t.Fatalf("due at %v: %v", reportDelay, got)
	}
	// c1 changes again right away: its next report waits for reportEvery.
	rp.changed("c1", at(reportDelay+10*time.Millisecond))
	rp.changed("c2", at(reportDelay+10*time.Millisecond))
	if got := rp.due(at(2*reportDelay + 10*time.Millisecond)); len(got) != 1 || got[0] != "c2" {
		t.Fatalf("due at %v: %v; want c2 only", 2*reportDelay+10*time.Millisecond, got)
	}
	if next, ok := rp.next(); !ok || !next.Equal(at(reportDelay+reportEvery)) {
		t.Fatalf("c1's next report due at %v, %v; want %v", next, ok, at(reportDelay+reportEvery))
	}
	if got := rp.due(at(reportDelay + reportEvery)); len(got) != 1 || got[0] != "c1" {
		t.Fatalf("due at %v: %v", reportDelay+reportEvery, got)
	}
	// Quiet for longer than reportEvery: a change is reported promptly again.
	rp.changed("c1", at(3*reportEvery))
	if next, ok := rp.next(); !ok || !next.Equal(at(3*reportEvery+reportDelay)) {
		t.Fatalf("report after a quiet spell due at %v, %v; want %v", next, ok, at(3*reportEvery+reportDelay))
	}
}
