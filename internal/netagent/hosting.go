package netagent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/agents"
	neutron "github.com/nimbus-cloud/nimbus/internal/network"
)

// Hosting is this host's share of the cloud-wide work, as the networking
// service scheduled it: the networks whose DHCP server runs here and the
// routers whose namespace lives here (Neutron's DHCP and L3 agent
// scheduling), and the other hosts' VXLAN endpoints. Exactly one host
// runs each router, so that its gateway address and MAC exist once on
// the overlay; a guest on another host reaches it through VXLAN.
type Hosting struct {
	DHCPNetworks map[string]bool
	Routers      map[string]bool
	// Peers are the tunnel endpoints of the other hosts' agents that are
	// alive: every VXLAN network floods to them (head-end replication;
	// the bridges learn nothing, the service's view is the truth).
	Peers []netip.Addr
}

// readHosting asks the networking service what it scheduled on this
// host's agents. Before the host's first report it has no agents yet and
// hosts nothing; the service schedules on that report and announces it.
func readHosting(ctx context.Context, c *gophercloud.ServiceClient, host string) (Hosting, error) {
	h := Hosting{DHCPNetworks: map[string]bool{}, Routers: map[string]bool{}}
	pages, err := agents.List(c, agents.ListOpts{}).AllPages(ctx)
	if err != nil {
		return h, fmt.Errorf("list agents: %w", err)
	}
	all, err := agents.ExtractAgents(pages)
	if err != nil {
		return h, fmt.Errorf("list agents: %w", err)
	}
	for _, ag := range all {
		switch {
		case ag.Host != host:
			if ag.AgentType == neutron.AgentLinuxBridge && ag.Alive {
				if ip, ok := ag.Configurations["tunneling_ip"].(string); ok {
					if a, err := netip.ParseAddr(ip); err == nil {
						h.Peers = append(h.Peers, a)
					}
				}
			}
		case ag.AgentType == neutron.AgentDHCP:
			nets, err := agents.ListDHCPNetworks(ctx, c, ag.ID).Extract()
			if err != nil {
				return h, fmt.Errorf("networks of DHCP agent %s: %w", ag.ID, err)
			}
			for _, n := range nets {
				h.DHCPNetworks[n.ID] = true
			}
		case ag.AgentType == neutron.AgentL3:
			rs, err := agents.ListL3Routers(ctx, c, ag.ID).Extract()
			if err != nil {
				return h, fmt.Errorf("routers of L3 agent %s: %w", ag.ID, err)
			}
			for _, r := range rs {
				h.Routers[r.ID] = true
			}
		}
	}
	slices.SortFunc(h.Peers, netip.Addr.Compare)
	h.Peers = slices.Compact(h.Peers)
	return h, nil
}
