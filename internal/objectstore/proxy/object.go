package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

func (p *Proxy) objectRequest(q *request) error {
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
		return p.objectGet(q)
	case http.MethodPut:
		// A synced SLO manifest arrives in its stored form, maybe before
		// its segments; Swift's slo_override stores it as it is.
		if !p.cfg.Middlewares.DisableSLO && q.r.Header.Get(sloHeader) != "" && !p.isSLOPut(q) && !q.synced {
			return errText(http.StatusBadRequest, "X-Static-Large-Object is a reserved header. To create a static large object add query param multipart-manifest=put.")
		}
		if q.r.Header.Get("X-Copy-From") != "" {
			return p.copyFrom(q)
		}
		if p.isSLOPut(q) {
			return p.sloPut(q)
		}
		if _, ok := q.r.Header[symlinkTargetHeader]; ok && p.symlinkOn() {
			return p.symlinkPut(q)
		}
		return p.objectPut(q)
	case http.MethodPost:
		return p.objectPost(q)
	case http.MethodDelete:
		if p.isSLODelete(q) {
			return p.sloDelete(q)
		}
		return p.objectDelete(q)
	case "COPY":
		return p.copyTo(q)
	}
	return methodNotAllowed("COPY, DELETE, GET, HEAD, POST, PUT")
}

// readHeaders are the client headers an object GET or HEAD forwards; the
// object servers answer ranges and conditions themselves.
func isReadHeader(k string) bool {
	switch k {
	case "Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range":
		return true
	}
	return false
}

func (p *Proxy) objectGet(q *request) error {
	h := p.backendHeaders(q, "")
	copyHeaders(h, q.r.Header, isReadHeader)
	pl, err := p.objectPlace(q, q.account, q.container, q.object)
	if err != nil {
		return err
	}
	resp, err := p.readAny(q, pl, q.names(), "", h)
	if err != nil {
		return err
	}
	if done, err := p.symlinkGet(q, resp); done {
		return err
	}
	if (resp.StatusCode == http.StatusPartialContent || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable) &&
		(isDLO(q, resp) || p.isSLO(q, resp)) {
		// The object server applied the range to the manifest's own body;
		// the large object needs the manifest whole, with its real
		// content type (Swift's slo refetches it the same way).
		discard(resp)
		h.Del("Range")
		if resp, err = p.readAny(q, pl, q.names(), "", h); err != nil {
			return err
		}
	}
	if isDLO(q, resp) {
		discard(resp)
		return p.serveDLO(q, resp.Header)
	}
	if p.isSLO(q, resp) {
		return p.serveSLO(q, resp)
	}
	if done, err := p.serveSLOManifest(q, resp); done {
		return err
	}
	return p.relay(q, resp)
}

// objectAllowedHeaders are the non-metadata headers an object keeps, as
// Swift's allowed_headers (the object server's list, less what only
// middleware may set).
var objectAllowedHeaders = []string{
	"Content-Disposition", "Content-Encoding", "X-Delete-At", "X-Object-Manifest",
	"Cache-Control", "Content-Language", "Expires", "X-Robots-Tag",
}

// objectMetaHeaders copies an object write's user metadata and allowed
// headers from src to dst.
func objectMetaHeaders(dst, src http.Header) {
	for k, vs := range src {
		if strings.HasPrefix(k, "X-Object-Meta-") {
			dst[k] = vs
		}
	}
	for _, k := range objectAllowedHeaders {
		if v := src.Get(k); v != "" {
			dst.Set(k, v)
		}
	}
}

// objectWriteSlots prepares the per-replica headers of an object write:
// the container update targets, and the expirer queue entry when the
// object has an X-Delete-At. It checks the container exists (404 if not),
// as objects cannot live outside one.
func (p *Proxy) objectWriteSlots(q *request, base http.Header, names [3]string) ([]http.Header, placement, error) {
	ci, err := p.containerInfo(q, names[0], names[1])
	if err != nil {
		return nil, placement{}, err
	}
	if !ci.exists {
		return nil, placement{}, errStatus(http.StatusNotFound)
	}
	pl, err := p.objectPlace(q, names[0], names[1], names[2])
	if err != nil {
		return nil, placement{}, err
	}
	slots := slotHeaders(base, len(pl.primaries))
	spreadUpdates(slots, "X-Container", place(p.rings.container, names[0], names[1], ""))
	if at := base.Get("X-Delete-At"); at != "" {
		p.expirerUpdates(slots, at, names)
	}
	return slots, pl, nil
}

func (p *Proxy) objectPost(q *request) error {
	if _, ok := q.r.Header[symlinkTargetHeader]; ok && p.symlinkOn() {
		return errText(http.StatusBadRequest, "A PUT request is required to set a symlink target")
	}
	if err := p.checkMetadata(q.r.Header, "Object"); err != nil {
		return err
	}
	if _, err := deleteAt(q.r.Header, time.Now()); err != nil {
		return err
	}
	base := p.backendHeaders(q, p.clock.now())
	objectMetaHeaders(base, q.r.Header)
	if ct := q.r.Header.Get("Content-Type"); ct != "" {
		base.Set("Content-Type", ct)
	}
	slots, pl, err := p.objectWriteSlots(q, base, [3]string{q.account, q.container, q.object})
	if err != nil {
		return err
	}
	// A POST changes the container listing only with a new content type
	// (size and ETag are the data's); otherwise the object servers are
	// spared the container updates.
	if base.Get("Content-Type") == "" {
		for _, h := range slots {
			h.Del("X-Container-Host")
			h.Del("X-Container-Device")
			h.Del("X-Container-Partition")
		}
	}
	status, hdr := bestStatus(p.write(q.ctx(), pl, http.MethodPost, q.names(), bySlot(slots)), pl.quorum())
	if p.symlinkOn() {
		if err := p.symlinkPost(q, status); err != nil {
			return err
		}
	}
	writeStatus(q, status, hdr)
	return nil
}

func (p *Proxy) objectDelete(q *request) error {
	names := [3]string{q.account, q.container, q.object}
	if v := q.r.Header.Get("X-If-Delete-At"); v != "" {
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return errText(http.StatusBadRequest, "Bad X-If-Delete-At header value")
		}
	}
	if done, err := p.versionedDelete(q, names); done || err != nil {
		return err
	}
	status, hdr, err := p.removeObject(q, names)
	if err != nil {
		return err
	}
	writeStatus(q, status, hdr)
	return nil
}

// removeObject deletes one object and returns the cluster's answer
// without writing a response, for middlewares deleting on a client's
// behalf.
func (p *Proxy) removeObject(q *request, names [3]string) (int, http.Header, error) {
	h := p.backendHeaders(q, p.clock.now())
	// The client's X-If-Delete-At guards its own object only (Swift's
	// object servers answer 412 when it does not match).
	if v := q.r.Header.Get("X-If-Delete-At"); v != "" && names == [3]string{q.account, q.container, q.object} {
		h.Set("X-If-Delete-At", v)
	}
	slots, pl, err := p.objectWriteSlots(q, h, names)
	if err != nil {
		return 0, nil, err
	}
	status, hdr := bestStatus(p.write(q.ctx(), pl, http.MethodDelete, "/"+names[0]+"/"+names[1]+"/"+names[2], bySlot(slots)), pl.quorum())
	return status, hdr, nil
}
