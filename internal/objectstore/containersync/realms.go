// Package containersync implements Swift's container sync: a container
// whose X-Container-Sync-To names another container (in this cluster or
// another) has every object write and delete copied there by the
// container-sync daemon of the storage nodes holding its database.
//
// Targets are written "//realm/cluster/account/container": a realm is a
// set of clusters whose operators share a realm key (Swift's
// container-sync-realms.conf), and the realm's cluster names map to proxy
// endpoints. Each request the daemon sends carries
// X-Container-Sync-Auth: "<realm> <nonce> <signature>", an HMAC-SHA1 over
// the method, path, X-Timestamp, nonce and the container's
// X-Container-Sync-Key, keyed with the realm key; the receiving proxy
// checks it against its own realms and the target container's sync key
// and then accepts the write without a token, keeping the original
// X-Timestamp. Full URLs as targets are the older scheme: allowed only
// for hosts in allowed_sync_hosts, authorized by sending the sync key
// itself.
package containersync

//lint:file-ignore ST1005 ValidateSyncTo returns Swift's texts, which the proxy sends as the body of its 400.

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Realm is one sync realm: its keys and its clusters' endpoints.
type Realm struct {
	// Key signs outgoing and checks incoming sync requests; Key2, if set,
	// is also accepted on incoming ones, so keys can be rotated.
	Key, Key2 string
	// Clusters maps cluster names to proxy endpoints
	// ("https://host/v1/").
	Clusters map[string]string
}

// Realms are the sync realms this cluster knows. Realm and cluster names
// are case-insensitive; Swift shows them upper-case.
type Realms struct {
	realms map[string]Realm // upper-case names
}

// NewRealms normalizes realms; a realm without a key is an error, since
// nothing could be signed for it.
func NewRealms(realms map[string]Realm) (*Realms, error) {
	out := &Realms{realms: map[string]Realm{}}
	for name, r := range realms {
		if r.Key == "" {
			return nil, fmt.Errorf("container sync realm %q: key is required", name)
		}
		clusters := map[string]string{}
		for c, ep := range r.Clusters {
			u, err := url.Parse(ep)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("container sync realm %q cluster %q: endpoint %q is not an http(s) URL", name, c, ep)
			}
			clusters[strings.ToUpper(c)] = ep
		}
		r.Clusters = clusters
		out.realms[strings.ToUpper(name)] = r
	}
	return out, nil
}

func (rs *Realms) realm(name string) (Realm, bool) {
	if rs == nil {
		return Realm{}, false
	}
	r, ok := rs.realms[strings.ToUpper(name)]
	return r, ok
}

// Keys are the keys incoming requests of realm may be signed with.
func (rs *Realms) Keys(realm string) []string {
	r, ok := rs.realm(realm)
	if !ok {
		return nil
	}
	if r.Key2 != "" {
		return []string{r.Key, r.Key2}
	}
	return []string{r.Key}
}

// Info is the "realms" of /info's container_sync section: each realm with
// its clusters, the one named by current ("//realm/cluster", this
// cluster) marked current.
func (rs *Realms) Info(current string) map[string]any {
	cr, cc, _ := strings.Cut(strings.Trim(current, "/"), "/")
	out := map[string]any{}
	if rs == nil {
		return out
	}
	for name, r := range rs.realms {
		clusters := map[string]any{}
		for c := range r.Clusters {
			entry := map[string]any{}
			if strings.EqualFold(name, cr) && strings.EqualFold(c, cc) {
				entry["current"] = true
			}
			clusters[c] = entry
		}
		if len(clusters) > 0 {
			out[name] = map[string]any{"clusters": clusters}
		}
	}
	return out
}

// Target is a validated X-Container-Sync-To.
type Target struct {
	// URL is the remote container ("https://host/v1/AUTH_x/c").
	URL string
	// Realm and RealmKey are set for a realm target; empty for a full
	// URL, which is authorized with the sync key itself.
	Realm, RealmKey string
}

// ValidateSyncTo checks an X-Container-Sync-To value as Swift's
// validate_sync_to does: "//realm/cluster/account/container" needs a
// known realm and cluster; a full http(s) URL needs a host in
// allowedHosts, a path, and no params, query or fragment. An empty value
// (the setting removed) is the zero Target. The errors are Swift's texts,
// which the proxy answers as the 400's body.
func ValidateSyncTo(value string, allowedHosts []string, realms *Realms) (Target, error) {
	v := strings.TrimRight(value, "/")
	if v == "" {
		return Target{}, nil
	}
	if rest, ok := strings.CutPrefix(v, "//"); ok {
		parts := strings.Split(rest, "/")
		if len(parts) != 4 {
			return Target{}, fmt.Errorf("Invalid X-Container-Sync-To format %q", value)
		}
		r, ok := realms.realm(parts[0])
		if !ok {
			return Target{}, fmt.Errorf("No realm key for %q", parts[0])
		}
		ep, ok := r.Clusters[strings.ToUpper(parts[1])]
		if !ok {
			return Target{}, fmt.Errorf("No cluster endpoint for %q %q", parts[0], parts[1])
		}
		return Target{URL: strings.TrimRight(ep, "/") + "/" + parts[2] + "/" + parts[3],
			Realm: strings.ToUpper(parts[0]), RealmKey: r.Key}, nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		scheme := ""
		if u != nil {
			scheme = u.Scheme
		}
		return Target{}, fmt.Errorf(`Invalid scheme %q in X-Container-Sync-To, must be "//", "http", or "https".`, scheme)
	}
	switch {
	case u.Path == "":
		return Target{}, fmt.Errorf("Path required in X-Container-Sync-To")
	case u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Path, ";"):
		return Target{}, fmt.Errorf("Params, queries, and fragments not allowed in X-Container-Sync-To")
	case !slices.Contains(allowedHosts, u.Hostname()):
		return Target{}, fmt.Errorf("Invalid host %q in X-Container-Sync-To", u.Hostname())
	}
	return Target{URL: v}, nil
}

// Signature is the X-Container-Sync-Auth signature of a request: the hex
// HMAC-SHA1, keyed with the realm key, of method, path (URL-encoded, as
// sent), X-Timestamp, nonce and the container's sync key, one per line.
func Signature(method, path, timestamp, nonce, realmKey, userKey string) string {
	m := hmac.New(sha1.New, []byte(realmKey))
	m.Write([]byte(method + "\n" + path + "\n" + timestamp + "\n" + nonce + "\n" + userKey))
	return hex.EncodeToString(m.Sum(nil))
}

// AuthHeader is the X-Container-Sync-Auth value for a request.
func AuthHeader(realm, nonce, sig string) string { return realm + " " + nonce + " " + sig }

// ParseAuthHeader splits an X-Container-Sync-Auth value.
func ParseAuthHeader(v string) (realm, nonce, sig string, ok bool) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return "", "", "", false
	}
	return f[0], f[1], f[2], true
}

// Quote escapes an object name for a sync request's path as Python's
// urllib quote does with "/" safe, which is how Swift's daemon builds the
// path it signs: letters, digits, "_.-~/" stay, every other byte is %XX.
func Quote(s string) string {
	var sb strings.Builder
	for _, b := range []byte(s) {
		if b < 0x80 && (b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("_.-~/", b) >= 0) {
			sb.WriteByte(b)
		} else {
			fmt.Fprintf(&sb, "%%%02X", b)
		}
	}
	return sb.String()
}
