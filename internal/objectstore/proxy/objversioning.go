package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Object versioning (Swift's object_versioning middleware, the successor
// of the legacy versioned_writes in versioning.go). A container with
// X-Versions-Enabled: true keeps every object it is given in a hidden
// container of the reserved (NUL-prefixed) namespace, "\x00versions\x00
// <container>", as "\x00<object>\x00<inverted timestamp>", and the object
// itself becomes a static symlink to its newest version. The version id
// clients see is that timestamp. A DELETE writes a delete marker version
// and removes the link. ?versions lists every version, and ?version-id
// reads, deletes or restores (PUT) one. Clients cannot name the reserved
// namespace (the proxy refuses NUL in names), so only the proxy's own
// requests below reach it.

const (
	// ovEnabledSysmeta stores X-Versions-Enabled; ovContainerSysmeta names
	// (quoted) the container's versions container once versioning was
	// first enabled, which it keeps when versioning is suspended.
	ovEnabledSysmeta   = "X-Container-Sysmeta-Versions-Enabled"
	ovContainerSysmeta = "X-Container-Sysmeta-Versions-Container"
	// ovSymlinkSysmeta marks an object as the link to its newest version,
	// as opposed to a client's symlink or an object written while
	// versioning was off (a "null" version).
	ovSymlinkSysmeta = "X-Object-Sysmeta-Versions-Symlink"
	// allowReservedSysmeta lets a link's target be in the reserved
	// namespace, which no client could read by name.
	allowReservedSysmeta = "X-Object-Sysmeta-Allow-Reserved-Names"
	// allowReservedHeader asks the storage servers to list reserved names.
	allowReservedHeader = "X-Backend-Allow-Reserved-Names"

	versionIDHeader    = "X-Object-Version-Id"
	versionsEnabledHdr = "X-Versions-Enabled"
	nullVersion        = "null"
	versionsNoContMsg  = "The versions container does not exist. You may want to re-enable object versioning."
)

// reservedName joins parts into a name of the reserved namespace, as
// Swift's get_reserved_name.
func reservedName(parts ...string) string { return "\x00" + strings.Join(parts, "\x00") }

// versionsContainer is the hidden container of container's versions.
func versionsContainer(container string) string { return reservedName("versions", container) }

// maxRawTimestamp is Swift's largest timestamp in 1e-5 s ticks; a version
// name inverts its timestamp against it so that a plain ascending listing
// shows each object's versions newest first.
const maxRawTimestamp = 999_999_999_999_999

// parseVersion reads a version id (a Swift timestamp, "1700000000.12345")
// as ticks of 1e-5 s; ok is false for anything else.
func parseVersion(v string) (int64, bool) {
	secs, frac, _ := strings.Cut(v, ".")
	if secs == "" || len(secs) > 10 || !isDigits(secs) || (frac != "" && !isDigits(frac)) {
		return 0, false
	}
	s, _ := strconv.ParseInt(secs, 10, 64)
	frac = (frac + "00000")[:5]
	f, _ := strconv.ParseInt(frac, 10, 64)
	return s*100000 + f, true
}

// formatTicks is Swift's normal timestamp form of ticks.
func formatTicks(t int64) string { return fmt.Sprintf("%010d.%05d", t/100000, t%100000) }

// versionedName is where version ts (a valid version id) of object lives
// in its versions container.
func versionedName(object, ts string) string {
	t, _ := parseVersion(ts)
	return reservedName(object, formatTicks(maxRawTimestamp-t))
}

// splitVersionedName is versionedName's inverse; ok is false for names
// that are not versions.
func splitVersionedName(name string) (object, version string, ok bool) {
	rest, found := strings.CutPrefix(name, "\x00")
	if !found {
		return "", "", false
	}
	object, inv, found := strings.Cut(rest, "\x00")
	t, valid := parseVersion(inv)
	if !found || !valid || strings.Contains(inv, "\x00") {
		return "", "", false
	}
	return object, formatTicks(maxRawTimestamp - t), true
}

// ovState is a container's object versioning: its versions container
// ("" if versioning was never enabled) and whether it is on now.
type ovState struct {
	versions string
	enabled  bool
}

func (p *Proxy) objectVersioningOn() bool { return !p.cfg.Middlewares.DisableObjectVersioning }

// ovStateOf reads a container's versioning state from its info.
func (p *Proxy) ovStateOf(q *request, account, container string) (ovState, error) {
	if !p.objectVersioningOn() || strings.HasPrefix(container, "\x00") {
		return ovState{}, nil
	}
	ci, err := p.containerInfo(q, account, container)
	if err != nil || !ci.exists {
		return ovState{}, err
	}
	vc, _, _ := strings.Cut(swiftUnquote(ci.header.Get(ovContainerSysmeta)), "/")
	return ovState{versions: vc, enabled: trueValue(ci.header.Get(ovEnabledSysmeta))}, nil
}

// objectVersioning is the middleware's place in the pipeline, after
// authorization: it answers what it handles itself (handled) and
// otherwise prepares q for the ordinary handlers.
func (p *Proxy) objectVersioning(q *request) (handled bool, err error) {
	if !p.objectVersioningOn() {
		return false, nil
	}
	switch {
	case q.object != "":
		return p.ovObjectRequest(q)
	case q.container != "":
		return p.ovContainerRequest(q)
	}
	return false, nil
}

// ovCheckResponse is Swift's _check_response_error for the middleware's
// own backend writes: a missing container is 412, other client errors
// pass on, anything else is 503.
func ovCheckResponse(status int) error {
	switch {
	case status/100 == 2:
		return nil
	case status == http.StatusNotFound:
		return errStatus(http.StatusPreconditionFailed)
	case status/100 == 4:
		return errStatus(status)
	}
	return errStatus(http.StatusServiceUnavailable)
}

// ---- containers ----

// ovContainerRequest handles deleting a versioned container and its
// listings; enabling is done by ovContainerHeaders within the write.
func (p *Proxy) ovContainerRequest(q *request) (bool, error) {
	switch q.r.Method {
	case http.MethodDelete:
		return false, p.ovContainerDelete(q)
	case http.MethodGet, http.MethodHead:
		return true, p.ovContainerGet(q)
	}
	return false, nil
}

// versionsPolicy is the storage policy header of a new versions
// container: its container's policy (400 if that is deprecated), else
// the policy a PUT names, else the default, as Swift's object_versioning.
func (p *Proxy) versionsPolicy(q *request, ci info) ([2]string, error) {
	if !ci.exists {
		if q.r.Method == http.MethodPut {
			return p.putPolicy(q.r.Header.Get("X-Storage-Policy"))
		}
		return p.putPolicy("")
	}
	pol, err := p.cfg.Policies.FromHeader(ci.header.Get("X-Backend-Storage-Policy-Index"))
	if err != nil {
		return [2]string{}, errStatus(http.StatusServiceUnavailable)
	}
	if pol.Deprecated {
		return [2]string{}, errText(http.StatusBadRequest, "Cannot enable object versioning on a container that uses a deprecated storage policy.")
	}
	return [2]string{"X-Backend-Storage-Policy-Index", strconv.Itoa(pol.Index)}, nil
}

// ovContainerHeaders turns X-Versions-Enabled on a container PUT or POST
// into system metadata, creating the versions container the first time
// versioning is enabled. Legacy versioning and container sync exclude it.
func (p *Proxy) ovContainerHeaders(q *request, base http.Header) error {
	h := q.r.Header
	_, set := h[versionsEnabledHdr]
	if !p.objectVersioningOn() {
		return nil
	}
	ci, err := p.containerInfo(q, q.account, q.container)
	if err != nil {
		return err
	}
	legacy := h.Get("X-Versions-Location") != "" || h.Get("X-History-Location") != ""
	if legacy && ci.exists && ci.header.Get(ovContainerSysmeta) != "" {
		return errText(http.StatusBadRequest, "Cannot enable legacy versioned writes on a container that is already using object versioning.")
	}
	if !set {
		return nil
	}
	if legacy || (ci.exists && ci.header.Get(versionsLocationSysmeta) != "") {
		return errText(http.StatusBadRequest, "Cannot enable object versioning on a container that is already using the legacy versioned writes feature.")
	}
	if h.Get("X-Container-Sync-To") != "" || (ci.exists && ci.header.Get("X-Container-Sync-To") != "") {
		return errText(http.StatusBadRequest, "Cannot enable object versioning on a container configured as source of container syncing.")
	}
	enabled := trueValue(h.Get(versionsEnabledHdr))
	if !enabled {
		base.Set(ovEnabledSysmeta, "False")
		return nil
	}
	base.Set(ovEnabledSysmeta, "True")
	vc := versionsContainer(q.container)
	polHdr, err := p.versionsPolicy(q, ci)
	if err != nil {
		return err
	}
	if status := p.reservedContainerWriteWith(q, http.MethodPut, vc, polHdr); status/100 != 2 && status != http.StatusConflict {
		return errText(http.StatusInternalServerError, "Error enabling object versioning")
	}
	base.Set(ovContainerSysmeta, swiftQuote(vc))
	return nil
}

// reservedContainerWrite creates (PUT) or deletes a container of the
// reserved namespace in q's account and returns the cluster's status.
func (p *Proxy) reservedContainerWrite(q *request, method, container string) int {
	return p.reservedContainerWriteWith(q, method, container, [2]string{})
}

// reservedContainerWriteWith is reservedContainerWrite with one more
// backend header (a storage policy), if set.
func (p *Proxy) reservedContainerWriteWith(q *request, method, container string, extra [2]string) int {
	base := p.backendHeaders(q, p.clock.now())
	if extra[0] != "" {
		base.Set(extra[0], extra[1])
	}
	pl := place(p.rings.container, q.account, container, "")
	slots := slotHeaders(base, len(pl.primaries))
	spreadUpdates(slots, "X-Account", place(p.rings.account, q.account, "", ""))
	status, _ := bestStatus(p.write(q.ctx(), pl, method, "/"+q.account+"/"+container, bySlot(slots)), pl.quorum())
	p.infos.drop(q.account + "/" + container)
	p.infos.drop(q.account)
	return status
}

// reservedHead HEADs a container of the reserved namespace; nil if it
// does not exist.
func (p *Proxy) reservedHead(q *request, account, container string) (*http.Response, error) {
	h := p.backendHeaders(q, "")
	h.Set(allowReservedHeader, "true")
	resp, err := p.read(q.ctx(), place(p.rings.container, account, container, ""), http.MethodHead, "/"+account+"/"+container, "", h)
	if errorStatus(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("head versions container: %w", err)
	}
	discard(resp)
	return resp, nil
}

// ovContainerDelete refuses to delete a container while versions of its
// objects remain, and otherwise deletes its versions container first.
func (p *Proxy) ovContainerDelete(q *request) error {
	st, err := p.ovStateOf(q, q.account, q.container)
	if err != nil || st.versions == "" {
		return err
	}
	resp, err := p.reservedHead(q, q.account, st.versions)
	if err != nil {
		return errText(http.StatusInternalServerError, "Error deleting versioned container")
	}
	if resp != nil {
		if n, _ := strconv.ParseInt(resp.Header.Get("X-Container-Object-Count"), 10, 64); n > 0 {
			return errText(http.StatusConflict, "Delete all versions before deleting container.")
		}
		if s := p.reservedContainerWrite(q, http.MethodDelete, st.versions); s/100 != 2 && s != http.StatusNotFound {
			return errText(http.StatusInternalServerError, "Error deleting versioned container")
		}
	}
	return nil
}

// ovContainerGet answers a container HEAD or GET: X-Versions-Enabled and
// the bytes of the versions container counted in, links to versions
// shown as the objects they stand for, and ?versions listings.
func (p *Proxy) ovContainerGet(q *request) error {
	ci, err := p.containerInfo(q, q.account, q.container)
	if err != nil {
		return err
	}
	st, err := p.ovStateOf(q, q.account, q.container)
	if err != nil {
		return err
	}
	if _, ok := q.r.URL.Query()["versions"]; ok && q.r.Method == http.MethodGet {
		return p.listVersionsOf(q, st)
	}
	var extraBytes int64
	if st.versions != "" {
		resp, err := p.reservedHead(q, q.account, st.versions)
		if err != nil {
			return err
		}
		if resp != nil {
			extraBytes, _ = strconv.ParseInt(resp.Header.Get("X-Container-Bytes-Used"), 10, 64)
		}
	}
	if ci.exists && ci.header.Get(ovEnabledSysmeta) != "" {
		enabled := ci.header.Get(ovEnabledSysmeta)
		onHeaders(q, func(status int, h http.Header) {
			if status/100 == 2 {
				h.Set(versionsEnabledHdr, enabled)
			}
		})
	}
	if extraBytes > 0 {
		onHeaders(q, func(status int, h http.Header) {
			if n, err := strconv.ParseInt(h.Get("X-Container-Bytes-Used"), 10, 64); err == nil && status/100 == 2 {
				h.Set("X-Container-Bytes-Used", strconv.FormatInt(n+extraBytes, 10))
			}
		})
	}
	if st.versions == "" || q.r.Method != http.MethodGet {
		return p.containerGet(q)
	}
	return p.rewriteListing(q, func(status int, body []byte) ([]byte, error) {
		if status != http.StatusOK || !strings.HasPrefix(q.w.Header().Get("Content-Type"), "application/json") {
			return body, nil
		}
		return versionLinkRows(body, q.account, q.container, st.versions, true)
	})
}

// ---- objects ----

// ovObjectRequest handles object requests in versioned containers and
// ?version-id requests.
func (p *Proxy) ovObjectRequest(q *request) (bool, error) {
	st, err := p.ovStateOf(q, q.account, q.container)
	if err != nil {
		return false, err
	}
	// A temp URL is signed for the object's path only: Swift ignores the
	// version it asks for and serves the current one.
	if v := q.r.URL.Query().Get("version-id"); v != "" && !q.signed {
		return p.ovVersionRequest(q, st, v)
	}
	if st.versions == "" {
		return false, nil
	}
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
		p.showVersionOfLink(q, st)
	case http.MethodPost:
		return p.ovPost(q, st)
	case http.MethodDelete:
		if st.enabled && !p.isSLODelete(q) {
			return true, p.ovDelete(q, st)
		}
	}
	return false, nil
}

