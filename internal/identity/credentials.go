package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/fernet"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Credentials (/v3/credentials) are secrets users keep with the identity
// service: EC2 access/secret pairs, TOTP seeds, certificates. As Keystone
// does, blobs are encrypted at rest with Fernet keys from their own key
// repository, credential-keys beside the token keys, so a database dump
// alone does not reveal them.

const credTypeEC2 = "ec2"

// maxCredentialBlob bounds a blob so that its encrypted form stays within
// what a Fernet token may carry.
const maxCredentialBlob = 32 << 10

// credentialKeyrings holds the open credential key repositories by
// directory. They are opened on first use rather than in New so that the
// extension stays self-contained; a directory is set up (0700 directory,
// 0600 key files) only once per process.
var (
	credentialKeyMu   sync.Mutex
	credentialKeyring = map[string]*fernet.Keyring{} // guarded by credentialKeyMu
)

// credentialKeyDir is the credential key repository, beside the token keys.
func (s *Service) credentialKeyDir() string {
	return filepath.Join(filepath.Dir(s.cfg.KeyDir), "credential-keys")
}

func (s *Service) credentialKeys() (*fernet.Keyring, error) {
	dir := s.credentialKeyDir()
	credentialKeyMu.Lock()
	defer credentialKeyMu.Unlock()
	if k, ok := credentialKeyring[dir]; ok {
		return k, nil
	}
	if err := fernet.Setup(dir); err != nil {
		return nil, fmt.Errorf("credential key repository: %w", err)
	}
	k, err := fernet.NewKeyring(dir)
	if err != nil {
		return nil, fmt.Errorf("load credential keys: %w", err)
	}
	credentialKeyring[dir] = k
	return k, nil
}

// sealSecret encrypts a secret for storage.
func (s *Service) sealSecret(plain string) (string, error) {
	k, err := s.credentialKeys()
	if err != nil {
		return "", err
	}
	return k.Encrypt([]byte(plain))
}

// openSecret decrypts a stored secret. A failure never says more than that
// the stored value could not be decrypted.
func (s *Service) openSecret(stored string) (string, error) {
	k, err := s.credentialKeys()
	if err != nil {
		return "", err
	}
	plain, _, err := k.Decrypt(stored, 0)
	if err != nil {
		return "", errors.New("stored secret cannot be decrypted with the current credential keys")
	}
	return string(plain), nil
}

// credential is a row of the credentials table with its blob decrypted.
type credential struct {
	ID, UserID, ProjectID, Type, Blob, Extra string
}

const credentialColumns = `id, user_id, COALESCE(project_id, ''), type, blob, extra`

func (s *Service) scanCredential(row store.Scanner) (*credential, error) {
	c := &credential{}
	var sealed string
	if err := row.Scan(&c.ID, &c.UserID, &c.ProjectID, &c.Type, &sealed, &c.Extra); err != nil {
		return nil, err
	}
	blob, err := s.openSecret(sealed)
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", c.ID, err)
	}
	c.Blob = blob
	return c, nil
}

func (s *Service) getCredential(ctx context.Context, id string) (*credential, error) {
	c, err := store.QueryOne(ctx, s.db, s.scanCredential, `SELECT `+credentialColumns+` FROM credentials WHERE id = ?`, id)
	return c, err
}

