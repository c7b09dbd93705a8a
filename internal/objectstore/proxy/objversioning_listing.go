package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// captureWriter holds back a response's status and body so a middleware
// can rewrite the body once the handler is done; headers go straight to
// the real writer.
type captureWriter struct {
	real   http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.real.Header() }

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(b)
}

// rewriteListing runs the container GET with its response held back and
// answers with what edit makes of the body.
func (p *Proxy) rewriteListing(q *request, edit func(status int, body []byte) ([]byte, error)) error {
	return p.rewriteResponse(q, p.containerGet, edit)
}

// rewriteResponse runs handle with its response held back and answers
// with what edit makes of the body.
func (p *Proxy) rewriteResponse(q *request, handle func(*request) error, edit func(status int, body []byte) ([]byte, error)) error {
	out := q.w
	c := &captureWriter{real: out}
	q.w = c
	err := handle(q)
	q.w = out
	if err != nil {
		return err
	}
	body, err := edit(c.status, c.body.Bytes())
	if err != nil {
		return err
	}
	out.Header().Set("Content-Length", strconv.Itoa(len(body)))
	out.WriteHeader(c.status)
	if q.r.Method != http.MethodHead {
		_, _ = out.Write(body)
	}
	return nil
}

// listingRow is one item of a JSON listing, kept as raw fields so that
// whatever the servers put in a row passes through.
type listingRow map[string]json.RawMessage

func (r listingRow) str(k string) string {
	var s string
	_ = json.Unmarshal(r[k], &s)
	return s
}

func (r listingRow) set(k string, v any) { r[k], _ = json.Marshal(v) }

// sortKey is what listings sort rows by: the name, or a subdir's prefix.
func (r listingRow) sortKey() string {
	if _, ok := r["name"]; ok {
		return r.str("name")
	}
	return r.str("subdir")
}

// versionLinkRows shows the rows of links to versions (whose symlink_path
// is in the versions container) as the objects they stand for: the
// version's size and ETag, version_symlink true and, unless the listing is
// a ?versions one (withVersionPath false), the link's path as the object's
// own path with its version id.
func versionLinkRows(body []byte, account, container, versions string, withVersionPath bool) ([]byte, error) {
	var rows []listingRow
	if err := json.Unmarshal(body, &rows); err != nil {
		return body, nil // not a listing this middleware understands
	}
	for _, r := range rows {
		markVersionLink(r, container, versions, withVersionPath)
	}
	out, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("encode container listing: %w", err)
	}
	return out, nil
}

// markVersionLink rewrites one row as versionLinkRows does and reports
// whether it is a link to a version.
func markVersionLink(r listingRow, container, versions string, withVersionPath bool) bool {
	_, hasBytes := r["symlink_bytes"]
	_, hasEtag := r["symlink_etag"]
	if !hasBytes || !hasEtag || r.str("symlink_path") == "" {
		return false
	}
	parts := strings.SplitN(swiftUnquote(r.str("symlink_path")), "/", 5)
	if len(parts) != 5 || parts[3] != versions {
		return false
	}
	_, params, _ := strings.Cut(r.str("hash"), ";")
	hash := r.str("symlink_etag")
	if params = strings.TrimSpace(params); params != "" {
		hash += "; " + params
	}
	r["bytes"] = r["symlink_bytes"]
	delete(r, "symlink_bytes")
	delete(r, "symlink_etag")
	r.set("hash", hash)
	r.set("version_symlink", true)
	if obj, v, ok := splitVersionedName(parts[4]); ok && withVersionPath {
		r.set("symlink_path", "/v1/"+swiftQuote(parts[2]+"/"+container+"/"+obj)+"?version-id="+v)
	}
	return true
}

// acceptsJSON reports whether a ?versions listing, which only exists as
// JSON, may be answered: the format asked for, or the Accept header.
func acceptsJSON(r *http.Request) bool {
	if f, ok := r.URL.Query()["format"]; ok {
		return strings.EqualFold(f[0], "json")
	}
	acc := r.Header.Get("Accept")
	if acc == "" {
		return true
	}
	for _, part := range strings.Split(acc, ",") {
		mt, params, _ := strings.Cut(part, ";")
		if strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") && !strings.Contains(params, "q=0.") {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/json", "application/*", "*/*":
			return true
		}
	}
	return false
}

