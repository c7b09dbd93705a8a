package network

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestVersionsAndExtensions(t *testing.T) {
	h := newHarness(t)
	v := h.json("", "GET", "/", nil, http.StatusOK)
	vs := v["versions"].([]any)
	if len(vs) != 1 || vs[0].(map[string]any)["id"] != "v2.0" || vs[0].(map[string]any)["status"] != "CURRENT" {
		t.Fatalf("versions %v", v)
	}
	res := h.json("a", "GET", "/v2.0/", nil, http.StatusOK)
	var colls []string
	for _, r := range res["resources"].([]any) {
		colls = append(colls, r.(map[string]any)["collection"].(string))
	}
	if !slices.Contains(colls, "networks") || !slices.Contains(colls, "ports") {
		t.Fatalf("resources %v", colls)
	}
	ext := h.json("a", "GET", "/v2.0/extensions", nil, http.StatusOK)
	var aliases []string
	for _, e := range ext["extensions"].([]any) {
		m := e.(map[string]any)
		aliases = append(aliases, m["alias"].(string))
		if m["name"] == "" || m["updated"] == "" || m["links"] == nil {
			t.Fatalf("extension %v", m)
		}
	}
	for _, want := range []string{"provider", "external-net", "security-group", "binding", "quotas", "allowed-address-pairs", "extra_dhcp_opt", "standard-attr-tag"} {
		if !slices.Contains(aliases, want) {
			t.Errorf("extension %s missing from %v", want, aliases)
		}
	}
	// Only what is implemented is listed.
	for _, absent := range []string{"qos", "trunk", "l3-ha"} {
		if slices.Contains(aliases, absent) {
			t.Errorf("extension %s listed but not implemented", absent)
		}
	}
	one := h.json("a", "GET", "/v2.0/extensions/security-group", nil, http.StatusOK)["extension"].(map[string]any)
	if one["alias"] != "security-group" || one["updated"] != "2012-10-05T10:00:00-00:00" {
		t.Fatalf("extension %v", one)
	}
	h.fail("a", "GET", "/v2.0/extensions/l3-ha", nil, http.StatusNotFound, "")
	// The format suffix of Neutron's first API is still accepted.
	if _, ok := h.json("a", "GET", "/v2.0/extensions.json", nil, http.StatusOK)["extensions"]; !ok {
		t.Fatal("GET /v2.0/extensions.json has no extensions")
	}
	h.json("", "GET", "/v2.0/networks", nil, http.StatusUnauthorized)
	// Readers look but do not touch.
	h.json("ra", "GET", "/v2.0/networks", nil, http.StatusOK)
	h.fail("ra", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{}}, http.StatusForbidden, "PolicyNotAuthorized")
	// Unknown paths and methods answer in Neutron's error format.
	h.fail("a", "GET", "/v2.0/widgets", nil, http.StatusNotFound, "NotFound")
	h.json("a", "PATCH", "/v2.0/networks", nil, http.StatusMethodNotAllowed)
}

