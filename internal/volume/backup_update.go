package volume

import (
	"fmt"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// updateBackup serves PUT /backups/{id} (3.9): a new name and/or
// description, answered with the backup's summary view, as Cinder does.
func (s *Service) updateBackup(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if _, err := loadBackup(ctx, s.db, c, r.PathValue("backup_id")); err != nil {
		return nil, err
	}
	var body struct {
		Backup *struct {
			Name        api.Optional[string] `json:"name"`
			Description api.Optional[string] `json:"description"`
		} `json:"backup"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Backup
	if in == nil {
		return nil, api.BadRequest("Missing required element 'backup' in request body.")
	}
	for field, o := range map[string]api.Optional[string]{"name": in.Name, "description": in.Description} {
		if o.Set && !o.Null && len(o.Value) > 255 {
			return nil, api.BadRequest("Invalid input received: %s is longer than 255 characters.", field)
		}
	}
	var b *backup
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if b, err = loadBackup(ctx, tx, c, r.PathValue("backup_id")); err != nil {
			return err
		}
		if err := s.authorize(r, "backup:update", b.ProjectID); err != nil {
			return err
		}
		set := func(o api.Optional[string], cur **string) {
			if !o.Set {
				return
			}
			*cur = nil
			if !o.Null {
				v := o.Value
				*cur = &v
			}
		}
		set(in.Name, &b.Name)
		set(in.Description, &b.Description)
		b.UpdatedAt = stamp()
		if _, err := tx.Exec(ctx, `UPDATE volume_backups SET name = ?, description = ?, updated_at = ? WHERE id = ?`,
			b.Name, b.Description, b.UpdatedAt, b.ID); err != nil {
			return fmt.Errorf("update backup %s: %w", b.ID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"backup": s.backupSummary(s.baseURL(r), b)}), nil
}
