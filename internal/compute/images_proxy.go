package compute

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// glanceStatus maps Glance image states to Nova's, as Nova's image view.
var glanceStatus = map[string]string{
	"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING", "importing": "SAVING", "uploading": "SAVING",
	"deleted": "DELETED", "pending_delete": "DELETED", "killed": "ERROR", "deactivated": "ERROR",
}

func (s *Service) imageView(r *http.Request, img map[string]any, detail bool) map[string]any {
	id, _ := img["id"].(string)
	base := s.baseURL(r)
	out := map[string]any{"id": id, "name": img["name"], "links": []api.Link{
		{Rel: "self", Href: base + "/v2.1/images/" + id},
		{Rel: "bookmark", Href: base + "/images/" + id},
		{Rel: "alternate", Type: "application/vnd.openstack.image", Href: s.cfg.ImageURL + "/images/" + id},
	}}
	if !detail {
		return out
	}
	st, _ := img["status"].(string)
	status := glanceStatus[st]
	if status == "" {
		status = "UNKNOWN"
	}
	progress := 0
	if status == "ACTIVE" {
		progress = 100
	} else if status == "SAVING" {
		progress = 25
	}
	num := func(k string) int { f, _ := img[k].(float64); return int(f) }
	out["status"] = status
	out["progress"] = progress
	out["minDisk"] = num("min_disk")
	out["minRam"] = num("min_ram")
	out["OS-EXT-IMG-SIZE:size"] = num("size")
	out["created"] = glanceTime(img["created_at"])
	out["updated"] = glanceTime(img["updated_at"])
	md := imageProps(img)
	out["metadata"] = md
	if inst := md["instance_uuid"]; inst != "" {
		out["server"] = map[string]any{"id": inst, "links": s.links(r, "servers", inst)}
	}
	return out
}

// glanceTime passes Glance's 2016-03-08T20:19:41Z through, as Nova does.
func glanceTime(v any) any {
	if s, ok := v.(string); ok {
		return s
	}
	return nil
}

// imageProps are an image's properties: its string attributes that are
// not Glance's own.
func imageProps(img map[string]any) map[string]string {
	md := map[string]string{}
	for k, v := range img {
		if sv, ok := v.(string); ok && !glanceCore[k] {
			md[k] = sv
		}
	}
	return md
}

func (s *Service) getImage(r *http.Request, id string) (map[string]any, error) {
	var img map[string]any
	if err := s.call(r, s.cfg.ImageURL, "GET", "/v2/images/"+url.PathEscape(id), nil, &img, http.StatusOK, "Image not found."); err != nil {
		return nil, err
	}
	return img, nil
}

func (s *Service) listImages(r *http.Request) (*api.Response, error) { return s.imageList(r, false) }
func (s *Service) listImagesDetail(r *http.Request) (*api.Response, error) {
	return s.imageList(r, true)
}

// imageList maps Nova's image filters onto Glance's list.
func (s *Service) imageList(r *http.Request, detail bool) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	g := url.Values{}
	for nova, glance := range map[string]string{"name": "name", "limit": "limit", "marker": "marker", "server": "instance_uuid",
		"type": "image_type", "minRam": "min_ram", "minDisk": "min_disk"} {
		if v := q.Get(nova); v != "" {
			g.Set(glance, v)
		}
	}
	if v := q.Get("minRam"); v != "" {
		g.Del("min_ram")
		g.Set("min_ram", "gte:"+v)
	}
	if v := q.Get("minDisk"); v != "" {
		g.Del("min_disk")
		g.Set("min_disk", "gte:"+v)
	}
	if v := q.Get("changes-since"); v != "" {
		t, err := parseISO(v)
		if err != nil {
			return nil, api.BadRequest("Invalid changes-since value")
		}
		g.Set("updated_at", "gte:"+isoZ(t))
	}
	if v := q.Get("status"); v != "" {
		for gs, ns := range glanceStatus {
			if strings.EqualFold(ns, v) && gs != "importing" && gs != "uploading" {
				g.Add("status", gs)
			}
		}
		if len(g["status"]) > 0 {
			g.Set("status", "in:"+strings.Join(g["status"], ","))
		}
	}
	if v := q.Get("server"); v != "" {
		g.Set("instance_uuid", refID(v))
	}
	var out struct {
		Images []map[string]any `json:"images"`
		Next   string           `json:"next"`
	}
	path := "/v2/images"
	if enc := g.Encode(); enc != "" {
		path += "?" + enc
	}
	if err := s.call(r, s.cfg.ImageURL, "GET", path, nil, &out, http.StatusOK, "Image not found.",
		statusErrors{http.StatusBadRequest: api.BadRequest("Invalid image list filter or marker.")}); err != nil {
		return nil, err
	}
	list := make([]map[string]any, 0, len(out.Images))
	for _, img := range out.Images {
		list = append(list, s.imageView(r, img, detail))
	}
	body := map[string]any{"images": list}
	if out.Next != "" && len(out.Images) > 0 {
		id, _ := out.Images[len(out.Images)-1]["id"].(string)
		body["images_links"] = []api.Link{api.NextLink(s.baseURL(r), r, id)}
	}
	return api.JSON(http.StatusOK, body), nil
}

