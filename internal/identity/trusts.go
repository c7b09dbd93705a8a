package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// trust (OS-TRUST) lets a trustor delegate some of their roles on a
// project to a trustee, optionally impersonating the trustor.
type trust struct {
	ID, TrustorID, TrusteeID, ProjectID string
	Impersonation                       bool
	ExpiresAt                           time.Time
	RemainingUses                       *int
	AllowRedelegation                   bool
	RedelegationCount                   int
	RedelegatedFrom                     string
	RoleIDs                             []string
}

func (t *trust) expired() bool { return !t.ExpiresAt.IsZero() && !time.Now().Before(t.ExpiresAt) }

var trustMigrations = []store.Migration{
	{Version: 2, Name: "trusts", SQL: `
CREATE TABLE trusts (
	id TEXT PRIMARY KEY,
	trustor_user_id TEXT NOT NULL,
	trustee_user_id TEXT NOT NULL,
	project_id TEXT,
	impersonation BOOLEAN NOT NULL,
	expires_at TEXT,
	remaining_uses INTEGER,
	allow_redelegation BOOLEAN NOT NULL DEFAULT FALSE,
	redelegation_count INTEGER NOT NULL DEFAULT 0,
	redelegated_trust_id TEXT,
	deleted_at TEXT,
	extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX trusts_trustor ON trusts (trustor_user_id);
CREATE INDEX trusts_trustee ON trusts (trustee_user_id);
CREATE TABLE trust_roles (
	trust_id TEXT NOT NULL REFERENCES trusts (id) ON DELETE CASCADE,
	role_id TEXT NOT NULL,
	PRIMARY KEY (trust_id, role_id)
)`},
}

const trustColumns = `id, trustor_user_id, trustee_user_id, COALESCE(project_id, ''), impersonation, COALESCE(expires_at, ''),
	remaining_uses, allow_redelegation, redelegation_count, COALESCE(redelegated_trust_id, '')`

func (s *Service) scanTrust(ctx context.Context, row store.Scanner) (*trust, error) {
	t := &trust{}
	var exp string
	var uses sql.NullInt64
	if err := row.Scan(&t.ID, &t.TrustorID, &t.TrusteeID, &t.ProjectID, &t.Impersonation, &exp, &uses,
		&t.AllowRedelegation, &t.RedelegationCount, &t.RedelegatedFrom); err != nil {
		return nil, err
	}
	if uses.Valid {
		n := int(uses.Int64)
		t.RemainingUses = &n
	}
	var err error
	if t.ExpiresAt, err = store.ParseTime(exp); err != nil {
		return nil, err
	}
	if t.RoleIDs, err = s.linkedRoleIDs(ctx, "trust_roles", "trust_id", t.ID); err != nil {
		return nil, err
	}
	return t, nil
}

