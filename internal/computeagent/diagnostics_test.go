package computeagent_test

import (
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// TestDiagnostics: the API's diagnostics call reaches the host's driver;
// a driver that cannot report them is Nova's 501, not a hang or a 500.
func TestDiagnostics(t *testing.T) {
	h := newHarness(t)
	h.startAgent(h.config("host1", newRecDriver()))
	id := h.boot("vm", nil)
	h.waitStatus(id, "ACTIVE")
	d := h.json("admin", "GET", "/v2.1/servers/"+id+"/diagnostics", nil, 200)
	if d["memory"] != float64(512<<10) {
		t.Fatalf("diagnostics of an m1.tiny guest: %v", d)
	}

	h2 := newHarness(t)
	h2.startAgent(h2.config("host2", plainDriver{newRecDriver()}))
	id = h2.boot("vm", nil)
	h2.waitStatus(id, "ACTIVE")
	h2.json("admin", "GET", "/v2.1/servers/"+id+"/diagnostics", nil, 501)
}

// plainDriver hides everything of a driver but hypervisor.Driver.
type plainDriver struct{ hypervisor.Driver }
