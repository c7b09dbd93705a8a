package compute

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// stateAction is an action that sends one command to the server's host:
// which states it is valid in, the task state it sets while in flight,
// and the instance action and policy it is recorded and checked under.
type stateAction struct {
	name     string // Nova's action name in the 409 message and instance actions
	policy   string
	op       string
	vmStates []string
	task     string
	// taskStates are the task states the action may interrupt (none
	// for most: a task in flight makes the action a 409).
	taskStates []string
	// minVersion is the microversion (2.minVersion) that introduced it.
	minVersion int
}

var stateActions = map[string]stateAction{
	"os-stop":  {name: "stop", policy: "os_compute_api:servers:stop", op: OpStop, vmStates: []string{vmActive, vmError}, task: taskPowerOff},
	"os-start": {name: "start", policy: "os_compute_api:servers:start", op: OpStart, vmStates: []string{vmStopped}, task: taskPowerOn},
	"pause":    {name: "pause", policy: "os_compute_api:os-pause-server:pause", op: OpPause, vmStates: []string{vmActive}, task: taskPausing},
	"unpause":  {name: "unpause", policy: "os_compute_api:os-pause-server:unpause", op: OpUnpause, vmStates: []string{vmPaused}, task: taskUnpausing},
	"suspend":  {name: "suspend", policy: "os_compute_api:os-suspend-server:suspend", op: OpSuspend, vmStates: []string{vmActive}, task: taskSuspending},
	"resume":   {name: "resume", policy: "os_compute_api:os-suspend-server:resume", op: OpResume, vmStates: []string{vmSuspended}, task: taskResuming},
	"confirmResize": {name: "confirmResize", policy: "os_compute_api:servers:confirm_resize", op: OpConfirmResize,
		vmStates: []string{vmResized}, task: taskResizeConfirming},
	"revertResize": {name: "revertResize", policy: "os_compute_api:servers:revert_resize", op: OpRevertResize,
		vmStates: []string{vmResized}, task: taskResizeReverting},
	"trigger_crash_dump": {name: "trigger_crash_dump", policy: "os_compute_api:servers:trigger_crash_dump", op: OpCrashDump,
		vmStates: []string{vmActive, vmPaused, vmResized, vmError}, minVersion: 17},
}

// serverAction serves POST /servers/{id}/action, whose body names one action.
func (s *Service) serverAction(r *http.Request) (*api.Response, error) {
	var body map[string]json.RawMessage
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if len(body) != 1 {
		return nil, api.BadRequest("There is no such action: %s", strings.Join(sortedKeys(body), ","))
	}
	var name string
	var arg json.RawMessage
	for k, v := range body {
		name, arg = k, v
	}
	if sa, ok := stateActions[name]; ok && at(r, sa.minVersion) {
		if string(arg) != "null" {
			var m map[string]any
			if err := json.Unmarshal(arg, &m); err != nil {
				return nil, api.BadRequest("Invalid input for field/attribute %s. Value: %s. %s is not of type 'object', 'null'", sa.name, arg, arg)
			}
		}
		return s.runAction(r, sa, nil)
	}
	switch name {
	case "reboot":
		return s.reboot(r, arg)
	case "restore":
		return s.restoreServer(r)
	case "forceDelete":
		return s.forceDeleteServer(r)
	case "migrate", "os-migrateLive":
		return s.migrate(r, arg, name == "os-migrateLive")
	case "os-resetState":
		return s.resetState(r, arg)
	case "lock":
		return s.lock(r, arg)
	case "unlock":
		return s.unlock(r)
	case "rebuild":
		return s.rebuild(r, arg)
	case "resize":
		return s.resize(r, arg)
	case "createImage":
		return s.createImage(r, arg)
	case "shelve":
		return s.shelve(r, arg)
	case "shelveOffload":
		return s.shelveOffload(r, arg)
	case "unshelve":
		return s.unshelve(r, arg)
	case "rescue":
		return s.rescue(r, arg)
	case "unrescue":
		return s.unrescue(r, arg)
	case "createBackup":
		return s.createBackup(r, arg)
	case "addSecurityGroup", "removeSecurityGroup":
		return s.changeServerGroup(r, arg, name == "addSecurityGroup")
	case "addFloatingIp", "removeFloatingIp":
		return s.floatingAction(r, arg, name == "addFloatingIp")
	case "addFixedIp", "removeFixedIp":
		return s.fixedIPAction(r, arg, name == "addFixedIp")
	case "os-getConsoleOutput":
		return s.consoleOutput(r, arg)
	case "os-getVNCConsole", "os-getSerialConsole", "os-getSPICEConsole", "os-getRDPConsole":
		return s.legacyConsole(r, name, arg)
	}
	return nil, api.BadRequest("There is no such action: %s", name)
}

// invalidState is Nova's 409 for an action in the wrong state.
func invalidState(action, id, attr, state string) error {
	return api.Conflict("Cannot '%s' instance %s while it is in %s %s", action, id, attr, state)
}

// allows is Nova's 409 unless the server's vm_state is one the action
// is valid in and no task is in flight that it may not interrupt.
func (a stateAction) allows(i instance) error {
	if !contains(a.vmStates, i.VMState) {
		return invalidState(a.name, i.ID, "vm_state", i.VMState)
	}
	if i.TaskState != nil && !contains(a.taskStates, i.task()) {
		return invalidState(a.name, i.ID, "task_state", i.task())
	}
	return nil
}

