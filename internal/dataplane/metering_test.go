package dataplane

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

// meterCounts reads the agent's counters of router "r" by label.
func meterCounts(t testing.TB, a *Agent) map[string]MeteringCount {
	t.Helper()
	cs, err := a.MeteringCounters(context.Background())
	if err != nil {
		t.Fatalf("metering counters: %v", err)
	}
	out := map[string]MeteringCount{}
	for _, c := range cs {
		if c.RouterID == "r" {
			out[c.LabelID] = c
		}
	}
	return out
}

// TestMetering sends traffic through a router's gateway and watches the
// labels' counters: every egress packet counts for an all-egress label,
// replies for an ingress label on the remote's address, nothing for a
// label whose excluded rule covers the remote (but that label counts other
// destinations). Counters survive a no-change Apply and a change of
// labels; with no labels the table goes.
func TestMetering(t *testing.T) {
	t.Parallel()
	requireHost(t)
	p := testPrefix(t)
	host := newNetns(t, p+"-host")
	guest := newNetns(t, p+"-g")
	remote := newNetns(t, p+"-rem")
	run(t, host, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	agent := newTestAgent(t, p, host, nil)
	labels := []MeteringLabel{
		{ID: "all-egress", Rules: []MeteringRule{{Direction: Egress}}},
		{ID: "from-remote", Rules: []MeteringRule{{Direction: Ingress, RemoteIPPrefix: prefix("10.206.0.100/32")}}},
		{ID: "not-remote", Rules: []MeteringRule{
			{Direction: Egress, RemoteIPPrefix: prefix("10.206.0.0/24")},
			{Direction: Egress, RemoteIPPrefix: prefix("10.206.0.100/32"), Excluded: true},
		}},
	}
	st := State{
		Networks: []Network{
			{ID: "ext", Type: NetworkLocal, External: &External{Mode: ExternalRouted, Uplink: "up0"},
				Subnets: []Subnet{{ID: "e", CIDR: prefix("10.206.0.0/24"), Gateway: addr("10.206.0.1")}}},
			{ID: "net", Type: NetworkVXLAN, SegmentationID: 63,
				Subnets: []Subnet{{ID: "s", CIDR: prefix("192.168.50.0/24"), Gateway: addr("192.168.50.1")}}},
		},
		Ports: []Port{
			{ID: "g", NetworkID: "net", MAC: mac("fa:16:3e:00:07:01"), FixedIPs: []netip.Addr{addr("192.168.50.10")}, Netns: guest},
			// A stand-in for a host on the external network.
			{ID: "rem", NetworkID: "ext", MAC: mac("fa:16:3e:00:07:02"), FixedIPs: []netip.Addr{addr("10.206.0.100")}, Netns: remote},
		},
		Routers: []Router{{ID: "r", Gateway: &RouterGateway{NetworkID: "ext", IP: addr("10.206.0.10"), SNAT: true},
			Interfaces:     []RouterInterface{{NetworkID: "net", IP: addr("192.168.50.1")}},
			MeteringLabels: labels}},
	}
	apply(t, agent, st)
	guestIP(t, guest, "192.168.50.10/24", "192.168.50.1")
	guestIP(t, remote, "10.206.0.100/24", "")

	if !canPing(guest, "10.206.0.100") {
		t.Fatal("guest cannot reach the remote through the router")
	}
	run(t, guest, "ping", "-n", "-q", "-c", "5", "-i", "0.2", "10.206.0.100")
	c := meterCounts(t, agent)
	if c["all-egress"].Packets < 6 || c["all-egress"].Bytes < 6*84 {
		t.Errorf("all-egress counted %+v, want ≥ 6 echo requests", c["all-egress"])
	}
	if c["from-remote"].Packets < 6 {
		t.Errorf("from-remote counted %+v, want ≥ 6 echo replies", c["from-remote"])
	}
	if c["not-remote"].Packets != 0 {
		t.Errorf("not-remote counted %+v, but its excluded rule covers the remote", c["not-remote"])
	}
	// Another destination on the external network counts for not-remote
	// (forwarded, then unanswered).
	_, _ = tryRun(guest, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-w", "1", "10.206.0.101")
	if n := meterCounts(t, agent)["not-remote"].Packets; n == 0 {
		t.Errorf("not-remote counted nothing for 10.206.0.101")
	}

	// A no-change Apply and a change of labels keep the counts.
	before := meterCounts(t, agent)["all-egress"]
	apply(t, agent, st)
	st.Routers[0].MeteringLabels = append(labels, MeteringLabel{ID: "new", Rules: []MeteringRule{{Direction: Ingress}}})
	apply(t, agent, st)
	after := meterCounts(t, agent)
	if after["all-egress"].Packets < before.Packets || after["all-egress"].Bytes < before.Bytes {
		t.Errorf("counter reset by Apply: %+v → %+v", before, after["all-egress"])
	}
	if _, ok := after["new"]; !ok {
		t.Errorf("no counter for a label added later: %v", after)
	}

	st.Routers[0].MeteringLabels = nil
	apply(t, agent, st)
	if tables := run(t, agent.n.routerNS("r"), "nft", "list", "tables"); strings.Contains(tables, agent.n.tableMetering()) {
		t.Errorf("metering table left without labels:\n%s", tables)
	}
	if c := meterCounts(t, agent); len(c) != 0 {
		t.Errorf("counters without labels: %v", c)
	}
}
