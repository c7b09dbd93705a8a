package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
)

// Link kinds, the character after the prefix in every link name Nimbus owns.
const (
	kindBridge   = 'b' // per network
	kindVXLAN    = 'x' // per vxlan network
	kindVLAN     = 'v' // per vlan network
	kindPort     = 't' // guest tap / veth, per port
	kindRouterIf = 'i' // host end of a router's leg on a tenant network
	kindRouterGw = 'g' // host end of a router's leg on the external network
	kindDHCP     = 'd' // host end of a DHCP namespace's leg
)

// DefaultPrefix names what a production agent owns. Tests use their own.
const DefaultPrefix = "nb"

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,3}$`)

// shortID is a stable 8-hex-digit digest of an ID: long enough to keep
// collisions away in one host's worth of objects, short enough that prefix
// + kind + digest fits the kernel's 15-byte interface names.
func shortID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// names derives every name from the agent's prefix.
type names struct{ prefix string }

func (n names) link(kind byte, parts ...string) string {
	return n.prefix + string(kind) + shortID(parts...)
}

func (n names) bridge(networkID string) string { return n.link(kindBridge, networkID) }
func (n names) vxlan(networkID string) string  { return n.link(kindVXLAN, networkID) }
func (n names) vlan(networkID string) string   { return n.link(kindVLAN, networkID) }
func (n names) port(portID string) string      { return n.link(kindPort, portID) }
func (n names) routerIf(routerID, networkID string) string {
	return n.link(kindRouterIf, routerID, networkID)
}
func (n names) routerGw(routerID string) string { return n.link(kindRouterGw, routerID) }
func (n names) dhcpIf(networkID string) string  { return n.link(kindDHCP, networkID) }

func (n names) routerNS(routerID string) string { return n.prefix + "-r-" + shortID(routerID) }
func (n names) dhcpNS(networkID string) string  { return n.prefix + "-d-" + shortID(networkID) }

// Names inside a router or DHCP namespace: the namespace is ours, so only
// uniqueness inside it matters; Neutron's qr-/qg-/ns- convention helps
// operators who know it.
func routerInnerIf(networkID string) string { return "qr-" + shortID(networkID) }
func routerInnerGw(routerID string) string  { return "qg-" + shortID(routerID) }
func dhcpInnerIf(networkID string) string   { return "ns-" + shortID(networkID) }

// Tables, one per role, in the host namespace (the router table lives in
// each router namespace).
func (n names) tableL2() string     { return n.prefix + "_antispoof" } // bridge family
func (n names) tableSG() string     { return n.prefix + "_secgroups" } // inet family
func (n names) tableHost() string   { return n.prefix + "_external" }  // inet family
func (n names) tableRouter() string { return n.prefix + "_router" }    // ip family, per router ns
func (n names) tableRouter6() string {
	return n.prefix + "_router6" // ip6 family, per router ns
}
func (n names) tableMetering() string { return n.prefix + "_metering" } // inet family, per router ns

func (n names) ownsLink(name string) bool {
	re := regexp.MustCompile(`^` + n.prefix + `[bxvtigd][0-9a-f]{8}$`)
	return re.MatchString(name)
}

func (n names) ownsNS(name string) (kind byte, ok bool) {
	re := regexp.MustCompile(`^` + n.prefix + `-([rd])-[0-9a-f]{8}$`)
	m := re.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	return m[1][0], true
}

// PortDevice is the host interface name the agent creates for a port: the
// tap the hypervisor opens (or the host end of a veth for Netns ports).
func PortDevice(prefix, portID string) string { return names{prefix}.port(portID) }

func checkPrefix(p string) error {
	if !prefixRE.MatchString(p) {
		return fmt.Errorf("dataplane prefix %q: want 1-4 lowercase letters or digits, starting with a letter", p)
	}
	return nil
}
