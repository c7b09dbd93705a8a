package proxy

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// checkHeaderSizes rejects any header value over max_header_size, as
// Swift's check_metadata does before anything else.
func (p *Proxy) checkHeaderSizes(h http.Header) error {
	max := p.cfg.Constraints.MaxHeaderSize
	for k, vs := range h {
		for _, v := range vs {
			if len(v) > max {
				name := k
				if len(name) > p.cfg.Constraints.MaxMetaNameLength {
					name = name[:p.cfg.Constraints.MaxMetaNameLength]
				}
				return errText(http.StatusBadRequest, "Header value too long: "+name)
			}
		}
	}
	return nil
}

// checkMetadata applies the metadata constraints to the X-<kind>-Meta-*
// headers of a request, with Swift's messages.
func (p *Proxy) checkMetadata(h http.Header, kind string) error {
	c := p.cfg.Constraints
	prefix := "X-" + kind + "-Meta-"
	count, size := 0, 0
	for k, vs := range h {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		name, v := k[len(prefix):], ""
		if len(vs) > 0 {
			v = vs[0]
		}
		if name == "" {
			return errText(http.StatusBadRequest, "Metadata name cannot be empty")
		}
		if kind != "Object" && (!utf8.ValidString(name) || !utf8.ValidString(v)) {
			return errText(http.StatusBadRequest, "Metadata must be valid UTF-8")
		}
		count++
		size += len(name) + len(v)
		switch {
		case len(name) > c.MaxMetaNameLength:
			return errText(http.StatusBadRequest, "Metadata name too long: "+prefix+name)
		case len(v) > c.MaxMetaValueLength:
			return errText(http.StatusBadRequest, fmt.Sprintf("Metadata value longer than %d: %s%s", c.MaxMetaValueLength, prefix, name))
		case count > c.MaxMetaCount:
			return errText(http.StatusBadRequest, fmt.Sprintf("Too many metadata items; max %d", c.MaxMetaCount))
		case size > c.MaxMetaOverallSize:
			return errText(http.StatusBadRequest, fmt.Sprintf("Total metadata too large; max %d", c.MaxMetaOverallSize))
		}
	}
	return nil
}

// maxDeleteAt is the largest X-Delete-At Swift keeps: ten digits.
const maxDeleteAt = 9999999999

// deleteAt turns X-Delete-After into X-Delete-At and validates both, as
// Swift's check_delete_headers. It returns the normalised X-Delete-At, or
// "" when the request sets none.
func deleteAt(h http.Header, now time.Time) (string, error) {
	if v := h.Get("X-Delete-After"); v != "" {
		after, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", errText(http.StatusBadRequest, "Non-integer X-Delete-After")
		}
		if after <= 0 {
			return "", errText(http.StatusBadRequest, "X-Delete-After in past")
		}
		h.Del("X-Delete-After")
		h.Set("X-Delete-At", strconv.FormatInt(now.Unix()+after, 10))
	}
	v := h.Get("X-Delete-At")
	if v == "" {
		return "", nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return "", errText(http.StatusBadRequest, "Non-integer X-Delete-At")
	}
	// Swift clamps to ten digits (normalize_delete_at_timestamp), so an
	// absurdly far future means "never" in practice rather than an error.
	at := int64(min(max(f, 0), maxDeleteAt))
	if at <= now.Unix() {
		return "", errText(http.StatusBadRequest, "X-Delete-At in past")
	}
	s := fmt.Sprintf("%010d", at)
	h.Set("X-Delete-At", s)
	return s, nil
}

// guessContentType picks a type from the object name's extension, as
// Swift does when a PUT has no Content-Type (or X-Detect-Content-Type).
func guessContentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// listingLimit applies container_listing_limit or account_listing_limit
// to a listing's query: a larger limit is 412, as in Swift.
func listingLimit(rawQuery string, max int) (string, error) {
	q, err := parseQuery(rawQuery)
	if err != nil {
		return "", err
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return "", errText(http.StatusPreconditionFailed, "Value of limit must be a positive integer")
		}
		if n > max {
			return "", errText(http.StatusPreconditionFailed, fmt.Sprintf("Maximum limit is %d", max))
		}
		return q.Encode(), nil
	}
	q.Set("limit", strconv.Itoa(max))
	return q.Encode(), nil
}

// parseQuery parses a query string; a malformed one is 400.
func parseQuery(rawQuery string) (url.Values, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errText(http.StatusBadRequest, "Invalid query string")
	}
	return q, nil
}
