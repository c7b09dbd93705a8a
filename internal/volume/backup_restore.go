package volume

import (
	"fmt"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// restoreBackup writes a backup into a volume: the one named, which must
// be available and large enough, or a new one of the backup's size,
// placed by the scheduler. The backup is restoring and the volume
// restoring-backup until the agent reports; then the volume gets the
// source's metadata and bootable flag back, as Cinder's restore does.
func (s *Service) restoreBackup(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	var body struct {
		Restore *struct {
			VolumeID *string `json:"volume_id"`
			Name     *string `json:"name"`
		} `json:"restore"`
	}
	if err := api.DecodeJSONLoose(r, &body); err != nil {
		return nil, err
	}
	in := body.Restore
	if in == nil {
		return nil, api.BadRequest("Missing required element 'restore' in request body.")
	}
	if in.Name != nil && len(*in.Name) > 255 {
		return nil, api.BadRequest("Invalid input received: name is longer than 255 characters.")
	}
	var b *backup
	var v *volume
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if b, err = loadBackup(ctx, tx, c, r.PathValue("backup_id")); err != nil {
			return err
		}
		if err := s.authorize(r, "backup:restore", b.ProjectID); err != nil {
			return err
		}
		if b.Status != statusAvailable {
			return api.BadRequest("Invalid backup: Backup status must be available, but the current status is \"%s\".", b.Status)
		}
		if in.VolumeID != nil && *in.VolumeID != "" {
			if v, err = loadVolume(ctx, tx, c, *in.VolumeID); err != nil {
				return err
			}
			if v.Status != statusAvailable {
				return api.BadRequest("Invalid volume: Volume to be restored to must be available, but the current status is \"%s\".", v.Status)
			}
			if v.Size < b.Size {
				return api.BadRequest("Invalid volume: volume size %d is too small to restore backup of size %d.", v.Size, b.Size)
			}
			if v.Host == "" {
				return api.BadRequest("Invalid volume: Volume %s is on no storage host.", v.ID)
			}
			if won, err := casStatus(ctx, tx, v.ID, statusRestoringBackup, statusAvailable); err != nil {
				return err
			} else if !won {
				return store.ErrRetry
			}
		} else if v, err = s.newRestoreVolume(r, tx, c, b, in.Name); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `UPDATE volume_backups SET status = ?, restore_volume_id = ?, updated_at = ? WHERE id = ? AND status = ?`,
			statusRestoring, v.ID, stamp(), b.ID, statusAvailable)
		if err != nil {
			return fmt.Errorf("backup %s to restoring: %w", b.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return store.ErrRetry
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	cmd := agentproto.Command{ID: newID(), Op: agentproto.OpRestore, VolumeID: v.ID, SizeGB: v.Size, Backup: b.location(c.token)}
	if err := s.send(ctx, v.Host, cmd); err != nil {
		s.log.Error("send restore", "backup", b.ID, "volume", v.ID, "err", err)
		if err := s.HandleReport(ctx, agentproto.Report{Op: agentproto.OpRestore, VolumeID: v.ID, BackupID: b.ID,
			Status: agentproto.StatusErrorRestoring, Fault: err.Error()}); err != nil {
			return nil, err
		}
	}
	return api.JSON(http.StatusAccepted, map[string]any{"restore": map[string]any{
		"backup_id": b.ID, "volume_id": v.ID, "volume_name": strOr(v.Name)}}), nil
}

// newRestoreVolume makes the volume a restore without a target writes
// into: the backup's size, the default type, Cinder's name
// restore_backup_<id> unless one is given, on the host the scheduler
// picks in the backup's zone (or the default zone). It counts against
// the volume quotas like any new volume.
func (s *Service) newRestoreVolume(r *http.Request, tx *store.Tx, c caller, b *backup, name *string) (*volume, error) {
	ctx := r.Context()
	if err := s.authorize(r, "volume:create", c.project); err != nil {
		return nil, err
	}
	if name == nil {
		n := "restore_backup_" + b.ID
		name = &n
	}
	if err := s.checkQuota(ctx, tx, c.project, 1, 0, b.Size, b.Size); err != nil {
		return nil, err
	}
	vt, err := s.findType(ctx, tx, c, DefaultTypeName)
	if err != nil {
		return nil, err
	}
	h, err := s.pickHost(ctx, tx, b.Zone, b.Size)
	if err == nil && h == nil && b.Zone != s.cfg.DefaultAvailabilityZone {
		h, err = s.pickHost(ctx, tx, s.cfg.DefaultAvailabilityZone, b.Size)
	}
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, api.Errorf(http.StatusServiceUnavailable, "No valid backend was found: no storage host that is up has room for a volume of %dG.", b.Size)
	}
	t := stamp()
	v := &volume{ID: newID(), ProjectID: c.project, UserID: c.user, Name: name, Status: statusRestoringBackup, Size: b.Size,
		Zone: h.Zone, Host: h.Host, Backend: h.Backend, Pool: h.Pool, TypeID: vt.ID, CreatedAt: t, UpdatedAt: t}
	_, err = tx.Exec(ctx, `INSERT INTO volume_volumes (id, project_id, user_id, name, description, status, size, availability_zone, host, backend, pool,
		type_id, bootable, multiattach, admin_metadata, metadata, created_at, updated_at)
		VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, 0, 0, '{}', '{}', ?, ?)`,
		v.ID, v.ProjectID, v.UserID, v.Name, v.Status, v.Size, v.Zone, v.Host, v.Backend, v.Pool, v.TypeID, t, t)
	if err != nil {
		return nil, fmt.Errorf("insert volume for restore: %w", err)
	}
	return v, nil
}
