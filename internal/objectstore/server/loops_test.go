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
	cancel()
	<-done
	<-done
}
