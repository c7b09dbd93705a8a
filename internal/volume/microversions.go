package volume

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// reqVersion is the microversion a request negotiated; 3.0 for the few
// routes the middleware lets through unversioned (the version documents).
func reqVersion(r *http.Request) api.Version {
	if v, ok := r.Context().Value(versionKey).(api.Version); ok {
		return v
	}
	return MinVersion
}

// atLeast reports whether the request asked for 3.minor or later.
func atLeast(r *http.Request, minor int) bool { return reqVersion(r).AtLeast(3, minor) }

// requireVersion refuses a route added by 3.minor to older requests the
// way Cinder does (VersionNotFoundForAPIMethod, a 404), so a client that
// did not ask for the version sees the API as it was before it.
func requireVersion(r *http.Request, minor int) error {
	if atLeast(r, minor) {
		return nil
	}
	return api.NotFound("API version %s is not supported on this method.", reqVersion(r))
}

// versioned wraps a handler of a route added by 3.minor.
func versioned(minor int, h api.HandlerFunc) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		if err := requireVersion(r, minor); err != nil {
			return nil, err
		}
		return h(r)
	}
}

// history is Cinder's microversion history (rest_api_version_history)
// from 3.1 on, with how Nimbus honours each change. MaxVersion is the
// last version of the unbroken run of honoured ones: a client asking
// for 3.N gets every behaviour up to 3.N, or a 406. Code for versions
// past the gap is written against this table and goes live as soon as
// the gap closes.
var history = []struct {
	minor    int
	change   string
	honoured bool
}{
	{1, "upload-to-image takes visibility and protected (ignored before)", true},
	{2, "bootable list filter is a strict boolean; anything else is a 400", true},
	{3, "/messages: why an asynchronous request failed", true},
	{4, "glance_metadata list filter on volumes", true},
	{5, "/messages takes filters, sorting and pagination", true},
	{6, "empty names for consistency groups: Nimbus serves no consistency groups at any version", true},
	{7, "cluster in os-services, /clusters: no service is ever clustered", true},
	{8, "/manageable_volumes and /manageable_snapshots listings: the file backend lists none", true},
	{9, "PUT /backups/{id} renames a backup", true},
	{10, "group_id list filter on volumes", true},
	{11, "group types and group specs (group_types.go)", true},
	{12, "/volumes/summary (volume_summary.go)", true},
	{13, "generic volume groups: not built", false},
	{14, "group snapshots, groups from a source: not built", false},
	{15, "ETag and If-Match on volume metadata: not built", false},
	{16, "cluster on os-migrate_volume and manage: neither is served yet", false},
	{17, "cluster on the manageable listings (clusters.go)", true},
	{18, "os-backup-project-attr:project_id on backups: not built", false},
	{19, "reset_status of group snapshots: needs 3.14", false},
	{20, "reset_status of groups: needs 3.13", false},
	{21, "provider_id in admin volume details: not built", false},
	{22, "metadata filter on snapshot lists: not built", false},
	{23, "force on volume delete: not built", false},
	{24, "/workers/cleanup: not built", false},
	{25, "volumes in group views: needs 3.13", false},
	{26, "failover, freeze and thaw by cluster; replication fields on clusters: not built", false},
	{27, "the attachments API (attachments.go, attachment_list.go)", true},
	{28, "filters on get_pools: not built", false},
	{29, "filters, sorting and pagination of group snapshots: needs 3.14", false},
	{30, "snapshot lists sorted by name: not checked", false},
	{31, "configured resource filters, unknown filters refused: not built", false},
	{32, "set-log and get-log service actions: not built", false},
	{33, "/resource_filters: not built", false},
	{34, "like filters (key~) on lists: not built", false},
	{35, "volume_type filter on get_pools: not built", false},
	{36, "metadata in /volumes/summary (volume_summary.go)", true},
	{37, "backup lists sorted by name: not checked", false},
	{38, "replication of groups: needs 3.13", false},
	{39, "project_id filter on limits for admins: not built", false},
	{40, "revert to snapshot: needs an agent operation (agentproto)", false},
	{41, "user_id on snapshots: not built", false},
	{42, "extend of in-use volumes: the NBD export cannot grow (docs/volumes.md)", false},
	{43, "metadata on backups: not built", false},
	{44, "os-complete on attachments (attachments.go)", true},
}
