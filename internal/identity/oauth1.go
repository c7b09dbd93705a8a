package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// OS-OAUTH1 delegates a user's roles on one project to a consumer (an
// application) through the OAuth 1.0a three-legged flow: the consumer
// gets a request token, the user authorizes it with some of their roles
// and hands the consumer the verifier, the consumer trades the request
// token for an access token, and signs token requests with it (auth
// method "oauth1"). Requests are signed per RFC 5849 in the Authorization
// header; consumer and token secrets are stored encrypted because the
// signature check needs them in the clear.

const (
	// requestTokenLifetime and accessTokenLifetime are Keystone's
	// [oauth1] request_token_duration and access_token_duration.
	requestTokenLifetime = 8 * time.Hour
	accessTokenLifetime  = 24 * time.Hour
	// oauthTimestampWindow is how far a signed request's timestamp may be
	// from now (oauthlib's timestamp_lifetime).
	oauthTimestampWindow = 10 * time.Minute
	// verifierChars are letters and digits without the easily confused
	// ones, for manual entry.
	verifierChars = "abcdefghkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
)

func (s *Service) oauth1Routes(rt *api.Router) {
	type R = api.Route
	none := api.AuthNone
	at := "/v3/users/{user_id}/OS-OAUTH1/access_tokens"
	rt.Handle(
		R{Method: http.MethodPost, Pattern: "/v3/OS-OAUTH1/consumers", Handler: s.createConsumer, Policy: "identity:create_consumer"},
		R{Method: http.MethodGet, Pattern: "/v3/OS-OAUTH1/consumers", Handler: s.listConsumers, Policy: "identity:list_consumers"},
		R{Method: http.MethodGet, Pattern: "/v3/OS-OAUTH1/consumers/{consumer_id}", Handler: s.showConsumer, Policy: "identity:get_consumer"},
		R{Method: http.MethodPatch, Pattern: "/v3/OS-OAUTH1/consumers/{consumer_id}", Handler: s.updateConsumer, Policy: "identity:update_consumer"},
		R{Method: http.MethodDelete, Pattern: "/v3/OS-OAUTH1/consumers/{consumer_id}", Handler: s.deleteConsumer, Policy: "identity:delete_consumer"},
		R{Method: http.MethodPost, Pattern: "/v3/OS-OAUTH1/request_token", Handler: s.createRequestToken, Auth: none},
		R{Method: http.MethodPut, Pattern: "/v3/OS-OAUTH1/authorize/{request_token_id}", Handler: s.authorizeRequestToken, Policy: "identity:authorize_request_token"},
		R{Method: http.MethodPost, Pattern: "/v3/OS-OAUTH1/access_token", Handler: s.createAccessToken, Auth: none},
		R{Method: http.MethodGet, Pattern: at, Handler: s.listAccessTokens},
		R{Method: http.MethodGet, Pattern: at + "/{access_token_id}", Handler: s.showAccessToken},
		R{Method: http.MethodDelete, Pattern: at + "/{access_token_id}", Handler: s.deleteAccessToken},
		R{Method: http.MethodGet, Pattern: at + "/{access_token_id}/roles", Handler: s.listAccessTokenRoles},
		R{Method: http.MethodGet, Pattern: at + "/{access_token_id}/roles/{role_id}", Handler: s.showAccessTokenRole},
	)
}

// Consumers.

type consumer struct {
	ID          string
	Description sql.NullString
	Secret      string // sealed
	Extra       string
}

const consumerColumns = `id, description, secret, extra`

func scanConsumer(row store.Scanner) (*consumer, error) {
	c := &consumer{}
	if err := row.Scan(&c.ID, &c.Description, &c.Secret, &c.Extra); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Service) getConsumer(ctx context.Context, id string) (*consumer, error) {
	c, err := store.QueryOne(ctx, s.db, scanConsumer, `SELECT `+consumerColumns+` FROM oauth1_consumers WHERE id = ?`, id)
	return c, err
}

func (s *Service) consumerJSON(r *http.Request, c *consumer) map[string]any {
	var desc any
	if c.Description.Valid {
		desc = c.Description.String
	}
	return withExtra(map[string]any{"id": c.ID, "description": desc,
		"links": s.selfLinks(r, "/v3/OS-OAUTH1/consumers/"+c.ID)}, c.Extra)
}

