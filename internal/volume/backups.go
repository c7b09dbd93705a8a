package volume

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// Backups are Cinder's: the storage host of the volume reads it in
// chunks and stores them as objects in the object storage (Swift API) of
// the backup's project, in the requested container, with the requester's
// token, as Cinder's Swift backup driver does with its default per-user
// auth. The database keeps the record and where its objects are.

// boolValue reads a boolean request field as Cinder does: a JSON bool or
// one of oslo's boolean strings.
func boolValue(field string, v any) (bool, error) {
	switch f := v.(type) {
	case nil:
		return false, nil
	case bool:
		return f, nil
	case string:
		switch strings.ToLower(f) {
		case "true", "1", "yes", "on", "t", "y":
			return true, nil
		case "false", "0", "no", "off", "f", "n":
			return false, nil
		}
	}
	return false, api.BadRequest("Invalid input received: %s must be a boolean, not %v.", field, v)
}

// validContainer accepts what Swift accepts as a container name.
func validContainer(name string) bool {
	return name != "" && len(name) <= 256 && !strings.Contains(name, "/")
}

// backupPrefix names a backup's objects as Cinder's Swift driver does,
// unique per backup: volume_<volume>/<UTC time>/az_<zone>_backup_<id>.
func backupPrefix(volumeID, zone, backupID string, t time.Time) string {
	return fmt.Sprintf("volume_%s/%s/az_%s_backup_%s", volumeID, t.UTC().Format("20060102150405"), zone, backupID)
}

