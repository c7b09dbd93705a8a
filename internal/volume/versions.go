package volume

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// versionDoc is the v3.0 entry of the version documents. Only v3 is
// served, so only v3 is listed (Tempest fetches every listed version).
func (s *Service) versionDoc(r *http.Request) api.VersionDoc {
	return api.VersionDoc{
		ID: "v3.0", Status: "CURRENT", Updated: "2023-01-01T00:00:00Z",
		Version: MaxVersion.String(), MinVersion: MinVersion.String(),
		Links: []api.Link{
			{Rel: "describedby", Type: "text/html", Href: "https://docs.openstack.org/"},
			{Rel: "self", Href: s.baseURL(r) + "/v3/"},
		},
		MediaTypes: []api.MediaType{{Base: "application/json", Type: "application/vnd.openstack.volume+json;version=3"}},
	}
}

// versions answers GET / with 300 Multiple Choices, as Cinder does.
func (s *Service) versions(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusMultipleChoices, map[string]any{"versions": []api.VersionDoc{s.versionDoc(r)}}), nil
}

func (s *Service) versionV3(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, map[string]any{"versions": []api.VersionDoc{s.versionDoc(r)}}), nil
}

// extensions are Cinder's legacy extension names; clients (Tempest)
// probe the list by name, Hosts among them.
var extensions = [][2]string{
	{"os-admin-actions", "AdminActions"}, {"os-availability-zone", "AvailabilityZones"},
	{"os-extended-services", "ExtendedServices"}, {"os-extended-snapshot-attributes", "ExtendedSnapshotAttributes"},
	{"os-hosts", "Hosts"}, {"os-quota-class-sets", "QuotaClasses"}, {"os-quota-sets", "Quotas"},
	{"OS-SCH-HNT", "SchedulerHints"}, {"os-services", "Services"}, {"os-snapshot-actions", "SnapshotActions"},
	{"os-types-extra-specs", "TypesExtraSpecs"}, {"os-types-manage", "TypesManage"}, {"os-used-limits", "UsedLimits"},
	{"os-volume-actions", "VolumeActions"}, {"os-vol-host-attr", "VolumeHostAttribute"},
	{"os-vol-image-meta", "VolumeImageMetadata"}, {"os-vol-mig-status-attr", "VolumeMigStatusAttribute"},
	{"os-vol-tenant-attr", "VolumeTenantAttribute"}, {"os-volume-type-access", "VolumeTypeAccess"},
}

func (s *Service) listExtensions(r *http.Request) (*api.Response, error) {
	out := make([]any, 0, len(extensions))
	for _, e := range extensions {
		out = append(out, map[string]any{"alias": e[0], "name": e[1], "description": e[1] + " support.",
			"links": []any{}, "updated": "2013-12-03T00:00:00+00:00"})
	}
	return api.JSON(http.StatusOK, map[string]any{"extensions": out}), nil
}
