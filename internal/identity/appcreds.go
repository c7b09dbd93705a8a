package identity

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// appCred is an application credential: a secret a user creates to let an
// application act with a subset of their roles on one project.
type appCred struct {
	ID, Name, UserID, ProjectID, SecretHash, Description string
	ExpiresAt                                            time.Time
	Unrestricted                                         bool
	RoleIDs                                              []string
	AccessRules                                          []map[string]any
}

func (a *appCred) expired() bool { return !a.ExpiresAt.IsZero() && !time.Now().Before(a.ExpiresAt) }

const appCredColumns = `id, name, user_id, COALESCE(project_id, ''), secret_hash, description, COALESCE(expires_at, ''), unrestricted`

func (s *Service) scanAppCred(ctx context.Context, row store.Scanner) (*appCred, error) {
	a := &appCred{}
	var exp string
	if err := row.Scan(&a.ID, &a.Name, &a.UserID, &a.ProjectID, &a.SecretHash, &a.Description, &exp, &a.Unrestricted); err != nil {
		return nil, err
	}
	var err error
	if a.ExpiresAt, err = store.ParseTime(exp); err != nil {
		return nil, err
	}
	if a.RoleIDs, err = s.linkedRoleIDs(ctx, "application_credential_roles", "application_credential_id", a.ID); err != nil {
		return nil, err
	}
	a.AccessRules, err = store.QueryAll(ctx, s.db, scanAccessRule, `SELECT ar.id, ar.service, ar.path, ar.method FROM access_rules ar
		JOIN application_credential_access_rules l ON l.access_rule_id = ar.id WHERE l.application_credential_id = ? ORDER BY ar.id`, a.ID)
	if err != nil {
		return nil, fmt.Errorf("access rules of application credential %s: %w", a.ID, err)
	}
	return a, nil
}

// scanAccessRule reads id, service, path, method as an access rule's JSON.
func scanAccessRule(row store.Scanner) (map[string]any, error) {
	var id, svc, path, method string
	if err := row.Scan(&id, &svc, &path, &method); err != nil {
		return nil, err
	}
	return map[string]any{"id": id, "service": svc, "path": path, "method": method}, nil
}

