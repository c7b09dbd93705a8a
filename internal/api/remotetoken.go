package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// RemoteValidator validates tokens through the identity API, for services
// running in a process without the identity service — what
// keystonemiddleware's auth_token does. It authenticates as a service user,
// asks GET /v3/auth/tokens for each new token, and caches answers (valid
// and invalid) for CacheTTL so that a busy service does not ask identity on
// every request.
type RemoteValidator struct {
	// AuthURL is the identity endpoint, e.g. http://127.0.0.1:5000/v3.
	AuthURL string
	// Service user credentials (user and project in the named domains).
	Username, Password, Project, UserDomain, ProjectDomain string
	// CacheTTL bounds how long an answer is reused (keystonemiddleware's
	// token_cache_time defaults to 300 s). A revoked token may be accepted
	// for up to this long.
	CacheTTL time.Duration
	// Client is the HTTP client; http.DefaultClient when nil.
	Client *http.Client

	mu           sync.Mutex
	serviceToken string    // guarded by mu
	serviceExp   time.Time // guarded by mu
	cache        map[string]cachedIdentity
}

type cachedIdentity struct {
	id      *Identity
	invalid bool
	until   time.Time
}

const remoteCacheLimit = 50_000

var errRemoteInvalid = errors.New("token rejected by the identity service")

// ValidateToken implements TokenValidator.
func (v *RemoteValidator) ValidateToken(ctx context.Context, token string) (*Identity, error) {
	now := time.Now()
	v.mu.Lock()
	if c, ok := v.cache[token]; ok && now.Before(c.until) {
		v.mu.Unlock()
		if c.invalid {
			return nil, errRemoteInvalid
		}
		return c.id, nil
	}
	v.mu.Unlock()
	id, err := v.fetch(ctx, token)
	if err != nil && !errors.Is(err, errRemoteInvalid) {
		return nil, err // identity unreachable: do not cache
	}
	ttl := v.CacheTTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	until := now.Add(ttl)
	if id != nil && id.ExpiresAt.Before(until) {
		until = id.ExpiresAt
	}
	v.mu.Lock()
	if v.cache == nil || len(v.cache) >= remoteCacheLimit {
		v.cache = map[string]cachedIdentity{}
	}
	v.cache[token] = cachedIdentity{id: id, invalid: id == nil, until: until}
	v.mu.Unlock()
	return id, err
}

func (v *RemoteValidator) client() *http.Client {
	if v.Client != nil {
		return v.Client
	}
	return http.DefaultClient
}

// fetch validates one token with the identity API, authenticating the
// service user first and once more if its own token was rejected.
func (v *RemoteValidator) fetch(ctx context.Context, token string) (*Identity, error) {
	for attempt := 0; attempt < 2; attempt++ {
		svc, err := v.ownToken(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(v.AuthURL, "/")+"/auth/tokens?nocatalog", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Auth-Token", svc)
		req.Header.Set("X-Subject-Token", token)
		if id := RequestID(ctx); id != "" {
			req.Header.Set(RequestIDHeader, id)
		}
		resp, err := v.client().Do(req)
		if err != nil {
			return nil, fmt.Errorf("validate token with identity: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("validate token with identity: %w", err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			id, err := parseTokenBody(body)
			if err != nil {
				return nil, err
			}
			id.Token = token
			return id, nil
		case http.StatusNotFound:
			return nil, errRemoteInvalid
		case http.StatusUnauthorized:
			continue // our own token expired or was revoked
		default:
			return nil, fmt.Errorf("validate token with identity: unexpected status %d", resp.StatusCode)
		}
	}
	return nil, errors.New("validate token with identity: the service credentials were rejected")
}

// ownToken returns the service user's token, renewing it when it is close
// to expiry or force is set.
func (v *RemoteValidator) ownToken(ctx context.Context, force bool) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !force && v.serviceToken != "" && time.Until(v.serviceExp) > time.Minute {
		return v.serviceToken, nil
	}
	body, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": v.Username, "password": v.Password, "domain": map[string]any{"name": v.UserDomain}}}},
		"scope": map[string]any{"project": map[string]any{"name": v.Project, "domain": map[string]any{"name": v.ProjectDomain}}},
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(v.AuthURL, "/")+"/auth/tokens?nocatalog", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("authenticate service user: %w", err)
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("authenticate service user: status %d", resp.StatusCode)
	}
	id, err := parseTokenBody(data)
	if err != nil {
		return "", err
	}
	v.serviceToken, v.serviceExp = resp.Header.Get("X-Subject-Token"), id.ExpiresAt
	return v.serviceToken, nil
}

// parseTokenBody reads Keystone's {"token": {...}} into an Identity.
func parseTokenBody(data []byte) (*Identity, error) {
	type ref struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Domain *ref   `json:"domain"`
	}
	var b struct {
		Token struct {
			Methods   []string  `json:"methods"`
			AuditIDs  []string  `json:"audit_ids"`
			ExpiresAt time.Time `json:"expires_at"`
			IssuedAt  time.Time `json:"issued_at"`
			User      ref       `json:"user"`
			Project   *ref      `json:"project"`
			Domain    *ref      `json:"domain"`
			System    *struct {
				All bool `json:"all"`
			} `json:"system"`
			Roles          []Role `json:"roles"`
			IsAdminProject bool   `json:"is_admin_project"`
			Trust          *ref   `json:"OS-TRUST:trust"`
			AppCred        *ref   `json:"application_credential"`
		} `json:"token"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("parse token body: %w", err)
	}
	t := b.Token
	id := &Identity{UserID: t.User.ID, UserName: t.User.Name, Roles: t.Roles, Methods: t.Methods, AuditIDs: t.AuditIDs,
		IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt, IsAdminProject: t.IsAdminProject}
	if t.User.Domain != nil {
		id.UserDomainID, id.UserDomainName = t.User.Domain.ID, t.User.Domain.Name
	}
	if t.Project != nil {
		id.ProjectID, id.ProjectName = t.Project.ID, t.Project.Name
		if t.Project.Domain != nil {
			id.ProjectDomainID, id.ProjectDomainName = t.Project.Domain.ID, t.Project.Domain.Name
		}
	}
	if t.Domain != nil {
		id.DomainID, id.DomainName = t.Domain.ID, t.Domain.Name
	}
	id.System = t.System != nil && t.System.All
	if t.Trust != nil {
		id.TrustID = t.Trust.ID
	}
	if t.AppCred != nil {
		id.ApplicationCredential = t.AppCred.ID
	}
	return id, nil
}
