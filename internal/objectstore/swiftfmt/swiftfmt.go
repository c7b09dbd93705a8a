// Package swiftfmt holds the small pieces of Swift's wire format that the
// proxy and the storage servers must decide identically, so a client gets
// the same answer whichever of them produces it.
package swiftfmt

import (
	"net/http"
	"strings"
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