func (s *Service) getAppCred(ctx context.Context, id string) (*appCred, error) {
	a, err := s.scanAppCred(ctx, s.db.QueryRow(ctx, `SELECT `+appCredColumns+` FROM application_credentials WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return a, err
}

func (s *Service) appCredJSON(r *http.Request, a *appCred) map[string]any {
	roles := renderAll(r, s.existingRoles(r.Context(), a.RoleIDs), func(_ *http.Request, ro *role) map[string]any {
		return map[string]any{"id": ro.ID, "name": ro.Name, "domain_id": nullable(ro.DomainID)}
	})
	var exp any
	if !a.ExpiresAt.IsZero() {
		// Keystone echoes application credential expiries without a zone.
		exp = a.ExpiresAt.UTC().Format("2006-01-02T15:04:05.000000")
	}
	rules := a.AccessRules
	if rules == nil {
		rules = []map[string]any{}
	}
	return map[string]any{
		"id": a.ID, "name": a.Name, "description": nullable(a.Description), "user_id": a.UserID,
		"project_id": a.ProjectID, "roles": roles, "expires_at": exp, "unrestricted": a.Unrestricted,
		"system": nil, "access_rules": rules,
		"links": s.selfLinks(r, "/v3/users/"+a.UserID+"/application_credentials/"+a.ID),
	}
}

type appCredBody struct {
	Name         string               `json:"name"`
	Description  api.Optional[string] `json:"description"`
	Secret       string               `json:"secret"`
	ExpiresAt    api.Optional[string] `json:"expires_at"`
	Roles        []nameOrID           `json:"roles"`
	Unrestricted bool                 `json:"unrestricted"`
	AccessRules  []accessRuleBody     `json:"access_rules"`
	System       api.Optional[string] `json:"system"`
}

type accessRuleBody struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	Path    string `json:"path"`
	Method  string `json:"method"`
}

// ownUser enforces that an application credential call is about the
// caller's own user, unless policy grants more.
func (s *Service) ownUser(r *http.Request, action string) (string, error) {
	uid := r.PathValue("user_id")
	c := api.Caller(r)
	if c != nil && c.UserID == uid {
		return uid, nil
	}
	if err := s.api.Authorize(r, action, map[string]any{"user_id": uid, "target": map[string]any{"user": map[string]any{"id": uid}}}); err != nil {
		return "", err
	}
	if _, err := s.getUser(r.Context(), uid); errors.Is(err, store.ErrNotFound) {
		return "", api.NotFound("Could not find user: %s.", uid)
	}
	return uid, nil
}

func (s *Service) createAppCred(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b appCredBody
	if _, err := readEnvelope(r, "application_credential", &b, true); err != nil {
		return nil, err
	}
	c := api.Caller(r)
	if c == nil || c.UserID != r.PathValue("user_id") {
		return nil, api.Forbidden("Application credentials can only be created by their user for themselves.")
	}
	if c.ApplicationCredential != "" {
		// Unrestricted credentials may create others; restricted may not.
		parent, err := s.getAppCred(ctx, c.ApplicationCredential)
		if err != nil || !parent.Unrestricted {
			return nil, api.Forbidden("Using a restricted application credential to create one is not allowed.")
		}
	}
	if c.ProjectID == "" {
		return nil, api.Forbidden("Application credentials need a project-scoped token.")
	}
	if err := validName("application_credential", b.Name); err != nil {
		return nil, err
	}
	a := &appCred{ID: newID(), Name: b.Name, UserID: c.UserID, ProjectID: c.ProjectID, Description: b.Description.Value, Unrestricted: b.Unrestricted}
	if b.ExpiresAt.Value != "" {
		t, err := parseISOTime(b.ExpiresAt.Value)
		if err != nil {
			return nil, api.BadRequest("Invalid input for field 'application_credential.expires_at': %q is not a valid time.", b.ExpiresAt.Value)
		}
		if !t.After(time.Now()) {
			return nil, api.BadRequest("Invalid input for field 'application_credential.expires_at': the expiry must be in the future.")
		}
		a.ExpiresAt = t
	}
	tokenRoles := map[string]string{}
	for _, ro := range c.Roles {
		tokenRoles[ro.ID] = ro.Name
	}
	if len(b.Roles) == 0 {
		for id := range tokenRoles {
			a.RoleIDs = append(a.RoleIDs, id)
		}
	}
	for _, want := range b.Roles {
		found := ""
		for id, name := range tokenRoles {
			if want.ID != "" && want.ID == id || want.ID == "" && want.Name == name {
				found = id
			}
		}
		if found == "" {
			return nil, api.Forbidden("The user does not hold role %s on project %s.", want.ID+want.Name, c.ProjectID)
		}
		if !slices.Contains(a.RoleIDs, found) {
			a.RoleIDs = append(a.RoleIDs, found)
		}
	}
	slices.Sort(a.RoleIDs)
	secret := b.Secret
	if secret == "" {
		var raw [64]byte
		_, _ = rand.Read(raw[:])
		secret = base64.RawURLEncoding.EncodeToString(raw[:])
	}
	var err error
	if a.SecretHash, err = s.hashPassword(secret); err != nil {
		return nil, err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		var exp any
		if !a.ExpiresAt.IsZero() {
			exp = store.FormatTime(a.ExpiresAt)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO application_credentials (id, name, user_id, project_id, secret_hash, description, expires_at, unrestricted, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, a.Name, a.UserID, a.ProjectID, a.SecretHash, a.Description, exp, a.Unrestricted, store.FormatTime(now())); err != nil {
			return err
		}
		for _, id := range a.RoleIDs {
			if _, err := tx.Exec(ctx, `INSERT INTO application_credential_roles (application_credential_id, role_id) VALUES (?, ?)`, a.ID, id); err != nil {
				return err
			}
		}
		for _, rule := range b.AccessRules {
			id, err := s.accessRuleID(ctx, tx, a.UserID, rule)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO application_credential_access_rules (application_credential_id, access_rule_id) VALUES (?, ?)`, a.ID, id); err != nil {
				return err
			}
		}
		return nil
	})
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store application_credential - Duplicate entry found with name %s.", a.Name)
	}
	if err != nil {
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			return nil, err
		}
		return nil, fmt.Errorf("create application credential: %w", err)
	}
	s.changed()
	created, err := s.getAppCred(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	body := s.appCredJSON(r, created)
	body["secret"] = secret
	return api.JSON(http.StatusCreated, map[string]any{"application_credential": body}), nil
}

