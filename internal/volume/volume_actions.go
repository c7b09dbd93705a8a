package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// volumeAction serves POST /volumes/{id}/action: the body names exactly
// one action. The volume is looked up first, so an unknown id is a 404
// whatever the action.
func (s *Service) volumeAction(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	id := r.PathValue("volume_id")
	if _, err := loadVolume(r.Context(), s.db, c, id); err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if len(body) != 1 {
		return nil, api.BadRequest("There is either no action or more than one action in the request body.")
	}
	for name, raw := range body {
		if len(raw) == 0 || string(raw) == "null" {
			raw = json.RawMessage(`{}`)
		}
		h, ok := s.actions()[name]
		if !ok {
			return nil, api.BadRequest("Invalid action %s.", name)
		}
		if h.admin && !c.admin {
			return nil, api.Forbidden("Policy doesn't allow volume_extension:volume_admin_actions:%s to be performed.", strings.TrimPrefix(name, "os-"))
		}
		return h.fn(r, c, id, raw)
	}
	return nil, nil
}

type actionFunc func(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error)

type actionHandler struct {
	fn    actionFunc
	admin bool
}

func (s *Service) actions() map[string]actionHandler {
	return map[string]actionHandler{
		"os-reserve":               {fn: s.reserve},
		"os-unreserve":             {fn: s.unreserve},
		"os-begin_detaching":       {fn: s.beginDetaching},
		"os-roll_detaching":        {fn: s.rollDetaching},
		"os-initialize_connection": {fn: s.initializeConnection},
		"os-terminate_connection":  {fn: s.terminateConnection},
		"os-attach":                {fn: s.attach},
		"os-detach":                {fn: s.detach},
		"os-extend":                {fn: s.extend},
		"os-set_bootable":          {fn: s.setBootable},
		"os-update_readonly_flag":  {fn: s.updateReadonly},
		"os-volume_upload_image":   {fn: s.uploadImage},
		"os-retype":                {fn: s.retype},
		"os-set_image_metadata":    {fn: s.setImageMetadata},
		"os-unset_image_metadata":  {fn: s.unsetImageMetadata},
		"os-show_image_metadata":   {fn: s.showImageMetadata},
		"os-reset_status":          {fn: s.resetStatus, admin: true},
		"os-force_delete":          {fn: s.forceDelete, admin: true},
		"os-force_detach":          {fn: s.forceDetach, admin: true},
	}
}

// decodeAction decodes an action's argument strictly.
func decodeAction(raw json.RawMessage, v any) error { return api.DecodeBytes(raw, v, true) }

