package network

import (
	"net/http"
	"testing"
)

func TestRoutersAndFloatingIPs(t *testing.T) {
	h := newHarnessOn(t, testDB(t), Config{PhysicalNetworks: []string{"public"}})
	ext := h.network("admin", map[string]any{"name": "public", "router:external": true, "provider:network_type": "flat", "provider:physical_network": "public"})
	extID := ext["id"].(string)
	h.subnet("admin", extID, "203.0.113.0/24", map[string]any{"enable_dhcp": false})
	nid := h.network("a", nil)["id"].(string)
	sn := h.subnet("a", nid, "10.0.0.0/24", nil)
	sid := sn["id"].(string)
	vm := h.port("a", nid, map[string]any{"device_owner": "compute:nova"})

	// A floating IP needs an external network...
	h.fail("a", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": nid}}, http.StatusBadRequest, "BadRequest")
	// ...and a router between the port and that network.
	h.fail("a", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": extID, "port_id": vm["id"]}}, http.StatusNotFound, "ExternalGatewayForFloatingIPNotFound")

	rt := h.create("a", "routers", "router", map[string]any{"name": "r1", "external_gateway_info": map[string]any{"network_id": extID}})
	rid := rt["id"].(string)
	gw := rt["external_gateway_info"].(map[string]any)
	if gw["network_id"] != extID || gw["enable_snat"] != true || len(gw["external_fixed_ips"].([]any)) != 1 {
		t.Fatalf("gateway %v", gw)
	}
	h.fail("a", "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{"network_id": extID, "enable_snat": false}}}, http.StatusForbidden, "")
	h.fail("a", "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{"network_id": nid}}}, http.StatusBadRequest, "")
	iface := h.json("a", "PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": sid}, http.StatusOK)
	if iface["subnet_id"] != sid || iface["port_id"] == nil || iface["id"] != rid {
		t.Fatalf("interface %v", iface)
	}
	h.fail("a", "PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": sid}, http.StatusBadRequest, "")
	ip := h.json("a", "GET", "/v2.0/ports/"+iface["port_id"].(string), nil, http.StatusOK)["port"].(map[string]any)
	if fixedIPs(ip)[0] != "10.0.0.1" || ip["device_owner"] != "network:router_interface" {
		t.Fatalf("interface port %v", ip)
	}
	h.fail("a", "DELETE", "/v2.0/ports/"+ip["id"].(string), nil, http.StatusConflict, "ServicePortInUse")

	// Extra routes must go through an attached subnet.
	h.fail("a", "PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"routes": []map[string]string{{"destination": "192.168.0.0/24", "nexthop": "172.16.0.1"}}}}, http.StatusBadRequest, "InvalidRoutes")
	u := h.json("a", "PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"routes": []map[string]string{{"destination": "192.168.0.0/24", "nexthop": "10.0.0.9"}}}}, http.StatusOK)["router"].(map[string]any)
	if len(u["routes"].([]any)) != 1 {
		t.Fatalf("routes %v", u["routes"])
	}
	h.fail("a", "PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"subnet_id": sid}, http.StatusConflict, "RouterInterfaceInUseByRoute")
	h.json("a", "PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"routes": []any{}}}, http.StatusOK)

	fip := h.create("a", "floatingips", "floatingip", map[string]any{"floating_network_id": extID, "port_id": vm["id"]})
	if fip["router_id"] != rid || fip["fixed_ip_address"] != fixedIPs(vm)[0] || fip["status"] != "ACTIVE" || fip["floating_ip_address"] == nil {
		t.Fatalf("fip %v", fip)
	}
	fid := fip["id"].(string)
	h.fail("a", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": extID, "port_id": vm["id"]}}, http.StatusConflict, "FloatingIPPortAlreadyAssociated")
	h.fail("a", "PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"subnet_id": sid}, http.StatusConflict, "RouterInterfaceInUseByFloatingIP")
	h.fail("a", "PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{}}}, http.StatusConflict, "RouterExternalGatewayInUseByFloatingIp")
	d := h.json("a", "PUT", "/v2.0/floatingips/"+fid, map[string]any{"floatingip": map[string]any{"port_id": nil}}, http.StatusOK)["floatingip"].(map[string]any)
	if d["port_id"] != nil || d["router_id"] != nil || d["status"] != "DOWN" {
		t.Fatalf("disassociated %v", d)
	}
	h.json("a", "PUT", "/v2.0/floatingips/"+fid, map[string]any{"floatingip": map[string]any{"port_id": vm["id"]}}, http.StatusOK)
	h.fail("b", "GET", "/v2.0/floatingips/"+fid, nil, http.StatusNotFound, "FloatingIPNotFound")
	h.fail("b", "GET", "/v2.0/routers/"+rid, nil, http.StatusNotFound, "RouterNotFound")

	// Deleting the port disassociates; the router keeps its interface
	// until removed, and a router with interfaces cannot be deleted.
	h.json("a", "DELETE", "/v2.0/ports/"+vm["id"].(string), nil, http.StatusNoContent)
	if f := h.json("a", "GET", "/v2.0/floatingips/"+fid, nil, http.StatusOK)["floatingip"].(map[string]any); f["port_id"] != nil {
		t.Fatalf("floating IP still on deleted port %v", f)
	}
	h.fail("a", "DELETE", "/v2.0/routers/"+rid, nil, http.StatusConflict, "RouterInUse")
	h.json("a", "PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"subnet_id": sid}, http.StatusOK)
	h.json("a", "DELETE", "/v2.0/routers/"+rid, nil, http.StatusNoContent)
	// The external network goes with its floating IPs (their ports are
	// the network's own) once no router gateway uses it.
	h.json("admin", "DELETE", "/v2.0/networks/"+extID, nil, http.StatusNoContent)
	h.fail("a", "GET", "/v2.0/floatingips/"+fid, nil, http.StatusNotFound, "FloatingIPNotFound")
}

// The dvr extension's distributed flag is the admin's to set and see, and
// changes only while the router is administratively down.
func TestDistributedRouters(t *testing.T) {
	h := newHarness(t)
	dvr := h.create("admin", "routers", "router", map[string]any{"name": "d", "distributed": true})
	if dvr["distributed"] != true {
		t.Fatalf("distributed router %v", dvr)
	}
	cvr := h.create("a", "routers", "router", map[string]any{"name": "c", "external_gateway_info": map[string]any{}})
	if _, shown := cvr["distributed"]; shown || cvr["external_gateway_info"] != nil {
		t.Fatalf("member's router %v", cvr)
	}
	rid := cvr["id"].(string)
	if got := h.json("admin", "GET", "/v2.0/routers/"+rid, nil, http.StatusOK)["router"].(map[string]any); got["distributed"] != false {
		t.Fatalf("admin's view %v", got)
	}
	h.fail("a", "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"distributed": true}}, http.StatusForbidden, "PolicyNotAuthorized")
	h.fail("admin", "PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"distributed": true}}, http.StatusBadRequest, "BadRequest")
	h.fail("admin", "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{"enable_snat": true}}}, http.StatusBadRequest, "InvalidInput")
	up := h.json("admin", "PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"admin_state_up": false, "distributed": true}}, http.StatusOK)["router"].(map[string]any)
	if up["distributed"] != true {
		t.Fatalf("upgraded router %v", up)
	}
}
