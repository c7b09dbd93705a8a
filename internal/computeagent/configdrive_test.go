package computeagent

import (
	"encoding/json"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute"
)

// A subnet without DHCP gets a static network with its routes, as
// cloud-init expects; the agent's port view reaches the renderer intact.
func TestConfigDriveNetworkDataStatic(t *testing.T) {
	ports := []port{{ID: "0123456789abcdef", NetworkID: "n1", MAC: "fa:16:3e:00:00:01",
		FixedIPs: []fixedIP{{SubnetID: "s1", IPAddress: "192.168.1.5"}}}}
	subs := map[string]subnet{"s1": {ID: "s1", IPVersion: 4, CIDR: "192.168.1.0/24", GatewayIP: "192.168.1.1", DNSNameservers: []string{"8.8.8.8"}}}
	files, err := configDrive(compute.InstanceSpec{ID: "x"}, ports, map[string]network{"n1": {ID: "n1", MTU: 1500}}, subs)
	if err != nil {
		t.Fatal(err)
	}
	var nd struct {
		Links    []map[string]any `json:"links"`
		Networks []map[string]any `json:"networks"`
		Services []map[string]any `json:"services"`
	}
	if err := json.Unmarshal(files["openstack/latest/network_data.json"], &nd); err != nil {
		t.Fatal(err)
	}
	n := nd.Networks[0]
	if n["type"] != "ipv4" || n["ip_address"] != "192.168.1.5" || n["netmask"] != "255.255.255.0" || n["link"] != "tap0123456789a" {
		t.Fatalf("network %v", n)
	}
	r := n["routes"].([]any)[0].(map[string]any)
	if r["network"] != "0.0.0.0" || r["gateway"] != "192.168.1.1" {
		t.Fatalf("route %v", r)
	}
	if len(nd.Services) != 1 || nd.Links[0]["mtu"] != float64(1500) {
		t.Fatalf("network_data.json %+v", nd)
	}
}

// The admin password is on the drive, and only there.
func TestConfigDriveAdminPass(t *testing.T) {
	files, err := configDrive(compute.InstanceSpec{ID: "x", AdminPass: "s3cret"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	if err := json.Unmarshal(files["openstack/latest/meta_data.json"], &md); err != nil {
		t.Fatal(err)
	}
	if md["admin_pass"] != "s3cret" {
		t.Fatalf("meta_data.json %v", md)
	}
	if _, ok := files["openstack/latest/password"]; ok {
		t.Fatal("a password file on a read-only drive")
	}
}

func TestConfigDriveBadUserData(t *testing.T) {
	if _, err := configDrive(compute.InstanceSpec{ID: "x", UserData: "not base64!"}, nil, nil, nil); err == nil {
		t.Fatal("accepted user_data that is not base64")
	}
}
