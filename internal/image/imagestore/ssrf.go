package imagestore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrForbiddenTarget: a URL, or the address it resolves to, is one the image
// service must not fetch from (loopback, private networks, cloud metadata…).
var ErrForbiddenTarget = errors.New("forbidden target")

// SSRFGuard decides which URLs the image service may fetch on a user's
// behalf (image locations, web-download). Users choose those URLs, so without
// it they could make the service read the cloud metadata endpoint or
// services on the management network.
//
// The zero value refuses every non-public address.
type SSRFGuard struct {
	// AllowPrivate permits loopback, private (RFC 1918, fc00::/7),
	// link-local and CGNAT addresses. The cloud metadata addresses stay
	// refused unless listed in AllowedHosts.
	AllowPrivate bool
	// AllowedHosts are host names, IP addresses or CIDR prefixes that are
	// always permitted, whatever their address class. A host name listed
	// here is trusted whatever it resolves to.
	AllowedHosts []string
	// Resolve looks a host name up; nil uses net.DefaultResolver. Tests set
	// it so that they need no DNS.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// metadataAddrs are the instance metadata services of the clouds we may run
// on or next to. They hand out credentials, so AllowPrivate does not open
// them.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
}

// privatePrefixes are refused unless AllowPrivate.
var privatePrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),  // CGNAT
	netip.MustParsePrefix("169.254.0.0/16"), // link-local
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("fc00::/7"),       // unique local
	netip.MustParsePrefix("fe80::/10"),      // link-local
}

// neverPrefixes are never a valid place to fetch from, AllowPrivate or not.
// 0.0.0.0 in particular connects to the local host on Linux.
var neverPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),   // "this network", unspecified
	netip.MustParsePrefix("224.0.0.0/4"), // multicast
	netip.MustParsePrefix("240.0.0.0/4"), // reserved, broadcast
	netip.MustParsePrefix("::/128"),      // unspecified
	netip.MustParsePrefix("ff00::/8"),    // multicast
}

// Check reports whether rawURL may be fetched: http or https, and a host
// that is allowed or resolves only to allowed addresses. Errors wrap
// ErrForbiddenTarget when the target is refused.
func (g *SSRFGuard) Check(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: parse url: %v", ErrForbiddenTarget, err)
	}
	return g.checkURL(ctx, u)
}

func (g *SSRFGuard) checkURL(ctx context.Context, u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q is not http or https", ErrForbiddenTarget, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: url has no host", ErrForbiddenTarget)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: bad port %q", ErrForbiddenTarget, p)
		}
	}
	_, err := g.resolve(ctx, host)
	return err
}