// versionsQuery maps a ?versions listing's parameters onto the versions
// container's names: prefix and marker in the reserved form of object
// names, version_marker placing the marker among an object's versions.
func versionsQuery(params url.Values) (url.Values, error) {
	out := url.Values{"format": {"json"}}
	vm, hasVM := params["version_marker"]
	if m, ok := params["marker"]; ok {
		switch {
		case !hasVM:
			out.Set("marker", reservedName(m[0], "")+":") // past all its versions
		case vm[0] == nullVersion:
			out.Set("marker", reservedName(m[0], "")) // before all of them
		default:
			if _, ok := parseVersion(vm[0]); !ok {
				return nil, errHTML(http.StatusBadRequest, "invalid version_marker param")
			}
			out.Set("marker", versionedName(m[0], vm[0]))
		}
	} else if hasVM {
		return nil, errHTML(http.StatusBadRequest, "version_marker param requires marker")
	}
	// Version ids are digits and a dot, and the reserved names hold NUL:
	// a delimiter among those would split them.
	if d := params.Get("delimiter"); strings.ContainsAny(d, "0123456789.\x00") {
		return nil, errHTML(http.StatusBadRequest, "invalid delimiter param")
	} else if d != "" {
		out.Set("delimiter", d)
	}
	if pf, ok := params["prefix"]; ok {
		out.Set("prefix", reservedName(pf[0]))
	}
	for _, k := range []string{"limit", "reverse"} {
		if v := params.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out, nil
}

// listVersionsOf answers GET ?versions: the objects written while
// versioning was off (version "null"), every version including delete
// markers, with is_latest on each object's current one, in name order
// (newest version first) and paged as an ordinary listing.
func (p *Proxy) listVersionsOf(q *request, st ovState) error {
	if !acceptsJSON(q.r) {
		return errStatus(http.StatusNotAcceptable)
	}
	params := q.r.URL.Query()
	vq, err := versionsQuery(params)
	if err != nil {
		return err
	}
	limit := p.cfg.Constraints.ContainerListingLimit
	if n, err := strconv.Atoi(params.Get("limit")); err == nil && n >= 0 && n < limit {
		limit = n
	}
	location := st.versions
	if location == "" {
		location = versionsContainer(q.container)
	}
	primary := url.Values{}
	for k, vs := range params {
		if k != "versions" && k != "version_marker" {
			primary[k] = vs
		}
	}
	primary.Set("format", "json")
	q.r.URL.RawQuery = primary.Encode()
	q.r.Header.Del("Accept")
	return p.rewriteListing(q, func(status int, body []byte) ([]byte, error) {
		if status/100 != 2 {
			return body, nil
		}
		var rows []listingRow
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &rows); err != nil {
				return nil, fmt.Errorf("decode container listing: %w", err)
			}
		}
		versions, found, err := p.versionRows(q, location, vq)
		if err != nil {
			return nil, err
		}
		merged := mergeVersionListing(rows, versions, found, q.account, q.container, location)
		sort.SliceStable(merged, func(i, j int) bool {
			if trueValue(params.Get("reverse")) {
				return merged[i].sortKey() > merged[j].sortKey()
			}
			return merged[i].sortKey() < merged[j].sortKey()
		})
		if len(merged) > limit {
			merged = merged[:limit]
		}
		if merged == nil {
			merged = []listingRow{}
		}
		q.w.Header().Set("Content-Type", "application/json; charset=utf-8")
		return json.Marshal(merged)
	})
}

