package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Static web sites (Swift's staticweb): for anonymous reads, or with
// X-Web-Mode: true, a container with X-Container-Meta-Web-Index serves
// that object for "directory" paths, -Web-Listings serves HTML listings,
// -Web-Listings-CSS styles them and -Web-Error names the
// <status><suffix> pages shown for 401 and 404.

// staticWeb serves q as a web site request when it is one; handled
// reports that the response was written.
func (p *Proxy) staticWeb(q *request) (handled bool, err error) {
	if p.cfg.Middlewares.DisableStaticWeb || q.container == "" || !isRead(q.r.Method) {
		return false, nil
	}
	if q.ident != nil && !trueValue(q.r.Header.Get("X-Web-Mode")) {
		return false, nil
	}
	ci, err := p.containerInfo(q, q.account, q.container)
	if err != nil || !ci.exists {
		return false, err
	}
	index := ci.header.Get("X-Container-Meta-Web-Index")
	listings := trueValue(ci.header.Get("X-Container-Meta-Web-Listings"))
	errPage := ci.header.Get("X-Container-Meta-Web-Error")
	css := ci.header.Get("X-Container-Meta-Web-Listings-Css")
	dir := q.object == "" || strings.HasSuffix(q.object, "/")
	if !dir {
		if errPage == "" && index == "" && !listings {
			return false, nil
		}
		// An object first; a "directory" without its slash is redirected.
		// A directory marker object (0 or 1 byte of the container's
		// X-Container-Meta-Web-Directory-Type, application/directory by
		// default) counts as missing, as in Swift.
		dirType := ci.header.Get("X-Container-Meta-Web-Directory-Type")
		if dirType == "" {
			dirType = "application/directory"
		}
		status := p.probeObject(q, q.object, dirType)
		if status/100 == 2 || status == http.StatusNotModified {
			return false, nil
		}
		if index != "" && p.probe(q, q.object+"/"+index)/100 == 2 {
			return true, redirectSlash(q)
		}
		if listings && p.hasChildren(q, q.object+"/") {
			return true, redirectSlash(q)
		}
		if errPage != "" && (status == http.StatusNotFound || status == http.StatusUnauthorized) {
			return true, p.webError(q, status, errPage)
		}
		return false, nil
	}
	if index == "" && !listings {
		return false, nil
	}
	if !strings.HasSuffix(q.r.URL.Path, "/") {
		return true, redirectSlash(q)
	}
	if index != "" {
		if status := p.probe(q, q.object+index); status/100 == 2 {
			q.object += index
			return true, p.serveAllowed(q)
		}
	}
	if listings {
		return true, p.webListing(q, css)
	}
	if errPage != "" {
		return true, p.webError(q, http.StatusNotFound, errPage)
	}
	return true, errStatus(http.StatusNotFound)
}

// redirectSlash sends a "directory" to its path with a trailing slash, as
// an absolute URL on the host the client used, as Swift's swob does.
func redirectSlash(q *request) error {
	scheme := "http"
	if q.r.TLS != nil {
		scheme = "https"
	}
	loc := scheme + "://" + q.r.Host + q.r.URL.EscapedPath() + "/"
	if q.r.URL.RawQuery != "" {
		loc += "?" + q.r.URL.RawQuery
	}
	q.w.Header().Set("Location", loc)
	writeBody(q.w, q.r, http.StatusMovedPermanently, "text/html; charset=UTF-8", "")
	return nil
}

// probe is the status a HEAD of obj in q's container gets.
func (p *Proxy) probe(q *request, obj string) int { return p.probeObject(q, obj, "") }

// probeObject is probe, answering 404 for a directory marker: an object
// of at most one byte whose content type is dirType (if set).
func (p *Proxy) probeObject(q *request, obj, dirType string) int {
	pl, err := p.objectPlace(q, q.account, q.container, obj)
	if err != nil {
		return errorStatus(err)
	}
	resp, err := p.read(q.ctx(), pl, http.MethodHead, "/"+q.account+"/"+q.container+"/"+obj, "", p.backendHeaders(q, ""))
	if err != nil {
		return errorStatus(err)
	}
	discard(resp)
	if dirType != "" && resp.StatusCode/100 == 2 && resp.Header.Get("Content-Type") == dirType {
		if n, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); n <= 1 {
			return http.StatusNotFound
		}
	}
	return resp.StatusCode
}

// serveAllowed serves q's object if the caller may read it.
func (p *Proxy) serveAllowed(q *request) error {
	if err := p.authorize(q); err != nil {
		return err
	}
	return p.objectGet(q)
}

// webError serves the <status><suffix> page with status.
func (p *Proxy) webError(q *request, status int, suffix string) error {
	name := fmt.Sprintf("%d%s", status, suffix)
	pl, err := p.objectPlace(q, q.account, q.container, name)
	if err != nil {
		return err
	}
	resp, err := p.read(q.ctx(), pl, http.MethodGet, "/"+q.account+"/"+q.container+"/"+name, "", p.backendHeaders(q, ""))
	if err != nil || resp.StatusCode != http.StatusOK {
		discard(resp)
		return errStatus(status)
	}
	resp.StatusCode = status
	return p.relay(q, resp)
}

