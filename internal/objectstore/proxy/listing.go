package proxy

import (
	"encoding/xml"
	"net/http"
	"strings"
)

// listingFormat is the listing format a client asked for, by ?format= or
// Accept, as the storage servers decide it.
func listingFormat(r *http.Request) string {
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

func xmlEscape(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return sb.String()
}