func (s *Service) listCredentialRows(ctx context.Context, where string, args ...any) ([]*credential, error) {
	q := `SELECT ` + credentialColumns + ` FROM credentials`
	if where != "" {
		q += ` WHERE ` + where
	}
	out, err := store.QueryAll(ctx, s.db, s.scanCredential, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return out, nil
}

func (s *Service) credentialJSON(r *http.Request, c *credential) map[string]any {
	return withExtra(map[string]any{
		"id": c.ID, "user_id": c.UserID, "project_id": nullable(c.ProjectID), "type": c.Type, "blob": c.Blob,
		"links": s.selfLinks(r, "/v3/credentials/"+c.ID),
	}, c.Extra)
}

// credentialTarget is the policy target of a credential call.
func credentialTarget(c *credential) map[string]any {
	if c == nil {
		return map[string]any{"target": map[string]any{"credential": map[string]any{}}}
	}
	return map[string]any{"target": map[string]any{"credential": map[string]any{
		"id": c.ID, "user_id": c.UserID, "project_id": c.ProjectID, "type": c.Type,
	}}}
}

// delegation is what a caller's token was delegated through, which bounds
// what it may do with credentials.
type delegation struct {
	TrustID, AppCredID, AccessTokenID string
}

func (d delegation) any() bool { return d.TrustID != "" || d.AppCredID != "" || d.AccessTokenID != "" }

// callerDelegation reads the delegation of the request's token. The
// OAuth access token is only in the token payload, so the token is looked
// up again (a cache hit on the path that just validated it).
func (s *Service) callerDelegation(r *http.Request) delegation {
	c := api.Caller(r)
	if c == nil {
		return delegation{}
	}
	d := delegation{TrustID: c.TrustID, AppCredID: c.ApplicationCredential}
	if slices.Contains(c.Methods, "oauth1") && c.Token != "" {
		if v, err := s.validate(r.Context(), c.Token, false); err == nil {
			d.AccessTokenID = v.payload.AccessTokenID
		}
	}
	return d
}

// checkDelegatedScope keeps delegated tokens (trusts, application
// credentials, OAuth) inside the project they were delegated for: such a
// token may only touch credentials of that project.
func (s *Service) checkDelegatedScope(r *http.Request, projectID string) error {
	return delegatedScope(r, s.callerDelegation(r), projectID)
}

func delegatedScope(r *http.Request, d delegation, projectID string) error {
	if !d.any() {
		return nil
	}
	if c := api.Caller(r); c == nil || projectID == "" || projectID != c.ProjectID {
		return api.Forbidden("You are not authorized to perform the requested action: Credential project does not match the project scope of the delegated token.")
	}
	return nil
}

// checkUnrestrictedAppCred refuses restricted application credentials
// the creation of further secrets, as Keystone does.
func (s *Service) checkUnrestrictedAppCred(r *http.Request) error {
	c := api.Caller(r)
	if c == nil || c.ApplicationCredential == "" {
		return nil
	}
	a, err := s.getAppCred(r.Context(), c.ApplicationCredential)
	if err != nil || !a.Unrestricted {
		return api.Forbidden("You are not authorized to perform the requested action: Using method 'application_credential' is not allowed for managing additional credentials.")
	}
	return nil
}

// ec2Blob parses and checks the blob of an ec2 credential.
func ec2Blob(blob string) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(blob), &m); err != nil {
		return nil, api.BadRequest("Invalid blob in credential")
	}
	if len(m) == 0 {
		return nil, api.BadRequest("Invalid input for field 'credential.blob': an ec2 blob must be a non-empty JSON object.")
	}
	access, ok := m["access"].(string)
	if !ok || access == "" {
		return nil, api.BadRequest("Invalid input for field 'credential.blob': an ec2 blob needs a string 'access'.")
	}
	return m, nil
}

// hashAccessKey is the id of an ec2 credential: the hex SHA-256 of its
// access key, so ec2tokens can find it from the key alone.
func hashAccessKey(access string) string {
	sum := sha256.Sum256([]byte(access))
	return hex.EncodeToString(sum[:])
}

type credentialBody struct {
	ID        api.Optional[string] `json:"id"`
	Blob      api.Optional[string] `json:"blob"`
	Type      api.Optional[string] `json:"type"`
	UserID    api.Optional[string] `json:"user_id"`
	ProjectID api.Optional[string] `json:"project_id"`
}

func checkBlob(blob string) error {
	if len(blob) > maxCredentialBlob {
		return api.BadRequest("Invalid input for field 'credential.blob': longer than %d bytes.", maxCredentialBlob)
	}
	return nil
}