// webEntry is one row of a container listing.
type webEntry struct {
	Name         string `json:"name"`
	Subdir       string `json:"subdir"`
	Bytes        int64  `json:"bytes"`
	LastModified string `json:"last_modified"`
	ContentType  string `json:"content_type"`
}

func (p *Proxy) listDir(q *request, prefix string, limit int) ([]webEntry, error) {
	v := url.Values{"format": {"json"}, "prefix": {prefix}, "delimiter": {"/"}}
	if limit > 0 {
		v.Set("limit", fmt.Sprint(limit))
	}
	resp, err := p.read(q.ctx(), place(p.rings.container, q.account, q.container, ""), http.MethodGet, "/"+q.account+"/"+q.container, v.Encode(), p.backendHeaders(q, ""))
	if err != nil {
		return nil, err
	}
	defer discard(resp)
	var out []webEntry
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, fmt.Errorf("static web listing of %s: %w", q.container, err)
		}
	}
	return out, nil
}

func (p *Proxy) hasChildren(q *request, prefix string) bool {
	rows, err := p.listDir(q, prefix, 1)
	return err == nil && len(rows) > 0
}

// webListing renders the HTML listing of a "directory", which needs the
// listing right (.rlistings for anonymous callers).
func (p *Proxy) webListing(q *request, css string) error {
	peer := *q
	peer.object = ""
	ok, err := p.allowed(&peer, http.MethodGet, q.container)
	if err != nil {
		return err
	}
	if !ok {
		return p.deny(q)
	}
	prefix := q.object
	rows, err := p.listDir(q, prefix, 0)
	if err != nil {
		return err
	}
	if len(rows) == 0 && prefix != "" {
		return errStatus(http.StatusNotFound)
	}
	title := xmlEscape(q.r.URL.Path)
	var sb strings.Builder
	sb.WriteString("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\"\n \"http://www.w3.org/TR/html4/loose.dtd\">\n<html>\n <head>\n  <title>Listing of " + title + "</title>\n")
	if css != "" {
		href := strings.Repeat("../", strings.Count(prefix, "/")) + pyQuote(css)
		if strings.Contains(css, "://") || strings.HasPrefix(css, "/") {
			href = css
		}
		sb.WriteString(`  <link rel="stylesheet" type="text/css" href="` + xmlEscape(href) + `" />` + "\n")
	}
	sb.WriteString(" </head>\n <body>\n  <h1 id=\"title\">Listing of " + title + "</h1>\n  <table id=\"listing\">\n" +
		"   <tr id=\"heading\">\n    <th class=\"colname\">Name</th>\n    <th class=\"colsize\">Size</th>\n    <th class=\"coldate\">Date</th>\n   </tr>\n")
	if prefix != "" {
		sb.WriteString("   <tr id=\"parent\" class=\"item\">\n    <td class=\"colname\"><a href=\"../\">../</a></td>\n    <td class=\"colsize\">&nbsp;</td>\n    <td class=\"coldate\">&nbsp;</td>\n   </tr>\n")
	}
	for _, r := range rows {
		if r.Subdir != "" {
			n := strings.TrimPrefix(r.Subdir, prefix)
			fmt.Fprintf(&sb, "   <tr class=\"item subdir\">\n    <td class=\"colname\"><a href=\"%s\">%s</a></td>\n    <td class=\"colsize\">&nbsp;</td>\n    <td class=\"coldate\">&nbsp;</td>\n   </tr>\n",
				xmlEscape(pyQuote(n)), xmlEscape(n))
			continue
		}
		n := strings.TrimPrefix(r.Name, prefix)
		date := strings.Replace(r.LastModified, "T", " ", 1)
		if i := strings.IndexByte(date, '.'); i > 0 {
			date = date[:i]
		}
		fmt.Fprintf(&sb, "   <tr class=\"item %s\">\n    <td class=\"colname\"><a href=\"%s\">%s</a></td>\n    <td class=\"colsize\">%s</td>\n    <td class=\"coldate\">%s</td>\n   </tr>\n",
			itemClass(r.ContentType), xmlEscape(pyQuote(n)), xmlEscape(n), humanSize(r.Bytes), xmlEscape(date))
	}
	sb.WriteString("  </table>\n </body>\n</html>\n")
	writeBody(q.w, q.r, http.StatusOK, "text/html; charset=UTF-8", sb.String())
	return nil
}

// itemClass is the CSS class of a listed object: "type-<major> type-<minor>".
func itemClass(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	major, minor, _ := strings.Cut(ct, "/")
	return "type-" + xmlEscape(major) + " type-" + xmlEscape(minor)
}

// humanSize is Swift's human_readable: bytes in 1024 steps with a suffix.
func humanSize(n int64) string {
	v := float64(n)
	for _, s := range []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi"} {
		if v < 1024 {
			if s == "" {
				return fmt.Sprint(n)
			}
			return fmt.Sprintf("%.0f%s", v, s)
		}
		v /= 1024
	}
	return fmt.Sprintf("%.0fYi", v)
}
