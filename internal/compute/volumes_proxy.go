package compute

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Nova's volume proxy, /os-volumes: the block storage service's volumes
// in Nova's old camelCase shape, read and changed through the volume
// service with the caller's token. Like the other proxies it is gone
// from microversion 2.36 (404); Tempest's compute volume tests and old
// clients use it at 2.1.

// proxyMaxLimit is Nova's osapi max_limit: the most rows a proxy list
// answers with.
const proxyMaxLimit = 1000

// volumeProxyAuth does what every proxy call does first: the 2.36 cut,
// the policy check against the caller's project, the volume service's
// presence. It returns the caller's credentials for the volume service;
// never the compute service user's, which would see more than the caller.
func (s *Service) volumeProxyAuth(r *http.Request, action string) (VolumeAuth, error) {
	if err := proxyGone(r); err != nil {
		return VolumeAuth{}, err
	}
	c := s.caller(r)
	if err := s.authorize(r, action, projectTarget(c.project, c.user)); err != nil {
		return VolumeAuth{}, err
	}
	if err := s.volumesConfigured(); err != nil {
		return VolumeAuth{}, err
	}
	if c.token == "" || c.project == "" {
		return VolumeAuth{}, api.Unauthorized("The request you have made requires a project-scoped token.")
	}
	return VolumeAuth{Token: c.token, Project: c.project}, nil
}

// limited is Nova's common.limited: the [lo, hi) window that offset and
// limit select from n rows. Both must be non-negative integers; a limit
// of 0 or over the maximum means the maximum.
func limited(r *http.Request, n int) (lo, hi int, err error) {
	q := r.URL.Query()
	param := func(name string) (int, error) {
		v := q.Get(name)
		if v == "" {
			return 0, nil
		}
		i, err := strconv.Atoi(v)
		if err != nil {
			return 0, api.BadRequest("%s param must be an integer", name)
		}
		if i < 0 {
			return 0, api.BadRequest("%s param must be positive", name)
		}
		return i, nil
	}
	offset, err := param("offset")
	if err != nil {
		return 0, 0, err
	}
	limit, err := param("limit")
	if err != nil {
		return 0, 0, err
	}
	if limit == 0 || limit > proxyMaxLimit {
		limit = proxyMaxLimit
	}
	lo = min(offset, n)
	return lo, min(n, lo+limit), nil
}

// proxyFault turns the volume service's answer into Nova's: a missing
// resource is a 404 with notFound, a refusal a 400 with the volume
// service's words, a quota refusal (Cinder's 413) a 403 as Nova's
// OverQuota, a policy refusal a 403, anything else a 500 with context.
func proxyFault(err error, notFound string) error {
	if errors.Is(err, ErrNotFound) {
		return api.NotFound("%s", notFound)
	}
	var ve *VolumeError
	if errors.As(err, &ve) {
		switch ve.Status {
		case http.StatusRequestEntityTooLarge, http.StatusForbidden, http.StatusUnauthorized:
			return api.Forbidden("%s", ve.Message)
		}
		if ve.Status >= 400 && ve.Status < 500 {
			return api.BadRequest("%s", ve.Message)
		}
	}
	return err
}

// nullable renders Cinder's empty strings as the nulls they were.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// volumeProxyView is Nova's volume view: the same for lists, details and
// single volumes. An unattached volume has attachments [{}], as Nova
// shows it (Tempest's schema allows for it).
func volumeProxyView(v VolumeInfo) map[string]any {
	atts := []map[string]any{}
	for _, a := range v.Attachments {
		att := map[string]any{"id": v.ID, "volumeId": v.ID, "serverId": a.ServerID}
		if a.Device != "" {
			att["device"] = a.Device
		}
		atts = append(atts, att)
	}
	if len(atts) == 0 {
		atts = append(atts, map[string]any{})
	}
	meta := map[string]string{}
	for k, val := range v.Metadata {
		meta[k] = val
	}
	return map[string]any{
		"id": v.ID, "status": v.Status, "size": v.Size, "availabilityZone": v.AvailabilityZone,
		"createdAt": v.CreatedAt, "attachments": atts, "displayName": nullable(v.Name),
		"displayDescription": nullable(v.Description), "volumeType": nullable(v.VolumeType),
		"snapshotId": nullable(v.SnapshotID), "metadata": meta,
	}
}

func (s *Service) listProxyVolumes(r *http.Request) (*api.Response, error) {
	return s.proxyVolumeList(r, "os_compute_api:os-volumes:list")
}

func (s *Service) listProxyVolumesDetail(r *http.Request) (*api.Response, error) {
	return s.proxyVolumeList(r, "os_compute_api:os-volumes:detail")
}

