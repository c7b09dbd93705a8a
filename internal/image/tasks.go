package image

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// taskTTL is how long a finished task stays listed (Glance's
// task_time_to_live, 48 hours).
const taskTTL = 48 * time.Hour

// task is an asynchronous operation on an image, as Glance's tasks API
// shows it: imports are tasks of type api_image_import.
type task struct {
	ID        string
	ImageID   string
	Type      string
	Status    string // pending, processing, success, failure
	Owner     string
	UserID    string
	RequestID string
	Input     json.RawMessage
	Result    json.RawMessage
	Message   string
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time // zero until the task ends
}

func newTask(im *image, typ, userID, requestID string, input any) *task {
	now := time.Now().UTC()
	in, _ := json.Marshal(input)
	return &task{ID: uuid.NewString(), ImageID: im.ID, Type: typ, Status: "pending", Owner: im.Owner,
		UserID: userID, RequestID: requestID, Input: in, Result: json.RawMessage("null"), CreatedAt: now, UpdatedAt: now}
}

func insertTask(ctx context.Context, tx store.Querier, t *task) error {
	_, err := tx.Exec(ctx, `INSERT INTO image_tasks (id, image_id, type, status, owner, user_id, request_id, input, result, message, heartbeat, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.ImageID, t.Type, t.Status, t.Owner, t.UserID, t.RequestID, string(t.Input), string(t.Result), t.Message,
		store.FormatTime(t.CreatedAt), store.FormatTime(t.CreatedAt), store.FormatTime(t.UpdatedAt))
	if err != nil {
		return fmt.Errorf("record task: %w", err)
	}
	return nil
}

// setTaskStatus moves a task on; finished tasks get their expiry and,
// on success, the result Glance reports.
func (s *Service) setTaskStatus(ctx context.Context, id, status, message string) {
	now := time.Now().UTC()
	expires := ""
	if status == "success" || status == "failure" {
		expires = store.FormatTime(now.Add(taskTTL))
	}
	_, err := s.db.Exec(ctx, `UPDATE image_tasks SET status = ?, message = ?, updated_at = ?, expires_at = ?,
		result = CASE WHEN ? = 'success' THEN '{"image_id": "' || image_id || '"}' ELSE result END WHERE id = ?`,
		status, message, store.FormatTime(now), expires, status, id)
	if err != nil {
		s.log.Error("update task status", "task_id", id, "status", status, "err", err)
	}
}

const taskColumns = `id, image_id, type, status, owner, user_id, request_id, input, result, message, created_at, updated_at, expires_at`

func scanTask(row store.Scanner) (*task, error) {
	var (
		t                         task
		in, res                   string
		created, updated, expires string
	)
	if err := row.Scan(&t.ID, &t.ImageID, &t.Type, &t.Status, &t.Owner, &t.UserID, &t.RequestID, &in, &res, &t.Message,
		&created, &updated, &expires); err != nil {
		return nil, err
	}
	t.Input, t.Result = json.RawMessage(in), json.RawMessage(res)
	t.CreatedAt, _ = store.ParseTime(created)
	t.UpdatedAt, _ = store.ParseTime(updated)
	if expires != "" {
		t.ExpiresAt, _ = store.ParseTime(expires)
	}
	return &t, nil
}

func taskView(t *task) map[string]any {
	out := map[string]any{
		"id": t.ID, "image_id": t.ImageID, "type": t.Type, "status": t.Status, "owner": t.Owner,
		"user_id": t.UserID, "request_id": t.RequestID, "input": t.Input, "result": t.Result, "message": t.Message,
		"created_at": glanceTime(t.CreatedAt), "updated_at": glanceTime(t.UpdatedAt), "expires_at": nil,
	}
	if !t.ExpiresAt.IsZero() {
		out["expires_at"] = glanceTime(t.ExpiresAt)
	}
	return out
}

// listImageTasks is GET /v2/images/{id}/tasks (API v2.12): the image's
// unexpired tasks, newest first.
func (s *Service) listImageTasks(r *http.Request) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "get_image", im, nil); err != nil {
		return nil, err
	}
	tasks, err := store.QueryAll(r.Context(), s.db, scanTask, `SELECT `+taskColumns+` FROM image_tasks
		WHERE image_id = ? AND (expires_at = '' OR expires_at > ?) ORDER BY created_at DESC`, im.ID, store.FormatTime(time.Now()))
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(tasks))
	for i, t := range tasks {
		out[i] = taskView(t)
	}
	return api.JSON(http.StatusOK, map[string]any{"tasks": out}), nil
}

// recoverImports settles imports that a dead process left running: the
// task fails and the image returns to uploading when its staged data is
// still complete, to queued otherwise (copy-image leaves it active).
// Tasks of live processes keep beating and are left alone.
func (s *Service) recoverImports(ctx context.Context) error {
	cutoff := store.FormatTime(time.Now().Add(-3 * uploadHeartbeat))
	stale, err := store.QueryAll(ctx, s.db, scanTask, `SELECT `+taskColumns+` FROM image_tasks
		WHERE status IN ('pending', 'processing') AND heartbeat < ?`, cutoff)
	if err != nil {
		return fmt.Errorf("find interrupted imports: %w", err)
	}
	for _, t := range stale {
		back := "queued"
		if s.staged(t.ImageID) {
			back = "uploading"
		}
		if _, err := s.db.Exec(ctx, `UPDATE images SET status = ?, importing_stores = '', failed_import = COALESCE(NULLIF(importing_stores, ''), failed_import),
			updated_at = ? WHERE id = ? AND status = 'importing'`, back, store.FormatTime(time.Now()), t.ImageID); err != nil {
			return fmt.Errorf("revert interrupted import of %s: %w", t.ImageID, err)
		}
		if _, err := s.db.Exec(ctx, `UPDATE images SET importing_stores = '' WHERE id = ? AND status = 'active'`, t.ImageID); err != nil {
			return fmt.Errorf("settle interrupted copy of %s: %w", t.ImageID, err)
		}
		s.setTaskStatus(ctx, t.ID, "failure", "The import was interrupted by a restart of the image service.")
		s.log.Warn("image import interrupted by a restart", "image_id", t.ImageID, "task_id", t.ID, "now", back)
	}
	// Uploads to staging that a crash cut short leave uploading images
	// with no staged data: those go back to queued.
	rows, err := store.QueryStrings(ctx, s.db, `SELECT id FROM images WHERE status = 'uploading' AND upload_heartbeat < ?`, cutoff)
	if err != nil {
		return fmt.Errorf("find interrupted staging: %w", err)
	}
	for _, id := range rows {
		if !s.staged(id) {
			if _, err := s.setStatus(ctx, id, "uploading", "queued"); err != nil {
				return err
			}
		}
	}
	return nil
}
