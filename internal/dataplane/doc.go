// Package dataplane reconciles a Linux host to the networking state the
// network service wants: a bridge per network, VXLAN/VLAN/flat uplinks, guest
// ports, a namespace per router and per DHCP server, nftables for security
// groups, anti-spoofing and NAT, and the host side of the three external
// network modes (routed, host-ip, bridged).
//
// The entry point is [Agent.Apply]: it takes a complete [State] and converges
// the host to it. It is idempotent, creates what is missing, fixes what
// differs and removes what Nimbus owns but the state no longer mentions.
// Ownership is by name: every link is called <prefix><kind><8 hex digits>,
// every namespace <prefix>-<kind>-<8 hex digits>, every nftables table
// <prefix>_<role>; nothing else on the host is touched, except that flat and
// bridged networks enslave the physical interface the operator names.
//
// [Agent.Update] is the same convergence done incrementally, for the changes
// the network agent is told about: nothing when the state is the one last
// applied, only the guest ports' part (host filters, port devices, the
// DHCP servers' hosts and leases) when only ports and security groups
// changed, a full Apply otherwise. [Agent.ApplyYielding] is a full pass that
// stops after the guest ports when something more urgent waits. A deleted
// port's DHCP lease is released in the running dnsmasq (dhcp_release, as
// Neutron does) rather than by restarting it.
//
// # Why commands and not netlink libraries
//
// The agent drives the host through iproute2 (`ip`, `bridge`) and `nft`
// rather than through vishvananda/netlink and google/nftables:
//
//   - nft -f applies a whole table (delete + recreate) in one kernel
//     transaction, which is exactly the reconcile step we want: no window with
//     half a ruleset, and the same code path for "create" and "repair". The
//     rules are plain text, so the golden tests read like the kernel
//     documentation and an operator can diff them against `nft list ruleset`.
//   - `ip -n NS` and `ip netns exec NS` scope every operation to a namespace
//     in a child process, so the agent itself never has to setns on a Go
//     thread for configuration. The one place that must hold a socket inside
//     a namespace (listeners for the metadata proxy and the tests' stand-in
//     guests) is in netns.go and follows the LockOSThread rules there.
//   - The same [Runner] seam makes everything unit-testable: the VLAN code
//     path, which this CI machine cannot exercise (no 8021q), is tested by the
//     commands it would issue.
//
// # Security groups and bridged traffic
//
// Security groups are enforced in an inet-family table on the bridged path,
// which needs br_netfilter (net.bridge.bridge-nf-call-iptables=1, as
// Neutron's linuxbridge agent also requires): only that path gives bridged
// IPv4/IPv6 frames connection tracking. A port is recognised by its MAC
// address (ether saddr/daddr), which is sound because the bridge-family
// anti-spoofing table drops, before br_netfilter runs, every frame whose
// source MAC is not the port's own. Each network's bridge gets its own
// conntrack zone, so overlapping tenant CIDRs never share connection state.
//
// # External networks
//
// A router's gateway leg and its floating IPs sit on the external network's
// bridge. What happens next depends on [External.Mode]:
//
//   - routed: the bridge never touches a NIC. The host holds the subnet's
//     gateway address on it, forwards, and masquerades every connection that
//     leaves through the uplink to its own address. Inbound traffic for a
//     floating IP reaches the host through one VPC route (floating CIDR →
//     host) and is DNATed by the router. Replies keep the floating IP as
//     source, so the VPC must accept that CIDR from the host (what the route
//     entry, or AWS's disabled source/destination check, does).
//   - host-ip: the floating IPs are secondary addresses the cloud gave the
//     uplink. The host answers ARP for them on the uplink (proxy entries) and
//     routes each to the external bridge, whose ARP it also answers by proxy;
//     floating IPs leave as themselves, everything else as the host.
//   - bridged: the bridge enslaves the physical NIC; routers speak on that L2
//     with their own MACs and announce moved floating IPs with a gratuitous
//     ARP. Inside a VPC this is dropped; [DetectPublicCloud] lets the caller
//     default to routed there and Apply warns.
//
// Routers drop traffic to the cloud's metadata addresses (169.254.0.0/16,
// 100.100.100.200) and redirect guests' 169.254.169.254:80 to
// [Config.MetadataPort] inside the router namespace, where the agent serves
// [Config.MetadataHandler]. The host drops new connections from the external
// bridges to itself, so guests never reach host services through SNAT.
package dataplane