func (s *Service) loadConsumer(r *http.Request) (*consumer, error) {
	id := r.PathValue("consumer_id")
	c, err := s.getConsumer(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find consumer: %s.", id)
	}
	return c, err
}

type consumerBody struct {
	Description api.Optional[string] `json:"description"`
	Secret      api.Optional[string] `json:"secret"`
}

func (s *Service) createConsumer(r *http.Request) (*api.Response, error) {
	var b consumerBody
	extra, err := readEnvelope(r, "consumer", &b, false)
	if err != nil {
		return nil, err
	}
	secret := newID()
	sealed, err := s.sealSecret(secret)
	if err != nil {
		return nil, err
	}
	c := &consumer{ID: newID(), Secret: sealed, Extra: encodeExtra(extra)}
	if b.Description.Set && !b.Description.Null {
		c.Description = sql.NullString{String: b.Description.Value, Valid: true}
	}
	if _, err := s.db.Exec(r.Context(), `INSERT INTO oauth1_consumers (id, description, secret, extra) VALUES (?, ?, ?, ?)`,
		c.ID, c.Description, c.Secret, c.Extra); err != nil {
		return nil, fmt.Errorf("create consumer: %w", err)
	}
	s.changed()
	body := s.consumerJSON(r, c)
	body["secret"] = secret
	return api.JSON(http.StatusCreated, map[string]any{"consumer": body}), nil
}

