package image

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// coreAttrs are the image attributes that are not extra properties.
var coreAttrs = map[string]bool{
	"id": true, "name": true, "status": true, "visibility": true, "owner": true, "protected": true,
	"os_hidden": true, "disk_format": true, "container_format": true, "min_disk": true, "min_ram": true,
	"size": true, "virtual_size": true, "checksum": true, "os_hash_algo": true, "os_hash_value": true,
	"tags": true, "created_at": true, "updated_at": true, "self": true, "file": true, "schema": true,
	"locations": true, "direct_url": true, "stores": true,
}

// readOnlyAttrs may not be set by clients (Glance answers 403).
var readOnlyAttrs = map[string]bool{
	"id": true, "status": true, "size": true, "virtual_size": true, "checksum": true, "os_hash_algo": true,
	"os_hash_value": true, "created_at": true, "updated_at": true, "self": true, "file": true,
	"schema": true, "locations": true, "direct_url": true, "stores": true,
}

func glanceTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// view renders an image as Glance does: core attributes and extra
// properties side by side at the top level.
func (s *Service) view(im *image) map[string]any {
	out := make(map[string]any, len(im.Properties)+24)
	for k, v := range im.Properties {
		out[k] = v
	}
	tags := im.Tags
	if tags == nil {
		tags = []string{}
	}
	out["id"] = im.ID
	out["name"] = im.Name
	out["status"] = im.Status
	out["visibility"] = im.Visibility
	out["owner"] = im.Owner
	out["protected"] = im.Protected
	out["os_hidden"] = im.Hidden
	out["disk_format"] = im.DiskFormat
	out["container_format"] = im.ContainerFormat
	out["min_disk"] = im.MinDisk
	out["min_ram"] = im.MinRAM
	out["size"] = im.Size
	out["virtual_size"] = im.VirtualSize
	out["checksum"] = im.Checksum
	out["os_hash_algo"] = im.HashAlgo
	out["os_hash_value"] = im.HashValue
	out["tags"] = tags
	out["created_at"] = glanceTime(im.CreatedAt)
	out["updated_at"] = glanceTime(im.UpdatedAt)
	out["self"] = "/v2/images/" + im.ID
	out["file"] = "/v2/images/" + im.ID + "/file"
	out["schema"] = "/v2/schemas/image"
	if st := storeIDs(im); st != "" {
		out["stores"] = st
	}
	if im.ImportingStores != nil {
		out["os_glance_importing_to_stores"] = *im.ImportingStores
	}
	if im.FailedImport != nil {
		out["os_glance_failed_import"] = *im.FailedImport
	}
	if s.cfg.ShowMultipleLocations {
		locs := make([]map[string]any, 0, len(im.Locations))
		for _, l := range im.Locations {
			meta := l.Metadata
			if meta == nil {
				meta = map[string]any{}
			}
			locs = append(locs, map[string]any{"url": l.URL, "metadata": meta})
		}
		out["locations"] = locs
	}
	return out
}

