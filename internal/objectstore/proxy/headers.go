package proxy

import (
	"net/http"
	"strings"
)

// ownerHeaders are Swift's swift_owner_headers: only account owners may
// see or set them, since they grant access (ACLs, sync and temp URL keys).
var ownerHeaders = map[string]bool{
	"X-Container-Read":                 true,
	"X-Container-Write":                true,
	"X-Container-Sync-Key":             true,
	"X-Container-Sync-To":              true,
	"X-Account-Meta-Temp-Url-Key":      true,
	"X-Account-Meta-Temp-Url-Key-2":    true,
	"X-Container-Meta-Temp-Url-Key":    true,
	"X-Container-Meta-Temp-Url-Key-2":  true,
	"X-Account-Access-Control":         true,
	accountACLSysmeta:                  true,
	"X-Account-Sysmeta-Project-Domain": true,
}

// accountACLSysmeta is where X-Account-Access-Control is stored, as Swift
// stores it: system metadata the account server keeps but clients cannot
// set directly.
const accountACLSysmeta = "X-Account-Sysmeta-Core-Access-Control"

// projectDomainSysmeta is where keystoneauth keeps the domain id of the
// project an account was created for, under Swift's name.
const projectDomainSysmeta = "X-Account-Sysmeta-Project-Domain-Id"

// isSysmeta reports whether k is system metadata, which only the proxy
// itself sets and no client sees (Swift's gatekeeper).
func isSysmeta(k string) bool {
	return strings.Contains(k, "-Sysmeta-") && (strings.HasPrefix(k, "X-Account-") ||
		strings.HasPrefix(k, "X-Container-") || strings.HasPrefix(k, "X-Object-"))
}

// clientVisible filters a storage server's response headers.
func clientVisible(k string, owner bool) bool {
	switch {
	case strings.HasPrefix(k, "X-Backend-"), isSysmeta(k):
		return false
	case ownerHeaders[k]:
		return owner
	case k == "Connection", k == "Keep-Alive", k == "Transfer-Encoding", k == "Date", k == "Server":
		return false
	}
	return true
}

// scrubRequest drops what clients may not send to storage servers: the
// internal X-Backend-* protocol and system metadata.
func scrubRequest(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "X-Backend-") || isSysmeta(k) || k == "X-Timestamp" {
			delete(h, k)
		}
	}
}

// dropOwnerHeaders removes the privileged headers a non-owner sent, as
// Swift's proxy does before forwarding.
func dropOwnerHeaders(h http.Header) {
	for k := range ownerHeaders {
		h.Del(k)
	}
}

// metaHeaders copies the user metadata of kind ("Account", "Container",
// "Object") from src to dst, turning X-Remove-<Kind>-Meta-Foo into an
// empty X-<Kind>-Meta-Foo, which storage servers treat as a deletion.
func metaHeaders(dst, src http.Header, kind string) {
	prefix := "X-" + kind + "-Meta-"
	remove := "X-Remove-" + kind + "-Meta-"
	for k, vs := range src {
		switch {
		case strings.HasPrefix(k, prefix):
			dst[k] = vs
		case strings.HasPrefix(k, remove):
			if name := k[len(remove):]; name != "" {
				if _, set := src[prefix+name]; !set {
					dst.Set(prefix+name, "")
				}
			}
		}
	}
}
