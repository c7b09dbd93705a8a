package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// The attachments API (3.27, os-complete 3.44) is the flow Nova uses
// since Queens instead of reserve / initialize_connection / attach:
//
//	POST   /attachments            reserve (no connector: volume reserved)
//	                               or reserve and connect (attaching)
//	PUT    /attachments/{id}       connect: export to the connector's host
//	POST   /attachments/{id}/action {"os-complete": {}}  attached, in-use
//	DELETE /attachments/{id}       unexport and forget
//
// The volume's status always follows its attachments as Cinder derives
// it: attached > attaching > detaching > reserved, none is available.

// Attachment statuses (Cinder's attach_status).
const (
	attachReserved  = "reserved"
	attachAttaching = "attaching"
	attachAttached  = "attached"
)

// attachModeNull is what Cinder stores as the mode of an attachment
// created without one: the connector's mode decides at connect time.
const attachModeNull = "null"

func attachmentNotFound(id string) error {
	return api.NotFound("Volume attachment could not be found with filter: attachment_id = %s.", id)
}

// attachmentDetail renders an attachment as Cinder's detail view.
// Times absent are "", not null, as Cinder's view normalises them.
func (a attachment) detail() map[string]any {
	out := a.summary()
	out["attached_at"] = ""
	if a.AttachedAt != "" {
		out["attached_at"] = isoMicro(parseTime(a.AttachedAt))
	}
	out["detached_at"] = ""
	out["attach_mode"] = a.Mode
	info := map[string]any{}
	if a.ConnInfo != nil {
		_ = json.Unmarshal([]byte(*a.ConnInfo), &info)
	}
	out["connection_info"] = info
	return out
}

func (a attachment) summary() map[string]any {
	return map[string]any{"id": a.ID, "status": a.AttachStatus, "instance": a.InstanceUUID, "volume_id": a.VolumeID}
}