// accessRuleID finds or creates the user's access rule.
func (s *Service) accessRuleID(ctx context.Context, tx *store.Tx, userID string, rule accessRuleBody) (string, error) {
	if rule.ID != "" {
		var owner string
		err := tx.QueryRow(ctx, `SELECT user_id FROM access_rules WHERE id = ?`, rule.ID).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) || err == nil && owner != userID {
			return "", api.NotFound("Could not find access rule: %s.", rule.ID)
		}
		return rule.ID, err
	}
	if rule.Service == "" || rule.Path == "" || rule.Method == "" {
		return "", api.BadRequest("Invalid input for field 'access_rules': service, path and method are required.")
	}
	switch rule.Method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE":
	default:
		return "", api.BadRequest("Invalid input for field 'access_rules.method': %q is not an HTTP method.", rule.Method)
	}
	var id string
	err := tx.QueryRow(ctx, `SELECT id FROM access_rules WHERE user_id = ? AND service = ? AND path = ? AND method = ?`, userID, rule.Service, rule.Path, rule.Method).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	id = newID()
	_, err = tx.Exec(ctx, `INSERT INTO access_rules (id, user_id, service, path, method) VALUES (?, ?, ?, ?, ?)`, id, userID, rule.Service, rule.Path, rule.Method)
	return id, err
}

