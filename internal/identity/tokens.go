package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/fernet"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// scope is what a token is scoped to; all empty means unscoped.
type scope struct {
	ProjectID string
	DomainID  string
	System    bool
	TrustID   string
}

// errTokenNotFound is Keystone's answer for a token that fails validation
// through the API: 404 on GET /v3/auth/tokens, 401 elsewhere.
var errTokenInvalid = errors.New("invalid token")

// tokenView is everything known about a valid token, enough to render the
// token body and the caller identity.
type tokenView struct {
	payload *tokenPayload
	user    *user
	userDom *project
	project *project // project scope
	projDom *project
	domain  *project // domain scope
	roles   []*role
	appCred *appCred
	trust   *trust

	identity *api.Identity

	// rendered caches the encoded token body, with and without the
	// catalog: a view lives for one generation, and so does its body.
	rendered [2]atomic.Pointer[[]byte]
}

// renderedBody returns the token body as JSON, encoding it once per view.
func (s *Service) renderedBody(r *http.Request, v *tokenView, withCatalog bool) ([]byte, error) {
	i := 0
	if withCatalog {
		i = 1
	}
	if b := v.rendered[i].Load(); b != nil {
		return *b, nil
	}
	body, err := s.tokenBody(r, v, withCatalog)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode token: %w", err)
	}
	v.rendered[i].Store(&data)
	return data, nil
}

// cachedToken is a validated token remembered until the next identity
// write (generation) or its expiry.
type cachedToken struct {
	generation uint64
	view       *tokenView
}

const tokenCacheLimit = 200_000

var tokenCacheSize atomic.Int64

// newAuditID returns a random audit id as Keystone renders them.
func newAuditID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// issue encrypts a payload into a token string.
func (s *Service) issue(p *tokenPayload) (string, error) {
	tok, err := s.keys.Encrypt(p.marshal())
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return tok, nil
}

// ValidateToken implements api.TokenValidator for in-process services.
func (s *Service) ValidateToken(ctx context.Context, token string) (*api.Identity, error) {
	v, err := s.validate(ctx, token, false)
	if err != nil {
		return nil, err
	}
	return v.identity, nil
}

// validate decrypts and checks a token: expiry (unless allowExpired, within
// the configured window), revocation, and that its user, scope and roles
// are still valid. Results are cached until the next identity write.
func (s *Service) validate(ctx context.Context, token string, allowExpired bool) (*tokenView, error) {
	gen := s.generation.Load()
	if c, ok := s.tokenCache.Load(token); ok {
		ct := c.(*cachedToken)
		if ct.generation == gen {
			if !allowExpired && !time.Now().Before(ct.view.payload.ExpiresAt) {
				return nil, errTokenInvalid
			}
			return ct.view, nil
		}
	}
	raw, _, err := s.keys.Decrypt(token, 0)
	if err != nil {
		return nil, errTokenInvalid
	}
	p, err := unmarshalPayload(raw)
	if err != nil {
		return nil, errTokenInvalid
	}
	nowT := time.Now()
	if !nowT.Before(p.ExpiresAt) {
		if !allowExpired || nowT.After(p.ExpiresAt.Add(s.cfg.AllowExpiredWindow)) {
			return nil, errTokenInvalid
		}
	}
	if s.revoked(p) {
		return nil, errTokenInvalid
	}
	v, err := s.resolveToken(ctx, token, p)
	if err != nil {
		return nil, err
	}
	if nowT.Before(p.ExpiresAt) {
		if tokenCacheSize.Add(1) > tokenCacheLimit {
			s.tokenCache.Clear()
			tokenCacheSize.Store(1)
		}
		s.tokenCache.Store(token, &cachedToken{generation: gen, view: v})
	}
	return v, nil
}

