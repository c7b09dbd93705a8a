package compute_test

import (
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

// TestServerDiagnostics: admins get the host's view of a guest, in
// Nova's driver-neutral body from 2.48 and the libvirt driver's flat one
// before; members are refused, and a server no host holds is not ready.
func TestServerDiagnostics(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "g1"})
	id := h.boot("a", "vm", map[string]any{"flavorRef": "2"})
	h.waitStatus("a", id, "ACTIVE")

	d := h.json("admin", "GET", "/v2.1/servers/"+id+"/diagnostics", nil, 200, mv("2.48"))
	for _, k := range []string{"state", "driver", "hypervisor", "hypervisor_os", "uptime", "config_drive", "num_cpus", "num_nics",
		"num_disks", "memory_details", "cpu_details", "nic_details", "disk_details"} {
		if _, ok := d[k]; !ok {
			t.Errorf("2.48 diagnostics lack %q: %v", k, d)
		}
	}
	if len(d) != 13 {
		t.Errorf("2.48 diagnostics have %d keys, want 13: %v", len(d), d)
	}
	if d["state"] != "running" || d["num_cpus"] != 1.0 || d["num_disks"] != 1.0 ||
		d["memory_details"].(map[string]any)["maximum"] != 2048.0 {
		t.Errorf("diagnostics of an m1.small guest: %v", d)
	}
	legacy := h.json("admin", "GET", "/v2.1/servers/"+id+"/diagnostics", nil, 200)
	if legacy["memory"] != float64(2048<<10) {
		t.Errorf("legacy diagnostics %v, want memory in KiB", legacy)
	}
	h.fail("a", "GET", "/v2.1/servers/"+id+"/diagnostics", nil, 403)
	h.fail("admin", "GET", "/v2.1/servers/00000000-0000-0000-0000-000000000000/diagnostics", nil, 404)

	h.action("a", id, map[string]any{"shelve": nil}, 202)
	h.waitStatus("a", id, "SHELVED_OFFLOADED")
	h.fail("admin", "GET", "/v2.1/servers/"+id+"/diagnostics", nil, 409)
}
