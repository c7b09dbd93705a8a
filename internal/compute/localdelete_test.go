package compute_test

import (
	"bytes"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

// TestLocalDeleteReleasesPorts: a server deleted while no agent holds it
// (here shelved and offloaded) gives its ports back from the API, as
// Nova's local delete does: the port made for it is deleted, the port the
// user brought is unbound and kept. Before, both outlived the server and
// kept their subnet from being deleted.
func TestLocalDeleteReleasesPorts(t *testing.T) {
	imageURL, networkURL := peers(t)
	h := newHarness(t, func(c *computeConfig) { c.ImageURL, c.NetworkURL = imageURL, networkURL })
	h.addHost(fakeagent.Config{Host: "d1"})

	im := call(t, "a", "POST", imageURL+"/v2/images", []byte(`{"name": "tiny", "disk_format": "raw", "container_format": "bare"}`), "application/json", 201)
	img := im["id"].(string)
	call(t, "a", "PUT", imageURL+"/v2/images/"+img+"/file", bytes.Repeat([]byte{0}, 512), "application/octet-stream", 204)
	net := call(t, "a", "POST", networkURL+"/v2.0/networks", []byte(`{"network": {"name": "private"}}`), "application/json", 201)["network"].(map[string]any)
	netID := net["id"].(string)
	call(t, "a", "POST", networkURL+"/v2.0/subnets", []byte(`{"subnet": {"network_id": "`+netID+`", "cidr": "10.2.0.0/24", "ip_version": 4}}`), "application/json", 201)
	mine := call(t, "a", "POST", networkURL+"/v2.0/ports", []byte(`{"port": {"network_id": "`+netID+`", "name": "mine"}}`), "application/json", 201)["port"].(map[string]any)["id"].(string)

	srv := h.boot("a", "vm", map[string]any{"imageRef": img, "networks": []any{map[string]any{"port": mine}}})
	h.waitStatus("a", srv, "ACTIVE")
	// What a real agent does at build: bind the user's port, make none
	// other here; and a port made for an attached interface.
	call(t, "a", "PUT", networkURL+"/v2.0/ports/"+mine, []byte(`{"port": {"device_id": "`+srv+`", "device_owner": "compute:nova"}}`), "application/json", 200)
	made := call(t, "a", "POST", networkURL+"/v2.0/ports", []byte(`{"port": {"network_id": "`+netID+`", "device_id": "`+srv+`", "device_owner": "compute:nova"}}`), "application/json", 201)["port"].(map[string]any)["id"].(string)

	h.action("a", srv, map[string]any{"shelve": nil}, 202)
	h.waitStatus("a", srv, "SHELVED_OFFLOADED")
	h.json("a", "DELETE", "/v2.1/servers/"+srv, nil, 204)
	h.fail("a", "GET", "/v2.1/servers/"+srv, nil, 404) // no host: deleted at once

	call(t, "a", "GET", networkURL+"/v2.0/ports/"+made, nil, "", 404)
	kept := call(t, "a", "GET", networkURL+"/v2.0/ports/"+mine, nil, "", 200)["port"].(map[string]any)
	if kept["device_id"] != "" || kept["device_owner"] != "" {
		t.Fatalf("the user's port is still bound: %v", kept)
	}
	left := call(t, "a", "GET", networkURL+"/v2.0/ports?device_id="+srv, nil, "", 200)["ports"].([]any)
	if len(left) != 0 {
		t.Fatalf("ports of the deleted server left: %v", left)
	}
}
