package network

import (
	"context"
	"net/http"
	"testing"
)

func TestAgentsAndScheduling(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	dhcp1, err := h.svc.ReportAgent(ctx, AgentReport{AgentType: AgentDHCP, Host: "host1", Binary: "nimbus-agent", Topic: "dhcp_agent"})
	if err != nil {
		t.Fatal(err)
	}
	dhcp2, _ := h.svc.ReportAgent(ctx, AgentReport{AgentType: AgentDHCP, Host: "host2", Binary: "nimbus-agent", Topic: "dhcp_agent"})
	l3, _ := h.svc.ReportAgent(ctx, AgentReport{AgentType: AgentL3, Host: "host1", Binary: "nimbus-agent", Topic: "l3_agent"})
	h.svc.ReportAgent(ctx, AgentReport{AgentType: AgentLinuxBridge, Host: "host1", Binary: "nimbus-agent", Configurations: map[string]any{"tunneling_ip": "192.0.2.1"}})
	// A heartbeat keeps the id.
	if again, _ := h.svc.ReportAgent(ctx, AgentReport{AgentType: AgentDHCP, Host: "host1", Binary: "nimbus-agent", Topic: "dhcp_agent"}); again != dhcp1 {
		t.Fatalf("heartbeat registered a new agent %s", again)
	}
	l := h.json("admin", "GET", "/v2.0/agents", nil, http.StatusOK)["agents"].([]any)
	if len(l) != 4 {
		t.Fatalf("agents %v", l)
	}
	// Others see no agents at all, as Neutron filters the list by policy.
	if l := h.json("a", "GET", "/v2.0/agents", nil, http.StatusOK)["agents"].([]any); len(l) != 0 {
		t.Fatalf("member sees agents %v", l)
	}
	h.fail("a", "GET", "/v2.0/agents/"+dhcp1, nil, http.StatusNotFound, "AgentNotFound")
	one := h.json("admin", "GET", "/v2.0/agents/"+dhcp1, nil, http.StatusOK)["agent"].(map[string]any)
	if one["alive"] != true || one["availability_zone"] != "nova" || one["agent_type"] != "DHCP agent" || one["description"] != nil {
		t.Fatalf("agent %v", one)
	}
	lb := h.json("admin", "GET", "/v2.0/agents?agent_type=Linux+bridge+agent", nil, http.StatusOK)["agents"].([]any)
	if len(lb) != 1 || lb[0].(map[string]any)["availability_zone"] != nil {
		t.Fatalf("linux bridge agent %v", lb)
	}

	// A network with a DHCP subnet goes to the least loaded DHCP agent.
	n1 := h.network("a", nil)["id"].(string)
	h.subnet("a", n1, "10.0.0.0/24", nil)
	n2 := h.network("a", nil)["id"].(string)
	h.subnet("a", n2, "10.1.0.0/24", nil)
	a1 := h.json("admin", "GET", "/v2.0/networks/"+n1+"/dhcp-agents", nil, http.StatusOK)["agents"].([]any)
	a2 := h.json("admin", "GET", "/v2.0/networks/"+n2+"/dhcp-agents", nil, http.StatusOK)["agents"].([]any)
	if len(a1) != 1 || len(a2) != 1 || a1[0].(map[string]any)["id"] == a2[0].(map[string]any)["id"] {
		t.Fatalf("scheduled %v %v", a1, a2)
	}
	other := dhcp2
	if a1[0].(map[string]any)["id"] == dhcp2 {
		other = dhcp1
	}
	h.json("admin", "POST", "/v2.0/agents/"+other+"/dhcp-networks", map[string]any{"network_id": n1}, http.StatusCreated)
	h.fail("admin", "POST", "/v2.0/agents/"+other+"/dhcp-networks", map[string]any{"network_id": n1}, http.StatusConflict, "NetworkHostedByDHCPAgent")
	h.fail("admin", "POST", "/v2.0/agents/"+l3+"/dhcp-networks", map[string]any{"network_id": n1}, http.StatusNotFound, "InvalidDHCPAgent")
	nets := h.json("admin", "GET", "/v2.0/agents/"+other+"/dhcp-networks", nil, http.StatusOK)["networks"].([]any)
	if len(nets) != 2 {
		t.Fatalf("agent networks %v", nets)
	}
	h.json("admin", "DELETE", "/v2.0/agents/"+other+"/dhcp-networks/"+n1, nil, http.StatusNoContent)
	h.fail("admin", "DELETE", "/v2.0/agents/"+other+"/dhcp-networks/"+n1, nil, http.StatusConflict, "NetworkNotHostedByDhcpAgent")

	// Routers go to the L3 agent.
	rid := h.create("a", "routers", "router", map[string]any{"name": "r"})["id"].(string)
	ra := h.json("admin", "GET", "/v2.0/routers/"+rid+"/l3-agents", nil, http.StatusOK)["agents"].([]any)
	if len(ra) != 1 || ra[0].(map[string]any)["id"] != l3 {
		t.Fatalf("router agents %v", ra)
	}
	rs := h.json("admin", "GET", "/v2.0/agents/"+l3+"/l3-routers", nil, http.StatusOK)["routers"].([]any)
	if len(rs) != 1 {
		t.Fatalf("agent routers %v", rs)
	}
	h.fail("admin", "POST", "/v2.0/agents/"+l3+"/l3-routers", map[string]any{"router_id": rid}, http.StatusConflict, "RouterHostedByL3Agent")
	h.json("admin", "DELETE", "/v2.0/agents/"+l3+"/l3-routers/"+rid, nil, http.StatusNoContent)
	h.json("admin", "POST", "/v2.0/agents/"+l3+"/l3-routers", map[string]any{"router_id": rid}, http.StatusCreated)

	// Disabled agents take no new work; agents can be described and removed.
	u := h.json("admin", "PUT", "/v2.0/agents/"+l3, map[string]any{"agent": map[string]any{"admin_state_up": false, "description": "maintenance"}}, http.StatusOK)["agent"].(map[string]any)
	if u["admin_state_up"] != false || u["description"] != "maintenance" {
		t.Fatalf("updated agent %v", u)
	}
	rid2 := h.create("a", "routers", "router", map[string]any{"name": "r2"})["id"].(string)
	if ra := h.json("admin", "GET", "/v2.0/routers/"+rid2+"/l3-agents", nil, http.StatusOK)["agents"].([]any); len(ra) != 0 {
		t.Fatalf("router scheduled to a disabled agent %v", ra)
	}
	h.json("admin", "DELETE", "/v2.0/agents/"+l3, nil, http.StatusNoContent)
	h.fail("admin", "GET", "/v2.0/agents/"+l3, nil, http.StatusNotFound, "AgentNotFound")
}