func (s *Service) listConsumers(r *http.Request) (*api.Response, error) {
	consumers, err := store.QueryAll(r.Context(), s.db, scanConsumer, `SELECT `+consumerColumns+` FROM oauth1_consumers ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list consumers: %w", err)
	}
	return listResponse(s, r, "consumers", consumers, s.consumerJSON), nil
}

func (s *Service) showConsumer(r *http.Request) (*api.Response, error) {
	c, err := s.loadConsumer(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"consumer": s.consumerJSON(r, c)}), nil
}

func (s *Service) updateConsumer(r *http.Request) (*api.Response, error) {
	var b consumerBody
	extra, err := readEnvelope(r, "consumer", &b, false)
	if err != nil {
		return nil, err
	}
	if b.Secret.Set {
		return nil, api.BadRequest("Invalid input for field 'consumer.secret': the secret of a consumer cannot be changed.")
	}
	if !b.Description.Set && len(extra) == 0 {
		return nil, api.BadRequest("Invalid input for field 'consumer': at least one property is required.")
	}
	c, err := s.loadConsumer(r)
	if err != nil {
		return nil, err
	}
	if b.Description.Set {
		c.Description = sql.NullString{String: b.Description.Value, Valid: !b.Description.Null}
	}
	c.Extra = mergeExtra(c.Extra, extra)
	if _, err := s.db.Exec(r.Context(), `UPDATE oauth1_consumers SET description = ?, extra = ? WHERE id = ?`, c.Description, c.Extra, c.ID); err != nil {
		return nil, fmt.Errorf("update consumer %s: %w", c.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"consumer": s.consumerJSON(r, c)}), nil
}

// deleteConsumer takes the consumer's request and access tokens with it,
// and so every token issued through them.
func (s *Service) deleteConsumer(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c, err := s.loadConsumer(r)
	if err != nil {
		return nil, err
	}
	return s.deleteResource(ctx, "consumer", c.ID,
		`DELETE FROM oauth1_request_tokens WHERE consumer_id = ?`,
		`DELETE FROM oauth1_access_tokens WHERE consumer_id = ?`,
		`DELETE FROM oauth1_consumers WHERE id = ?`)
}

// Request and access tokens.

type oauthToken struct {
	ID, Secret, ConsumerID, ProjectID, UserID, Verifier string
	ExpiresAt                                           time.Time
	RoleIDs                                             []string
}

func (t *oauthToken) expired() bool { return !t.ExpiresAt.IsZero() && !time.Now().Before(t.ExpiresAt) }

func (s *Service) getRequestToken(ctx context.Context, id string) (*oauthToken, error) {
	t := &oauthToken{}
	var exp string
	err := s.db.QueryRow(ctx, `SELECT id, secret, consumer_id, requested_project_id, COALESCE(verifier, ''), COALESCE(authorizing_user_id, ''), COALESCE(expires_at, '')
		FROM oauth1_request_tokens WHERE id = ?`, id).Scan(&t.ID, &t.Secret, &t.ConsumerID, &t.ProjectID, &t.Verifier, &t.UserID, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if t.ExpiresAt, err = store.ParseTime(exp); err != nil {
		return nil, err
	}
	t.RoleIDs, err = s.linkedRoleIDs(ctx, "oauth1_request_token_roles", "request_token_id", t.ID)
	return t, err
}

const accessTokenColumns = `id, secret, consumer_id, project_id, authorizing_user_id, COALESCE(expires_at, '')`

func scanAccessToken(row store.Scanner) (*oauthToken, error) {
	t := &oauthToken{}
	var exp string
	if err := row.Scan(&t.ID, &t.Secret, &t.ConsumerID, &t.ProjectID, &t.UserID, &exp); err != nil {
		return nil, err
	}
	var err error
	if t.ExpiresAt, err = store.ParseTime(exp); err != nil {
		return nil, err
	}
	return t, nil
}

func (s *Service) getAccessToken(ctx context.Context, id string) (*oauthToken, error) {
	t, err := store.QueryOne(ctx, s.db, scanAccessToken, `SELECT `+accessTokenColumns+` FROM oauth1_access_tokens WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	t.RoleIDs, err = s.linkedRoleIDs(ctx, "oauth1_access_token_roles", "access_token_id", t.ID)
	return t, err
}

// formResponse answers with an application/x-www-form-urlencoded body, as
// OAuth token endpoints do.
func formResponse(status int, token, secret string, expires time.Time) *api.Response {
	body := "oauth_token=" + token + "&oauth_token_secret=" + secret
	if !expires.IsZero() {
		body += "&oauth_expires_at=" + keystoneTime(expires)
	}
	return (&api.Response{Status: status, Raw: []byte(body)}).WithHeader("Content-Type", "application/x-www-form-urlencoded")
}

func missingOAuthParam(name string) error {
	return api.BadRequest("Expecting to find %s in request. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.", name)
}

func (s *Service) createRequestToken(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	params, err := oauthParams(r)
	if err != nil {
		return nil, err
	}
	consumerID := params["oauth_consumer_key"]
	if consumerID == "" {
		return nil, missingOAuthParam("oauth_consumer_key")
	}
	projectID := r.Header.Get("Requested-Project-Id")
	if projectID == "" {
		return nil, missingOAuthParam("Requested-Project-Id")
	}
	if _, err := s.getProject(ctx, s.db, projectID); errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find project: %s.", projectID)
	} else if err != nil {
		return nil, err
	}
	c, err := s.getConsumer(ctx, consumerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find consumer: %s.", consumerID)
	} else if err != nil {
		return nil, err
	}
	consumerSecret, err := s.openSecret(c.Secret)
	if err != nil {
		return nil, err
	}
	if !s.oauthSignatureValid(r, params, consumerSecret, "") {
		return nil, api.Unauthorized("Invalid signature")
	}
	id, secret := newID(), newID()
	sealed, err := s.sealSecret(secret)
	if err != nil {
		return nil, err
	}
	expires := now().Add(requestTokenLifetime)
	if _, err := s.db.Exec(ctx, `INSERT INTO oauth1_request_tokens (id, secret, consumer_id, requested_project_id, expires_at) VALUES (?, ?, ?, ?, ?)`,
		id, sealed, c.ID, projectID, store.FormatTime(expires)); err != nil {
		return nil, fmt.Errorf("create request token: %w", err)
	}
	s.changed()
	return formResponse(http.StatusCreated, id, secret, expires), nil
}

// isDelegated reports whether the caller's token came from a trust, an
// application credential or an OAuth access token.
func (s *Service) isDelegated(r *http.Request) bool { return s.callerDelegation(r).any() }

