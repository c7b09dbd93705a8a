package proxy

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/swiftfmt"
)

// Static Large Objects (Swift's slo middleware): PUT ?multipart-manifest=put
// with a JSON list of segments stores a manifest whose GET reads as the
// segments (or byte ranges of them) concatenated. The proxy checks every
// segment when the manifest is stored, so reads never find a missing one
// that was there at upload.

const (
	sloHeader      = "X-Static-Large-Object"
	sloEtagSysmeta = "X-Object-Sysmeta-Slo-Etag"
	sloSizeSysmeta = "X-Object-Sysmeta-Slo-Size"
	// etagOverrideSysmeta replaces the ETag of an object's container
	// update (Swift's container update override).
	etagOverrideSysmeta = "X-Object-Sysmeta-Container-Update-Override-Etag"
	// sloMaxDepth bounds manifests of manifests, as Swift's max nesting.
	sloMaxDepth = 10
)

// sloSegment is one entry of a stored manifest, as Swift stores it.
type sloSegment struct {
	Name         string `json:"name"`
	Bytes        int64  `json:"bytes"`
	Hash         string `json:"hash"`
	ContentType  string `json:"content_type"`
	LastModified string `json:"last_modified"`
	Range        string `json:"range,omitempty"`
	SubSLO       bool   `json:"sub_slo,omitempty"`
	// Data is an inline data segment's bytes, base64: such an entry has
	// no other field, as Swift stores it ({"data": "..."}).
	Data string `json:"data,omitempty"`
}

// MarshalJSON stores an inline data segment as {"data": ...} alone.
func (s sloSegment) MarshalJSON() ([]byte, error) {
	if s.Data != "" {
		return json.Marshal(map[string]string{"data": s.Data})
	}
	type plain sloSegment
	return json.Marshal(plain(s))
}

// rawData is an inline data segment's bytes.
func (s sloSegment) rawData() ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s.Data)
	if err != nil {
		return nil, fmt.Errorf("slo data segment: %w", err)
	}
	return b, nil
}

// sloInput is one validated entry of an uploaded manifest.
type sloInput struct {
	path  string
	etag  *string
	size  *int64
	rngIn string
	data  []byte // an inline data segment instead of path
}

func (p *Proxy) multipartManifest(q *request) string {
	if p.cfg.Middlewares.DisableSLO {
		return ""
	}
	return q.r.URL.Query().Get("multipart-manifest")
}

func (p *Proxy) isSLOPut(q *request) bool    { return p.multipartManifest(q) == "put" }
func (p *Proxy) isSLODelete(q *request) bool { return p.multipartManifest(q) == "delete" }

// isSLO reports whether a GET or HEAD answer is a manifest to assemble.
// Ranges and conditions the object server applied to the manifest itself
// (206, 416, 412, 304) are applied again to the large object by
// serveAssembled, as Swift's slo middleware does.
func (p *Proxy) isSLO(q *request, resp *http.Response) bool {
	if p.cfg.Middlewares.DisableSLO || !trueValue(resp.Header.Get(sloHeader)) || p.multipartManifest(q) == "get" {
		return false
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable,
		http.StatusPreconditionFailed, http.StatusNotModified:
		return true
	}
	return false
}

