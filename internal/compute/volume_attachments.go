package compute

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// os-volume_attachments: a server's volumes, and hot-plugging more, in
// Nova's legacy Cinder flow. The API reserves the volume and initialises
// its connection for the server's host with the caller's token, records
// the mapping with its device and answers; the agent plugs the disk, and
// its report decides whether the API completes the attachment (os-attach)
// or gives the volume back (volume_settle.go).

// volumeStates are the vm states volumes can be attached and detached in
// (Nova's list, less the shelved ones: a shelved server here has no host
// to connect a volume to).
var volumeStates = []string{vmActive, vmPaused, vmStopped, vmResized}

// volumesConfigured answers 501 when no volume service is wired in.
func (s *Service) volumesConfigured() error {
	if s.cfg.Volumes == nil {
		return api.Errorf(http.StatusNotImplemented, "The block storage service is not configured.")
	}
	return nil
}

func (s *Service) listVolumeAttachments(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:os-volumes-attachments:index")
	if err != nil {
		return nil, err
	}
	bdms, err := blockDevicesOf(r.Context(), s.db, i.ID)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	offset, limit := 0, len(bdms)
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, api.BadRequest("Invalid input for query parameters offset. Value: %s.", v)
		}
		offset = min(n, len(bdms))
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, api.BadRequest("Invalid input for query parameters limit. Value: %s.", v)
		}
		limit = n
	}
	out := []map[string]any{}
	for _, b := range bdms[offset:min(len(bdms), offset+limit)] {
		out = append(out, attachmentView(r, b))
	}
	return api.JSON(http.StatusOK, map[string]any{"volumeAttachments": out}), nil
}

// attachedVolume finds the mapping of the {volume_id} in the path.
func (s *Service) attachedVolume(ctx context.Context, q store.Querier, i instance, volumeID string) (blockDevice, error) {
	b, err := store.QueryOne(ctx, q, scanBlockDevice, `SELECT `+blockDeviceCols+` FROM compute_block_devices WHERE instance_id = ? AND volume_id = ?`, i.ID, volumeID)
	if isNoRows(err) {
		return b, api.NotFound("Volume %s is not attached to server %s.", volumeID, i.ID)
	}
	if err != nil {
		return b, fmt.Errorf("volume %s of server %s: %w", volumeID, i.ID, err)
	}
	return b, nil
}

func (s *Service) showVolumeAttachment(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:os-volumes-attachments:show")
	if err != nil {
		return nil, err
	}
	b, err := s.attachedVolume(r.Context(), s.db, i, r.PathValue("volume_id"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"volumeAttachment": attachmentView(r, b)}), nil
}

// volumeFault turns the volume service's answer into the API's: a
// refusal is the user's 400 with the volume service's words, a missing
// volume notFound, anything else a 500 with context.
func volumeFault(err error, volumeID string, notFound func(string) error) error {
	if errors.Is(err, ErrNotFound) {
		return notFound(volumeID)
	}
	if ve, ok := volumeRefusal(err); ok {
		return api.BadRequest("%s", ve.Message)
	}
	return err
}

func volumeNotFound404(id string) error { return api.NotFound("Volume %s could not be found.", id) }
func volumeNotFound400(id string) error { return api.BadRequest("Volume %s could not be found.", id) }