// setAttr validates and applies one attribute of a create or patch.
// Extra properties must be strings as in Glance's schema; nil removes.
func setAttr(im *image, key string, raw json.RawMessage, admin bool) error {
	if readOnlyAttrs[key] {
		return api.Forbidden("Attribute '%s' is read-only.", key)
	}
	null := strings.TrimSpace(string(raw)) == "null"
	strPtr := func(allowed []string) (*string, error) {
		if null {
			return nil, nil
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, api.BadRequest("Invalid value for '%s': expected a string.", key)
		}
		if allowed != nil && !slices.Contains(allowed, v) {
			return nil, api.BadRequest("Invalid value '%s' for '%s': must be one of %s.", v, key, strings.Join(allowed, ", "))
		}
		if len(v) > 255 {
			return nil, api.BadRequest("Invalid value for '%s': longer than 255 characters.", key)
		}
		return &v, nil
	}
	boolean := func() (bool, error) {
		var v bool
		if null || json.Unmarshal(raw, &v) != nil {
			return false, api.BadRequest("Invalid value for '%s': expected a boolean.", key)
		}
		return v, nil
	}
	integer := func() (int64, error) {
		var v int64
		if null || json.Unmarshal(raw, &v) != nil || v < 0 || v > 1<<31-1 {
			return 0, api.BadRequest("Invalid value for '%s': expected a non-negative integer.", key)
		}
		return v, nil
	}
	var err error
	switch key {
	case "name":
		im.Name, err = strPtr(nil)
	case "disk_format":
		im.DiskFormat, err = strPtr(diskFormats)
	case "container_format":
		im.ContainerFormat, err = strPtr(containerFormats)
	case "visibility":
		var v *string
		if v, err = strPtr(visibilities); err == nil {
			if v == nil {
				return api.BadRequest("Invalid value for 'visibility'.")
			}
			im.Visibility = *v
		}
	case "owner":
		var v *string
		if v, err = strPtr(nil); err == nil && v != nil && *v != im.Owner {
			if !admin {
				return api.Forbidden("Attribute 'owner' can only be changed by an administrator.")
			}
			im.Owner = *v
		}
	case "protected":
		im.Protected, err = boolean()
	case "os_hidden":
		im.Hidden, err = boolean()
	case "min_disk":
		im.MinDisk, err = integer()
	case "min_ram":
		im.MinRAM, err = integer()
	case "tags":
		var tags []string
		if null || json.Unmarshal(raw, &tags) != nil {
			return api.BadRequest("Invalid value for 'tags': expected an array of strings.")
		}
		im.Tags = nil
		for _, t := range tags {
			if err := validTag(t); err != nil {
				return err
			}
			if !slices.Contains(im.Tags, t) {
				im.Tags = append(im.Tags, t)
			}
		}
	default:
		if key == "" || len(key) > 255 {
			return api.BadRequest("Invalid property name.")
		}
		if strings.HasPrefix(key, "os_glance") {
			return api.Forbidden("Attribute '%s' is reserved.", key)
		}
		// Glance's schema allows only strings as extra properties.
		var v string
		if null || json.Unmarshal(raw, &v) != nil {
			return api.BadRequest("Invalid value for '%s': extra properties must be strings.", key)
		}
		if len(v) > 65535 {
			return api.BadRequest("Invalid value for '%s': too long.", key)
		}
		im.Properties[key] = v
	}
	return err
}

func (s *Service) createImage(r *http.Request) (*api.Response, error) {
	var body map[string]json.RawMessage
	if err := decodeJSON(r, &body); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	im := &image{
		ID: uuid.NewString(), Status: "queued", Visibility: "shared", Owner: projectOf(r),
		Properties: map[string]any{}, Tags: []string{}, CreatedAt: now, UpdatedAt: now,
	}
	admin := s.isAdmin(r)
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		raw := body[k]
		if k == "id" {
			var id string
			if json.Unmarshal(raw, &id) != nil {
				return nil, api.BadRequest("Invalid value for 'id': must be a UUID.")
			}
			u, err := uuid.Parse(id)
			if err != nil {
				return nil, api.BadRequest("Invalid value for 'id': must be a UUID.")
			}
			im.ID = u.String()
			continue
		}
		if err := setAttr(im, k, raw, admin); err != nil {
			return nil, err
		}
	}
	if err := s.checkVisibilityChange(r, im, ""); err != nil {
		return nil, err
	}
	if err := s.authorize(r, "add_image", im, nil); err != nil {
		return nil, err
	}
	if err := s.checkImageCount(r.Context(), im.Owner); err != nil {
		return nil, err
	}
	if err := s.insert(r.Context(), im); err != nil {
		return nil, err
	}
	resp := api.JSON(http.StatusCreated, s.view(im)).WithHeader("Location", s.baseURL(r)+"/v2/images/"+im.ID)
	if m := s.importMethods(); len(m) > 0 {
		resp.WithHeader("OpenStack-image-import-methods", strings.Join(m, ","))
	}
	if len(s.cfg.Stores) > 1 {
		resp.WithHeader("OpenStack-image-store-ids", strings.Join(s.writableStores(), ","))
	}
	return resp, nil
}

// checkVisibilityChange enforces who may make images public or community.
func (s *Service) checkVisibilityChange(r *http.Request, im *image, before string) error {
	if im.Visibility == before {
		return nil
	}
	switch im.Visibility {
	case "public":
		return s.authorize(r, "publicize_image", im, nil)
	case "community":
		return s.authorize(r, "communitize_image", im, nil)
	}
	return nil
}

func (s *Service) showImage(r *http.Request) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "get_image", im, nil); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, s.view(im)), nil
}