// resolve returns the addresses host may be connected to, refusing it if
// any of its addresses is forbidden: one bad address is enough for an
// attacker who controls the DNS answer order.
func (g *SSRFGuard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if g.hostAllowed(host) {
		addr, ok := parseIPHost(host)
		if ok {
			return []netip.Addr{addr}, nil
		}
		addrs, err := g.lookup(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		return addrs, nil
	}
	if addr, ok := parseIPHost(host); ok {
		if err := g.checkAddr(addr); err != nil {
			return nil, err
		}
		return []netip.Addr{addr}, nil
	}
	if looksNumeric(host) {
		// Something like 0x7f.0.0.1.1 that is not a valid address in any
		// notation: a resolver might still make sense of it, so refuse.
		return nil, fmt.Errorf("%w: malformed numeric host %q", ErrForbiddenTarget, host)
	}
	addrs, err := g.lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	for _, a := range addrs {
		if err := g.checkAddr(a); err != nil {
			return nil, fmt.Errorf("host %s: %w", host, err)
		}
	}
	return addrs, nil
}

func (g *SSRFGuard) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if g.Resolve != nil {
		return g.Resolve(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// hostAllowed reports whether host (a name or an address) is listed in
// AllowedHosts.
func (g *SSRFGuard) hostAllowed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	addr, isAddr := parseIPHost(host)
	for _, h := range g.AllowedHosts {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if h == "" {
			continue
		}
		if h == host {
			return true
		}
		if !isAddr {
			continue
		}
		if p, err := netip.ParsePrefix(h); err == nil && p.Contains(addr) {
			return true
		}
		if a, err := netip.ParseAddr(h); err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}

// checkAddr refuses addresses that are not public, per the guard's policy.
func (g *SSRFGuard) checkAddr(addr netip.Addr) error {
	addr = addr.WithZone("").Unmap()
	if g.hostAllowed(addr.String()) {
		return nil
	}
	if v4, ok := embeddedIPv4(addr); ok {
		// NAT64, 6to4 and IPv4-compatible addresses reach an IPv4 host:
		// judge that host.
		if err := g.checkAddr(v4); err != nil {
			return fmt.Errorf("%s embeds %s: %w", addr, v4, err)
		}
	}
	for _, m := range metadataAddrs {
		if addr == m {
			return fmt.Errorf("%w: %s is a cloud metadata address", ErrForbiddenTarget, addr)
		}
	}
	for _, p := range neverPrefixes {
		if p.Contains(addr) {
			return fmt.Errorf("%w: %s is in %s", ErrForbiddenTarget, addr, p)
		}
	}
	if g.AllowPrivate {
		return nil
	}
	for _, p := range privatePrefixes {
		if p.Contains(addr) {
			return fmt.Errorf("%w: %s is in non-public range %s", ErrForbiddenTarget, addr, p)
		}
	}
	return nil
}

var (
	nat64Prefix     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourPrefix = netip.MustParsePrefix("2002::/16")
	v4CompatPrefix  = netip.MustParsePrefix("::/96")
)

// embeddedIPv4 returns the IPv4 address carried inside an IPv6 transition
// address, if any.
func embeddedIPv4(addr netip.Addr) (netip.Addr, bool) {
	if !addr.Is6() {
		return netip.Addr{}, false
	}
	b := addr.As16()
	switch {
	case nat64Prefix.Contains(addr), v4CompatPrefix.Contains(addr) && addr != netip.IPv6Unspecified():
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFourPrefix.Contains(addr):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// parseIPHost parses host as an IP address in any notation a C resolver
// would accept: IPv6 (with an optional zone), dotted IPv4 and the legacy
// inet_aton forms (2130706433, 0x7f.1, 0177.0.0.1). Those forms must be
// recognised here, or they would reach the resolver as names and come back
// as 127.0.0.1.
func parseIPHost(host string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.WithZone("").Unmap(), true
	}
	return parseLegacyIPv4(host)
}

// parseLegacyIPv4 implements inet_aton: one to four parts, each decimal,
// octal (leading 0) or hex (leading 0x); the last part fills the remaining
// bytes.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".")
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" {
			return netip.Addr{}, false
		}
		base := 10
		switch {
		case len(p) > 1 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	last := len(vals) - 1
	for i := 0; i < last; i++ {
		if vals[i] > 0xff {
			return netip.Addr{}, false
		}
		n |= vals[i] << (24 - 8*uint(i))
	}
	if vals[last] >= 1<<(8*uint(4-last)) {
		return netip.Addr{}, false
	}
	n |= vals[last]
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// looksNumeric reports whether host is made only of digits, dots and hex
// notation, i.e. is meant as an address rather than a name. Real names have
// a top-level label that is not numeric.
func looksNumeric(host string) bool {
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	tld := strings.ToLower(labels[len(labels)-1])
	if tld == "" {
		return false
	}
	if strings.HasPrefix(tld, "0x") {
		tld = tld[2:]
		for _, c := range tld {
			if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
		return true
	}
	for _, c := range tld {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// DialContext connects like net.Dialer.DialContext, but resolves the host
// itself and checks every address it may connect to, so a name that
// resolved to a public address at Check time and to 127.0.0.1 now (DNS
// rebinding) is still refused.
func (g *SSRFGuard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("%w: network %q", ErrForbiddenTarget, network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	var firstErr error
	for _, a := range addrs {
		a = a.Unmap()
		if (network == "tcp4" && !a.Is4()) || (network == "tcp6" && !a.Is6()) {
			continue
		}
		// Dial the checked address literally: nothing resolves it again.
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("dial %s: no %s address", address, network)
	}
	return nil, firstErr
}

// maxRedirects bounds redirect chains, as net/http does by default.
const maxRedirects = 10

// Client returns an HTTP client that dials through the guard, ignores proxy
// settings (a proxy would connect on our behalf, unchecked) and refuses
// redirects to targets the guard refuses.
func (g *SSRFGuard) Client() *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: g.checkRedirect,
	}
}

func (g *SSRFGuard) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if err := g.checkURL(req.Context(), req.URL); err != nil {
		return fmt.Errorf("redirect to %s: %w", req.URL.Redacted(), err)
	}
	return nil
}