// proxyVolumeList serves both lists: Nova shows the same view in each.
func (s *Service) proxyVolumeList(r *http.Request, action string) (*api.Response, error) {
	auth, err := s.volumeProxyAuth(r, action)
	if err != nil {
		return nil, err
	}
	vols, err := s.cfg.Volumes.Volumes(r.Context(), auth)
	if err != nil {
		return nil, proxyFault(err, "Volumes could not be found.")
	}
	lo, hi, err := limited(r, len(vols))
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, hi-lo)
	for _, v := range vols[lo:hi] {
		out = append(out, volumeProxyView(v))
	}
	return api.JSON(http.StatusOK, map[string]any{"volumes": out}), nil
}

func (s *Service) showProxyVolume(r *http.Request) (*api.Response, error) {
	auth, err := s.volumeProxyAuth(r, "os_compute_api:os-volumes:show")
	if err != nil {
		return nil, err
	}
	id := r.PathValue("volume_id")
	v, err := s.cfg.Volumes.Volume(r.Context(), auth, id)
	if err != nil {
		return nil, proxyFault(err, "Volume "+id+" could not be found.")
	}
	return api.JSON(http.StatusOK, map[string]any{"volume": volumeProxyView(*v)}), nil
}

func (s *Service) deleteProxyVolume(r *http.Request) (*api.Response, error) {
	auth, err := s.volumeProxyAuth(r, "os_compute_api:os-volumes:delete")
	if err != nil {
		return nil, err
	}
	id := r.PathValue("volume_id")
	if err := s.cfg.Volumes.DeleteVolume(r.Context(), auth, id); err != nil {
		return nil, proxyFault(err, "Volume "+id+" could not be found.")
	}
	return accepted(), nil
}

// proxyVolumeSize reads os-volumes' size as Nova's schema takes it: an
// integer, or a string of digits; Cinder refuses anything under 1, so
// that is refused here before any call.
func proxyVolumeSize(v any) (int, error) {
	bad := func() error {
		return api.BadRequest("Invalid input for field/attribute size. Value: %v. The size must be an integer of at least 1 (GiB).", v)
	}
	var n int
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) {
			return 0, bad()
		}
		n = int(x)
	case string:
		if x == "" {
			return 0, bad()
		}
		for _, c := range x {
			if c < '0' || c > '9' {
				return 0, bad()
			}
		}
		var err error
		if n, err = strconv.Atoi(x); err != nil {
			return 0, bad()
		}
	default:
		return 0, bad()
	}
	if n < 1 {
		return 0, bad()
	}
	return n, nil
}

func (s *Service) createProxyVolume(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	var body struct {
		Volume *struct {
			Size               json.RawMessage   `json:"size"`
			DisplayName        *string           `json:"display_name"`
			DisplayDescription *string           `json:"display_description"`
			VolumeType         *string           `json:"volume_type"`
			SnapshotID         *string           `json:"snapshot_id"`
			AvailabilityZone   *string           `json:"availability_zone"`
			Metadata           map[string]string `json:"metadata"`
		} `json:"volume"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Volume
	if in == nil {
		return nil, api.BadRequest("Invalid input for field/attribute volume. 'volume' is a required property")
	}
	req := VolumeCreate{Name: derefOr(in.DisplayName), Description: derefOr(in.DisplayDescription), VolumeType: derefOr(in.VolumeType),
		SnapshotID: derefOr(in.SnapshotID), AvailabilityZone: derefOr(in.AvailabilityZone), Metadata: in.Metadata}
	if in.Size != nil {
		var size any
		if err := json.Unmarshal(in.Size, &size); err != nil {
			return nil, api.BadRequest("Invalid input for field/attribute size: %v", err)
		}
		n, err := proxyVolumeSize(size)
		if err != nil {
			return nil, err
		}
		req.Size = n
	} else if in.SnapshotID == nil {
		return nil, api.BadRequest("Invalid input for field/attribute volume. 'size' is required unless a snapshot_id is given")
	}
	auth, err := s.volumeProxyAuth(r, "os_compute_api:os-volumes:create")
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if in.SnapshotID != nil {
		snap, err := s.cfg.Volumes.Snapshot(ctx, auth, *in.SnapshotID)
		if err != nil {
			return nil, proxyFault(err, "Snapshot "+*in.SnapshotID+" could not be found.")
		}
		if req.Size == 0 {
			req.Size = snap.Size
		}
	}
	v, err := s.cfg.Volumes.CreateVolume(ctx, auth, req)
	if err != nil {
		return nil, proxyFault(err, "The volume's type or source could not be found.")
	}
	return api.JSON(http.StatusOK, map[string]any{"volume": volumeProxyView(*v)}).
		WithHeader("Location", s.baseURL(r)+"/v2.1/os-volumes/"+v.ID), nil
}
