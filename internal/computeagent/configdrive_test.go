package computeagent

import (
	"net/netip"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute"
)

func TestNetmask(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/24": "255.255.255.0", "10.0.0.0/20": "255.255.240.0", "0.0.0.0/0": "0.0.0.0",
		"fd00::/64": "ffff:ffff:ffff:ffff::",
	} {
		if got := netmask(netip.MustParsePrefix(in)); got != want {
			t.Errorf("netmask(%s) = %s, want %s", in, got, want)
		}
	}
}

// A subnet without DHCP gets a static network with its routes, as
// cloud-init expects.
func TestNetworkDataStatic(t *testing.T) {
	ports := []port{{ID: "0123456789abcdef", NetworkID: "n1", MAC: "fa:16:3e:00:00:01",
		FixedIPs: []fixedIP{{SubnetID: "s1", IPAddress: "192.168.1.5"}}}}
	subs := map[string]subnet{"s1": {ID: "s1", IPVersion: 4, CIDR: "192.168.1.0/24", GatewayIP: "192.168.1.1", DNSNameservers: []string{"8.8.8.8"}}}
	nd := networkData(ports, map[string]network{"n1": {ID: "n1", MTU: 1500}}, subs)
	n := nd["networks"].([]any)[0].(map[string]any)
	if n["type"] != "ipv4" || n["ip_address"] != "192.168.1.5" || n["netmask"] != "255.255.255.0" || n["link"] != "tap0123456789a" {
		t.Fatalf("network %v", n)
	}
	r := n["routes"].([]any)[0].(map[string]any)
	if r["network"] != "0.0.0.0" || r["gateway"] != "192.168.1.1" {
		t.Fatalf("route %v", r)
	}
	if s := nd["services"].([]any); len(s) != 1 {
		t.Fatalf("services %v", s)
	}
}

func TestConfigDriveBadUserData(t *testing.T) {
	if _, err := configDrive(compute.InstanceSpec{ID: "x", UserData: "not base64!"}, nil, nil, nil); err == nil {
		t.Fatal("accepted user_data that is not base64")
	}
}