// parseSLOManifest validates an uploaded manifest with Swift's checks and
// error texts; all problems are reported at once.
func parseSLOManifest(body []byte, self string) ([]sloInput, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		var probe any
		if json.Unmarshal(body, &probe) == nil {
			return nil, errText(http.StatusBadRequest, "Manifest must be a list.\n")
		}
		return nil, errText(http.StatusBadRequest, "Manifest must be valid JSON.\n")
	}
	var errs []string
	var out []sloInput
	for i, r := range raw {
		var m map[string]any
		if json.Unmarshal(r, &m) != nil || m == nil {
			errs = append(errs, fmt.Sprintf("Index %d: not a JSON object", i))
			continue
		}
		if _, ok := m["path"]; !ok {
			if _, ok := m["data"]; ok {
				in, problem := parseDataSegment(m, i)
				if problem != "" {
					errs = append(errs, problem)
				} else {
					out = append(out, in)
				}
				continue
			}
			errs = append(errs, fmt.Sprintf(`Index %d: missing keys "path"`, i))
			continue
		}
		var extra []string
		for k := range m {
			switch k {
			case "path", "etag", "size_bytes", "range":
			default:
				extra = append(extra, strconv.Quote(k))
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			errs = append(errs, fmt.Sprintf("Index %d: extraneous keys %s", i, strings.Join(extra, ", ")))
			continue
		}
		in := sloInput{}
		path, ok := m["path"].(string)
		if !ok {
			errs = append(errs, fmt.Sprintf(`Index %d: "path" must be a string`, i))
			continue
		}
		in.path = path
		if e, present := m["etag"]; present && e != nil {
			s, ok := e.(string)
			if !ok {
				errs = append(errs, fmt.Sprintf(`Index %d: "etag" must be a string or null (if provided)`, i))
				continue
			}
			in.etag = &s
		}
		if !strings.Contains(strings.Trim(path, "/"), "/") {
			errs = append(errs, fmt.Sprintf("Index %d: path does not refer to an object. Path must be of the form /container/object.", i))
			continue
		}
		if sz, present := m["size_bytes"]; present && sz != nil {
			n, ok := jsonInt(sz)
			if !ok {
				errs = append(errs, fmt.Sprintf("Index %d: invalid size_bytes", i))
				continue
			}
			if n < 1 && i != len(raw)-1 {
				errs = append(errs, fmt.Sprintf("Index %d: too small; each segment must be at least 1 byte.", i))
				continue
			}
			in.size = &n
		}
		if "/"+strings.TrimLeft(path, "/") == self {
			errs = append(errs, fmt.Sprintf("Index %d: manifest must not include itself as a segment", i))
			continue
		}
		if rv, present := m["range"]; present && rv != nil && rv != "" {
			s, _ := rv.(string)
			in.rngIn = s
			if !strings.Contains(s, "-") || s == "-" {
				errs = append(errs, fmt.Sprintf("Index %d: invalid range", i))
				continue
			}
			if strings.Contains(s, ",") {
				errs = append(errs, fmt.Sprintf("Index %d: multiple ranges (only one allowed)", i))
				continue
			}
			if in.size != nil {
				if rs, ok := parseByteRanges("bytes="+s, *in.size); !ok || len(rs) != 1 {
					errs = append(errs, fmt.Sprintf("Index %d: unsatisfiable range", i))
					continue
				}
			}
		}
		out = append(out, in)
	}
	if len(out) > 0 && !slices.ContainsFunc(out, func(in sloInput) bool { return in.data == nil }) {
		errs = append(errs, "Inline data segments require at least one object-backed segment.")
	}
	if len(errs) > 0 {
		return nil, &swiftError{status: http.StatusBadRequest, body: strings.Join(errs, "\n") + "\n"}
	}
	return out, nil
}

// parseDataSegment validates manifest entry i of the inline data kind
// ({"data": "<base64>"}), which SLO serves between object segments
// without storing an object for it; it returns the entry or a problem.
func parseDataSegment(m map[string]any, i int) (sloInput, string) {
	var extra []string
	for k := range m {
		if k != "data" {
			extra = append(extra, strconv.Quote(k))
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return sloInput{}, fmt.Sprintf("Index %d: extraneous keys %s", i, strings.Join(extra, ", "))
	}
	v, _ := m["data"].(string)
	data, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return sloInput{}, fmt.Sprintf("Index %d: data must be valid base64", i)
	}
	if len(data) < 1 {
		return sloInput{}, fmt.Sprintf("Index %d: too small; each segment must be at least 1 byte.", i)
	}
	return sloInput{data: data}, ""
}

