package compute

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Nova's vm_states.
const (
	vmActive    = "active"
	vmBuilding  = "building"
	vmPaused    = "paused"
	vmSuspended = "suspended"
	vmStopped   = "stopped"
	vmResized   = "resized"
	vmError     = "error"
	vmDeleted   = "deleted"
	vmRescued   = "rescued"
	// vmShelvedOffloaded is a shelved server no longer on any host.
	vmShelvedOffloaded = "shelved_offloaded"
)

// Nova's task_states used here.
const (
	taskScheduling       = "scheduling"
	taskSpawning         = "spawning"
	taskDeleting         = "deleting"
	taskRebooting        = "rebooting"
	taskRebootingHard    = "rebooting_hard"
	taskPowerOff         = "powering-off"
	taskPowerOn          = "powering-on"
	taskPausing          = "pausing"
	taskUnpausing        = "unpausing"
	taskSuspending       = "suspending"
	taskResuming         = "resuming"
	taskRebuilding       = "rebuilding"
	taskResizePrep       = "resize_prep"
	taskResizeFinish     = "resize_finish"
	taskResizeReverting  = "resize_reverting"
	taskResizeConfirming = "resize_confirming"
	taskSnapshot         = "image_snapshot"
	taskShelving         = "shelving"
	taskUnshelving       = "unshelving"
	taskRescuing         = "rescuing"
	taskUnrescuing       = "unrescuing"
	taskBackup           = "image_backup"
	// taskBlockDeviceMapping: placed, waiting for its volumes to be made
	// and connected before the build goes to the host.
	taskBlockDeviceMapping = "block_device_mapping"
)

// instance is a row of compute_instances.
type instance struct {
	ID             string
	Seq            int
	ProjectID      string
	UserID         string
	Name           string
	Description    *string
	Hostname       string
	ImageRef       string
	ImageProps     string
	FlavorID       string
	Flavor         string
	OldFlavor      *string
	NewFlavor      *string
	VCPUs          int
	MemoryMB       int
	RootGB         int
	VMState        string
	TaskState      *string
	PowerState     int
	Host           *string
	Node           *string
	OldHost        *string
	AZ             *string
	RequestedAZ    *string
	KeyName        *string
	KeyData        *string
	UserData       *string
	AccessIPv4     string
	AccessIPv6     string
	ConfigDrive    bool
	DiskConfig     string
	Locked         bool
	LockedBy       *string
	LockedReason   *string
	ReservationID  string
	LaunchIndex    int
	SecurityGroups string
	Networks       string
	Addresses      string
	Fault          *string
	ServerGroupID  *string
	Hints          string
	TriedHosts     string
	Attempts       int
	Progress       int
	LaunchedAt     *string
	TerminatedAt   *string
	CreatedAt      string
	UpdatedAt      string
	DeletedAt      *string
	Deleted        bool
}

const instanceCols = `id, seq, project_id, user_id, name, description, hostname, image_ref, image_props, flavor_id, flavor, old_flavor,
	new_flavor, vcpus, memory_mb, root_gb, vm_state, task_state, power_state, host, node, old_host, availability_zone, requested_az,
	key_name, key_data, user_data, access_ipv4, access_ipv6, config_drive, disk_config, locked, locked_by, locked_reason,
	reservation_id, launch_index, security_groups, networks, addresses, fault, server_group_id, hints, tried_hosts, attempts,
	progress, launched_at, terminated_at, created_at, updated_at, deleted_at, deleted`

func scanInstance(row store.Scanner) (instance, error) {
	var i instance
	var cd, locked, deleted int
	err := row.Scan(&i.ID, &i.Seq, &i.ProjectID, &i.UserID, &i.Name, &i.Description, &i.Hostname, &i.ImageRef, &i.ImageProps,
		&i.FlavorID, &i.Flavor, &i.OldFlavor, &i.NewFlavor, &i.VCPUs, &i.MemoryMB, &i.RootGB, &i.VMState, &i.TaskState,
		&i.PowerState, &i.Host, &i.Node, &i.OldHost, &i.AZ, &i.RequestedAZ, &i.KeyName, &i.KeyData, &i.UserData, &i.AccessIPv4,
		&i.AccessIPv6, &cd, &i.DiskConfig, &locked, &i.LockedBy, &i.LockedReason, &i.ReservationID, &i.LaunchIndex,
		&i.SecurityGroups, &i.Networks, &i.Addresses, &i.Fault, &i.ServerGroupID, &i.Hints, &i.TriedHosts, &i.Attempts,
		&i.Progress, &i.LaunchedAt, &i.TerminatedAt, &i.CreatedAt, &i.UpdatedAt, &i.DeletedAt, &deleted)
	i.ConfigDrive, i.Locked, i.Deleted = cd == 1, locked == 1, deleted == 1
	return i, err
}