// loadAttachment reads an attachment and its volume; another project's
// attachment is a 404, as is a malformed id.
func loadAttachment(ctx context.Context, q store.Querier, c caller, id string) (*attachment, *volume, error) {
	if !isUUID(id) {
		return nil, nil, attachmentNotFound(id)
	}
	a, err := store.QueryOne(ctx, q, scanAttachment, `SELECT `+attachmentCols+` FROM volume_attachments WHERE id = ?`, id)
	if err == store.ErrNotFound {
		return nil, nil, attachmentNotFound(id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load attachment %s: %w", id, err)
	}
	v, err := loadVolume(ctx, q, c, a.VolumeID)
	if err != nil {
		if e, ok := err.(*api.Error); ok && e.Status == http.StatusNotFound {
			return nil, nil, attachmentNotFound(id)
		}
		return nil, nil, err
	}
	return &a, v, nil
}

// volumeStatusFromAttachments is Cinder's rule: the first attach_status
// in alphabetical order (errors ignored) decides, attached meaning
// in-use and none meaning available.
func volumeStatusFromAttachments(atts []attachment) string {
	best := ""
	for _, a := range atts {
		if strings.HasPrefix(a.AttachStatus, "error_") {
			continue
		}
		if best == "" || a.AttachStatus < best {
			best = a.AttachStatus
		}
	}
	switch best {
	case "":
		return statusAvailable
	case attachAttached:
		return statusInUse
	}
	return best
}

// settleVolume sets the volume's status from its attachments as they are
// now in tx; the status read with v must still hold (else store.ErrRetry).
func settleVolume(ctx context.Context, tx *store.Tx, v *volume) error {
	atts, err := store.QueryAll(ctx, tx, scanAttachment, `SELECT `+attachmentCols+` FROM volume_attachments WHERE volume_id = ?`, v.ID)
	if err != nil {
		return fmt.Errorf("attachments of %s: %w", v.ID, err)
	}
	to := volumeStatusFromAttachments(atts)
	if len(atts) == 0 {
		delete(v.AdminMetadata, "attached_mode")
	}
	res, err := tx.Exec(ctx, `UPDATE volume_volumes SET status = ?, admin_metadata = ?, updated_at = ? WHERE id = ? AND status = ?`,
		to, jsonText(v.AdminMetadata), stamp(), v.ID, v.Status)
	if err != nil {
		return fmt.Errorf("volume %s to %s: %w", v.ID, to, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return store.ErrRetry
	}
	v.Status = to
	return nil
}

// attachmentBody is the body of POST and PUT /attachments.
type attachmentBody struct {
	Attachment *struct {
		VolumeUUID   *string         `json:"volume_uuid"`
		InstanceUUID *string         `json:"instance_uuid"`
		Connector    json.RawMessage `json:"connector"`
	} `json:"attachment"`
}

// parseConnector reads a connector object; null or absent is nil. A
// connector must name its host, the compute host the export is for.
func parseConnector(raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var conn map[string]any
	if err := json.Unmarshal(raw, &conn); err != nil || conn == nil {
		return nil, api.BadRequest("Invalid input for field/attribute connector. Value: %s. It is not of type 'object'.", raw)
	}
	if h, _ := conn["host"].(string); h == "" {
		return nil, api.BadRequest("Invalid input received: connector must name its 'host'.")
	}
	if m, ok := conn["mode"]; ok && m != nil && m != "rw" && m != "ro" && m != attachModeNull {
		return nil, api.BadRequest("Invalid input received: connector mode must be 'rw' or 'ro', not %v.", m)
	}
	return conn, nil
}

func (s *Service) createAttachment(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	var body attachmentBody
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	b := body.Attachment
	if b == nil {
		return nil, api.BadRequest("Missing required element 'attachment' in request body.")
	}
	if b.VolumeUUID == nil {
		return nil, api.BadRequest("Invalid input for field/attribute attachment. 'volume_uuid' is a required property.")
	}
	if !isUUID(*b.VolumeUUID) {
		return nil, api.BadRequest("Invalid input for field/attribute volume_uuid. Value: %s. It is not a valid UUID.", *b.VolumeUUID)
	}
	if b.InstanceUUID != nil && !isUUID(*b.InstanceUUID) {
		return nil, api.BadRequest("Invalid input for field/attribute instance_uuid. Value: %s. It is not a valid UUID.", *b.InstanceUUID)
	}
	connector, err := parseConnector(b.Connector)
	if err != nil {
		return nil, err
	}
	a := attachment{ID: newID(), VolumeID: *b.VolumeUUID, InstanceUUID: b.InstanceUUID, Mode: attachModeNull, AttachStatus: attachReserved}
	var v *volume
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if v, err = loadVolume(ctx, tx, c, a.VolumeID); err != nil {
			return err
		}
		if err := s.authorize(r, "volume:attachment_create", v.ProjectID); err != nil {
			return err
		}
		if strings.Contains(v.Status, "error") {
			return api.BadRequest("Invalid volume: Volume attachments can not be created if the volume is in an error state. The Volume %s currently has a status of: %s.", v.ID, v.Status)
		}
		from := []string{statusAvailable}
		if v.Multiattach {
			from = append(from, statusInUse)
		}
		won, err := casStatus(ctx, tx, v.ID, attachReserved, from...)
		if err != nil {
			return err
		}
		if !won && !sameInstance(v, a.InstanceUUID) {
			return api.BadRequest("Invalid volume: Volume %s status must be %s to reserve, but the current status is %s.", v.ID, strings.Join(from, " or "), v.Status)
		}
		if won {
			v.Status = attachReserved
		}
		if v.readOnly() {
			a.Mode = "ro"
		}
		t := stamp()
		a.CreatedAt = t
		_, err = tx.Exec(ctx, `INSERT INTO volume_attachments (id, volume_id, instance_uuid, attach_mode, attach_status, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, a.ID, a.VolumeID, a.InstanceUUID, a.Mode, a.AttachStatus, t)
		if err != nil {
			return fmt.Errorf("insert attachment: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if connector != nil {
		connected, err := s.connectAttachment(ctx, c, &a, connector)
		if err != nil {
			// Nothing half-applied: the reservation goes with the failure.
			if uerr := s.dropAttachment(ctx, a.ID); uerr != nil {
				s.log.Error("attachment create: undo reservation", "attachment", a.ID, "err", uerr)
			}
			return nil, err
		}
		a = *connected
	}
	return api.JSON(http.StatusOK, map[string]any{"attachment": a.detail()}), nil
}

// sameInstance reports whether the volume already has an attachment for
// the instance: Cinder lets such a reservation through whatever the
// volume's status (a retried or moved attach of the same server).
func sameInstance(v *volume, instance *string) bool {
	if instance == nil || (v.Status != statusInUse && v.Status != attachReserved) {
		return false
	}
	for _, a := range v.Attachments {
		if a.InstanceUUID != nil && *a.InstanceUUID == *instance {
			return true
		}
	}
	return false
}

// connectAttachment exports the volume to the connector's host and
// records the connection: the attachment is attaching, with the
// connector's mountpoint and mode, and so is the volume unless another
// attachment ranks before (an attached one keeps it in-use).
func (s *Service) connectAttachment(ctx context.Context, c caller, a *attachment, connector map[string]any) (*attachment, error) {
	host := connector["host"].(string)
	v, err := loadVolume(ctx, s.db, caller{admin: true}, a.VolumeID)
	if err != nil {
		return nil, err
	}
	if strings.Contains(v.Status, "error") {
		return nil, api.Conflict("Volume attachments can not be updated if the volume is in an error state. The Volume %s currently has a status of: %s.", v.ID, v.Status)
	}
	if !v.Multiattach {
		for _, o := range v.Attachments {
			if o.ID != a.ID && o.ConnInfo != nil {
				return nil, api.Conflict("duplicate connectors detected on volume %s.", v.ID)
			}
		}
	}
	mode := "rw"
	if m, ok := connector["mode"].(string); ok && m != attachModeNull {
		mode = m
	}
	if a.Mode != attachModeNull {
		mode = a.Mode
		connector["mode"] = mode
	}
	info, err := s.export(ctx, v, host, mode == "ro" || v.readOnly())
	if err != nil {
		return nil, fmt.Errorf("connect attachment %s: %w", a.ID, err)
	}
	mountpoint, _ := connector["mountpoint"].(string)
	if mountpoint == "" {
		mountpoint = "na"
	}
	connText, _ := json.Marshal(connector)
	infoText, _ := json.Marshal(info)
	var out *attachment
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		cur, v, err := loadAttachment(ctx, tx, c, a.ID)
		if err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `UPDATE volume_attachments SET attach_status = ?, host_name = ?, mountpoint = ?, attach_mode = ?,
			attached_at = ?, connector = ?, connection_info = ? WHERE id = ?`,
			attachAttaching, host, mountpoint, mode, stamp(), string(connText), string(infoText), cur.ID)
		if err != nil {
			return fmt.Errorf("update attachment %s: %w", cur.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return attachmentNotFound(cur.ID)
		}
		v.AdminMetadata["attached_mode"] = mode
		if err := settleVolume(ctx, tx, v); err != nil {
			return err
		}
		out, err = store.QueryOne(ctx, tx, scanAttachmentPtr, `SELECT `+attachmentCols+` FROM volume_attachments WHERE id = ?`, cur.ID)
		return err
	})
	if err != nil {
		// Deleted meanwhile: give the export back.
		s.unexportIfUnused(ctx, v, host, a.ID)
		return nil, err
	}
	return out, nil
}

func scanAttachmentPtr(row store.Scanner) (*attachment, error) {
	a, err := scanAttachment(row)
	return &a, err
}

// dropAttachment deletes an attachment row and settles its volume.
func (s *Service) dropAttachment(ctx context.Context, id string) error {
	return s.writeTx(ctx, func(tx *store.Tx) error {
		a, v, err := loadAttachment(ctx, tx, caller{admin: true}, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM volume_attachments WHERE id = ?`, a.ID); err != nil {
			return fmt.Errorf("delete attachment %s: %w", a.ID, err)
		}
		return settleVolume(ctx, tx, v)
	})
}

