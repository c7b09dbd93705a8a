package dataplane

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.nft golden files")

// goldenState has one of everything the rulesets render.
func goldenState() State {
	return State{
		Networks: []Network{
			{ID: "ext", Type: NetworkLocal, External: &External{Mode: ExternalHostIP, Uplink: "eth0"},
				Subnets: []Subnet{{ID: "e", CIDR: prefix("10.0.0.0/24"), Gateway: addr("10.0.0.1")}}},
			{ID: "net", Type: NetworkVXLAN, SegmentationID: 10,
				Subnets: []Subnet{{ID: "s", CIDR: prefix("192.168.1.0/24"), Gateway: addr("192.168.1.1")}}},
		},
		SecurityGroups: []SecurityGroup{{ID: "web", Rules: []SecurityGroupRule{
			{Direction: Egress, EtherType: IPv4},
			{Direction: Egress, EtherType: IPv6},
			{Direction: Ingress, EtherType: IPv4, Protocol: "tcp", PortMin: intp(443), PortMax: intp(443)},
			{Direction: Ingress, EtherType: IPv4, Protocol: "icmp", RemoteGroupID: "web"},
		}}},
		Ports: []Port{
			{ID: "vm1", NetworkID: "net", MAC: mac("fa:16:3e:00:00:01"), FixedIPs: []netip.Addr{addr("192.168.1.10")},
				AllowedAddressPairs: []AddressPair{{IP: prefix("192.168.1.100/32")}, {MAC: mac("fa:16:3e:00:00:99"), IP: prefix("192.168.1.128/28")}},
				PortSecurity:        true, SecurityGroups: []string{"web"}},
			{ID: "vm2", NetworkID: "net", MAC: mac("fa:16:3e:00:00:02"), FixedIPs: []netip.Addr{addr("192.168.1.11")}},
		},
		Routers: []Router{{ID: "r", Gateway: &RouterGateway{NetworkID: "ext", IP: addr("10.0.0.50"), SNAT: true},
			Interfaces:  []RouterInterface{{NetworkID: "net", IP: addr("192.168.1.1")}},
			FloatingIPs: []FloatingIP{{IP: addr("10.0.0.51"), FixedIP: addr("192.168.1.10")}}}},
	}
}

// TestGoldenRulesets pins the nftables text the agent loads; run with
// -update after an intended change and review the diff.
func TestGoldenRulesets(t *testing.T) {
	st := goldenState()
	ix, err := validate(&st)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{MetadataPort: 9697}, n: names{"nb"}}
	for name, got := range map[string]string{
		"antispoof.nft": a.antispoofTable(ix),
		"secgroups.nft": a.secgroupTable(ix),
		"external.nft":  a.externalTable(ix),
		"router.nft":    a.routerRuleset(ix, &st.Routers[0]),
	} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestGoldenRulesets -update)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
		}
	}
}