func (s *Service) getTrust(ctx context.Context, id string) (*trust, error) {
	t, err := s.scanTrust(ctx, s.db.QueryRow(ctx, `SELECT `+trustColumns+` FROM trusts WHERE id = ? AND deleted_at IS NULL`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return t, err
}

// trustRoles are the trust's roles the trustor still holds on the
// project, with what they imply; none left makes trust tokens invalid.
func (s *Service) trustRoles(ctx context.Context, t *trust) ([]string, error) {
	if t.ProjectID == "" {
		return nil, nil
	}
	have, err := s.scopeRoles(ctx, t.TrustorID, scope{ProjectID: t.ProjectID})
	if err != nil {
		return nil, err
	}
	graph, err := s.impliedRoleGraph(ctx)
	if err != nil {
		return nil, err
	}
	delegated := expandImplied(graph, t.RoleIDs)
	for _, id := range t.RoleIDs {
		if !slices.Contains(have, id) {
			return nil, nil
		}
	}
	return delegated, nil
}

// consumeTrustUse spends one of a trust's limited uses.
func (s *Service) consumeTrustUse(ctx context.Context, t *trust) error {
	if t.RemainingUses == nil {
		return nil
	}
	res, err := s.db.Exec(ctx, `UPDATE trusts SET remaining_uses = remaining_uses - 1 WHERE id = ? AND remaining_uses > 0`, t.ID)
	if err != nil {
		return fmt.Errorf("use trust %s: %w", t.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Keystone treats a used-up trust as gone.
		return api.NotFound("Could not find trust: %s.", t.ID)
	}
	s.changed()
	return nil
}

func (s *Service) trustJSON(r *http.Request, t *trust) map[string]any {
	roles := renderAll(r, s.existingRoles(r.Context(), t.RoleIDs), s.roleJSON)
	var exp, uses any
	if !t.ExpiresAt.IsZero() {
		exp = keystoneTime(t.ExpiresAt)
	}
	if t.RemainingUses != nil {
		uses = *t.RemainingUses
	}
	out := map[string]any{
		"id": t.ID, "trustor_user_id": t.TrustorID, "trustee_user_id": t.TrusteeID,
		"project_id": nullable(t.ProjectID), "impersonation": t.Impersonation, "expires_at": exp,
		"remaining_uses": uses, "allow_redelegation": t.AllowRedelegation, "redelegation_count": t.RedelegationCount,
		"redelegated_trust_id": nullable(t.RedelegatedFrom),
		"roles":                roles, "roles_links": map[string]any{"self": s.baseURL(r) + "/v3/OS-TRUST/trusts/" + t.ID + "/roles", "previous": nil, "next": nil},
		"links": s.selfLinks(r, "/v3/OS-TRUST/trusts/"+t.ID),
	}
	return out
}

type trustBody struct {
	TrustorUserID     string     `json:"trustor_user_id"`
	TrusteeUserID     string     `json:"trustee_user_id"`
	ProjectID         string     `json:"project_id"`
	Impersonation     *bool      `json:"impersonation"`
	ExpiresAt         *string    `json:"expires_at"`
	RemainingUses     *int       `json:"remaining_uses"`
	Roles             []nameOrID `json:"roles"`
	AllowRedelegation bool       `json:"allow_redelegation"`
	RedelegationCount *int       `json:"redelegation_count"`
}

// maxRedelegation bounds trust chains, as Keystone's max_redelegation_count.
const maxRedelegation = 3

func (s *Service) createTrust(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b trustBody
	if _, err := readEnvelope(r, "trust", &b, true); err != nil {
		return nil, err
	}
	c := api.Caller(r)
	if b.Impersonation == nil {
		return nil, api.BadRequest("Invalid input for field 'trust.impersonation': 'impersonation' is a required property.")
	}
	if b.TrustorUserID == "" || b.TrusteeUserID == "" {
		return nil, api.BadRequest("Invalid input for field 'trust': trustor_user_id and trustee_user_id are required.")
	}
	if c == nil || c.UserID != b.TrustorUserID {
		return nil, api.Forbidden("The authenticated user should match the trustor.")
	}
	if c.TrustID != "" && !s.mayRedelegate(ctx, c.TrustID) {
		return nil, api.Forbidden("Redelegation is not allowed for this trust.")
	}
	if _, err := s.getUser(ctx, b.TrusteeUserID); errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find user: %s.", b.TrusteeUserID)
	}
	if b.RemainingUses != nil && *b.RemainingUses <= 0 {
		return nil, api.BadRequest("Invalid input for field 'trust.remaining_uses': must be a positive integer or null.")
	}
	t := &trust{ID: newID(), TrustorID: b.TrustorUserID, TrusteeID: b.TrusteeUserID, ProjectID: b.ProjectID,
		Impersonation: *b.Impersonation, RemainingUses: b.RemainingUses, AllowRedelegation: b.AllowRedelegation}
	if b.AllowRedelegation {
		t.RedelegationCount = maxRedelegation
		if b.RedelegationCount != nil {
			if *b.RedelegationCount < 0 || *b.RedelegationCount > maxRedelegation {
				return nil, api.Forbidden("Requested redelegation depth of %d is out of the allowed range of [0..%d].", *b.RedelegationCount, maxRedelegation)
			}
			t.RedelegationCount = *b.RedelegationCount
		}
	}
	if b.ExpiresAt != nil && *b.ExpiresAt != "" {
		exp, err := parseISOTime(*b.ExpiresAt)
		if err != nil {
			return nil, api.BadRequest("Invalid input for field 'trust.expires_at': %q is not a valid time.", *b.ExpiresAt)
		}
		t.ExpiresAt = exp
	}
	if len(b.Roles) > 0 && t.ProjectID == "" {
		return nil, api.Forbidden("Roles can only be delegated on a project.")
	}
	if t.ProjectID != "" {
		if _, err := s.getProject(ctx, s.db, t.ProjectID); errors.Is(err, store.ErrNotFound) {
			return nil, api.NotFound("Could not find project: %s.", t.ProjectID)
		}
		have, err := s.scopeRoles(ctx, t.TrustorID, scope{ProjectID: t.ProjectID})
		if err != nil {
			return nil, err
		}
		for _, want := range b.Roles {
			var ro *role
			if want.ID != "" {
				ro, err = s.getRole(ctx, want.ID)
			} else {
				ro, err = s.roleByName(ctx, want.Name, "")
			}
			if err != nil {
				return nil, api.NotFound("Could not find role: %s.", want.ID+want.Name)
			}
			if !slices.Contains(have, ro.ID) {
				return nil, api.Forbidden("The trustor does not hold role %s on project %s.", ro.ID, t.ProjectID)
			}
			if !slices.Contains(t.RoleIDs, ro.ID) {
				t.RoleIDs = append(t.RoleIDs, ro.ID)
			}
		}
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var exp any
		if !t.ExpiresAt.IsZero() {
			exp = store.FormatTime(t.ExpiresAt)
		}
		var uses any
		if t.RemainingUses != nil {
			uses = *t.RemainingUses
		}
		if _, err := tx.Exec(ctx, `INSERT INTO trusts (id, trustor_user_id, trustee_user_id, project_id, impersonation, expires_at, remaining_uses, allow_redelegation, redelegation_count, redelegated_trust_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, t.TrustorID, t.TrusteeID, nullable(t.ProjectID), t.Impersonation, exp, uses,
			t.AllowRedelegation, t.RedelegationCount, nullable(c.TrustID)); err != nil {
			return err
		}
		for _, id := range t.RoleIDs {
			if _, err := tx.Exec(ctx, `INSERT INTO trust_roles (trust_id, role_id) VALUES (?, ?)`, t.ID, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create trust: %w", err)
	}
	s.changed()
	t.RedelegatedFrom = c.TrustID
	return api.JSON(http.StatusCreated, map[string]any{"trust": s.trustJSON(r, t)}), nil
}

func (s *Service) mayRedelegate(ctx context.Context, trustID string) bool {
	t, err := s.getTrust(ctx, trustID)
	return err == nil && t.AllowRedelegation && t.RedelegationCount > 0
}

// loadTrust fetches a trust the caller is party to (or may see by policy).
func (s *Service) loadTrust(r *http.Request) (*trust, error) {
	id := r.PathValue("trust_id")
	t, err := s.getTrust(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find trust: %s.", id)
	}
	if err != nil {
		return nil, err
	}
	c := api.Caller(r)
	if c != nil && (c.UserID == t.TrustorID || c.UserID == t.TrusteeID) {
		return t, nil
	}
	if err := s.api.Authorize(r, "identity:get_trust", map[string]any{"target": map[string]any{"trust": map[string]any{"id": t.ID}}}); err != nil {
		return nil, err
	}
	return t, nil
}

func (s *Service) showTrust(r *http.Request) (*api.Response, error) {
	t, err := s.loadTrust(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"trust": s.trustJSON(r, t)}), nil
}

func (s *Service) listTrusts(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := api.Caller(r)
	q := r.URL.Query()
	trustor, trustee := q.Get("trustor_user_id"), q.Get("trustee_user_id")
	// Users list their own trusts; listing everyone's needs the policy.
	if !(trustor != "" && trustor == c.UserID || trustee != "" && trustee == c.UserID) {
		if err := s.api.Authorize(r, "identity:list_trusts", nil); err != nil {
			return nil, err
		}
	}
	where, args := "deleted_at IS NULL", []any{}
	if trustor != "" {
		where, args = where+" AND trustor_user_id = ?", append(args, trustor)
	}
	if trustee != "" {
		where, args = where+" AND trustee_user_id = ?", append(args, trustee)
	}
	ids, err := store.QueryStrings(ctx, s.db, `SELECT id FROM trusts WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list trusts: %w", err)
	}
	out := []any{}
	for _, id := range ids {
		t, err := s.getTrust(ctx, id)
		if err != nil {
			continue
		}
		out = append(out, s.trustJSON(r, t))
	}
	return api.JSON(http.StatusOK, s.listBody(r, "trusts", out)), nil
}

func (s *Service) deleteTrust(r *http.Request) (*api.Response, error) {
	t, err := s.loadTrust(r)
	if err != nil {
		return nil, err
	}
	c := api.Caller(r)
	if c.UserID != t.TrustorID {
		if err := s.api.Authorize(r, "identity:delete_trust", nil); err != nil {
			return nil, err
		}
	}
	if _, err := s.db.Exec(r.Context(), `UPDATE trusts SET deleted_at = ? WHERE id = ?`, store.FormatTime(now()), t.ID); err != nil {
		return nil, err
	}
	if err := s.recordRevocation(r.Context(), revocationEvent{TrustID: t.ID}); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (s *Service) listTrustRoles(r *http.Request) (*api.Response, error) {
	t, err := s.loadTrust(r)
	if err != nil {
		return nil, err
	}
	return listResponse(s, r, "roles", s.existingRoles(r.Context(), t.RoleIDs), s.roleJSON), nil
}

func (s *Service) showTrustRole(r *http.Request) (*api.Response, error) {
	t, err := s.loadTrust(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("role_id")
	if !slices.Contains(t.RoleIDs, id) {
		return nil, api.NotFound("Could not find role %s in trust %s.", id, t.ID)
	}
	ro, err := s.getRole(r.Context(), id)
	if err != nil {
		return nil, api.NotFound("Could not find role: %s.", id)
	}
	return api.JSON(http.StatusOK, map[string]any{"role": s.roleJSON(r, ro)}), nil
}
