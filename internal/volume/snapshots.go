package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// snapshot is a row of volume_snapshots.
type snapshot struct {
	ID, ProjectID, UserID, VolumeID string
	Name, Description               *string
	Status                          string
	Size                            int
	Host                            string
	Metadata                        map[string]string
	Progress                        string
	CreatedAt, UpdatedAt            string
}

const snapshotCols = `id, project_id, user_id, volume_id, name, description, status, size, host, metadata, progress, created_at, updated_at`

func scanSnapshot(row store.Scanner) (*snapshot, error) {
	var sn snapshot
	var meta string
	if err := row.Scan(&sn.ID, &sn.ProjectID, &sn.UserID, &sn.VolumeID, &sn.Name, &sn.Description, &sn.Status, &sn.Size, &sn.Host, &meta, &sn.Progress, &sn.CreatedAt, &sn.UpdatedAt); err != nil {
		return nil, err
	}
	sn.Metadata = map[string]string{}
	_ = json.Unmarshal([]byte(meta), &sn.Metadata)
	return &sn, nil
}

// loadSnapshot reads a snapshot the caller may see; anything else is 404.
func (s *Service) loadSnapshot(ctx context.Context, q store.Querier, c caller, id string) (*snapshot, error) {
	if !isUUID(id) {
		return nil, api.NotFound("Snapshot %s could not be found.", id)
	}
	sn, err := store.QueryOne(ctx, q, scanSnapshot, `SELECT `+snapshotCols+` FROM volume_snapshots WHERE id = ?`, id)
	if err == store.ErrNotFound || (err == nil && !c.admin && sn.ProjectID != c.project) {
		return nil, api.NotFound("Snapshot %s could not be found.", id)
	}
	if err != nil {
		return nil, fmt.Errorf("load snapshot %s: %w", id, err)
	}
	return sn, nil
}

func (sn *snapshot) view(detail bool) map[string]any {
	meta := map[string]string{}
	for k, v := range sn.Metadata {
		meta[k] = v
	}
	out := map[string]any{"id": sn.ID, "name": sn.Name, "description": sn.Description, "status": sn.Status, "size": sn.Size,
		"volume_id": sn.VolumeID, "metadata": meta, "created_at": isoMicro(parseTime(sn.CreatedAt)), "updated_at": timeOrNil(sn.UpdatedAt)}
	if detail {
		out["os-extended-snapshot-attributes:progress"] = sn.Progress
		out["os-extended-snapshot-attributes:project_id"] = sn.ProjectID
	}
	return out
}