// act runs an action on a server: in one transaction it checks the
// action against the server's lock and state, records the instance
// action, sets the task state and prepares the command, which mutate may
// amend and extend with its own writes; after the commit the command is
// sent to the server's host.
func (s *Service) act(r *http.Request, i instance, a stateAction, mutate func(tx *store.Tx, cur *instance, cmd *Command) error) error {
	c := s.caller(r)
	var out *command
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		out = nil
		cur, err := s.getInstance(r.Context(), tx, c, i.ID)
		if err != nil {
			return err
		}
		if cur.Locked && !c.admin {
			return api.Conflict("Instance %s is locked", cur.ID)
		}
		if err := a.allows(cur); err != nil {
			return err
		}
		if cur.host() == "" {
			return api.Conflict("Instance %s is not ready", cur.ID)
		}
		if _, err := recordAction(r.Context(), tx, cur.ID, a.name, c); err != nil {
			return err
		}
		spec, err := s.specOf(r.Context(), tx, cur)
		if err != nil {
			return err
		}
		cmd := Command{ID: newID(), Op: a.op, Instance: spec}
		if mutate != nil {
			if err := mutate(tx, &cur, &cmd); err != nil {
				return err
			}
		}
		if err := s.addPending(r.Context(), tx, cur.ID, cmd.ID, a.op, a.name, cur.host()); err != nil {
			return err
		}
		if a.task != "" {
			if _, err := tx.Exec(r.Context(), `UPDATE compute_instances SET task_state = ?, updated_at = ? WHERE id = ?`, a.task, store.FormatTime(now()), cur.ID); err != nil {
				return err
			}
		}
		out = &command{host: cur.host(), cmd: cmd}
		return nil
	})
	if err != nil {
		return err
	}
	return s.dispatch(r.Context(), *out)
}

// runAction serves the plain actions: load the server under the
// action's policy, act, and answer 202.
func (s *Service) runAction(r *http.Request, a stateAction, mutate func(tx *store.Tx, cur *instance, cmd *Command) error) (*api.Response, error) {
	i, err := s.serverFor(r, a.policy)
	if err != nil {
		return nil, err
	}
	if err := s.act(r, i, a, mutate); err != nil {
		return nil, err
	}
	return accepted(), nil
}

// snapshotStates are the vm states a server can be imaged in (createImage,
// createBackup, shelve).
var snapshotStates = []string{vmActive, vmStopped, vmPaused, vmSuspended}

// withImage names the image a command writes to or boots from.
func withImage(imageID string) func(*store.Tx, *instance, *Command) error {
	return func(_ *store.Tx, _ *instance, cmd *Command) error {
		cmd.ImageID = imageID
		return nil
	}
}