func (i instance) task() string {
	if i.TaskState == nil {
		return ""
	}
	return *i.TaskState
}

func (i instance) host() string {
	if i.Host == nil {
		return ""
	}
	return *i.Host
}

func (i instance) flavorSpec() FlavorSpec { return fromJSON[FlavorSpec](i.Flavor) }

// instanceName is the hypervisor-side name, as Nova's instance_name_template.
func (i instance) instanceName() string { return fmt.Sprintf("instance-%08x", i.Seq) }

// hostID is Nova's opaque per-project host id: the same host looks the
// same to one project and different to another.
func hostID(project, host string) string {
	if host == "" {
		return ""
	}
	sum := sha256.Sum224([]byte(project + host))
	return hex.EncodeToString(sum[:])
}

// status derives a server's status from its states, as Nova's
// nova.api.openstack.common.status_from_state.
func status(vm, task string) string {
	switch vm {
	case vmBuilding:
		return "BUILD"
	case vmActive:
		switch task {
		case taskRebooting, "reboot_pending", "reboot_started":
			return "REBOOT"
		case taskRebootingHard, "reboot_pending_hard", "reboot_started_hard":
			return "HARD_REBOOT"
		case taskRebuilding, "rebuild_block_device_mapping", "rebuild_spawning":
			return "REBUILD"
		case taskResizePrep, "resize_migrating", "resize_migrated", taskResizeFinish:
			return "RESIZE"
		case "migrating":
			return "MIGRATING"
		case "updating_password":
			return "PASSWORD"
		}
		return "ACTIVE"
	case vmStopped:
		switch task {
		case taskResizePrep, "resize_migrating", "resize_migrated", taskResizeFinish:
			return "RESIZE"
		case taskRebuilding, "rebuild_block_device_mapping", "rebuild_spawning":
			return "REBUILD"
		}
		return "SHUTOFF"
	case vmResized:
		if task == taskResizeReverting {
			return "REVERT_RESIZE"
		}
		return "VERIFY_RESIZE"
	case vmPaused:
		return "PAUSED"
	case vmSuspended:
		return "SUSPENDED"
	case vmError:
		return "ERROR"
	case vmDeleted:
		return "DELETED"
	case "soft-delete":
		return "SOFT_DELETED"
	case "rescued":
		return "RESCUE"
	case "shelved":
		return "SHELVED"
	case "shelved_offloaded":
		return "SHELVED_OFFLOADED"
	}
	return "UNKNOWN"
}

// statusVMStates are the vm_states each status comes from (status above
// also looks at task_state), so a status filter can narrow rows in SQL
// before the exact status is checked. UNKNOWN is any other vm_state and
// has no entry.
var statusVMStates = map[string][]string{
	"BUILD": {vmBuilding}, "ACTIVE": {vmActive}, "REBOOT": {vmActive}, "HARD_REBOOT": {vmActive},
	"MIGRATING": {vmActive}, "PASSWORD": {vmActive}, "REBUILD": {vmActive, vmStopped}, "RESIZE": {vmActive, vmStopped},
	"SHUTOFF": {vmStopped}, "VERIFY_RESIZE": {vmResized}, "REVERT_RESIZE": {vmResized}, "PAUSED": {vmPaused},
	"SUSPENDED": {vmSuspended}, "ERROR": {vmError}, "DELETED": {vmDeleted}, "SOFT_DELETED": {"soft-delete"},
	"RESCUE": {vmRescued}, "SHELVED": {"shelved"}, "SHELVED_OFFLOADED": {vmShelvedOffloaded},
}

// vmStatesOf returns the vm_states the statuses can come from, or nil when
// one of them (UNKNOWN) cannot be narrowed that way.
func vmStatesOf(statuses []string) []string {
	var out []string
	for _, st := range statuses {
		vms, ok := statusVMStates[strings.ToUpper(st)]
		if !ok {
			return nil
		}
		out = append(out, vms...)
	}
	return out
}

