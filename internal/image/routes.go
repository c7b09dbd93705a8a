package image

import (
	"net/http"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Routes returns the image API's route table. Image downloads stream and
// so are served beside it by Handler; serve Handler, not Routes alone.
func (s *Service) Routes() *api.Router {
	rt := api.NewRouter(s.api)
	none := api.AuthNone
	type R = api.Route
	rt.Handle(
		R{Method: "GET", Pattern: "/{$}", Handler: s.versions, Auth: none},
		R{Method: "GET", Pattern: "/versions", Handler: s.versionsOK, Auth: none},

		// Glance has no routes for an empty image id: /v2/images/ is a 404,
		// not the collection (Tempest's *_null_id tests).
		R{Method: "GET", Pattern: "/v2/images/{$}", Handler: s.noImage},
		R{Method: "PATCH", Pattern: "/v2/images/{$}", Handler: s.noImage},
		R{Method: "DELETE", Pattern: "/v2/images/{$}", Handler: s.noImage},

		R{Method: "POST", Pattern: "/v2/images", Handler: s.createImage},
		R{Method: "GET", Pattern: "/v2/images", Handler: s.listImages, Policy: "get_images"},
		R{Method: "GET", Pattern: "/v2/images/{image_id}", Handler: s.showImage},
		R{Method: "PATCH", Pattern: "/v2/images/{image_id}", Handler: s.updateImage},
		R{Method: "DELETE", Pattern: "/v2/images/{image_id}", Handler: s.deleteImage},
		R{Method: "PUT", Pattern: "/v2/images/{image_id}/file", Handler: s.uploadImage},
		R{Method: "POST", Pattern: "/v2/images/{image_id}/actions/deactivate", Handler: s.deactivate},
		R{Method: "POST", Pattern: "/v2/images/{image_id}/actions/reactivate", Handler: s.reactivate},

		R{Method: "PUT", Pattern: "/v2/images/{image_id}/tags/{tag}", Handler: s.addTag},
		R{Method: "DELETE", Pattern: "/v2/images/{image_id}/tags/{tag}", Handler: s.deleteTag},

		R{Method: "POST", Pattern: "/v2/images/{image_id}/members", Handler: s.addMember},
		R{Method: "GET", Pattern: "/v2/images/{image_id}/members", Handler: s.listMembers},
		R{Method: "GET", Pattern: "/v2/images/{image_id}/members/{member_id}", Handler: s.showMember},
		R{Method: "PUT", Pattern: "/v2/images/{image_id}/members/{member_id}", Handler: s.updateMember},
		R{Method: "DELETE", Pattern: "/v2/images/{image_id}/members/{member_id}", Handler: s.deleteMember},

		R{Method: "GET", Pattern: "/v2/schemas/image", Handler: s.schema(imageSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/images", Handler: s.schema(imagesSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/member", Handler: s.schema(memberSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/members", Handler: s.schema(membersSchema)},

		R{Method: "GET", Pattern: "/v2/info/stores", Handler: s.infoStores, Policy: "stores_info"},
		R{Method: "GET", Pattern: "/v2/info/import", Handler: s.infoImport},
		R{Method: "GET", Pattern: "/v2/info/usage", Handler: s.infoUsage, Policy: "get_usage_info"},
	)
	s.metadefRoutes(rt)
	return rt
}

// Handler is the complete image API behind the shared middleware: the
// route table plus the streaming download, which cannot be an api.Route
// because api.Response buffers its body.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/images/{image_id}/file", s.serveDownload) // also serves HEAD
	mux.Handle("/", s.Routes())
	return s.api.Handler(mux)
}

func (s *Service) infoStores(r *http.Request) (*api.Response, error) {
	ids := make([]string, 0, len(s.cfg.Stores))
	for id := range s.cfg.Stores {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		st := s.cfg.Stores[id]
		m := map[string]any{"id": id, "description": st.Description()}
		if id == s.cfg.DefaultStore {
			m["default"] = true
		}
		if st.ReadOnly() {
			m["read-only"] = true
		}
		out = append(out, m)
	}
	return api.JSON(http.StatusOK, map[string]any{"stores": out}), nil
}

// infoImport lists the import methods (none yet, see importMethods).
func (s *Service) infoImport(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, map[string]any{"import-methods": map[string]any{
		"description": "Import methods available.", "type": "array", "value": importMethods,
	}}), nil
}

// infoUsage reports the caller project's image usage; no quotas are
// enforced yet, so every limit is -1 (unlimited), as Glance shows it.
func (s *Service) infoUsage(r *http.Request) (*api.Response, error) {
	var count, size int64
	if err := s.db.QueryRow(r.Context(), `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM images WHERE owner = ?`, projectOf(r)).Scan(&count, &size); err != nil {
		return nil, err
	}
	var uploading int64
	if err := s.db.QueryRow(r.Context(), `SELECT COUNT(*) FROM images WHERE owner = ? AND status = 'saving'`, projectOf(r)).Scan(&uploading); err != nil {
		return nil, err
	}
	u := func(n int64) map[string]any { return map[string]any{"limit": -1, "usage": n} }
	// Sizes are in MiB, as Glance reports them; nothing is ever staged
	// because the import flow is not implemented.
	return api.JSON(http.StatusOK, map[string]any{"usage": map[string]any{
		"image_size_total": u(size / (1 << 20)), "image_stage_total": u(0),
		"image_count_total": u(count), "image_count_uploading": u(uploading),
	}}), nil
}

func (s *Service) noImage(r *http.Request) (*api.Response, error) {
	return nil, api.NotFound("No image found with ID ''")
}
