package compute_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
	"github.com/nimbus-cloud/nimbus/internal/image"
	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/network"
	"github.com/nimbus-cloud/nimbus/internal/policy"
)

// peers starts real image and networking services beside the compute
// service, sharing its fake tokens, so the proxies and lookups are
// tested against the APIs they call.
func peers(t *testing.T) (imageURL, networkURL string) {
	t.Helper()
	ctx := context.Background()
	db := sqliteDB(t)
	netEnf, err := policy.NewEnforcer(network.DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	netAPI := &api.Service{Name: "network", Errors: network.Errors, Policy: api.PolicyAuthorizer{Enforcer: netEnf}, Log: quietLog(), Tokens: tokens}
	n, err := network.New(ctx, network.Config{}, db, netAPI, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ns := httptest.NewServer(n.Handler())
	t.Cleanup(ns.Close)

	imgEnf, err := policy.NewEnforcer(image.DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	imgAPI := &api.Service{Name: "image", Errors: image.Errors, ErrorsFor: image.ErrorsFor, Policy: api.PolicyAuthorizer{Enforcer: imgEnf}, Log: quietLog(), Tokens: tokens}
	fs, err := imagestore.NewFilesystem("file", filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.New(ctx, image.Config{Stores: map[string]imagestore.Store{"file": fs}, DefaultStore: "file", StagingDir: t.TempDir()}, db, imgAPI, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(img.Close)
	is := httptest.NewServer(img.Handler())
	t.Cleanup(is.Close)
	return is.URL, ns.URL
}

// call makes a request to another service of the test cloud.
func call(t *testing.T, token, method, url string, body []byte, ctype string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("X-Auth-Token", token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, buf.String())
	}
	_ = jsonUnmarshal(buf.Bytes(), &out)
	return out
}

func TestProxiesAgainstRealServices(t *testing.T) {
	imageURL, networkURL := peers(t)
	h := newHarness(t, func(c *computeConfig) { c.ImageURL, c.NetworkURL = imageURL, networkURL })
	h.addHost(fakeagent.Config{Host: "p1"})

	// An image in the image service, active with a little data.
	im := call(t, "a", "POST", imageURL+"/v2/images", []byte(`{"name": "tiny", "disk_format": "raw", "container_format": "bare", "os_distro": "cirros"}`), "application/json", 201)
	img := im["id"].(string)
	call(t, "a", "PUT", imageURL+"/v2/images/"+img+"/file", bytes.Repeat([]byte{0}, 4096), "application/octet-stream", 204)

	list := h.json("a", "GET", "/v2.1/images/detail", nil, 200)["images"].([]any)
	if len(list) != 1 {
		t.Fatalf("images %v", list)
	}
	v := list[0].(map[string]any)
	if v["status"] != "ACTIVE" || v["progress"] != 100.0 || v["metadata"].(map[string]any)["os_distro"] != "cirros" || v["OS-EXT-IMG-SIZE:size"] != 4096.0 {
		t.Fatalf("image view %v", v)
	}
	h.json("a", "GET", "/v2.1/images/"+img, nil, 200)
	h.fail("a", "GET", "/v2.1/images/"+img, nil, 404, mv("2.36"))
	h.fail("a", "GET", "/v2.1/images/00000000-0000-0000-0000-000000000000", nil, 404)
	md := h.json("a", "POST", "/v2.1/images/"+img+"/metadata", map[string]any{"metadata": map[string]any{"role": "web"}}, 200)["metadata"].(map[string]any)
	if md["role"] != "web" || md["os_distro"] != "cirros" {
		t.Fatalf("image metadata %v", md)
	}
	h.json("a", "PUT", "/v2.1/images/"+img+"/metadata/role", map[string]any{"meta": map[string]any{"role": "db"}}, 200)
	if got := h.json("a", "GET", "/v2.1/images/"+img+"/metadata/role", nil, 200)["meta"].(map[string]any)["role"]; got != "db" {
		t.Fatalf("meta %v", got)
	}
	h.json("a", "DELETE", "/v2.1/images/"+img+"/metadata/role", nil, 204)
	h.fail("a", "GET", "/v2.1/images/"+img+"/metadata/role", nil, 404)

	// Servers are checked against the real image and networks.
	h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "x", "imageRef": "00000000-0000-0000-0000-000000000000", "flavorRef": "1"}}, 400)
	net := call(t, "a", "POST", networkURL+"/v2.0/networks", []byte(`{"network": {"name": "private"}}`), "application/json", 201)["network"].(map[string]any)
	call(t, "a", "POST", networkURL+"/v2.0/subnets", []byte(`{"subnet": {"network_id": "`+net["id"].(string)+`", "cidr": "10.1.0.0/24", "ip_version": 4}}`), "application/json", 201)
	srv := h.boot("a", "web", map[string]any{"imageRef": img, "networks": []any{map[string]any{"uuid": net["id"]}}})
	h.waitStatus("a", srv, "ACTIVE")
	// The agent's port for the server, as a real agent would create it.
	call(t, "a", "POST", networkURL+"/v2.0/ports", []byte(`{"port": {"network_id": "`+net["id"].(string)+`", "device_id": "`+srv+`", "device_owner": "compute:nova"}}`), "application/json", 201)

	// Nova's multinic actions (up to 2.43) add an address to the
	// server's port on the network and take one off it.
	portIPs := func() []string {
		ports := call(t, "a", "GET", networkURL+"/v2.0/ports?device_id="+srv, nil, "", 200)["ports"].([]any)
		var ips []string
		for _, x := range ports[0].(map[string]any)["fixed_ips"].([]any) {
			ips = append(ips, x.(map[string]any)["ip_address"].(string))
		}
		return ips
	}
	before := portIPs()
	h.action("a", srv, map[string]any{"addFixedIp": map[string]any{"networkId": net["id"]}}, 202)
	after := portIPs()
	if len(after) != len(before)+1 {
		t.Fatalf("addFixedIp: port addresses %v, then %v", before, after)
	}
	added := after[len(after)-1]
	h.action("a", srv, map[string]any{"addFixedIp": map[string]any{"networkId": "00000000-0000-4000-8000-000000000000"}}, 400)
	h.action("a", srv, map[string]any{"addFixedIp": map[string]any{}}, 400)
	h.action("a", srv, map[string]any{"removeFixedIp": map[string]any{"address": "192.0.2.99"}}, 400)
	h.action("a", srv, map[string]any{"removeFixedIp": map[string]any{"address": "not-an-ip"}}, 400)
	h.action("a", srv, map[string]any{"removeFixedIp": map[string]any{"address": added}}, 202)
	if got := portIPs(); !slices.Equal(got, before) {
		t.Fatalf("removeFixedIp %s: port addresses %v, want %v", added, got, before)
	}
	h.action("a", srv, map[string]any{"addFixedIp": map[string]any{"networkId": net["id"]}}, 404, mv("2.44"))

	// Security groups through the compute API.
	sg := h.json("a", "POST", "/v2.1/os-security-groups", map[string]any{"security_group": map[string]any{"name": "web", "description": "web servers"}}, 200)["security_group"].(map[string]any)
	sgID := sg["id"].(string)
	rule := h.json("a", "POST", "/v2.1/os-security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"parent_group_id": sgID, "ip_protocol": "tcp", "from_port": 80, "to_port": 80, "cidr": "0.0.0.0/0"}}, 200)["security_group_rule"].(map[string]any)
	if rule["from_port"] != 80.0 || rule["ip_range"].(map[string]any)["cidr"] != "0.0.0.0/0" {
		t.Fatalf("rule %v", rule)
	}
	h.fail("a", "POST", "/v2.1/os-security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"parent_group_id": "tempest-non_int_id", "ip_protocol": "tcp", "from_port": 22, "to_port": 22}}, 400)
	h.fail("a", "POST", "/v2.1/os-security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"parent_group_id": sgID, "ip_protocol": "tcp", "from_port": 80, "to_port": 80, "cidr": "0.0.0.0/0"}}, 400)
	h.fail("a", "POST", "/v2.1/os-security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"parent_group_id": sgID, "ip_protocol": "gre", "from_port": 1, "to_port": 2}}, 400)
	got := h.json("a", "GET", "/v2.1/os-security-groups/"+sgID, nil, 200)["security_group"].(map[string]any)
	if len(got["rules"].([]any)) != 1 || got["tenant_id"] != projA {
		t.Fatalf("group %v", got)
	}
	if n := len(h.json("a", "GET", "/v2.1/os-security-groups", nil, 200)["security_groups"].([]any)); n < 2 {
		t.Fatalf("%d groups (want default and web)", n)
	}
	h.action("a", srv, map[string]any{"addSecurityGroup": map[string]any{"name": "web"}}, 202)
	// A server asking for a group the project does not have is a 400.
	h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "x", "imageRef": img, "flavorRef": "1",
		"networks": []any{map[string]any{"uuid": net["id"]}}, "security_groups": []any{map[string]any{"name": "nosuchgroup"}}}}, 400)
	sgs := h.json("a", "GET", "/v2.1/servers/"+srv+"/os-security-groups", nil, 200)["security_groups"].([]any)
	names := map[string]bool{}
	for _, g := range sgs {
		names[g.(map[string]any)["name"].(string)] = true
	}
	if !names["web"] {
		t.Fatalf("server groups %v", sgs)
	}
	// The server's view follows its ports' groups.
	viewGroups := func() map[string]bool {
		out := map[string]bool{}
		list, _ := h.server("a", srv)["security_groups"].([]any)
		for _, g := range list {
			out[g.(map[string]any)["name"].(string)] = true
		}
		return out
	}
	if !viewGroups()["web"] {
		t.Fatalf("server view lacks web: %v", h.server("a", srv)["security_groups"])
	}
	h.action("a", srv, map[string]any{"removeSecurityGroup": map[string]any{"name": "web"}}, 202)
	if viewGroups()["web"] {
		t.Fatalf("server view keeps web: %v", h.server("a", srv)["security_groups"])
	}
	h.fail("a", "POST", "/v2.1/servers/"+srv+"/action", map[string]any{"removeSecurityGroup": map[string]any{"name": "web"}}, 404)
	h.json("a", "DELETE", "/v2.1/os-security-group-rules/"+rule["id"].(string), nil, 202)
	h.json("a", "PUT", "/v2.1/os-security-groups/"+sgID, map[string]any{"security_group": map[string]any{"name": "web2", "description": "x"}}, 200)
	h.json("a", "DELETE", "/v2.1/os-security-groups/"+sgID, nil, 202)
	h.fail("a", "GET", "/v2.1/os-security-groups/"+sgID, nil, 404)
	h.fail("a", "GET", "/v2.1/os-security-groups", nil, 404, mv("2.36"))

	// Floating IPs from the external network.
	ext := call(t, "admin", "POST", networkURL+"/v2.0/networks", []byte(`{"network": {"name": "public", "router:external": true}}`), "application/json", 201)["network"].(map[string]any)
	call(t, "admin", "POST", networkURL+"/v2.0/subnets", []byte(`{"subnet": {"network_id": "`+ext["id"].(string)+`", "cidr": "203.0.113.0/24", "ip_version": 4}}`), "application/json", 201)
	router := call(t, "a", "POST", networkURL+"/v2.0/routers", []byte(`{"router": {"name": "r", "external_gateway_info": {"network_id": "`+ext["id"].(string)+`"}}}`), "application/json", 201)["router"].(map[string]any)
	subnets := call(t, "a", "GET", networkURL+"/v2.0/subnets?network_id="+net["id"].(string), nil, "", 200)["subnets"].([]any)
	call(t, "a", "PUT", networkURL+"/v2.0/routers/"+router["id"].(string)+"/add_router_interface", []byte(`{"subnet_id": "`+subnets[0].(map[string]any)["id"].(string)+`"}`), "application/json", 200)
	pools := h.json("a", "GET", "/v2.1/os-floating-ip-pools", nil, 200)["floating_ip_pools"].([]any)
	if len(pools) != 1 || pools[0].(map[string]any)["name"] != "public" {
		t.Fatalf("pools %v", pools)
	}
	fip := h.json("a", "POST", "/v2.1/os-floating-ips", map[string]any{"pool": "public"}, 200)["floating_ip"].(map[string]any)
	if fip["pool"] != "public" || fip["instance_id"] != nil {
		t.Fatalf("floating ip %v", fip)
	}
	h.action("a", srv, map[string]any{"addFloatingIp": map[string]any{"address": fip["ip"]}}, 202)
	shown := h.json("a", "GET", "/v2.1/os-floating-ips/"+fip["id"].(string), nil, 200)["floating_ip"].(map[string]any)
	if shown["instance_id"] != srv || shown["fixed_ip"] == nil {
		t.Fatalf("associated %v", shown)
	}
	if n := len(h.json("a", "GET", "/v2.1/os-floating-ips", nil, 200)["floating_ips"].([]any)); n != 1 {
		t.Fatalf("%d floating ips", n)
	}
	h.action("a", srv, map[string]any{"removeFloatingIp": map[string]any{"address": fip["ip"]}}, 202)
	h.fail("a", "POST", "/v2.1/servers/"+srv+"/action", map[string]any{"removeFloatingIp": map[string]any{"address": fip["ip"]}}, 409)
	h.fail("a", "POST", "/v2.1/servers/"+srv+"/action", map[string]any{"addFloatingIp": map[string]any{"address": fip["ip"]}}, 404, mv("2.44"))
	// A second floating IP for a fixed IP that has one is a 400 (Nova
	// turns the networking service's refusal into a 400), and a floating
	// IP on another server's port is not this server's to remove (409).
	h.action("a", srv, map[string]any{"addFloatingIp": map[string]any{"address": fip["ip"]}}, 202)
	fip2 := h.json("a", "POST", "/v2.1/os-floating-ips", map[string]any{"pool": "public"}, 200)["floating_ip"].(map[string]any)
	h.fail("a", "POST", "/v2.1/servers/"+srv+"/action", map[string]any{"addFloatingIp": map[string]any{"address": fip2["ip"]}}, 400)
	other := call(t, "a", "POST", networkURL+"/v2.0/ports", []byte(`{"port": {"network_id": "`+net["id"].(string)+`", "device_id": "d0d0d0d0-0000-4000-8000-000000000000", "device_owner": "compute:nova"}}`), "application/json", 201)["port"].(map[string]any)
	h.action("a", srv, map[string]any{"removeFloatingIp": map[string]any{"address": fip["ip"]}}, 202)
	call(t, "a", "PUT", networkURL+"/v2.0/floatingips/"+fip2["id"].(string), []byte(`{"floatingip": {"port_id": "`+other["id"].(string)+`"}}`), "application/json", 200)
	h.fail("a", "POST", "/v2.1/servers/"+srv+"/action", map[string]any{"removeFloatingIp": map[string]any{"address": fip2["ip"]}}, 409)
	if shown := h.json("a", "GET", "/v2.1/os-floating-ips/"+fip2["id"].(string), nil, 200)["floating_ip"].(map[string]any); shown["fixed_ip"] == nil {
		t.Fatalf("floating IP of another server disassociated: %v", shown)
	}
	call(t, "a", "PUT", networkURL+"/v2.0/floatingips/"+fip2["id"].(string), []byte(`{"floatingip": {"port_id": null}}`), "application/json", 200)
	h.json("a", "DELETE", "/v2.1/os-floating-ips/"+fip2["id"].(string), nil, 202)
	h.json("a", "DELETE", "/v2.1/os-floating-ips/"+fip["id"].(string), nil, 202)
	h.fail("a", "GET", "/v2.1/os-floating-ips/"+fip["id"].(string), nil, 404)

	// Interfaces: attach a new port on the network, list, detach (the
	// port the API created is deleted; the agent was told both times).
	att := h.json("a", "POST", "/v2.1/servers/"+srv+"/os-interface", map[string]any{"interfaceAttachment": map[string]any{"net_id": net["id"]}}, 200)["interfaceAttachment"].(map[string]any)
	portID := att["port_id"].(string)
	if att["net_id"] != net["id"] || len(att["fixed_ips"].([]any)) != 1 {
		t.Fatalf("attachment %v", att)
	}
	ifs := h.json("a", "GET", "/v2.1/servers/"+srv+"/os-interface", nil, 200)["interfaceAttachments"].([]any)
	if len(ifs) != 2 {
		t.Fatalf("interfaces %v", ifs)
	}
	h.json("a", "GET", "/v2.1/servers/"+srv+"/os-interface/"+portID, nil, 200)
	h.fail("a", "POST", "/v2.1/servers/"+srv+"/os-interface", map[string]any{"interfaceAttachment": map[string]any{"net_id": net["id"], "port_id": portID}}, 400)
	h.fail("b", "GET", "/v2.1/servers/"+srv+"/os-interface", nil, 404)
	h.eventually("attach settled", func() bool { return h.server("a", srv)["OS-EXT-STS:task_state"] == nil })
	h.json("a", "DELETE", "/v2.1/servers/"+srv+"/os-interface/"+portID, nil, 202)
	call(t, "a", "GET", networkURL+"/v2.0/ports/"+portID, nil, "", 404)
	h.fail("a", "DELETE", "/v2.1/servers/"+srv+"/os-interface/"+portID, nil, 404)
	// The detach reaches the agent over the bus after the 202.
	ops := map[string]int{}
	h.eventually("the agent was told to attach and detach", func() bool {
		ops = map[string]int{}
		for _, c := range h.agents["p1"].Commands() {
			ops[c.Op]++
		}
		return ops["attach_interface"] == 1 && ops["detach_interface"] == 1
	})

	// Snapshots land in the real image service.
	snap := h.action("a", srv, map[string]any{"createImage": map[string]any{"name": "snap"}}, 202, mv("2.45"))["image_id"].(string)
	sv := h.json("a", "GET", "/v2.1/images/"+snap, nil, 200)["image"].(map[string]any)
	if sv["status"] != "SAVING" || sv["server"].(map[string]any)["id"] != srv {
		t.Fatalf("snapshot image %v", sv)
	}
	h.json("a", "DELETE", "/v2.1/images/"+snap, nil, 204)

	// Tenant networks and external events.
	tn := h.json("a", "GET", "/v2.1/os-tenant-networks", nil, 200)["networks"].([]any)
	if len(tn) == 0 {
		t.Fatalf("tenant networks %v", tn)
	}
	one := h.json("a", "GET", "/v2.1/os-tenant-networks/"+net["id"].(string), nil, 200)["network"].(map[string]any)
	if one["label"] != "private" || one["cidr"] != "10.1.0.0/24" {
		t.Fatalf("tenant network %v", one)
	}
	// os-networks (nova-network's API, answered from the networking
	// service before 2.36).
	all := h.json("admin", "GET", "/v2.1/os-networks", nil, 200)["networks"].([]any)
	if len(all) == 0 {
		t.Fatalf("os-networks %v", all)
	}
	nw := h.json("admin", "GET", "/v2.1/os-networks/"+net["id"].(string), nil, 200)["network"].(map[string]any)
	if nw["label"] != "private" || nw["cidr"] != "10.1.0.0/24" {
		t.Fatalf("os-network %v", nw)
	}
	if _, ok := nw["bridge"]; !ok {
		t.Fatalf("os-network lacks the admin fields: %v", nw)
	}
	h.fail("admin", "GET", "/v2.1/os-networks/00000000-0000-4000-8000-000000000000", nil, 404)
	h.fail("admin", "GET", "/v2.1/os-networks", nil, 404, mv("2.36"))
	ev := h.json("admin", "POST", "/v2.1/os-server-external-events", map[string]any{"events": []any{
		map[string]any{"name": "network-vif-plugged", "server_uuid": srv, "tag": "p"},
		map[string]any{"name": "network-changed", "server_uuid": "00000000-0000-0000-0000-000000000000"},
	}}, 200)["events"].([]any)
	if ev[0].(map[string]any)["code"] != 200.0 || ev[1].(map[string]any)["code"] != 404.0 {
		t.Fatalf("events %v", ev)
	}
	h.fail("a", "POST", "/v2.1/os-server-external-events", map[string]any{"events": []any{map[string]any{"name": "network-changed", "server_uuid": srv}}}, 403)
	h.fail("admin", "POST", "/v2.1/os-server-external-events", map[string]any{"events": []any{map[string]any{"name": "power-update", "server_uuid": srv}}}, 400)

	// Backups rotate: with rotation 2, three backups leave two.
	for range 3 {
		h.eventually("no task", func() bool { return h.server("a", srv)["OS-EXT-STS:task_state"] == nil })
		h.action("a", srv, map[string]any{"createBackup": map[string]any{"name": "bk", "backup_type": "daily", "rotation": 2}}, 202, mv("2.45"))
	}
	backups := call(t, "a", "GET", imageURL+"/v2/images?image_type=backup", nil, "", 200)["images"].([]any)
	if len(backups) != 2 {
		t.Fatalf("%d backups after rotation", len(backups))
	}
}
