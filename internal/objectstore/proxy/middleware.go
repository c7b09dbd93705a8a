package proxy

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// Middlewares configures the features Swift implements as proxy
// middlewares. All are on by default, as in Swift's default proxy
// pipeline, because Tempest and Swift's functional tests expect them;
// each Disable* turns one off, which also removes it from GET /info.
// Zero settings take Swift's defaults.
type Middlewares struct {
	DisableSLO, DisableTempURL, DisableFormPost, DisableStaticWeb bool
	DisableBulk, DisableVersionedWrites                           bool
	DisableAccountQuotas, DisableContainerQuotas                  bool
	DisableCrossDomain, DisableHealthcheck                        bool
	// DisableContainerSync refuses X-Container-Sync-To and sync requests
	// and drops container_sync from /info.
	DisableContainerSync bool
	// DisableSymlink turns off symlinks: X-Symlink-Target is then an
	// ordinary header and links are not followed.
	DisableSymlink bool
	// DisableObjectVersioning turns off object versioning
	// (X-Versions-Enabled, ?versions and ?version-id); Swift's
	// allow_object_versioning is its opposite.
	DisableObjectVersioning bool
	// SymloopMax bounds the links one read follows (Swift's symloop_max,
	// 2).
	SymloopMax int

	// SLOMaxManifestSegments bounds the segments of one manifest (1000);
	// SLOMaxManifestSize bounds its JSON body (8 MiB).
	SLOMaxManifestSegments int
	SLOMaxManifestSize     int64
	// TempURLMethods are the methods temp URLs may be signed for (GET,
	// HEAD, PUT, POST, DELETE).
	TempURLMethods []string
	// AllowedDigests are the HMAC digests temp URLs and form posts accept
	// (sha1, sha256, sha512).
	AllowedDigests []string
	// BulkMaxDeletesPerRequest (10000) and BulkMaxFailedDeletes (1000)
	// bound a bulk delete; BulkMaxContainersPerExtraction (10000) and
	// BulkMaxFailedExtractions (1000) bound an archive extraction.
	BulkMaxDeletesPerRequest, BulkMaxFailedDeletes           int
	BulkMaxContainersPerExtraction, BulkMaxFailedExtractions int
	// CrossDomainPolicy is the body of /crossdomain.xml's
	// <cross-domain-policy> element.
	CrossDomainPolicy string
	// DomainRemap serves <container>.<account>.<storage domain> hosts as
	// their /v1 paths; unlike the others it is off until storage domains
	// are configured.
	DomainRemap DomainRemap
}

func (m Middlewares) withDefaults() Middlewares {
	if m.SLOMaxManifestSegments <= 0 {
		m.SLOMaxManifestSegments = 1000
	}
	if m.SLOMaxManifestSize <= 0 {
		m.SLOMaxManifestSize = 8 * 1024 * 1024
	}
	if len(m.TempURLMethods) == 0 {
		m.TempURLMethods = []string{"GET", "HEAD", "PUT", "POST", "DELETE"}
	}
	if len(m.AllowedDigests) == 0 {
		m.AllowedDigests = []string{"sha1", "sha256", "sha512"}
	}
	for _, v := range []*int{&m.BulkMaxDeletesPerRequest, &m.BulkMaxContainersPerExtraction} {
		if *v <= 0 {
			*v = 10000
		}
	}
	for _, v := range []*int{&m.BulkMaxFailedDeletes, &m.BulkMaxFailedExtractions} {
		if *v <= 0 {
			*v = 1000
		}
	}
	if m.SymloopMax < 1 {
		m.SymloopMax = defaultSymloopMax
	}
	if m.CrossDomainPolicy == "" {
		m.CrossDomainPolicy = `<allow-access-from domain="*" secure="false" />`
	}
	return m
}

