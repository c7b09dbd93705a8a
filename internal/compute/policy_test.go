package compute_test

import (
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

// TestPolicyPersonas checks Nova's default personas: readers look,
// members act on their project's servers, admins do the rest; another
// project's server does not exist for a member.
func TestPolicyPersonas(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "p"})
	h.fail("ra", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "x", "imageRef": imageID, "flavorRef": "1"}}, 403)
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	// Reader: read yes, write no.
	h.json("ra", "GET", "/v2.1/servers/"+id, nil, 200)
	h.json("ra", "GET", "/v2.1/servers/"+id+"/os-instance-actions", nil, 200)
	h.fail("ra", "DELETE", "/v2.1/servers/"+id, nil, 403)
	h.fail("ra", "PUT", "/v2.1/servers/"+id, map[string]any{"server": map[string]any{"name": "n"}}, 403)
	h.fail("ra", "POST", "/v2.1/servers/"+id+"/metadata", map[string]any{"metadata": map[string]any{"k": "v"}}, 403)
	// Another project: 404 for every path, not 403.
	for _, p := range []string{"", "/metadata", "/ips", "/os-instance-actions", "/os-interface"} {
		h.fail("b", "GET", "/v2.1/servers/"+id+p, nil, 404)
	}
	h.fail("b", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-stop": nil}, 404)
	// Admin-only APIs refuse members.
	for _, p := range []string{"/v2.1/os-services", "/v2.1/os-hypervisors", "/v2.1/os-aggregates", "/v2.1/os-hosts",
		"/v2.1/os-simple-tenant-usage", "/v2.1/os-availability-zone/detail", "/v2.1/os-quota-class-sets/default"} {
		h.fail("a", "GET", p, nil, 403)
	}
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"shelveOffload": nil}, 403)
	// Admins act on any project's server and see it with all_tenants.
	h.action("admin", id, map[string]any{"os-stop": nil}, 202)
	h.waitStatus("a", id, "SHUTOFF")
	// An admin's lock is not the owner's to lift.
	h.action("admin", id, map[string]any{"lock": nil}, 202)
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"unlock": nil}, 403)
	h.action("admin", id, map[string]any{"unlock": nil}, 202)
}
