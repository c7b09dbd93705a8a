package image

import (
	"net/http"
	"slices"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// member is one project an image is shared with.
type member struct {
	ImageID   string
	MemberID  string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func scanMember(row store.Scanner) (*member, error) {
	var m member
	var created, updated string
	if err := row.Scan(&m.ImageID, &m.MemberID, &m.Status, &created, &updated); err != nil {
		return nil, err
	}
	m.CreatedAt, _ = store.ParseTime(created)
	m.UpdatedAt, _ = store.ParseTime(updated)
	return &m, nil
}

const memberColumns = `image_id, member_id, status, created_at, updated_at`

func memberView(m *member) map[string]any {
	return map[string]any{
		"image_id": m.ImageID, "member_id": m.MemberID, "status": m.Status,
		"created_at": glanceTime(m.CreatedAt), "updated_at": glanceTime(m.UpdatedAt),
		"schema": "/v2/schemas/member",
	}
}

// maxMembers is Glance's image_member_quota default.
const maxMembers = 128

func (s *Service) addMember(r *http.Request) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Member string `json:"member"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Member == "" || len(body.Member) > 255 {
		return nil, api.BadRequest("Invalid member: a project id is required.")
	}
	if err := s.authorize(r, "add_member", im, map[string]any{"member_id": body.Member}); err != nil {
		return nil, err
	}
	if im.Visibility != "shared" {
		return nil, api.Forbidden("Only shared images have members.")
	}
	ctx := r.Context()
	var count int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM image_members WHERE image_id = ?`, im.ID).Scan(&count); err != nil {
		return nil, err
	}
	if count >= maxMembers {
		return nil, api.Errorf(http.StatusRequestEntityTooLarge, "The limit of %d members per image has been reached.", maxMembers)
	}
	now := time.Now().UTC()
	m := &member{ImageID: im.ID, MemberID: body.Member, Status: "pending", CreatedAt: now, UpdatedAt: now}
	_, err = s.db.Exec(ctx, `INSERT INTO image_members (`+memberColumns+`) VALUES (?, ?, ?, ?, ?)`,
		m.ImageID, m.MemberID, m.Status, store.FormatTime(now), store.FormatTime(now))
	if store.IsConflict(err) {
		return nil, api.Conflict("Member %s already has access to image %s.", m.MemberID, im.ID)
	}
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, memberView(m)), nil
}

// membersFor lists the memberships the caller may see: the owner (and admins) see all members; a member sees
// only its own membership, as in Glance.
func (s *Service) membersFor(r *http.Request, im *image) ([]*member, error) {
	ctx := r.Context()
	if s.isAdmin(r) || im.Owner == projectOf(r) {
		return store.QueryAll(ctx, s.db, scanMember, `SELECT `+memberColumns+` FROM image_members WHERE image_id = ? ORDER BY created_at, member_id`, im.ID)
	}
	return store.QueryAll(ctx, s.db, scanMember, `SELECT `+memberColumns+` FROM image_members WHERE image_id = ? AND member_id = ?`, im.ID, projectOf(r))
}

func (s *Service) listMembers(r *http.Request) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "get_members", im, nil); err != nil {
		return nil, err
	}
	if im.Visibility != "shared" {
		return nil, api.Forbidden("Only shared images have members.")
	}
	ms, err := s.membersFor(r, im)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(ms))
	for i, m := range ms {
		out[i] = memberView(m)
	}
	return api.JSON(http.StatusOK, map[string]any{"members": out, "schema": "/v2/schemas/members"}), nil
}

// loadMember finds the {member_id} membership the caller may see.
func (s *Service) loadMember(r *http.Request) (*image, *member, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, nil, err
	}
	id := r.PathValue("member_id")
	ms, err := s.membersFor(r, im)
	if err != nil {
		return nil, nil, err
	}
	i := slices.IndexFunc(ms, func(m *member) bool { return m.MemberID == id })
	if i < 0 {
		return nil, nil, api.NotFound("Member %s not found for image %s.", id, im.ID)
	}
	return im, ms[i], nil
}

func (s *Service) showMember(r *http.Request) (*api.Response, error) {
	im, m, err := s.loadMember(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "get_member", im, map[string]any{"member_id": m.MemberID}); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, memberView(m)), nil
}

func (s *Service) updateMember(r *http.Request) (*api.Response, error) {
	im, m, err := s.loadMember(r)
	if err != nil {
		return nil, err
	}
	// Only the member itself decides whether it accepts an image.
	if err := s.authorize(r, "modify_member", im, map[string]any{"member_id": m.MemberID}); err != nil {
		return nil, err
	}
	if projectOf(r) != m.MemberID && !s.isAdmin(r) {
		return nil, api.Forbidden("Only the member may change its membership status.")
	}
	var body struct {
		Status string `json:"status"`
	}
	if err := decodeJSON(r, &body); err != nil {
		return nil, err
	}
	if !slices.Contains([]string{"pending", "accepted", "rejected"}, body.Status) {
		return nil, api.BadRequest("Invalid status: %s; must be pending, accepted or rejected.", body.Status)
	}
	m.Status, m.UpdatedAt = body.Status, time.Now().UTC()
	if _, err := s.db.Exec(r.Context(), `UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member_id = ?`,
		m.Status, store.FormatTime(m.UpdatedAt), m.ImageID, m.MemberID); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, memberView(m)), nil
}

func (s *Service) deleteMember(r *http.Request) (*api.Response, error) {
	im, m, err := s.loadMember(r)
	if err != nil {
		return nil, err
	}
	// A member may see its membership but only the owner removes it.
	if err := s.authorize(r, "delete_member", im, map[string]any{"member_id": m.MemberID}); err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM image_members WHERE image_id = ? AND member_id = ?`, m.ImageID, m.MemberID); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}