// middlewareInfo is the /info sections of the enabled middlewares, with
// the settings clients read there (python-swiftclient reads the SLO
// limits, Tempest the temp URL methods).
func (m Middlewares) info() map[string]any {
	out := map[string]any{}
	add := func(disabled bool, name string, settings map[string]any) {
		if !disabled {
			out[name] = settings
		}
	}
	add(m.DisableSLO, "slo", map[string]any{
		"max_manifest_segments": m.SLOMaxManifestSegments,
		"max_manifest_size":     m.SLOMaxManifestSize,
		"yield_frequency":       int(sloYieldFrequency / time.Second),
		"min_segment_size":      1,
		"allow_async_delete":    false,
	})
	add(m.DisableTempURL, "tempurl", map[string]any{
		"methods":                 m.TempURLMethods,
		"incoming_remove_headers": []string{"x-timestamp"},
		"incoming_allow_headers":  []string{},
		"outgoing_remove_headers": []string{"x-object-meta-*"},
		"outgoing_allow_headers":  []string{"x-object-meta-public-*"},
		"allowed_digests":         m.AllowedDigests,
	})
	add(m.DisableFormPost, "formpost", map[string]any{"allowed_digests": m.AllowedDigests})
	add(m.DisableStaticWeb, "staticweb", map[string]any{})
	add(m.DisableBulk, "bulk_delete", map[string]any{
		"max_deletes_per_request": m.BulkMaxDeletesPerRequest,
		"max_failed_deletes":      m.BulkMaxFailedDeletes,
	})
	add(m.DisableBulk, "bulk_upload", map[string]any{
		"max_containers_per_extraction": m.BulkMaxContainersPerExtraction,
		"max_failed_extractions":        m.BulkMaxFailedExtractions,
	})
	add(m.DisableVersionedWrites, "versioned_writes", map[string]any{
		"allowed_flags": []string{"x-versions-location", "x-history-location"},
	})
	// Object versioning stores versions behind static symlinks.
	add(m.DisableObjectVersioning || m.DisableSymlink, "object_versioning", map[string]any{})
	add(m.DisableAccountQuotas, "account_quotas", map[string]any{})
	add(m.DisableContainerQuotas, "container_quotas", map[string]any{})
	add(m.DisableCrossDomain, "crossdomain", map[string]any{})
	add(m.DisableSymlink, "symlink", map[string]any{"symloop_max": m.SymloopMax, "static_links": true})
	add(!m.DomainRemap.enabled(), "domain_remap", m.DomainRemap.info())
	return out
}

// digestAllowed reports whether temp URLs and form posts accept digest.
func (m Middlewares) digestAllowed(digest string) bool {
	return slices.Contains(m.AllowedDigests, digest)
}

// headerHook is an http.ResponseWriter that lets a middleware change the
// response headers once the status is known, whichever code path writes
// the response (relay, writeStatus, writeError): Swift's middlewares
// wrap start_response the same way.
type headerHook struct {
	http.ResponseWriter
	hook  func(status int, h http.Header)
	wrote bool
}

func (w *headerHook) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		w.hook(status, w.Header())
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *headerHook) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *headerHook) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// onHeaders installs hook on q's response; hooks installed later run
// first.
func onHeaders(q *request, hook func(status int, h http.Header)) {
	q.w = &headerHook{ResponseWriter: q.w, hook: hook}
}

// trueValue is Swift's config_true_value.
func trueValue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on", "t", "y":
		return true
	}
	return false
}

// healthcheck answers /healthcheck as Swift's healthcheck middleware: the
// proxy process is up and serving.
func healthcheck(q *request) error {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		return methodNotAllowed("GET, HEAD")
	}
	writeBody(q.w, q.r, http.StatusOK, "text/plain", "OK")
	return nil
}

// crossDomain answers /crossdomain.xml, the Flash/Silverlight cross-domain
// policy file of Swift's crossdomain middleware.
func (p *Proxy) crossDomain(q *request) error {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		return methodNotAllowed("GET, HEAD")
	}
	body := `<?xml version="1.0"?>` + "\n" +
		`<!DOCTYPE cross-domain-policy SYSTEM "http://www.adobe.com/xml/dtds/cross-domain-policy.dtd" >` + "\n" +
		"<cross-domain-policy>\n" + p.cfg.Middlewares.CrossDomainPolicy + "\n</cross-domain-policy>"
	writeBody(q.w, q.r, http.StatusOK, "application/xml; charset=utf-8", body)
	return nil
}