// imageAccepted answers createImage and createBackup: the new image's id
// in the body from 2.45, in the Location header before.
func (s *Service) imageAccepted(r *http.Request, imageID string) *api.Response {
	if at(r, 45) {
		return api.JSON(http.StatusAccepted, map[string]any{"image_id": imageID})
	}
	return accepted().WithHeader("Location", s.baseURL(r)+"/v2.1/images/"+imageID)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Service) reboot(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	var in struct {
		Type *string `json:"type"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	if in.Type == nil {
		return nil, api.BadRequest("Invalid input for field/attribute reboot. 'type' is a required property")
	}
	typ := strings.ToUpper(*in.Type)
	if typ != "SOFT" && typ != "HARD" {
		return nil, api.BadRequest("Invalid input for field/attribute type. Value: %s. '%s' does not match '^(hard|HARD|soft|SOFT)$'", *in.Type, *in.Type)
	}
	sa := stateAction{name: "reboot", policy: "os_compute_api:servers:reboot", op: OpReboot, vmStates: []string{vmActive}, task: taskRebooting}
	if typ == "HARD" {
		sa.vmStates = []string{vmActive, vmStopped, vmPaused, vmSuspended, vmError}
		sa.taskStates = []string{taskRebooting, taskRebootingHard}
		sa.task = taskRebootingHard
	}
	return s.runAction(r, sa, func(_ *store.Tx, _ *instance, cmd *Command) error {
		cmd.RebootType = typ
		return nil
	})
}

// lock and unlock change only the record; the agent has nothing to do.
func (s *Service) lock(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	var reason *string
	if string(arg) != "null" {
		var in struct {
			Reason *string `json:"locked_reason"`
		}
		if err := api.DecodeBytes(arg, &in, true); err != nil {
			return nil, err
		}
		if in.Reason != nil && !at(r, 73) {
			return nil, api.BadRequest("Invalid input for field/attribute lock. Additional properties are not allowed ('locked_reason' was unexpected)")
		}
		if in.Reason != nil && len(*in.Reason) > 255 {
			return nil, api.BadRequest("Invalid input for field/attribute locked_reason. is too long")
		}
		reason = in.Reason
	}
	i, err := s.serverFor(r, "os_compute_api:os-lock-server:lock")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	by := "owner"
	if c.admin && c.project != i.ProjectID {
		by = "admin"
	}
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		if _, err := recordAction(r.Context(), tx, i.ID, "lock", c); err != nil {
			return err
		}
		_, err := tx.Exec(r.Context(), `UPDATE compute_instances SET locked = 1, locked_by = ?, locked_reason = ?, updated_at = ? WHERE id = ?`,
			by, reason, store.FormatTime(now()), i.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

// resetState is the admin action os-resetState: the server's vm_state
// becomes "active" or "error" and its task state is cleared, without
// touching the guest (Nova's reset_state).
func (s *Service) resetState(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	var in struct {
		State *string `json:"state"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	if in.State == nil {
		return nil, api.BadRequest("Invalid input for field/attribute os-resetState. 'state' is a required property")
	}
	if *in.State != vmActive && *in.State != vmError {
		return nil, api.BadRequest("Invalid input for field/attribute state. Value: %s. '%s' is not one of ['active', 'error']", *in.State, *in.State)
	}
	i, err := s.serverFor(r, "os_compute_api:os-admin-actions:reset_state")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		if _, err := recordAction(r.Context(), tx, i.ID, "resetState", c); err != nil {
			return err
		}
		_, err := tx.Exec(r.Context(), `UPDATE compute_instances SET vm_state = ?, task_state = NULL, updated_at = ? WHERE id = ?`,
			*in.State, store.FormatTime(now()), i.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

func (s *Service) unlock(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:os-lock-server:unlock")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	if i.LockedBy != nil && *i.LockedBy == "admin" && c.project == i.ProjectID && !c.admin {
		if err := s.authorize(r, "os_compute_api:os-lock-server:unlock:unlock_override", projectTarget(i.ProjectID, i.UserID)); err != nil {
			return nil, err
		}
	}
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		if _, err := recordAction(r.Context(), tx, i.ID, "unlock", c); err != nil {
			return err
		}
		_, err := tx.Exec(r.Context(), `UPDATE compute_instances SET locked = 0, locked_by = NULL, locked_reason = NULL, updated_at = ? WHERE id = ?`,
			store.FormatTime(now()), i.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

func (s *Service) rebuild(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	var in struct {
		ImageRef     *string              `json:"imageRef"`
		Name         *string              `json:"name"`
		AdminPass    *string              `json:"adminPass"`
		Metadata     map[string]string    `json:"metadata"`
		DiskConfig   *string              `json:"OS-DCF:diskConfig"`
		AccessIPv4   *string              `json:"accessIPv4"`
		AccessIPv6   *string              `json:"accessIPv6"`
		Personality  []map[string]string  `json:"personality"`
		Preserve     *bool                `json:"preserve_ephemeral"`
		Description  api.Optional[string] `json:"description"`
		KeyName      api.Optional[string] `json:"key_name"`
		UserData     api.Optional[string] `json:"user_data"`
		TrustedCerts []string             `json:"trusted_image_certificates"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	if in.ImageRef == nil {
		return nil, api.BadRequest("Invalid input for field/attribute rebuild. 'imageRef' is a required property")
	}
	if in.Description.Set && !at(r, 19) || in.KeyName.Set && !at(r, 54) || in.UserData.Set && !at(r, 57) || in.Personality != nil && at(r, 57) {
		return nil, api.BadRequest("Invalid input for field/attribute rebuild. Additional properties are not allowed")
	}
	imageRef := refID(*in.ImageRef)
	if !isUUID(imageRef) {
		return nil, api.BadRequest("Invalid imageRef provided.")
	}
	var v6 string
	if in.AccessIPv6 != nil {
		var err error
		if v6, err = accessIPv6(*in.AccessIPv6); err != nil {
			return nil, err
		}
	}
	if in.Name != nil && (*in.Name == "" || len(*in.Name) > 255) {
		return nil, api.BadRequest("Invalid input for field/attribute name. Value: %s.", *in.Name)
	}
	if in.UserData.Set && !in.UserData.Null {
		if len(in.UserData.Value) > maxUserData {
			return nil, api.BadRequest("Invalid input for field/attribute user_data. is too long")
		}
		if _, err := base64Decode(in.UserData.Value); err != nil {
			return nil, api.BadRequest("Invalid input for field/attribute user_data. Value: %s. is not a 'base64'", truncate(in.UserData.Value, 20))
		}
	}
	sa := stateAction{name: "rebuild", policy: "os_compute_api:servers:rebuild", op: OpRebuild, vmStates: []string{vmActive, vmStopped, vmError}, task: taskRebuilding}
	i, err := s.serverFor(r, sa.policy)
	if err != nil {
		return nil, err
	}
	if i.ImageRef == "" {
		return nil, api.BadRequest("Rebuilding a volume-backed server is not supported.")
	}
	c := s.caller(r)
	props := map[string]string{}
	if s.cfg.Images != nil {
		img, err := s.activeImage(r.Context(), c.token, imageRef)
		if err != nil {
			return nil, err
		}
		props = img.Properties
	}
	var keyData *string
	if in.KeyName.Set && !in.KeyName.Null {
		k, err := store.QueryOne(r.Context(), s.db, scanKeypair, `SELECT `+keypairCols+` FROM compute_keypairs WHERE user_id = ? AND name = ?`, c.user, in.KeyName.Value)
		if err != nil {
			return nil, api.BadRequest("Invalid key_name provided.")
		}
		keyData = &k.PublicKey
	}
	adminPass := genPassword()
	if in.AdminPass != nil {
		adminPass = *in.AdminPass
	}
	err = s.act(r, i, sa,
		func(tx *store.Tx, cur *instance, cmd *Command) error {
			set, args := []string{"image_ref = ?", "image_props = ?"}, []any{imageRef, jsonText(props)}
			cmd.Instance.ImageID, cmd.Instance.ImageProperties = imageRef, props
			if in.Name != nil {
				set, args = append(set, "name = ?"), append(args, *in.Name)
				cmd.Instance.Name = *in.Name
			}
			if in.AccessIPv4 != nil {
				set, args = append(set, "access_ipv4 = ?"), append(args, *in.AccessIPv4)
			}
			if in.AccessIPv6 != nil {
				set, args = append(set, "access_ipv6 = ?"), append(args, v6)
			}
			if in.DiskConfig != nil {
				set, args = append(set, "disk_config = ?"), append(args, *in.DiskConfig)
			}
			if in.Description.Set {
				var d *string
				if !in.Description.Null {
					d = &in.Description.Value
				}
				set, args = append(set, "description = ?"), append(args, d)
			}
			if in.KeyName.Set {
				var kn *string
				if !in.KeyName.Null {
					kn = &in.KeyName.Value
				}
				set, args = append(set, "key_name = ?", "key_data = ?"), append(args, kn, keyData)
				cmd.Instance.KeyName, cmd.Instance.KeyData = derefOr(kn), derefOr(keyData)
			}
			if in.UserData.Set {
				var ud *string
				if !in.UserData.Null {
					ud = &in.UserData.Value
				}
				set, args = append(set, "user_data = ?"), append(args, ud)
				cmd.Instance.UserData = derefOr(ud)
			}
			if in.Metadata != nil {
				if _, err := tx.Exec(r.Context(), `DELETE FROM compute_instance_metadata WHERE instance_id = ?`, cur.ID); err != nil {
					return err
				}
				for k, v := range in.Metadata {
					if _, err := tx.Exec(r.Context(), `INSERT INTO compute_instance_metadata (instance_id, key, value) VALUES (?, ?, ?)`, cur.ID, k, v); err != nil {
						return err
					}
				}
				cmd.Instance.Metadata = in.Metadata
			}
			cmd.Instance.AdminPass = adminPass
			_, err := tx.Exec(r.Context(), `UPDATE compute_instances SET `+strings.Join(set, ", ")+` WHERE id = ?`, append(args, cur.ID)...)
			return err
		})
	if err != nil {
		return nil, err
	}
	i, err = s.getInstance(r.Context(), s.db, c, i.ID)
	if err != nil {
		return nil, err
	}
	resp, err := s.serverResponse(r, http.StatusAccepted, i, viewOpts{groups: true})
	if err != nil {
		return nil, err
	}
	resp.Body.(map[string]any)["server"].(map[string]any)["adminPass"] = adminPass
	return resp, nil
}

// activeImage looks up the image a server boots from (create, rebuild):
// it must exist and be active.
func (s *Service) activeImage(ctx context.Context, token, imageRef string) (*ImageInfo, error) {
	img, err := s.cfg.Images.Image(ctx, token, imageRef)
	if errors.Is(err, ErrNotFound) {
		return nil, api.BadRequest("Image %s could not be found.", imageRef)
	}
	if err != nil {
		return nil, fmt.Errorf("look up image %s: %w", imageRef, err)
	}
	if img.Status != "active" {
		return nil, api.BadRequest("Image %s is not active.", imageRef)
	}
	return img, nil
}

func derefOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// resize claims the new flavor on the server's current host next to the
// old one (Nova's allow_resize_to_same_host), so a revert always has room.
func (s *Service) resize(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	var in struct {
		FlavorRef  json.RawMessage `json:"flavorRef"`
		DiskConfig *string         `json:"OS-DCF:diskConfig"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	var ref string
	if err := json.Unmarshal(in.FlavorRef, &ref); err != nil {
		var n json.Number
		if err := json.Unmarshal(in.FlavorRef, &n); err != nil || n == "" {
			return nil, api.BadRequest("Invalid input for field/attribute resize. 'flavorRef' is a required property")
		}
		ref = n.String()
	}
	if ref == "" {
		return nil, api.BadRequest("Invalid input for field/attribute flavorRef. Value: . '' is too short")
	}
	sa := stateAction{name: "resize", policy: "os_compute_api:servers:resize", op: OpResize, vmStates: []string{vmActive, vmStopped}, task: taskResizePrep}
	i, err := s.serverFor(r, sa.policy)
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	f, err := s.visibleFlavor(r.Context(), s.db, c, refID(ref))
	if err != nil {
		return nil, api.BadRequest("Unable to locate requested flavor.")
	}
	if f.ID == i.FlavorID {
		return nil, api.BadRequest("When resizing, instances must change flavor!")
	}
	if f.RootGB < i.RootGB && f.RootGB != 0 {
		return nil, api.BadRequest("Resize error: Unable to resize disk down.")
	}
	err = s.act(r, i, sa,
		func(tx *store.Tx, cur *instance, cmd *Command) error {
			if err := store.LockKey(r.Context(), tx, "quota:"+cur.ProjectID); err != nil {
				return err
			}
			if err := s.checkQuota(r.Context(), tx, cur.ProjectID, map[string]int{
				"cores": max(f.VCPUs-cur.VCPUs, 0), "ram": max(f.MemoryMB-cur.MemoryMB, 0)}); err != nil {
				return err
			}
			_, err := s.claim(r.Context(), tx, "resize", request{InstanceID: cur.ID, VCPUs: f.VCPUs, MemoryMB: f.MemoryMB,
				DiskGB: f.RootGB + f.EphemeralGB, Include: map[string]bool{cur.host(): true}, ForceHost: cur.host()})
			if errors.Is(err, errNoValidHost) {
				return api.BadRequest("No valid host was found. There are not enough resources on host %s for flavor %s.", cur.host(), f.ID)
			}
			if err != nil {
				return err
			}
			spec := f.spec()
			cmd.NewFlavor = &spec
			if err := recordMigration(r.Context(), tx, *cur, cur.host(), cur.FlavorID, f.ID); err != nil {
				return err
			}
			// The server takes the new flavor now, as Nova's quota
			// counts it during the resize; revert restores the old one.
			_, err = tx.Exec(r.Context(), `UPDATE compute_instances SET old_flavor = flavor, new_flavor = ?, flavor = ?, flavor_id = ?, vcpus = ?, memory_mb = ?, root_gb = ? WHERE id = ?`,
				jsonText(spec), jsonText(spec), f.ID, f.VCPUs, f.MemoryMB, f.RootGB, cur.ID)
			return err
		})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

func (s *Service) createImage(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	var in struct {
		Name     *string                    `json:"name"`
		Metadata map[string]json.RawMessage `json:"metadata"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	if in.Name == nil {
		return nil, api.BadRequest("Invalid input for field/attribute createImage. 'name' is a required property")
	}
	if err := checkName("name", *in.Name, 255); err != nil {
		return nil, err
	}
	// Keys of 1-255 characters, string values of at most 255, as the
	// image service would take them: a 400 here, not the image
	// service's refusal turned into a 500.
	md, err := checkMetadata(in.Metadata)
	if err != nil {
		return nil, err
	}
	sa := stateAction{name: "createImage", policy: "os_compute_api:servers:create_image", op: OpSnapshot, vmStates: snapshotStates, task: taskSnapshot}
	i, err := s.serverFor(r, sa.policy)
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	// Checked before the image is registered, so a refused action leaves none.
	if err := sa.allows(i); err != nil {
		return nil, err
	}
	// Nova's snapshot properties, then the request's metadata, which may
	// override them (image_type included).
	props := map[string]string{"instance_uuid": i.ID, "image_type": "snapshot", "base_image_ref": i.ImageRef, "user_id": c.user}
	for k, v := range md {
		props[k] = v
	}
	imageID := newID()
	if s.cfg.Images != nil {
		if imageID, err = s.cfg.Images.CreateSnapshot(r.Context(), c.token, *in.Name, props); err != nil {
			return nil, fmt.Errorf("create snapshot image: %w", err)
		}
	}
	if err := s.act(r, i, sa, withImage(imageID)); err != nil {
		return nil, err
	}
	return s.imageAccepted(r, imageID), nil
}

// consoleOutput asks the server's agent for the tail of its console log.
func (s *Service) consoleOutput(r *http.Request, arg json.RawMessage) (*api.Response, error) {
	var in struct {
		Length any `json:"length"`
	}
	if string(arg) != "null" {
		if err := api.DecodeBytes(arg, &in, true); err != nil {
			return nil, err
		}
	}
	length := 0
	switch v := in.Length.(type) {
	case nil:
	case float64:
		if v < -1 || v != float64(int(v)) {
			return nil, api.BadRequest("Invalid input for field/attribute length. Value: %v.", v)
		}
		length = int(v)
	case string:
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < -1 {
			return nil, api.BadRequest("Invalid input for field/attribute length. Value: %s.", v)
		}
		length = n
	default:
		return nil, api.BadRequest("Invalid input for field/attribute length.")
	}
	if length < 0 {
		length = 0
	}
	i, err := s.serverFor(r, "os_compute_api:os-console-output")
	if err != nil {
		return nil, err
	}
	rep, err := s.askConsole(r, i, ConsoleRequest{InstanceID: i.ID, Type: "log", Length: length})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"output": rep.Output}), nil
}

func (s *Service) askConsole(r *http.Request, i instance, req ConsoleRequest) (ConsoleReply, error) {
	if i.host() == "" || i.VMState == vmBuilding {
		return ConsoleReply{}, api.Conflict("Instance %s is not ready", i.ID)
	}
	if s.cfg.Bus == nil {
		return ConsoleReply{}, api.NotFound("Guest does not have a console available.")
	}
	ctx, cancel := contextTimeout(r, 10*time.Second)
	defer cancel()
	rep, err := bus.Call[ConsoleRequest, ConsoleReply](ctx, s.cfg.Bus, ConsoleSubject(i.host()), req)
	if err != nil {
		s.log.Warn("console request", "instance", i.ID, "host", i.host(), "err", err)
		return rep, api.NotFound("Guest does not have a console available.")
	}
	return rep, nil
}

// Remote consoles: the agent says where the console listens; the API
// hands out a one-time token that the console proxy redeems with
// ConsoleTarget.

var consoleTypes = map[string]string{"novnc": "vnc", "xvpvnc": "vnc", "serial": "serial", "spice-html5": "spice", "rdp-html5": "rdp", "webmks": "mks"}

func (s *Service) legacyConsole(r *http.Request, action string, arg json.RawMessage) (*api.Response, error) {
	var in struct {
		Type *string `json:"type"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	if in.Type == nil {
		return nil, api.BadRequest("Invalid input for field/attribute %s. 'type' is a required property", action)
	}
	allowed := map[string][]string{"os-getVNCConsole": {"novnc", "xvpvnc"}, "os-getSerialConsole": {"serial"},
		"os-getSPICEConsole": {"spice-html5"}, "os-getRDPConsole": {"rdp-html5"}}[action]
	if !contains(allowed, *in.Type) {
		return nil, api.BadRequest("Invalid input for field/attribute type. Value: %s. '%s' is not one of %v", *in.Type, *in.Type, allowed)
	}
	url, err := s.remoteConsole(r, *in.Type)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"console": map[string]any{"type": *in.Type, "url": url}}), nil
}

// createRemoteConsole serves POST /servers/{id}/remote-consoles (2.6).
func (s *Service) createRemoteConsole(r *http.Request) (*api.Response, error) {
	if !at(r, 6) {
		return nil, api.NotFound("The resource could not be found.")
	}
	var body struct {
		RemoteConsole *struct {
			Protocol string `json:"protocol"`
			Type     string `json:"type"`
		} `json:"remote_console"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	rc := body.RemoteConsole
	if rc == nil || rc.Protocol == "" || rc.Type == "" {
		return nil, api.BadRequest("Invalid input for field/attribute remote_console. 'protocol' and 'type' are required properties")
	}
	if p, ok := consoleTypes[rc.Type]; !ok || p != rc.Protocol {
		return nil, api.BadRequest("Invalid input for field/attribute type. Value: %s. Unsupported console type %s for protocol %s", rc.Type, rc.Type, rc.Protocol)
	}
	url, err := s.remoteConsole(r, rc.Type)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"remote_console": map[string]any{"protocol": rc.Protocol, "type": rc.Type, "url": url}}), nil
}

func (s *Service) remoteConsole(r *http.Request, typ string) (string, error) {
	i, err := s.serverFor(r, "os_compute_api:os-remote-consoles")
	if err != nil {
		return "", err
	}
	base := s.cfg.ConsoleProxyURL
	if typ == "serial" {
		base = s.cfg.SerialProxyURL
	}
	if typ != "novnc" && typ != "serial" || base == "" {
		return "", api.BadRequest("Unavailable console type %s.", typ)
	}
	if i.VMState != vmActive && i.VMState != vmPaused {
		return "", api.Conflict("Instance %s is not ready", i.ID)
	}
	rep, err := s.askConsole(r, i, ConsoleRequest{InstanceID: i.ID, Type: typ})
	if err != nil {
		return "", err
	}
	token := newID()
	sum := sha256.Sum256([]byte(token))
	if _, err := s.db.Exec(r.Context(), `INSERT INTO compute_console_tokens (token_hash, instance_id, console_type, host, port, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		hex.EncodeToString(sum[:]), i.ID, typ, rep.Host, rep.Port, store.FormatTime(now().Add(10*time.Minute))); err != nil {
		return "", fmt.Errorf("store console token: %w", err)
	}
	if typ == "novnc" {
		return base + "?path=" + url.QueryEscape("?token="+token), nil
	}
	return base + "?token=" + token, nil
}

// ConsoleTarget looks a console token up for the console proxy: where
// the guest's console listens. Tokens stay valid until they expire (ten
// minutes), as Nova's do, so a browser may reconnect.
func (s *Service) ConsoleTarget(ctx context.Context, token string) (instanceID, typ, host string, port int, err error) {
	sum := sha256.Sum256([]byte(token))
	var expires string
	err = s.db.QueryRow(ctx, `SELECT instance_id, console_type, host, port, expires_at FROM compute_console_tokens WHERE token_hash = ?`,
		hex.EncodeToString(sum[:])).Scan(&instanceID, &typ, &host, &port, &expires)
	switch {
	case isNoRows(err) || (err == nil && expires < store.FormatTime(now())):
		return "", "", "", 0, api.NotFound("The token '%s' is invalid or has expired", token)
	case err != nil:
		return "", "", "", 0, fmt.Errorf("console token: %w", err)
	}
	return instanceID, typ, host, port, nil
}

// showConsoleToken serves GET /os-console-auth-tokens/{token} (2.31,
// admin), which console proxies call to learn where to connect.
func (s *Service) showConsoleToken(r *http.Request) (*api.Response, error) {
	if !at(r, 31) {
		return nil, api.NotFound("The resource could not be found.")
	}
	id, _, host, port, err := s.ConsoleTarget(r.Context(), r.PathValue("token"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"console": map[string]any{"instance_uuid": id, "host": host, "port": port, "internal_access_path": nil}}), nil
}

// Server metadata

func (s *Service) serverMetadata(r *http.Request, action string) (instance, map[string]string, error) {
	i, err := s.serverFor(r, action)
	if err != nil {
		return i, nil, err
	}
	md, err := metadataOf(r.Context(), s.db, i.ID)
	return i, md, err
}

func (s *Service) listServerMetadata(r *http.Request) (*api.Response, error) {
	_, md, err := s.serverMetadata(r, "os_compute_api:server-metadata:index")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"metadata": md}), nil
}

func (s *Service) showServerMetadata(r *http.Request) (*api.Response, error) {
	_, md, err := s.serverMetadata(r, "os_compute_api:server-metadata:show")
	if err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	v, ok := md[key]
	if !ok {
		return nil, api.NotFound("Metadata item was not found")
	}
	return api.JSON(http.StatusOK, map[string]any{"meta": map[string]string{key: v}}), nil
}

func checkMetadata(md map[string]json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	for k, raw := range md {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, api.BadRequest("Invalid input for field/attribute metadata. Value: %s. %s is not of type 'string'", raw, raw)
		}
		if k == "" || len(k) > 255 {
			return nil, api.BadRequest("Invalid input for field/attribute metadata. Metadata keys must be 1-255 characters.")
		}
		if len(v) > 255 {
			return nil, api.BadRequest("Invalid input for field/attribute metadata. Metadata values must be at most 255 characters.")
		}
		out[k] = v
	}
	return out, nil
}

// writeMetadata replaces (replace) or merges metadata in one transaction,
// checking the metadata_items quota against the result.
func (s *Service) writeMetadata(r *http.Request, action string, md map[string]string, replace bool) (map[string]string, error) {
	i, err := s.serverFor(r, action)
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	if i.Locked && !c.admin {
		return nil, api.Conflict("Instance %s is locked", i.ID)
	}
	if i.VMState == vmBuilding && i.task() == taskDeleting {
		return nil, invalidState("update metadata", i.ID, "task_state", i.task())
	}
	var result map[string]string
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		cur, err := metadataOf(r.Context(), tx, i.ID)
		if err != nil {
			return err
		}
		if replace {
			cur = map[string]string{}
			if _, err := tx.Exec(r.Context(), `DELETE FROM compute_instance_metadata WHERE instance_id = ?`, i.ID); err != nil {
				return err
			}
		}
		for k, v := range md {
			cur[k] = v
		}
		limits, err := s.limitsFor(r.Context(), tx, i.ProjectID)
		if err != nil {
			return err
		}
		if l := limits["metadata_items"]; l >= 0 && len(cur) > l {
			return api.Forbidden("Quota exceeded for metadata_items: Requested %d, but already used 0 of %d metadata_items", len(cur), l)
		}
		for k, v := range md {
			if _, err := tx.Exec(r.Context(), `DELETE FROM compute_instance_metadata WHERE instance_id = ? AND key = ?`, i.ID, k); err != nil {
				return err
			}
			if _, err := tx.Exec(r.Context(), `INSERT INTO compute_instance_metadata (instance_id, key, value) VALUES (?, ?, ?)`, i.ID, k, v); err != nil {
				return err
			}
		}
		_, err = tx.Exec(r.Context(), `UPDATE compute_instances SET updated_at = ? WHERE id = ?`, store.FormatTime(now()), i.ID)
		result = cur
		return err
	})
	return result, err
}

func (s *Service) createServerMetadata(r *http.Request) (*api.Response, error) {
	return s.postServerMetadata(r, "os_compute_api:server-metadata:create", false)
}

func (s *Service) replaceServerMetadata(r *http.Request) (*api.Response, error) {
	return s.postServerMetadata(r, "os_compute_api:server-metadata:update_all", true)
}

// postServerMetadata serves a {"metadata": {...}} body: merged into the
// server's metadata (POST) or replacing it (PUT).
func (s *Service) postServerMetadata(r *http.Request, policy string, replace bool) (*api.Response, error) {
	var body struct {
		Metadata map[string]json.RawMessage `json:"metadata"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Metadata == nil {
		return nil, api.BadRequest("Invalid input for field/attribute metadata. 'metadata' is a required property")
	}
	md, err := checkMetadata(body.Metadata)
	if err != nil {
		return nil, err
	}
	all, err := s.writeMetadata(r, policy, md, replace)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"metadata": all}), nil
}

func (s *Service) updateServerMetadataItem(r *http.Request) (*api.Response, error) {
	var body struct {
		Meta map[string]json.RawMessage `json:"meta"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	if len(body.Meta) != 1 {
		return nil, api.BadRequest("Request body contains too many items")
	}
	if _, ok := body.Meta[key]; !ok {
		return nil, api.BadRequest("Request body and URI mismatch")
	}
	md, err := checkMetadata(body.Meta)
	if err != nil {
		return nil, err
	}
	if _, err := s.writeMetadata(r, "os_compute_api:server-metadata:update", md, false); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"meta": md}), nil
}

