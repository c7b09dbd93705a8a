package volume

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// attachmentSortKeys are the sort keys an attachment list takes.
var attachmentSortKeys = map[string]string{
	"id": "id", "created_at": "created_at", "volume_id": "volume_id", "instance_uuid": "instance_uuid",
	"attach_status": "attach_status", "status": "attach_status",
}

func attachmentSortValue(a attachment, key string) string {
	switch key {
	case "id":
		return a.ID
	case "created_at":
		return a.CreatedAt
	case "volume_id":
		return a.VolumeID
	case "instance_uuid":
		return strOr(a.InstanceUUID)
	case "attach_status":
		return a.AttachStatus
	}
	return ""
}

func (s *Service) listAttachments(r *http.Request) (*api.Response, error) {
	return s.attachmentList(r, false)
}

func (s *Service) listAttachmentsDetail(r *http.Request) (*api.Response, error) {
	return s.attachmentList(r, true)
}

// attachmentList serves GET /attachments[/detail]: the caller's
// project's attachments (every project's for an admin with all_tenants),
// filtered by volume_id, instance_id and status/attach_status, as
// Cinder's allowed filters are.
func (s *Service) attachmentList(r *http.Request, detail bool) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "volume:get_all", c.project); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	sorts, page, err := listParams(q, attachmentSortKeys)
	if err != nil {
		return nil, err
	}
	where := []string{"1 = 1"}
	var args []any
	if !(c.admin && q.Has("all_tenants")) {
		where, args = append(where, "v.project_id = ?"), append(args, c.project)
	}
	where, args = equalFilters(where, args, q, [][2]string{{"volume_id", "a.volume_id"}, {"instance_id", "a.instance_uuid"},
		{"status", "a.attach_status"}, {"attach_status", "a.attach_status"}})
	query := `SELECT a.id, a.volume_id, a.instance_uuid, a.host_name, a.mountpoint, a.attach_mode, a.attach_status, a.attached_at,
		a.connector, a.connection_info, a.created_at
		FROM volume_attachments a JOIN volume_volumes v ON v.id = a.volume_id WHERE ` + strings.Join(where, " AND ")
	rows, err := store.QueryAll(ctx, s.db, scanAttachment, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list attachments: %w", err)
	}
	pageRows, _, err := sortedPage(rows, sorts, page, attachmentSortValue, func(a attachment) string { return a.ID })
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(pageRows))
	for _, a := range pageRows {
		if detail {
			out = append(out, a.detail())
		} else {
			out = append(out, a.summary())
		}
	}
	return api.JSON(http.StatusOK, map[string]any{"attachments": out}), nil
}