func (s *Service) createBackup(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "backup:create", c.project); err != nil {
		return nil, err
	}
	var body struct {
		Backup *struct {
			VolumeID    *string           `json:"volume_id"`
			Container   *string           `json:"container"`
			Name        *string           `json:"name"`
			Description *string           `json:"description"`
			Incremental any               `json:"incremental"`
			Force       any               `json:"force"`
			SnapshotID  *string           `json:"snapshot_id"`
			Metadata    map[string]string `json:"metadata"`
		} `json:"backup"`
	}
	if err := api.DecodeJSONLoose(r, &body); err != nil {
		return nil, err
	}
	in := body.Backup
	if in == nil {
		return nil, api.BadRequest("Missing required element 'backup' in request body.")
	}
	if in.VolumeID == nil || *in.VolumeID == "" {
		return nil, api.BadRequest("Invalid input received: 'volume_id' is a required property.")
	}
	for field, p := range map[string]*string{"name": in.Name, "description": in.Description} {
		if p != nil && len(*p) > 255 {
			return nil, api.BadRequest("Invalid input received: %s is longer than 255 characters.", field)
		}
	}
	incremental, err := boolValue("incremental", in.Incremental)
	if err != nil {
		return nil, err
	}
	force, err := boolValue("force", in.Force)
	if err != nil {
		return nil, err
	}
	container := ""
	if in.Container != nil {
		container = *in.Container
		if !validContainer(container) {
			return nil, api.BadRequest("Invalid input received: container %q is not a valid container name.", container)
		}
	}
	t := now()
	b := &backup{ID: newID(), ProjectID: c.project, UserID: c.user, Name: in.Name, Description: in.Description, Status: statusCreating,
		Account: swiftAccountPrefix + c.project, CreatedAt: store.FormatTime(t), UpdatedAt: store.FormatTime(t), DataTimestamp: store.FormatTime(t)}
	var v *volume
	var parentPrefix string
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if v, err = loadVolume(ctx, tx, c, *in.VolumeID); err != nil {
			return err
		}
		b.VolumeID, b.Size, b.Zone, b.Host = v.ID, v.Size, v.Zone, v.Host
		b.VolumeState = volumeState{Metadata: v.Metadata, Bootable: v.Bootable, ImageMetadata: v.ImageMetadata}
		if in.SnapshotID != nil && *in.SnapshotID != "" {
			sn, err := s.loadSnapshot(ctx, tx, c, *in.SnapshotID)
			if err != nil {
				return err
			}
			if sn.VolumeID != v.ID {
				return api.BadRequest("Invalid snapshot: Snapshot %s is not a snapshot of volume %s.", sn.ID, v.ID)
			}
			if sn.Status != statusAvailable {
				return api.BadRequest("Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"%s\".", sn.Status)
			}
			b.SnapshotID, b.DataTimestamp = &sn.ID, sn.CreatedAt
		} else {
			switch {
			case v.Status == statusInUse && !force:
				return api.BadRequest("Invalid volume: Backing up an in-use volume must use the force flag.")
			case v.Status != statusAvailable && v.Status != statusInUse:
				return api.BadRequest("Invalid volume: Volume to be backed up must be available or in-use, but the current status is \"%s\".", v.Status)
			}
		}
		if v.Host == "" {
			return api.BadRequest("Invalid volume: Volume %s is on no storage host.", v.ID)
		}
		if incremental {
			parent, err := store.QueryOne(ctx, tx, scanBackup, `SELECT `+backupCols+` FROM volume_backups
				WHERE volume_id = ? AND project_id = ? AND status = ? ORDER BY data_timestamp DESC, created_at DESC LIMIT 1`, v.ID, c.project, statusAvailable)
			if err == store.ErrNotFound {
				return api.BadRequest("Invalid backup: No backups available to do an incremental backup.")
			}
			if err != nil {
				return fmt.Errorf("parent backup of %s: %w", v.ID, err)
			}
			if container != "" && container != parent.Container {
				return api.BadRequest("Invalid backup: An incremental backup must be in the container of its parent, %s.", parent.Container)
			}
			container, parentPrefix = parent.Container, parent.Prefix
			b.ParentID = &parent.ID
		}
		if container == "" {
			container = DefaultBackupContainer
		}
		b.Container, b.Prefix = container, backupPrefix(v.ID, v.Zone, b.ID, t)
		if err := s.checkBackupQuota(ctx, tx, c.project, 1, b.Size); err != nil {
			return err
		}
		if b.SnapshotID != nil {
			res, err := tx.Exec(ctx, `UPDATE volume_snapshots SET status = ?, updated_at = ? WHERE id = ? AND status = ?`, statusBackingUp, stamp(), *b.SnapshotID, statusAvailable)
			if err != nil {
				return fmt.Errorf("snapshot %s to backing-up: %w", *b.SnapshotID, err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return store.ErrRetry
			}
		} else if won, err := casStatus(ctx, tx, v.ID, statusBackingUp, v.Status); err != nil {
			return err
		} else if !won {
			return store.ErrRetry
		}
		return insertBackup(ctx, tx, b)
	})
	if err != nil {
		return nil, err
	}
	cmd := agentproto.Command{ID: newID(), Op: agentproto.OpBackup, VolumeID: v.ID, ReturnStatus: v.Status, SizeGB: v.Size,
		Backup: b.location(c.token)}
	cmd.Backup.ParentPrefix = parentPrefix
	if b.SnapshotID != nil {
		cmd.SnapshotID, cmd.ReturnStatus = *b.SnapshotID, statusAvailable
	}
	if err := s.send(ctx, v.Host, cmd); err != nil {
		s.log.Error("send backup", "backup", b.ID, "err", err)
		if err := s.HandleReport(ctx, agentproto.Report{Op: agentproto.OpBackup, VolumeID: v.ID, SnapshotID: cmd.SnapshotID, BackupID: b.ID,
			Status: cmd.ReturnStatus, BackupStatus: agentproto.StatusError, Fault: err.Error()}); err != nil {
			return nil, err
		}
	}
	return api.JSON(http.StatusAccepted, map[string]any{"backup": s.backupSummary(s.baseURL(r), b)}), nil
}

func (s *Service) showBackup(r *http.Request) (*api.Response, error) {
	b, err := loadBackup(r.Context(), s.db, s.caller(r), r.PathValue("backup_id"))
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "backup:get", b.ProjectID); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"backup": s.backupView(s.baseURL(r), b)}), nil
}

var backupSortKeys = map[string]string{
	"id": "id", "name": "name", "display_name": "name", "status": "status", "size": "size", "created_at": "created_at",
	"updated_at": "updated_at", "volume_id": "volume_id", "project_id": "project_id", "container": "container",
	"data_timestamp": "data_timestamp",
}

func backupSortValue(b *backup, key string) string {
	switch key {
	case "id":
		return b.ID
	case "name":
		return strOr(b.Name)
	case "status":
		return b.Status
	case "size":
		return fmt.Sprintf("%012d", b.Size)
	case "created_at":
		return b.CreatedAt
	case "updated_at":
		return b.UpdatedAt
	case "volume_id":
		return b.VolumeID
	case "project_id":
		return b.ProjectID
	case "container":
		return b.Container
	case "data_timestamp":
		return b.DataTimestamp
	}
	return ""
}

func (s *Service) listBackups(r *http.Request) (*api.Response, error) { return s.backupList(r, false) }

func (s *Service) listBackupsDetail(r *http.Request) (*api.Response, error) {
	return s.backupList(r, true)
}