// knownStatuses are the status filter values Nova accepts (2.38).
var knownStatuses = map[string]bool{
	"ACTIVE": true, "BUILD": true, "DELETED": true, "ERROR": true, "HARD_REBOOT": true, "MIGRATING": true, "PASSWORD": true,
	"PAUSED": true, "REBOOT": true, "REBUILD": true, "RESCUE": true, "RESIZE": true, "REVERT_RESIZE": true, "SHELVED": true,
	"SHELVED_OFFLOADED": true, "SHUTOFF": true, "SOFT_DELETED": true, "SUSPENDED": true, "UNKNOWN": true, "VERIFY_RESIZE": true,
}

// getInstance loads a live server the caller may see: another project's
// server is a 404, as if it did not exist.
func (s *Service) getInstance(ctx context.Context, q store.Querier, c caller, id string) (instance, error) {
	i, err := store.QueryOne(ctx, q, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE id = ? AND deleted = 0`, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !c.admin && i.ProjectID != c.project) {
		return i, api.NotFound("Instance %s could not be found.", id)
	}
	if err != nil {
		return i, fmt.Errorf("get server %s: %w", id, err)
	}
	return i, nil
}

// loadInstance loads any server row by id, deleted or not; for internal
// use by the report handler and the reconcile loop.
func loadInstance(ctx context.Context, q store.Querier, id string) (instance, error) {
	return store.QueryOne(ctx, q, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE id = ?`, id)
}

// metadataOf returns a server's metadata.
func metadataOf(ctx context.Context, q store.Querier, id string) (map[string]string, error) {
	rows, err := q.Query(ctx, `SELECT key, value FROM compute_instance_metadata WHERE instance_id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", id, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

func tagsOf(ctx context.Context, q store.Querier, id string) ([]string, error) {
	tags, err := store.QueryStrings(ctx, q, `SELECT tag FROM compute_instance_tags WHERE instance_id = ? ORDER BY tag`, id)
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", id, err)
	}
	if tags == nil {
		tags = []string{}
	}
	return tags, nil
}

// specOf is the instance as agents see it.
func (s *Service) specOf(ctx context.Context, q store.Querier, i instance) (InstanceSpec, error) {
	md, err := metadataOf(ctx, q, i.ID)
	if err != nil {
		return InstanceSpec{}, err
	}
	nets := fromJSON[networksField](i.Networks)
	spec := InstanceSpec{
		ID: i.ID, Name: i.Name, Hostname: i.Hostname, ProjectID: i.ProjectID, UserID: i.UserID, ImageID: i.ImageRef,
		ImageProperties: fromJSON[map[string]string](i.ImageProps), Flavor: i.flavorSpec(), Networks: nets.Mode,
		Requested: nets.Requested, SecurityGroups: fromJSON[[]string](i.SecurityGroups), Metadata: md,
		ConfigDrive: i.ConfigDrive, LaunchIndex: i.LaunchIndex,
	}
	if i.KeyName != nil {
		spec.KeyName = *i.KeyName
	}
	if i.KeyData != nil {
		spec.KeyData = *i.KeyData
	}
	if i.UserData != nil {
		spec.UserData = *i.UserData
	}
	if i.AZ != nil {
		spec.AvailabilityZone = *i.AZ
	}
	bdms, err := blockDevicesOf(ctx, q, i.ID)
	if err != nil {
		return InstanceSpec{}, err
	}
	for _, b := range bdms {
		// Only a connected volume is something an agent can plug; one
		// leaving (settle detach, release) stays until it is gone.
		if b.conn() != nil && b.Settle != settleDetach && b.Settle != settleUnattach && b.Settle != settleRelease {
			spec.Volumes = append(spec.Volumes, b.spec())
		}
	}
	return spec, nil
}

// networksField is how the requested networks are stored.
type networksField struct {
	Mode      string           `json:"mode,omitempty"` // auto, none or ""
	Requested []NetworkRequest `json:"requested,omitempty"`
	// CreatedPorts are ports the compute API created for interface
	// attachments; it deletes them on detach, and leaves ports the user
	// brought alone, as Nova does.
	CreatedPorts []string `json:"created_ports,omitempty"`
}

// sanitizeHostname derives a hostname from a display name as Nova does:
// lower case, anything but letters, digits and '-' becomes '-', at most
// 63 characters, "Server-<uuid>" when nothing is left.
func sanitizeHostname(name, id string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b.WriteRune(c)
		case c == ' ', c == '_', c == '.':
			b.WriteRune('-')
		}
	}
	h := strings.Trim(b.String(), "-.")
	if len(h) > 63 {
		h = strings.Trim(h[:63], "-.")
	}
	if h == "" {
		h = "Server-" + id
	}
	return h
}