// showVersionOfLink reports the version a GET or HEAD read through the
// object's link: X-Object-Version-Id, and Content-Location and
// X-Symlink-Target naming the version by the object's own path.
func (p *Proxy) showVersionOfLink(q *request, st ovState) {
	acct, cont, obj := q.account, q.container, q.object
	byVersion := func(v string) string { return swiftQuote(cont+"/"+obj) + "?version-id=" + v }
	onHeaders(q, func(status int, h http.Header) {
		h.Set(versionIDHeader, nullVersion)
		if loc := swiftUnquote(h.Get("Content-Location")); loc != "" {
			if rest, ok := strings.CutPrefix(loc, "/v1/"+acct+"/"+st.versions+"/"); ok {
				if _, v, ok := splitVersionedName(rest); ok {
					h.Set(versionIDHeader, v)
					h.Set("Content-Location", "/v1/"+swiftQuote(acct)+"/"+byVersion(v))
				}
			}
		}
		if tgt := swiftUnquote(h.Get(symlinkTargetHeader)); tgt != "" {
			if rest, ok := strings.CutPrefix(tgt, st.versions+"/"); ok {
				if _, v, ok := splitVersionedName(rest); ok {
					h.Set(versionIDHeader, v)
					h.Set(symlinkTargetHeader, byVersion(v))
				}
			}
		}
	})
}