// transition is the common shape of the state-only actions: authorize,
// then one compare-and-set; losing is a 400 with Cinder's words.
func (s *Service) transition(r *http.Request, c caller, id, action, to string, from []string, refusal func(status string) error) (*api.Response, error) {
	ctx := r.Context()
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		v, err := s.loadAuthorized(ctx, tx, r, c, id, "volume_extension:volume_actions:"+action)
		if err != nil {
			return err
		}
		won, err := casStatus(ctx, tx, id, to, from...)
		if err != nil {
			return err
		}
		if !won && refusal != nil {
			return refusal(v.Status)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

func (s *Service) reserve(r *http.Request, c caller, id string, _ json.RawMessage) (*api.Response, error) {
	return s.transition(r, c, id, "reserve", statusAttaching, []string{statusAvailable}, func(status string) error {
		return api.BadRequest("Invalid volume: Volume status must be available to reserve, but the status is %s.", status)
	})
}

// unreserve undoes os-reserve; on a volume that is not attaching it does
// nothing, as Cinder's.
func (s *Service) unreserve(r *http.Request, c caller, id string, _ json.RawMessage) (*api.Response, error) {
	return s.transition(r, c, id, "unreserve", statusAvailable, []string{statusAttaching}, nil)
}

func (s *Service) beginDetaching(r *http.Request, c caller, id string, _ json.RawMessage) (*api.Response, error) {
	return s.transition(r, c, id, "begin_detaching", statusDetaching, []string{statusInUse}, func(string) error {
		return api.BadRequest("Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.")
	})
}

func (s *Service) rollDetaching(r *http.Request, c caller, id string, _ json.RawMessage) (*api.Response, error) {
	return s.transition(r, c, id, "roll_detaching", statusInUse, []string{statusDetaching}, nil)
}

type connectorArg struct {
	Connector map[string]any `json:"connector"`
}

// connectorHost is connector["host"], the compute host that connects.
func connectorHost(raw json.RawMessage) (string, error) {
	var a connectorArg
	if err := api.DecodeBytes(raw, &a, false); err != nil {
		return "", err
	}
	if a.Connector == nil {
		return "", api.BadRequest("Must specify 'connector'.")
	}
	host, _ := a.Connector["host"].(string)
	if host == "" {
		return "", api.BadRequest("Invalid input received: connector must name its 'host'.")
	}
	return host, nil
}

// connCall asks the volume's storage host to export (or unexport) it.
func (s *Service) connCall(ctx context.Context, v *volume, req agentproto.ConnRequest) (agentproto.ConnReply, error) {
	if s.cfg.Bus == nil {
		return agentproto.ConnReply{}, fmt.Errorf("no message bus")
	}
	if v.Host == "" {
		return agentproto.ConnReply{}, api.BadRequest("Invalid volume: volume %s has no storage host.", v.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	rep, err := bus.Call[agentproto.ConnRequest, agentproto.ConnReply](ctx, s.cfg.Bus, agentproto.ConnSubject(v.Host), req)
	if err != nil {
		return rep, fmt.Errorf("%s volume %s on %s: %w", req.Op, v.ID, v.Host, err)
	}
	return rep, nil
}

// initializeConnection answers the connection_info Nova's libvirt-less
// driver needs: driver_volume_type "nbd" and the VolumeConn of the
// export, every field under its JSON name, plus access_mode. Exporting
// is idempotent on the agent, so a retry gets the same export.
func (s *Service) initializeConnection(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	host, err := connectorHost(raw)
	if err != nil {
		return nil, err
	}
	v, err := loadVolume(ctx, s.db, c, id)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "volume_extension:volume_actions:initialize_connection", v.ProjectID); err != nil {
		return nil, err
	}
	switch v.Status {
	case statusCreating, statusDeleting, statusError, "error_deleting", statusExtending, statusUploading:
		return nil, api.BadRequest("Invalid volume: Volume %s is %s and cannot be connected.", v.ID, v.Status)
	}
	info, err := s.export(ctx, v, host, v.readOnly())
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"connection_info": info}), nil
}

// export has the volume's storage host export it to a compute host and
// renders the connection_info: driver_volume_type "nbd" and the
// VolumeConn of the export, every field under its JSON name, plus
// access_mode. os-initialize_connection and the attachments API (3.27)
// both answer it.
func (s *Service) export(ctx context.Context, v *volume, host string, readOnly bool) (map[string]any, error) {
	rep, err := s.connCall(ctx, v, agentproto.ConnRequest{Op: agentproto.OpExport, VolumeID: v.ID, Initiator: host, ReadOnly: readOnly})
	if err != nil {
		return nil, err
	}
	if rep.Conn == nil {
		return nil, fmt.Errorf("export volume %s: the storage host answered no connection", v.ID)
	}
	conn := rep.Conn
	mode := "rw"
	if conn.ReadOnly {
		mode = "ro"
	}
	data := map[string]any{
		"volume_id": conn.VolumeID, "host": conn.Host, "port": conn.Port, "export": conn.Export,
		"tls_psk_identity": conn.PSKIdentity, "tls_psk_key": conn.PSKKey, "read_only": conn.ReadOnly,
		"discard": conn.Discard, "access_mode": mode,
	}
	return map[string]any{"driver_volume_type": "nbd", "data": data}, nil
}

func (s *Service) terminateConnection(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	host, err := connectorHost(raw)
	if err != nil {
		return nil, err
	}
	v, err := loadVolume(ctx, s.db, c, id)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "volume_extension:volume_actions:terminate_connection", v.ProjectID); err != nil {
		return nil, err
	}
	if _, err := s.connCall(ctx, v, agentproto.ConnRequest{Op: agentproto.OpUnexport, VolumeID: v.ID, Initiator: host}); err != nil {
		return nil, err
	}
	return accepted(), nil
}