// resolveToken loads what a payload refers to and checks it is all still
// enabled and authorized.
func (s *Service) resolveToken(ctx context.Context, token string, p *tokenPayload) (*tokenView, error) {
	v := &tokenView{payload: p}
	var err error
	v.user, err = s.cachedUser(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	if !v.user.Enabled {
		return nil, errTokenInvalid
	}
	if v.userDom, err = s.cachedDomain(ctx, v.user.DomainID); err != nil || !v.userDom.Enabled {
		return nil, errTokenInvalid
	}
	sc := scope{ProjectID: p.ProjectID, DomainID: p.DomainID, System: p.System, TrustID: p.TrustID}
	if p.TrustID != "" {
		if v.trust, err = s.getTrust(ctx, p.TrustID); err != nil {
			return nil, errTokenInvalid
		}
		if v.trust.expired() {
			return nil, errTokenInvalid
		}
	}
	if p.AppCredID != "" {
		if v.appCred, err = s.getAppCred(ctx, p.AppCredID); err != nil {
			return nil, errTokenInvalid
		}
		if v.appCred.expired() {
			return nil, errTokenInvalid
		}
	}
	roleIDs, err := s.tokenRoles(ctx, v, sc)
	if err != nil {
		return nil, err
	}
	for _, id := range roleIDs {
		ro, err := s.cachedRole(ctx, id)
		if err != nil {
			continue
		}
		v.roles = append(v.roles, ro)
	}
	v.identity = s.identityOf(token, v)
	return v, nil
}

// tokenRoles resolves the scope and the roles a token carries in it, and
// fails when the scope is gone, disabled, or the user no longer holds any
// role there (which is how removing a role revokes scoped tokens).
func (s *Service) tokenRoles(ctx context.Context, v *tokenView, sc scope) ([]string, error) {
	p := v.payload
	var err error
	switch {
	case p.ProjectID != "":
		if v.project, err = s.cachedProject(ctx, p.ProjectID); err != nil || !v.project.Enabled {
			return nil, errTokenInvalid
		}
		if v.project.IsDomain {
			v.projDom = v.project
		} else if v.projDom, err = s.cachedDomain(ctx, v.project.DomainID); err != nil || !v.projDom.Enabled {
			return nil, errTokenInvalid
		}
	case p.DomainID != "":
		if v.domain, err = s.cachedDomain(ctx, p.DomainID); err != nil || !v.domain.Enabled {
			return nil, errTokenInvalid
		}
	case !p.System:
		return nil, nil // unscoped
	}
	var roles []string
	switch {
	case v.trust != nil:
		roles, err = s.trustRoles(ctx, v.trust)
	default:
		roles, err = s.cachedScopeRoles(ctx, p.UserID, sc)
	}
	if err != nil {
		return nil, err
	}
	if v.appCred != nil {
		roles = intersectRoles(roles, v.appCred.RoleIDs)
	}
	if p.AccessTokenID != "" {
		if roles, err = s.oauthTokenRoles(ctx, p.AccessTokenID, roles); err != nil {
			return nil, err
		}
	}
	if len(roles) == 0 {
		return nil, errTokenInvalid
	}
	return roles, nil
}

func intersectRoles(have, allowed []string) []string {
	var out []string
	for _, h := range have {
		for _, a := range allowed {
			if h == a {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// identityOf builds the caller identity other services authorize from.
func (s *Service) identityOf(token string, v *tokenView) *api.Identity {
	p := v.payload
	id := &api.Identity{
		Token: token, UserID: v.user.ID, UserName: v.user.Name, UserDomainID: v.user.DomainID, UserDomainName: v.userDom.Name,
		System: p.System, Methods: p.Methods, AuditIDs: p.AuditIDs, IssuedAt: p.IssuedAt, ExpiresAt: p.ExpiresAt,
		TrustID: p.TrustID, ApplicationCredential: p.AppCredID,
	}
	if v.project != nil {
		id.ProjectID, id.ProjectName = v.project.ID, v.project.Name
		id.ProjectDomainID, id.ProjectDomainName = v.projDom.ID, v.projDom.Name
		id.IsAdminProject = s.isAdminProject(v.project)
	}
	if v.domain != nil {
		id.DomainID, id.DomainName = v.domain.ID, v.domain.Name
	}
	for _, r := range v.roles {
		if r.DomainID != "" {
			continue
		}
		id.Roles = append(id.Roles, api.Role{ID: r.ID, Name: r.Name})
	}
	return id
}

// isAdminProject: the project bootstrap created for the cloud admin.
func (s *Service) isAdminProject(p *project) bool {
	return p.Name == "admin" && p.DomainID == DefaultDomainID
}

// tokenBody renders the token as Keystone's {"token": {...}}.
func (s *Service) tokenBody(r *http.Request, v *tokenView, withCatalog bool) (map[string]any, error) {
	p := v.payload
	t := map[string]any{
		"methods":    p.Methods,
		"audit_ids":  p.AuditIDs,
		"expires_at": keystoneTime(p.ExpiresAt),
		"issued_at":  keystoneTime(p.IssuedAt),
		"user": map[string]any{
			"id": v.user.ID, "name": v.user.Name,
			"domain":              map[string]any{"id": v.userDom.ID, "name": v.userDom.Name},
			"password_expires_at": nullable(v.user.PasswordExpiresAt),
		},
	}
	scoped := false
	switch {
	case v.project != nil:
		scoped = true
		t["project"] = map[string]any{"id": v.project.ID, "name": v.project.Name,
			"domain": map[string]any{"id": v.projDom.ID, "name": v.projDom.Name}}
		t["is_domain"] = v.project.IsDomain
		if s.isAdminProject(v.project) {
			t["is_admin_project"] = true
		}
	case v.domain != nil:
		scoped = true
		t["domain"] = map[string]any{"id": v.domain.ID, "name": v.domain.Name}
	case p.System:
		scoped = true
		t["system"] = map[string]any{"all": true}
	}
	if scoped {
		roles := []any{}
		for _, ro := range v.roles {
			if ro.DomainID != "" {
				continue
			}
			roles = append(roles, map[string]any{"id": ro.ID, "name": ro.Name})
		}
		t["roles"] = roles
		if withCatalog {
			cat, err := s.catalogFor(r, v)
			if err != nil {
				return nil, err
			}
			t["catalog"] = cat
		}
	}
	if v.appCred != nil {
		t["application_credential"] = map[string]any{"id": v.appCred.ID, "name": v.appCred.Name, "restricted": !v.appCred.Unrestricted}
		if len(v.appCred.AccessRules) > 0 {
			t["application_credential"].(map[string]any)["access_rules"] = v.appCred.AccessRules
		}
	}
	if v.trust != nil {
		t["OS-TRUST:trust"] = map[string]any{
			"id": v.trust.ID, "impersonation": v.trust.Impersonation,
			"trustor_user": map[string]any{"id": v.trust.TrustorID},
			"trustee_user": map[string]any{"id": v.trust.TrusteeID},
		}
	}
	if p.AccessTokenID != "" {
		t["OS-OAUTH1"] = map[string]any{"access_token_id": p.AccessTokenID, "consumer_id": s.oauthConsumerOf(r.Context(), p.AccessTokenID)}
	}
	return map[string]any{"token": t}, nil
}

// keystoneTime renders times as Keystone does: microseconds and a Z.
func keystoneTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// Revocation.

type revocationEvent struct {
	UserID, ProjectID, DomainID, AuditID, AuditChainID, TrustID string
	IssuedBefore                                                time.Time
}

type revocationList struct {
	events []revocationEvent
}

// matches reports whether the event revokes a token with this payload.
func (e *revocationEvent) matches(p *tokenPayload) bool {
	if p.IssuedAt.After(e.IssuedBefore) {
		return false
	}
	if e.UserID != "" && e.UserID != p.UserID {
		return false
	}
	if e.ProjectID != "" && e.ProjectID != p.ProjectID {
		return false
	}
	if e.DomainID != "" && e.DomainID != p.DomainID && e.ProjectID == "" {
		return false
	}
	if e.TrustID != "" && e.TrustID != p.TrustID {
		return false
	}
	if e.AuditID != "" && (len(p.AuditIDs) == 0 || p.AuditIDs[0] != e.AuditID) {
		return false
	}
	if e.AuditChainID != "" {
		chain := ""
		if len(p.AuditIDs) > 0 {
			chain = p.AuditIDs[len(p.AuditIDs)-1]
		}
		if chain != e.AuditChainID {
			return false
		}
	}
	return true
}

func (s *Service) revoked(p *tokenPayload) bool {
	list := s.revocations.Load()
	for i := range list.events {
		if list.events[i].matches(p) {
			return true
		}
	}
	return false
}

var revocationMu sync.Mutex

// recordRevocation stores an event and reloads the in-memory list. Events
// older than any token could be (lifetime plus the allow_expired window)
// are pruned.
func (s *Service) recordRevocation(ctx context.Context, e revocationEvent) error {
	if e.IssuedBefore.IsZero() {
		e.IssuedBefore = now()
	}
	revocationMu.Lock()
	defer revocationMu.Unlock()
	_, err := s.db.Exec(ctx, `INSERT INTO revocation_events (id, user_id, project_id, domain_id, audit_id, audit_chain_id, trust_id, issued_before, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, newID(), nullable(e.UserID), nullable(e.ProjectID), nullable(e.DomainID), nullable(e.AuditID),
		nullable(e.AuditChainID), nullable(e.TrustID), store.FormatTime(e.IssuedBefore), store.FormatTime(now()))
	if err != nil {
		return fmt.Errorf("record revocation: %w", err)
	}
	cutoff := now().Add(-(s.cfg.TokenLifetime + s.cfg.AllowExpiredWindow))
	if _, err := s.db.Exec(ctx, `DELETE FROM revocation_events WHERE revoked_at < ?`, store.FormatTime(cutoff)); err != nil {
		return fmt.Errorf("prune revocations: %w", err)
	}
	// Reload before bumping the generation: a validation that starts
	// after the bump must see the new event, or it could cache the
	// revoked token under the new generation.
	if err := s.loadRevocations(ctx); err != nil {
		return err
	}
	s.changed()
	return nil
}

func (s *Service) loadRevocations(ctx context.Context) error {
	events, err := store.QueryAll(ctx, s.db, scanRevocationEvent, `SELECT COALESCE(user_id, ''), COALESCE(project_id, ''), COALESCE(domain_id, ''), COALESCE(audit_id, ''),
		COALESCE(audit_chain_id, ''), COALESCE(trust_id, ''), issued_before FROM revocation_events`)
	if err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}
	s.revocations.Store(&revocationList{events: events})
	return nil
}

func scanRevocationEvent(row store.Scanner) (e revocationEvent, err error) {
	var before string
	if err := row.Scan(&e.UserID, &e.ProjectID, &e.DomainID, &e.AuditID, &e.AuditChainID, &e.TrustID, &before); err != nil {
		return e, err
	}
	if e.IssuedBefore, err = store.ParseTime(before); err != nil {
		return e, fmt.Errorf("revocation time %q: %w", before, err)
	}
	return e, nil
}

// RotateKeys rotates the key repository and reloads it.
func (s *Service) RotateKeys() error {
	if err := fernet.Rotate(s.cfg.KeyDir, s.cfg.MaxActiveKeys); err != nil {
		return err
	}
	return s.keys.Reload()
}
