package network

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestDefaultSecurityGroup(t *testing.T) {
	h := newHarness(t)
	l := h.json("a", "GET", "/v2.0/security-groups", nil, http.StatusOK)
	groups := l["security_groups"].([]any)
	if len(groups) != 1 {
		t.Fatalf("groups %v", groups)
	}
	def := groups[0].(map[string]any)
	if def["name"] != "default" || def["project_id"] != projA {
		t.Fatalf("default %v", def)
	}
	rules := def["security_group_rules"].([]any)
	if len(rules) != 4 {
		t.Fatalf("default rules %v", rules)
	}
	var egress, selfIngress int
	for _, r := range rules {
		m := r.(map[string]any)
		switch {
		case m["direction"] == "egress" && m["remote_group_id"] == nil && m["protocol"] == nil:
			egress++
		case m["direction"] == "ingress" && m["remote_group_id"] == def["id"]:
			selfIngress++
		}
	}
	if egress != 2 || selfIngress != 2 {
		t.Fatalf("default rules %v", rules)
	}
	// Listing again does not create a second one; B gets its own.
	if n := len(h.json("a", "GET", "/v2.0/security-groups", nil, http.StatusOK)["security_groups"].([]any)); n != 1 {
		t.Fatalf("%d groups after second list", n)
	}
	if b := h.json("b", "GET", "/v2.0/security-groups", nil, http.StatusOK)["security_groups"].([]any); len(b) != 1 || b[0].(map[string]any)["id"] == def["id"] {
		t.Fatalf("B's groups %v", b)
	}
	h.fail("a", "PUT", "/v2.0/security-groups/"+def["id"].(string), map[string]any{"security_group": map[string]any{"name": "x"}}, http.StatusConflict, "SecurityGroupCannotUpdateDefault")
	h.fail("a", "DELETE", "/v2.0/security-groups/"+def["id"].(string), nil, http.StatusConflict, "SecurityGroupCannotRemoveDefault")
	h.fail("a", "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "default"}}, http.StatusConflict, "SecurityGroupDefaultAlreadyExists")
	h.fail("b", "GET", "/v2.0/security-groups/"+def["id"].(string), nil, http.StatusNotFound, "SecurityGroupNotFound")
}

func TestSecurityGroupRules(t *testing.T) {
	h := newHarness(t)
	g := h.create("a", "security-groups", "security_group", map[string]any{"name": "web", "description": "w"})
	gid := g["id"].(string)
	if n := len(g["security_group_rules"].([]any)); n != 2 {
		t.Fatalf("new group rules %d", n)
	}
	rule := func(attrs map[string]any) map[string]any {
		attrs["security_group_id"] = gid
		return attrs
	}
	r := h.create("a", "security-group-rules", "security_group_rule", rule(map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "10.0.0.7/24"}))
	// Kept as given (Tempest compares what it sent); the masked network
	// is what it matches, so the same network written plainly is a duplicate.
	if r["remote_ip_prefix"] != "10.0.0.7/24" || r["ethertype"] != "IPv4" || r["protocol"] != "tcp" || r["port_range_min"] != float64(80) {
		t.Fatalf("rule %v", r)
	}
	msg := h.fail("a", "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": rule(map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "10.0.0.0/24"})}, http.StatusConflict, "SecurityGroupRuleExists")
	if !strings.Contains(msg, r["id"].(string)) {
		t.Fatalf("duplicate message %q", msg)
	}
	h.create("a", "security-group-rules", "security_group_rule", rule(map[string]any{"direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0}))
	h.create("a", "security-group-rules", "security_group_rule", rule(map[string]any{"direction": "ingress", "protocol": "58", "ethertype": "IPv6", "remote_ip_prefix": "2001:db8::/32"}))
	h.create("a", "security-group-rules", "security_group_rule", rule(map[string]any{"direction": "ingress", "protocol": "udp", "remote_group_id": gid}))
	bad := []struct {
		attrs map[string]any
		typ   string
	}{
		{map[string]any{"direction": "sideways"}, "InvalidInput"},
		{map[string]any{"direction": "ingress", "protocol": "bogus"}, "SecurityGroupRuleInvalidProtocol"},
		{map[string]any{"direction": "ingress", "protocol": 300}, "SecurityGroupRuleInvalidProtocol"},
		{map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, "SecurityGroupInvalidPortRange"},
		{map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 70000}, "SecurityGroupInvalidPortValue"},
		{map[string]any{"direction": "ingress", "port_range_min": 22, "port_range_max": 22}, "InvalidInput"},
		{map[string]any{"direction": "ingress", "protocol": "icmp", "port_range_min": 300}, "SecurityGroupInvalidIcmpValue"},
		{map[string]any{"direction": "ingress", "protocol": "icmp", "port_range_max": 0}, "SecurityGroupMissingIcmpType"},
		{map[string]any{"direction": "ingress", "protocol": "gre", "port_range_min": 1, "port_range_max": 2}, "InvalidInput"},
		{map[string]any{"direction": "ingress", "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}, "InvalidInput"},
		{map[string]any{"direction": "ingress", "ethertype": "IPv5"}, "SecurityGroupRuleInvalidEtherType"},
		{map[string]any{"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": gid}, "InvalidInput"},
		{map[string]any{"direction": "ingress", "protocol": "ipv6-icmp"}, "SecurityGroupEthertypeConflictWithProtocol"},
		{map[string]any{"direction": "ingress", "remote_ip_prefix": "10.0.0.300/8"}, "InvalidCIDR"},
	}
	for _, b := range bad {
		h.fail("a", "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": rule(b.attrs)}, http.StatusBadRequest, b.typ)
	}
	h.fail("a", "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": rule(map[string]any{"direction": "ingress", "remote_group_id": "00000000-0000-0000-0000-000000000000"})}, http.StatusNotFound, "SecurityGroupNotFound")
	h.fail("b", "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": rule(map[string]any{"direction": "ingress"})}, http.StatusNotFound, "SecurityGroupNotFound")
	got := h.json("a", "GET", "/v2.0/security-groups/"+gid, nil, http.StatusOK)["security_group"].(map[string]any)
	if n := len(got["security_group_rules"].([]any)); n != 6 {
		t.Fatalf("rules %d", n)
	}
	l := h.json("a", "GET", "/v2.0/security-group-rules?security_group_id="+gid+"&protocol=tcp", nil, http.StatusOK)
	if len(ids(l, "security_group_rules")) != 1 {
		t.Fatalf("rule filter %v", l)
	}
	// A group in use by a port cannot go.
	nid := h.network("a", nil)["id"].(string)
	h.subnet("a", nid, "10.0.0.0/24", nil)
	p := h.port("a", nid, map[string]any{"security_groups": []string{gid}})
	if sgs := p["security_groups"].([]any); len(sgs) != 1 || sgs[0] != gid {
		t.Fatalf("port groups %v", sgs)
	}
	h.fail("a", "DELETE", "/v2.0/security-groups/"+gid, nil, http.StatusConflict, "SecurityGroupInUse")
	h.json("a", "PUT", "/v2.0/ports/"+p["id"].(string), map[string]any{"port": map[string]any{"security_groups": []string{}}}, http.StatusOK)
	h.json("a", "DELETE", "/v2.0/security-group-rules/"+r["id"].(string), nil, http.StatusNoContent)
	h.json("a", "DELETE", "/v2.0/security-groups/"+gid, nil, http.StatusNoContent)
	h.fail("a", "GET", "/v2.0/security-group-rules/"+r["id"].(string), nil, http.StatusNotFound, "SecurityGroupRuleNotFound")
}

