package dataplane

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestStopPid: a process that ignores SIGTERM is killed, and one that is
// already gone counts as stopped; neither is an error. (The race that
// failed a namespace's removal, a dnsmasq exiting between stopPid's last
// look and its SIGKILL, cannot be timed from a test; the SIGKILL's ESRCH
// is now ignored like the SIGTERM's.)
func TestStopPid(t *testing.T) {
	stubborn := exec.Command("sh", "-c", `trap "" TERM; while :; do sleep 0.05; done`)
	if err := stubborn.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = stubborn.Wait(); close(done) }()
	time.Sleep(100 * time.Millisecond) // let the shell set its trap
	if err := stopPid(stubborn.Process.Pid); err != nil {
		t.Fatalf("stop a process that ignores SIGTERM: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the process still runs after stopPid")
	}

	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(gone.Process.Pid, 0); err == nil {
		t.Skip("the pid of an exited process was reused at once")
	}
	if err := stopPid(gone.Process.Pid); err != nil {
		t.Fatalf("stop a process that is gone: %v", err)
	}
}
