package volume

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// maxLimit is Cinder's osapi_max_limit: the most rows one page holds.
const maxLimit = 1000

// sortSpec is one key of a list's sort order.
type sortSpec struct {
	key  string
	desc bool
}

// parseSort reads sort=key[:dir],... or sort_key/sort_dir; the default is
// Cinder's created_at desc, id desc. keys maps the accepted names onto
// canonical ones.
func parseSort(q url.Values, keys map[string]string) ([]sortSpec, error) {
	var out []sortSpec
	dir := func(s string) (bool, error) {
		switch strings.ToLower(s) {
		case "", "desc":
			return true, nil
		case "asc":
			return false, nil
		}
		return false, api.BadRequest("Invalid input received: Invalid sort direction %s, must be asc or desc.", s)
	}
	if s := q.Get("sort"); s != "" {
		if q.Get("sort_key") != "" || q.Get("sort_dir") != "" {
			return nil, api.BadRequest("Invalid input received: The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.")
		}
		for _, part := range strings.Split(s, ",") {
			k, d, _ := strings.Cut(strings.TrimSpace(part), ":")
			canon, ok := keys[k]
			if !ok {
				return nil, api.BadRequest("Invalid input received: Invalid sort key %s.", k)
			}
			desc, err := dir(d)
			if err != nil {
				return nil, err
			}
			out = append(out, sortSpec{canon, desc})
		}
	} else if k := q.Get("sort_key"); k != "" || q.Get("sort_dir") != "" {
		if k == "" {
			k = "created_at"
		}
		canon, ok := keys[k]
		if !ok {
			return nil, api.BadRequest("Invalid input received: Invalid sort key %s.", k)
		}
		desc, err := dir(q.Get("sort_dir"))
		if err != nil {
			return nil, err
		}
		out = append(out, sortSpec{canon, desc})
	}
	if len(out) == 0 {
		out = []sortSpec{{"created_at", true}}
	}
	// Ties are broken by id, so pages never overlap or skip.
	if out[len(out)-1].key != "id" {
		out = append(out, sortSpec{"id", out[len(out)-1].desc})
	}
	return out, nil
}

// pageParams are limit, marker and offset of a list.
type pageParams struct {
	limit     int
	limitSet  bool
	marker    string
	offset    int
	useMarker bool
}

func parsePageParams(q url.Values) (pageParams, error) {
	p := pageParams{limit: maxLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, api.BadRequest("Invalid input received: limit must be a non-negative integer, not %q.", s)
		}
		p.limit, p.limitSet = min(n, maxLimit), true
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, api.BadRequest("Invalid input received: offset must be a non-negative integer, not %q.", s)
		}
		p.offset = n
	}
	if m, ok := q["marker"]; ok {
		p.marker, p.useMarker = m[0], true
	}
	return p, nil
}

// paginate applies marker, offset and limit to sorted rows and says
// whether a next link belongs to the page: Cinder adds one whenever the
// page is full, even if nothing follows.
func paginate[T any](rows []T, p pageParams, id func(T) string, notFound func(string) error) ([]T, bool, error) {
	if p.useMarker {
		i := -1
		for j, r := range rows {
			if id(r) == p.marker {
				i = j
				break
			}
		}
		if i < 0 {
			return nil, false, notFound(p.marker)
		}
		rows = rows[i+1:]
	}
	if p.offset > 0 {
		if p.offset >= len(rows) {
			rows = nil
		} else {
			rows = rows[p.offset:]
		}
	}
	if len(rows) > p.limit {
		rows = rows[:p.limit]
	}
	return rows, p.limit > 0 && len(rows) == p.limit, nil
}

// nextLink is the URL of the next page: the request's own path and query
// on the public base, with the marker set to the page's last id (the
// offset, already applied, is dropped).
func nextLink(base string, r *http.Request, lastID string, limit int) []api.Link {
	q := r.URL.Query()
	q.Del("offset")
	q.Set("marker", lastID)
	q.Set("limit", strconv.Itoa(limit))
	return []api.Link{{Rel: "next", Href: base + r.URL.Path + "?" + q.Encode()}}
}