var sortKeys = []string{"name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at", "min_disk", "min_ram", "visibility", "owner", "protected", "os_hidden"}

type sortSpec struct {
	key  string
	desc bool
}

func parseSort(q url.Values) ([]sortSpec, error) {
	var specs []sortSpec
	if v := q.Get("sort"); v != "" {
		if q.Has("sort_key") || q.Has("sort_dir") {
			return nil, api.BadRequest("The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'.")
		}
		for _, part := range strings.Split(v, ",") {
			key, dir, _ := strings.Cut(strings.TrimSpace(part), ":")
			if dir == "" {
				dir = "desc"
			}
			if !slices.Contains(sortKeys, key) || (dir != "asc" && dir != "desc") {
				return nil, api.BadRequest("Invalid sort: %s", part)
			}
			specs = append(specs, sortSpec{key, dir == "desc"})
		}
	} else {
		keys, dirs := q["sort_key"], q["sort_dir"]
		if len(dirs) > 1 && len(dirs) != len(keys) {
			return nil, api.BadRequest("Number of sort dirs does not match the number of sort keys.")
		}
		for i, k := range keys {
			dir := "desc"
			if len(dirs) == 1 {
				dir = dirs[0]
			} else if len(dirs) > 1 {
				dir = dirs[i]
			}
			if !slices.Contains(sortKeys, k) || (dir != "asc" && dir != "desc") {
				return nil, api.BadRequest("Invalid sort key or direction: %s %s", k, dir)
			}
			specs = append(specs, sortSpec{k, dir == "desc"})
		}
		if len(keys) == 0 {
			dir := "desc"
			if len(dirs) == 1 {
				if dirs[0] != "asc" && dirs[0] != "desc" {
					return nil, api.BadRequest("Invalid sort direction: %s", dirs[0])
				}
				dir = dirs[0]
			}
			specs = append(specs, sortSpec{"created_at", dir == "desc"})
		}
	}
	// Glance always breaks ties by id so that markers are stable.
	if !slices.ContainsFunc(specs, func(s sortSpec) bool { return s.key == "id" }) {
		specs = append(specs, sortSpec{"id", true})
	}
	return specs, nil
}

func compareBy(a, b *image, key string) int {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	num := func(p *int64) int64 {
		if p == nil {
			return -1
		}
		return *p
	}
	switch key {
	case "name":
		return strings.Compare(str(a.Name), str(b.Name))
	case "status":
		return strings.Compare(a.Status, b.Status)
	case "container_format":
		return strings.Compare(str(a.ContainerFormat), str(b.ContainerFormat))
	case "disk_format":
		return strings.Compare(str(a.DiskFormat), str(b.DiskFormat))
	case "size":
		return cmpInt(num(a.Size), num(b.Size))
	case "created_at":
		return a.CreatedAt.Compare(b.CreatedAt)
	case "updated_at":
		return a.UpdatedAt.Compare(b.UpdatedAt)
	case "min_disk":
		return cmpInt(a.MinDisk, b.MinDisk)
	case "min_ram":
		return cmpInt(a.MinRAM, b.MinRAM)
	case "visibility":
		return strings.Compare(a.Visibility, b.Visibility)
	case "owner":
		return strings.Compare(a.Owner, b.Owner)
	case "protected":
		return cmpInt(int64(boolInt(a.Protected)), int64(boolInt(b.Protected)))
	case "os_hidden":
		return cmpInt(int64(boolInt(a.Hidden)), int64(boolInt(b.Hidden)))
	}
	return strings.Compare(a.ID, b.ID)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// listFilter holds the parsed filters of GET /v2/images.
type listFilter struct {
	q            url.Values
	visibility   string
	memberStatus string
	sizeMin      int64
	sizeMax      int64
	protected    *bool
	hidden       bool
}

func parseFilter(q url.Values) (*listFilter, error) {
	f := &listFilter{q: q, visibility: q.Get("visibility"), memberStatus: q.Get("member_status"), sizeMin: -1, sizeMax: -1}
	if f.visibility != "" && f.visibility != "all" && !slices.Contains(visibilities, f.visibility) {
		return nil, api.BadRequest("Invalid visibility value: %s", f.visibility)
	}
	if f.memberStatus == "" {
		f.memberStatus = "accepted"
	}
	if !slices.Contains([]string{"accepted", "pending", "rejected", "all"}, f.memberStatus) {
		return nil, api.BadRequest("Invalid status value: %s", f.memberStatus)
	}
	for name, dst := range map[string]*int64{"size_min": &f.sizeMin, "size_max": &f.sizeMax} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, api.BadRequest("Invalid %s value: %s", name, v)
			}
			*dst = n
		}
	}
	for name, dst := range map[string]**bool{"protected": &f.protected} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, api.BadRequest("Invalid %s value: %s", name, v)
			}
			*dst = &b
		}
	}
	if v := q.Get("os_hidden"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, api.BadRequest("Invalid os_hidden value: %s", v)
		}
		f.hidden = b
	}
	return f, nil
}

