package proxy

import (
	"net/http"
	"slices"
	"sort"
	"strings"
)

// CORS, as Swift's proxy does it: a container's
// X-Container-Meta-Access-Control-Allow-Origin (space-separated origins,
// or *), -Max-Age and -Expose-Headers govern browser requests to it and
// its objects. Swift runs with strict_cors_mode, so disallowed origins
// get no CORS headers at all.

// allowedMethods are the methods of each kind of resource, as Allow and
// preflight answers list them.
func allowedMethods(q *request) []string {
	switch {
	case q.object != "":
		return []string{"COPY", "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"}
	case q.container != "":
		return []string{"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"}
	}
	return []string{"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"}
}

// corsOrigin is the Access-Control-Allow-Origin value for origin, or ""
// when the container does not allow it.
func corsOrigin(allow, origin string) string {
	origins := strings.Fields(allow)
	if strings.TrimSpace(allow) == "*" {
		return "*"
	}
	if slices.Contains(origins, origin) || slices.Contains(origins, "*") {
		return origin
	}
	return ""
}

// options answers OPTIONS: the Allow list, and for a CORS preflight to
// a container or object the grant, or 401 when the origin or method is
// not allowed. Preflights carry no token, so no auth is asked.
func (p *Proxy) options(q *request) error {
	methods := allowedMethods(q)
	h := q.w.Header()
	h.Set("Allow", strings.Join(methods, ", "))
	origin := q.r.Header.Get("Origin")
	if origin == "" || q.container == "" {
		writeBody(q.w, q.r, http.StatusOK, "text/html; charset=UTF-8", "")
		return nil
	}
	ci, err := p.containerInfo(q, q.account, q.container)
	if err != nil {
		return err
	}
	allowOrigin := corsOrigin(ci.header.Get("X-Container-Meta-Access-Control-Allow-Origin"), origin)
	if allowOrigin == "" || !slices.Contains(methods, q.r.Header.Get("Access-Control-Request-Method")) {
		writeBody(q.w, q.r, http.StatusUnauthorized, "text/html; charset=UTF-8", "")
		return nil
	}
	h.Set("Access-Control-Allow-Origin", allowOrigin)
	vary := []string{}
	if allowOrigin != "*" {
		vary = append(vary, "Origin")
	}
	if v := ci.header.Get("X-Container-Meta-Access-Control-Max-Age"); v != "" {
		h.Set("Access-Control-Max-Age", v)
	}
	h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	if rh := q.r.Header.Get("Access-Control-Request-Headers"); rh != "" {
		h.Set("Access-Control-Allow-Headers", rh)
		vary = append(vary, "Access-Control-Request-Headers")
	}
	if len(vary) > 0 {
		h.Set("Vary", strings.Join(vary, ", "))
	}
	writeBody(q.w, q.r, http.StatusOK, "text/html; charset=UTF-8", "")
	return nil
}

// corsResponse adds the CORS headers to the answer of a browser request
// from an allowed origin to a container or object.
func (p *Proxy) corsResponse(q *request) error {
	origin := q.r.Header.Get("Origin")
	if origin == "" || q.container == "" {
		return nil
	}
	ci, err := p.containerInfo(q, q.account, q.container)
	if err != nil || !ci.exists {
		return err
	}
	allowOrigin := corsOrigin(ci.header.Get("X-Container-Meta-Access-Control-Allow-Origin"), origin)
	if allowOrigin == "" {
		return nil
	}
	extra := strings.Fields(strings.ToLower(ci.header.Get("X-Container-Meta-Access-Control-Expose-Headers")))
	onHeaders(q, func(_ int, h http.Header) {
		expose := map[string]bool{"cache-control": true, "content-language": true, "content-type": true, "expires": true,
			"last-modified": true, "pragma": true, "etag": true, "x-timestamp": true, "x-trans-id": true, "x-openstack-request-id": true}
		for k := range h {
			if strings.HasPrefix(k, "X-Container-Meta-") || strings.HasPrefix(k, "X-Object-Meta-") {
				expose[strings.ToLower(k)] = true
			}
		}
		for _, e := range extra {
			expose[e] = true
		}
		list := make([]string, 0, len(expose))
		for k := range expose {
			list = append(list, k)
		}
		sort.Strings(list)
		h.Set("Access-Control-Expose-Headers", strings.Join(list, ", "))
		h.Set("Access-Control-Allow-Origin", allowOrigin)
	})
	return nil
}
