package compute_test

import (
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

func TestShelveRescueBackup(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "s1"})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")

	// Shelving offloads: the claim is released and the host forgotten.
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"unshelve": nil}, 409)
	h.action("a", id, map[string]any{"shelve": nil}, 202)
	s := h.waitStatus("admin", id, "SHELVED_OFFLOADED")
	if s["OS-EXT-SRV-ATTR:host"] != nil {
		t.Fatalf("offloaded server still on %v", s["OS-EXT-SRV-ATTR:host"])
	}
	st := h.json("admin", "GET", "/v2.1/os-hypervisors/statistics", nil, 200)["hypervisor_statistics"].(map[string]any)
	if st["memory_mb_used"] != 0.0 {
		t.Fatalf("claim kept while shelved: %v", st)
	}
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-start": nil}, 409)
	h.action("admin", id, map[string]any{"shelveOffload": nil}, 202)
	// Unshelve schedules again and builds from the shelved image.
	h.action("a", id, map[string]any{"unshelve": nil}, 202)
	h.waitStatus("a", id, "ACTIVE")
	var shelveImage, unshelveImage string
	for _, c := range h.agents["s1"].Commands() {
		switch {
		case c.Op == compute.OpShelve:
			shelveImage = c.ImageID
		case c.Op == compute.OpBuild && c.ImageID != "":
			unshelveImage = c.ImageID
		}
	}
	if shelveImage == "" || shelveImage != unshelveImage {
		t.Fatalf("shelve image %q, unshelve built from %q", shelveImage, unshelveImage)
	}
	acts := h.json("a", "GET", "/v2.1/servers/"+id+"/os-instance-actions", nil, 200)["instanceActions"].([]any)
	if acts[0].(map[string]any)["action"] != "unshelve" {
		t.Fatalf("actions %v", acts)
	}

	// Rescue answers the rescue password; unrescue returns to ACTIVE.
	res := h.action("a", id, map[string]any{"rescue": map[string]any{"adminPass": "secret"}}, 200)
	if res["adminPass"] != "secret" {
		t.Fatalf("rescue %v", res)
	}
	h.waitStatus("a", id, "RESCUE")
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"reboot": map[string]any{"type": "SOFT"}}, 409)
	h.action("a", id, map[string]any{"unrescue": nil}, 202)
	h.waitStatus("a", id, "ACTIVE")
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"unrescue": nil}, 409)

	// Backups: a Location before 2.45, validation of the rotation.
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"createBackup": map[string]any{"name": "b", "backup_type": "daily"}}, 400)
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"createBackup": map[string]any{"name": "b", "backup_type": "daily", "rotation": -1}}, 400)
	code, _, hdr := h.do("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"createBackup": map[string]any{"name": "b", "backup_type": "daily", "rotation": 2}})
	if code != 202 || hdr.Get("Location") == "" {
		t.Fatalf("createBackup %d %v", code, hdr)
	}
	h.eventually("backup done", func() bool { return h.server("a", id)["OS-EXT-STS:task_state"] == nil })
	// Server password is empty and can be cleared.
	if pw := h.json("a", "GET", "/v2.1/servers/"+id+"/os-server-password", nil, 200)["password"]; pw != "" {
		t.Fatalf("password %v", pw)
	}
	h.json("a", "DELETE", "/v2.1/servers/"+id+"/os-server-password", nil, 204)
	h.fail("b", "GET", "/v2.1/servers/"+id+"/os-server-password", nil, 404)
}