// inOp matches Glance's "in:a,b" filter values as well as plain ones.
func inOp(filter string, v *string) bool {
	if strings.HasPrefix(filter, "in:") {
		return v != nil && slices.Contains(strings.Split(filter[3:], ","), *v)
	}
	return v != nil && *v == filter
}

// matches applies the attribute filters (not visibility) to one image.
func (f *listFilter) matches(im *image) bool {
	q := f.q
	if v := q.Get("name"); v != "" && !inOp(v, im.Name) {
		return false
	}
	if v := q.Get("status"); v != "" && !inOp(v, &im.Status) {
		return false
	}
	if v := q.Get("owner"); v != "" && !inOp(v, &im.Owner) {
		return false
	}
	if v := q.Get("id"); v != "" && !inOp(v, &im.ID) {
		return false
	}
	if v := q.Get("disk_format"); v != "" && !inOp(v, im.DiskFormat) {
		return false
	}
	if v := q.Get("container_format"); v != "" && !inOp(v, im.ContainerFormat) {
		return false
	}
	if v := q.Get("checksum"); v != "" && !inOp(v, im.Checksum) {
		return false
	}
	if v := q.Get("os_hash_value"); v != "" && !inOp(v, im.HashValue) {
		return false
	}
	if v := q.Get("size"); v != "" && (im.Size == nil || strconv.FormatInt(*im.Size, 10) != v) {
		return false
	}
	for _, t := range q["tag"] {
		if !slices.Contains(im.Tags, t) {
			return false
		}
	}
	if f.sizeMin >= 0 && (im.Size == nil || *im.Size < f.sizeMin) {
		return false
	}
	if f.sizeMax >= 0 && (im.Size == nil || *im.Size > f.sizeMax) {
		return false
	}
	if f.protected != nil && im.Protected != *f.protected {
		return false
	}
	if im.Hidden != f.hidden {
		return false
	}
	// Remaining unknown parameters filter on extra properties, as in Glance.
	for k, vs := range q {
		if coreAttrs[k] || listParams[k] {
			continue
		}
		pv, ok := im.Properties[k]
		if !ok || fmt.Sprint(pv) != vs[0] {
			return false
		}
	}
	return true
}

var listParams = map[string]bool{
	"limit": true, "marker": true, "sort": true, "sort_key": true, "sort_dir": true, "member_status": true,
	"tag": true, "size_min": true, "size_max": true, "created_at": true, "updated_at": true,
}

func (s *Service) listImages(r *http.Request) (*api.Response, error) {
	q := r.URL.Query()
	page, err := api.ParsePage(r, 1000)
	if err != nil {
		return nil, err
	}
	if q.Get("limit") == "" {
		page.Limit = 25 // Glance's limit_param_default
	}
	specs, err := parseSort(q)
	if err != nil {
		return nil, err
	}
	f, err := parseFilter(q)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	admin, project := s.isAdmin(r), projectOf(r)
	all, err := s.visibleImages(ctx, admin, project, f)
	if err != nil {
		return nil, err
	}
	var items []*image
	for _, im := range all {
		if f.matches(im) {
			items = append(items, im)
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		for _, sp := range specs {
			c := compareBy(items[i], items[j], sp.key)
			if c != 0 {
				return (c < 0) != sp.desc
			}
		}
		return false
	})
	if page.Marker != "" {
		// Glance answers 400 for a marker the caller cannot see.
		if !slices.ContainsFunc(all, func(im *image) bool { return im.ID == page.Marker }) {
			return nil, api.BadRequest("Marker %s could not be found.", page.Marker)
		}
		if !slices.ContainsFunc(items, func(im *image) bool { return im.ID == page.Marker }) {
			items = nil
		}
	}
	got, more, err := api.Paginate(items, page, func(im *image) string { return im.ID })
	if err != nil {
		return nil, err
	}
	if err := s.loadLocations(ctx, got...); err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(got))
	for i, im := range got {
		out[i] = s.view(im)
	}
	body := map[string]any{"images": out, "schema": "/v2/schemas/images", "first": "/v2/images"}
	if fq := firstQuery(q); fq != "" {
		body["first"] = "/v2/images?" + fq
	}
	if more {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("marker", got[len(got)-1].ID)
		body["next"] = "/v2/images?" + nq.Encode()
	}
	return api.JSON(http.StatusOK, body), nil
}

