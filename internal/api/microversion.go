package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Version is an API microversion such as compute 2.79.
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less reports whether v is older than o.
func (v Version) Less(o Version) bool {
	return v.Major < o.Major || (v.Major == o.Major && v.Minor < o.Minor)
}

// AtLeast reports whether v is o or newer; handlers gate behaviour on it.
func (v Version) AtLeast(major, minor int) bool { return !v.Less(Version{major, minor}) }

// ParseVersion parses "2.79".
func ParseVersion(s string) (Version, error) {
	maj, min, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok {
		return Version{}, fmt.Errorf("version %q is not of the form major.minor", s)
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(min)
	if err1 != nil || err2 != nil || a < 0 || b < 0 {
		return Version{}, fmt.Errorf("version %q is not of the form major.minor", s)
	}
	return Version{a, b}, nil
}

// Microversions describes the versions one service speaks.
type Microversions struct {
	// ServiceType is the token in "OpenStack-API-Version: <type> <version>".
	ServiceType string
	// LegacyHeader is the pre-standard header, e.g. X-OpenStack-Nova-API-Version.
	LegacyHeader string
	Min, Max     Version
}

// Negotiate picks the version a request asked for: the standard header
// wins over the legacy one; none means Min; "latest" means Max. A version
// out of range is a 406, a malformed one a 400, as Nova answers. The chosen
// version is echoed in the response headers (with Vary) so caches and
// clients see what was served.
func (m Microversions) Negotiate(w http.ResponseWriter, r *http.Request) (Version, error) {
	requested := ""
	for _, h := range r.Header.Values("OpenStack-API-Version") {
		for _, part := range strings.Split(h, ",") {
			typ, ver, ok := strings.Cut(strings.TrimSpace(part), " ")
			if ok && strings.EqualFold(typ, m.ServiceType) {
				requested = strings.TrimSpace(ver)
			}
		}
	}
	if requested == "" && m.LegacyHeader != "" {
		requested = strings.TrimSpace(r.Header.Get(m.LegacyHeader))
	}
	v := m.Min
	switch {
	case requested == "":
	case strings.EqualFold(requested, "latest"):
		v = m.Max
	default:
		parsed, err := ParseVersion(requested)
		if err != nil {
			return Version{}, BadRequest("Invalid API version request: %s.", err)
		}
		if parsed.Less(m.Min) || m.Max.Less(parsed) {
			return Version{}, Errorf(http.StatusNotAcceptable, "Version %s is not supported by the API. Minimum is %s and maximum is %s.", parsed, m.Min, m.Max)
		}
		v = parsed
	}
	h := w.Header()
	h.Set("OpenStack-API-Version", m.ServiceType+" "+v.String())
	h.Add("Vary", "OpenStack-API-Version")
	if m.LegacyHeader != "" {
		h.Set(m.LegacyHeader, v.String())
		h.Add("Vary", m.LegacyHeader)
	}
	return v, nil
}
