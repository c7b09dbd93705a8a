// Package proctest holds what the tests that run Nimbus as separate
// processes (test/multihost, test/objcluster) share: the binary they
// start and a bounded wait for what those processes do asynchronously.
package proctest

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BuildNimbus builds cmd/nimbus into a temp dir and returns its path. The
// tests build it themselves, rather than using bin/nimbus, so that they
// always run the code under test.
func BuildNimbus(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nimbus")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/nimbus-cloud/nimbus/cmd/nimbus").CombinedOutput()
	if err != nil {
		t.Fatalf("build nimbus: %v\n%s", err, out)
	}
	return bin
}

// WaitFor polls f until it reports true, failing the test with f's last
// description of the state if that does not happen within d.
func WaitFor(t *testing.T, d time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, d, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