func (s *Service) attachVolume(r *http.Request) (*api.Response, error) {
	var body struct {
		Attachment *struct {
			VolumeID            *string `json:"volumeId"`
			Device              *string `json:"device"`
			Tag                 *string `json:"tag"`
			DeleteOnTermination *bool   `json:"delete_on_termination"`
		} `json:"volumeAttachment"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Attachment
	if in == nil {
		return nil, api.BadRequest("Invalid input for field/attribute volumeAttachment. 'volumeAttachment' is a required property")
	}
	if in.VolumeID == nil {
		return nil, api.BadRequest("Invalid input for field/attribute volumeAttachment. 'volumeId' is a required property")
	}
	volID := *in.VolumeID
	if !isUUID(volID) {
		return nil, api.BadRequest("Invalid input for field/attribute volumeId. Value: %s. '%s' is not a 'uuid'", volID, volID)
	}
	if in.Tag != nil && !at(r, 49) {
		return nil, api.BadRequest("Invalid input for field/attribute volumeAttachment. Additional properties are not allowed ('tag' was unexpected)")
	}
	if in.Tag != nil && (len(*in.Tag) > 60 || !tagPattern.MatchString(*in.Tag)) {
		return nil, api.BadRequest("Invalid input for field/attribute tag. Value: %s.", *in.Tag)
	}
	if in.DeleteOnTermination != nil && !at(r, 79) {
		return nil, api.BadRequest("Invalid input for field/attribute volumeAttachment. Additional properties are not allowed ('delete_on_termination' was unexpected)")
	}
	if in.Device != nil && *in.Device != "" && !devicePattern.MatchString(*in.Device) {
		return nil, api.BadRequest("The supplied device path (%s) is invalid.", *in.Device)
	}
	i, err := s.serverFor(r, "os_compute_api:os-volumes-attachments:create")
	if err != nil {
		return nil, err
	}
	if err := s.volumesConfigured(); err != nil {
		return nil, err
	}
	c := s.caller(r)
	if i.Locked && !c.admin {
		return nil, api.Conflict("Instance %s is locked", i.ID)
	}
	a := stateAction{name: "attach_volume", op: OpAttachVolume, vmStates: volumeStates}
	if err := a.allows(i); err != nil {
		return nil, err
	}
	if i.host() == "" {
		return nil, api.Conflict("Instance %s is not ready", i.ID)
	}
	ctx := r.Context()
	if _, err := s.attachedVolume(ctx, s.db, i, volID); err == nil {
		return nil, api.BadRequest("Invalid volume: volume %s is already attached to server %s.", volID, i.ID)
	}
	auth := VolumeAuth{Token: c.token, Project: c.project}
	vol, err := s.cfg.Volumes.Volume(ctx, auth, volID)
	if err != nil {
		return nil, volumeFault(err, volID, volumeNotFound404)
	}
	if vol.Status != "available" {
		return nil, api.BadRequest("Invalid volume: volume %s status must be available, but it is %s.", volID, vol.Status)
	}
	if err := s.cfg.Volumes.Reserve(ctx, auth, volID); err != nil {
		return nil, volumeFault(err, volID, volumeNotFound404)
	}
	host := i.host()
	conn, err := s.cfg.Volumes.InitializeConnection(ctx, auth, volID, host)
	if err != nil {
		s.volumeUndo(ctx, "unreserve", volID, func(ctx context.Context) error { return s.cfg.Volumes.Unreserve(ctx, auth, volID) })
		return nil, volumeFault(err, volID, volumeNotFound404)
	}
	bus := diskBusOf(fromJSON[map[string]string](i.ImageProps))
	ts := store.FormatTime(now())
	b := blockDevice{ID: newID(), InstanceID: i.ID, VolumeID: volID, ProjectID: c.project, BootIndex: -1, SourceType: "volume",
		DeleteOnTermination: in.DeleteOnTermination != nil && *in.DeleteOnTermination, Tag: in.Tag, DiskBus: bus,
		Status: bdmAttaching, Host: host, ConnectionInfo: ptr(jsonText(conn)), CreatedAt: ts, UpdatedAt: ts}
	err = s.act(r, i, a, func(tx *store.Tx, cur *instance, cmd *Command) error {
		if cur.host() != host {
			return api.Conflict("Instance %s moved to another host; try again.", cur.ID)
		}
		bdms, err := blockDevicesOf(ctx, tx, cur.ID)
		if err != nil {
			return err
		}
		used := usedDevices(*cur, bdms, busPrefix(bus))
		b.Device = ""
		if in.Device != nil && *in.Device != "" && !used[*in.Device] && busPrefix(bus) == devicePattern.FindStringSubmatch(*in.Device)[1] {
			b.Device = *in.Device // a free device of the right bus is honoured
		}
		if b.Device == "" {
			if b.Device, err = nextDevice(used, busPrefix(bus)); err != nil {
				return err
			}
		}
		b.CommandID = cmd.ID
		if err := insertBlockDevice(ctx, tx, b); err != nil {
			return err
		}
		spec := b.spec()
		cmd.Volume = &spec
		cmd.Instance.Volumes = append(cmd.Instance.Volumes, spec)
		return nil
	})
	if err != nil {
		// Nothing was sent: the volume goes back as it came.
		if _, derr := s.db.Exec(context.WithoutCancel(ctx), `DELETE FROM compute_block_devices WHERE id = ?`, b.ID); derr != nil {
			s.log.Error("drop mapping of a failed attach", "volume", volID, "err", derr)
		}
		s.volumeUndo(ctx, "terminate_connection", volID, func(ctx context.Context) error {
			return s.cfg.Volumes.TerminateConnection(ctx, auth, volID, host)
		})
		s.volumeUndo(ctx, "unreserve", volID, func(ctx context.Context) error { return s.cfg.Volumes.Unreserve(ctx, auth, volID) })
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"volumeAttachment": attachmentView(r, b)}), nil
}

// volumeUndo runs one step that gives a volume back after a failed
// request, even when the request's context has ended; a failure is
// logged, as the request's own error is what the caller needs.
func (s *Service) volumeUndo(ctx context.Context, step, volumeID string, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := f(ctx); err != nil {
		s.log.Error("give back volume after a failed request", "step", step, "volume", volumeID, "request_id", api.RequestID(ctx), "err", err)
	}
}

func (s *Service) detachVolume(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:os-volumes-attachments:delete")
	if err != nil {
		return nil, err
	}
	if err := s.volumesConfigured(); err != nil {
		return nil, err
	}
	c := s.caller(r)
	if i.Locked && !c.admin {
		return nil, api.Conflict("Instance %s is locked", i.ID)
	}
	ctx := r.Context()
	volID := r.PathValue("volume_id")
	b, err := s.attachedVolume(ctx, s.db, i, volID)
	if err != nil {
		return nil, err
	}
	if b.isRoot() {
		return nil, api.BadRequest("Cannot detach a root device volume")
	}
	a := stateAction{name: "detach_volume", op: OpDetachVolume, vmStates: volumeStates}
	if err := a.allows(i); err != nil {
		return nil, err
	}
	if b.Status != bdmAttached || b.Settle != settleNone {
		return nil, api.BadRequest("Invalid volume: Unable to detach volume %s: it is %s.", volID, b.Status)
	}
	auth := VolumeAuth{Token: c.token, Project: b.ProjectID}
	if err := s.cfg.Volumes.BeginDetaching(ctx, auth, volID); err != nil {
		return nil, volumeFault(err, volID, volumeNotFound404)
	}
	err = s.act(r, i, a, func(tx *store.Tx, cur *instance, cmd *Command) error {
		res, err := tx.Exec(ctx, `UPDATE compute_block_devices SET status = ?, command_id = ?, updated_at = ? WHERE id = ? AND status = ? AND settle = ''`,
			bdmDetaching, cmd.ID, store.FormatTime(now()), b.ID, bdmAttached)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return api.BadRequest("Invalid volume: Unable to detach volume %s: it is not attached.", volID)
		}
		spec := b.spec()
		cmd.Volume = &spec
		return nil
	})
	if err != nil {
		_, _ = s.db.Exec(context.WithoutCancel(ctx), `UPDATE compute_block_devices SET status = ? WHERE id = ? AND status = ?`, bdmAttached, b.ID, bdmDetaching)
		s.volumeUndo(ctx, "roll_detaching", volID, func(ctx context.Context) error { return s.cfg.Volumes.RollDetaching(ctx, auth, volID) })
		return nil, err
	}
	return accepted(), nil
}

// swapVolume serves PUT /servers/{id}/os-volume_attachments/{volume_id}
// (admin). The checks are Nova's; swapping itself is not offered (the
// equivalent of a virt driver without swap_volume).
func (s *Service) swapVolume(r *http.Request) (*api.Response, error) {
	var body struct {
		Attachment *struct {
			VolumeID            *string `json:"volumeId"`
			Device              *string `json:"device"`
			Tag                 *string `json:"tag"`
			ID                  *string `json:"id"`
			ServerID            *string `json:"serverId"`
			DeleteOnTermination *bool   `json:"delete_on_termination"`
		} `json:"volumeAttachment"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Attachment
	if in == nil || in.VolumeID == nil {
		return nil, api.BadRequest("Invalid input for field/attribute volumeAttachment. 'volumeId' is a required property")
	}
	if !isUUID(*in.VolumeID) {
		return nil, api.BadRequest("Invalid input for field/attribute volumeId. Value: %s. '%s' is not a 'uuid'", *in.VolumeID, *in.VolumeID)
	}
	i, err := s.serverFor(r, "os_compute_api:os-volumes-attachments:swap")
	if err != nil {
		return nil, err
	}
	if err := s.volumesConfigured(); err != nil {
		return nil, err
	}
	old, err := s.attachedVolume(r.Context(), s.db, i, r.PathValue("volume_id"))
	if err != nil {
		return nil, err
	}
	if *in.VolumeID == old.VolumeID {
		return nil, api.BadRequest("The new volume %s is the attached one.", old.VolumeID)
	}
	c := s.caller(r)
	if _, err := s.cfg.Volumes.Volume(r.Context(), VolumeAuth{Token: c.token, Project: old.ProjectID}, *in.VolumeID); err != nil {
		return nil, volumeFault(err, *in.VolumeID, volumeNotFound400)
	}
	return nil, api.Errorf(http.StatusNotImplemented, "Swapping the volumes of a server is not supported by this cloud.")
}
