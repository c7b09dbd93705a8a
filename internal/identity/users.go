package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// user is a local user.
type user struct {
	ID                string
	DomainID          string
	Name              string
	Enabled           bool
	DefaultProjectID  string
	PasswordHash      string
	PasswordExpiresAt string
	CreatedAt         string
	FailedAuthCount   int
	FailedAuthAt      string
	Options           string
	Extra             string
}

const userColumns = `id, domain_id, name, enabled, COALESCE(default_project_id, ''), COALESCE(password_hash, ''),
	COALESCE(password_expires_at, ''), created_at, failed_auth_count, COALESCE(failed_auth_at, ''), options, extra`

func scanUser(row store.Scanner) (*user, error) {
	u := &user{}
	err := row.Scan(&u.ID, &u.DomainID, &u.Name, &u.Enabled, &u.DefaultProjectID, &u.PasswordHash,
		&u.PasswordExpiresAt, &u.CreatedAt, &u.FailedAuthCount, &u.FailedAuthAt, &u.Options, &u.Extra)
	return u, err
}

func (s *Service) getUser(ctx context.Context, id string) (*user, error) {
	u, err := store.QueryOne(ctx, s.db, scanUser, `SELECT `+userColumns+` FROM users WHERE id = ?`, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get user %s: %w", id, err)
	}
	return u, err
}

func (s *Service) userByName(ctx context.Context, domainID, name string) (*user, error) {
	u, err := store.QueryOne(ctx, s.db, scanUser, `SELECT `+userColumns+` FROM users WHERE domain_id = ? AND name = ?`, domainID, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get user %s: %w", name, err)
	}
	return u, err
}

func (s *Service) userJSON(r *http.Request, u *user) map[string]any {
	var opts map[string]any
	_ = json.Unmarshal([]byte(u.Options), &opts)
	if opts == nil {
		opts = map[string]any{}
	}
	obj := map[string]any{
		"id": u.ID, "name": u.Name, "domain_id": u.DomainID, "enabled": u.Enabled,
		"password_expires_at": nullable(isoTime(u.PasswordExpiresAt)), "options": opts,
		"links": s.selfLinks(r, "/v3/users/"+u.ID),
	}
	if u.DefaultProjectID != "" {
		obj["default_project_id"] = u.DefaultProjectID
	}
	return withExtra(obj, u.Extra)
}

// isoTime renders a stored time as Keystone does (microseconds, Z).
func isoTime(stored string) string { return stored }

var userOptionNames = map[string]string{
	"ignore_change_password_upon_first_use": "bool",
	"ignore_password_expiry":                "bool",
	"ignore_lockout_failure_attempts":       "bool",
	"lock_password":                         "bool",
	"multi_factor_auth_enabled":             "bool",
	"multi_factor_auth_rules":               "rules",
	"ignore_user_inactivity":                "bool",
}

type userBody struct {
	Name             api.Optional[string] `json:"name"`
	DomainID         api.Optional[string] `json:"domain_id"`
	Password         api.Optional[string] `json:"password"`
	Enabled          api.Optional[bool]   `json:"enabled"`
	DefaultProjectID api.Optional[string] `json:"default_project_id"`
	Options          map[string]any       `json:"options"`
	Federated        json.RawMessage      `json:"federated"`
}

func validOptions(opts map[string]any) error {
	for k, v := range opts {
		typ, ok := userOptionNames[k]
		if !ok {
			return api.BadRequest("Invalid input for field 'user.options': '%s' is not a valid option.", k)
		}
		switch typ {
		case "bool":
			if _, ok := v.(bool); !ok && v != nil {
				return api.BadRequest("Invalid input for field 'user.options.%s': expected boolean.", k)
			}
		case "rules":
			if _, ok := v.([]any); !ok && v != nil {
				return api.BadRequest("Invalid input for field 'user.options.%s': expected array.", k)
			}
		}
	}
	return nil
}

func validPassword(pw string) error {
	if pw == "" {
		return api.BadRequest("Invalid input for field 'user.password': password must not be empty.")
	}
	if len(pw) > 4096 {
		return api.BadRequest("Invalid input for field 'user.password': password is longer than 4096 characters.")
	}
	return nil
}