// volumeSortKeys are the sort keys a volume list takes.
var volumeSortKeys = map[string]string{
	"id": "id", "name": "name", "display_name": "name", "status": "status", "size": "size",
	"availability_zone": "availability_zone", "created_at": "created_at", "updated_at": "updated_at",
	"bootable": "bootable", "project_id": "project_id", "user_id": "user_id", "volume_type": "type_id",
	"description": "description", "display_description": "description",
}

func volumeSortValue(v *volume, key string) string {
	switch key {
	case "id":
		return v.ID
	case "name":
		return strOr(v.Name)
	case "status":
		return v.Status
	case "size":
		return fmt.Sprintf("%012d", v.Size)
	case "availability_zone":
		return v.Zone
	case "created_at":
		return v.CreatedAt
	case "updated_at":
		return v.UpdatedAt
	case "bootable":
		return strconv.FormatBool(v.Bootable)
	case "project_id":
		return v.ProjectID
	case "user_id":
		return v.UserID
	case "type_id":
		return v.TypeID
	case "description":
		return strOr(v.Description)
	}
	return ""
}

func (s *Service) listVolumes(r *http.Request) (*api.Response, error) { return s.volumeList(r, false) }

func (s *Service) listVolumesDetail(r *http.Request) (*api.Response, error) {
	return s.volumeList(r, true)
}

// volumeList serves GET /volumes and /volumes/detail with Cinder's
// filters: name, status, availability_zone, bootable, metadata (a dict
// literal), all_tenants and project_id for admins; unknown filters are
// ignored, as Cinder 3.0 does.
func (s *Service) volumeList(r *http.Request, detail bool) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "volume:get_all", c.project); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	sorts, page, err := listParams(q, volumeSortKeys)
	if err != nil {
		return nil, err
	}
	where := []string{"1 = 1"}
	var args []any
	allTenants := c.admin && isTrue(q.Get("all_tenants"))
	switch {
	case c.admin && q.Get("project_id") != "" && (allTenants || q.Get("project_id") != c.project):
		where, args = append(where, "project_id = ?"), append(args, q.Get("project_id"))
	case !allTenants:
		where, args = append(where, "project_id = ?"), append(args, c.project)
	}
	where, args = equalFilters(where, args, q, [][2]string{{"name", "name"}, {"display_name", "name"}, {"status", "status"}, {"availability_zone", "availability_zone"}})
	if b, ok := q["bootable"]; ok {
		boot, err := bootableFilter(r, b[0])
		if err != nil {
			return nil, err
		}
		where, args = append(where, "bootable = ?"), append(args, boolInt(boot))
	}
	if g, ok := q["group_id"]; ok && atLeast(r, 10) {
		// 3.10's filter. Nimbus has no volume groups, so no volume
		// is in the group named.
		where, args = append(where, "1 = 0 AND ? IS NOT NULL"), append(args, g[0])
	}
	var metaFilter, glanceFilter map[string]*string
	if m := q.Get("metadata"); m != "" {
		if metaFilter, err = parseDictLiteral(m); err != nil {
			return nil, api.BadRequest("Invalid input received: %s.", err)
		}
	}
	if m := q.Get("glance_metadata"); m != "" && atLeast(r, 4) {
		if glanceFilter, err = parseDictLiteral(m); err != nil {
			return nil, api.BadRequest("Invalid input received: %s.", err)
		}
	}
	rows, err := store.QueryAll(ctx, s.db, scanVolume, `SELECT `+volumeCols+` FROM volume_volumes WHERE `+strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	kept := rows[:0]
	for _, v := range rows {
		if matchMetadata(v.Metadata, metaFilter) && (glanceFilter == nil || matchMetadata(v.ImageMetadata, glanceFilter)) {
			kept = append(kept, v)
		}
	}
	pageRows, full, err := sortedPage(kept, sorts, page, volumeSortValue, func(v *volume) string { return v.ID })
	if err != nil {
		return nil, err
	}
	base := s.baseURL(r)
	out := make([]any, 0, len(pageRows))
	var names map[string]string
	if detail {
		if names, err = s.typeNames(ctx); err != nil {
			return nil, err
		}
	}
	for _, v := range pageRows {
		if !detail {
			out = append(out, map[string]any{"id": v.ID, "name": v.Name, "links": s.links(base, v.ProjectID, "volumes", v.ID)})
			continue
		}
		v.Attachments, err = store.QueryAll(ctx, s.db, scanAttachment, `SELECT `+attachmentCols+` FROM volume_attachments WHERE volume_id = ? ORDER BY created_at, id`, v.ID)
		if err != nil {
			return nil, fmt.Errorf("attachments of %s: %w", v.ID, err)
		}
		name, ok := names[v.TypeID]
		if !ok {
			name = v.TypeID
		}
		out = append(out, s.view(base, v, name, true, c.admin))
	}
	body := map[string]any{"volumes": out}
	if full {
		body["volumes_links"] = nextLink(base, r, pageRows[len(pageRows)-1].ID, page.limit)
	}
	return api.JSON(http.StatusOK, body), nil
}

