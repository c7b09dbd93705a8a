package volume

import (
	"context"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// backedUp finishes a backup: the backup available (with its object
// count) or error, and the volume (or snapshot) back to the status it
// had. Both updates are conditional on the transient statuses, so a
// redelivered report changes nothing.
func (s *Service) backedUp(ctx context.Context, rep agentproto.Report) error {
	return s.writeTx(ctx, func(tx *store.Tx) error {
		b, err := store.QueryOne(ctx, tx, scanBackup, `SELECT `+backupCols+` FROM volume_backups WHERE id = ?`, rep.BackupID)
		if err == store.ErrNotFound {
			return nil
		}
		if err != nil {
			return fmt.Errorf("backup %s: %w", rep.BackupID, err)
		}
		if b.Status != statusCreating {
			return nil // applied before
		}
		status := statusAvailable
		var reason *string
		if rep.BackupStatus != agentproto.StatusAvailable {
			status = statusError
			f := rep.Fault
			reason = &f
		}
		if _, err := tx.Exec(ctx, `UPDATE volume_backups SET status = ?, fail_reason = ?, object_count = ?, updated_at = ? WHERE id = ? AND status = ?`,
			status, reason, rep.ObjectCount, stamp(), b.ID, statusCreating); err != nil {
			return fmt.Errorf("finish backup %s: %w", b.ID, err)
		}
		if b.SnapshotID != nil {
			_, err = tx.Exec(ctx, `UPDATE volume_snapshots SET status = ?, updated_at = ? WHERE id = ? AND status = ?`,
				statusAvailable, stamp(), *b.SnapshotID, statusBackingUp)
		} else {
			_, err = casStatus(ctx, tx, b.VolumeID, reportedOr(rep.Status, statusAvailable), statusBackingUp)
		}
		if err != nil {
			return fmt.Errorf("finish backup %s: %w", b.ID, err)
		}
		return nil
	})
}

// restored finishes a restore: the backup available again, and the
// volume available with the backed-up volume's metadata, bootable flag
// and image metadata, or error_restoring with the fault.
func (s *Service) restored(ctx context.Context, rep agentproto.Report) error {
	return s.writeTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE volume_backups SET status = ?, restore_volume_id = NULL, updated_at = ? WHERE id = ? AND status = ? AND restore_volume_id = ?`,
			statusAvailable, stamp(), rep.BackupID, statusRestoring, rep.VolumeID); err != nil {
			return fmt.Errorf("finish restore of backup %s: %w", rep.BackupID, err)
		}
		if rep.Status != agentproto.StatusAvailable {
			_, err := tx.Exec(ctx, `UPDATE volume_volumes SET status = ?, fault = ?, updated_at = ? WHERE id = ? AND status = ?`,
				statusErrorRestoring, rep.Fault, stamp(), rep.VolumeID, statusRestoringBackup)
			return err
		}
		v, err := loadVolume(ctx, tx, caller{admin: true}, rep.VolumeID)
		if err != nil || v.Status != statusRestoringBackup {
			return nil // gone, or applied before
		}
		var state volumeState
		b, err := store.QueryOne(ctx, tx, scanBackup, `SELECT `+backupCols+` FROM volume_backups WHERE id = ?`, rep.BackupID)
		if err == nil {
			state = b.VolumeState
		} else if err != store.ErrNotFound {
			return fmt.Errorf("backup %s: %w", rep.BackupID, err)
		}
		meta := map[string]string{}
		for k, val := range v.Metadata {
			meta[k] = val
		}
		for k, val := range state.Metadata {
			meta[k] = val
		}
		var imgMeta *string
		if state.ImageMetadata != nil {
			t := jsonText(state.ImageMetadata)
			imgMeta = &t
		}
		size := v.Size
		if rep.SizeGB > size {
			size = rep.SizeGB
		}
		_, err = tx.Exec(ctx, `UPDATE volume_volumes SET status = ?, metadata = ?, bootable = ?, image_metadata = ?, size = ?, updated_at = ? WHERE id = ? AND status = ?`,
			statusAvailable, jsonText(meta), boolInt(state.Bootable), imgMeta, size, stamp(), v.ID, statusRestoringBackup)
		return err
	})
}

// backupDeleted removes a backup whose objects are gone, or marks it
// error_deleting with the fault.
func (s *Service) backupDeleted(ctx context.Context, rep agentproto.Report) error {
	if rep.BackupStatus == agentproto.StatusDeleted {
		_, err := s.db.Exec(ctx, `DELETE FROM volume_backups WHERE id = ? AND status = ?`, rep.BackupID, statusDeleting)
		return err
	}
	_, err := s.db.Exec(ctx, `UPDATE volume_backups SET status = ?, fail_reason = ?, updated_at = ? WHERE id = ? AND status = ?`,
		agentproto.StatusErrorDeleting, rep.Fault, stamp(), rep.BackupID, statusDeleting)
	return err
}
