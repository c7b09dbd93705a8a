package compute

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Shelve, rescue and backup: actions that involve an image.

// newImage registers a queued image for the agent to upload into.
func (s *Service) newImage(r *http.Request, name string, props map[string]string) (string, error) {
	if s.cfg.Images == nil {
		return newID(), nil
	}
	id, err := s.cfg.Images.CreateSnapshot(r.Context(), s.caller(r).token, name, props)
	if err != nil {
		return "", fmt.Errorf("create image %s: %w", name, err)
	}
	return id, nil
}

func nullArg(action string, arg json.RawMessage) error {
	if string(arg) == "null" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(arg, &m); err != nil || len(m) > 0 {
		return api.BadRequest("Invalid input for field/attribute %s. Value: %s. %s is not of type 'null'", action, arg, arg)
	}
	return nil
}

// shelve snapshots the server and removes it from its host; it comes back
// with unshelve, scheduled anew.
func (s *Service) shelve(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	if err := nullArg("shelve", arg); err != nil {
		return nil, err
	}
	sa := stateAction{name: "shelve", policy: "os_compute_api:os-shelve:shelve", op: OpShelve, vmStates: snapshotStates, task: taskShelving}
	i, err := s.serverFor(r, sa.policy)
	if err != nil {
		return nil, err
	}
	if err := sa.allows(i); err != nil {
		return nil, err
	}
	imageID, err := s.newImage(r, i.Name+"-shelved", map[string]string{"instance_uuid": i.ID, "image_type": "snapshot",
		"base_image_ref": i.ImageRef, "user_id": s.caller(r).user})
	if err != nil {
		return nil, err
	}
	err = s.act(r, i, sa, func(tx *store.Tx, cur *instance, cmd *Command) error {
		cmd.ImageID = imageID
		hints := fromJSON[map[string]string](cur.Hints)
		if hints == nil {
			hints = map[string]string{}
		}
		hints["shelved_image_id"] = imageID
		_, err := tx.Exec(r.Context(), `UPDATE compute_instances SET hints = ? WHERE id = ?`, jsonText(hints), cur.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

// shelveOffload is a no-op accepted for shelved servers: shelving
// offloads at once here.
func (s *Service) shelveOffload(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	if err := nullArg("shelveOffload", arg); err != nil {
		return nil, err
	}
	i, err := s.serverFor(r, "os_compute_api:os-shelve:shelve_offload")
	if err != nil {
		return nil, err
	}
	if i.VMState != vmShelvedOffloaded {
		return nil, invalidState("shelveOffload", i.ID, "vm_state", i.VMState)
	}
	return accepted(), nil
}

func (s *Service) unshelve(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	zone := ""
	if string(arg) != "null" {
		var in struct {
			AZ *string `json:"availability_zone"`
		}
		if err := api.DecodeBytes(arg, &in, true); err != nil {
			return nil, err
		}
		if in.AZ != nil && !at(r, 77) {
			return nil, api.BadRequest("Invalid input for field/attribute unshelve. Value: %s. %s is not of type 'null'", arg, arg)
		}
		if in.AZ != nil {
			zone = *in.AZ
		}
	}
	i, err := s.serverFor(r, "os_compute_api:os-shelve:unshelve")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	if zone != "" {
		if ok, err := s.zoneExists(r, zone); err != nil {
			return nil, err
		} else if !ok {
			return nil, api.BadRequest("The requested availability zone is not available")
		}
	}
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		cur, err := s.getInstance(r.Context(), tx, c, i.ID)
		if err != nil {
			return err
		}
		if cur.Locked && !c.admin {
			return api.Conflict("Instance %s is locked", cur.ID)
		}
		if cur.VMState != vmShelvedOffloaded {
			return invalidState("unshelve", cur.ID, "vm_state", cur.VMState)
		}
		if cur.TaskState != nil {
			return invalidState("unshelve", cur.ID, "task_state", cur.task())
		}
		if _, err := recordAction(r.Context(), tx, cur.ID, "unshelve", c); err != nil {
			return err
		}
		set, args := `task_state = ?, tried_hosts = '[]', updated_at = ?`, []any{taskUnshelving, store.FormatTime(now())}
		if zone != "" {
			set += `, requested_az = ?, availability_zone = ?`
			args = append(args, zone, zone)
		}
		_, err = tx.Exec(r.Context(), `UPDATE compute_instances SET `+set+` WHERE id = ?`, append(args, cur.ID)...)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.scheduleBuild(r.Context(), i.ID); err != nil {
		return nil, err
	}
	return accepted(), nil
}

func (s *Service) rescue(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	var in struct {
		AdminPass    *string `json:"adminPass"`
		RescueImage  *string `json:"rescue_image_ref"`
		EnableLegacy *bool   `json:"enable_legacy"`
	}
	if string(arg) != "null" {
		if err := api.DecodeBytes(arg, &in, true); err != nil {
			return nil, err
		}
	}
	rescueImage := ""
	if in.RescueImage != nil {
		rescueImage = refID(*in.RescueImage)
		if !isUUID(rescueImage) {
			return nil, api.BadRequest("Invalid input for field/attribute rescue_image_ref. Value: %s. is not a 'uuid'", *in.RescueImage)
		}
	}
	sa := stateAction{name: "rescue", policy: "os_compute_api:os-rescue", op: OpRescue, vmStates: []string{vmActive, vmStopped, vmError}, task: taskRescuing}
	i, err := s.serverFor(r, sa.policy)
	if err != nil {
		return nil, err
	}
	pass := genPassword()
	if in.AdminPass != nil {
		pass = *in.AdminPass
	}
	err = s.act(r, i, sa, func(_ *store.Tx, _ *instance, cmd *Command) error {
		cmd.ImageID = rescueImage
		cmd.Instance.AdminPass = pass
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"adminPass": pass}), nil
}

func (s *Service) unrescue(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	if err := nullArg("unrescue", arg); err != nil {
		return nil, err
	}
	return s.runAction(r, stateAction{name: "unrescue", policy: "os_compute_api:os-unrescue", op: OpUnrescue,
		vmStates: []string{vmRescued}, task: taskUnrescuing}, nil)
}

// createBackup snapshots like createImage and keeps at most rotation
// backups of the same type: older ones are deleted from the image
// service now, with the caller's token, as the new one is registered.
func (s *Service) createBackup(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	var in struct {
		Name       *string           `json:"name"`
		BackupType *string           `json:"backup_type"`
		Rotation   *flexInt          `json:"rotation"`
		Metadata   map[string]string `json:"metadata"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	if in.Name == nil || in.BackupType == nil || in.Rotation == nil {
		return nil, api.BadRequest("Invalid input for field/attribute createBackup. 'name', 'backup_type' and 'rotation' are required properties")
	}
	if err := checkName("name", *in.Name, 255); err != nil {
		return nil, err
	}
	rotation, err := intField("rotation", *in.Rotation, 0, dbMaxInt)
	if err != nil {
		return nil, err
	}
	sa := stateAction{name: "createBackup", policy: "os_compute_api:os-create-backup", op: OpSnapshot, vmStates: snapshotStates, task: taskBackup}
	i, err := s.serverFor(r, sa.policy)
	if err != nil {
		return nil, err
	}
	if err := sa.allows(i); err != nil {
		return nil, err
	}
	if err := s.rotateBackups(r, i.ID, *in.BackupType, rotation); err != nil {
		return nil, err
	}
	props := map[string]string{}
	for k, v := range in.Metadata {
		props[k] = v
	}
	for k, v := range map[string]string{"instance_uuid": i.ID, "image_type": "backup", "backup_type": *in.BackupType,
		"base_image_ref": i.ImageRef, "user_id": s.caller(r).user} {
		props[k] = v
	}
	imageID, err := s.newImage(r, *in.Name, props)
	if err != nil {
		return nil, err
	}
	if err := s.act(r, i, sa, withImage(imageID)); err != nil {
		return nil, err
	}
	return s.imageAccepted(r, imageID), nil
}

// rotateBackups deletes the oldest backups so that, with the one being
// made, at most rotation remain.
func (s *Service) rotateBackups(r *http.Request, serverID, backupType string, rotation int) error {
	if s.cfg.ImageURL == "" {
		return nil
	}
	q := url.Values{"instance_uuid": {serverID}, "image_type": {"backup"}, "backup_type": {backupType}}
	var out struct {
		Images []map[string]any `json:"images"`
	}
	if err := s.call(r, s.cfg.ImageURL, "GET", "/v2/images?"+q.Encode(), nil, &out, http.StatusOK, "Image not found."); err != nil {
		return err
	}
	sort.Slice(out.Images, func(a, b int) bool {
		return fmt.Sprint(out.Images[a]["created_at"]) > fmt.Sprint(out.Images[b]["created_at"])
	})
	keepN := max(rotation-1, 0)
	for n, img := range out.Images {
		if n < keepN {
			continue
		}
		id, _ := img["id"].(string)
		// An image already gone is as good as deleted.
		if err := s.call(r, s.cfg.ImageURL, "DELETE", "/v2/images/"+url.PathEscape(id), nil, nil, http.StatusNoContent, "Image not found.",
			statusErrors{http.StatusNotFound: nil}); err != nil {
			return err
		}
	}
	return nil
}

// serverPassword answers os-server-password: guests here do not post
// encrypted passwords, so it is always empty, and clearing it succeeds.
func (s *Service) serverPassword(r *http.Request) (*api.Response, error) {
	if _, err := s.serverFor(r, "os_compute_api:os-server-password:show"); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"password": ""}), nil
}

func (s *Service) clearServerPassword(r *http.Request) (*api.Response, error) {
	if _, err := s.serverFor(r, "os_compute_api:os-server-password:clear"); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}
