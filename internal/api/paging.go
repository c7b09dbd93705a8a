package api

import (
	"net/http"
	"net/url"
	"strconv"
)

// Page is a limit/marker request as OpenStack list calls take it.
type Page struct {
	Limit  int    // 0 means no limit was asked for
	Marker string // id of the last item of the previous page
}

// ParsePage reads limit and marker from the query. A limit that is not a
// non-negative integer is a 400; maxLimit caps it (0: no cap).
func ParsePage(r *http.Request, maxLimit int) (Page, error) {
	q := r.URL.Query()
	var p Page
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, BadRequest("Invalid input for query parameter 'limit': %q is not a non-negative integer.", s)
		}
		p.Limit = n
	}
	if maxLimit > 0 && (p.Limit == 0 || p.Limit > maxLimit) {
		p.Limit = maxLimit
	}
	p.Marker = q.Get("marker")
	return p, nil
}

// Paginate applies a page to items sorted by the caller: items after the
// marker, at most Limit of them. An unknown marker is a 400, as Nova and
// Glance answer. It returns the page and whether more items follow.
func Paginate[T any](items []T, p Page, id func(T) string) ([]T, bool, error) {
	start := 0
	if p.Marker != "" {
		start = -1
		for i, it := range items {
			if id(it) == p.Marker {
				start = i + 1
				break
			}
		}
		if start < 0 {
			return nil, false, BadRequest("Marker %s could not be found.", p.Marker)
		}
	}
	items = items[start:]
	if p.Limit > 0 && len(items) > p.Limit {
		return items[:p.Limit], true, nil
	}
	return items, false, nil
}

// Link is an OpenStack links entry.
type Link struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
	Type string `json:"type,omitempty"`
}

// NextLink returns the "next" link for a page that has more items: the same
// request URL with the marker set to the last item's id.
func NextLink(base string, r *http.Request, lastID string) Link {
	q := r.URL.Query()
	q.Set("marker", lastID)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	return Link{Rel: "next", Href: base + u.RequestURI()}
}

// BaseURL is the scheme and host clients used to reach this request, for
// the absolute links OpenStack puts in bodies. A configured public URL
// wins over what the request says.
func BaseURL(r *http.Request, public string) string {
	if public != "" {
		return public
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	return scheme + "://" + r.Host
}
