package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// objectAllowedHeaders are the non-metadata headers an object keeps from its
// PUT or POST and returns on GET/HEAD, as Swift's allowed_headers.
var objectAllowedHeaders = []string{
	"Content-Disposition", "Content-Encoding", "X-Delete-At", "X-Object-Manifest",
	"X-Static-Large-Object", "Cache-Control", "Content-Language", "Expires", "X-Robots-Tag",
}

// isObjectUserMeta reports whether k is replaced by a fast-POST.
func isObjectUserMeta(k string) bool {
	return strings.HasPrefix(k, "X-Object-Meta-") || strings.HasPrefix(k, "X-Object-Transient-Sysmeta-")
}

// checkMetadata applies Swift's metadata constraints to the headers with the
// given prefix (X-Object-Meta-, X-Container-Meta-, X-Account-Meta-).
func checkMetadata(h http.Header, prefix string) error {
	count, size := 0, 0
	for k, vs := range h {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		name := k[len(prefix):]
		v := ""
		if len(vs) > 0 {
			v = vs[0]
		}
		if name == "" {
			return httpErr(http.StatusBadRequest, "Metadata name cannot be empty")
		}
		if len(name) > MaxMetaNameLength {
			return httpErr(http.StatusBadRequest, fmt.Sprintf("Metadata name too long: %s%s", prefix, name))
		}
		if len(v) > MaxMetaValueLength {
			return httpErr(http.StatusBadRequest, fmt.Sprintf("Metadata value longer than %d: %s%s", MaxMetaValueLength, prefix, name))
		}
		if strings.IndexByte(v, 0) >= 0 {
			return httpErr(http.StatusBadRequest, "Metadata value contains NUL")
		}
		count++
		size += len(name) + len(v)
	}
	if count > MaxMetaCount {
		return httpErr(http.StatusBadRequest, fmt.Sprintf("Too many metadata items; max %d", MaxMetaCount))
	}
	if size > MaxMetaOverallSize {
		return httpErr(http.StatusBadRequest, fmt.Sprintf("Total metadata too large; max %d", MaxMetaOverallSize))
	}
	return nil
}

// parseDeleteAt validates X-Delete-At on a write: an integer in the future.
func parseDeleteAt(h http.Header) (string, error) {
	v := h.Get("X-Delete-At")
	if v == "" {
		return "", nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return "", httpErr(http.StatusBadRequest, "Non-integer X-Delete-At")
	}
	if n <= time.Now().Unix() {
		return "", httpErr(http.StatusBadRequest, "X-Delete-At in past")
	}
	return strconv.FormatInt(n, 10), nil
}

// expired reports whether md carries an X-Delete-At that has passed.
func expired(md map[string]string, now time.Time) bool {
	v := md["X-Delete-At"]
	if v == "" {
		return false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return err == nil && n <= now.Unix()
}

// splitList splits a comma-separated header value.
func splitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