func TestNetworkCreateDefaults(t *testing.T) {
	h := newHarness(t)
	n := h.network("a", map[string]any{"name": "net1", "description": "d", "tags": []string{"x"}})
	if n["status"] != "ACTIVE" || n["admin_state_up"] != true || n["shared"] != false || n["router:external"] != false ||
		n["mtu"] != float64(1450) || n["port_security_enabled"] != true || n["project_id"] != projA || n["tenant_id"] != projA ||
		n["revision_number"] != float64(0) || !strings.HasSuffix(n["created_at"].(string), "Z") || len(n["subnets"].([]any)) != 0 {
		t.Fatalf("network %v", n)
	}
	// Provider attributes are for admins' eyes only.
	if _, ok := n["provider:network_type"]; ok {
		t.Fatalf("provider attributes shown to a member: %v", n)
	}
	adm := h.json("admin", "GET", "/v2.0/networks/"+n["id"].(string), nil, http.StatusOK)["network"].(map[string]any)
	if adm["provider:network_type"] != "vxlan" || adm["provider:segmentation_id"] != float64(1) || adm["provider:physical_network"] != nil {
		t.Fatalf("admin view %v", adm)
	}
	n2 := h.network("b", nil)
	adm2 := h.json("admin", "GET", "/v2.0/networks/"+n2["id"].(string), nil, http.StatusOK)["network"].(map[string]any)
	if adm2["provider:segmentation_id"] != float64(2) {
		t.Fatalf("second VNI %v", adm2["provider:segmentation_id"])
	}
	// Members may not set admin attributes.
	h.fail("a", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"shared": true}}, http.StatusForbidden, "PolicyNotAuthorized")
	// Defaults are not policy-checked: clients send them.
	h.network("a", map[string]any{"shared": false, "router:external": false})
	h.fail("a", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "flat"}}, http.StatusForbidden, "")
	h.fail("a", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": projB}}, http.StatusBadRequest, "BadRequest")
	h.json("a", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"bogus": 1}}, http.StatusBadRequest)
	h.fail("a", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"mtu": 9000}}, http.StatusBadRequest, "InvalidInput")
	// Other projects' networks are 404.
	h.fail("b", "GET", "/v2.0/networks/"+n["id"].(string), nil, http.StatusNotFound, "NetworkNotFound")
	h.fail("b", "DELETE", "/v2.0/networks/"+n["id"].(string), nil, http.StatusNotFound, "NetworkNotFound")
	h.fail("a", "GET", "/v2.0/networks/not-a-uuid", nil, http.StatusNotFound, "NetworkNotFound")
	if !h.events.has("network", "create") {
		t.Fatal("no network create event")
	}
}

func TestProviderNetworks(t *testing.T) {
	h := newHarnessOn(t, testDB(t), Config{VLANRanges: map[string][]Range{"physnet1": {{100, 101}}}, PhysicalNetworks: []string{"ext"}})
	flat := h.network("admin", map[string]any{"provider:network_type": "flat", "provider:physical_network": "ext", "router:external": true})
	if flat["provider:network_type"] != "flat" || flat["mtu"] != float64(1500) || flat["router:external"] != true {
		t.Fatalf("flat %v", flat)
	}
	h.fail("admin", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "flat", "provider:physical_network": "ext"}}, http.StatusConflict, "FlatNetworkInUse")
	h.fail("admin", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "flat", "provider:physical_network": "nope"}}, http.StatusBadRequest, "InvalidInput")
	v := h.network("admin", map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1"})
	if v["provider:segmentation_id"] != float64(100) {
		t.Fatalf("vlan %v", v)
	}
	h.network("admin", map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 200})
	h.fail("admin", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 200}}, http.StatusConflict, "VlanIdInUse")
	h.fail("admin", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 5000}}, http.StatusBadRequest, "InvalidInput")
	x := h.network("admin", map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 5000})
	if x["provider:segmentation_id"] != float64(5000) || x["mtu"] != float64(1450) {
		t.Fatalf("vxlan %v", x)
	}
	h.fail("admin", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 5000}}, http.StatusConflict, "TunnelIdInUse")
	h.fail("admin", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "gre"}}, http.StatusBadRequest, "InvalidInput")
	// External networks are visible to everyone, others' private ones not.
	l := h.json("a", "GET", "/v2.0/networks", nil, http.StatusOK)
	if got := ids(l, "networks"); len(got) != 1 || got[0] != flat["id"] {
		t.Fatalf("member sees %v", got)
	}
}

