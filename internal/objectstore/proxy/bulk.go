package proxy

import (
	"archive/tar"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/containersync"
)

// Bulk operations (Swift's bulk middleware): ?bulk-delete deletes a
// newline-separated list of objects and containers, ?extract-archive
// stores the files of a tar archive as objects. Both may run for long,
// so the answer is a 200 sent at once and a body that tells how it went,
// in the format of the Accept header.

// bulk serves the bulk requests and reports whether q was one.
func (p *Proxy) bulk(q *request) (bool, error) {
	if p.cfg.Middlewares.DisableBulk {
		return false, nil
	}
	query := q.r.URL.Query()
	switch {
	case query.Has("bulk-delete") && (q.r.Method == http.MethodDelete || q.r.Method == http.MethodPost):
		return true, p.bulkDelete(q)
	case query.Has("extract-archive") && q.r.Method == http.MethodPut:
		return true, p.extractArchive(q, query.Get("extract-archive"))
	}
	return false, nil
}

// bulkFormats are the response formats bulk requests offer.
var bulkFormats = []string{"text/plain", "application/json", "application/xml", "text/xml"}

// bulkFormat picks the response format from Accept (text/plain unless
// one of the others is asked for).
func bulkFormat(r *http.Request) string {
	acc := r.Header.Get("Accept")
	best, bestQ := "text/plain", -1.0
	for _, part := range strings.Split(acc, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		qv := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			_, _ = fmt.Sscanf(v, "%g", &qv)
		}
		for _, f := range bulkFormats {
			if (mt == f || mt == "*/*") && qv > bestQ {
				if mt == "*/*" {
					f = "text/plain"
				}
				best, bestQ = f, qv
			}
		}
	}
	return best
}

// bulkField is one "key: value" of a bulk response body.
type bulkField struct {
	key   string
	value any
}

// bulkBody renders a bulk response body as Swift's get_response_body:
// the fields sorted by key, then the errors as [name, status] pairs.
func bulkBody(format string, fields []bulkField, errs [][2]string, rootTag string) string {
	sort.Slice(fields, func(i, j int) bool { return fields[i].key < fields[j].key })
	if errs == nil {
		errs = [][2]string{}
	}
	var sb strings.Builder
	switch {
	case format == "application/json":
		m := map[string]any{"Errors": errs}
		for _, f := range fields {
			m[f.key] = f.value
		}
		b, _ := json.Marshal(m)
		return string(b)
	case strings.HasSuffix(format, "/xml"):
		sb.WriteString("<" + rootTag + ">\n")
		for _, f := range fields {
			k := strings.ToLower(strings.ReplaceAll(f.key, " ", "_"))
			sb.WriteString("<" + k + ">" + xmlEscape(fmt.Sprint(f.value)) + "</" + k + ">\n")
		}
		sb.WriteString("<errors>\n")
		for _, e := range errs {
			sb.WriteString("<object><name>" + xmlEscape(e[0]) + "</name><status>" + xmlEscape(e[1]) + "</status></object>\n")
		}
		sb.WriteString("</errors>\n</" + rootTag + ">\n")
		return sb.String()
	}
	for _, f := range fields {
		fmt.Fprintf(&sb, "%s: %v\n", f.key, f.value)
	}
	sb.WriteString("Errors:\n")
	for _, e := range errs {
		sb.WriteString(e[0] + ", " + e[1] + "\n")
	}
	return sb.String()
}

// startStreamedResponse sends status and flushes it, so the client sees
// the request is being worked on (and the body is chunked, as Swift's);
// the outcome follows in the body.
func startStreamedResponse(q *request, status int, format string) {
	rc := http.NewResponseController(q.w)
	// The request body (archive, delete list) may still be to be read.
	_ = rc.EnableFullDuplex()
	q.w.Header().Set("Content-Type", format)
	q.w.WriteHeader(status)
	_ = rc.Flush()
}

// statusLine is Swift's status string: "404 Not Found".
func statusLine(code int) string {
	return fmt.Sprintf("%d %s", code, reasonTitle(code))
}

// errorStatus is the HTTP status an error answers with.
func errorStatus(err error) int {
	var se *swiftError
	if errors.As(err, &se) {
		return se.status
	}
	return http.StatusInternalServerError
}

// pyQuote escapes a name as Python's urllib quote with "/" safe, which is
// how Swift names objects in bulk and SLO error lists.
func pyQuote(s string) string { return containersync.Quote(s) }

// deleteTarget is one object or container a bulk delete removes; errText
// set means it failed before the delete (an SLO manifest that could not
// be read), errStatus 404 counting as not found.
type deleteTarget struct {
	name              string
	container, object string
	errStatus         int
	errText           string
}

