package compute

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Nova's version documents carry fixed "updated" stamps, which clients
// ignore but schema checks compare in shape.
const (
	v20Updated = "2011-01-21T11:33:21Z"
	v21Updated = "2013-07-23T11:33:21Z"
)

func (s *Service) v20Doc(r *http.Request) map[string]any {
	return map[string]any{
		"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "", "updated": v20Updated,
		"links": []api.Link{{Rel: "self", Href: s.baseURL(r) + "/v2/"}},
	}
}

func (s *Service) v21Doc(r *http.Request) map[string]any {
	return map[string]any{
		"id": "v2.1", "status": "CURRENT", "version": MaxVersion.String(), "min_version": MinVersion.String(), "updated": v21Updated,
		"links": []api.Link{{Rel: "self", Href: s.baseURL(r) + "/v2.1/"}},
	}
}

// versions answers GET /: both major versions, v2.1 current.
func (s *Service) versions(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, map[string]any{"versions": []any{s.v20Doc(r), s.v21Doc(r)}}), nil
}

// versionV21 answers GET /v2.1 with the version's own document.
func (s *Service) versionV21(r *http.Request) (*api.Response, error) {
	doc := s.v21Doc(r)
	doc["links"] = []api.Link{
		{Rel: "self", Href: s.baseURL(r) + "/v2.1/"},
		{Rel: "describedby", Href: "http://docs.openstack.org/", Type: "text/html"},
	}
	doc["media-types"] = []api.MediaType{{Base: "application/json", Type: "application/vnd.openstack.compute+json;version=2.1"}}
	return api.JSON(http.StatusOK, map[string]any{"version": doc}), nil
}

// versionV20 answers GET /v2 with the legacy version's document.
func (s *Service) versionV20(r *http.Request) (*api.Response, error) {
	doc := s.v20Doc(r)
	doc["links"] = []api.Link{
		{Rel: "self", Href: s.baseURL(r) + "/v2/"},
		{Rel: "describedby", Href: "http://docs.openstack.org/", Type: "text/html"},
	}
	doc["media-types"] = []api.MediaType{{Base: "application/json", Type: "application/vnd.openstack.compute+json;version=2"}}
	return api.JSON(http.StatusOK, map[string]any{"version": doc}), nil
}