// exportShared reports whether another connected attachment of the
// volume uses the export to host (a multiattach volume on two servers of
// one compute host shares it).
func exportShared(v *volume, host, except string) bool {
	for _, o := range v.Attachments {
		if o.ID != except && o.ConnInfo != nil && strOr(o.HostName) == host {
			return true
		}
	}
	return false
}

// unexportIfUnused ends the export to host unless another connected
// attachment of the volume still uses it; failures are logged (it undoes
// an export nothing recorded).
func (s *Service) unexportIfUnused(ctx context.Context, v *volume, host, except string) {
	cur, err := loadVolume(ctx, s.db, caller{admin: true}, v.ID)
	if err != nil {
		s.log.Warn("unexport: reload volume", "volume", v.ID, "err", err)
		return
	}
	if exportShared(cur, host, except) {
		return
	}
	if _, err := s.connCall(ctx, cur, agentproto.ConnRequest{Op: agentproto.OpUnexport, VolumeID: v.ID, Initiator: host}); err != nil {
		s.log.Warn("unexport", "volume", v.ID, "host", host, "err", err)
	}
}

func (s *Service) showAttachment(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	a, v, err := loadAttachment(r.Context(), s.db, c, r.PathValue("attachment_id"))
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "volume:get", v.ProjectID); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"attachment": a.detail()}), nil
}

