package compute

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// recordAction opens an instance action for an API request, tagged with
// the request id so users can trace what happened to their call.
func recordAction(ctx context.Context, tx *store.Tx, instanceID, action string, c caller) (string, error) {
	id := newID()
	var seq int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM compute_instance_actions`).Scan(&seq); err != nil {
		return "", err
	}
	ts := store.FormatTime(now())
	reqID := api.RequestID(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO compute_instance_actions (id, seq, instance_id, action, request_id, user_id, project_id, start_time, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, seq, instanceID, action, reqID, c.user, c.project, ts, ts); err != nil {
		return "", fmt.Errorf("record action %s on %s: %w", action, instanceID, err)
	}
	return id, nil
}

// latestAction returns the id of the newest action of a kind on an
// instance, "" when there is none.
func latestAction(ctx context.Context, q store.Querier, instanceID, action string) (string, error) {
	ids, err := store.QueryStrings(ctx, q, `SELECT id FROM compute_instance_actions WHERE instance_id = ? AND action = ? ORDER BY seq DESC LIMIT 1`, instanceID, action)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[0], nil
}

// finishAction closes the event of the newest action of a kind,
// creating the event when none was opened.
func (s *Service) finishAction(ctx context.Context, tx *store.Tx, instanceID, action, event string, ok bool, msg, tb string) error {
	id, err := latestAction(ctx, tx, instanceID, action)
	if err != nil || id == "" {
		return err
	}
	return finishEvent(ctx, tx, id, event, ok, msg, tb, "")
}

// finishEvent records an event's result; a failure marks the action's
// message "Error", as Nova does.
func finishEvent(ctx context.Context, tx *store.Tx, actionID, event string, ok bool, msg, tb, host string) error {
	ts := store.FormatTime(now())
	result := "Success"
	if !ok {
		result = "Error"
	}
	res, err := tx.Exec(ctx, `UPDATE compute_instance_action_events SET finish_time = ?, result = ?, traceback = ? WHERE action_id = ? AND event = ? AND finish_time IS NULL`,
		ts, result, nullIfEmpty(tb+msgSep(tb, msg)), actionID, event)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO compute_instance_action_events (id, action_id, event, start_time, finish_time, result, traceback, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			newID(), actionID, event, ts, ts, result, nullIfEmpty(tb+msgSep(tb, msg)), nullIfEmpty(host)); err != nil {
			return err
		}
	}
	if !ok {
		if _, err := tx.Exec(ctx, `UPDATE compute_instance_actions SET message = 'Error', finish_time = ?, updated_at = ? WHERE id = ?`, ts, ts, actionID); err != nil {
			return err
		}
	} else if _, err := tx.Exec(ctx, `UPDATE compute_instance_actions SET finish_time = ?, updated_at = ? WHERE id = ?`, ts, ts, actionID); err != nil {
		return err
	}
	return nil
}

func msgSep(tb, msg string) string {
	if tb == "" {
		return msg
	}
	if msg == "" {
		return ""
	}
	return "\n" + msg
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type actionRow struct {
	ID, InstanceID, Action, RequestID, UserID, ProjectID, StartTime, UpdatedAt string
	Message                                                                    *string
}

func scanAction(row store.Scanner) (actionRow, error) {
	var a actionRow
	err := row.Scan(&a.ID, &a.InstanceID, &a.Action, &a.RequestID, &a.UserID, &a.ProjectID, &a.StartTime, &a.UpdatedAt, &a.Message)
	return a, err
}

func (s *Service) actionView(r *http.Request, a actionRow) map[string]any {
	out := map[string]any{
		"action": a.Action, "instance_uuid": a.InstanceID, "message": a.Message, "project_id": a.ProjectID,
		"request_id": a.RequestID, "start_time": isoMicro(parseTime(a.StartTime)), "user_id": a.UserID,
	}
	if at(r, 58) {
		out["updated_at"] = isoMicro(parseTime(a.UpdatedAt))
	}
	return out
}

// actionServer finds the server for the instance action APIs, which also
// serve deleted servers from 2.21.
func (s *Service) actionServer(r *http.Request, action string) (instance, error) {
	c := s.caller(r)
	id := r.PathValue("server_id")
	q := `SELECT ` + instanceCols + ` FROM compute_instances WHERE id = ?`
	if !at(r, 21) {
		q += ` AND deleted = 0`
	}
	i, err := store.QueryOne(r.Context(), s.db, scanInstance, q, id)
	if err != nil || (!c.admin && i.ProjectID != c.project) {
		if err != nil && !isNoRows(err) {
			return i, fmt.Errorf("get server %s: %w", id, err)
		}
		return i, api.NotFound("Instance %s could not be found.", id)
	}
	return i, s.authorize(r, action, projectTarget(i.ProjectID, i.UserID))
}

func (s *Service) listInstanceActions(r *http.Request) (*api.Response, error) {
	i, err := s.actionServer(r, "os_compute_api:os-instance-actions:list")
	if err != nil {
		return nil, err
	}
	where, args := `instance_id = ?`, []any{i.ID}
	q := r.URL.Query()
	if at(r, 58) {
		for _, f := range []struct{ param, op string }{{"changes-since", ">="}, {"changes-before", "<="}} {
			if v := q.Get(f.param); v != "" {
				if f.param == "changes-before" && !at(r, 66) {
					continue
				}
				t, err := parseISO(v)
				if err != nil {
					return nil, api.BadRequest("Invalid input for query parameters %s. Value: %s. '%s' is not a 'date-time'", f.param, v, v)
				}
				where += ` AND updated_at ` + f.op + ` ?`
				args = append(args, store.FormatTime(t))
			}
		}
	}
	rows, err := store.QueryAll(r.Context(), s.db, scanAction, `SELECT id, instance_id, action, request_id, user_id, project_id, start_time, updated_at, message
		FROM compute_instance_actions WHERE `+where+` ORDER BY seq DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("list actions of %s: %w", i.ID, err)
	}
	var p api.Page
	if at(r, 58) {
		if p, err = page(r); err != nil {
			return nil, err
		}
		if rows, _, err = paginate(rows, p, func(a actionRow) string { return a.RequestID }); err != nil {
			return nil, api.BadRequest("Marker %s could not be found.", p.Marker)
		}
	}
	out := make([]map[string]any, 0, len(rows))
	for _, a := range rows {
		out = append(out, s.actionView(r, a))
	}
	body := map[string]any{"instanceActions": out}
	if at(r, 58) && len(rows) > 0 {
		if l := s.nextLinks(r, p, len(rows), rows[len(rows)-1].RequestID); l != nil {
			body["links"] = l
		}
	}
	return api.JSON(http.StatusOK, body), nil
}