// headLink reads an object's own metadata (a link is not followed), nil
// if it does not exist.
func (p *Proxy) headLink(q *request, names [3]string) (*http.Response, error) {
	h := p.backendHeaders(q, "")
	h.Set(allowReservedHeader, "true")
	pl, err := p.objectPlace(q, names[0], names[1], names[2])
	if err != nil {
		return nil, err
	}
	resp, err := p.readNewest(q.ctx(), pl, http.MethodHead, "/"+names[0]+"/"+names[1]+"/"+names[2], "", h)
	if errorStatus(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	discard(resp)
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode/100 != 2 {
		return nil, ovCheckResponse(resp.StatusCode)
	}
	return resp, nil
}

// currentVersion is the versions-container object the object's link
// points at ("" when the object does not exist or is not such a link).
func (p *Proxy) currentVersion(q *request, st ovState) (string, error) {
	resp, err := p.headLink(q, [3]string{q.account, q.container, q.object})
	if err != nil || resp == nil || resp.Header.Get(ovSymlinkSysmeta) != "true" {
		return "", err
	}
	cont, obj, _ := strings.Cut(swiftUnquote(resp.Header.Get(symlinkTargetSysmeta)), "/")
	if cont != st.versions {
		return "", nil
	}
	return obj, nil
}

// ovVersionRequest handles a request naming a version (?version-id).
func (p *Proxy) ovVersionRequest(q *request, st ovState, version string) (bool, error) {
	if q.r.Method == http.MethodPost {
		return true, errHTML(http.StatusBadRequest, "POST to a specific version is not allowed")
	}
	if version == nullVersion {
		return p.ovNullVersion(q, st)
	}
	if st.versions == "" {
		return true, errHTML(http.StatusBadRequest, "version-aware operations require that the container is versioned")
	}
	if _, ok := parseVersion(version); !ok {
		return true, errHTML(http.StatusBadRequest, "Invalid version parameter")
	}
	// Swift reaches the version by its reserved name, which no ACL can
	// grant: only the account's owners may.
	if !q.owner {
		return true, p.deny(q)
	}
	vname := versionedName(q.object, version)
	switch q.r.Method {
	case http.MethodPut:
		return true, p.restoreVersionLink(q, st, vname)
	case http.MethodDelete:
		return true, p.deleteVersion(q, st, version, vname)
	}
	if q.r.Method == http.MethodGet || q.r.Method == http.MethodHead {
		resp, err := p.headLink(q, [3]string{q.account, st.versions, vname})
		if err != nil {
			return true, err
		}
		if resp != nil && resp.Header.Get("Content-Type") == deleteMarkerType {
			_, body := errorBody(http.StatusNotFound)
			return true, &swiftError{status: http.StatusNotFound, body: body,
				header: http.Header{versionIDHeader: {version}, "Content-Type": {deleteMarkerType}}}
		}
	}
	// A COPY reads the version and answers as the write to its
	// destination (a new version there), copied from the object's name.
	copied := swiftQuote(q.container + "/" + q.object)
	q.container, q.object = st.versions, vname
	onHeaders(q, func(status int, h http.Header) {
		switch {
		case status/100 != 2:
		case q.r.Method == "COPY":
			h.Set("X-Copied-From", copied)
		default:
			h.Set(versionIDHeader, version)
		}
	})
	return false, nil
}

// ovNullVersion handles ?version-id=null: the object itself, when it is
// not a link to a version.
func (p *Proxy) ovNullVersion(q *request, st ovState) (bool, error) {
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
		if st.versions != "" {
			cur, err := p.currentVersion(q, st)
			if err != nil {
				return true, err
			}
			if cur != "" {
				return true, errStatus(http.StatusNotFound)
			}
		}
		onHeaders(q, func(status int, h http.Header) {
			if status/100 == 2 {
				h.Set(versionIDHeader, nullVersion)
			}
		})
	}
	// DELETE ?version-id=null removes the object without a delete marker.
	return false, nil
}