// backupList serves both lists, with Cinder's filters (name, status,
// volume_id; all_tenants for admins), sorting and marker pagination.
func (s *Service) backupList(r *http.Request, detail bool) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "backup:get_all", c.project); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	sorts, page, err := listParams(q, backupSortKeys)
	if err != nil {
		return nil, err
	}
	where := []string{"1 = 1"}
	var args []any
	if !(c.admin && isTrue(q.Get("all_tenants"))) {
		where, args = append(where, "project_id = ?"), append(args, c.project)
	}
	where, args = equalFilters(where, args, q, [][2]string{{"name", "name"}, {"display_name", "name"}, {"status", "status"}, {"volume_id", "volume_id"}})
	rows, err := store.QueryAll(ctx, s.db, scanBackup, `SELECT `+backupCols+` FROM volume_backups WHERE `+strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	pageRows, full, err := sortedPage(rows, sorts, page, backupSortValue, func(b *backup) string { return b.ID })
	if err != nil {
		return nil, err
	}
	base := s.baseURL(r)
	out := make([]any, 0, len(pageRows))
	for _, b := range pageRows {
		if detail {
			out = append(out, s.backupView(base, b))
		} else {
			out = append(out, s.backupSummary(base, b))
		}
	}
	body := map[string]any{"backups": out}
	if full {
		body["backups_links"] = nextLink(base, r, pageRows[len(pageRows)-1].ID, page.limit)
	}
	return api.JSON(http.StatusOK, body), nil
}

func (s *Service) deleteBackup(r *http.Request) (*api.Response, error) {
	return s.deleteBackupAs(r, false)
}

// backupDeletable are the statuses a backup may be deleted from.
var backupDeletable = []string{statusAvailable, statusError}

// deleteBackupAs deletes a backup; force (os-force_delete) skips the
// status check. Objects shared with another record (after an
// import_record) stay for that one: only the row goes.
func (s *Service) deleteBackupAs(r *http.Request, force bool) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	var b *backup
	shared := 0
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if b, err = loadBackup(ctx, tx, c, r.PathValue("backup_id")); err != nil {
			return err
		}
		if err := s.authorize(r, "backup:delete", b.ProjectID); err != nil {
			return err
		}
		if !force && !containsStr(backupDeletable, b.Status) {
			return api.BadRequest("Invalid backup: Backup status must be available or error.")
		}
		if b.Dependents > 0 {
			return api.BadRequest("Invalid backup: Incremental backups exist for this backup.")
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM volume_backups WHERE account = ? AND container = ? AND prefix = ? AND id <> ?`,
			b.Account, b.Container, b.Prefix, b.ID).Scan(&shared); err != nil {
			return fmt.Errorf("backups sharing %s: %w", b.ID, err)
		}
		if shared > 0 || b.Host == "" {
			_, err := tx.Exec(ctx, `DELETE FROM volume_backups WHERE id = ?`, b.ID)
			return err
		}
		won, err := casBackup(ctx, tx, b.ID, statusDeleting, b.Status)
		if err == nil && !won {
			return store.ErrRetry
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if shared > 0 || b.Host == "" {
		return accepted(), nil
	}
	host, err := s.backupHost(ctx, b.Host)
	if err != nil {
		return nil, err
	}
	// A command that cannot be sent leaves the backup deleting, for an
	// admin to force-delete again.
	if err := s.send(ctx, host, agentproto.Command{ID: newID(), Op: agentproto.OpDeleteBackup, VolumeID: b.VolumeID, Backup: b.location(c.token)}); err != nil {
		return nil, fmt.Errorf("delete backup %s: %w", b.ID, err)
	}
	return accepted(), nil
}

// backupHost chooses the storage host that works on a backup's objects
// (any host reaches object storage): the preferred one while it is up,
// else any host that is, else the preferred one, whose durable queue
// keeps the command until it returns.
func (s *Service) backupHost(ctx context.Context, preferred string) (string, error) {
	if h, err := s.loadHost(ctx, s.db, preferred); err != nil {
		return "", err
	} else if h != nil && s.up(h) {
		return preferred, nil
	}
	hosts, err := store.QueryAll(ctx, s.db, scanHost, `SELECT `+hostCols+` FROM volume_services WHERE disabled = 0 ORDER BY host`)
	if err != nil {
		return "", fmt.Errorf("list storage hosts: %w", err)
	}
	for _, h := range hosts {
		if s.up(h) {
			return h.Host, nil
		}
	}
	return preferred, nil
}