func (s *Service) createSnapshot(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "volume:create_snapshot", c.project); err != nil {
		return nil, err
	}
	var body struct {
		Snapshot *struct {
			VolumeID           *string           `json:"volume_id"`
			Name               *string           `json:"name"`
			DisplayName        *string           `json:"display_name"`
			Description        *string           `json:"description"`
			DisplayDescription *string           `json:"display_description"`
			Metadata           map[string]string `json:"metadata"`
			Force              any               `json:"force"`
		} `json:"snapshot"`
	}
	if err := api.DecodeJSONLoose(r, &body); err != nil {
		return nil, err
	}
	b := body.Snapshot
	if b == nil {
		return nil, api.BadRequest("Missing required element 'snapshot' in request body.")
	}
	if b.VolumeID == nil {
		return nil, api.NotFound("Volume could not be found: volume_id is missing.")
	}
	if err := checkMetadata(b.Metadata); err != nil {
		return nil, err
	}
	force := false
	switch f := b.Force.(type) {
	case nil:
	case bool:
		force = f
	case string:
		switch strings.ToLower(f) {
		case "true", "1", "yes", "on", "t", "y":
			force = true
		case "false", "0", "no", "off", "f", "n":
		default:
			return nil, api.BadRequest("Invalid input received: force must be a boolean, not %q.", f)
		}
	default:
		return nil, api.BadRequest("Invalid input received: force must be a boolean.")
	}
	sn := &snapshot{ID: newID(), ProjectID: c.project, UserID: c.user, Name: pick(b.Name, b.DisplayName),
		Description: pick(b.Description, b.DisplayDescription), Status: statusCreating, Metadata: b.Metadata}
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		v, err := loadVolume(ctx, tx, c, *b.VolumeID)
		if err != nil {
			return err
		}
		if v.Status != statusAvailable && !(force && v.Status == statusInUse) {
			return api.BadRequest("Invalid volume: Volume %s status must be available, but current status is: %s.", v.ID, v.Status)
		}
		if err := s.checkQuota(ctx, tx, c.project, 0, 1, v.Size, 0); err != nil {
			return err
		}
		sn.VolumeID, sn.Size, sn.Host = v.ID, v.Size, v.Host
		t := stamp()
		sn.CreatedAt, sn.UpdatedAt = t, t
		_, err = tx.Exec(ctx, `INSERT INTO volume_snapshots (id, project_id, user_id, volume_id, name, description, status, size, host, metadata, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, sn.ID, sn.ProjectID, sn.UserID, sn.VolumeID, sn.Name, sn.Description, sn.Status, sn.Size, sn.Host, jsonText(sn.Metadata), t, t)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.send(ctx, sn.Host, agentproto.Command{ID: newID(), Op: agentproto.OpSnapshot, VolumeID: sn.VolumeID, SnapshotID: sn.ID, SizeGB: sn.Size}); err != nil {
		s.log.Error("send snapshot", "snapshot", sn.ID, "err", err)
		if _, err := s.db.Exec(ctx, `UPDATE volume_snapshots SET status = ? WHERE id = ? AND status = ?`, statusError, sn.ID, statusCreating); err != nil {
			return nil, err
		}
		sn.Status = statusError
	}
	return api.JSON(http.StatusAccepted, map[string]any{"snapshot": sn.view(false)}), nil
}

func (s *Service) showSnapshot(r *http.Request) (*api.Response, error) {
	sn, err := s.loadSnapshot(r.Context(), s.db, s.caller(r), r.PathValue("snapshot_id"))
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "volume:get_snapshot", sn.ProjectID); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"snapshot": sn.view(true)}), nil
}

func (s *Service) updateSnapshot(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if _, err := s.loadSnapshot(ctx, s.db, c, r.PathValue("snapshot_id")); err != nil {
		return nil, err
	}
	var body struct {
		Snapshot *struct {
			Name               api.Optional[string] `json:"name"`
			DisplayName        api.Optional[string] `json:"display_name"`
			Description        api.Optional[string] `json:"description"`
			DisplayDescription api.Optional[string] `json:"display_description"`
		} `json:"snapshot"`
	}
	if err := api.DecodeJSONLoose(r, &body); err != nil {
		return nil, err
	}
	b := body.Snapshot
	if b == nil {
		return nil, api.BadRequest("Missing required element 'snapshot' in request body.")
	}
	var sn *snapshot
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if sn, err = s.loadSnapshot(ctx, tx, c, r.PathValue("snapshot_id")); err != nil {
			return err
		}
		if err := s.authorize(r, "volume:update_snapshot", sn.ProjectID); err != nil {
			return err
		}
		for _, o := range []api.Optional[string]{b.DisplayName, b.Name} {
			if o.Set {
				sn.Name = nil
				if !o.Null {
					n := o.Value
					sn.Name = &n
				}
			}
		}
		for _, o := range []api.Optional[string]{b.DisplayDescription, b.Description} {
			if o.Set {
				sn.Description = nil
				if !o.Null {
					d := o.Value
					sn.Description = &d
				}
			}
		}
		sn.UpdatedAt = stamp()
		_, err = tx.Exec(ctx, `UPDATE volume_snapshots SET name = ?, description = ?, updated_at = ? WHERE id = ?`, sn.Name, sn.Description, sn.UpdatedAt, sn.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"snapshot": sn.view(false)}), nil
}

// snapshotDeletable are the statuses a snapshot may be deleted from.
var snapshotDeletable = []string{statusAvailable, statusError}

func (s *Service) deleteSnapshot(r *http.Request) (*api.Response, error) {
	return s.deleteSnapshotAs(r, false)
}

func (s *Service) deleteSnapshotAs(r *http.Request, force bool) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	var sn *snapshot
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if sn, err = s.loadSnapshot(ctx, tx, c, r.PathValue("snapshot_id")); err != nil {
			return err
		}
		if err := s.authorize(r, "volume:delete_snapshot", sn.ProjectID); err != nil {
			return err
		}
		if !force && !containsStr(snapshotDeletable, sn.Status) {
			return api.BadRequest("Invalid snapshot: Snapshot status must be available or error.")
		}
		if sn.Host == "" {
			_, err := tx.Exec(ctx, `DELETE FROM volume_snapshots WHERE id = ?`, sn.ID)
			return err
		}
		res, err := tx.Exec(ctx, `UPDATE volume_snapshots SET status = ?, updated_at = ? WHERE id = ? AND status = ?`, statusDeleting, stamp(), sn.ID, sn.Status)
		if err != nil {
			return fmt.Errorf("delete snapshot %s: %w", sn.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return store.ErrRetry // the status changed under us: read it again
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if sn.Host != "" {
		if err := s.send(ctx, sn.Host, agentproto.Command{ID: newID(), Op: agentproto.OpDeleteSnapshot, VolumeID: sn.VolumeID, SnapshotID: sn.ID}); err != nil {
			return nil, fmt.Errorf("delete snapshot %s: %w", sn.ID, err)
		}
	}
	return accepted(), nil
}

var snapshotSortKeys = map[string]string{
	"id": "id", "name": "name", "display_name": "name", "status": "status", "size": "size", "created_at": "created_at",
	"updated_at": "updated_at", "volume_id": "volume_id", "project_id": "project_id",
}

func snapshotSortValue(sn *snapshot, key string) string {
	switch key {
	case "id":
		return sn.ID
	case "name":
		return strOr(sn.Name)
	case "status":
		return sn.Status
	case "size":
		return fmt.Sprintf("%012d", sn.Size)
	case "created_at":
		return sn.CreatedAt
	case "updated_at":
		return sn.UpdatedAt
	case "volume_id":
		return sn.VolumeID
	case "project_id":
		return sn.ProjectID
	}
	return ""
}

func (s *Service) listSnapshots(r *http.Request) (*api.Response, error) {
	return s.snapshotList(r, false)
}
func (s *Service) listSnapshotsDetail(r *http.Request) (*api.Response, error) {
	return s.snapshotList(r, true)
}

func (s *Service) snapshotList(r *http.Request, detail bool) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "volume:get_all_snapshots", c.project); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	sorts, page, err := listParams(q, snapshotSortKeys)
	if err != nil {
		return nil, err
	}
	where := []string{"1 = 1"}
	var args []any
	if !(c.admin && isTrue(q.Get("all_tenants"))) {
		where, args = append(where, "project_id = ?"), append(args, c.project)
	}
	where, args = equalFilters(where, args, q, [][2]string{{"name", "name"}, {"display_name", "name"}, {"status", "status"}, {"volume_id", "volume_id"}})
	var metaFilter map[string]*string
	if m := q.Get("metadata"); m != "" {
		if metaFilter, err = parseDictLiteral(m); err != nil {
			return nil, api.BadRequest("Invalid input received: %s.", err)
		}
	}
	rows, err := store.QueryAll(ctx, s.db, scanSnapshot, `SELECT `+snapshotCols+` FROM volume_snapshots WHERE `+strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	kept := rows[:0]
	for _, sn := range rows {
		if matchMetadata(sn.Metadata, metaFilter) {
			kept = append(kept, sn)
		}
	}
	pageRows, full, err := sortedPage(kept, sorts, page, snapshotSortValue, func(sn *snapshot) string { return sn.ID })
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(pageRows))
	for _, sn := range pageRows {
		out = append(out, sn.view(detail))
	}
	body := map[string]any{"snapshots": out}
	if full {
		body["snapshots_links"] = nextLink(s.baseURL(r), r, pageRows[len(pageRows)-1].ID, page.limit)
	}
	return api.JSON(http.StatusOK, body), nil
}

// snapshotAction serves the snapshot actions: admin os-reset_status and
// os-force_delete, and os-update_snapshot_status.
func (s *Service) snapshotAction(r *http.Request) (*api.Response, error) {
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
			if !c.admin {
				return nil, api.Forbidden("Policy doesn't allow volume_extension:snapshot_admin_actions:reset_status to be performed.")
			}
			var a struct {
				Status string `json:"status"`
			}
			if err := api.DecodeBytes(raw, &a, false); err != nil {
				return nil, err
			}
			if !containsStr([]string{"creating", "available", "deleting", "error", "error_deleting", "backing-up", "restoring", "unmanaging"}, a.Status) {
				return nil, api.BadRequest("Invalid input received: status %q is not a snapshot status.", a.Status)
			}
			sn, err := s.loadSnapshot(r.Context(), s.db, c, r.PathValue("snapshot_id"))
			if err != nil {
				return nil, err
			}
			if _, err := s.db.Exec(r.Context(), `UPDATE volume_snapshots SET status = ?, updated_at = ? WHERE id = ?`, a.Status, stamp(), sn.ID); err != nil {
				return nil, fmt.Errorf("reset snapshot status: %w", err)
			}
			return accepted(), nil
		case "os-update_snapshot_status":
			return s.updateSnapshotStatus(r, c, raw)
		case "os-force_delete":
			if !c.admin {
				return nil, api.Forbidden("Policy doesn't allow volume_extension:snapshot_admin_actions:force_delete to be performed.")
			}
			return s.deleteSnapshotAs(r, true)
		}
		return nil, api.BadRequest("Invalid action %s.", name)
	}
	return nil, nil
}

// snapshotProgressions are the moves os-update_snapshot_status allows,
// as Cinder's: a creating snapshot ends available or error, a deleting
// one error_deleting. Nova uses it for snapshots it makes itself.
var snapshotProgressions = map[string][]string{
	statusCreating: {statusCreating, statusAvailable, statusError},
	statusDeleting: {statusDeleting, "error_deleting"},
}

func (s *Service) updateSnapshotStatus(r *http.Request, c caller, raw json.RawMessage) (*api.Response, error) {
	ctx := r.Context()
	var a struct {
		Status   string  `json:"status"`
		Progress *string `json:"progress"`
	}
	if err := api.DecodeBytes(raw, &a, false); err != nil {
		return nil, err
	}
	if a.Status == "" {
		return nil, api.BadRequest("'status' must be specified.")
	}
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		sn, err := s.loadSnapshot(ctx, tx, c, r.PathValue("snapshot_id"))
		if err != nil {
			return err
		}
		if err := s.authorize(r, "volume:update_snapshot", sn.ProjectID); err != nil {
			return err
		}
		if !containsStr(snapshotProgressions[sn.Status], a.Status) {
			return api.BadRequest("Invalid input received: Provided snapshot status %s not allowed for snapshot with status %s.", a.Status, sn.Status)
		}
		progress := sn.Progress
		if a.Progress != nil {
			progress = *a.Progress
		}
		res, err := tx.Exec(ctx, `UPDATE volume_snapshots SET status = ?, progress = ?, updated_at = ? WHERE id = ? AND status = ?`, a.Status, progress, stamp(), sn.ID, sn.Status)
		if err != nil {
			return fmt.Errorf("update snapshot status: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return store.ErrRetry
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}