// restoreVersionLink answers PUT ?version-id: the object becomes a link to
// that version again.
func (p *Proxy) restoreVersionLink(q *request, st ovState, vname string) error {
	hasBody := q.r.ContentLength > 0
	if q.r.ContentLength < 0 {
		if len(q.r.TransferEncoding) == 0 {
			return errStatus(http.StatusLengthRequired)
		}
		var b [1]byte
		n, _ := io.ReadFull(q.r.Body, b[:])
		hasBody = n > 0
	}
	if hasBody {
		return errText(http.StatusBadRequest, "PUT version-id requests require a zero byte body")
	}
	resp, err := p.headLink(q, [3]string{q.account, st.versions, vname})
	if err != nil {
		return err
	}
	if resp == nil {
		if vr, err := p.reservedHead(q, q.account, st.versions); err == nil && vr != nil {
			return errText(http.StatusNotFound, "The specified version does not exist")
		}
		return errText(http.StatusInternalServerError, versionsNoContMsg)
	}
	size := resp.Header.Get(sloSizeSysmeta)
	if size == "" {
		size = resp.Header.Get("Content-Length")
	}
	h := q.r.Header.Clone()
	h.Set("Content-Type", resp.Header.Get("Content-Type"))
	if v := resp.Header.Get(sloEtagSysmeta); v != "" {
		h.Set(sloEtagSysmeta, v)
	}
	return p.putVersionLink(q, st, vname, linkEtag(resp.Header), size, h, nil)
}

