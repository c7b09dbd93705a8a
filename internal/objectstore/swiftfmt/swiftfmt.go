// Package swiftfmt holds the small pieces of Swift's wire format that the
// proxy and the storage servers must decide identically, so a client gets
// the same answer whichever of them produces it.
package swiftfmt

import (
	"net/http"
	"strings"
	"time"
)

// ListingFormat is the listing format ("json", "xml" or "plain") a client
// asked for: ?format= first, then Accept, as Swift's get_listing_content_type.
// The proxy answers some listings itself (an account that does not exist
// yet), so both sides must pick the same format for the same request.
func ListingFormat(r *http.Request) string {
	switch strings.ToLower(r.URL.Query().Get("format")) {
	case "json":
		return "json"
	case "xml":
		return "xml"
	case "plain":
		return "plain"
	}
	acc := r.Header.Get("Accept")
	switch {
	case strings.Contains(acc, "application/json"):
		return "json"
	case strings.Contains(acc, "application/xml"), strings.Contains(acc, "text/xml"):
		return "xml"
	}
	return "plain"
}

// ETagMatches reports whether an If-Match / If-None-Match list contains
// etag ("*" matches anything). Quotes are optional: Swift sends ETags
// unquoted.
func ETagMatches(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		t = strings.TrimPrefix(t, "W/")
		t = strings.Trim(t, `"`)
		if t == "*" || (t != "" && t == etag) {
			return true
		}
	}
	return false
}

// CheckConditions applies RFC 7232's order to a GET or HEAD of an object
// with etag and lastMod (rounded up to a whole second): If-Match, else
// If-Unmodified-Since (412), both checked as Swift's swob does (a
// matching If-Match does not excuse a stale If-Unmodified-Since); then
// If-None-Match, else If-Modified-Since (304). It returns 0 when the request may proceed. The object servers
// evaluate it for plain objects, the proxy for large objects, whose ETag
// only it knows, so both must agree.
func CheckConditions(h http.Header, etag string, lastMod time.Time) int {
	if im := h.Get("If-Match"); im != "" {
		if !ETagMatches(im, etag) {
			return http.StatusPreconditionFailed
		}
	}
	if ius := h.Get("If-Unmodified-Since"); ius != "" {
		if t, err := http.ParseTime(ius); err == nil && lastMod.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if inm := h.Get("If-None-Match"); inm != "" {
		if ETagMatches(inm, etag) {
			return http.StatusNotModified
		}
	} else if ims := h.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !lastMod.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}