func (s *Service) checkCredentialRefs(ctx context.Context, userID, projectID string) error {
	if _, err := s.getUser(ctx, userID); errors.Is(err, store.ErrNotFound) {
		return api.NotFound("Could not find user: %s.", userID)
	} else if err != nil {
		return err
	}
	if projectID != "" {
		if _, err := s.getProject(ctx, s.db, projectID); errors.Is(err, store.ErrNotFound) {
			return api.NotFound("Could not find project: %s.", projectID)
		} else if err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) createCredential(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b credentialBody
	extra, err := readEnvelope(r, "credential", &b, false)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		v    api.Optional[string]
	}{{"blob", b.Blob}, {"type", b.Type}, {"user_id", b.UserID}} {
		if !f.v.Set || f.v.Null {
			return nil, api.BadRequest("Invalid input for field 'credential.%s': '%s' is a required property.", f.name, f.name)
		}
	}
	c := &credential{ID: newID(), UserID: b.UserID.Value, ProjectID: b.ProjectID.Value, Type: b.Type.Value, Blob: b.Blob.Value, Extra: encodeExtra(extra)}
	if c.Type == "" || len(c.Type) > 255 {
		return nil, api.BadRequest("Invalid input for field 'credential.type': a type of 1 to 255 characters is required.")
	}
	if err := checkBlob(c.Blob); err != nil {
		return nil, err
	}
	if err := s.api.Authorize(r, "identity:create_credential", credentialTarget(c)); err != nil {
		return nil, err
	}
	if strings.EqualFold(c.Type, credTypeEC2) {
		if err := s.checkUnrestrictedAppCred(r); err != nil {
			return nil, err
		}
	}
	if err := s.checkDelegatedScope(r, c.ProjectID); err != nil {
		return nil, err
	}
	if strings.EqualFold(c.Type, credTypeEC2) {
		if c.ProjectID == "" {
			return nil, api.BadRequest("Invalid input for field 'credential.project_id': 'project_id' is a required property of ec2 credentials.")
		}
		blob, err := ec2Blob(c.Blob)
		if err != nil {
			return nil, err
		}
		c.ID = hashAccessKey(blob["access"].(string))
		// A credential made with a delegated token yields tokens with the
		// same delegation when it is used with ec2tokens.
		if d := s.callerDelegation(r); d.any() {
			for k, v := range map[string]string{"trust_id": d.TrustID, "app_cred_id": d.AppCredID, "access_token_id": d.AccessTokenID} {
				if v != "" {
					blob[k] = v
				}
			}
			raw, _ := json.Marshal(blob)
			c.Blob = string(raw)
		}
	}
	if err := s.checkCredentialRefs(ctx, c.UserID, c.ProjectID); err != nil {
		return nil, err
	}
	if err := s.insertCredential(ctx, s.db, c); err != nil {
		return nil, err
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"credential": s.credentialJSON(r, c)}), nil
}