// putVersionLink writes the object as the static link to version vname
// (with etag and size) and answers the client. h are the client's
// headers (metadata, expiry) the link keeps.
func (p *Proxy) putVersionLink(q *request, st ovState, vname, etag, size string, h, extra http.Header) error {
	lh := h.Clone()
	lh.Del(etagOverrideSysmeta)
	for _, k := range []string{"Etag", "X-If-Delete-At", "X-Object-Manifest", sloHeader, sloEtagSysmeta, sloSizeSysmeta,
		symlinkTargetAccountHeader, symlinkTargetAccountSysmeta, symlinkTargetHeader, symlinkTargetEtagHeader, "If-None-Match"} {
		lh.Del(k)
	}
	// A manifest's link lists as the large object, with its ETag.
	if v := h.Get(sloEtagSysmeta); v != "" && lh.Get(etagOverrideSysmeta) == "" {
		lh.Set(etagOverrideSysmeta, md5OfEmpty+"; slo_etag="+v)
	}
	if ct := lh.Get("Content-Type"); ct != "" {
		lh.Set("Content-Type", strings.TrimSpace(strings.Split(ct, ";")[0]))
	}
	lh.Set(symlinkTargetSysmeta, swiftQuote(st.versions+"/"+vname))
	lh.Set(symlinkTargetEtagSysmeta, etag)
	lh.Set(symlinkTargetBytesSysmeta, size)
	lh.Set(symloopExtendSysmeta, "true")
	lh.Set(ovSymlinkSysmeta, "true")
	lh.Set(allowReservedSysmeta, "true")
	setSymlinkOverride(lh)
	names := [3]string{q.account, q.container, q.object}
	status, hdr, ts, err := p.storeObject(q, names, lh, strings.NewReader(""), 0)
	if err != nil {
		return err
	}
	out := http.Header{}
	for k, vs := range hdr {
		out[k] = vs
	}
	if status/100 == 2 {
		for k, vs := range extra {
			q.w.Header()[k] = vs
		}
		_, v, _ := splitVersionedName(vname)
		out.Set("Etag", etag)
		out.Set(versionIDHeader, v)
		q.w.Header().Set("Last-Modified", lastModified(ts))
	}
	writeStatus(q, status, out)
	return nil
}

