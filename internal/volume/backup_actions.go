package volume

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// backupAction serves the admin backup actions os-reset_status and
// os-force_delete.
func (s *Service) backupAction(r *http.Request) (*api.Response, error) {
	var body map[string]json.RawMessage
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if len(body) != 1 {
		return nil, api.BadRequest("There is either no action or more than one action in the request body.")
	}
	c := s.caller(r)
	for name, raw := range body {
		switch name {
		case "os-reset_status":
			if err := s.authorize(r, "volume_extension:backup_admin_actions:reset_status", c.project); err != nil {
				return nil, err
			}
			var a struct {
				Status string `json:"status"`
			}
			if err := api.DecodeBytes(raw, &a, false); err != nil {
				return nil, err
			}
			// Cinder lets an admin reset a backup to these only.
			if a.Status != statusAvailable && a.Status != statusError {
				return nil, api.BadRequest("Invalid input received: Backup status %q is not available or error.", a.Status)
			}
			b, err := loadBackup(r.Context(), s.db, c, r.PathValue("backup_id"))
			if err != nil {
				return nil, err
			}
			if _, err := s.db.Exec(r.Context(), `UPDATE volume_backups SET status = ?, updated_at = ? WHERE id = ?`, a.Status, stamp(), b.ID); err != nil {
				return nil, fmt.Errorf("reset backup status: %w", err)
			}
			return accepted(), nil
		case "os-force_delete":
			if err := s.authorize(r, "volume_extension:backup_admin_actions:force_delete", c.project); err != nil {
				return nil, err
			}
			return s.deleteBackupAs(r, true)
		}
		return nil, api.BadRequest("Invalid action %s.", name)
	}
	return nil, nil
}

// backupRecord is what export_record encodes in backup_url (base64 of
// this JSON, as Cinder encodes its backup row): enough to recreate the
// backup's row after the database lost it, pointing at the same objects.
type backupRecord struct {
	ID            string      `json:"id"`
	ProjectID     string      `json:"project_id"`
	UserID        string      `json:"user_id"`
	VolumeID      string      `json:"volume_id"`
	SnapshotID    *string     `json:"snapshot_id"`
	ParentID      *string     `json:"parent_id"`
	Name          *string     `json:"display_name"`
	Description   *string     `json:"display_description"`
	Size          int         `json:"size"`
	ObjectCount   int         `json:"object_count"`
	Zone          string      `json:"availability_zone"`
	Host          string      `json:"host"`
	Account       string      `json:"account"`
	Container     string      `json:"container"`
	Prefix        string      `json:"service_metadata"`
	VolumeState   volumeState `json:"volume_state"`
	DataTimestamp string      `json:"data_timestamp"`
	CreatedAt     string      `json:"created_at"`
}

func (s *Service) exportBackup(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	b, err := loadBackup(r.Context(), s.db, c, r.PathValue("backup_id"))
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "backup:export-import", b.ProjectID); err != nil {
		return nil, err
	}
	if b.Status != statusAvailable {
		return nil, api.BadRequest("Invalid backup: Backup status must be available and not %s.", b.Status)
	}
	rec := backupRecord{ID: b.ID, ProjectID: b.ProjectID, UserID: b.UserID, VolumeID: b.VolumeID, SnapshotID: b.SnapshotID, ParentID: b.ParentID,
		Name: b.Name, Description: b.Description, Size: b.Size, ObjectCount: b.ObjectCount, Zone: b.Zone, Host: b.Host,
		Account: b.Account, Container: b.Container, Prefix: b.Prefix, VolumeState: b.VolumeState, DataTimestamp: b.DataTimestamp, CreatedAt: b.CreatedAt}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("export backup %s: %w", b.ID, err)
	}
	return api.JSON(http.StatusOK, map[string]any{"backup-record": map[string]any{
		"backup_service": backupService, "backup_url": base64.StdEncoding.EncodeToString(data)}}), nil
}

// importBackup recreates a backup from an exported record, in the
// caller's project, available at once: its objects are where the record
// says. An id that exists is refused, as Cinder refuses it.
func (s *Service) importBackup(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "backup:export-import", c.project); err != nil {
		return nil, err
	}
	var body struct {
		Record *struct {
			Service *string `json:"backup_service"`
			URL     *string `json:"backup_url"`
		} `json:"backup-record"`
	}
	if err := api.DecodeJSONLoose(r, &body); err != nil {
		return nil, err
	}
	in := body.Record
	if in == nil {
		return nil, api.BadRequest("Missing required element 'backup-record' in request body.")
	}
	if in.Service == nil || *in.Service == "" || in.URL == nil || *in.URL == "" {
		return nil, api.BadRequest("Invalid input received: backup_service and backup_url are required.")
	}
	if *in.Service != backupService {
		return nil, api.BadRequest("Invalid input received: Backup service %s is not supported; this cloud's is %s.", *in.Service, backupService)
	}
	data, err := base64.StdEncoding.DecodeString(*in.URL)
	if err != nil {
		return nil, api.BadRequest("Invalid input received: backup_url is not base64: %v.", err)
	}
	var rec backupRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, api.BadRequest("Invalid input received: backup_url does not hold a backup record: %v.", err)
	}
	switch {
	case !isUUID(rec.ID) || !isUUID(rec.VolumeID):
		return nil, api.BadRequest("Invalid input received: the backup record's id and volume_id must be UUIDs.")
	case !strings.HasPrefix(rec.Account, swiftAccountPrefix) || len(rec.Account) == len(swiftAccountPrefix) || !validContainer(rec.Container) || rec.Prefix == "":
		return nil, api.BadRequest("Invalid input received: the backup record does not say where its objects are.")
	case rec.Size < 1:
		return nil, api.BadRequest("Invalid input received: the backup record's size must be at least 1.")
	}
	t := stamp()
	b := &backup{ID: rec.ID, ProjectID: c.project, UserID: c.user, VolumeID: rec.VolumeID, SnapshotID: rec.SnapshotID, ParentID: rec.ParentID,
		Name: rec.Name, Description: rec.Description, Status: statusAvailable, Size: rec.Size, ObjectCount: rec.ObjectCount, Zone: rec.Zone,
		Host: rec.Host, Account: rec.Account, Container: rec.Container, Prefix: rec.Prefix, VolumeState: rec.VolumeState,
		DataTimestamp: rec.DataTimestamp, CreatedAt: t, UpdatedAt: t}
	if b.Zone == "" {
		b.Zone = s.cfg.DefaultAvailabilityZone
	}
	if _, err := store.ParseTime(b.DataTimestamp); err != nil || b.DataTimestamp == "" {
		b.DataTimestamp = t
	}
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM volume_backups WHERE id = ?`, b.ID).Scan(&n); err != nil {
			return fmt.Errorf("import backup %s: %w", b.ID, err)
		}
		if n > 0 {
			return api.BadRequest("Invalid backup: Backup %s already exists in database.", b.ID)
		}
		if err := s.checkBackupQuota(ctx, tx, c.project, 1, b.Size); err != nil {
			return err
		}
		return insertBackup(ctx, tx, b)
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, map[string]any{"backup": s.backupSummary(s.baseURL(r), b)}), nil
}