func firstQuery(q url.Values) string {
	fq := url.Values{}
	for k, v := range q {
		if k != "marker" {
			fq[k] = v
		}
	}
	return fq.Encode()
}

// visibleImages returns the images a listing may include, following
// Glance: by default a project lists public images, its own images and
// the shared images whose membership matches member_status (accepted by
// default); community images of others only with visibility=community.
func (s *Service) visibleImages(ctx context.Context, admin bool, project string, f *listFilter) ([]*image, error) {
	var (
		where []string
		args  []any
	)
	if f.visibility != "" && f.visibility != "all" {
		where = append(where, "visibility = ?")
		args = append(args, f.visibility)
	}
	if !admin {
		memberCond := "EXISTS (SELECT 1 FROM image_members m WHERE m.image_id = images.id AND m.member_id = ?"
		margs := []any{project}
		if f.memberStatus != "all" {
			memberCond += " AND m.status = ?"
			margs = append(margs, f.memberStatus)
		}
		memberCond += ")"
		cond := "(owner = ? OR visibility = 'public' OR (visibility = 'shared' AND " + memberCond + ")"
		args = append(args, project)
		args = append(args, margs...)
		if f.visibility == "community" || f.visibility == "all" {
			cond += " OR visibility = 'community'"
		}
		cond += ")"
		where = append(where, cond)
	} else if f.visibility == "" {
		// Admins see everything except others' community images, which
		// are listed only when asked for, as for everyone.
		where = append(where, "(visibility <> 'community' OR owner = ?)")
		args = append(args, project)
	}
	query := `SELECT ` + imageColumns + ` FROM images`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	return queryImages(ctx, s, query, args...)
}

func queryImages(ctx context.Context, s *Service, query string, args ...any) ([]*image, error) {
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*image
	for rows.Next() {
		im, err := scanImage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	return out, rows.Err()
}

// patchOp is one operation of a JSON-patch request.
type patchOp struct {
	Op    string          `json:"op"`
	Path  json.RawMessage `json:"path"`
	Value json.RawMessage `json:"value"`
}

// UnmarshalJSON reads both patch dialects: v2.1's {"op": "replace",
// "path": "/name", "value": ...} and the older v2.0 form, still sent by
// Tempest and old clients, where the operation is the key:
// {"replace": "/name", "value": ...}.
func (p *patchOp) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*p = patchOp{Value: m["value"]}
	if op, ok := m["op"]; ok {
		if err := json.Unmarshal(op, &p.Op); err != nil {
			return api.BadRequest("Invalid input for field 'op': expected string.")
		}
		p.Path = m["path"]
		return nil
	}
	for _, op := range []string{"add", "replace", "remove"} {
		if path, ok := m[op]; ok {
			if p.Op != "" {
				return api.BadRequest("A JSON-patch operation names more than one of add, replace and remove.")
			}
			p.Op, p.Path = op, path
		}
	}
	return nil
}

const (
	patchV21 = "application/openstack-images-v2.1-json-patch"
	patchV20 = "application/openstack-images-v2.0-json-patch"
)