// versionedPut stores a write into an enabled versioned container as a
// new version and links the object to it; done is false for containers
// that do not version writes. putObject calls it for every kind of write
// (plain, copy, SLO manifest, symlink).
func (p *Proxy) versionedPut(q *request, names [3]string, h http.Header, body io.Reader, length int64, extra http.Header) (done bool, err error) {
	if !p.objectVersioningOn() || strings.HasPrefix(names[1], "\x00") {
		return false, nil
	}
	st, err := p.ovStateOf(q, names[0], names[1])
	if err != nil || !st.enabled || st.versions == "" {
		return false, err
	}
	if err := p.checkVersionsQuota(q, names, st, length); err != nil {
		return true, err
	}
	if err := p.archiveUnversioned(q, names, st); err != nil {
		return true, err
	}
	ts := p.clock.now()
	vname := versionedName(names[2], ts)
	vh := h.Clone()
	vh.Del("X-Delete-At")
	vh.Del("X-Delete-After")
	counter := &countingReader{r: body}
	status, hdr, _, err := p.storeObject(q, [3]string{names[0], st.versions, vname}, vh, counter, length)
	if errorStatus(err) == http.StatusNotFound || (err == nil && status == http.StatusNotFound) {
		return true, errText(http.StatusInternalServerError, versionsNoContMsg)
	}
	if err != nil {
		return true, err
	}
	if status/100 != 2 {
		return true, ovCheckResponse(status)
	}
	size := h.Get(sloSizeSysmeta)
	if size == "" {
		size = strconv.FormatInt(counter.n, 10)
	}
	saved := [3]string{q.account, q.container, q.object}
	q.account, q.container, q.object = names[0], names[1], names[2]
	defer func() { q.account, q.container, q.object = saved[0], saved[1], saved[2] }()
	etag := linkEtag(hdr)
	if v := vh.Get(symlinkTargetEtagSysmeta); v != "" {
		etag = v
	}
	return true, p.putVersionLink(q, st, vname, etag, size, h, extra)
}