func (s *Service) deleteServerMetadataItem(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:server-metadata:delete")
	if err != nil {
		return nil, err
	}
	if i.Locked && !s.caller(r).admin {
		return nil, api.Conflict("Instance %s is locked", i.ID)
	}
	res, err := s.db.Exec(r.Context(), `DELETE FROM compute_instance_metadata WHERE instance_id = ? AND key = ?`, i.ID, r.PathValue("key"))
	if err != nil {
		return nil, fmt.Errorf("delete metadata: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, api.NotFound("Metadata item was not found")
	}
	return api.NoContent(), nil
}

// Tags (2.26)

func (s *Service) tagServer(r *http.Request, action string) (instance, error) {
	if !at(r, 26) {
		return instance{}, api.NotFound("The resource could not be found.")
	}
	return s.serverFor(r, action)
}

func (s *Service) listServerTags(r *http.Request) (*api.Response, error) {
	i, err := s.tagServer(r, "os_compute_api:os-server-tags:index")
	if err != nil {
		return nil, err
	}
	tags, err := tagsOf(r.Context(), s.db, i.ID)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"tags": tags}), nil
}

func (s *Service) checkServerTag(r *http.Request) (*api.Response, error) {
	i, err := s.tagServer(r, "os_compute_api:os-server-tags:show")
	if err != nil {
		return nil, err
	}
	tags, err := tagsOf(r.Context(), s.db, i.ID)
	if err != nil {
		return nil, err
	}
	if !contains(tags, r.PathValue("tag")) {
		return nil, api.NotFound("Tag '%s' could not be found for instance %s.", r.PathValue("tag"), i.ID)
	}
	return api.NoContent(), nil
}