func (s *Service) updateAttachment(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	a, v, err := loadAttachment(ctx, s.db, c, r.PathValue("attachment_id"))
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "volume:attachment_update", v.ProjectID); err != nil {
		return nil, err
	}
	var body attachmentBody
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Attachment == nil {
		return nil, api.BadRequest("Missing required element 'attachment' in request body.")
	}
	if body.Attachment.VolumeUUID != nil || body.Attachment.InstanceUUID != nil {
		return nil, api.BadRequest("Invalid input for field/attribute attachment. Additional properties are not allowed.")
	}
	connector, err := parseConnector(body.Attachment.Connector)
	if err != nil {
		return nil, err
	}
	if connector == nil {
		return nil, api.BadRequest("Invalid input for field/attribute attachment. 'connector' is a required property.")
	}
	out, err := s.connectAttachment(ctx, c, a, connector)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"attachment": out.detail()}), nil
}

// deleteAttachment detaches: the export to the attachment's host ends
// (unless shared), then the row goes and the volume's status follows
// what is left. The export goes first, as Cinder terminates the
// connection before it forgets the attachment: a storage host that
// cannot be reached fails the delete and keeps the attachment, so no
// export outlives its record unseen. The answer lists the volume's
// remaining attachments.
func (s *Service) deleteAttachment(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	gone, v, err := loadAttachment(ctx, s.db, c, r.PathValue("attachment_id"))
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "volume:attachment_delete", v.ProjectID); err != nil {
		return nil, err
	}
	if gone.ConnInfo != nil && gone.HostName != nil && !exportShared(v, *gone.HostName, gone.ID) {
		if _, err := s.connCall(ctx, v, agentproto.ConnRequest{Op: agentproto.OpUnexport, VolumeID: v.ID, Initiator: *gone.HostName}); err != nil {
			return nil, fmt.Errorf("delete attachment %s: %w", gone.ID, err)
		}
	}
	var left []attachment
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if gone, v, err = loadAttachment(ctx, tx, c, gone.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM volume_attachments WHERE id = ?`, gone.ID); err != nil {
			return fmt.Errorf("delete attachment %s: %w", gone.ID, err)
		}
		if err := settleVolume(ctx, tx, v); err != nil {
			return err
		}
		left, err = store.QueryAll(ctx, tx, scanAttachment, `SELECT `+attachmentCols+` FROM volume_attachments WHERE volume_id = ? ORDER BY created_at, id`, v.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(left))
	for _, a := range left {
		out = append(out, a.summary())
	}
	return api.JSON(http.StatusOK, map[string]any{"attachments": out}), nil
}

// attachmentAction serves POST /attachments/{id}/action; os-complete
// (3.44) is its only action.
func (s *Service) attachmentAction(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if _, _, err := loadAttachment(ctx, s.db, c, r.PathValue("attachment_id")); err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	raw, ok := body["os-complete"]
	if len(body) != 1 || !ok {
		return nil, api.BadRequest("There is either no action or more than one action in the request body.")
	}
	if s := strings.TrimSpace(string(raw)); s != "null" && s != "{}" {
		var args map[string]any
		if err := json.Unmarshal(raw, &args); err != nil || len(args) != 0 {
			return nil, api.BadRequest("Invalid input for field/attribute os-complete. Additional properties are not allowed.")
		}
	}
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		a, v, err := loadAttachment(ctx, tx, c, r.PathValue("attachment_id"))
		if err != nil {
			return err
		}
		if err := s.authorize(r, "volume:attachment_complete", v.ProjectID); err != nil {
			return err
		}
		t := stamp()
		if a.AttachedAt != "" {
			t = a.AttachedAt
		}
		if _, err := tx.Exec(ctx, `UPDATE volume_attachments SET attach_status = ?, attached_at = ? WHERE id = ?`, attachAttached, t, a.ID); err != nil {
			return fmt.Errorf("complete attachment %s: %w", a.ID, err)
		}
		return settleVolume(ctx, tx, v)
	})
	if err != nil {
		return nil, err
	}
	return &api.Response{Status: http.StatusNoContent}, nil
}