// jsonInt accepts a JSON number or numeric string, as Swift's int().
func jsonInt(v any) (int64, bool) {
	switch x := v.(type) {
	case float64:
		return int64(x), x == float64(int64(x))
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// sloPut stores a manifest after checking each segment exists, is
// readable by the caller and matches the etag and size it was given.
func (p *Proxy) sloPut(q *request) error {
	mw := p.cfg.Middlewares
	if q.r.ContentLength > mw.SLOMaxManifestSize {
		return errText(http.StatusRequestEntityTooLarge, fmt.Sprintf("Manifest File > %d bytes", mw.SLOMaxManifestSize))
	}
	body, err := io.ReadAll(io.LimitReader(q.r.Body, mw.SLOMaxManifestSize+1))
	if err != nil {
		return errStatus(statusClientDisconnect)
	}
	if int64(len(body)) > mw.SLOMaxManifestSize {
		return errText(http.StatusRequestEntityTooLarge, fmt.Sprintf("Manifest File > %d bytes", mw.SLOMaxManifestSize))
	}
	inputs, err := parseSLOManifest(body, "/"+q.container+"/"+q.object)
	if err != nil {
		return err
	}
	if len(inputs) > mw.SLOMaxManifestSegments {
		return errText(http.StatusRequestEntityTooLarge, fmt.Sprintf("Number of object segments must be <= %d", mw.SLOMaxManifestSegments))
	}
	if len(inputs) == 0 {
		return errText(http.StatusBadRequest, "Manifest must have at least one segment.\n")
	}
	if v := q.r.Header.Get("If-None-Match"); v != "" && v != "*" {
		return errText(http.StatusBadRequest, "If-None-Match only supports *")
	}
	// With heartbeat=on the client gets 202 at once and a space every
	// yield_frequency while the segments are checked, then the outcome in
	// the body, as Swift's slo answers long manifest uploads.
	var beat func()
	format := bulkFormat(q.r)
	if trueValue(q.r.URL.Query().Get("heartbeat")) {
		startStreamedResponse(q, http.StatusAccepted, format)
		last := time.Time{}
		beat = func() {
			if time.Since(last) >= sloYieldFrequency {
				last = time.Now()
				_, _ = io.WriteString(q.w, " ")
				_ = http.NewResponseController(q.w).Flush()
			}
		}
		beat()
	}
	var problems [][2]string
	var stored []sloSegment
	var total int64
	etag := md5.New()
	for i, in := range inputs {
		if in.data != nil {
			// Swift hashes a data segment's md5 into the SLO's ETag.
			sum := md5.Sum(in.data)
			etag.Write([]byte(hex.EncodeToString(sum[:])))
			total += int64(len(in.data))
			stored = append(stored, sloSegment{Data: base64.StdEncoding.EncodeToString(in.data)})
			continue
		}
		seg, length, problem := p.checkSegment(q, in, i == len(inputs)-1)
		if beat != nil {
			beat()
		}
		problems = append(problems, problem...)
		if len(problem) > 0 {
			continue
		}
		total += length
		stored = append(stored, seg)
		if seg.Range != "" {
			fmt.Fprintf(etag, "%s:%s;", seg.Hash, seg.Range)
		} else {
			etag.Write([]byte(seg.Hash))
		}
	}
	if len(problems) > 0 {
		if beat != nil {
			return heartbeatOutcome(q, format, http.StatusBadRequest, nil, problems)
		}
		return segmentProblems(format, problems)
	}
	sloEtag := hex.EncodeToString(etag.Sum(nil))
	if want := strings.Trim(q.r.Header.Get("Etag"), `"`); want != "" && want != sloEtag {
		if beat != nil {
			return heartbeatOutcome(q, format, http.StatusUnprocessableEntity, nil, nil)
		}
		return errStatus(http.StatusUnprocessableEntity)
	}
	manifest, err := json.Marshal(stored)
	if err != nil {
		return fmt.Errorf("encode slo manifest: %w", err)
	}
	h := q.r.Header.Clone()
	if ct := h.Get("Content-Type"); ct == "" || trueValue(h.Get("X-Detect-Content-Type")) {
		h.Set("Content-Type", guessContentType(q.object))
	}
	sum := md5.Sum(manifest)
	h.Set("Etag", hex.EncodeToString(sum[:]))
	h.Set(sloHeader, "True")
	h.Set(sloEtagSysmeta, sloEtag)
	h.Set(sloSizeSysmeta, strconv.FormatInt(total, 10))
	names := [3]string{q.account, q.container, q.object}
	if beat != nil {
		status, ts, err := p.storeManifest(q, names, h, manifest)
		if err != nil {
			status = errorStatus(err)
		}
		var fields []bulkField
		if status == http.StatusCreated {
			fields = []bulkField{{"Etag", `"` + sloEtag + `"`}, {"Last Modified", lastModified(ts)}}
		}
		return heartbeatOutcome(q, format, status, fields, nil)
	}
	// Clients see the large object's ETag, not the manifest body's.
	onHeaders(q, func(status int, rh http.Header) {
		if status == http.StatusCreated {
			rh.Set("Etag", `"`+sloEtag+`"`)
		}
	})
	return p.putObject(q, names, h, bytes.NewReader(manifest), int64(len(manifest)), nil)
}

// sloListingHeaders marks a manifest about to be stored for its container
// listing as Swift's slo does on every manifest PUT: its total size as the
// content type's swift_bytes, and its ETag as the slo_etag parameter of the
// container update's ETag (whose value stays the manifest body's MD5, or
// what a middleware before put there). A manifest stored again (a copy, a
// version) is marked afresh from its system metadata, replacing the marks
// it was read with.
func sloListingHeaders(h http.Header) {
	if !trueValue(h.Get(sloHeader)) || h.Get(sloSizeSysmeta) == "" || h.Get(sloEtagSysmeta) == "" {
		return
	}
	h.Set("Content-Type", swiftfmt.WithSwiftBytes(h.Get("Content-Type"), h.Get(sloSizeSysmeta)))
	val, params, _ := strings.Cut(h.Get(etagOverrideSysmeta), ";")
	if strings.TrimSpace(val) == "" {
		val = strings.Trim(h.Get("Etag"), `"`)
	}
	var kept []string
	for _, p := range strings.Split(params, ";") {
		if k, _, _ := strings.Cut(p, "="); strings.TrimSpace(k) != "slo_etag" && strings.TrimSpace(p) != "" {
			kept = append(kept, strings.TrimSpace(p))
		}
	}
	kept = append(kept, "slo_etag="+h.Get(sloEtagSysmeta))
	h.Set(etagOverrideSysmeta, strings.TrimSpace(val)+"; "+strings.Join(kept, "; "))
}

// sloYieldFrequency is how often a heartbeating manifest upload sends a
// space (Swift's yield_frequency, which /info announces).
const sloYieldFrequency = 10 * time.Second

// storeManifest stores a checked manifest as putObject does, for a
// heartbeating upload whose response is already out.
func (p *Proxy) storeManifest(q *request, names [3]string, h http.Header, manifest []byte) (int, string, error) {
	if err := p.checkQuotas(q, names, int64(len(manifest))); err != nil {
		return 0, "", err
	}
	if err := p.versionBeforeWrite(q, names); err != nil {
		return 0, "", err
	}
	status, _, ts, err := p.storeObject(q, names, h, bytes.NewReader(manifest), int64(len(manifest)))
	return status, ts, err
}

// heartbeatOutcome ends a heartbeating manifest upload: a blank line, then
// the status, body and fields (the ETag and Last-Modified of a stored
// manifest) with the segment problems, in the client's format.
func heartbeatOutcome(q *request, format string, status int, fields []bulkField, problems [][2]string) error {
	body := ""
	if status/100 != 2 {
		r := reasons[status]
		body = r[0] + "\n" + r[1]
	}
	fields = append(fields, bulkField{"Response Status", statusLine(status)}, bulkField{"Response Body", body})
	_, _ = io.WriteString(q.w, "\r\n\r\n"+bulkBody(format, fields, problems, "upload"))
	return nil
}

// checkSegment HEADs one segment and checks it against its entry.
func (p *Proxy) checkSegment(q *request, in sloInput, last bool) (sloSegment, int64, [][2]string) {
	name := "/" + strings.TrimLeft(in.path, "/")
	quoted := pyQuote(in.path)
	cont, obj, _ := strings.Cut(name[1:], "/")
	problem := func(why string) (sloSegment, int64, [][2]string) {
		return sloSegment{}, 0, [][2]string{{quoted, why}}
	}
	if err := p.authorizePeer(q, [3]string{q.account, cont, obj}, http.MethodHead); err != nil {
		return problem(statusLine(errorStatus(err)))
	}
	// A segment may be a symlink, which Swift's slo reads through.
	resp, err := p.readLinked(q, [3]string{q.account, cont, obj}, http.MethodHead, p.backendHeaders(q, ""))
	if err != nil {
		return problem(statusLine(errorStatus(err)))
	}
	discard(resp)
	if resp.StatusCode/100 != 2 {
		return problem(statusLine(resp.StatusCode))
	}
	size, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	hash := strings.Trim(resp.Header.Get("Etag"), `"`)
	sub := trueValue(resp.Header.Get(sloHeader))
	if sub {
		size, _ = strconv.ParseInt(resp.Header.Get(sloSizeSysmeta), 10, 64)
		hash = resp.Header.Get(sloEtagSysmeta)
	}
	seg := sloSegment{Name: name, Bytes: size, Hash: hash, ContentType: resp.Header.Get("Content-Type"), SubSLO: sub}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		seg.LastModified = lm.UTC().Format("2006-01-02T15:04:05.000000")
	} else {
		seg.LastModified = time.Now().UTC().Format("2006-01-02T15:04:05.000000")
	}
	length := size
	var problems [][2]string
	if in.rngIn != "" {
		rs, ok := parseByteRanges("bytes="+in.rngIn, size)
		switch {
		case !ok || len(rs) != 1:
			problems = append(problems, [2]string{quoted, "Unsatisfiable Range"})
		case rs[0][0] == 0 && rs[0][1] == size-1:
			// The range is the whole object: store it as such.
		default:
			seg.Range = fmt.Sprintf("%d-%d", rs[0][0], rs[0][1])
			length = rs[0][1] - rs[0][0] + 1
		}
	}
	if length < 1 && !last {
		problems = append(problems, [2]string{quoted, "Too small; each segment must be at least 1 byte."})
	}
	if in.size != nil && *in.size != size {
		problems = append(problems, [2]string{quoted, "Size Mismatch"})
	}
	if in.etag != nil && strings.Trim(*in.etag, `"`) != hash {
		problems = append(problems, [2]string{quoted, "Etag Mismatch"})
	}
	return seg, length, problems
}

// checkManifestSegments checks a stored manifest's segments in account
// as sloPut checks an uploaded one's; problems are a 400 listing them.
func (p *Proxy) checkManifestSegments(q *request, account string, manifest []byte) error {
	var segs []sloSegment
	if err := json.Unmarshal(manifest, &segs); err != nil {
		return errText(http.StatusBadRequest, "Manifest must be valid JSON.\n")
	}
	in := *q
	in.account = account
	var problems [][2]string
	for i, s := range segs {
		if s.Data != "" {
			continue
		}
		size, etag := s.Bytes, s.Hash
		_, _, problem := p.checkSegment(&in, sloInput{path: s.Name, etag: &etag, size: &size, rngIn: s.Range}, i == len(segs)-1)
		problems = append(problems, problem...)
	}
	if len(problems) > 0 {
		return segmentProblems(bulkFormat(q.r), problems)
	}
	return nil
}

// segmentProblems is the 400 answer listing a manifest's bad segments.
func segmentProblems(format string, problems [][2]string) error {
	return &swiftError{status: http.StatusBadRequest, body: bulkBody(format, nil, problems, "upload"),
		header: http.Header{"Content-Type": {format}}}
}

// serveSLO answers a GET or HEAD of a manifest as the large object.
func (p *Proxy) serveSLO(q *request, resp *http.Response) error {
	mh := resp.Header
	etag := mh.Get(sloEtagSysmeta)
	size, _ := strconv.ParseInt(mh.Get(sloSizeSysmeta), 10, 64)
	// Swift's slo names the manifest's own ETag too: static links to the
	// large object record that one.
	q.w.Header().Set("X-Manifest-Etag", strings.Trim(mh.Get("Etag"), `"`))
	if q.r.Method == http.MethodHead {
		discard(resp)
		// A HEAD needs only the size the manifest recorded; no segment
		// is read.
		return p.serveAssembled(q, mh, etag, []piece{{first: 0, last: size - 1}})
	}
	if resp.StatusCode != http.StatusOK {
		// The client's Range applied to the manifest; read all of it.
		discard(resp)
		var err error
		if resp, err = p.readManifest(q, q.container, q.object); err != nil {
			return err
		}
	}
	pieces, err := p.manifestPieces(q, resp)
	if err != nil {
		return err
	}
	return p.serveAssembled(q, mh, etag, pieces)
}

// manifestPieces reads an SLO manifest from resp and resolves its
// segments (nested manifests included) into pieces.
func (p *Proxy) manifestPieces(q *request, resp *http.Response) ([]piece, error) {
	segs, err := decodeManifest(resp)
	if err != nil {
		return nil, err
	}
	return p.sloPieces(q, segs, 0)
}

// readManifest GETs a manifest object's own body.
func (p *Proxy) readManifest(q *request, cont, obj string) (*http.Response, error) {
	resp, err := p.readLinked(q, [3]string{q.account, cont, obj}, http.MethodGet, p.backendHeaders(q, ""))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		discard(resp)
		return nil, errStatus(resp.StatusCode)
	}
	return resp, nil
}

