package network

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// obj is a resource as rendered on the wire.
type obj = map[string]any

// reservedParams are the query parameters of list calls that are not
// attribute filters.
var reservedParams = map[string]bool{
	"fields": true, "sort_key": true, "sort_dir": true, "limit": true, "marker": true, "page_reverse": true,
	"tags": true, "tags-any": true, "not-tags": true, "not-tags-any": true,
}

// listQuery is what a list call asks for besides the collection:
// attribute filters (repeated keys match any value), tag filters, a
// projection, a sort and a page.
type listQuery struct {
	filters     url.Values
	fields      []string
	sortKeys    []string
	sortAsc     []bool
	limit       int
	marker      string
	pageReverse bool
	tags        []string // all of them
	tagsAny     []string // at least one of them
	notTags     []string // not all of them
	notTagsAny  []string // none of them
}

func splitTags(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, t := range strings.Split(v, ",") {
			if t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func parseListQuery(r *http.Request) (*listQuery, error) {
	q := r.URL.Query()
	lq := &listQuery{filters: url.Values{}}
	for k, vs := range q {
		if !reservedParams[k] {
			lq.filters[k] = vs
		}
	}
	for _, f := range q["fields"] {
		for _, name := range strings.Split(f, ",") {
			if name != "" {
				lq.fields = append(lq.fields, name)
			}
		}
	}
	lq.sortKeys = q["sort_key"]
	dirs := q["sort_dir"]
	if len(dirs) > 0 && len(dirs) != len(lq.sortKeys) {
		return nil, badRequest("sort", "The number of sort_keys and sort_dirs must be same")
	}
	for i := range lq.sortKeys {
		asc := true
		if i < len(dirs) {
			switch dirs[i] {
			case "asc":
			case "desc":
				asc = false
			default:
				return nil, badRequest("sort", "%s is an invalid value for sort_dir, valid value is 'asc' and 'desc'", dirs[i])
			}
		}
		lq.sortAsc = append(lq.sortAsc, asc)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, badRequest("limit", "Limit must be an integer 0 or greater and not '%s'", v)
		}
		lq.limit = n
	}
	lq.marker = q.Get("marker")
	lq.pageReverse = strings.EqualFold(q.Get("page_reverse"), "true")
	lq.tags, lq.tagsAny = splitTags(q["tags"]), splitTags(q["tags-any"])
	lq.notTags, lq.notTagsAny = splitTags(q["not-tags"]), splitTags(q["not-tags-any"])
	return lq, nil
}

// matchValue reports whether an attribute's value equals a filter
// value given as query text. Lists match when they contain the value.
func matchValue(v any, want string) bool {
	switch x := v.(type) {
	case nil:
		return want == "" || want == "None" || want == "null"
	case string:
		return x == want
	case bool:
		b, err := parseBoolText(want)
		return err == nil && b == x
	case int:
		return strconv.Itoa(x) == want
	case *int:
		return x == nil && (want == "" || want == "None") || x != nil && strconv.Itoa(*x) == want
	case *string:
		return x == nil && (want == "" || want == "None") || x != nil && *x == want
	case []string:
		return slices.Contains(x, want)
	case []any:
		for _, e := range x {
			if matchValue(e, want) {
				return true
			}
		}
		return false
	}
	return fmt.Sprint(v) == want
}

// parseBoolText reads a boolean as Neutron's converters accept it.
func parseBoolText(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on", "t", "y":
		return true, nil
	case "false", "0", "no", "off", "f", "n":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// itemFilter matches an item against the values of one query key; a
// resource uses it for filters that are not plain attribute equality
// (fixed_ips on ports, ip_address_substr).
type itemFilter func(item obj, values []string) bool

func tagsOf(item obj) []string {
	ts, _ := item["tags"].([]string)
	return ts
}

func (lq *listQuery) matches(item obj, special map[string]itemFilter) bool {
	for k, vs := range lq.filters {
		if f, ok := special[k]; ok {
			if !f(item, vs) {
				return false
			}
			continue
		}
		v, ok := item[k]
		if !ok {
			continue // not an attribute of this resource: ignored, as Neutron does
		}
		hit := false
		for _, want := range vs {
			if matchValue(v, want) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	ts := tagsOf(item)
	has := func(t string) bool { return slices.Contains(ts, t) }
	if len(lq.tags) > 0 && !all(lq.tags, has) {
		return false
	}
	if len(lq.tagsAny) > 0 && !anyOf(lq.tagsAny, has) {
		return false
	}
	if len(lq.notTags) > 0 && all(lq.notTags, has) {
		return false
	}
	if len(lq.notTagsAny) > 0 && anyOf(lq.notTagsAny, has) {
		return false
	}
	return true
}

func all(xs []string, f func(string) bool) bool {
	for _, x := range xs {
		if !f(x) {
			return false
		}
	}
	return true
}

func anyOf(xs []string, f func(string) bool) bool {
	for _, x := range xs {
		if f(x) {
			return true
		}
	}
	return false
}

// compareValues orders two attribute values of the same attribute; null
// sorts first.
func compareValues(a, b any) int {
	rank := func(v any) (float64, string, bool) {
		switch x := v.(type) {
		case nil:
			return 0, "", false
		case bool:
			if x {
				return 1, "", true
			}
			return 0, "", true
		case int:
			return float64(x), "", true
		case *int:
			if x == nil {
				return 0, "", false
			}
			return float64(*x), "", true
		case *string:
			if x == nil {
				return 0, "", false
			}
			return 0, *x, true
		case string:
			return 0, x, true
		}
		return 0, fmt.Sprint(v), true
	}
	an, as, aok := rank(a)
	bn, bs, bok := rank(b)
	switch {
	case !aok && !bok:
		return 0
	case !aok:
		return -1
	case !bok:
		return 1
	case an != bn:
		if an < bn {
			return -1
		}
		return 1
	}
	return strings.Compare(as, bs)
}

// list answers a list call on items the caller may see: filters, sort,
// page and projection as Neutron applies them, with "<collection>_links"
// when a limit is given.
func (s *Service) list(r *http.Request, collection string, items []obj, special map[string]itemFilter) (*api.Response, error) {
	return s.listKeyed(r, collection, "id", items, special)
}

// listKeyed is list for resources whose identity is not "id" (network IP
// availabilities are keyed by network_id): markers and the final sort
// key use idKey.
func (s *Service) listKeyed(r *http.Request, collection, idKey string, items []obj, special map[string]itemFilter) (*api.Response, error) {
	lq, err := parseListQuery(r)
	if err != nil {
		return nil, err
	}
	filtered := items[:0:0]
	for _, it := range items {
		if lq.matches(it, special) {
			filtered = append(filtered, it)
		}
	}
	for _, k := range lq.sortKeys {
		if len(items) > 0 {
			if _, ok := items[0][k]; !ok {
				return nil, badRequest("sort", "%s is an invalid attribute for sort_keys", k)
			}
		}
	}
	keys, asc := append(slices.Clone(lq.sortKeys), idKey), append(slices.Clone(lq.sortAsc), true)
	sort.SliceStable(filtered, func(i, j int) bool {
		for n, k := range keys {
			c := compareValues(filtered[i][k], filtered[j][k])
			if c == 0 {
				continue
			}
			if !asc[n] {
				c = -c
			}
			return c < 0
		}
		return false
	})
	page := filtered
	if lq.marker != "" {
		at := slices.IndexFunc(filtered, func(it obj) bool { return it[idKey] == lq.marker })
		if at < 0 {
			// The marker may be filtered out by now; Neutron looks it up
			// and answers 404 only when it does not exist at all.
			if slices.IndexFunc(items, func(it obj) bool { return it[idKey] == lq.marker }) < 0 {
				return nil, notFound("NotFound", "Marker %s could not be found.", lq.marker)
			}
			at = len(filtered)
		}
		if lq.pageReverse {
			page = filtered[:at]
		} else {
			page = filtered[min(at+1, len(filtered)):]
		}
	}
	if lq.limit > 0 && len(page) > lq.limit {
		if lq.pageReverse {
			page = page[len(page)-lq.limit:]
		} else {
			page = page[:lq.limit]
		}
	}
	out := make([]obj, len(page))
	for i, it := range page {
		out[i] = project(it, lq.fields)
	}
	body := obj{collection: out}
	if lq.limit > 0 {
		body[collection+"_links"] = s.pageLinks(r, page, lq, idKey)
	}
	return api.JSON(http.StatusOK, body), nil
}

// pageLinks builds Neutron's next/previous links: next unless a forward
// page came out short, previous unless a reverse page did.
func (s *Service) pageLinks(r *http.Request, page []obj, lq *listQuery, idKey string) []api.Link {
	links := []api.Link{}
	href := func(marker string, reverse bool) string {
		q := r.URL.Query()
		q.Set("limit", strconv.Itoa(lq.limit))
		q.Set("marker", marker)
		if reverse {
			q.Set("page_reverse", "True")
		} else {
			q.Del("page_reverse")
		}
		return s.baseURL(r) + r.URL.Path + "?" + q.Encode()
	}
	first, last := lq.marker, lq.marker
	if len(page) > 0 {
		first, _ = page[0][idKey].(string)
		last, _ = page[len(page)-1][idKey].(string)
	}
	if !(len(page) < lq.limit && !lq.pageReverse) {
		links = append(links, api.Link{Rel: "next", Href: href(last, false)})
	}
	if !(len(page) < lq.limit && lq.pageReverse) {
		links = append(links, api.Link{Rel: "previous", Href: href(first, true)})
	}
	return links
}

// project keeps the requested fields of an item (all without fields=).
func project(it obj, fields []string) obj {
	if len(fields) == 0 {
		return it
	}
	out := obj{}
	for _, f := range fields {
		if v, ok := it[f]; ok {
			out[f] = v
		}
	}
	return out
}

// show answers a single resource with the fields= projection applied.
func show(r *http.Request, name string, it obj) *api.Response {
	lq, _ := parseListQuery(r)
	var fields []string
	if lq != nil {
		fields = lq.fields
	}
	return api.JSON(http.StatusOK, obj{name: project(it, fields)})
}