func (s *Service) showInstanceAction(r *http.Request) (*api.Response, error) {
	i, err := s.actionServer(r, "os_compute_api:os-instance-actions:show")
	if err != nil {
		return nil, err
	}
	reqID := r.PathValue("request_id")
	a, err := store.QueryOne(r.Context(), s.db, scanAction, `SELECT id, instance_id, action, request_id, user_id, project_id, start_time, updated_at, message
		FROM compute_instance_actions WHERE instance_id = ? AND request_id = ? ORDER BY seq DESC LIMIT 1`, i.ID, reqID)
	if err != nil {
		if isNoRows(err) {
			return nil, api.NotFound("Action %s on instance %s could not be found.", reqID, i.ID)
		}
		return nil, fmt.Errorf("show action: %w", err)
	}
	out := s.actionView(r, a)
	target := projectTarget(i.ProjectID, i.UserID)
	admin := s.can(r, "os_compute_api:os-instance-actions:events", target)
	if admin || at(r, 51) {
		rows, err := s.db.Query(r.Context(), `SELECT event, start_time, finish_time, result, traceback, host FROM compute_instance_action_events WHERE action_id = ? ORDER BY start_time`, a.ID)
		if err != nil {
			return nil, fmt.Errorf("action events: %w", err)
		}
		defer rows.Close()
		events := []map[string]any{}
		for rows.Next() {
			var ev, start string
			var finish, result, tb, host *string
			if err := rows.Scan(&ev, &start, &finish, &result, &tb, &host); err != nil {
				return nil, err
			}
			e := map[string]any{"event": ev, "start_time": isoMicro(parseTime(start)), "finish_time": nullTime(finish, isoMicro), "result": result}
			if admin {
				e["traceback"] = tb
			}
			if at(r, 62) {
				h := ""
				if host != nil {
					h = *host
				}
				e["hostId"] = hostID(i.ProjectID, h)
				if admin {
					e["host"] = h
				}
			}
			events = append(events, e)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		out["events"] = events
	}
	return api.JSON(http.StatusOK, map[string]any{"instanceAction": out}), nil
}

// parseISO reads the ISO 8601 times Nova accepts in query strings.
func parseISO(v string) (time.Time, error) {
	v = strings.ReplaceAll(v, " ", "+") // an unescaped '+' in a query arrives as a space
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999", "2006-01-02T15:04:05Z0700", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q", v)
}
