package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

type group struct {
	ID, DomainID, Name, Description, Extra string
}

const groupColumns = `id, domain_id, name, description, extra`

func scanGroup(row store.Scanner) (*group, error) {
	g := &group{}
	return g, row.Scan(&g.ID, &g.DomainID, &g.Name, &g.Description, &g.Extra)
}

func (s *Service) getGroup(ctx context.Context, id string) (*group, error) {
	g, err := store.QueryOne(ctx, s.db, scanGroup, `SELECT `+groupColumns+` FROM groups WHERE id = ?`, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get group %s: %w", id, err)
	}
	return g, err
}

func (s *Service) groupJSON(r *http.Request, g *group) map[string]any {
	return withExtra(map[string]any{
		"id": g.ID, "name": g.Name, "domain_id": g.DomainID, "description": g.Description,
		"links": s.selfLinks(r, "/v3/groups/"+g.ID),
	}, g.Extra)
}

type groupBody struct {
	Name        api.Optional[string] `json:"name"`
	DomainID    api.Optional[string] `json:"domain_id"`
	Description api.Optional[string] `json:"description"`
}

func (s *Service) createGroup(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b groupBody
	extra, err := readEnvelope(r, "group", &b, false)
	if err != nil {
		return nil, err
	}
	if err := validName("group", b.Name.Value); err != nil {
		return nil, err
	}
	g := &group{ID: newID(), Name: b.Name.Value, DomainID: b.DomainID.Value, Description: b.Description.Value, Extra: encodeExtra(extra)}
	if g.DomainID == "" {
		if c := api.Caller(r); c != nil && c.DomainID != "" {
			g.DomainID = c.DomainID
		} else {
			g.DomainID = DefaultDomainID
		}
	}
	if err := s.api.Authorize(r, "identity:create_group", map[string]any{"target": map[string]any{"group": map[string]any{"domain_id": g.DomainID}}}); err != nil {
		return nil, err
	}
	if _, err := s.getDomain(ctx, s.db, g.DomainID); errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find domain: %s.", g.DomainID)
	} else if err != nil {
		return nil, err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO groups (id, domain_id, name, description, extra) VALUES (?, ?, ?, ?, ?)`,
		g.ID, g.DomainID, g.Name, g.Description, g.Extra)
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store group - Duplicate entry found with name %s at domain ID %s.", g.Name, g.DomainID)
	}
	if err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"group": s.groupJSON(r, g)}), nil
}

func (s *Service) loadGroupTarget(r *http.Request, action string) (*group, error) {
	id := r.PathValue("group_id")
	g, err := s.getGroup(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		if err := s.api.Authorize(r, action, map[string]any{"target": map[string]any{"group": map[string]any{"id": id}}}); err != nil {
			return nil, err
		}
		return nil, api.NotFound("Could not find group: %s.", id)
	}
	if err != nil {
		return nil, err
	}
	if err := s.api.Authorize(r, action, map[string]any{"target": map[string]any{"group": map[string]any{"id": g.ID, "domain_id": g.DomainID}}}); err != nil {
		return nil, err
	}
	return g, nil
}

func (s *Service) showGroup(r *http.Request) (*api.Response, error) {
	g, err := s.loadGroupTarget(r, "identity:get_group")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"group": s.groupJSON(r, g)}), nil
}

func (s *Service) listGroups(r *http.Request) (*api.Response, error) {
	where, args, domain := nameDomainFilter(r)
	if err := s.api.Authorize(r, "identity:list_groups", map[string]any{"target": map[string]any{"domain_id": domain}}); err != nil {
		return nil, err
	}
	return s.queryGroups(r, `SELECT `+groupColumns+` FROM groups WHERE `+strings.Join(where, " AND ")+` ORDER BY name, id`, args...)
}

func (s *Service) queryGroups(r *http.Request, q string, args ...any) (*api.Response, error) {
	groups, err := store.QueryAll(r.Context(), s.db, scanGroup, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return listResponse(s, r, "groups", groups, s.groupJSON), nil
}

func (s *Service) updateGroup(r *http.Request) (*api.Response, error) {
	var b groupBody
	extra, err := readEnvelope(r, "group", &b, false)
	if err != nil {
		return nil, err
	}
	g, err := s.loadGroupTarget(r, "identity:update_group")
	if err != nil {
		return nil, err
	}
	if b.DomainID.Set && b.DomainID.Value != g.DomainID {
		return nil, api.BadRequest("Update of `domain_id` is not allowed.")
	}
	if b.Name.Set {
		if err := validName("group", b.Name.Value); err != nil {
			return nil, err
		}
		g.Name = b.Name.Value
	}
	if b.Description.Set {
		g.Description = b.Description.Value
	}
	g.Extra = mergeExtra(g.Extra, extra)
	_, err = s.db.Exec(r.Context(), `UPDATE groups SET name = ?, description = ?, extra = ? WHERE id = ?`, g.Name, g.Description, g.Extra, g.ID)
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store group - Duplicate entry found with name %s at domain ID %s.", g.Name, g.DomainID)
	}
	if err != nil {
		return nil, fmt.Errorf("update group %s: %w", g.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"group": s.groupJSON(r, g)}), nil
}

func (s *Service) deleteGroup(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	g, err := s.loadGroupTarget(r, "identity:delete_group")
	if err != nil {
		return nil, err
	}
	return s.deleteResource(ctx, "group", g.ID, `DELETE FROM assignments WHERE actor_id = ?`, `DELETE FROM groups WHERE id = ?`)
}

// groupAndUser loads the group and user a membership call names.
func (s *Service) groupAndUser(r *http.Request, action string) (*group, *user, error) {
	g, err := s.loadGroupTarget(r, action)
	if err != nil {
		return nil, nil, err
	}
	u, err := s.getUser(r.Context(), r.PathValue("user_id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, api.NotFound("Could not find user: %s.", r.PathValue("user_id"))
	}
	return g, u, err
}

func (s *Service) addUserToGroup(r *http.Request) (*api.Response, error) {
	g, u, err := s.groupAndUser(r, "identity:add_user_to_group")
	if err != nil {
		return nil, err
	}
	_, err = s.db.Exec(r.Context(), `INSERT INTO group_members (group_id, user_id) VALUES (?, ?)`, g.ID, u.ID)
	if err != nil && !store.IsConflict(err) {
		return nil, fmt.Errorf("add user to group: %w", err)
	}
	s.changed()
	return api.NoContent(), nil
}

func (s *Service) checkUserInGroup(r *http.Request) (*api.Response, error) {
	g, u, err := s.groupAndUser(r, "identity:check_user_in_group")
	if err != nil {
		return nil, err
	}
	if err := s.mustExist(r.Context(), api.NotFound("User '%s' not found in group '%s'.", u.ID, g.ID),
		`SELECT COUNT(*) FROM group_members WHERE group_id = ? AND user_id = ?`, g.ID, u.ID); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (s *Service) removeUserFromGroup(r *http.Request) (*api.Response, error) {
	g, u, err := s.groupAndUser(r, "identity:remove_user_from_group")
	if err != nil {
		return nil, err
	}
	res, err := s.db.Exec(r.Context(), `DELETE FROM group_members WHERE group_id = ? AND user_id = ?`, g.ID, u.ID)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, api.NotFound("User '%s' not found in group '%s'.", u.ID, g.ID)
	}
	// Roles held through the group go with the membership.
	if err := s.recordRevocation(r.Context(), revocationEvent{UserID: u.ID}); err != nil {
		return nil, err
	}
	s.changed()
	return api.NoContent(), nil
}

func (s *Service) listGroupUsers(r *http.Request) (*api.Response, error) {
	g, err := s.loadGroupTarget(r, "identity:list_users_in_group")
	if err != nil {
		return nil, err
	}
	return s.queryUsers(r, `SELECT `+userColumns+` FROM users WHERE id IN (SELECT user_id FROM group_members WHERE group_id = ?) ORDER BY name`, g.ID)
}

func (s *Service) listUserGroups(r *http.Request) (*api.Response, error) {
	u, err := s.loadUserTarget(r, "identity:list_groups_for_user")
	if err != nil {
		return nil, err
	}
	return s.queryGroups(r, `SELECT `+groupColumns+` FROM groups WHERE id IN (SELECT group_id FROM group_members WHERE user_id = ?) ORDER BY name`, u.ID)
}

// userGroupIDs returns the groups a user belongs to.
func (s *Service) userGroupIDs(ctx context.Context, userID string) ([]string, error) {
	ids, err := store.QueryStrings(ctx, s.db, `SELECT group_id FROM group_members WHERE user_id = ?`, userID)
	if err != nil {
		return nil, fmt.Errorf("groups of user %s: %w", userID, err)
	}
	return ids, nil
}