func (s *Service) listAppCreds(r *http.Request) (*api.Response, error) {
	uid, err := s.ownUser(r, "identity:list_application_credentials")
	if err != nil {
		return nil, err
	}
	q, args := `SELECT id FROM application_credentials WHERE user_id = ?`, []any{uid}
	if name := r.URL.Query().Get("name"); name != "" {
		q, args = q+` AND name = ?`, append(args, name)
	}
	ids, err := store.QueryStrings(r.Context(), s.db, q+` ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list application credentials: %w", err)
	}
	out := []any{}
	for _, id := range ids {
		a, err := s.getAppCred(r.Context(), id)
		if err != nil {
			return nil, err
		}
		out = append(out, s.appCredJSON(r, a))
	}
	return api.JSON(http.StatusOK, s.listBody(r, "application_credentials", out)), nil
}

func (s *Service) loadAppCred(r *http.Request, action string) (*appCred, error) {
	uid, err := s.ownUser(r, action)
	if err != nil {
		return nil, err
	}
	a, err := s.getAppCred(r.Context(), r.PathValue("application_credential_id"))
	if errors.Is(err, store.ErrNotFound) || err == nil && a.UserID != uid {
		return nil, api.NotFound("Could not find Application Credential: %s.", r.PathValue("application_credential_id"))
	}
	return a, err
}

func (s *Service) showAppCred(r *http.Request) (*api.Response, error) {
	a, err := s.loadAppCred(r, "identity:get_application_credential")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"application_credential": s.appCredJSON(r, a)}), nil
}

func (s *Service) deleteAppCred(r *http.Request) (*api.Response, error) {
	a, err := s.loadAppCred(r, "identity:delete_application_credential")
	if err != nil {
		return nil, err
	}
	if c := api.Caller(r); c != nil && c.ApplicationCredential != "" {
		parent, err := s.getAppCred(r.Context(), c.ApplicationCredential)
		if err != nil || !parent.Unrestricted {
			return nil, api.Forbidden("Using a restricted application credential to delete one is not allowed.")
		}
	}
	return s.deleteResource(r.Context(), "application credential", a.ID, `DELETE FROM application_credentials WHERE id = ?`)
}

// authAppCred authenticates with an application credential's secret.
func (s *Service) authAppCred(ctx context.Context, m *appCredMethod) (*authResult, error) {
	var a *appCred
	var err error
	switch {
	case m.ID != "":
		a, err = s.getAppCred(ctx, m.ID)
	case m.Name != "" && m.User != nil:
		var u *user
		if m.User.ID != "" {
			u, err = s.getUser(ctx, m.User.ID)
		} else {
			var dom *project
			if dom, err = s.lookupDomain(ctx, m.User.Domain); err == nil {
				u, err = s.userByName(ctx, dom.ID, m.User.Name)
			}
		}
		if err == nil {
			var id string
			err = s.db.QueryRow(ctx, `SELECT id FROM application_credentials WHERE user_id = ? AND name = ?`, u.ID, m.Name).Scan(&id)
			if err == nil {
				a, err = s.getAppCred(ctx, id)
			}
		}
	default:
		return nil, api.BadRequest("Invalid input for field 'auth.identity.application_credential': id, or name and user, is required.")
	}
	if err != nil {
		s.burnPasswordCheck(m.Secret)
		return nil, errAuth()
	}
	if a.expired() {
		return nil, errAuth()
	}
	holder := &user{ID: a.ID, PasswordHash: a.SecretHash}
	if !s.checkPassword(holder, m.Secret) {
		return nil, errAuth()
	}
	u, err := s.getUser(ctx, a.UserID)
	if err != nil || !u.Enabled {
		return nil, errAuth()
	}
	res := &authResult{user: u, methods: []string{"application_credential"}, appCred: a, scope: &scope{ProjectID: a.ProjectID}}
	if !a.ExpiresAt.IsZero() {
		res.expires = a.ExpiresAt
	}
	return res, nil
}

// Access rules, /v3/users/{user_id}/access_rules.

func (s *Service) listAccessRules(r *http.Request) (*api.Response, error) {
	uid, err := s.ownUser(r, "identity:list_access_rules")
	if err != nil {
		return nil, err
	}
	rules, err := store.QueryAll(r.Context(), s.db, scanAccessRule, `SELECT id, service, path, method FROM access_rules WHERE user_id = ? ORDER BY id`, uid)
	if err != nil {
		return nil, fmt.Errorf("list access rules of %s: %w", uid, err)
	}
	return listResponse(s, r, "access_rules", rules, func(r *http.Request, rule map[string]any) map[string]any {
		rule["links"] = s.selfLinks(r, "/v3/users/"+uid+"/access_rules/"+rule["id"].(string))
		return rule
	}), nil
}

func (s *Service) showAccessRule(r *http.Request) (*api.Response, error) {
	uid, err := s.ownUser(r, "identity:get_access_rule")
	if err != nil {
		return nil, err
	}
	rule, err := scanAccessRule(s.db.QueryRow(r.Context(), `SELECT id, service, path, method FROM access_rules WHERE user_id = ? AND id = ?`, uid, r.PathValue("access_rule_id")))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, api.NotFound("Could not find access rule: %s.", r.PathValue("access_rule_id"))
	}
	if err != nil {
		return nil, err
	}
	rule["links"] = s.selfLinks(r, r.URL.Path)
	return api.JSON(http.StatusOK, map[string]any{"access_rule": rule}), nil
}

func (s *Service) deleteAccessRule(r *http.Request) (*api.Response, error) {
	uid, err := s.ownUser(r, "identity:delete_access_rule")
	if err != nil {
		return nil, err
	}
	id := r.PathValue("access_rule_id")
	var inUse int
	if err := s.db.QueryRow(r.Context(), `SELECT COUNT(*) FROM application_credential_access_rules WHERE access_rule_id = ?`, id).Scan(&inUse); err != nil {
		return nil, err
	}
	if inUse > 0 {
		return nil, api.Forbidden("Access rule %s is in use by an application credential.", id)
	}
	res, err := s.db.Exec(r.Context(), `DELETE FROM access_rules WHERE user_id = ? AND id = ?`, uid, id)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, api.NotFound("Could not find access rule: %s.", id)
	}
	return api.NoContent(), nil
}

// parseISOTime accepts the ISO 8601 forms clients send for expiries.
func parseISOTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999Z", "2006-01-02T15:04:05.999999", "2006-01-02T15:04:05", "2006-01-02T15:04:05Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised time %q", s)
}
