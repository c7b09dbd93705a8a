package network

import (
	"net/http"
	"strings"
	"testing"
)

func TestSubnetDefaultsAndValidation(t *testing.T) {
	h := newHarness(t)
	nid := h.network("a", nil)["id"].(string)
	sn := h.subnet("a", nid, "10.0.0.5/24", map[string]any{"dns_nameservers": []string{"8.8.8.8"}, "host_routes": []map[string]string{{"destination": "192.168.0.0/24", "nexthop": "10.0.0.9"}}})
	if sn["cidr"] != "10.0.0.0/24" || sn["gateway_ip"] != "10.0.0.1" || sn["enable_dhcp"] != true || sn["segment_id"] != nil {
		t.Fatalf("subnet %v", sn)
	}
	pools := sn["allocation_pools"].([]any)
	if len(pools) != 1 || pools[0].(map[string]any)["start"] != "10.0.0.2" || pools[0].(map[string]any)["end"] != "10.0.0.254" {
		t.Fatalf("pools %v", pools)
	}
	n := h.json("a", "GET", "/v2.0/networks/"+nid, nil, http.StatusOK)["network"].(map[string]any)
	if len(n["subnets"].([]any)) != 1 {
		t.Fatalf("network subnets %v", n["subnets"])
	}
	msg := h.fail("a", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": nid, "cidr": "10.0.0.128/25", "ip_version": 4}}, http.StatusBadRequest, "InvalidInput")
	if !strings.Contains(msg, "overlaps with another subnet") {
		t.Fatalf("overlap message %q", msg)
	}
	bad := func(attrs map[string]any, status int, typ string) {
		t.Helper()
		attrs["network_id"] = nid
		if _, ok := attrs["ip_version"]; !ok {
			attrs["ip_version"] = 4
		}
		h.fail("a", "POST", "/v2.0/subnets", map[string]any{"subnet": attrs}, status, typ)
	}
	bad(map[string]any{"cidr": "10.1.0.300/24"}, 400, "InvalidInput")
	bad(map[string]any{"cidr": "garbage"}, 400, "InvalidInput")
	bad(map[string]any{"cidr": "2001:db8::/64"}, 400, "InvalidInput")
	bad(map[string]any{"cidr": "10.2.0.0/24", "allocation_pools": []map[string]string{{"start": "10.3.0.2", "end": "10.3.0.9"}}}, 400, "OutOfBoundsAllocationPool")
	bad(map[string]any{"cidr": "10.2.0.0/24", "allocation_pools": []map[string]string{{"start": "10.2.0.9", "end": "10.2.0.2"}}}, 400, "InvalidAllocationPool")
	bad(map[string]any{"cidr": "10.2.0.0/24", "allocation_pools": []map[string]string{{"start": "10.2.0.2", "end": "10.2.0.20"}, {"start": "10.2.0.10", "end": "10.2.0.30"}}}, 409, "OverlappingAllocationPools")
	bad(map[string]any{"cidr": "10.2.0.0/24", "allocation_pools": []map[string]string{{"start": "10.2.0.1", "end": "10.2.0.20"}}}, 409, "GatewayConflictWithAllocationPools")
	bad(map[string]any{"cidr": "10.2.0.0/24", "gateway_ip": "10.2.0.255"}, 400, "InvalidInput")
	bad(map[string]any{"cidr": "10.2.0.0/24", "dns_nameservers": []string{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6"}}, 400, "DNSNameServersExhausted")
	bad(map[string]any{"cidr": "10.2.0.0/24", "ipv6_ra_mode": "slaac"}, 400, "InvalidInput")
	bad(map[string]any{}, 400, "BadRequest")
	// No gateway: the pool starts at .1.
	ng := h.subnet("a", nid, "10.9.0.0/24", map[string]any{"gateway_ip": nil})
	if ng["gateway_ip"] != nil || ng["allocation_pools"].([]any)[0].(map[string]any)["start"] != "10.9.0.1" {
		t.Fatalf("no-gateway subnet %v", ng)
	}
	// IPv6 SLAAC.
	v6 := h.subnet("a", nid, "2001:db8:1::/64", map[string]any{"ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
	if v6["gateway_ip"] != "2001:db8:1::1" || v6["ipv6_address_mode"] != "slaac" {
		t.Fatalf("v6 %v", v6)
	}
	bad(map[string]any{"cidr": "2001:db8:2::/80", "ip_version": 6, "ipv6_address_mode": "slaac"}, 400, "InvalidInput")
	bad(map[string]any{"cidr": "2001:db8:2::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "dhcpv6-stateful"}, 400, "InvalidInput")
	// A SLAAC subnet goes even with ports on it; they lose that address.
	v6net := h.network("a", nil)["id"].(string)
	slaac := h.subnet("a", v6net, "2001:db8:9::/64", map[string]any{"ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
	p6 := h.port("a", v6net, nil)
	if len(fixedIPs(p6)) != 1 {
		t.Fatalf("SLAAC port %v", p6)
	}
	h.json("a", "DELETE", "/v2.0/subnets/"+slaac["id"].(string), nil, http.StatusNoContent)
	if left := h.json("a", "GET", "/v2.0/ports/"+p6["id"].(string), nil, http.StatusOK)["port"].(map[string]any); len(fixedIPs(left)) != 0 || left["revision_number"] == p6["revision_number"] {
		t.Fatalf("port after its SLAAC subnet went %v", left)
	}
	h.fail("a", "DELETE", "/v2.0/networks/"+v6net, nil, http.StatusConflict, "NetworkInUse")
	// Update.
	id := sn["id"].(string)
	u := h.json("a", "PUT", "/v2.0/subnets/"+id, map[string]any{"subnet": map[string]any{"name": "s", "allocation_pools": []map[string]string{{"start": "10.0.0.100", "end": "10.0.0.200"}}}}, http.StatusOK)["subnet"].(map[string]any)
	if u["name"] != "s" || u["allocation_pools"].([]any)[0].(map[string]any)["start"] != "10.0.0.100" {
		t.Fatalf("updated %v", u)
	}
	h.fail("a", "PUT", "/v2.0/subnets/"+id, map[string]any{"subnet": map[string]any{"cidr": "10.5.0.0/24"}}, http.StatusBadRequest, "")
	h.fail("b", "GET", "/v2.0/subnets/"+id, nil, http.StatusNotFound, "SubnetNotFound")
	// Other projects cannot add subnets to A's network.
	h.fail("b", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": nid, "cidr": "10.7.0.0/24", "ip_version": 4}}, http.StatusNotFound, "NetworkNotFound")
	h.json("a", "DELETE", "/v2.0/subnets/"+id, nil, http.StatusNoContent)
}

func TestSubnetPools(t *testing.T) {
	h := newHarness(t)
	pool := h.create("a", "subnetpools", "subnetpool", map[string]any{"name": "p", "prefixes": []string{"10.10.0.0/16"}, "default_prefixlen": 24})
	if pool["ip_version"] != float64(4) || pool["min_prefixlen"] != float64(8) || pool["max_prefixlen"] != float64(32) {
		t.Fatalf("pool %v", pool)
	}
	nid := h.network("a", nil)["id"].(string)
	s1 := h.subnet("a", nid, "", map[string]any{"subnetpool_id": pool["id"]})
	s2 := h.subnet("a", h.network("a", nil)["id"].(string), "", map[string]any{"subnetpool_id": pool["id"], "prefixlen": 26})
	if s1["cidr"] != "10.10.0.0/24" || s2["cidr"] != "10.10.1.0/26" || s1["subnetpool_id"] != pool["id"] {
		t.Fatalf("allocated %v %v", s1["cidr"], s2["cidr"])
	}
	h.fail("a", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": nid, "ip_version": 4, "subnetpool_id": pool["id"], "prefixlen": 4}}, http.StatusBadRequest, "MinPrefixSubnetAllocationError")
	h.fail("a", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": nid, "ip_version": 4, "subnetpool_id": pool["id"], "cidr": "10.10.0.0/25"}}, http.StatusBadRequest, "")
	h.fail("a", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"prefixes": []string{"10.0.0.0/8", "2001:db8::/32"}}}, http.StatusBadRequest, "PrefixVersionMismatch")
	h.fail("a", "DELETE", "/v2.0/subnetpools/"+pool["id"].(string), nil, http.StatusConflict, "SubnetPoolInUse")
	h.fail("b", "GET", "/v2.0/subnetpools/"+pool["id"].(string), nil, http.StatusNotFound, "SubnetPoolNotFound")
}
