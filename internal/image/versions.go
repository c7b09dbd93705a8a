package image

import (
	"fmt"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// newestMinor is the newest Glance v2 minor version this service lists;
// v2.0 to v2.16 are listed newest first with v2.16 CURRENT, as Glance
// 2023.1 and later do. Clients pick the version, not features, from it.
const newestMinor = 16

func (s *Service) versionList(r *http.Request) []map[string]any {
	base := s.baseURL(r)
	var out []map[string]any
	for m := newestMinor; m >= 0; m-- {
		status := "SUPPORTED"
		if m == newestMinor {
			status = "CURRENT"
		}
		out = append(out, map[string]any{
			"id":     fmt.Sprintf("v2.%d", m),
			"status": status,
			"links":  []map[string]any{{"rel": "self", "href": base + "/v2/"}},
		})
	}
	return out
}

// versions answers 300 Multiple Choices, as Glance's version negotiation does.
func (s *Service) versions(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusMultipleChoices, map[string]any{"versions": s.versionList(r)}), nil
}

// versionsOK answers /versions with 200, as Glance does for that path.
func (s *Service) versionsOK(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, map[string]any{"versions": s.versionList(r)}), nil
}