func decodeManifest(resp *http.Response) ([]sloSegment, error) {
	defer resp.Body.Close()
	var segs []sloSegment
	if err := json.NewDecoder(resp.Body).Decode(&segs); err != nil {
		return nil, fmt.Errorf("decode slo manifest: %w", err)
	}
	return segs, nil
}

// sloPieces turns manifest entries into the byte ranges to read,
// expanding nested manifests; the caller must be allowed to read every
// segment, as Swift's segment GETs are made with the caller's identity.
func (p *Proxy) sloPieces(q *request, segs []sloSegment, depth int) ([]piece, error) {
	if depth >= sloMaxDepth {
		// Swift's slo answers its stock 409 (the depth error is only
		// logged), which clients and its functional tests match.
		return nil, errStatus(http.StatusConflict)
	}
	var out []piece
	checked := map[string]bool{}
	for _, s := range segs {
		if s.Data != "" {
			data, err := s.rawData()
			if err != nil {
				return nil, err
			}
			out = append(out, piece{data: data, first: 0, last: int64(len(data)) - 1})
			continue
		}
		cont, obj, _ := strings.Cut(strings.TrimLeft(s.Name, "/"), "/")
		if !checked[cont] {
			if err := p.authorizePeer(q, [3]string{q.account, cont, obj}, http.MethodGet); err != nil {
				// A segment the caller may not read makes the large
				// object unservable: Swift's slo answers 409, as for
				// any segment that cannot be fetched.
				if s := errorStatus(err); s == http.StatusUnauthorized || s == http.StatusForbidden {
					return nil, errText(http.StatusConflict, fmt.Sprintf("While processing manifest /%s/%s/%s, got %s while retrieving /%s/%s",
						q.account, q.container, q.object, statusLine(s), cont, obj))
				}
				return nil, err
			}
			checked[cont] = true
		}
		first, last := int64(0), s.Bytes-1
		if s.Range != "" {
			if rs, ok := parseByteRanges("bytes="+s.Range, s.Bytes); ok && len(rs) == 1 {
				first, last = rs[0][0], rs[0][1]
			}
		}
		if last < first {
			continue
		}
		if !s.SubSLO {
			out = append(out, piece{container: cont, object: obj, first: first, last: last})
			continue
		}
		resp, err := p.readManifest(q, cont, obj)
		if err != nil {
			return nil, err
		}
		sub, err := decodeManifest(resp)
		if err != nil {
			return nil, err
		}
		inner, err := p.sloPieces(q, sub, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, slicePieces(inner, first, last)...)
	}
	return out, nil
}

