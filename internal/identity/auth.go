package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// authRequest is the body of POST /v3/auth/tokens.
type authRequest struct {
	Auth struct {
		Identity struct {
			Methods               []string        `json:"methods"`
			Password              *passwordMethod `json:"password"`
			Token                 *tokenMethod    `json:"token"`
			ApplicationCredential *appCredMethod  `json:"application_credential"`
			OAuth1                *oauth1Method   `json:"oauth1"`
			TOTP                  json.RawMessage `json:"totp"`
		} `json:"identity"`
		Scope json.RawMessage `json:"scope"`
	} `json:"auth"`
}

type nameOrID struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	Domain *nameOrID `json:"domain"`
}

type passwordMethod struct {
	User struct {
		ID       string    `json:"id"`
		Name     string    `json:"name"`
		Domain   *nameOrID `json:"domain"`
		Password string    `json:"password"`
	} `json:"user"`
}

type tokenMethod struct {
	ID string `json:"id"`
}

type appCredMethod struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	Secret string    `json:"secret"`
	User   *nameOrID `json:"user"`
}

type scopeRequest struct {
	Project *nameOrID `json:"project"`
	Domain  *nameOrID `json:"domain"`
	System  *struct {
		All bool `json:"all"`
	} `json:"system"`
	Trust *struct {
		ID string `json:"id"`
	} `json:"OS-TRUST:trust"`
}

// errAuth is the one answer for every failed authentication: the same
// message whether the user is unknown or the password wrong.
func errAuth() error {
	return api.Unauthorized("The request you have made requires authentication.")
}

// authResult is what a method proved.
type authResult struct {
	user     *user
	methods  []string
	parent   *tokenView // for the token method
	appCred  *appCred
	expires  time.Time
	accessID string // oauth1
	scope    *scope // forced scope (application credential, oauth1)
}