func (s *Service) authorizeRequestToken(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b struct {
		Roles []map[string]any `json:"roles"`
	}
	if err := api.DecodeJSON(r, &b); err != nil {
		return nil, err
	}
	if len(b.Roles) == 0 {
		return nil, api.BadRequest("Invalid input for field 'roles': at least one role is required.")
	}
	if s.isDelegated(r) {
		return nil, api.Forbidden("Cannot authorize a request token with a token issued via delegation.")
	}
	id := r.PathValue("request_token_id")
	rt, err := s.getRequestToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find request token: %s.", id)
	} else if err != nil {
		return nil, err
	}
	if rt.expired() {
		return nil, api.Unauthorized("Request token is expired")
	}
	var want []string
	for i, ref := range b.Roles {
		rid, err := s.resolveRoleRef(ctx, ref, fmt.Sprintf("roles[%d]", i))
		if err != nil {
			return nil, err
		}
		if !slices.Contains(want, rid) {
			want = append(want, rid)
		}
	}
	caller := api.Caller(r)
	have, err := s.scopeRoles(ctx, caller.UserID, scope{ProjectID: rt.ProjectID})
	if err != nil {
		return nil, err
	}
	for _, rid := range want {
		if !slices.Contains(have, rid) {
			return nil, api.Unauthorized("authorizing user does not have role required")
		}
	}
	verifier, err := randomString(verifierChars, 8)
	if err != nil {
		return nil, err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE oauth1_request_tokens SET verifier = ?, authorizing_user_id = ? WHERE id = ?`, verifier, caller.UserID, rt.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM oauth1_request_token_roles WHERE request_token_id = ?`, rt.ID); err != nil {
			return err
		}
		for _, rid := range want {
			if _, err := tx.Exec(ctx, `INSERT INTO oauth1_request_token_roles (request_token_id, role_id) VALUES (?, ?)`, rt.ID, rid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("authorize request token %s: %w", rt.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"token": map[string]any{"oauth_verifier": verifier}}), nil
}

// resolveRoleRef turns {"id": ...} or {"name": ...} into a role id.
func (s *Service) resolveRoleRef(ctx context.Context, ref map[string]any, field string) (string, error) {
	if len(ref) != 1 {
		return "", api.BadRequest("Invalid input for field '%s': exactly one of 'id' or 'name' is required.", field)
	}
	if v, ok := ref["id"]; ok {
		id, ok := v.(string)
		if !ok || id == "" {
			return "", api.BadRequest("Invalid input for field '%s.id': expected a non-empty string.", field)
		}
		return id, nil
	}
	v, ok := ref["name"]
	name, isStr := v.(string)
	if !ok || !isStr || name == "" {
		return "", api.BadRequest("Invalid input for field '%s': exactly one of 'id' or 'name' is required.", field)
	}
	ro, err := s.roleByName(ctx, name, "")
	if errors.Is(err, store.ErrNotFound) {
		return "", api.NotFound("Could not find role: %s.", name)
	}
	if err != nil {
		return "", err
	}
	return ro.ID, nil
}

func randomString(alphabet string, n int) (string, error) {
	out := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range out {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		out[i] = alphabet[k.Int64()]
	}
	return string(out), nil
}

