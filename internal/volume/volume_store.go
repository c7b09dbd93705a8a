package volume

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Volume statuses the API sets itself (agents report the others, see
// agentproto).
const (
	statusCreating  = "creating"
	statusAvailable = "available"
	statusAttaching = "attaching"
	statusInUse     = "in-use"
	statusDetaching = "detaching"
	statusDeleting  = "deleting"
	statusExtending = "extending"
	statusUploading = "uploading"
	statusError     = "error"
)

// volume is a row of volume_volumes.
type volume struct {
	ID, ProjectID, UserID string
	Name, Description     *string
	Status                string
	Size                  int
	Zone                  string
	Host, Backend, Pool   string
	TypeID                string
	Bootable, Multiattach bool
	// AdminMetadata is Cinder's volume admin metadata (readonly,
	// attached_mode), shown merged into metadata.
	AdminMetadata        map[string]string
	SnapshotID, SourceID *string
	ImageID              *string
	ImageMetadata        map[string]string // nil when not made from an image
	Metadata             map[string]string
	MigrationStatus      *string
	CreatedAt, UpdatedAt string
	Attachments          []attachment
}

// attachment is a row of volume_attachments.
type attachment struct {
	ID, VolumeID       string
	InstanceUUID       *string
	HostName           *string
	Mountpoint         *string
	Mode, AttachStatus string
	AttachedAt         string
	// Connector and ConnInfo are JSON text set by the attachments API
	// (3.27) once the attachment is connected; nil before, and for
	// attachments made by the legacy os-attach.
	Connector, ConnInfo *string
	CreatedAt           string
}

const volumeCols = `id, project_id, user_id, name, description, status, size, availability_zone, host, backend, pool, type_id,
	bootable, multiattach, admin_metadata, snapshot_id, source_volid, image_id, image_metadata, metadata, migration_status, created_at, updated_at`

func scanVolume(row store.Scanner) (*volume, error) {
	var v volume
	var boot, multi int
	var imgMeta *string
	var meta, adminMeta string
	err := row.Scan(&v.ID, &v.ProjectID, &v.UserID, &v.Name, &v.Description, &v.Status, &v.Size, &v.Zone, &v.Host, &v.Backend, &v.Pool,
		&v.TypeID, &boot, &multi, &adminMeta, &v.SnapshotID, &v.SourceID, &v.ImageID, &imgMeta, &meta, &v.MigrationStatus, &v.CreatedAt, &v.UpdatedAt)
	if err != nil {
		return nil, err
	}
	v.Bootable, v.Multiattach = boot == 1, multi == 1
	v.Metadata, v.AdminMetadata = map[string]string{}, map[string]string{}
	_ = json.Unmarshal([]byte(meta), &v.Metadata)
	_ = json.Unmarshal([]byte(adminMeta), &v.AdminMetadata)
	if imgMeta != nil {
		v.ImageMetadata = map[string]string{}
		_ = json.Unmarshal([]byte(*imgMeta), &v.ImageMetadata)
	}
	return &v, nil
}

func scanAttachment(row store.Scanner) (attachment, error) {
	var a attachment
	err := row.Scan(&a.ID, &a.VolumeID, &a.InstanceUUID, &a.HostName, &a.Mountpoint, &a.Mode, &a.AttachStatus, &a.AttachedAt,
		&a.Connector, &a.ConnInfo, &a.CreatedAt)
	return a, err
}

const attachmentCols = `id, volume_id, instance_uuid, host_name, mountpoint, attach_mode, attach_status, attached_at,
	connector, connection_info, created_at`

// loadVolume reads one volume with its attachments. Admins find any
// project's volume (Cinder's admin context); others only their own, and
// anything else, a malformed id included, is a 404.
func loadVolume(ctx context.Context, q store.Querier, c caller, id string) (*volume, error) {
	if !isUUID(id) {
		return nil, api.NotFound("Volume %s could not be found.", id)
	}
	v, err := store.QueryOne(ctx, q, scanVolume, `SELECT `+volumeCols+` FROM volume_volumes WHERE id = ?`, id)
	if err == store.ErrNotFound || (err == nil && !c.admin && v.ProjectID != c.project) {
		return nil, api.NotFound("Volume %s could not be found.", id)
	}
	if err != nil {
		return nil, fmt.Errorf("load volume %s: %w", id, err)
	}
	v.Attachments, err = store.QueryAll(ctx, q, scanAttachment, `SELECT `+attachmentCols+` FROM volume_attachments WHERE volume_id = ? ORDER BY created_at, id`, id)
	if err != nil {
		return nil, fmt.Errorf("load attachments of volume %s: %w", id, err)
	}
	return v, nil
}

// casStatus moves a volume from one of the statuses in from to to, in one
// conditional UPDATE, and reports whether it won: the loser of a race
// sees false and answers as if it had seen the new status.
func casStatus(ctx context.Context, q store.Querier, id, to string, from ...string) (bool, error) {
	query := `UPDATE volume_volumes SET status = ?, updated_at = ? WHERE id = ? AND status IN (` + placeholders(len(from)) + `)`
	args := []any{to, store.FormatTime(now()), id}
	for _, f := range from {
		args = append(args, f)
	}
	res, err := q.Exec(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("volume %s to %s: %w", id, to, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("volume %s to %s: %w", id, to, err)
	}
	return n == 1, nil
}

func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	b := make([]byte, 0, 2*n)
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '?')
	}
	return string(b)
}