func TestInfoResources(t *testing.T) {
	h := newHarness(t)
	azs := h.json("a", "GET", "/v2.0/availability_zones", nil, http.StatusOK)["availability_zones"].([]any)
	if len(azs) != 2 || azs[0].(map[string]any)["name"] != "nova" || azs[0].(map[string]any)["state"] != "available" {
		t.Fatalf("zones %v", azs)
	}
	sp := h.json("a", "GET", "/v2.0/service-providers", nil, http.StatusOK)["service_providers"].([]any)
	if len(sp) != 1 || sp[0].(map[string]any)["service_type"] != "L3_ROUTER_NAT" {
		t.Fatalf("providers %v", sp)
	}
	nid := h.network("a", map[string]any{"name": "n"})["id"].(string)
	h.subnet("a", nid, "10.0.0.0/24", nil)
	h.subnet("a", nid, "2001:db8::/64", map[string]any{"ip_version": 6})
	h.port("a", nid, nil)
	h.port("a", nid, nil)
	av := h.json("admin", "GET", "/v2.0/network-ip-availabilities/"+nid, nil, http.StatusOK)["network_ip_availability"].(map[string]any)
	var v4 map[string]any
	for _, p := range av["subnet_ip_availability"].([]any) {
		if m := p.(map[string]any); m["ip_version"] == float64(4) {
			v4 = m
		}
	}
	if av["network_name"] != "n" || av["used_ips"] != float64(4) || v4["total_ips"] != float64(253) || v4["used_ips"] != float64(2) {
		t.Fatalf("availability %v", av)
	}
	status, body := h.do("admin", "GET", "/v2.0/network-ip-availabilities/"+nid, nil)
	if status != http.StatusOK || !contains(string(body), `"total_ips":18446744073709551614`) {
		t.Fatalf("IPv6 totals must be exact: %s", body)
	}
	l := h.json("admin", "GET", "/v2.0/network-ip-availabilities?ip_version=4", nil, http.StatusOK)["network_ip_availabilities"].([]any)
	if len(l) != 1 || len(l[0].(map[string]any)["subnet_ip_availability"].([]any)) != 1 {
		t.Fatalf("filtered availability %v", l)
	}
	h.fail("a", "GET", "/v2.0/network-ip-availabilities", nil, http.StatusForbidden, "")
}

// TestAutoScheduleOnReport: networks and routers created while no agent
// had reported are hosted by the first agent of each kind that reports,
// and the scheduling is announced so that its host builds them.
func TestAutoScheduleOnReport(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	n := h.network("a", nil)["id"].(string)
	h.subnet("a", n, "10.0.0.0/24", nil)
	noDHCP := h.network("a", nil)["id"].(string)
	h.subnet("a", noDHCP, "10.1.0.0/24", map[string]any{"enable_dhcp": false})
	r := h.create("a", "routers", "router", map[string]any{})["id"].(string)

	dhcp, err := h.svc.ReportAgent(ctx, AgentReport{AgentType: AgentDHCP, Host: "host1", Binary: "nimbus-agent", Topic: "dhcp_agent"})
	if err != nil {
		t.Fatal(err)
	}
	nets := h.json("admin", "GET", "/v2.0/agents/"+dhcp+"/dhcp-networks", nil, http.StatusOK)["networks"].([]any)
	if len(nets) != 1 || nets[0].(map[string]any)["id"] != n {
		t.Fatalf("DHCP agent hosts %v, want only %s (the other network serves no DHCP)", nets, n)
	}
	if !h.events.has("network", "update") {
		t.Fatal("scheduling a network announced nothing")
	}
	l3, err := h.svc.ReportAgent(ctx, AgentReport{AgentType: AgentL3, Host: "host1", Binary: "nimbus-agent", Topic: "l3_agent"})
	if err != nil {
		t.Fatal(err)
	}
	rs := h.json("admin", "GET", "/v2.0/agents/"+l3+"/l3-routers", nil, http.StatusOK)["routers"].([]any)
	if len(rs) != 1 || rs[0].(map[string]any)["id"] != r {
		t.Fatalf("L3 agent hosts %v, want %s", rs, r)
	}
	// A second DHCP agent gets nothing already hosted.
	dhcp2, _ := h.svc.ReportAgent(ctx, AgentReport{AgentType: AgentDHCP, Host: "host2", Binary: "nimbus-agent", Topic: "dhcp_agent"})
	if nets := h.json("admin", "GET", "/v2.0/agents/"+dhcp2+"/dhcp-networks", nil, http.StatusOK)["networks"].([]any); len(nets) != 0 {
		t.Fatalf("second DHCP agent hosts %v", nets)
	}
}