// slicePieces keeps bytes first..last of a concatenation of pieces.
func slicePieces(in []piece, first, last int64) []piece {
	var out []piece
	var off int64
	for _, pc := range in {
		lo, hi := off, off+pc.size()-1
		off += pc.size()
		if hi < first || lo > last {
			continue
		}
		pc.first, pc.last = pc.first+max(first, lo)-lo, pc.first+min(last, hi)-lo
		out = append(out, pc)
	}
	return out
}

// serveSLOManifest answers ?multipart-manifest=get of a manifest: its
// JSON as stored, or with format=raw in the form a PUT takes. It reports
// false for anything else, which is relayed as it is.
func (p *Proxy) serveSLOManifest(q *request, resp *http.Response) (bool, error) {
	if p.multipartManifest(q) != "get" || !trueValue(resp.Header.Get(sloHeader)) || resp.StatusCode != http.StatusOK {
		return false, nil
	}
	// The stored JSON is shown as JSON; format=raw, the form a PUT takes,
	// keeps the manifest's own content type, as Swift's slo does.
	storedType := resp.Header.Get("Content-Type")
	resp.Header.Set("Content-Type", "application/json; charset=utf-8")
	if q.r.URL.Query().Get("format") != "raw" {
		return false, nil
	}
	segs, err := decodeManifest(resp)
	if err != nil {
		return true, err
	}
	raw := make([]map[string]any, 0, len(segs))
	for _, s := range segs {
		if s.Data != "" {
			raw = append(raw, map[string]any{"data": s.Data})
			continue
		}
		m := map[string]any{"path": s.Name, "etag": s.Hash, "size_bytes": s.Bytes}
		if s.Range != "" {
			m["range"] = s.Range
		}
		raw = append(raw, m)
	}
	body, err := json.Marshal(raw)
	if err != nil {
		return true, fmt.Errorf("encode raw slo manifest: %w", err)
	}
	sum := md5.Sum(body)
	for k, vs := range resp.Header {
		if clientVisible(k, q.owner) && k != "Content-Length" {
			q.w.Header()[k] = vs
		}
	}
	q.w.Header().Set("Etag", hex.EncodeToString(sum[:]))
	writeBody(q.w, q.r, http.StatusOK, storedType, string(body))
	return true, nil
}

