package volume

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// User messages (3.3, paginated from 3.5) tell a project why one of its
// asynchronous requests failed, where a status of "error" alone would
// not: Cinder's /messages. Each is kept messageTTL (Cinder's
// message_ttl default), shown as guaranteed_until, and purged after.
const messageTTL = 30 * 24 * time.Hour

// userMessage is one failure a project may read. action and detail are
// Cinder's message_field ids and texts, so event ids and user messages
// read as Cinder's do (VOLUME_VOLUME_001_003, "schedule allocate
// volume:Could not find any available weighted backend.").
type userMessage struct {
	resourceType string // VOLUME, VOLUME_SNAPSHOT
	action       [2]string
	detail       [2]string
}

var (
	actionScheduleAllocate = [2]string{"001", "schedule allocate volume"}
	actionExtendVolume     = [2]string{"007", "extend volume"}
	actionCreateFromBack   = [2]string{"008", "create volume from backend storage"}
	detailNoBackend        = [2]string{"003", "Could not find any available weighted backend."}
	detailDriverExtend     = [2]string{"010", "Volume Driver failed to extend volume."}
	detailDriverCreate     = [2]string{"012", "Driver failed to create the volume."}
)

func (m userMessage) eventID() string {
	return "VOLUME_" + m.resourceType + "_" + m.action[0] + "_" + m.detail[0]
}

// recordMessage stores a message for the project owning the volume. A
// message that cannot be stored is logged, never failing the operation
// it describes.
func (s *Service) recordMessage(ctx context.Context, q store.Querier, m userMessage, resourceID, requestID string) {
	t := now()
	var req any
	if requestID != "" {
		req = requestID
	}
	_, err := q.Exec(ctx, `INSERT INTO volume_messages (id, project_id, request_id, resource_type, resource_uuid, event_id, message_level,
		user_message, created_at, expires_at)
		SELECT ?, project_id, ?, ?, ?, ?, 'ERROR', ?, ?, ? FROM volume_volumes WHERE id = ?`,
		newID(), req, m.resourceType, resourceID, m.eventID(), m.action[1]+":"+m.detail[1],
		store.FormatTime(t), store.FormatTime(t.Add(messageTTL)), resourceID)
	if err != nil {
		s.log.Error("record user message", "event", m.eventID(), "resource", resourceID, "err", err)
	}
	if _, err := q.Exec(ctx, `DELETE FROM volume_messages WHERE expires_at < ?`, store.FormatTime(t)); err != nil {
		s.log.Warn("purge expired user messages", "err", err)
	}
}

type message struct {
	ID, ProjectID                     string
	RequestID                         *string
	ResourceType, ResourceUUID, Event string
	Level, Text                       string
	CreatedAt, ExpiresAt              string
}

const messageCols = `id, project_id, request_id, resource_type, resource_uuid, event_id, message_level, user_message, created_at, expires_at`

func scanMessage(row store.Scanner) (*message, error) {
	var m message
	err := row.Scan(&m.ID, &m.ProjectID, &m.RequestID, &m.ResourceType, &m.ResourceUUID, &m.Event, &m.Level, &m.Text, &m.CreatedAt, &m.ExpiresAt)
	return &m, err
}

func (s *Service) messageView(base string, m *message) map[string]any {
	return map[string]any{
		"id": m.ID, "event_id": m.Event, "user_message": m.Text, "message_level": m.Level,
		"created_at": isoMicro(parseTime(m.CreatedAt)), "guaranteed_until": isoMicro(parseTime(m.ExpiresAt)),
		"request_id": m.RequestID, "resource_type": m.ResourceType, "resource_uuid": m.ResourceUUID,
		"links": s.links(base, m.ProjectID, "messages", m.ID),
	}
}

func (s *Service) loadMessage(r *http.Request, action string) (*message, error) {
	c := s.caller(r)
	id := r.PathValue("message_id")
	notFound := api.NotFound("Message %s could not be found.", id)
	m, err := store.QueryOne(r.Context(), s.db, scanMessage, `SELECT `+messageCols+` FROM volume_messages WHERE id = ? AND expires_at >= ?`,
		id, store.FormatTime(now()))
	if err == store.ErrNotFound || (err == nil && !c.admin && m.ProjectID != c.project) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("load message %s: %w", id, err)
	}
	if err := s.authorize(r, action, m.ProjectID); err != nil {
		return nil, err
	}
	return m, nil
}

func (s *Service) showMessage(r *http.Request) (*api.Response, error) {
	m, err := s.loadMessage(r, "message:get")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"message": s.messageView(s.baseURL(r), m)}), nil
}

func (s *Service) deleteMessage(r *http.Request) (*api.Response, error) {
	m, err := s.loadMessage(r, "message:delete")
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM volume_messages WHERE id = ?`, m.ID); err != nil {
		return nil, fmt.Errorf("delete message %s: %w", m.ID, err)
	}
	return &api.Response{Status: http.StatusNoContent}, nil
}

var messageSortKeys = map[string]string{
	"id": "id", "created_at": "created_at", "event_id": "event_id", "resource_type": "resource_type",
	"resource_uuid": "resource_uuid", "message_level": "message_level", "request_id": "request_id",
}

func messageSortValue(m *message, key string) string {
	switch key {
	case "id":
		return m.ID
	case "created_at":
		return m.CreatedAt
	case "event_id":
		return m.Event
	case "resource_type":
		return m.ResourceType
	case "resource_uuid":
		return m.ResourceUUID
	case "message_level":
		return m.Level
	case "request_id":
		return strOr(m.RequestID)
	}
	return ""
}

// listMessages serves GET /messages: the project's messages, newest
// first. Filters, sorting and limit/marker/offset pagination come with
// 3.5; a 3.3 request gets every message, whatever its query says.
func (s *Service) listMessages(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "message:get_all", c.project); err != nil {
		return nil, err
	}
	where := []string{"expires_at >= ?"}
	args := []any{store.FormatTime(now())}
	if !c.admin {
		where, args = append(where, "project_id = ?"), append(args, c.project)
	}
	sorts := []sortSpec{{"created_at", true}, {"id", true}}
	page := pageParams{limit: maxLimit}
	paged := atLeast(r, 5)
	if paged {
		q := r.URL.Query()
		var err error
		if sorts, page, err = listParams(q, messageSortKeys); err != nil {
			return nil, err
		}
		where, args = equalFilters(where, args, q, [][2]string{{"resource_uuid", "resource_uuid"}, {"resource_type", "resource_type"},
			{"event_id", "event_id"}, {"request_id", "request_id"}, {"message_level", "message_level"}})
	}
	rows, err := store.QueryAll(ctx, s.db, scanMessage, `SELECT `+messageCols+` FROM volume_messages WHERE `+strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	pageRows, full, err := sortedPage(rows, sorts, page, messageSortValue, func(m *message) string { return m.ID })
	if err != nil {
		return nil, err
	}
	base := s.baseURL(r)
	out := make([]any, 0, len(pageRows))
	for _, m := range pageRows {
		out = append(out, s.messageView(base, m))
	}
	body := map[string]any{"messages": out}
	if paged && full && page.limitSet {
		body["messages_links"] = nextLink(base, r, pageRows[len(pageRows)-1].ID, page.limit)
	}
	return api.JSON(http.StatusOK, body), nil
}
