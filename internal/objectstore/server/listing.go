package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/swiftfmt"
)

// listParams are the listing query parameters Swift accepts.
type listParams struct {
	prefix, delimiter, marker, endMarker string
	limit                                int
	reverse                              bool
	format                               string // "plain", "json" or "xml"
	// reserved lists the reserved (NUL-prefixed) names too, which only
	// the proxy's own requests ask for (X-Backend-Allow-Reserved-Names).
	reserved bool
}

func parseListParams(r *http.Request) (listParams, error) {
	q := r.URL.Query()
	p := listParams{
		prefix: q.Get("prefix"), delimiter: q.Get("delimiter"),
		marker: q.Get("marker"), endMarker: q.Get("end_marker"),
		limit: ListingLimit,
	}
	p.reserved = strings.EqualFold(r.Header.Get("X-Backend-Allow-Reserved-Names"), "true")
	for _, v := range []string{p.prefix, p.delimiter, p.marker, p.endMarker} {
		if !utf8.ValidString(v) || (!p.reserved && strings.IndexByte(v, 0) >= 0) {
			return p, httpErr(http.StatusBadRequest, "Invalid UTF8 or contains NULL")
		}
	}
	if len(p.delimiter) > 256 {
		return p, httpErr(http.StatusPreconditionFailed, "Bad delimiter")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, httpErr(http.StatusPreconditionFailed, "Value of limit must be a positive integer")
		}
		if n > ListingLimit {
			return p, httpErr(http.StatusPreconditionFailed, fmt.Sprintf("Maximum limit is %d", ListingLimit))
		}
		p.limit = n
	}
	switch strings.ToLower(q.Get("reverse")) {
	case "true", "1", "yes", "on", "t", "y":
		p.reverse = true
	}
	p.format = swiftfmt.ListingFormat(r)
	return p, nil
}

func formatContentType(f string) string {
	switch f {
	case "json":
		return "application/json; charset=utf-8"
	case "xml":
		return "application/xml; charset=utf-8"
	}
	return "text/plain; charset=utf-8"
}

// listEntry is one listing result: a row or a subdir.
type listEntry struct {
	name string
	item listItem
}

// listItem is a listing entry as Swift serialises it: JSON by its fields,
// XML by writeXML.
type listItem interface{ writeXML(*strings.Builder) }

// rowSource is the table a database lists and how to scan one of its rows.
type rowSource struct {
	table string
	cols  string // selected after name
	scan  func(*sql.Rows) (string, listItem, error)
}

// containerRows are what an account lists.
var containerRows = rowSource{table: "container", cols: "put_timestamp, object_count, bytes_used",
	scan: func(rows *sql.Rows) (string, listItem, error) {
		var it containerListing
		var put string
		err := rows.Scan(&it.Name, &put, &it.Count, &it.Bytes)
		ts, _ := parseTimestamp(put)
		it.LastModified = ts.isoListing()
		return it.Name, it, err
	}}

// objectRows are what a container lists.
var objectRows = rowSource{table: "object", cols: "created_at, size, content_type, etag",
	scan: func(rows *sql.Rows) (string, listItem, error) {
		var it objectListing
		var created string
		err := rows.Scan(&it.Name, &created, &it.Bytes, &it.ContentType, &it.Hash)
		ts, _ := parseTimestamp(created)
		it.LastModified = ts.isoListing()
		it.applyLargeObject()
		return it.Name, it, err
	}}

// applyLargeObject shows a static large object's row as Swift does: the
// swift_bytes parameter the SLO middleware put on its content type becomes
// its bytes (the row's size is the manifest's, which the container's usage
// counts), and the slo_etag parameter of its container-update etag becomes
// a key of its own, quoted, leaving the manifest's MD5 as the hash.
func (it *objectListing) applyLargeObject() {
	ct, n, ok := swiftfmt.ExtractSwiftBytes(it.ContentType)
	it.ContentType = ct
	if ok {
		if size, err := strconv.ParseInt(n, 10, 64); err == nil {
			it.Bytes = size
		}
	}
	etag, params, found := strings.Cut(it.Hash, ";")
	if !found {
		return
	}
	rest := ""
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "slo_etag" {
			it.SLOEtag = `"` + v + `"`
		} else if k != "" {
			rest += "; " + k + "=" + v
		}
	}
	if it.SLOEtag != "" {
		it.Hash = strings.TrimSpace(etag) + rest
	}
}

