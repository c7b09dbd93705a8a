package volume

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// Backup statuses (Cinder's), and the volume statuses a backup or a
// restore puts a volume in meanwhile.
const (
	statusRestoring       = "restoring"
	statusBackingUp       = "backing-up"
	statusRestoringBackup = "restoring-backup"
	statusErrorRestoring  = "error_restoring"
)

// DefaultBackupContainer is the container of a backup that names none,
// Cinder's backup_swift_container default.
const DefaultBackupContainer = "volumebackups"

// swiftAccountPrefix makes a project's Swift account name; it is the
// object proxy's reseller prefix, Swift's default.
const swiftAccountPrefix = "AUTH_"

// backupService is the backup_service of exported backup records: the
// driver Cinder would name for backups in Swift, which Tempest expects
// under cinder.backup.drivers.
const backupService = "cinder.backup.drivers.swift.SwiftBackupDriver"

// backup is a row of volume_backups.
type backup struct {
	ID, ProjectID, UserID, VolumeID string
	SnapshotID, ParentID            *string
	Name, Description               *string
	Status                          string
	FailReason                      *string
	Size, ObjectCount               int
	Zone, Host                      string
	// Account, Container and Prefix locate the objects.
	Account, Container, Prefix string
	// VolumeState is what a restore gives a volume back.
	VolumeState     volumeState
	RestoreVolumeID *string
	DataTimestamp   string
	CreatedAt       string
	UpdatedAt       string
	// Dependents counts the incremental backups made on this one.
	Dependents int
}

// volumeState is the part of a volume a backup keeps besides its bytes,
// as Cinder's backup metadata does: a restored volume gets the source's
// metadata, bootable flag and image metadata.
type volumeState struct {
	Metadata      map[string]string `json:"metadata,omitempty"`
	Bootable      bool              `json:"bootable,omitempty"`
	ImageMetadata map[string]string `json:"image_metadata,omitempty"`
}

const backupCols = `id, project_id, user_id, volume_id, snapshot_id, parent_id, name, description, status, fail_reason, size, object_count,
	availability_zone, host, account, container, prefix, volume_state, restore_volume_id, data_timestamp, created_at, updated_at,
	(SELECT COUNT(*) FROM volume_backups d WHERE d.parent_id = volume_backups.id)`

func scanBackup(row store.Scanner) (*backup, error) {
	var b backup
	var state string
	err := row.Scan(&b.ID, &b.ProjectID, &b.UserID, &b.VolumeID, &b.SnapshotID, &b.ParentID, &b.Name, &b.Description, &b.Status, &b.FailReason,
		&b.Size, &b.ObjectCount, &b.Zone, &b.Host, &b.Account, &b.Container, &b.Prefix, &state, &b.RestoreVolumeID, &b.DataTimestamp,
		&b.CreatedAt, &b.UpdatedAt, &b.Dependents)
	if err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(state), &b.VolumeState)
	return &b, nil
}

func (st volumeState) text() string {
	data, _ := json.Marshal(st)
	return string(data)
}

// loadBackup reads a backup the caller may see; anything else is 404.
func loadBackup(ctx context.Context, q store.Querier, c caller, id string) (*backup, error) {
	if !isUUID(id) {
		return nil, api.NotFound("Backup %s could not be found.", id)
	}
	b, err := store.QueryOne(ctx, q, scanBackup, `SELECT `+backupCols+` FROM volume_backups WHERE id = ?`, id)
	if err == store.ErrNotFound || (err == nil && !c.admin && b.ProjectID != c.project) {
		return nil, api.NotFound("Backup %s could not be found.", id)
	}
	if err != nil {
		return nil, fmt.Errorf("load backup %s: %w", id, err)
	}
	return b, nil
}

// insertBackup writes a new backup row.
func insertBackup(ctx context.Context, tx *store.Tx, b *backup) error {
	_, err := tx.Exec(ctx, `INSERT INTO volume_backups (id, project_id, user_id, volume_id, snapshot_id, parent_id, name, description, status,
		size, object_count, availability_zone, host, account, container, prefix, volume_state, data_timestamp, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.ProjectID, b.UserID, b.VolumeID, b.SnapshotID, b.ParentID, b.Name, b.Description, b.Status,
		b.Size, b.ObjectCount, b.Zone, b.Host, b.Account, b.Container, b.Prefix, b.VolumeState.text(), b.DataTimestamp, b.CreatedAt, b.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert backup %s: %w", b.ID, err)
	}
	return nil
}

// casBackup moves a backup from one of the statuses in from to to and
// reports whether it won the race.
func casBackup(ctx context.Context, q store.Querier, id, to string, from ...string) (bool, error) {
	args := []any{to, stamp(), id}
	for _, f := range from {
		args = append(args, f)
	}
	res, err := q.Exec(ctx, `UPDATE volume_backups SET status = ?, updated_at = ? WHERE id = ? AND status IN (`+placeholders(len(from))+`)`, args...)
	if err != nil {
		return false, fmt.Errorf("backup %s to %s: %w", id, to, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("backup %s to %s: %w", id, to, err)
	}
	return n == 1, nil
}

// location is where the agent finds the backup's objects.
func (b *backup) location(token string) *agentproto.Backup {
	return &agentproto.Backup{ID: b.ID, Account: b.Account, Container: b.Container, Prefix: b.Prefix, Token: token}
}

// summary is the body of create, import and the plain list.
func (s *Service) backupSummary(base string, b *backup) map[string]any {
	return map[string]any{"id": b.ID, "name": b.Name, "links": s.links(base, b.ProjectID, "backups", b.ID)}
}

// backupView is a backup as show and /backups/detail render it at 3.0.
func (s *Service) backupView(base string, b *backup) map[string]any {
	out := s.backupSummary(base, b)
	out["status"] = b.Status
	out["size"] = b.Size
	out["object_count"] = b.ObjectCount
	out["availability_zone"] = b.Zone
	out["container"] = b.Container
	out["description"] = b.Description
	out["fail_reason"] = b.FailReason
	out["volume_id"] = b.VolumeID
	out["snapshot_id"] = b.SnapshotID
	out["is_incremental"] = b.ParentID != nil
	out["has_dependent_backups"] = b.Dependents > 0
	out["created_at"] = isoMicro(parseTime(b.CreatedAt))
	out["updated_at"] = timeOrNil(b.UpdatedAt)
	out["data_timestamp"] = isoMicro(parseTime(b.DataTimestamp))
	return out
}