// sloDelete is DELETE ?multipart-manifest=delete: the segments, then the
// manifest, answered as a bulk delete.
func (p *Proxy) sloDelete(q *request) error {
	var targets []deleteTarget
	var walk func(cont, obj string, depth int) *deleteTarget
	walk = func(cont, obj string, depth int) *deleteTarget {
		self := deleteTarget{name: "/" + cont + "/" + obj, container: cont, object: obj}
		if err := p.authorizePeer(q, [3]string{q.account, cont, obj}, http.MethodGet); err != nil && !reservedForOwner(q, cont) {
			self.errStatus, self.errText = http.StatusUnauthorized, "401 Unauthorized"
			return &self
		}
		var resp *http.Response
		pl, err := p.objectPlace(q, q.account, cont, obj)
		if err == nil {
			resp, err = p.readNewest(q.ctx(), pl, http.MethodGet, "/"+q.account+"/"+cont+"/"+obj, "", p.backendHeaders(q, ""))
		}
		switch {
		case err != nil && errorStatus(err) == http.StatusNotFound:
			self.errStatus, self.errText = http.StatusNotFound, "SLO manifest not found"
			return &self
		case err != nil:
			self.errStatus, self.errText = http.StatusInternalServerError, "Unable to load SLO manifest or segment."
			return &self
		case !trueValue(resp.Header.Get(sloHeader)):
			discard(resp)
			self.errStatus, self.errText = http.StatusBadRequest, "Not an SLO manifest"
			return &self
		}
		segs, err := decodeManifest(resp)
		if err != nil {
			self.errStatus, self.errText = http.StatusInternalServerError, "Unable to load SLO manifest"
			return &self
		}
		for _, s := range segs {
			if s.Data != "" {
				continue // stored in the manifest itself
			}
			c, o, _ := strings.Cut(strings.TrimLeft(s.Name, "/"), "/")
			if s.SubSLO && depth < sloMaxDepth {
				if t := walk(c, o, depth+1); t != nil {
					targets = append(targets, *t)
				}
				continue
			}
			targets = append(targets, deleteTarget{name: s.Name, container: c, object: o})
		}
		return &self
	}
	// GET semantics: the manifest is read raw, not assembled.
	if t := walk(q.container, q.object, 0); t != nil {
		targets = append(targets, *t)
	}
	return p.runDeletes(q, targets)
}