func (s *Service) createUser(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b userBody
	extra, err := readEnvelope(r, "user", &b, false)
	if err != nil {
		return nil, err
	}
	if err := validName("user", b.Name.Value); err != nil {
		return nil, err
	}
	if err := validOptions(b.Options); err != nil {
		return nil, err
	}
	u := &user{ID: newID(), Name: b.Name.Value, Enabled: !b.Enabled.Set || b.Enabled.Value,
		DefaultProjectID: b.DefaultProjectID.Value, CreatedAt: store.FormatTime(now()), Extra: encodeExtra(extra)}
	u.DomainID = b.DomainID.Value
	if u.DomainID == "" {
		if c := api.Caller(r); c != nil && c.DomainID != "" {
			u.DomainID = c.DomainID
		} else {
			u.DomainID = DefaultDomainID
		}
	}
	if err := s.api.Authorize(r, "identity:create_user", map[string]any{"target": map[string]any{"user": map[string]any{"domain_id": u.DomainID}}}); err != nil {
		return nil, err
	}
	if _, err := s.getDomain(ctx, s.db, u.DomainID); errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find domain: %s.", u.DomainID)
	} else if err != nil {
		return nil, err
	}
	if u.DefaultProjectID != "" {
		p, err := s.getProject(ctx, s.db, u.DefaultProjectID)
		if err == nil && p.IsDomain {
			return nil, api.BadRequest("Unable to use a domain as the default project of a user.")
		}
	}
	opts, _ := json.Marshal(nonNil(b.Options))
	u.Options = string(opts)
	if b.Password.Set && !b.Password.Null {
		if err := validPassword(b.Password.Value); err != nil {
			return nil, err
		}
		if u.PasswordHash, err = s.hashPassword(b.Password.Value); err != nil {
			return nil, err
		}
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO users (id, domain_id, name, enabled, default_project_id, password_hash, password_created_at, created_at, options, extra)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.DomainID, u.Name, u.Enabled, nullable(u.DefaultProjectID), nullable(u.PasswordHash), nullable(passwordCreated(u)), u.CreatedAt, u.Options, u.Extra); err != nil {
			return err
		}
		return recordPasswordHistory(ctx, tx, u.ID, u.PasswordHash, u.CreatedAt)
	})
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store user - Duplicate entry found with name %s at domain ID %s.", u.Name, u.DomainID)
	}
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"user": s.userJSON(r, u)}), nil
}

func passwordCreated(u *user) string {
	if u.PasswordHash == "" {
		return ""
	}
	return u.CreatedAt
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// loadUserTarget fetches the user named in the path and checks the action
// against it, answering 404 for a user that does not exist.
func (s *Service) loadUserTarget(r *http.Request, action string) (*user, error) {
	id := r.PathValue("user_id")
	u, err := s.getUser(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		// Keystone checks policy before it looks, so a caller without the
		// right learns nothing from 404 vs 403.
		if err := s.api.Authorize(r, action, map[string]any{"user_id": id, "target": map[string]any{"user": map[string]any{"id": id}}}); err != nil {
			return nil, err
		}
		return nil, api.NotFound("Could not find user: %s.", id)
	}
	if err != nil {
		return nil, err
	}
	target := map[string]any{"user_id": u.ID, "target": map[string]any{"user": map[string]any{"id": u.ID, "domain_id": u.DomainID}}}
	if err := s.api.Authorize(r, action, target); err != nil {
		return nil, err
	}
	return u, nil
}

func (s *Service) showUser(r *http.Request) (*api.Response, error) {
	u, err := s.loadUserTarget(r, "identity:get_user")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"user": s.userJSON(r, u)}), nil
}

func (s *Service) listUsers(r *http.Request) (*api.Response, error) {
	where, args, domain := nameDomainFilter(r)
	if v, ok := queryBool(r, "enabled"); ok {
		where, args = append(where, "enabled = ?"), append(args, v)
	}
	if err := s.api.Authorize(r, "identity:list_users", map[string]any{"domain_id": domain, "target": map[string]any{"domain_id": domain}}); err != nil {
		return nil, err
	}
	return s.queryUsers(r, `SELECT `+userColumns+` FROM users WHERE `+strings.Join(where, " AND ")+` ORDER BY name, id`, args...)
}