// countingReader counts the bytes of a body, whose length a chunked
// upload does not tell.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// archiveUnversioned copies the object into the versions container when
// it is not a link to a version already (it was written while versioning
// was off, or before it was enabled), so that the write about to replace
// it does not lose it.
func (p *Proxy) archiveUnversioned(q *request, names [3]string, st ovState) error {
	resp, err := p.openSource(q, names, "")
	if errorStatus(err) == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.Header.Get(ovSymlinkSysmeta) == "true" {
		return nil
	}
	ts := resp.Header.Get("X-Timestamp")
	if _, ok := parseVersion(ts); !ok {
		ts = p.clock.now()
	}
	dst := [3]string{names[0], st.versions, versionedName(names[2], ts)}
	status, _, _, err := p.storeObject(q, dst, storedHeaders(resp), resp.Body, resp.ContentLength)
	if err == nil && status == http.StatusNotFound {
		return errText(http.StatusInternalServerError, versionsNoContMsg)
	}
	if err != nil {
		return err
	}
	return ovCheckResponse(status)
}

// ovDelete deletes an object of an enabled versioned container: the
// current data stays as a version, a delete marker records the deletion
// and the object's link goes.
func (p *Proxy) ovDelete(q *request, st ovState) error {
	names := [3]string{q.account, q.container, q.object}
	if err := p.archiveUnversioned(q, names, st); err != nil {
		return err
	}
	ts := p.clock.now()
	marker := [3]string{q.account, st.versions, versionedName(q.object, ts)}
	mh := http.Header{"Content-Type": {deleteMarkerType}}
	status, _, _, err := p.storeObject(q, marker, mh, strings.NewReader(""), 0)
	if err != nil {
		return err
	}
	if err := ovCheckResponse(status); err != nil {
		return err
	}
	status, hdr, err := p.removeObject(q, names)
	if err != nil {
		return err
	}
	out := http.Header{}
	for k, vs := range hdr {
		out[k] = vs
	}
	if status/100 == 2 || status == http.StatusNotFound {
		out.Set(versionIDHeader, ts)
	}
	writeStatus(q, status, out)
	return nil
}

