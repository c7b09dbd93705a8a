package network

import (
	"context"
	"net/http"
	"slices"
	"testing"
)

// TestPortStatusFollowsTheAgent: a port bound to a host is DOWN until the
// host's agent reports it wired, then ACTIVE; DOWN again when a later
// report leaves it out; an administratively down port stays DOWN; the
// service's own ports keep their status; other hosts' ports are untouched.
func TestPortStatusFollowsTheAgent(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	n := h.network("a", nil)["id"].(string)
	h.subnet("a", n, "10.0.0.0/24", nil)
	port := func(attrs map[string]any) string {
		attrs["network_id"] = n
		return h.create("admin", "ports", "port", attrs)["id"].(string)
	}
	vm := port(map[string]any{"binding:host_id": "host1", "device_owner": "compute:nova", "tenant_id": projA})
	off := port(map[string]any{"binding:host_id": "host1", "device_owner": "compute:nova", "admin_state_up": false, "tenant_id": projA})
	elsewhere := port(map[string]any{"binding:host_id": "host2", "device_owner": "compute:nova", "tenant_id": projA})
	dhcp := port(map[string]any{"binding:host_id": "host1", "device_owner": "network:dhcp", "tenant_id": projA})
	status := func(id string) (string, float64) {
		p := h.json("admin", "GET", "/v2.0/ports/"+id, nil, http.StatusOK)["port"].(map[string]any)
		return p["status"].(string), p["revision_number"].(float64)
	}
	if s, _ := status(vm); s != "DOWN" {
		t.Fatalf("an unplugged port is %s", s)
	}
	_, rev := status(vm)

	changed, err := h.svc.ReportPortStatus(ctx, PortStatusReport{Host: "host1", Up: []string{vm, off, dhcp}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changed, []string{vm}) {
		t.Fatalf("changed %v, want only %s", changed, vm)
	}
	if s, r := status(vm); s != "ACTIVE" || r != rev+1 {
		t.Fatalf("wired port: %s revision %v (was %v)", s, r, rev)
	}
	if s, _ := status(off); s != "DOWN" {
		t.Fatalf("administratively down port: %s", s)
	}
	if s, _ := status(dhcp); s != "ACTIVE" {
		t.Fatalf("DHCP port: %s", s)
	}
	// A repeated report changes nothing.
	if changed, _ := h.svc.ReportPortStatus(ctx, PortStatusReport{Host: "host1", Up: []string{vm, off, dhcp}}); len(changed) != 0 {
		t.Fatalf("repeated report changed %v", changed)
	}
	// Unplugged: the next report of host1 leaves it out.
	if _, err := h.svc.ReportPortStatus(ctx, PortStatusReport{Host: "host1"}); err != nil {
		t.Fatal(err)
	}
	if s, _ := status(vm); s != "DOWN" {
		t.Fatalf("unplugged port: %s", s)
	}
	if s, _ := status(dhcp); s != "ACTIVE" {
		t.Fatalf("the service's own port changed to %s", s)
	}
	if s, _ := status(elsewhere); s != "DOWN" {
		t.Fatalf("another host's port: %s", s)
	}
	if _, err := h.svc.ReportPortStatus(ctx, PortStatusReport{}); err == nil {
		t.Fatal("a report without a host was accepted")
	}
}