func jsonText(m map[string]string) string {
	if m == nil {
		m = map[string]string{}
	}
	data, _ := json.Marshal(m)
	return string(data)
}

// hostString is Cinder's host@backend#pool for os-vol-host-attr:host.
func (v *volume) hostString() any {
	if v.Host == "" {
		return nil
	}
	return v.Host + "@" + v.Backend + "#" + v.Pool
}

// attachmentView is an entry of a volume's attachments[]; id is the
// volume's id, as Cinder's legacy view has it.
func (a attachment) view(volumeID string) map[string]any {
	return map[string]any{"server_id": a.InstanceUUID, "attachment_id": a.ID, "attached_at": timeOrNil(a.AttachedAt),
		"host_name": a.HostName, "volume_id": volumeID, "device": a.Mountpoint, "id": volumeID}
}

func strOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// view renders a volume. detail adds what Cinder shows on show and
// /detail but not on create and update; admin adds the host and the
// migration attributes.
func (s *Service) view(base string, v *volume, typeName string, detail, admin bool) map[string]any {
	atts := make([]any, 0, len(v.Attachments))
	for _, a := range v.Attachments {
		if a.AttachStatus == "attached" {
			atts = append(atts, a.view(v.ID))
		}
	}
	boot := "false"
	if v.Bootable {
		boot = "true"
	}
	meta := map[string]string{}
	for k, val := range v.Metadata {
		meta[k] = val
	}
	for k, val := range v.AdminMetadata {
		meta[k] = val
	}
	out := map[string]any{
		"id": v.ID, "name": v.Name, "description": v.Description, "status": v.Status, "size": v.Size,
		"availability_zone": v.Zone, "bootable": boot, "encrypted": false, "multiattach": v.Multiattach,
		"metadata": meta, "attachments": atts, "links": s.links(base, v.ProjectID, "volumes", v.ID),
		"created_at": isoMicro(parseTime(v.CreatedAt)), "updated_at": timeOrNil(v.UpdatedAt),
		"replication_status": nil, "consistencygroup_id": nil, "snapshot_id": v.SnapshotID, "source_volid": v.SourceID,
		"user_id": v.UserID, "volume_type": typeName, "migration_status": v.MigrationStatus, "group_id": nil,
	}
	if !detail {
		return out
	}
	out["os-vol-tenant-attr:tenant_id"] = v.ProjectID
	if v.ImageMetadata != nil {
		out["volume_image_metadata"] = v.ImageMetadata
	}
	if admin {
		out["os-vol-host-attr:host"] = v.hostString()
		out["os-vol-mig-status-attr:migstat"] = v.MigrationStatus
		out["os-vol-mig-status-attr:name_id"] = nil
	}
	return out
}

// links are a resource's self and bookmark links.
func (s *Service) links(base, project, collection, id string) []api.Link {
	return []api.Link{
		{Rel: "self", Href: base + "/v3/" + project + "/" + collection + "/" + id},
		{Rel: "bookmark", Href: base + "/" + project + "/" + collection + "/" + id},
	}
}

// stamp is the updated_at of a write.
func stamp() string { return store.FormatTime(now()) }

// readOnly reports whether the volume is flagged read-only
// (os-update_readonly_flag), which makes its attachments "ro".
func (v *volume) readOnly() bool { return v.AdminMetadata["readonly"] == "True" }
