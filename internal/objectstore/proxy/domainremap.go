package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// DomainRemap configures Swift's domain_remap middleware: a request whose
// Host is <account>.<storage domain> or <container>.<account>.<storage
// domain> is served as /v1/<account>[/<container>] followed by its path,
// so that a container can be a web site of its own (with static web) or
// an account reached by name without the /v1 prefix in URLs.
//
// It is off unless StorageDomains is set. Swift defaults storage_domain
// to example.com; Nimbus does not, because a proxy reached under a name
// it does not own would otherwise start remapping by accident.
type DomainRemap struct {
	// StorageDomains are the domains under which host names are
	// remapped (Swift's storage_domain, a comma-separated list there).
	// A leading dot is optional: "example.com" and ".example.com" both
	// match only proper subdomains, never example.com itself.
	StorageDomains []string
	// PathRoot is the version prefix of rewritten paths (Swift's
	// path_root, "v1").
	PathRoot string
	// ResellerPrefixes are the account prefixes recognised in host names,
	// without their "_" (Swift's reseller_prefixes, "AUTH"). Nil takes
	// the proxy's ResellerPrefix without its trailing "_"; a non-nil empty
	// list turns prefix handling off, so the account label is used as is.
	ResellerPrefixes []string
	// DefaultResellerPrefix is put, with "_", before an account label
	// that has none of ResellerPrefixes (Swift's
	// default_reseller_prefix). Empty: such hosts are not remapped.
	DefaultResellerPrefix string
	// MangleClientPaths drops a leading /<PathRoot> from the client's path
	// before prefixing the account (Swift's mangle_client_paths), for
	// clients that keep sending /v1 on remapped hosts.
	MangleClientPaths bool
}

// enabled reports whether the middleware is in the pipeline.
func (d DomainRemap) enabled() bool { return len(d.StorageDomains) > 0 }

// withDefaults normalises the settings once, as Swift's middleware does
// at start: domains get their leading dot (those given without one are
// tried first, as in Swift), blanks are dropped and the path root loses
// its slashes. resellerPrefix is the proxy's account prefix ("AUTH_").
func (d DomainRemap) withDefaults(resellerPrefix string) DomainRemap {
	var bare, dotted []string
	for _, s := range d.StorageDomains {
		switch s = strings.TrimSpace(s); {
		case s == "":
		case strings.HasPrefix(s, "."):
			dotted = append(dotted, s)
		default:
			bare = append(bare, "."+s)
		}
	}
	d.StorageDomains = append(bare, dotted...)
	if strings.TrimSpace(d.PathRoot) == "" {
		d.PathRoot = "v1"
	}
	d.PathRoot = strings.Trim(strings.TrimSpace(d.PathRoot), "/")
	if d.ResellerPrefixes == nil {
		d.ResellerPrefixes = []string{strings.TrimSuffix(resellerPrefix, "_")}
	}
	prefixes := []string{}
	for _, p := range d.ResellerPrefixes {
		if p = strings.TrimSpace(p); p != "" {
			prefixes = append(prefixes, p)
		}
	}
	d.ResellerPrefixes = prefixes
	d.DefaultResellerPrefix = strings.TrimSpace(d.DefaultResellerPrefix)
	return d
}

// info is domain_remap's /info section. Swift publishes only
// default_reseller_prefix (null when unset), never the storage domains:
// clients and its functional tests are told those out of band.
func (d DomainRemap) info() map[string]any {
	var prefix any
	if d.DefaultResellerPrefix != "" {
		prefix = d.DefaultResellerPrefix
	}
	return map[string]any{"default_reseller_prefix": prefix}
}

// errBadDomain answers a host with more labels than container and account
// under a storage domain, with Swift's body.
var errBadDomain = &swiftError{status: http.StatusBadRequest, body: "Bad domain in host header",
	header: http.Header{"Content-Type": {"text/plain"}}}