// bulkDelete deletes the newline-separated, URL-encoded
// "container[/object]" paths of the body.
func (p *Proxy) bulkDelete(q *request) error {
	mw := p.cfg.Middlewares
	var targets []deleteTarget
	sc := bufio.NewScanner(io.LimitReader(q.r.Body, int64(mw.BulkMaxDeletesPerRequest)*(int64(p.cfg.Constraints.MaxObjectNameLength)+int64(p.cfg.Constraints.MaxContainerNameLength)+4)))
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if len(targets) >= mw.BulkMaxDeletesPerRequest {
			return errText(http.StatusRequestEntityTooLarge, fmt.Sprintf("Maximum Bulk Deletes: %d per request", mw.BulkMaxDeletesPerRequest))
		}
		name, err := url.PathUnescape(line)
		if err != nil {
			name = line
		}
		base := q.container
		rest := strings.TrimLeft(name, "/")
		var cont, obj string
		if base != "" {
			cont, obj = base, rest
		} else {
			cont, obj, _ = strings.Cut(rest, "/")
		}
		targets = append(targets, deleteTarget{name: name, container: cont, object: obj})
	}
	if err := sc.Err(); err != nil {
		return errText(http.StatusBadRequest, "Invalid bulk delete.")
	}
	return p.runDeletes(q, targets)
}

// runDeletes deletes targets in order as q's caller and answers with
// Swift's bulk delete summary.
func (p *Proxy) runDeletes(q *request, targets []deleteTarget) error {
	format := bulkFormat(q.r)
	startStreamedResponse(q, http.StatusOK, format)
	deleted, notFound := 0, 0
	var failed [][2]string
	status, body := "200 OK", ""
	for _, t := range targets {
		if len(failed) >= p.cfg.Middlewares.BulkMaxFailedDeletes {
			break
		}
		quoted := pyQuote(t.name)
		if t.errText != "" {
			if t.errStatus == http.StatusNotFound {
				notFound++
			} else {
				failed = append(failed, [2]string{quoted, t.errText})
			}
			continue
		}
		code := p.deleteOne(q, t)
		switch {
		case code/100 == 2:
			deleted++
		case code == http.StatusNotFound:
			notFound++
		default:
			failed = append(failed, [2]string{quoted, statusLine(code)})
		}
	}
	if len(failed) > 0 {
		status = statusLine(http.StatusBadRequest)
	} else if deleted == 0 && notFound == 0 {
		status, body = statusLine(http.StatusBadRequest), "Invalid bulk delete."
	}
	out := bulkBody(format, []bulkField{
		{"Number Deleted", deleted}, {"Number Not Found", notFound},
		{"Response Status", status}, {"Response Body", body},
	}, failed, "delete")
	_, _ = io.WriteString(q.w, out)
	return nil
}

// deleteOne deletes one object or container as q's caller and returns
// the status the caller would have got.
func (p *Proxy) deleteOne(q *request, t deleteTarget) int {
	if t.container == "" {
		return http.StatusBadRequest
	}
	if !reservedForOwner(q, t.container) {
		if code := p.mayDelete(q, t); code != 0 {
			return code
		}
	}
	if t.object == "" {
		return p.deleteContainer(q, t.container)
	}
	status, _, err := p.removeObject(q, [3]string{q.account, t.container, t.object})
	if err != nil {
		return errorStatus(err)
	}
	return status
}

// mayDelete checks the name and access of a bulk delete's target: 0 if
// q's caller may delete it, else the status to report.
func (p *Proxy) mayDelete(q *request, t deleteTarget) int {
	peer := &request{w: q.w, r: q.r, transID: q.transID, ident: q.ident}
	if err := p.parsePath(peer, "/v1/"+q.account+"/"+t.container+"/"+t.object); err != nil {
		return errorStatus(err)
	}
	peer.object = t.object
	ok, err := p.allowed(peer, http.MethodDelete, t.container)
	if err != nil {
		return errorStatus(err)
	}
	if !ok {
		if q.ident == nil {
			return http.StatusUnauthorized
		}
		return http.StatusForbidden
	}
	return 0
}

// deleteContainer deletes an (empty) container for a bulk delete.
func (p *Proxy) deleteContainer(q *request, cont string) int {
	base := p.backendHeaders(q, p.clock.now())
	pl := place(p.rings.container, q.account, cont, "")
	slots := slotHeaders(base, len(pl.primaries))
	spreadUpdates(slots, "X-Account", place(p.rings.account, q.account, "", ""))
	defer p.infos.drop(q.account + "/" + cont)
	defer p.infos.drop(q.account)
	status, _ := bestStatus(p.write(q.ctx(), pl, http.MethodDelete, "/"+q.account+"/"+cont, bySlot(slots)), pl.quorum())
	return status
}