// matchMetadata reports whether meta holds every pair of the filter.
func matchMetadata(meta map[string]string, filter map[string]*string) bool {
	for k, want := range filter {
		got, ok := meta[k]
		if !ok || want == nil || got != *want {
			return false
		}
	}
	return true
}

// listParams parses what every list takes: its sort keys (of those keys
// allows) and its page, the sort first as Cinder checks it first.
func listParams(q url.Values, keys map[string]string) ([]sortSpec, pageParams, error) {
	sorts, err := parseSort(q, keys)
	if err != nil {
		return nil, pageParams{}, err
	}
	page, err := parsePageParams(q)
	if err != nil {
		return nil, pageParams{}, err
	}
	return sorts, page, nil
}

// sortedPage sorts rows and cuts the page from them (paginate); a marker
// that names no row is Cinder's 404.
func sortedPage[T any](rows []T, sorts []sortSpec, page pageParams, value func(T, string) string, id func(T) string) ([]T, bool, error) {
	sortRows(rows, sorts, value)
	return paginate(rows, page, id, func(m string) error {
		return api.NotFound("Marker %s could not be found.", m)
	})
}

// equalFilters adds a "col = ?" condition for each {param, col} pair whose
// query parameter is present, with its first value: the exact-match
// filters of Cinder's lists.
func equalFilters(where []string, args []any, q url.Values, filters [][2]string) ([]string, []any) {
	for _, f := range filters {
		if vals, ok := q[f[0]]; ok {
			where, args = append(where, f[1]+" = ?"), append(args, vals[0])
		}
	}
	return where, args
}

// sortRows sorts rows by the keys, each ascending or descending.
func sortRows[T any](rows []T, sorts []sortSpec, value func(T, string) string) {
	sort.SliceStable(rows, func(i, j int) bool {
		for _, sp := range sorts {
			a, b := value(rows[i], sp.key), value(rows[j], sp.key)
			if a == b {
				continue
			}
			if sp.desc {
				return a > b
			}
			return a < b
		}
		return false
	})
}

// bootableFilter reads the bootable list filter. Before 3.2 only
// "false" and "False" mean non-bootable and anything else bootable; from
// 3.2 the value is a strict boolean and anything else a 400.
func bootableFilter(r *http.Request, v string) (bool, error) {
	if !atLeast(r, 2) {
		return !(v == "false" || v == "False"), nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "on", "y", "yes":
		return true, nil
	case "0", "f", "false", "off", "n", "no":
		return false, nil
	}
	return false, api.BadRequest("Invalid input received: bootable={%s}", v)
}

func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "1", "true", "t", "yes", "y", "on":
		return true
	}
	return false
}