// patchPath returns the attribute a patch path names: "/name" in v2.1,
// also ["name"] in the old v2.0 form.
func patchPath(raw json.RawMessage) (string, error) {
	var p string
	if json.Unmarshal(raw, &p) == nil {
		if !strings.HasPrefix(p, "/") || strings.Count(p, "/") != 1 {
			if strings.HasPrefix(p, "/locations") {
				return "", api.Forbidden("Image locations cannot be changed.")
			}
			return "", api.BadRequest("Invalid JSON pointer for this resource: '%s'", p)
		}
		p = strings.NewReplacer("~1", "/", "~0", "~").Replace(p[1:])
		return p, nil
	}
	var parts []string
	if json.Unmarshal(raw, &parts) == nil && len(parts) == 1 {
		return parts[0], nil
	}
	return "", api.BadRequest("Invalid path in JSON patch.")
}

func (s *Service) updateImage(r *http.Request) (*api.Response, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != patchV21 && ct != patchV20 {
		e := api.Errorf(http.StatusUnsupportedMediaType, "Unsupported Content-Type; use %s.", patchV21)
		e.Header = http.Header{"Accept-Patch": {patchV21 + ", " + patchV20}}
		return nil, e
	}
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "modify_image", im, nil); err != nil {
		return nil, err
	}
	var ops []patchOp
	if err := decodeJSON(r, &ops); err != nil {
		return nil, err
	}
	admin := s.isAdmin(r)
	before, fromStatus := im.Visibility, im.Status
	lp := &locationPatch{s: s, im: im, status: im.Status, locs: slices.Clone(im.Locations)}
	for _, op := range ops {
		if s.cfg.ShowMultipleLocations {
			index, whole, ok, err := locationPath(op.Path)
			if err != nil {
				return nil, err
			}
			if ok {
				if err := lp.apply(r.Context(), op.Op, index, whole, op.Value); err != nil {
					return nil, err
				}
				continue
			}
		}
		key, err := patchPath(op.Path)
		if err != nil {
			return nil, err
		}
		if readOnlyAttrs[key] {
			return nil, api.Forbidden("Attribute '%s' is read-only.", key)
		}
		_, isProp := im.Properties[key]
		switch op.Op {
		case "add", "replace":
			if op.Value == nil {
				return nil, api.BadRequest("Operation '%s' requires a 'value'.", op.Op)
			}
			if op.Op == "replace" && !coreAttrs[key] && !isProp {
				return nil, api.Conflict("Property %s does not exist.", key)
			}
			if (key == "disk_format" || key == "container_format") && im.Status != "queued" {
				return nil, api.Forbidden("Attribute %s can be only replaced for a queued image.", key)
			}
			if err := setAttr(im, key, op.Value, admin); err != nil {
				return nil, err
			}
		case "remove":
			if coreAttrs[key] {
				return nil, api.Forbidden("Attribute '%s' is reserved and cannot be removed.", key)
			}
			if !isProp {
				return nil, api.Conflict("Property %s does not exist.", key)
			}
			delete(im.Properties, key)
		default:
			return nil, api.BadRequest("Invalid operation: '%s'.", op.Op)
		}
	}
	if err := s.checkVisibilityChange(r, im, before); err != nil {
		return nil, err
	}
	if !lp.changed {
		if err := s.update(r.Context(), im); err != nil {
			return nil, err
		}
		return api.JSON(http.StatusOK, s.view(im)), nil
	}
	err = s.db.InTx(r.Context(), func(tx *store.Tx) error {
		if err := lp.save(r.Context(), tx, fromStatus); err != nil {
			return err
		}
		return updateIn(r.Context(), tx, im)
	})
	if err != nil {
		return nil, err
	}
	// Data behind removed locations goes once no record points to it.
	s.deleteData(context.WithoutCancel(r.Context()), im.ID, lp.removed)
	im.Status, im.Locations = lp.status, lp.locs
	return api.JSON(http.StatusOK, s.view(im)), nil
}

func (s *Service) deleteImage(r *http.Request) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "delete_image", im, nil); err != nil {
		return nil, err
	}
	if im.Protected {
		return nil, api.Forbidden("Image %s is protected and cannot be deleted.", im.ID)
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM images WHERE id = ?`, im.ID); err != nil {
		return nil, err
	}
	// The record goes first: a failed data delete leaves an orphan file
	// that no image points to rather than an image without data.
	bg := context.WithoutCancel(r.Context())
	s.deleteData(bg, im.ID, im.Locations)
	s.discardStaged(bg, im.ID)
	if s.cache != nil {
		s.cache.dequeue(im.ID)
		s.cache.remove(im.ID)
	}
	return api.NoContent(), nil
}