func TestQuotas(t *testing.T) {
	h := newHarness(t)
	q := h.json("a", "GET", "/v2.0/quotas/"+projA, nil, http.StatusOK)["quota"].(map[string]any)
	want := map[string]float64{"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50, "security_group": 10, "security_group_rule": 100}
	for k, v := range want {
		if q[k] != v {
			t.Fatalf("default %s = %v, want %v", k, q[k], v)
		}
	}
	h.fail("a", "GET", "/v2.0/quotas/"+projB, nil, http.StatusForbidden, "")
	h.fail("a", "PUT", "/v2.0/quotas/"+projA, map[string]any{"quota": map[string]any{"network": 1}}, http.StatusForbidden, "")
	u := h.json("admin", "PUT", "/v2.0/quotas/"+projA, map[string]any{"quota": map[string]any{"network": 1, "port": 2}}, http.StatusOK)["quota"].(map[string]any)
	if u["network"] != float64(1) || u["port"] != float64(2) {
		t.Fatalf("updated %v", u)
	}
	h.fail("admin", "PUT", "/v2.0/quotas/"+projA, map[string]any{"quota": map[string]any{"widgets": 1}}, http.StatusBadRequest, "")
	h.fail("admin", "PUT", "/v2.0/quotas/"+projA, map[string]any{"quota": map[string]any{"network": -5}}, http.StatusBadRequest, "")
	nid := h.network("a", nil)["id"].(string)
	status, body := h.do("a", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{}})
	if status != http.StatusConflict || string(body) != `{"NeutronError":{"detail":"","message":"Quota exceeded for resources: ['network'].","type":"OverQuota"}}` {
		t.Fatalf("over quota: %d %s", status, body)
	}
	h.port("a", nid, nil)
	h.port("a", nid, nil)
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid}}, http.StatusConflict, "OverQuota")
	d := h.json("a", "GET", "/v2.0/quotas/"+projA+"/details", nil, http.StatusOK)["quota"].(map[string]any)
	if p := d["port"].(map[string]any); p["used"] != float64(2) || p["limit"] != float64(2) || p["reserved"] != float64(0) {
		t.Fatalf("details %v", d["port"])
	}
	l := h.json("admin", "GET", "/v2.0/quotas", nil, http.StatusOK)["quotas"].([]any)
	if len(l) != 1 || l[0].(map[string]any)["project_id"] != projA {
		t.Fatalf("quota list %v", l)
	}
	h.json("admin", "DELETE", "/v2.0/quotas/"+projA, nil, http.StatusNoContent)
	if q := h.json("a", "GET", "/v2.0/quotas/"+projA, nil, http.StatusOK)["quota"].(map[string]any); q["network"] != float64(100) {
		t.Fatalf("after reset %v", q)
	}
	h.network("a", nil)
	dq := h.json("a", "GET", "/v2.0/quotas/"+projA+"/default", nil, http.StatusOK)["quota"].(map[string]any)
	if dq["port"] != float64(500) {
		t.Fatalf("defaults %v", dq)
	}
}

// TestServicePortsCountAgainstNoQuota: the external-network ports behind
// floating IPs and router gateways belong to no project and count against
// no port quota (they are counted as floating IPs and routers), as in
// Neutron; before, the empty project's default port quota capped the
// whole cloud's floating IPs.
func TestServicePortsCountAgainstNoQuota(t *testing.T) {
	h := newHarnessOn(t, testDB(t), Config{Quotas: map[string]int{"port": 2}})
	ext := h.network("admin", map[string]any{"provider:network_type": "flat", "provider:physical_network": "ext", "router:external": true})["id"].(string)
	h.subnet("admin", ext, "198.51.100.0/24", map[string]any{"enable_dhcp": false})
	for i := range 3 {
		h.create("a", "floatingips", "floatingip", map[string]any{"floating_network_id": ext})
		h.create("b", "routers", "router", map[string]any{"name": fmt.Sprint("r", i), "external_gateway_info": map[string]any{"network_id": ext}})
	}
	// A project's own ports still count.
	n := h.network("a", nil)["id"].(string)
	h.port("a", n, nil)
	h.port("a", n, nil)
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": n}}, http.StatusConflict, "OverQuota")
}