// listRows runs Swift's listing algorithm over src's table: names bounded by
// marker/end_marker/prefix, ascending or descending, with delimiter
// rolling names up into subdirs (re-querying past each subdir so a page is
// always full).
func listRows(ctx context.Context, db *sql.DB, src rowSource, p listParams) ([]listEntry, error) {
	var out []listEntry
	// lo/hi are the open cursor bounds; loIncl makes lo inclusive (used
	// after a subdir, when the bound is the first name past it).
	lo, hi := p.marker, p.endMarker
	if p.reverse {
		lo, hi = p.endMarker, p.marker
	}
	loIncl := false
	for len(out) < p.limit {
		var conds []string
		var args []any
		if lo != "" {
			if loIncl {
				conds = append(conds, "name >= ?")
			} else {
				conds = append(conds, "name > ?")
			}
			args = append(args, lo)
		}
		if hi != "" {
			conds = append(conds, "name < ?")
			args = append(args, hi)
		}
		if p.prefix != "" {
			// No valid UTF-8 name contains 0xFF, so prefix+"\xff" bounds
			// every name that starts with prefix.
			conds = append(conds, "name >= ?", "name < ?")
			args = append(args, p.prefix, p.prefix+"\xff")
		}
		if !p.reserved {
			// Every reserved name starts with NUL and sorts before
			// every other name.
			conds = append(conds, "name >= ?")
			args = append(args, "\x01")
		}
		conds = append(conds, "deleted = 0")
		order := "ASC"
		if p.reverse {
			order = "DESC"
		}
		q := fmt.Sprintf("SELECT name, %s FROM %s WHERE %s ORDER BY name %s LIMIT ?", src.cols, src.table, strings.Join(conds, " AND "), order)
		args = append(args, p.limit-len(out))
		rows, err := db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", src.table, err)
		}
		requery := false
		for rows.Next() {
			name, item, err := src.scan(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("list %s: %w", src.table, err)
			}
			if p.delimiter != "" {
				if i := strings.Index(name[len(p.prefix):], p.delimiter); i >= 0 {
					dir := name[:len(p.prefix)+i+len(p.delimiter)]
					if dir != p.marker {
						out = append(out, listEntry{name: dir, item: subdirListing{Subdir: dir}})
					}
					if p.reverse {
						hi = dir
					} else {
						lo, loIncl = afterPrefix(dir), true
					}
					requery = true
					break
				}
			}
			out = append(out, listEntry{name: name, item: item})
			if p.reverse {
				hi = name
			} else {
				lo, loIncl = name, false
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", src.table, err)
		}
		if !requery {
			break
		}
	}
	return out, nil
}

// afterPrefix is the smallest string greater than every string starting
// with s (s ends with a delimiter, whose last byte is never 0xFF).
func afterPrefix(s string) string {
	b := []byte(s)
	b[len(b)-1]++
	return string(b)
}

// objectListing is a container listing item as Swift serialises it.
type objectListing struct {
	Name         string `json:"name"`
	Hash         string `json:"hash"`
	Bytes        int64  `json:"bytes"`
	ContentType  string `json:"content_type"`
	LastModified string `json:"last_modified"`
	// SLOEtag is a static large object's ETag; XML listings leave it out,
	// as Swift's do.
	SLOEtag string `json:"slo_etag,omitempty"`
}

// containerListing is an account listing item.
type containerListing struct {
	Name         string `json:"name"`
	Count        int64  `json:"count"`
	Bytes        int64  `json:"bytes"`
	LastModified string `json:"last_modified"`
}

type subdirListing struct {
	Subdir string `json:"subdir"`
}

func (it objectListing) writeXML(sb *strings.Builder) {
	sb.WriteString("<object>")
	xmlElem(sb, "name", it.Name)
	xmlElem(sb, "hash", it.Hash)
	xmlElem(sb, "bytes", strconv.FormatInt(it.Bytes, 10))
	xmlElem(sb, "content_type", it.ContentType)
	xmlElem(sb, "last_modified", it.LastModified)
	sb.WriteString("</object>")
}

func (it containerListing) writeXML(sb *strings.Builder) {
	sb.WriteString("<container>")
	xmlElem(sb, "name", it.Name)
	xmlElem(sb, "count", strconv.FormatInt(it.Count, 10))
	xmlElem(sb, "bytes", strconv.FormatInt(it.Bytes, 10))
	xmlElem(sb, "last_modified", it.LastModified)
	sb.WriteString("</container>")
}

func (it subdirListing) writeXML(sb *strings.Builder) {
	fmt.Fprintf(sb, `<subdir name="%s"><name>%s</name></subdir>`, xmlEscape(it.Subdir), xmlEscape(it.Subdir))
}

// renderListing writes a listing in p.format. rootTag is "container" or
// "account", name its name.
func renderListing(w http.ResponseWriter, r *http.Request, p listParams, rootTag, name string, entries []listEntry) {
	h := w.Header()
	h.Set("Content-Type", formatContentType(p.format))
	var body string
	switch p.format {
	case "json":
		items := make([]listItem, 0, len(entries))
		for _, e := range entries {
			items = append(items, e.item)
		}
		b, _ := json.Marshal(items)
		body = string(b)
	case "xml":
		var sb strings.Builder
		sb.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
		fmt.Fprintf(&sb, `<%s name="%s">`, rootTag, xmlEscape(name))
		for _, e := range entries {
			e.item.writeXML(&sb)
		}
		fmt.Fprintf(&sb, "</%s>", rootTag)
		body = sb.String()
	default:
		if len(entries) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var sb strings.Builder
		for _, e := range entries {
			sb.WriteString(e.name)
			sb.WriteByte('\n')
		}
		body = sb.String()
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

func xmlEscape(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return sb.String()
}

func xmlElem(sb *strings.Builder, tag, val string) {
	fmt.Fprintf(sb, "<%s>%s</%s>", tag, xmlEscape(val), tag)
}