func TestNetworkUpdateDelete(t *testing.T) {
	h := newHarness(t)
	n := h.network("a", map[string]any{"name": "x"})
	id := n["id"].(string)
	u := h.json("a", "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"name": "y", "admin_state_up": false}}, http.StatusOK)["network"].(map[string]any)
	if u["name"] != "y" || u["admin_state_up"] != false || u["revision_number"] != float64(1) {
		t.Fatalf("updated %v", u)
	}
	h.fail("a", "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"shared": true}}, http.StatusForbidden, "")
	h.json("admin", "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"shared": true}}, http.StatusOK)
	// Shared: B sees it and may put a port on it; then A cannot unshare.
	sn := h.subnet("a", id, "10.0.0.0/24", nil)
	h.json("b", "GET", "/v2.0/networks/"+id, nil, http.StatusOK)
	h.port("b", id, nil)
	h.fail("admin", "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"shared": false}}, http.StatusConflict, "InvalidSharedSetting")
	// A user port keeps the network; DHCP ports go with it.
	h.fail("a", "DELETE", "/v2.0/networks/"+id, nil, http.StatusConflict, "NetworkInUse")
	h.fail("a", "DELETE", "/v2.0/subnets/"+sn["id"].(string), nil, http.StatusConflict, "SubnetInUse")

	n2 := h.network("a", nil)
	h.subnet("a", n2["id"].(string), "10.1.0.0/24", nil)
	dhcp := h.port("admin", n2["id"].(string), map[string]any{"device_owner": "network:dhcp", "project_id": projA})
	h.json("a", "DELETE", "/v2.0/networks/"+n2["id"].(string), nil, http.StatusNoContent)
	h.fail("admin", "GET", "/v2.0/ports/"+dhcp["id"].(string), nil, http.StatusNotFound, "PortNotFound")
	h.fail("a", "GET", "/v2.0/networks/"+n2["id"].(string), nil, http.StatusNotFound, "NetworkNotFound")
}

func TestListQueries(t *testing.T) {
	h := newHarness(t)
	var created []string
	for i, name := range []string{"c", "a", "b", "d", "e"} {
		tags := []string{"t" + name}
		if i%2 == 0 {
			tags = append(tags, "even")
		}
		created = append(created, h.network("a", map[string]any{"name": name, "tags": tags, "admin_state_up": i != 4})["id"].(string))
	}
	l := h.json("a", "GET", "/v2.0/networks?name=a&name=b", nil, http.StatusOK)
	if len(ids(l, "networks")) != 2 {
		t.Fatalf("OR filter %v", l)
	}
	l = h.json("a", "GET", "/v2.0/networks?admin_state_up=false", nil, http.StatusOK)
	if got := ids(l, "networks"); len(got) != 1 || got[0] != created[4] {
		t.Fatalf("bool filter %v", got)
	}
	l = h.json("a", "GET", "/v2.0/networks?sort_key=name&sort_dir=desc&fields=name&fields=id", nil, http.StatusOK)
	var names []string
	for _, it := range l["networks"].([]any) {
		m := it.(map[string]any)
		if len(m) != 2 {
			t.Fatalf("fields projection %v", m)
		}
		names = append(names, m["name"].(string))
	}
	if strings.Join(names, "") != "edcba" {
		t.Fatalf("sorted %v", names)
	}
	h.fail("a", "GET", "/v2.0/networks?sort_key=name&sort_dir=sideways", nil, http.StatusBadRequest, "")
	h.fail("a", "GET", "/v2.0/networks?limit=x", nil, http.StatusBadRequest, "")
	// Pagination by name with links.
	l = h.json("a", "GET", "/v2.0/networks?sort_key=name&limit=2", nil, http.StatusOK)
	if got := ids(l, "networks"); len(got) != 2 || got[0] != created[1] || got[1] != created[2] {
		t.Fatalf("page 1 %v", got)
	}
	links := l["networks_links"].([]any)
	var next string
	for _, lk := range links {
		m := lk.(map[string]any)
		if m["rel"] == "next" {
			next = m["href"].(string)
		}
	}
	if !strings.Contains(next, "marker="+created[2]) {
		t.Fatalf("links %v", links)
	}
	l = h.json("a", "GET", strings.TrimPrefix(next, h.srv.URL), nil, http.StatusOK)
	if got := ids(l, "networks"); len(got) != 2 || got[0] != created[0] || got[1] != created[3] {
		t.Fatalf("page 2 %v", got)
	}
	// Tags.
	l = h.json("a", "GET", "/v2.0/networks?tags=even", nil, http.StatusOK)
	if len(ids(l, "networks")) != 3 {
		t.Fatalf("tags %v", l)
	}
	l = h.json("a", "GET", "/v2.0/networks?tags-any=ta,tb", nil, http.StatusOK)
	if len(ids(l, "networks")) != 2 {
		t.Fatalf("tags-any %v", l)
	}
	l = h.json("a", "GET", "/v2.0/networks?not-tags=even", nil, http.StatusOK)
	if len(ids(l, "networks")) != 2 {
		t.Fatalf("not-tags %v", l)
	}
	l = h.json("a", "GET", "/v2.0/networks?not-tags-any=ta,tb,tc", nil, http.StatusOK)
	if len(ids(l, "networks")) != 2 {
		t.Fatalf("not-tags-any %v", l)
	}
	// Tag calls.
	id := created[0]
	h.json("a", "PUT", "/v2.0/networks/"+id+"/tags/red", nil, http.StatusCreated)
	h.json("a", "GET", "/v2.0/networks/"+id+"/tags/red", nil, http.StatusNoContent)
	got := h.json("a", "PUT", "/v2.0/networks/"+id+"/tags", map[string]any{"tags": []string{"z", "y"}}, http.StatusOK)
	if len(got["tags"].([]any)) != 2 {
		t.Fatalf("replace tags %v", got)
	}
	h.fail("a", "DELETE", "/v2.0/networks/"+id+"/tags/red", nil, http.StatusNotFound, "TagNotFound")
	h.json("a", "DELETE", "/v2.0/networks/"+id+"/tags/z", nil, http.StatusNoContent)
	h.json("a", "DELETE", "/v2.0/networks/"+id+"/tags", nil, http.StatusNoContent)
	n := h.json("a", "GET", "/v2.0/networks/"+id, nil, http.StatusOK)["network"].(map[string]any)
	if len(n["tags"].([]any)) != 0 {
		t.Fatalf("tags left %v", n["tags"])
	}
	h.fail("b", "PUT", "/v2.0/networks/"+id+"/tags/x", nil, http.StatusNotFound, "NetworkNotFound")
	// fields on show.
	n = h.json("a", "GET", "/v2.0/networks/"+id+"?fields=name", nil, http.StatusOK)["network"].(map[string]any)
	if len(n) != 1 {
		t.Fatalf("show fields %v", n)
	}
}

// TestBulkCreate creates several resources in one call, all or none.
func TestBulkCreate(t *testing.T) {
	h := newHarness(t)
	nets := h.json("a", "POST", "/v2.0/networks", map[string]any{"networks": []map[string]any{{"name": "b1"}, {"name": "b2"}}}, http.StatusCreated)["networks"].([]any)
	if len(nets) != 2 || nets[0].(map[string]any)["name"] != "b1" {
		t.Fatalf("bulk networks %v", nets)
	}
	nid := nets[0].(map[string]any)["id"].(string)
	// The second subnet overlaps the first: neither is created.
	h.fail("a", "POST", "/v2.0/subnets", map[string]any{"subnets": []map[string]any{
		{"network_id": nid, "cidr": "10.0.0.0/24", "ip_version": 4},
		{"network_id": nid, "cidr": "10.0.0.0/25", "ip_version": 4},
	}}, http.StatusBadRequest, "InvalidInput")
	if l := h.json("a", "GET", "/v2.0/subnets", nil, http.StatusOK)["subnets"].([]any); len(l) != 0 {
		t.Fatalf("half-applied bulk create left %v", l)
	}
	sns := h.json("a", "POST", "/v2.0/subnets", map[string]any{"subnets": []map[string]any{
		{"network_id": nid, "cidr": "10.0.0.0/24", "ip_version": 4},
		{"network_id": nid, "cidr": "2001:db8::/64", "ip_version": 6},
	}}, http.StatusCreated)["subnets"].([]any)
	if len(sns) != 2 {
		t.Fatalf("bulk subnets %v", sns)
	}
	ports := h.json("a", "POST", "/v2.0/ports", map[string]any{"ports": []map[string]any{{"network_id": nid}, {"network_id": nid}}}, http.StatusCreated)["ports"].([]any)
	if len(ports) != 2 || fixedIPs(ports[0].(map[string]any))[0] == fixedIPs(ports[1].(map[string]any))[0] {
		t.Fatalf("bulk ports %v", ports)
	}
	h.fail("a", "POST", "/v2.0/networks", map[string]any{"networks": []any{}}, http.StatusBadRequest, "")
	h.fail("a", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{}, "networks": []any{}}, http.StatusBadRequest, "")
}