// queryUsers answers a list call with the users q selects.
func (s *Service) queryUsers(r *http.Request, q string, args ...any) (*api.Response, error) {
	users, err := store.QueryAll(r.Context(), s.db, scanUser, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return listResponse(s, r, "users", users, s.userJSON), nil
}

// nameDomainFilter starts the filters of a user or group listing from the
// name and domain_id parameters. A domain-scoped caller that names no
// domain lists its own, as Keystone does; domain is what the listing is
// limited to ("" for every domain), for the policy check.
func nameDomainFilter(r *http.Request) (where []string, args []any, domain string) {
	q := r.URL.Query()
	where, args = []string{"1 = 1"}, []any{}
	if v := q.Get("name"); v != "" {
		where, args = append(where, "name = ?"), append(args, v)
	}
	domain = q.Get("domain_id")
	if c := api.Caller(r); domain == "" && c != nil && c.DomainID != "" {
		domain = c.DomainID
	}
	if domain != "" {
		where, args = append(where, "domain_id = ?"), append(args, domain)
	}
	return where, args, domain
}

func (s *Service) updateUser(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b userBody
	extra, err := readEnvelope(r, "user", &b, false)
	if err != nil {
		return nil, err
	}
	u, err := s.loadUserTarget(r, "identity:update_user")
	if err != nil {
		return nil, err
	}
	if b.DomainID.Set && b.DomainID.Value != u.DomainID {
		return nil, api.BadRequest("Update of `domain_id` is not allowed.")
	}
	revoke := false
	passwordChanged := false
	if b.Name.Set {
		if err := validName("user", b.Name.Value); err != nil {
			return nil, err
		}
		u.Name = b.Name.Value
	}
	if b.Enabled.Set {
		if b.Enabled.Null {
			return nil, api.BadRequest("Invalid input for field 'user.enabled': None is not of type 'boolean'.")
		}
		if u.Enabled && !b.Enabled.Value {
			revoke = true
		}
		u.Enabled = b.Enabled.Value
	}
	if b.DefaultProjectID.Set {
		u.DefaultProjectID = b.DefaultProjectID.Value
	}
	if b.Options != nil {
		if err := validOptions(b.Options); err != nil {
			return nil, err
		}
		var opts map[string]any
		_ = json.Unmarshal([]byte(u.Options), &opts)
		opts = nonNil(opts)
		for k, v := range b.Options {
			if v == nil {
				delete(opts, k)
			} else {
				opts[k] = v
			}
		}
		raw, _ := json.Marshal(opts)
		u.Options = string(raw)
	}
	if b.Password.Set {
		if b.Password.Null {
			u.PasswordHash = ""
		} else {
			if err := validPassword(b.Password.Value); err != nil {
				return nil, err
			}
			if u.PasswordHash, err = s.hashPassword(b.Password.Value); err != nil {
				return nil, err
			}
		}
		passwordChanged, revoke = true, true
	}
	u.Extra = mergeExtra(u.Extra, extra)
	ts := store.FormatTime(now())
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE users SET name = ?, enabled = ?, default_project_id = ?, options = ?, extra = ? WHERE id = ?`,
			u.Name, u.Enabled, nullable(u.DefaultProjectID), u.Options, u.Extra, u.ID); err != nil {
			return err
		}
		if passwordChanged {
			return setPassword(ctx, tx, u.ID, u.PasswordHash, ts)
		}
		return nil
	})
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store user - Duplicate entry found with name %s at domain ID %s.", u.Name, u.DomainID)
	}
	if err != nil {
		return nil, fmt.Errorf("update user %s: %w", u.ID, err)
	}
	if revoke {
		if err := s.recordRevocation(ctx, revocationEvent{UserID: u.ID}); err != nil {
			return nil, err
		}
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"user": s.userJSON(r, u)}), nil
}

func setPassword(ctx context.Context, tx *store.Tx, userID, hash, ts string) error {
	if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = ?, password_created_at = ?, failed_auth_count = 0, failed_auth_at = NULL WHERE id = ?`,
		nullable(hash), ts, userID); err != nil {
		return err
	}
	return recordPasswordHistory(ctx, tx, userID, hash, ts)
}