func (s *Service) createAccessToken(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	params, err := oauthParams(r)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"oauth_consumer_key", "oauth_token", "oauth_verifier"} {
		if params[name] == "" {
			return nil, missingOAuthParam(name)
		}
	}
	rt, err := s.getRequestToken(ctx, params["oauth_token"])
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find request token: %s.", params["oauth_token"])
	} else if err != nil {
		return nil, err
	}
	if rt.expired() {
		return nil, api.Unauthorized("Request token is expired")
	}
	c, err := s.getConsumer(ctx, params["oauth_consumer_key"])
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Unauthorized("Provided consumer does not exist.")
	} else if err != nil {
		return nil, err
	}
	if rt.ConsumerID != c.ID {
		return nil, api.Unauthorized("Provided consumer key does not match stored consumer key.")
	}
	consumerSecret, err := s.openSecret(c.Secret)
	if err != nil {
		return nil, err
	}
	tokenSecret, err := s.openSecret(rt.Secret)
	if err != nil {
		return nil, err
	}
	sigOK := s.oauthSignatureValid(r, params, consumerSecret, tokenSecret)
	if rt.Verifier == "" || !constantEqual(rt.Verifier, params["oauth_verifier"]) {
		return nil, api.Unauthorized("Provided verifier does not match stored verifier")
	}
	if !sigOK {
		return nil, api.Unauthorized("Invalid signature")
	}
	if rt.UserID == "" {
		return nil, api.Unauthorized("Request Token does not have an authorizing user id.")
	}
	id, secret := newID(), newID()
	sealed, err := s.sealSecret(secret)
	if err != nil {
		return nil, err
	}
	expires := now().Add(accessTokenLifetime)
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		// Deleting the request token first makes a replayed exchange
		// fail: it is gone for whoever comes second.
		res, err := tx.Exec(ctx, `DELETE FROM oauth1_request_tokens WHERE id = ?`, rt.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return api.NotFound("Could not find request token: %s.", rt.ID)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO oauth1_access_tokens (id, secret, consumer_id, authorizing_user_id, project_id, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			id, sealed, rt.ConsumerID, rt.UserID, rt.ProjectID, store.FormatTime(expires)); err != nil {
			return err
		}
		for _, rid := range rt.RoleIDs {
			if _, err := tx.Exec(ctx, `INSERT INTO oauth1_access_token_roles (access_token_id, role_id) VALUES (?, ?)`, id, rid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if isAPIError(err) {
			return nil, err
		}
		return nil, fmt.Errorf("create access token: %w", err)
	}
	s.changed()
	return formResponse(http.StatusCreated, id, secret, expires), nil
}

// User's access tokens.

func (s *Service) accessTokenJSON(r *http.Request, t *oauthToken) map[string]any {
	self := "/v3/users/" + t.UserID + "/OS-OAUTH1/access_tokens/" + t.ID
	var exp any
	if !t.ExpiresAt.IsZero() {
		exp = keystoneTime(t.ExpiresAt)
	}
	return map[string]any{
		"id": t.ID, "consumer_id": t.ConsumerID, "project_id": t.ProjectID, "authorizing_user_id": t.UserID,
		"expires_at": exp,
		"links":      map[string]any{"self": s.baseURL(r) + self, "roles": s.baseURL(r) + self + "/roles"},
	}
}

func (s *Service) listAccessTokens(r *http.Request) (*api.Response, error) {
	uid, err := s.ownUser(r, "identity:list_access_tokens")
	if err != nil {
		return nil, err
	}
	if s.isDelegated(r) {
		return nil, api.Forbidden("Cannot list request tokens with a token issued via delegation.")
	}
	tokens, err := store.QueryAll(r.Context(), s.db, scanAccessToken, `SELECT `+accessTokenColumns+` FROM oauth1_access_tokens WHERE authorizing_user_id = ? ORDER BY id`, uid)
	if err != nil {
		return nil, fmt.Errorf("list access tokens of %s: %w", uid, err)
	}
	return listResponse(s, r, "access_tokens", tokens, s.accessTokenJSON), nil
}

// loadUserAccessToken fetches the path's access token of the path's user.
func (s *Service) loadUserAccessToken(r *http.Request, action string) (*oauthToken, error) {
	uid, err := s.ownUser(r, action)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("access_token_id")
	t, err := s.getAccessToken(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && t.UserID != uid {
		return nil, api.NotFound("Could not find access token: %s.", id)
	}
	return t, err
}

func (s *Service) showAccessToken(r *http.Request) (*api.Response, error) {
	t, err := s.loadUserAccessToken(r, "identity:get_access_token")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"access_token": s.accessTokenJSON(r, t)}), nil
}

func (s *Service) deleteAccessToken(r *http.Request) (*api.Response, error) {
	t, err := s.loadUserAccessToken(r, "identity:delete_access_token")
	if err != nil {
		return nil, err
	}
	// Tokens issued with it stop validating: tokenRoles finds it gone.
	return s.deleteResource(r.Context(), "access token", t.ID, `DELETE FROM oauth1_access_tokens WHERE id = ?`)
}