// extractArchive stores each regular file of a tar (optionally gzip or
// bzip2 compressed) archive as an object: below the request's container
// (and object prefix) when it names one, else the first path element of
// each file names its container, created when missing.
func (p *Proxy) extractArchive(q *request, kind string) error {
	var rd io.Reader = q.r.Body
	switch kind {
	case "tar":
	case "tar.gz", "tgz":
		gz, err := gzip.NewReader(q.r.Body)
		if err != nil {
			return errText(http.StatusBadRequest, "Invalid Tar File: "+err.Error())
		}
		defer gz.Close()
		rd = gz
	case "tar.bz2", "tbz":
		rd = bzip2.NewReader(q.r.Body)
	default:
		return errText(http.StatusBadRequest, "Unsupported archive format")
	}
	format := bulkFormat(q.r)
	startStreamedResponse(q, http.StatusOK, format)
	mw := p.cfg.Middlewares
	created := 0
	var failed [][2]string
	status, body := statusLine(http.StatusCreated), ""
	containers := map[string]bool{}
	tr := tar.NewReader(rd)
	for len(failed) < mw.BulkMaxFailedExtractions {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			status, body = statusLine(http.StatusBadRequest), "Invalid Tar File: "+err.Error()
			break
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimLeft(strings.TrimPrefix(hdr.Name, "./"), "/")
		cont, obj := q.container, name
		if q.object != "" {
			obj = strings.TrimRight(q.object, "/") + "/" + name
		}
		if cont == "" {
			cont, obj, _ = strings.Cut(name, "/")
		}
		dest := "/" + q.account + "/" + cont + "/" + obj
		if cont == "" || obj == "" {
			continue
		}
		if !containers[cont] {
			if len(containers) >= mw.BulkMaxContainersPerExtraction {
				status, body = statusLine(http.StatusBadRequest), fmt.Sprintf("More than %d containers to create from tar.", mw.BulkMaxContainersPerExtraction)
				break
			}
			if code := p.ensureContainer(q, cont); code/100 != 2 {
				failed = append(failed, [2]string{pyQuote(dest), statusLine(code)})
				continue
			}
			containers[cont] = true
		}
		code := p.extractOne(q, cont, obj, tr, hdr.Size)
		if code/100 == 2 {
			created++
			continue
		}
		failed = append(failed, [2]string{pyQuote(dest), statusLine(code)})
		if code == http.StatusUnauthorized || code == http.StatusForbidden {
			status = statusLine(code)
			break
		}
	}
	if len(failed) > 0 && strings.HasPrefix(status, "201") {
		status = statusLine(http.StatusBadRequest)
	}
	_, _ = io.WriteString(q.w, bulkBody(format, []bulkField{
		{"Number Files Created", created}, {"Response Status", status}, {"Response Body", body},
	}, failed, "extract"))
	return nil
}

// ensureContainer creates cont unless it exists; the caller must be
// allowed to create containers.
func (p *Proxy) ensureContainer(q *request, cont string) int {
	ci, err := p.containerInfo(q, q.account, cont)
	if err != nil {
		return errorStatus(err)
	}
	if ci.exists {
		return http.StatusAccepted
	}
	peer := &request{w: q.w, r: q.r, transID: q.transID, ident: q.ident}
	peer.account, peer.container = q.account, cont
	if ok, err := p.allowed(peer, http.MethodPut, cont); err != nil || !ok {
		if q.ident == nil {
			return http.StatusUnauthorized
		}
		return http.StatusForbidden
	}
	if len(cont) > p.cfg.Constraints.MaxContainerNameLength {
		return http.StatusBadRequest
	}
	base := p.backendHeaders(q, p.clock.now())
	pl := place(p.rings.container, q.account, cont, "")
	slots := slotHeaders(base, len(pl.primaries))
	spreadUpdates(slots, "X-Account", place(p.rings.account, q.account, "", ""))
	defer p.infos.drop(q.account + "/" + cont)
	defer p.infos.drop(q.account)
	if ai, err := p.accountInfo(q, q.account); err == nil && !ai.exists && !p.cfg.DisableAccountAutocreate {
		if err := p.createAccount(q, q.account); err != nil {
			return errorStatus(err)
		}
	}
	status, _ := bestStatus(p.write(q.ctx(), pl, http.MethodPut, "/"+q.account+"/"+cont, bySlot(slots)), pl.quorum())
	return status
}

// extractOne stores one archive member as q's caller.
func (p *Proxy) extractOne(q *request, cont, obj string, body io.Reader, size int64) int {
	peer := &request{w: q.w, r: q.r, transID: q.transID, ident: q.ident}
	if err := p.parsePath(peer, "/v1/"+q.account+"/"+cont+"/"+obj); err != nil {
		return errorStatus(err)
	}
	if ok, err := p.allowed(peer, http.MethodPut, cont); err != nil || !ok {
		if q.ident == nil {
			return http.StatusUnauthorized
		}
		return http.StatusForbidden
	}
	names := [3]string{q.account, cont, obj}
	if err := p.checkQuotas(q, names, size); err != nil {
		return errorStatus(err)
	}
	h := http.Header{"Content-Type": {guessContentType(obj)}}
	status, _, _, err := p.storeObject(q, names, h, body, size)
	if err != nil {
		return errorStatus(err)
	}
	return status
}