// deleteVersion answers DELETE ?version-id: that version goes and, when
// the object links to it, the link too.
func (p *Proxy) deleteVersion(q *request, st ovState, version, vname string) error {
	cur, err := p.currentVersion(q, st)
	if err != nil {
		return err
	}
	current := nullVersion
	if cur == vname {
		status, _, err := p.removeObject(q, [3]string{q.account, q.container, q.object})
		if err != nil {
			return err
		}
		if err := ovCheckResponse(status); err != nil {
			return err
		}
	} else if cur != "" {
		_, current, _ = splitVersionedName(cur)
	}
	q.container, q.object = st.versions, vname
	onHeaders(q, func(status int, h http.Header) {
		h.Set(versionIDHeader, version)
		h.Set("X-Object-Current-Version-Id", current)
	})
	if p.isSLODelete(q) {
		return p.sloDelete(q)
	}
	return p.objectDelete(q)
}

// ovPost applies a POST to an object that links to its version to that
// version as well, whose metadata reads show (Swift follows the 307 the
// link answers). Expiry stays with the link.
func (p *Proxy) ovPost(q *request, st ovState) (bool, error) {
	cur, err := p.currentVersion(q, st)
	if err != nil || cur == "" {
		return false, err
	}
	// The link takes the POST and answers 307 to its target (nothing
	// is written yet); any other outcome is the answer.
	if err := p.objectPost(q); errorStatus(err) != http.StatusTemporaryRedirect {
		return true, err
	}
	q.r.Header.Del("X-Delete-At")
	q.r.Header.Del("X-Delete-After")
	q.container, q.object = st.versions, cur
	return true, p.objectPost(q)
}

// checkVersionsQuota counts the versions container's bytes against the
// container's byte quota, as Swift's container_quotas sees them through
// object_versioning's container HEAD.
func (p *Proxy) checkVersionsQuota(q *request, names [3]string, st ovState, length int64) error {
	if p.cfg.Middlewares.DisableContainerQuotas {
		return nil
	}
	ci, err := p.containerInfo(q, names[0], names[1])
	if err != nil || !isDigits(ci.header.Get("X-Container-Meta-Quota-Bytes")) {
		return err
	}
	vr, err := p.reservedHead(q, names[0], st.versions)
	if err != nil || vr == nil {
		return err
	}
	used := usage(ci.header, "X-Container-Bytes-Used") + usage(vr.Header, "X-Container-Bytes-Used") + max(length, 0)
	if used > usage(ci.header, "X-Container-Meta-Quota-Bytes") {
		return errOverQuota()
	}
	return nil
}

// linkEtag is the ETag a link to a version records: the version's, or,
// for a version that is a static link itself, its target's, which is
// what following links compares (see symlinkHop).
func linkEtag(h http.Header) string {
	if v := h.Get(symlinkTargetEtagSysmeta); v != "" {
		return v
	}
	return strings.Trim(h.Get("Etag"), `"`)
}

// reservedForOwner reports whether container is in the reserved namespace
// of q's account and q's caller owns it: only object versioning leads
// requests there (deleting a version that is an SLO manifest), for
// owners only, and no ACL check could pass a name clients cannot use.
func reservedForOwner(q *request, container string) bool {
	return q.owner && strings.HasPrefix(container, "\x00")
}