// remapHost returns the account and container a Host names, or ok false
// when the request is not for a remapped host: the host (its port
// dropped) is not under a storage domain, or its account label has no
// known reseller prefix and there is no default one. More than two
// labels before the storage domain are errBadDomain. The comparison is
// case-sensitive and the labels are used verbatim, as in Swift; only the
// reseller prefix is matched without case and respelled as configured,
// because DNS names are case-insensitive and browsers lowercase them.
func (d DomainRemap) remapHost(host string) (account, container string, ok bool, err error) {
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	var labels string
	for _, dom := range d.StorageDomains {
		if strings.HasSuffix(host, dom) {
			labels, ok = strings.TrimSuffix(host, dom), true
			break
		}
	}
	if !ok {
		return "", "", false, nil
	}
	parts := strings.Split(strings.Trim(labels, "."), ".")
	switch len(parts) {
	case 1:
		account = parts[0]
	case 2:
		container, account = parts[0], parts[1]
	default:
		return "", "", false, errBadDomain
	}
	if len(d.ResellerPrefixes) == 0 {
		return account, container, true, nil
	}
	// "_" is not valid in DNS host names, so AUTH-test stands for
	// AUTH_test; only the first "-" is the prefix separator.
	if !strings.Contains(account, "_") && strings.Contains(account, "-") {
		account = strings.Replace(account, "-", "_", 1)
	}
	given, _, _ := strings.Cut(account, "_")
	for _, p := range d.ResellerPrefixes {
		if strings.EqualFold(given, p) {
			if !strings.HasPrefix(account, p) {
				account = p + account[len(given):]
			}
			return account, container, true, nil
		}
	}
	if d.DefaultResellerPrefix != "" {
		return d.DefaultResellerPrefix + "_" + account, container, true, nil
	}
	return "", "", false, nil
}

// remapPath is the path a remapped request is served under: the path
// root, the account and container, then the client's path without its
// leading "/" (or, with MangleClientPaths, without a leading path root).
// path may be the decoded or the escaped form; escape is applied to the
// host's labels so that both forms stay consistent.
func (d DomainRemap) remapPath(account, container, path string, escape func(string) string) string {
	rest := strings.TrimPrefix(path, "/")
	if d.MangleClientPaths && strings.HasPrefix(rest+"/", d.PathRoot+"/") {
		rest = rest[min(len(rest), len(d.PathRoot)+1):]
	}
	out := "/" + d.PathRoot + "/" + escape(account)
	if container != "" {
		out += "/" + escape(container)
	}
	return out + "/" + rest
}

// domainRemap rewrites r's path when its Host names an account or
// container under a storage domain, and returns the writer the request
// must answer through: it turns Location and Content-Location URLs on
// the rewritten path back into the path the client asked for, so that
// redirects (static web's "add a slash") stay on the client's host
// naming. Any error is the response (400 for a bad host).
func (p *Proxy) domainRemap(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, error) {
	d := p.cfg.Middlewares.DomainRemap
	if !d.enabled() {
		return w, nil
	}
	// Healthcheck comes before domain_remap in Swift's pipeline, so
	// load balancers can probe any host name.
	if r.URL.Path == "/healthcheck" && !p.cfg.Middlewares.DisableHealthcheck {
		return w, nil
	}
	account, container, ok, err := d.remapHost(r.Host)
	if err != nil || !ok {
		return w, err
	}
	requested := r.URL.EscapedPath()
	r.URL.Path = d.remapPath(account, container, r.URL.Path, func(s string) string { return s })
	// Keep the client's own escaping of the rest of the path; Go drops
	// RawPath itself if it does not decode to Path.
	r.URL.RawPath = d.remapPath(account, container, requested, escapePathSegment)
	rewritten := r.URL.EscapedPath()
	return &headerHook{ResponseWriter: w, hook: func(_ int, h http.Header) {
		for _, k := range []string{"Location", "Content-Location"} {
			if v := h.Get(k); v != "" {
				h.Set(k, unmapLocation(v, rewritten, requested))
			}
		}
	}}, nil
}

// escapePathSegment escapes one path segment as Go's URL.EscapedPath
// would ("/" included, since a host label cannot stand for two segments).
func escapePathSegment(s string) string { return url.PathEscape(s) }

// unmapLocation replaces rewritten by requested in an absolute http(s)
// URL whose path starts with rewritten; other values are returned as
// they are, as Swift's rewrite does (relative and /v1 locations stay).
func unmapLocation(loc, rewritten, requested string) string {
	var scheme string
	switch {
	case strings.HasPrefix(loc, "http://"):
		scheme = "http://"
	case strings.HasPrefix(loc, "https://"):
		scheme = "https://"
	default:
		return loc
	}
	rest := loc[len(scheme):]
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return loc
	}
	if tail, ok := strings.CutPrefix(rest[i:], rewritten); ok {
		return scheme + rest[:i] + requested + tail
	}
	return loc
}