// accessTokenRoleJSON renders a role as Keystone lists an access token's
// roles: the role without its description.
func (s *Service) accessTokenRoleJSON(r *http.Request, ro *role) map[string]any {
	out := s.roleJSON(r, ro)
	delete(out, "description")
	return out
}

func (s *Service) listAccessTokenRoles(r *http.Request) (*api.Response, error) {
	t, err := s.loadUserAccessToken(r, "identity:list_access_token_roles")
	if err != nil {
		return nil, err
	}
	return listResponse(s, r, "roles", s.existingRoles(r.Context(), t.RoleIDs), s.accessTokenRoleJSON), nil
}

func (s *Service) showAccessTokenRole(r *http.Request) (*api.Response, error) {
	t, err := s.loadUserAccessToken(r, "identity:get_access_token_role")
	if err != nil {
		return nil, err
	}
	rid := r.PathValue("role_id")
	if !slices.Contains(t.RoleIDs, rid) {
		return nil, api.NotFound("Could not find role: %s.", rid)
	}
	ro, err := s.getRole(r.Context(), rid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find role: %s.", rid)
	} else if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"role": s.accessTokenRoleJSON(r, ro)}), nil
}

// The oauth1 auth method.

// oauth1Method is the oauth1 auth method's body. It carries nothing:
// as in Keystone, the access token and signature come in the request's
// OAuth Authorization header.
type oauth1Method struct{}

// authOAuth1 authenticates a token request signed with an access token,
// yielding a token scoped to the access token's project and carrying
// only its delegated roles.
func (s *Service) authOAuth1(r *http.Request, _ *oauth1Method) (*authResult, error) {
	ctx := r.Context()
	params, err := oauthParams(r)
	if err != nil {
		return nil, err
	}
	id := params["oauth_token"]
	if id == "" {
		return nil, missingOAuthParam("oauth_token")
	}
	t, err := s.getAccessToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Unauthorized("Could not validate the access token")
	} else if err != nil {
		return nil, err
	}
	if t.expired() {
		return nil, api.Unauthorized("Access token is expired")
	}
	c, err := s.getConsumer(ctx, params["oauth_consumer_key"])
	if err != nil || c.ID != t.ConsumerID {
		return nil, api.Unauthorized("Could not validate the access token")
	}
	consumerSecret, err := s.openSecret(c.Secret)
	if err != nil {
		return nil, err
	}
	tokenSecret, err := s.openSecret(t.Secret)
	if err != nil {
		return nil, err
	}
	if !s.oauthSignatureValid(r, params, consumerSecret, tokenSecret) {
		return nil, api.Unauthorized("Could not validate the access token")
	}
	u, err := s.getUser(ctx, t.UserID)
	if err != nil || !u.Enabled {
		return nil, errAuth()
	}
	if d, err := s.getDomain(ctx, s.db, u.DomainID); err != nil || !d.Enabled {
		return nil, errAuth()
	}
	return &authResult{user: u, methods: []string{"oauth1"}, accessID: t.ID, expires: t.ExpiresAt,
		scope: &scope{ProjectID: t.ProjectID}}, nil
}

// oauthConsumerOf names the consumer of an access token, for token bodies.
func (s *Service) oauthConsumerOf(ctx context.Context, accessTokenID string) string {
	var id string
	if err := s.db.QueryRow(ctx, `SELECT consumer_id FROM oauth1_access_tokens WHERE id = ?`, accessTokenID).Scan(&id); err != nil {
		return ""
	}
	return id
}

// oauthTokenRoles narrows the roles a token holds (have) to those its
// access token delegates, with what they imply. A token whose access
// token is gone or expired is no longer valid.
func (s *Service) oauthTokenRoles(ctx context.Context, accessTokenID string, have []string) ([]string, error) {
	t, err := s.getAccessToken(ctx, accessTokenID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	if t.expired() {
		return nil, errTokenInvalid
	}
	graph, err := s.impliedRoleGraph(ctx)
	if err != nil {
		return nil, err
	}
	return intersectRoles(have, expandImplied(graph, t.RoleIDs)), nil
}

// OAuth 1.0a request signing (RFC 5849).

// oauthParams parses the request's "Authorization: OAuth ..." header.
func oauthParams(r *http.Request) (map[string]string, error) {
	h := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "OAuth") {
		return nil, api.BadRequest("Expecting to find an OAuth Authorization header in request.")
	}
	params := map[string]string{}
	for _, part := range splitHeaderList(rest) {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		key, err1 := url.PathUnescape(strings.TrimSpace(k))
		val, err2 := url.PathUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, api.BadRequest("Malformed OAuth Authorization header.")
		}
		params[key] = val
	}
	return params, nil
}