// tagsWritable refuses tag changes while the server is building or
// being deleted, as Nova does.
func tagsWritable(i instance, action string) error {
	if i.VMState == vmBuilding || i.task() == taskDeleting {
		return invalidState(action, i.ID, "vm_state", i.VMState)
	}
	return nil
}

func (s *Service) addServerTag(r *http.Request) (*api.Response, error) {
	i, err := s.tagServer(r, "os_compute_api:os-server-tags:update")
	if err != nil {
		return nil, err
	}
	if err := tagsWritable(i, "update tag"); err != nil {
		return nil, err
	}
	tag := r.PathValue("tag")
	if !tagPattern.MatchString(tag) {
		return nil, api.BadRequest("Invalid input for field/attribute tag. Value: %s.", tag)
	}
	created := false
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		tags, err := tagsOf(r.Context(), tx, i.ID)
		if err != nil {
			return err
		}
		if contains(tags, tag) {
			created = false
			return nil
		}
		if len(tags) >= 50 {
			return api.BadRequest("The number of tags exceeded the per-server limit 50")
		}
		created = true
		_, err = tx.Exec(r.Context(), `INSERT INTO compute_instance_tags (instance_id, tag) VALUES (?, ?)`, i.ID, tag)
		return err
	})
	if err != nil {
		return nil, err
	}
	loc := s.baseURL(r) + "/v2.1/servers/" + i.ID + "/tags/" + url.PathEscape(tag)
	if created {
		return (&api.Response{Status: http.StatusCreated}).WithHeader("Location", loc), nil
	}
	return api.NoContent().WithHeader("Location", loc), nil
}