// attach records an attachment (bookkeeping only: the caller has plugged
// the disk). The volume goes from available or attaching (reserved) to
// in-use; a multiattach volume may also be in-use already.
func (s *Service) attach(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	var a struct {
		InstanceUUID *string `json:"instance_uuid"`
		HostName     *string `json:"host_name"`
		Mountpoint   string  `json:"mountpoint"`
		Mode         string  `json:"mode"`
	}
	if err := decodeAction(raw, &a); err != nil {
		return nil, err
	}
	if a.Mountpoint == "" {
		return nil, api.BadRequest("Must specify 'mountpoint'.")
	}
	if a.InstanceUUID == nil && a.HostName == nil {
		return nil, api.BadRequest("Invalid request to attach volume to an invalid target: give instance_uuid or host_name.")
	}
	if a.InstanceUUID != nil && !isUUID(*a.InstanceUUID) {
		return nil, api.BadRequest("Invalid request to attach volume to an instance %s.", *a.InstanceUUID)
	}
	switch a.Mode {
	case "":
		a.Mode = "rw"
	case "rw", "ro":
	default:
		return nil, api.BadRequest("Invalid attaching mode '%s' for volume %s.", a.Mode, id)
	}
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		v, err := s.loadAuthorized(ctx, tx, r, c, id, "volume_extension:volume_actions:attach")
		if err != nil {
			return err
		}
		if v.readOnly() && a.Mode == "rw" {
			return api.BadRequest("Invalid volume: Volume %s is read-only; attach it with mode 'ro'.", v.ID)
		}
		from := []string{statusAvailable, statusAttaching}
		if v.Multiattach {
			from = append(from, statusInUse)
		}
		won, err := casStatus(ctx, tx, id, statusInUse, from...)
		if err != nil {
			return err
		}
		if !won {
			return api.BadRequest("Invalid volume: Volume status must be available or attaching to attach, but the status is %s.", v.Status)
		}
		t := stamp()
		_, err = tx.Exec(ctx, `INSERT INTO volume_attachments (id, volume_id, instance_uuid, host_name, mountpoint, attach_mode, attach_status, attached_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 'attached', ?, ?)`, newID(), id, a.InstanceUUID, a.HostName, a.Mountpoint, a.Mode, t, t)
		if err != nil {
			return fmt.Errorf("insert attachment: %w", err)
		}
		v.AdminMetadata["attached_mode"] = a.Mode
		_, err = tx.Exec(ctx, `UPDATE volume_volumes SET admin_metadata = ? WHERE id = ?`, jsonText(v.AdminMetadata), id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

// removeAttachment deletes one attachment (or the only one when
// attachmentID is empty) and makes the volume available once none is
// left.
func (s *Service) removeAttachment(ctx context.Context, tx *store.Tx, v *volume, attachmentID string) error {
	if len(v.Attachments) == 0 {
		return api.BadRequest("Invalid volume: Volume must be attached in order to detach.")
	}
	target := ""
	switch {
	case attachmentID != "":
		for _, a := range v.Attachments {
			if a.ID == attachmentID {
				target = a.ID
			}
		}
		if target == "" {
			return api.NotFound("Volume attachment %s could not be found.", attachmentID)
		}
	case len(v.Attachments) == 1:
		target = v.Attachments[0].ID
	default:
		return api.BadRequest("Invalid volume: Volume %s is attached more than once; give attachment_id.", v.ID)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM volume_attachments WHERE id = ?`, target); err != nil {
		return fmt.Errorf("delete attachment %s: %w", target, err)
	}
	if len(v.Attachments) > 1 {
		return nil
	}
	delete(v.AdminMetadata, "attached_mode")
	res, err := tx.Exec(ctx, `UPDATE volume_volumes SET status = ?, admin_metadata = ?, updated_at = ? WHERE id = ? AND status = ?`,
		statusAvailable, jsonText(v.AdminMetadata), stamp(), v.ID, v.Status)
	if err != nil {
		return fmt.Errorf("detach volume %s: %w", v.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return store.ErrRetry // the status changed under us: read it again
	}
	return nil
}

func (s *Service) detach(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	var a struct {
		AttachmentID string `json:"attachment_id"`
	}
	if err := decodeAction(raw, &a); err != nil {
		return nil, err
	}
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		v, err := s.loadAuthorized(ctx, tx, r, c, id, "volume_extension:volume_actions:detach")
		if err != nil {
			return err
		}
		if v.Status == statusAvailable && a.AttachmentID == "" {
			// Nothing is attached: Cinder's volume manager logs that the
			// volume is not attached and answers as done, so a caller
			// cleaning up after a force detach is not refused.
			return nil
		}
		if v.Status != statusInUse && v.Status != statusDetaching && v.Status != "error_detaching" {
			return api.BadRequest("Invalid volume: Volume must be in-use or detaching to detach, but the status is %s.", v.Status)
		}
		return s.removeAttachment(ctx, tx, v, a.AttachmentID)
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

func (s *Service) forceDetach(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	var a struct {
		AttachmentID string         `json:"attachment_id"`
		Connector    map[string]any `json:"connector"`
	}
	if err := api.DecodeBytes(raw, &a, false); err != nil {
		return nil, err
	}
	var v *volume
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if v, err = loadVolume(ctx, tx, c, id); err != nil {
			return err
		}
		return s.removeAttachment(ctx, tx, v, a.AttachmentID)
	})
	if err != nil {
		return nil, err
	}
	if host, _ := a.Connector["host"].(string); host != "" {
		if _, err := s.connCall(ctx, v, agentproto.ConnRequest{Op: agentproto.OpUnexport, VolumeID: v.ID, Initiator: host}); err != nil {
			s.log.Warn("force detach: unexport", "volume", v.ID, "err", err)
		}
	}
	return accepted(), nil
}

// parseNewSize reads os-extend's new_size: an integer or a string of one.
func parseNewSize(raw json.RawMessage) (int, error) {
	var a struct {
		NewSize json.RawMessage `json:"new_size"`
	}
	if err := decodeAction(raw, &a); err != nil {
		return 0, err
	}
	n, ok, err := parseSize(a.NewSize)
	if err != nil || !ok {
		return 0, api.BadRequest("Invalid input received: new_size must be an integer greater than 0.")
	}
	return n, nil
}

func (s *Service) extend(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	size, err := parseNewSize(raw)
	if err != nil {
		return nil, err
	}
	var v *volume
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		if v, err = loadVolume(ctx, tx, c, id); err != nil {
			return err
		}
		if err := s.authorize(r, "volume:extend", v.ProjectID); err != nil {
			return err
		}
		if v.Status != statusAvailable {
			return api.BadRequest("Invalid volume: Volume %s status must be 'available' to extend, currently %s.", v.ID, v.Status)
		}
		if size <= v.Size {
			return api.BadRequest("Invalid input received: New size for extend must be greater than current size. (current: %d, extended: %d).", v.Size, size)
		}
		if err := s.checkQuota(ctx, tx, v.ProjectID, 0, 0, size-v.Size, size); err != nil {
			return err
		}
		won, err := casStatus(ctx, tx, id, statusExtending, statusAvailable)
		if err == nil && !won {
			return store.ErrRetry
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.send(ctx, v.Host, agentproto.Command{ID: newID(), Op: agentproto.OpExtend, VolumeID: v.ID, SizeGB: size, ReturnStatus: statusAvailable}); err != nil {
		_, _ = casStatus(ctx, s.db, id, statusAvailable, statusExtending)
		return nil, fmt.Errorf("extend volume %s: %w", id, err)
	}
	return accepted(), nil
}

// boolArg reads a boolean given as JSON or as a string Cinder's
// bool_from_string(strict=True) accepts.
func boolArg(raw json.RawMessage, field string) (bool, error) {
	var a map[string]any
	if err := api.DecodeBytes(raw, &a, false); err != nil {
		return false, err
	}
	v, ok := a[field]
	if !ok {
		return false, api.BadRequest("Must specify '%s'.", field)
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "1", "t", "on", "y", "yes":
			return true, nil
		case "false", "0", "f", "off", "n", "no":
			return false, nil
		}
	}
	return false, api.BadRequest("Invalid input received: %s must be a boolean.", field)
}

// loadAuthorized loads volume id in tx for c and checks that c may apply
// rule to it, the start of every volume action's transaction.
func (s *Service) loadAuthorized(ctx context.Context, tx *store.Tx, r *http.Request, c caller, id, rule string) (*volume, error) {
	v, err := loadVolume(ctx, tx, c, id)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, rule, v.ProjectID); err != nil {
		return nil, err
	}
	return v, nil
}

func (s *Service) setBootable(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	flag, err := boolArg(raw, "bootable")
	if err != nil {
		return nil, err
	}
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		if _, err := s.loadAuthorized(ctx, tx, r, c, id, "volume_extension:volume_actions:set_bootable"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE volume_volumes SET bootable = ?, updated_at = ? WHERE id = ?`, boolInt(flag), stamp(), id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &api.Response{Status: http.StatusOK}, nil
}

func (s *Service) updateReadonly(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	flag, err := boolArg(raw, "readonly")
	if err != nil {
		return nil, err
	}
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		v, err := s.loadAuthorized(ctx, tx, r, c, id, "volume_extension:volume_actions:update_readonly_flag")
		if err != nil {
			return err
		}
		if v.Status != statusAvailable {
			return api.BadRequest("Invalid volume: Volume %s status must be available to update its read-only flag, but the status is %s.", v.ID, v.Status)
		}
		v.AdminMetadata["readonly"] = "False"
		if flag {
			v.AdminMetadata["readonly"] = "True"
		}
		_, err = tx.Exec(ctx, `UPDATE volume_volumes SET admin_metadata = ?, updated_at = ? WHERE id = ?`, jsonText(v.AdminMetadata), stamp(), id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

// uploadImage creates an image in the image service with the caller's
// token and has the storage host upload the volume's bytes into it. The
// volume is uploading meanwhile, then back to its status.
func (s *Service) uploadImage(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	var a struct {
		ImageName       string `json:"image_name"`
		DiskFormat      string `json:"disk_format"`
		ContainerFormat string `json:"container_format"`
		Force           any    `json:"force"`
		Visibility      string `json:"visibility"`
		Protected       any    `json:"protected"`
	}
	if err := api.DecodeBytes(raw, &a, false); err != nil {
		return nil, err
	}
	if a.ImageName == "" {
		return nil, api.BadRequest("No image_name was specified in request.")
	}
	if !atLeast(r, 1) {
		// visibility and protected came with 3.1; before, Cinder
		// ignores them and the image gets Glance's defaults.
		a.Visibility, a.Protected = "", nil
	}
	if a.DiskFormat == "" {
		a.DiskFormat = "raw"
	}
	if a.DiskFormat != "raw" && a.DiskFormat != "qcow2" {
		return nil, api.BadRequest("Invalid disk-format '%s' is specified. Allowed disk-formats are raw, qcow2.", a.DiskFormat)
	}
	if a.ContainerFormat == "" {
		a.ContainerFormat = "bare"
	}
	if a.ContainerFormat != "bare" {
		return nil, api.BadRequest("Invalid container-format '%s' is specified. Allowed container-formats are bare.", a.ContainerFormat)
	}
	switch a.Visibility {
	case "", "public", "private", "shared", "community":
	default:
		return nil, api.BadRequest("Invalid visibility '%s'.", a.Visibility)
	}
	protected := false
	if a.Protected != nil {
		b, _ := json.Marshal(map[string]any{"protected": a.Protected})
		var err error
		if protected, err = boolArg(b, "protected"); err != nil {
			return nil, err
		}
	}
	if s.cfg.Images == nil {
		return nil, api.BadRequest("This cloud has no image service to upload volumes to.")
	}
	var v *volume
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if v, err = loadVolume(ctx, tx, c, id); err != nil {
			return err
		}
		if err := s.authorize(r, "volume_extension:volume_actions:upload_image", v.ProjectID); err != nil {
			return err
		}
		won, err := casStatus(ctx, tx, id, statusUploading, statusAvailable)
		if err != nil {
			return err
		}
		if !won {
			return api.BadRequest("Invalid volume: Volume %s status must be available, but the status is %s.", v.ID, v.Status)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	imageID, err := s.cfg.Images.CreateImage(ctx, c.token, NewImage{Name: a.ImageName, DiskFormat: a.DiskFormat,
		ContainerFormat: a.ContainerFormat, Visibility: a.Visibility, Protected: protected})
	if err == nil {
		err = s.send(ctx, v.Host, agentproto.Command{ID: newID(), Op: agentproto.OpUpload, VolumeID: v.ID,
			Upload: &agentproto.Upload{ImageID: imageID, DiskFormat: a.DiskFormat}, ReturnStatus: statusAvailable})
	}
	if err != nil {
		if _, cerr := casStatus(ctx, s.db, id, statusAvailable, statusUploading); cerr != nil {
			s.log.Error("upload: restore volume status", "volume", id, "err", cerr)
		}
		return nil, err
	}
	vt, _ := s.findType(ctx, s.db, caller{admin: true}, v.TypeID)
	var typeView any
	if vt != nil {
		typeView = vt.view(typeFull)
	}
	return api.JSON(http.StatusAccepted, map[string]any{"os-volume_upload_image": map[string]any{
		"id": v.ID, "updated_at": isoMicro(now()), "status": statusUploading, "display_description": v.Description,
		"size": v.Size, "volume_type": typeView, "image_id": imageID, "container_format": a.ContainerFormat,
		"disk_format": a.DiskFormat, "image_name": a.ImageName,
	}}), nil
}

// retype changes the volume type. With one backend per host there is
// nothing to migrate, so any type can be taken while available or in-use.
func (s *Service) retype(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	var a struct {
		NewType         string `json:"new_type"`
		MigrationPolicy string `json:"migration_policy"`
	}
	if err := decodeAction(raw, &a); err != nil {
		return nil, err
	}
	if a.NewType == "" {
		return nil, api.BadRequest("New volume type must be specified.")
	}
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		v, err := s.loadAuthorized(ctx, tx, r, c, id, "volume:retype")
		if err != nil {
			return err
		}
		if v.Status != statusAvailable && v.Status != statusInUse {
			return api.BadRequest("Invalid volume: Volume status must be available or in-use to retype, but the status is %s.", v.Status)
		}
		vt, err := s.findType(ctx, tx, c, a.NewType)
		if err != nil {
			return err
		}
		if vt.ID == v.TypeID {
			return api.BadRequest("Invalid input received: New volume type must be different from the current one.")
		}
		_, err = tx.Exec(ctx, `UPDATE volume_volumes SET type_id = ?, updated_at = ? WHERE id = ?`, vt.ID, stamp(), id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

// volumeStatuses are the statuses os-reset_status may set.
var volumeStatuses = []string{"creating", "available", "attaching", "in-use", "detaching", "deleting", "error", "error_deleting",
	"error_restoring", "error_extending", "extending", "uploading", "downloading", "backing-up", "restoring-backup",
	"retyping", "maintenance", "reserved", "awaiting-transfer", "error_managing"}

var attachStatuses = []string{"detached", "attached", "attaching", "detaching", "reserved", "error_attaching", "error_detaching"}

func (s *Service) resetStatus(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	var a struct {
		Status          *string `json:"status"`
		AttachStatus    *string `json:"attach_status"`
		MigrationStatus *string `json:"migration_status"`
	}
	if err := decodeAction(raw, &a); err != nil {
		return nil, err
	}
	if a.Status == nil && a.AttachStatus == nil && a.MigrationStatus == nil {
		return nil, api.BadRequest("Must specify 'status', 'attach_status' or 'migration_status' for update.")
	}
	if a.Status != nil && !containsStr(volumeStatuses, *a.Status) {
		return nil, api.BadRequest("Must specify a valid status.")
	}
	if a.AttachStatus != nil && !containsStr(attachStatuses, *a.AttachStatus) {
		return nil, api.BadRequest("Must specify a valid attach status.")
	}
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		v, err := loadVolume(ctx, tx, c, id)
		if err != nil {
			return err
		}
		if a.Status != nil {
			if _, err := tx.Exec(ctx, `UPDATE volume_volumes SET status = ?, updated_at = ? WHERE id = ?`, *a.Status, stamp(), v.ID); err != nil {
				return err
			}
		}
		if a.MigrationStatus != nil {
			var ms any = *a.MigrationStatus
			if *a.MigrationStatus == "none" || *a.MigrationStatus == "" {
				ms = nil
			}
			if _, err := tx.Exec(ctx, `UPDATE volume_volumes SET migration_status = ? WHERE id = ?`, ms, v.ID); err != nil {
				return err
			}
		}
		if a.AttachStatus != nil {
			if *a.AttachStatus == "detached" {
				_, err = tx.Exec(ctx, `DELETE FROM volume_attachments WHERE volume_id = ?`, v.ID)
			} else {
				_, err = tx.Exec(ctx, `UPDATE volume_attachments SET attach_status = ? WHERE volume_id = ?`, *a.AttachStatus, v.ID)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

func (s *Service) forceDelete(r *http.Request, c caller, id string, _ json.RawMessage) (*api.Response, error) {
	return s.deleteVolumeAs(r.Context(), r, c, id, true, true)
}