func (s *Service) createToken(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var req authRequest
	if err := api.DecodeJSON(r, &req); err != nil {
		return nil, err
	}
	id := req.Auth.Identity
	if len(id.Methods) == 0 {
		return nil, api.BadRequest("Invalid input for field 'auth.identity.methods': at least one method is required.")
	}
	var res *authResult
	var err error
	for _, m := range id.Methods {
		var one *authResult
		switch m {
		case "password":
			if id.Password == nil {
				return nil, api.BadRequest("Invalid input for field 'auth.identity.password': required by method 'password'.")
			}
			one, err = s.authPassword(ctx, id.Password)
		case "token":
			if id.Token == nil {
				return nil, api.BadRequest("Invalid input for field 'auth.identity.token': required by method 'token'.")
			}
			one, err = s.authToken(ctx, id.Token)
		case "application_credential":
			if id.ApplicationCredential == nil {
				return nil, api.BadRequest("Invalid input for field 'auth.identity.application_credential': required by method 'application_credential'.")
			}
			one, err = s.authAppCred(ctx, id.ApplicationCredential)
		case "oauth1":
			if id.OAuth1 == nil {
				return nil, api.BadRequest("Invalid input for field 'auth.identity.oauth1': required by method 'oauth1'.")
			}
			one, err = s.authOAuth1(r, id.OAuth1)
		default:
			return nil, api.Unauthorized("Attempted to authenticate with an unsupported method.")
		}
		if err != nil {
			return nil, err
		}
		if res != nil && res.user.ID != one.user.ID {
			return nil, errAuth()
		}
		if res == nil {
			res = one
		} else {
			res.methods = append(res.methods, one.methods...)
		}
	}
	sc, err := s.resolveScope(ctx, r, req.Auth.Scope, res)
	if err != nil {
		return nil, err
	}
	p := &tokenPayload{UserID: res.user.ID, Methods: dedupe(res.methods), IssuedAt: now()}
	p.ExpiresAt = p.IssuedAt.Add(s.cfg.TokenLifetime)
	if !res.expires.IsZero() && res.expires.Before(p.ExpiresAt) {
		p.ExpiresAt = res.expires
	}
	p.AuditIDs = []string{newAuditID()}
	if res.parent != nil && len(res.parent.payload.AuditIDs) > 0 {
		p.AuditIDs = append(p.AuditIDs, res.parent.payload.AuditIDs[len(res.parent.payload.AuditIDs)-1])
	}
	p.ProjectID, p.DomainID, p.System, p.TrustID = sc.ProjectID, sc.DomainID, sc.System, sc.TrustID
	if res.appCred != nil {
		p.AppCredID = res.appCred.ID
	}
	if res.parent != nil {
		if res.parent.payload.AppCredID != "" {
			p.AppCredID = res.parent.payload.AppCredID
		}
	}
	p.AccessTokenID = res.accessID
	if sc.TrustID != "" {
		t, err := s.getTrust(ctx, sc.TrustID)
		if err != nil {
			return nil, errAuth()
		}
		if t.Impersonation {
			p.UserID = t.TrustorID
		}
		if !t.ExpiresAt.IsZero() && t.ExpiresAt.Before(p.ExpiresAt) {
			p.ExpiresAt = t.ExpiresAt
		}
		if err := s.consumeTrustUse(ctx, t); err != nil {
			return nil, err
		}
	}
	token, err := s.issue(p)
	if err != nil {
		return nil, err
	}
	v, err := s.resolveToken(ctx, token, p)
	if errors.Is(err, errTokenInvalid) {
		return nil, s.scopeDenied(sc, res.user)
	}
	if err != nil {
		return nil, err
	}
	body, err := s.tokenBody(r, v, !r.URL.Query().Has("nocatalog"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, body).WithHeader("X-Subject-Token", token), nil
}

func (s *Service) scopeDenied(sc scope, u *user) error {
	switch {
	case sc.ProjectID != "":
		return api.Unauthorized("User %s has no access to project %s.", u.ID, sc.ProjectID)
	case sc.DomainID != "":
		return api.Unauthorized("User %s has no access to domain %s.", u.ID, sc.DomainID)
	case sc.System:
		return api.Unauthorized("User %s has no access to the system.", u.ID)
	}
	return errAuth()
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// lookupDomain resolves a domain reference by id or name.
func (s *Service) lookupDomain(ctx context.Context, ref *nameOrID) (*project, error) {
	if ref == nil || ref.ID == "" && ref.Name == "" {
		return nil, api.BadRequest("Invalid input for field 'domain': id or name is required.")
	}
	if ref.ID != "" {
		return s.cachedDomain(ctx, ref.ID)
	}
	return s.cachedDomainByName(ctx, ref.Name)
}

func (s *Service) authPassword(ctx context.Context, m *passwordMethod) (*authResult, error) {
	var u *user
	var err error
	switch {
	case m.User.ID != "":
		u, err = s.cachedUser(ctx, m.User.ID)
	case m.User.Name != "":
		if m.User.Domain == nil {
			return nil, api.BadRequest("Invalid input for field 'auth.identity.password.user': a user name needs a domain.")
		}
		var dom *project
		dom, err = s.lookupDomain(ctx, m.User.Domain)
		if err == nil {
			u, err = s.cachedUserByName(ctx, dom.ID, m.User.Name)
		}
	default:
		return nil, api.BadRequest("Invalid input for field 'auth.identity.password.user': id or name is required.")
	}
	if errors.Is(err, store.ErrNotFound) {
		s.burnPasswordCheck(m.User.Password)
		return nil, errAuth()
	}
	if err != nil {
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			return nil, err
		}
		return nil, err
	}
	if s.lockedOut(u) {
		s.burnPasswordCheck(m.User.Password)
		return nil, api.Unauthorized("The account is locked for user: %s.", u.ID)
	}
	ok := s.checkPassword(u, m.User.Password)
	s.noteAuthResult(ctx, u, ok)
	if !ok {
		return nil, errAuth()
	}
	if !u.Enabled {
		return nil, errAuth()
	}
	if d, err := s.cachedDomain(ctx, u.DomainID); err != nil || !d.Enabled {
		return nil, errAuth()
	}
	return &authResult{user: u, methods: []string{"password"}}, nil
}

func (s *Service) authToken(ctx context.Context, m *tokenMethod) (*authResult, error) {
	v, err := s.validate(ctx, m.ID, false)
	if errors.Is(err, errTokenInvalid) {
		// Keystone's token method answers an invalid token with 404.
		return nil, api.NotFound("Failed to validate token")
	}
	if err != nil {
		return nil, err
	}
	if v.payload.TrustID != "" {
		return nil, api.Forbidden("Cannot rescope a token obtained through a trust.")
	}
	if v.payload.AccessTokenID != "" {
		return nil, api.Forbidden("Using OAuth-scoped token to create another token. Create a new OAuth-scoped token instead.")
	}
	methods := append([]string{"token"}, v.payload.Methods...)
	return &authResult{user: v.user, methods: methods, parent: v, expires: v.payload.ExpiresAt}, nil
}

// resolveScope turns the request's scope into a token scope.
func (s *Service) resolveScope(ctx context.Context, r *http.Request, raw json.RawMessage, res *authResult) (scope, error) {
	if res.scope != nil {
		if len(raw) > 0 && string(raw) != "null" {
			var req scopeRequest
			if err := json.Unmarshal(raw, &req); err == nil && (req.Project != nil || req.Domain != nil || req.System != nil || req.Trust != nil) {
				if req.Project == nil || req.Project.ID != res.scope.ProjectID {
					return scope{}, api.Unauthorized("This credential is bound to its own scope and cannot be rescoped.")
				}
			}
		}
		return *res.scope, nil
	}
	if len(raw) == 0 || string(raw) == "null" {
		if res.parent != nil {
			// A token rescoped without a scope keeps the original's.
			p := res.parent.payload
			return scope{ProjectID: p.ProjectID, DomainID: p.DomainID, System: p.System}, nil
		}
		return s.defaultScope(ctx, res.user), nil
	}
	if string(raw) == `"unscoped"` {
		return scope{}, nil
	}
	var req scopeRequest
	if err := api.DecodeBytes(raw, &req, true); err != nil {
		return scope{}, prefixField(err, "auth.scope")
	}
	n := 0
	for _, set := range []bool{req.Project != nil, req.Domain != nil, req.System != nil, req.Trust != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return scope{}, api.BadRequest("Specify exactly one of project, domain, system or OS-TRUST:trust as the scope.")
	}
	if res.parent != nil && res.parent.payload.AppCredID != "" {
		return scope{}, api.Unauthorized("A token from an application credential cannot be rescoped.")
	}
	switch {
	case req.Project != nil:
		var p *project
		var err error
		if req.Project.ID != "" {
			p, err = s.cachedProject(ctx, req.Project.ID)
		} else if req.Project.Name != "" {
			if req.Project.Domain == nil {
				return scope{}, api.BadRequest("Invalid input for field 'auth.scope.project': a project name needs a domain.")
			}
			var dom *project
			if dom, err = s.lookupDomain(ctx, req.Project.Domain); err == nil {
				var id string
				if id, err = s.cachedProjectByName(ctx, dom.ID, req.Project.Name); err == nil {
					p, err = s.cachedProject(ctx, id)
				}
			}
		} else {
			return scope{}, api.BadRequest("Invalid input for field 'auth.scope.project': id or name is required.")
		}
		if err != nil {
			var apiErr *api.Error
			if errors.As(err, &apiErr) {
				return scope{}, err
			}
			return scope{}, api.Unauthorized("Could not find the requested project.")
		}
		if !p.Enabled {
			return scope{}, api.Unauthorized("Project %s is disabled.", p.ID)
		}
		return scope{ProjectID: p.ID}, nil
	case req.Domain != nil:
		d, err := s.lookupDomain(ctx, req.Domain)
		if err != nil {
			var apiErr *api.Error
			if errors.As(err, &apiErr) {
				return scope{}, err
			}
			return scope{}, api.Unauthorized("Could not find the requested domain.")
		}
		if !d.Enabled {
			return scope{}, api.Unauthorized("Domain %s is disabled.", d.ID)
		}
		return scope{DomainID: d.ID}, nil
	case req.System != nil:
		if !req.System.All {
			return scope{}, api.BadRequest("Invalid input for field 'auth.scope.system': only {\"all\": true} is supported.")
		}
		return scope{System: true}, nil
	default:
		t, err := s.getTrust(ctx, req.Trust.ID)
		if err != nil {
			return scope{}, api.NotFound("Could not find trust: %s.", req.Trust.ID)
		}
		if t.TrusteeID != res.user.ID {
			return scope{}, api.Forbidden("The user is not the trustee of trust %s.", t.ID)
		}
		if t.expired() || t.RemainingUses != nil && *t.RemainingUses <= 0 {
			return scope{}, api.NotFound("Could not find trust: %s.", t.ID)
		}
		return scope{ProjectID: t.ProjectID, TrustID: t.ID}, nil
	}
}

// defaultScope scopes a token to the user's default project when they
// still have a role there; otherwise the token is unscoped.
func (s *Service) defaultScope(ctx context.Context, u *user) scope {
	if u.DefaultProjectID == "" {
		return scope{}
	}
	p, err := s.getProject(ctx, s.db, u.DefaultProjectID)
	if err != nil || !p.Enabled {
		return scope{}
	}
	roles, err := s.scopeRoles(ctx, u.ID, scope{ProjectID: p.ID})
	if err != nil || len(roles) == 0 {
		return scope{}
	}
	return scope{ProjectID: p.ID}
}

// subjectToken validates the X-Subject-Token of a token API call, which
// Keystone answers with 404 when it is not valid.
func (s *Service) subjectToken(r *http.Request) (*tokenView, error) {
	tok := r.Header.Get("X-Subject-Token")
	if tok == "" {
		return nil, api.BadRequest("X-Subject-Token header is required.")
	}
	allowExpired := false
	if v, ok := queryBool(r, "allow_expired"); ok && v {
		allowExpired = true
	}
	v, err := s.validate(r.Context(), tok, allowExpired)
	if errors.Is(err, errTokenInvalid) {
		return nil, api.NotFound("Failed to validate token")
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// callerMayInspect: a user may always see and revoke their own tokens;
// others need the policy action.
func (s *Service) callerMayInspect(r *http.Request, action string, v *tokenView) error {
	c := api.Caller(r)
	if c != nil && c.UserID == v.user.ID {
		return nil
	}
	return s.api.Authorize(r, action, map[string]any{"target": map[string]any{"token": map[string]any{"user_id": v.user.ID}}})
}

func (s *Service) validateToken(r *http.Request) (*api.Response, error) {
	v, err := s.subjectToken(r)
	if err != nil {
		return nil, err
	}
	if err := s.callerMayInspect(r, "identity:validate_token", v); err != nil {
		return nil, err
	}
	body, err := s.renderedBody(r, v, !r.URL.Query().Has("nocatalog"))
	if err != nil {
		return nil, err
	}
	return &api.Response{Status: http.StatusOK, Raw: body, Header: http.Header{
		"Content-Type": {"application/json"}, "X-Subject-Token": {r.Header.Get("X-Subject-Token")}}}, nil
}

func (s *Service) checkToken(r *http.Request) (*api.Response, error) {
	v, err := s.subjectToken(r)
	if err != nil {
		return nil, err
	}
	if err := s.callerMayInspect(r, "identity:check_token", v); err != nil {
		return nil, err
	}
	return &api.Response{Status: http.StatusOK, Header: http.Header{"X-Subject-Token": {r.Header.Get("X-Subject-Token")}}}, nil
}

func (s *Service) revokeToken(r *http.Request) (*api.Response, error) {
	v, err := s.subjectToken(r)
	if err != nil {
		return nil, err
	}
	if err := s.callerMayInspect(r, "identity:revoke_token", v); err != nil {
		return nil, err
	}
	if err := s.recordRevocation(r.Context(), revocationEvent{AuditID: v.payload.AuditIDs[0], IssuedBefore: v.payload.IssuedAt}); err != nil {
		return nil, err
	}
	s.tokenCache.Delete(r.Header.Get("X-Subject-Token"))
	return api.NoContent(), nil
}

func (s *Service) authCatalog(r *http.Request) (*api.Response, error) {
	v, err := s.validate(r.Context(), r.Header.Get("X-Auth-Token"), false)
	if err != nil {
		return nil, errAuth()
	}
	if v.project == nil && v.domain == nil && !v.payload.System {
		return nil, api.Forbidden("The service catalog is only available to scoped tokens.")
	}
	cat, err := s.catalogFor(r, v)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"catalog": cat, "links": s.selfLinks(r, r.URL.Path)}), nil
}

// authProjects lists the projects the caller can scope to.
func (s *Service) authProjects(r *http.Request) (*api.Response, error) {
	return s.authScopes(r, "projects", false)
}

// authDomains lists the domains the caller can scope to.
func (s *Service) authDomains(r *http.Request) (*api.Response, error) {
	return s.authScopes(r, "domains", true)
}

func (s *Service) authScopes(r *http.Request, key string, domains bool) (*api.Response, error) {
	ps, err := s.scopableProjects(r.Context(), api.Caller(r).UserID, domains)
	if err != nil {
		return nil, err
	}
	return listResponse(s, r, key, ps, s.projectJSON), nil
}

func (s *Service) authSystem(r *http.Request) (*api.Response, error) {
	c := api.Caller(r)
	roles, err := s.scopeRoles(r.Context(), c.UserID, scope{System: true})
	if err != nil {
		return nil, err
	}
	out := []any{}
	if len(roles) > 0 {
		out = append(out, map[string]any{"all": true})
	}
	return api.JSON(http.StatusOK, map[string]any{"system": out, "links": s.selfLinks(r, r.URL.Path)}), nil
}

// scopableProjects returns the enabled projects (or domains) where the
// user effectively holds a role.
func (s *Service) scopableProjects(ctx context.Context, userID string, domains bool) ([]*project, error) {
	all, err := store.QueryAll(ctx, s.db, scanProject, `SELECT `+projectColumns+` FROM projects WHERE is_domain = ? AND enabled = ? ORDER BY name`, domains, true)
	if err != nil {
		return nil, fmt.Errorf("list scopable projects: %w", err)
	}
	var out []*project
	for _, p := range all {
		sc := scope{ProjectID: p.ID}
		if domains {
			sc = scope{DomainID: p.ID}
		}
		roles, err := s.scopeRoles(ctx, userID, sc)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, err
		}
		if len(roles) > 0 {
			if p.Tags, err = s.projectTags(ctx, s.db, p.ID); err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// listUserProjects is GET /v3/users/{user_id}/projects.
func (s *Service) listUserProjects(r *http.Request) (*api.Response, error) {
	u, err := s.loadUserTarget(r, "identity:list_user_projects")
	if err != nil {
		return nil, err
	}
	ps, err := s.scopableProjects(r.Context(), u.ID, false)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, p := range ps {
		if name := r.URL.Query().Get("name"); name != "" && p.Name != name {
			continue
		}
		if d := r.URL.Query().Get("domain_id"); d != "" && p.DomainID != d {
			continue
		}
		out = append(out, s.projectJSON(r, p))
	}
	return api.JSON(http.StatusOK, s.listBody(r, "projects", out)), nil
}
