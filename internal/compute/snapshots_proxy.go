package compute

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Nova's snapshot proxy, /os-snapshots: volume snapshots in Nova's old
// camelCase shape, through the volume service with the caller's token,
// gone from microversion 2.36 like /os-volumes (volumes_proxy.go).

// snapshotProxyView is Nova's snapshot view, the same everywhere; size
// is the snapshot's volume size.
func snapshotProxyView(sn SnapshotInfo) map[string]any {
	return map[string]any{
		"id": sn.ID, "volumeId": sn.VolumeID, "status": sn.Status, "size": sn.Size, "createdAt": sn.CreatedAt,
		"displayName": nullable(sn.Name), "displayDescription": nullable(sn.Description),
	}
}

func (s *Service) listProxySnapshots(r *http.Request) (*api.Response, error) {
	return s.proxySnapshotList(r, "os_compute_api:os-volumes:snapshots:list")
}

func (s *Service) listProxySnapshotsDetail(r *http.Request) (*api.Response, error) {
	return s.proxySnapshotList(r, "os_compute_api:os-volumes:snapshots:detail")
}

// proxySnapshotList serves both lists: Nova shows the same view in each.
func (s *Service) proxySnapshotList(r *http.Request, action string) (*api.Response, error) {
	auth, err := s.volumeProxyAuth(r, action)
	if err != nil {
		return nil, err
	}
	snaps, err := s.cfg.Volumes.Snapshots(r.Context(), auth)
	if err != nil {
		return nil, proxyFault(err, "Snapshots could not be found.")
	}
	lo, hi, err := limited(r, len(snaps))
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, hi-lo)
	for _, sn := range snaps[lo:hi] {
		out = append(out, snapshotProxyView(sn))
	}
	return api.JSON(http.StatusOK, map[string]any{"snapshots": out}), nil
}

func (s *Service) showProxySnapshot(r *http.Request) (*api.Response, error) {
	auth, err := s.volumeProxyAuth(r, "os_compute_api:os-volumes:snapshots:show")
	if err != nil {
		return nil, err
	}
	id := r.PathValue("snapshot_id")
	sn, err := s.cfg.Volumes.Snapshot(r.Context(), auth, id)
	if err != nil {
		return nil, proxyFault(err, "Snapshot "+id+" could not be found.")
	}
	return api.JSON(http.StatusOK, map[string]any{"snapshot": snapshotProxyView(*sn)}), nil
}

func (s *Service) deleteProxySnapshot(r *http.Request) (*api.Response, error) {
	auth, err := s.volumeProxyAuth(r, "os_compute_api:os-volumes:snapshots:delete")
	if err != nil {
		return nil, err
	}
	id := r.PathValue("snapshot_id")
	if err := s.cfg.Volumes.DeleteSnapshot(r.Context(), auth, id); err != nil {
		return nil, proxyFault(err, "Snapshot "+id+" could not be found.")
	}
	return accepted(), nil
}

// schemaBool reads a value of Nova's parameter_types.boolean: a JSON
// boolean or one of the strings true/false, 1/0, on/off, yes/no.
func schemaBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch strings.ToLower(x) {
		case "true", "1", "on", "yes":
			return true, true
		case "false", "0", "off", "no":
			return false, true
		}
	}
	return false, false
}

func (s *Service) createProxySnapshot(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	var body struct {
		Snapshot *struct {
			VolumeID           *string         `json:"volume_id"`
			Force              json.RawMessage `json:"force"`
			DisplayName        *string         `json:"display_name"`
			DisplayDescription *string         `json:"display_description"`
		} `json:"snapshot"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Snapshot
	if in == nil {
		return nil, api.BadRequest("Invalid input for field/attribute snapshot. 'snapshot' is a required property")
	}
	if in.VolumeID == nil {
		return nil, api.BadRequest("Invalid input for field/attribute snapshot. 'volume_id' is a required property")
	}
	req := SnapshotCreate{VolumeID: *in.VolumeID, Name: derefOr(in.DisplayName), Description: derefOr(in.DisplayDescription)}
	if in.Force != nil {
		var raw any
		_ = json.Unmarshal(in.Force, &raw) // already valid JSON: DecodeJSON read it
		force, ok := schemaBool(raw)
		if !ok {
			return nil, api.BadRequest("Invalid input for field/attribute force. Value: %s. It is not a boolean.", in.Force)
		}
		req.Force = force
	}
	auth, err := s.volumeProxyAuth(r, "os_compute_api:os-volumes:snapshots:create")
	if err != nil {
		return nil, err
	}
	sn, err := s.cfg.Volumes.CreateSnapshot(r.Context(), auth, req)
	if err != nil {
		return nil, proxyFault(err, "Volume "+req.VolumeID+" could not be found.")
	}
	return api.JSON(http.StatusOK, map[string]any{"snapshot": snapshotProxyView(*sn)}), nil
}
