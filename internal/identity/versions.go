package identity

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// APIVersion is the identity API version Nimbus implements (Keystone 22 speaks 3.14).
const APIVersion = "v3.14"

func (s *Service) versionDoc(r *http.Request) api.VersionDoc {
	return api.VersionDoc{
		ID: APIVersion, Status: "stable", Updated: "2020-04-07T00:00:00Z",
		Links:      []api.Link{{Rel: "self", Href: s.baseURL(r) + "/v3/"}},
		MediaTypes: []api.MediaType{{Base: "application/json", Type: "application/vnd.openstack.identity-v3+json"}},
	}
}

// versions answers GET / with 300 Multiple Choices, as Keystone does.
func (s *Service) versions(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusMultipleChoices, map[string]any{
		"versions": map[string]any{"values": []api.VersionDoc{s.versionDoc(r)}},
	}), nil
}

func (s *Service) version(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, map[string]any{"version": s.versionDoc(r)}).
		WithHeader("Content-Type", "application/json"), nil
}