// splitHeaderList splits on commas outside double quotes.
func splitHeaderList(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// oauthBaseURIs are the URIs a client may have signed for this request:
// the service's public base URL with the request path, and the request's
// own host with the public URL's scheme (as Keystone builds them).
func (s *Service) oauthBaseURIs(r *http.Request) []string {
	public := s.baseURL(r)
	out := []string{normalizeOAuthURI(public + r.URL.Path)}
	if u, err := url.Parse(public); err == nil && r.Host != "" {
		if alt := normalizeOAuthURI(u.Scheme + "://" + r.Host + r.URL.Path); alt != out[0] {
			out = append(out, alt)
		}
	}
	return out
}

// normalizeOAuthURI is RFC 5849's base string URI: lower-case scheme and
// host, no default port, no query.
func normalizeOAuthURI(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && !(scheme == "http" && p == "80" || scheme == "https" && p == "443") {
		host += ":" + p
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path
}

// oauthSignatureBase is the signature base string of RFC 5849 3.4.1 over
// the OAuth header parameters and the query.
func oauthSignatureBase(method, uri string, params map[string]string, query url.Values) string {
	type kv struct{ k, v string }
	var pairs []kv
	for k, v := range params {
		if k == "oauth_signature" || k == "realm" {
			continue
		}
		pairs = append(pairs, kv{awsEscape(k), awsEscape(v)})
	}
	for k, vs := range query {
		for _, v := range vs {
			pairs = append(pairs, kv{awsEscape(k), awsEscape(v)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	norm := make([]string, len(pairs))
	for i, p := range pairs {
		norm[i] = p.k + "=" + p.v
	}
	return strings.ToUpper(method) + "&" + awsEscape(uri) + "&" + awsEscape(strings.Join(norm, "&"))
}

// oauthSign signs a base string with HMAC as RFC 5849 3.4.2 describes.
func oauthSign(method, base, consumerSecret, tokenSecret string) (string, bool) {
	var h func() hash.Hash
	switch method {
	case "HMAC-SHA1":
		h = sha1.New
	case "HMAC-SHA256":
		h = sha256.New
	case "HMAC-SHA512":
		h = sha512.New
	default:
		return "", false
	}
	key := awsEscape(consumerSecret) + "&" + awsEscape(tokenSecret)
	return base64.StdEncoding.EncodeToString(hmacSum(h, []byte(key), base)), true
}

// oauthSignatureValid checks the mandatory parameters, the timestamp and
// the HMAC signature of a request signed with the given secrets.
func (s *Service) oauthSignatureValid(r *http.Request, params map[string]string, consumerSecret, tokenSecret string) bool {
	for _, name := range []string{"oauth_signature", "oauth_signature_method", "oauth_timestamp", "oauth_nonce", "oauth_consumer_key"} {
		if params[name] == "" {
			return false
		}
	}
	if v, ok := params["oauth_version"]; ok && v != "1.0" {
		return false
	}
	ts, err := strconv.ParseInt(params["oauth_timestamp"], 10, 64)
	if err != nil {
		return false
	}
	if d := time.Since(time.Unix(ts, 0)); d > oauthTimestampWindow || d < -oauthTimestampWindow {
		return false
	}
	for _, uri := range s.oauthBaseURIs(r) {
		base := oauthSignatureBase(r.Method, uri, params, r.URL.Query())
		sig, ok := oauthSign(params["oauth_signature_method"], base, consumerSecret, tokenSecret)
		if ok && hmac.Equal([]byte(sig), []byte(params["oauth_signature"])) {
			return true
		}
	}
	return false
}