// versionRows lists the versions container with vq; found is false when
// it does not exist.
func (p *Proxy) versionRows(q *request, location string, vq url.Values) (rows []listingRow, found bool, err error) {
	h := p.backendHeaders(q, "")
	h.Set(allowReservedHeader, "true")
	resp, err := p.read(q.ctx(), place(p.rings.container, q.account, location, ""), http.MethodGet, "/"+q.account+"/"+location, vq.Encode(), h)
	if errorStatus(err) == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer discard(resp)
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if resp.StatusCode/100 != 2 {
		return nil, false, errStatus(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil, true, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		return nil, false, fmt.Errorf("decode versions listing: %w", err)
	}
	return rows, true, nil
}

// mergeVersionListing joins a container's listing (primary) and its
// versions container's (versions) into the rows of a ?versions listing,
// unsorted. found is false when the versions container does not exist.
func mergeVersionListing(primary, versions []listingRow, found bool, account, container, location string) []listingRow {
	var out []listingRow
	subdirs := map[string]bool{}
	current := map[string]listingRow{} // link target path → link row
	latest := map[string]bool{}
	for _, r := range primary {
		if _, ok := r["name"]; !ok {
			subdirs[r.str("subdir")] = true
			continue
		}
		if markVersionLink(r, container, location, false) {
			current[swiftUnquote(r.str("symlink_path"))] = r
			continue
		}
		r.set("version_id", nullVersion)
		r.set("is_latest", true)
		latest[r.str("name")] = true
		out = append(out, r)
	}
	for _, r := range versions {
		if _, ok := r["name"]; !ok {
			sub, _, _ := strings.Cut(strings.TrimPrefix(r.str("subdir"), "\x00"), "\x00")
			subdirs[sub] = true
			continue
		}
		vname := r.str("name")
		name, v, ok := splitVersionedName(vname)
		if !ok {
			continue
		}
		if strings.Contains(r.str("hash"), "symlink_target=") {
			rewriteSymlinkRow(r, account)
		}
		key := "/v1/" + account + "/" + location + "/" + vname
		_, isLatest := current[key]
		delete(current, key)
		if !isLatest && r.str("content_type") == deleteMarkerType && !latest[name] {
			isLatest = true
		}
		if isLatest {
			latest[name] = true
		}
		r.set("is_latest", isLatest)
		r.set("name", name)
		r.set("version_id", v)
		out = append(out, r)
	}
	for s := range subdirs {
		out = append(out, listingRow{"subdir": mustJSON(s)})
	}
	// Links whose version is missing from the versions listing still
	// stand for an object (Swift's "broken" listing).
	for path, r := range current {
		parts := strings.SplitN(path, "/", 5)
		if len(parts) != 5 {
			continue
		}
		name, v, ok := splitVersionedName(parts[4])
		if !ok {
			continue
		}
		isLatest := found || !latest[name]
		latest[name] = true
		row := listingRow{"name": mustJSON(name), "is_latest": mustJSON(isLatest), "version_id": mustJSON(v)}
		for _, k := range []string{"content_type", "bytes", "hash", "last_modified"} {
			row[k] = r[k]
		}
		out = append(out, row)
	}
	return out
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// versionLinkSegment shows a DLO segment that is a link to a version as
// the version's data, as Swift's dlo sees it through object_versioning's
// listing: its row holds the link's empty body and the target's ETag and
// size as hash parameters.
func versionLinkSegment(s *segment) {
	val, params, ok := strings.Cut(s.Hash, ";")
	if !ok || !strings.Contains(params, "symlink_target=%00") {
		return
	}
	etag, size := strings.TrimSpace(val), s.Bytes
	for _, prm := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(prm), "=")
		switch k {
		case "symlink_target_etag":
			etag = v
		case "symlink_target_bytes":
			size, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	s.Hash, s.Bytes = etag, size
}

// ovAccountListing answers an account listing in which each versioned
// container's bytes include those of its hidden versions container, as
// Swift's object versioning shows them: the versions are the user's data
// too, but not current objects, so the count stays. A versions container
// whose container is gone (an interrupted delete) is listed under the
// container's name with a count of 0, so that its owner sees the bytes
// and can clean them up. Only JSON listings carry sizes to adjust.
func (p *Proxy) ovAccountListing(q *request) error {
	return p.rewriteResponse(q, p.accountGet, func(status int, body []byte) ([]byte, error) {
		if status != http.StatusOK || !strings.HasPrefix(q.w.Header().Get("Content-Type"), "application/json") {
			return body, nil
		}
		var rows []listingRow
		if err := json.Unmarshal(body, &rows); err != nil {
			return body, nil
		}
		hidden, err := p.versionsContainerRows(q)
		if err != nil {
			return nil, err
		}
		if len(hidden) == 0 {
			return body, nil
		}
		for _, r := range rows {
			if _, ok := r["name"]; !ok {
				continue
			}
			name := r.str("name")
			if v, ok := hidden[name]; ok {
				var own, extra int64
				_ = json.Unmarshal(r["bytes"], &own)
				_ = json.Unmarshal(v["bytes"], &extra)
				r.set("bytes", own+extra)
				delete(hidden, name)
			}
		}
		for name, v := range hidden {
			v.set("name", name)
			v.set("count", 0)
			rows = append(rows, v)
		}
		values, _ := url.ParseQuery(q.r.URL.RawQuery)
		reverse := trueValue(values.Get("reverse"))
		sort.SliceStable(rows, func(i, j int) bool {
			if reverse {
				return rows[i].sortKey() > rows[j].sortKey()
			}
			return rows[i].sortKey() < rows[j].sortKey()
		})
		limit := p.cfg.Constraints.AccountListingLimit
		if n, err := strconv.Atoi(values.Get("limit")); err == nil && n >= 0 && n < limit {
			limit = n
		}
		if len(rows) > limit {
			rows = rows[:limit]
		}
		out, err := json.Marshal(rows)
		if err != nil {
			return nil, fmt.Errorf("encode account listing: %w", err)
		}
		return out, nil
	})
}

// versionsContainerRows lists the account's hidden versions containers
// within the client's prefix, marker and end_marker, keyed by the name of
// the container whose versions each holds.
func (p *Proxy) versionsContainerRows(q *request) (map[string]listingRow, error) {
	values, err := parseQuery(q.r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	if v, ok := values["prefix"]; ok {
		values.Set("prefix", versionsContainer(v[0]))
	} else {
		values.Set("prefix", reservedName("versions"))
	}
	for _, k := range []string{"marker", "end_marker"} {
		if v := values.Get(k); v != "" {
			values.Set(k, versionsContainer(v))
		}
	}
	values.Set("format", "json")
	query, err := listingLimit(values.Encode(), p.cfg.Constraints.AccountListingLimit)
	if err != nil {
		return nil, err
	}
	h := p.backendHeaders(q, "")
	h.Set(allowReservedHeader, "true")
	resp, err := p.read(q.ctx(), place(p.rings.account, q.account, "", ""), http.MethodGet, "/"+q.account, query, h)
	if errorStatus(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list versions containers: %w", err)
	}
	defer resp.Body.Close()
	var rows []listingRow
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		return nil, nil // an empty answer (204) or no listing: nothing to add
	}
	out := make(map[string]listingRow, len(rows))
	prefix := reservedName("versions", "")
	for _, r := range rows {
		if name, ok := strings.CutPrefix(r.str("name"), prefix); ok {
			out[name] = r
		}
	}
	return out, nil
}
