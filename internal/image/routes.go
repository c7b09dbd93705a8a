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
		R{Method: "PUT", Pattern: "/v2/images/{image_id}/stage", Handler: s.stageImage},
		R{Method: "POST", Pattern: "/v2/images/{image_id}/import", Handler: s.importImage},
		R{Method: "GET", Pattern: "/v2/images/{image_id}/tasks", Handler: s.listImageTasks},
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

		R{Method: "GET", Pattern: "/v2/cache", Handler: s.listCache},
		R{Method: "DELETE", Pattern: "/v2/cache", Handler: s.clearCache},
		R{Method: "PUT", Pattern: "/v2/cache/{image_id}", Handler: s.queueCache},
		R{Method: "DELETE", Pattern: "/v2/cache/{image_id}", Handler: s.deleteCached},

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
		desc := st.Description()
		if d := s.cfg.Descriptions[id]; d != "" {
			desc = d
		}
		m := map[string]any{"id": id, "description": desc}
		// Glance sends these flags as the string "true", and clients
		// (Tempest among them) compare them as strings.
		if id == s.cfg.DefaultStore {
			m["default"] = "true"
		}
		if st.ReadOnly() {
			m["read-only"] = "true"
		}
		out = append(out, m)
	}
	return api.JSON(http.StatusOK, map[string]any{"stores": out}), nil
}

// infoImport lists the import methods this service runs.
func (s *Service) infoImport(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, map[string]any{"import-methods": map[string]any{
		"description": "Import methods available.", "type": "array", "value": s.importMethods(),
	}}), nil
}

func (s *Service) noImage(r *http.Request) (*api.Response, error) {
	return nil, api.NotFound("No image found with ID ''")
}