func (s *Service) replaceServerTags(r *http.Request) (*api.Response, error) {
	var body struct {
		Tags []string `json:"tags"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Tags == nil {
		return nil, api.BadRequest("Invalid input for field/attribute tags. 'tags' is a required property")
	}
	if len(body.Tags) > 50 {
		return nil, api.BadRequest("Invalid input for field/attribute tags. is too long")
	}
	for _, t := range body.Tags {
		if !tagPattern.MatchString(t) {
			return nil, api.BadRequest("Invalid input for field/attribute tags. Value: %s.", t)
		}
	}
	i, err := s.tagServer(r, "os_compute_api:os-server-tags:update_all")
	if err != nil {
		return nil, err
	}
	if err := tagsWritable(i, "update tags"); err != nil {
		return nil, err
	}
	uniq := map[string]bool{}
	for _, t := range body.Tags {
		uniq[t] = true
	}
	tags := sortedKeys(uniq)
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		if _, err := tx.Exec(r.Context(), `DELETE FROM compute_instance_tags WHERE instance_id = ?`, i.ID); err != nil {
			return err
		}
		for _, t := range tags {
			if _, err := tx.Exec(r.Context(), `INSERT INTO compute_instance_tags (instance_id, tag) VALUES (?, ?)`, i.ID, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"tags": tags}), nil
}

func (s *Service) deleteServerTag(r *http.Request) (*api.Response, error) {
	i, err := s.tagServer(r, "os_compute_api:os-server-tags:delete")
	if err != nil {
		return nil, err
	}
	if err := tagsWritable(i, "delete tag"); err != nil {
		return nil, err
	}
	res, err := s.db.Exec(r.Context(), `DELETE FROM compute_instance_tags WHERE instance_id = ? AND tag = ?`, i.ID, r.PathValue("tag"))
	if err != nil {
		return nil, fmt.Errorf("delete tag: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, api.NotFound("Tag '%s' could not be found for instance %s.", r.PathValue("tag"), i.ID)
	}
	return api.NoContent(), nil
}

func (s *Service) deleteServerTags(r *http.Request) (*api.Response, error) {
	i, err := s.tagServer(r, "os_compute_api:os-server-tags:delete_all")
	if err != nil {
		return nil, err
	}
	if err := tagsWritable(i, "delete tags"); err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM compute_instance_tags WHERE instance_id = ?`, i.ID); err != nil {
		return nil, fmt.Errorf("delete tags: %w", err)
	}
	return api.NoContent(), nil
}

// IPs

func (s *Service) listServerIPs(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:ips:index")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"addresses": ipsView(fromJSON[map[string][]Address](i.Addresses))}), nil
}

func (s *Service) showServerIPs(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:ips:show")
	if err != nil {
		return nil, err
	}
	netName := r.PathValue("network")
	all := ipsView(fromJSON[map[string][]Address](i.Addresses))
	list, ok := all[netName]
	if !ok {
		return nil, api.NotFound("Instance is not a member of specified network")
	}
	return api.JSON(http.StatusOK, map[string]any{netName: list}), nil
}

// ipsView is the plain addresses view of /servers/{id}/ips.
func ipsView(in map[string][]Address) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, n := range sortedKeys(in) {
		list := []map[string]any{}
		for _, a := range in[n] {
			list = append(list, map[string]any{"addr": a.Addr, "version": a.Version})
		}
		sort.SliceStable(list, func(x, y int) bool { return fmt.Sprint(list[x]["addr"]) < fmt.Sprint(list[y]["addr"]) })
		out[n] = list
	}
	return out
}