// recordPasswordHistory remembers a password's hash for the
// unique-last-passwords rule.
func recordPasswordHistory(ctx context.Context, tx *store.Tx, userID, hash, ts string) error {
	if hash == "" {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO password_history (user_id, hash, created_at) VALUES (?, ?, ?)`, userID, hash, ts)
	return err
}

// reusesRecentPassword reports whether password is one of the user's last
// UniqueLastPasswordCount passwords. Each comparison is a full bcrypt
// verification, so the rule costs what the count says.
func (s *Service) reusesRecentPassword(ctx context.Context, userID, password string) (bool, error) {
	n := s.cfg.UniqueLastPasswordCount
	if n <= 0 {
		return false, nil
	}
	hashes, err := store.QueryStrings(ctx, s.db, `SELECT hash FROM password_history WHERE user_id = ? ORDER BY created_at DESC LIMIT ?`, userID, n)
	if err != nil {
		return false, fmt.Errorf("password history of %s: %w", userID, err)
	}
	for _, h := range hashes {
		if s.checkPassword(&user{ID: userID, PasswordHash: h}, password) {
			return true, nil
		}
	}
	return false, nil
}

func (s *Service) deleteUser(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	u, err := s.loadUserTarget(r, "identity:delete_user")
	if err != nil {
		return nil, err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := execAll(ctx, tx, u.ID,
			`DELETE FROM assignments WHERE actor_id = ?`,
			`DELETE FROM credentials WHERE user_id = ?`,
			`DELETE FROM application_credentials WHERE user_id = ?`,
			`DELETE FROM access_rules WHERE user_id = ?`,
			`DELETE FROM users WHERE id = ?`,
		); err != nil {
			return err
		}
		return s.deleteUserExtras(ctx, tx, u.ID)
	})
	if err != nil {
		return nil, fmt.Errorf("delete user %s: %w", u.ID, err)
	}
	if err := s.recordRevocation(ctx, revocationEvent{UserID: u.ID}); err != nil {
		return nil, err
	}
	s.changed()
	return api.NoContent(), nil
}

// changePassword lets users change their own password. Like Keystone it
// needs no token (a user whose password expired cannot get one): the
// original password is the proof.
func (s *Service) changePassword(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b struct {
		Password         string `json:"password"`
		OriginalPassword string `json:"original_password"`
	}
	if _, err := readEnvelope(r, "user", &b, true); err != nil {
		return nil, err
	}
	if b.OriginalPassword == "" {
		return nil, api.BadRequest("Invalid input for field 'user.original_password': 'original_password' is a required property.")
	}
	if err := validPassword(b.Password); err != nil {
		return nil, err
	}
	u, err := s.getUser(ctx, r.PathValue("user_id"))
	if errors.Is(err, store.ErrNotFound) {
		s.burnPasswordCheck(b.OriginalPassword)
		return nil, api.Unauthorized("The request you have made requires authentication.")
	}
	if err != nil {
		return nil, err
	}
	if !s.checkPassword(u, b.OriginalPassword) {
		return nil, api.Unauthorized("The request you have made requires authentication.")
	}
	var opts map[string]any
	_ = json.Unmarshal([]byte(u.Options), &opts)
	if locked, _ := opts["lock_password"].(bool); locked {
		return nil, api.Forbidden("You are not allowed to change the password of this user: the password is locked.")
	}
	// The history rule binds users changing their own password, not an
	// administrator resetting it, as in Keystone.
	reused, err := s.reusesRecentPassword(ctx, u.ID, b.Password)
	if err != nil {
		return nil, err
	}
	if reused {
		return nil, api.BadRequest("The new password cannot be identical to a previous password. The total number which includes the new password must be unique is %d.", s.cfg.UniqueLastPasswordCount)
	}
	hash, err := s.hashPassword(b.Password)
	if err != nil {
		return nil, err
	}
	ts := store.FormatTime(now())
	if err := s.db.InTx(ctx, func(tx *store.Tx) error { return setPassword(ctx, tx, u.ID, hash, ts) }); err != nil {
		return nil, fmt.Errorf("change password of %s: %w", u.ID, err)
	}
	if err := s.recordRevocation(ctx, revocationEvent{UserID: u.ID}); err != nil {
		return nil, err
	}
	s.changed()
	return api.NoContent(), nil
}

// lockedOut reports whether repeated failures locked the user.
func (s *Service) lockedOut(u *user) bool {
	if s.cfg.LockoutFailures <= 0 || u.FailedAuthCount < s.cfg.LockoutFailures {
		return false
	}
	var opts map[string]any
	_ = json.Unmarshal([]byte(u.Options), &opts)
	if ignore, _ := opts["ignore_lockout_failure_attempts"].(bool); ignore {
		return false
	}
	at, err := store.ParseTime(u.FailedAuthAt)
	return err == nil && time.Since(at) < s.cfg.LockoutDuration
}

// noteAuthResult keeps the failed-attempt counter that drives lockout. A
// success only writes when there were failures to forget, so repeated
// logins stay read-only.
func (s *Service) noteAuthResult(ctx context.Context, u *user, ok bool) {
	if s.cfg.LockoutFailures <= 0 {
		return
	}
	var err error
	switch {
	case ok && u.FailedAuthCount > 0:
		_, err = s.db.Exec(ctx, `UPDATE users SET failed_auth_count = 0, failed_auth_at = NULL WHERE id = ?`, u.ID)
	case !ok:
		count := u.FailedAuthCount + 1
		if at, perr := store.ParseTime(u.FailedAuthAt); perr == nil && time.Since(at) >= s.cfg.LockoutDuration {
			count = 1
		}
		_, err = s.db.Exec(ctx, `UPDATE users SET failed_auth_count = ?, failed_auth_at = ? WHERE id = ?`, count, store.FormatTime(now()), u.ID)
	}
	if err != nil {
		s.log.Warn("record authentication result", "user_id", u.ID, "err", err)
		return
	}
	if ok && u.FailedAuthCount > 0 || !ok {
		s.changed()
	}
}