func (s *Service) showImage(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	img, err := s.getImage(r, r.PathValue("image_id"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"image": s.imageView(r, img, true)}), nil
}

func (s *Service) deleteImage(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	id := r.PathValue("image_id")
	if err := s.call(r, s.cfg.ImageURL, "DELETE", "/v2/images/"+url.PathEscape(id), nil, nil, http.StatusNoContent, "Image not found."); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (s *Service) listImageMetadata(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	img, err := s.getImage(r, r.PathValue("image_id"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"metadata": imageProps(img)}), nil
}

func (s *Service) showImageMetadata(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	img, err := s.getImage(r, r.PathValue("image_id"))
	if err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	v, ok := imageProps(img)[key]
	if !ok {
		return nil, api.NotFound("Image doesn't have a property %s", key)
	}
	return api.JSON(http.StatusOK, map[string]any{"meta": map[string]string{key: v}}), nil
}

// patchImageMetadata applies metadata changes with a JSON patch; set
// replaces everything when replace is true.
func (s *Service) patchImageMetadata(r *http.Request, set map[string]string, remove []string, replace bool) (map[string]string, error) {
	id := r.PathValue("image_id")
	img, err := s.getImage(r, id)
	if err != nil {
		return nil, err
	}
	cur := imageProps(img)
	var ops []map[string]any
	if replace {
		for k := range cur {
			if _, keep := set[k]; !keep {
				ops = append(ops, map[string]any{"op": "remove", "path": "/" + k})
			}
		}
	}
	for _, k := range remove {
		if _, ok := cur[k]; !ok {
			return nil, api.NotFound("Image doesn't have a property %s", k)
		}
		ops = append(ops, map[string]any{"op": "remove", "path": "/" + k})
	}
	for k, v := range set {
		if glanceCore[k] {
			return nil, api.BadRequest("Invalid image metadata key %s", k)
		}
		ops = append(ops, map[string]any{"op": "add", "path": "/" + k, "value": v})
	}
	if len(ops) == 0 {
		return cur, nil
	}
	var out map[string]any
	quota := api.Forbidden("Quota exceeded for metadata_items")
	if err := s.call(r, s.cfg.ImageURL, http.MethodPatch, "/v2/images/"+url.PathEscape(id), ops, &out, http.StatusOK, "Image not found.",
		statusErrors{http.StatusRequestEntityTooLarge: quota, http.StatusForbidden: quota}); err != nil {
		return nil, err
	}
	return imageProps(out), nil
}

func decodeMetadata(r *http.Request, key string) (map[string]string, error) {
	var body map[string]json.RawMessage
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	raw, ok := body[key]
	if !ok || len(body) != 1 {
		return nil, api.BadRequest("Invalid input for field/attribute %s. '%s' is a required property", key, key)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, api.BadRequest("Invalid input for field/attribute %s.", key)
	}
	return checkMetadata(m)
}

func (s *Service) createImageMetadata(r *http.Request) (*api.Response, error) {
	return s.postImageMetadata(r, false)
}

func (s *Service) replaceImageMetadata(r *http.Request) (*api.Response, error) {
	return s.postImageMetadata(r, true)
}

// postImageMetadata serves a {"metadata": {...}} body: merged into the
// image's properties (POST) or replacing them (PUT).
func (s *Service) postImageMetadata(r *http.Request, replace bool) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	md, err := decodeMetadata(r, "metadata")
	if err != nil {
		return nil, err
	}
	out, err := s.patchImageMetadata(r, md, nil, replace)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"metadata": out}), nil
}

func (s *Service) updateImageMetadataItem(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	md, err := decodeMetadata(r, "meta")
	if err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	if _, ok := md[key]; !ok || len(md) != 1 {
		return nil, api.BadRequest("Request body and URI mismatch")
	}
	if _, err := s.patchImageMetadata(r, md, nil, false); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"meta": md}), nil
}

func (s *Service) deleteImageMetadataItem(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	if _, err := s.patchImageMetadata(r, nil, []string{r.PathValue("key")}, false); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}