// insertCredential stores a credential with its blob sealed.
func (s *Service) insertCredential(ctx context.Context, q store.Querier, c *credential) error {
	sealed, err := s.sealSecret(c.Blob)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO credentials (id, user_id, project_id, type, blob, extra) VALUES (?, ?, ?, ?, ?, ?)`,
		c.ID, c.UserID, nullable(c.ProjectID), c.Type, sealed, c.Extra)
	if store.IsConflict(err) {
		return api.Conflict("Conflict occurred attempting to store credential - Duplicate entry.")
	}
	if err != nil {
		return fmt.Errorf("create credential: %w", err)
	}
	return nil
}

func (s *Service) listCredentials(r *http.Request) (*api.Response, error) {
	c := api.Caller(r)
	target := map[string]any{}
	if c != nil && !c.System {
		target = map[string]any{"target": map[string]any{"credential": map[string]any{"user_id": c.UserID}}}
	}
	if err := s.api.Authorize(r, "identity:list_credentials", target); err != nil {
		return nil, err
	}
	where, args := []string{"1 = 1"}, []any{}
	for _, f := range []string{"user_id", "type"} {
		if v := r.URL.Query().Get(f); v != "" {
			where, args = append(where, f+" = ?"), append(args, v)
		}
	}
	creds, err := s.listCredentialRows(r.Context(), strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, err
	}
	d := s.callerDelegation(r)
	out := []any{}
	for _, cr := range creds {
		// Only what the caller may read: their own, or everything for
		// admins and system readers.
		ok, err := s.allow(r, "identity:get_credential", credentialTarget(cr))
		if err != nil {
			return nil, err
		}
		if !ok || delegatedScope(r, d, cr.ProjectID) != nil {
			continue
		}
		out = append(out, s.credentialJSON(r, cr))
	}
	return api.JSON(http.StatusOK, s.listBody(r, "credentials", out)), nil
}

// loadCredential fetches the credential in the path and checks action on
// it. Policy is checked before existence, so a caller without the right
// learns nothing from 404 versus 403.
func (s *Service) loadCredential(r *http.Request, action string) (*credential, error) {
	id := r.PathValue("credential_id")
	c, err := s.getCredential(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		if err := s.api.Authorize(r, action, credentialTarget(nil)); err != nil {
			return nil, err
		}
		return nil, api.NotFound("Could not find credential: %s.", id)
	}
	if err != nil {
		return nil, err
	}
	if err := s.api.Authorize(r, action, credentialTarget(c)); err != nil {
		return nil, err
	}
	if err := s.checkDelegatedScope(r, c.ProjectID); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Service) showCredential(r *http.Request) (*api.Response, error) {
	c, err := s.loadCredential(r, "identity:get_credential")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"credential": s.credentialJSON(r, c)}), nil
}

func (s *Service) updateCredential(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b credentialBody
	extra, err := readEnvelope(r, "credential", &b, false)
	if err != nil {
		return nil, err
	}
	if !b.Blob.Set && !b.Type.Set && !b.UserID.Set && !b.ProjectID.Set && len(extra) == 0 {
		return nil, api.BadRequest("Invalid input for field 'credential': at least one property is required.")
	}
	for _, f := range []struct {
		name string
		v    api.Optional[string]
	}{{"blob", b.Blob}, {"type", b.Type}, {"user_id", b.UserID}} {
		if f.v.Set && f.v.Null {
			return nil, api.BadRequest("Invalid input for field 'credential.%s': None is not of type 'string'.", f.name)
		}
	}
	cur, err := s.loadCredential(r, "identity:update_credential")
	if err != nil {
		return nil, err
	}
	if b.ID.Set && b.ID.Value != cur.ID {
		return nil, api.BadRequest("Cannot change ID.")
	}
	next := *cur
	if b.Blob.Set {
		if err := checkBlob(b.Blob.Value); err != nil {
			return nil, err
		}
		next.Blob = b.Blob.Value
	}
	if b.Type.Set {
		if b.Type.Value == "" || len(b.Type.Value) > 255 {
			return nil, api.BadRequest("Invalid input for field 'credential.type': a type of 1 to 255 characters is required.")
		}
		next.Type = b.Type.Value
	}
	if b.UserID.Set {
		next.UserID = b.UserID.Value
	}
	if b.ProjectID.Set {
		next.ProjectID = b.ProjectID.Value
	}
	next.Extra = mergeExtra(cur.Extra, extra)
	// The owner may change what they own, not give it to someone else.
	if err := s.api.Authorize(r, "identity:update_credential", credentialTarget(&next)); err != nil {
		return nil, err
	}
	if err := s.checkDelegatedScope(r, next.ProjectID); err != nil {
		return nil, err
	}
	if strings.EqualFold(next.Type, credTypeEC2) {
		if next.ProjectID == "" {
			return nil, api.BadRequest("Invalid input for field 'credential.project_id': 'project_id' is a required property of ec2 credentials.")
		}
		newBlob, err := ec2Blob(next.Blob)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(cur.Type, credTypeEC2) {
			// The delegation a credential was made under stays with it.
			var oldBlob map[string]any
			_ = json.Unmarshal([]byte(cur.Blob), &oldBlob)
			for _, k := range []string{"trust_id", "app_cred_id", "access_token_id", "access_id"} {
				if fmt.Sprint(oldBlob[k]) != fmt.Sprint(newBlob[k]) {
					return nil, api.BadRequest("%s can not be updated for credential", k)
				}
			}
		}
	}
	if err := s.checkCredentialRefs(ctx, next.UserID, next.ProjectID); err != nil {
		return nil, err
	}
	sealed, err := s.sealSecret(next.Blob)
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(ctx, `UPDATE credentials SET user_id = ?, project_id = ?, type = ?, blob = ?, extra = ? WHERE id = ?`,
		next.UserID, nullable(next.ProjectID), next.Type, sealed, next.Extra, next.ID); err != nil {
		return nil, fmt.Errorf("update credential %s: %w", next.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"credential": s.credentialJSON(r, &next)}), nil
}

func (s *Service) deleteCredential(r *http.Request) (*api.Response, error) {
	c, err := s.loadCredential(r, "identity:delete_credential")
	if err != nil {
		return nil, err
	}
	return s.deleteResource(r.Context(), "credential", c.ID, `DELETE FROM credentials WHERE id = ?`)
}

func (s *Service) credentialRoutes(rt *api.Router) {
	type R = api.Route
	rt.Handle(
		R{Method: http.MethodPost, Pattern: "/v3/credentials", Handler: s.createCredential},
		R{Method: http.MethodGet, Pattern: "/v3/credentials", Handler: s.listCredentials},
		R{Method: http.MethodGet, Pattern: "/v3/credentials/{credential_id}", Handler: s.showCredential},
		R{Method: http.MethodPatch, Pattern: "/v3/credentials/{credential_id}", Handler: s.updateCredential},
		R{Method: http.MethodDelete, Pattern: "/v3/credentials/{credential_id}", Handler: s.deleteCredential},
	)
}
