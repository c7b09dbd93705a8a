// Package identity is Nimbus's Keystone v3-compatible identity service:
// domains, projects, users, groups, roles and their assignments, the service
// catalog, credentials, application credentials and Fernet-style tokens.
//
// Tokens are stateless: they are encrypted with the keys of a Keystone-style
// key repository and carry who, what scope and until when. Validating one
// decrypts it and looks up the bearer's current roles in an in-memory cache
// that any identity write invalidates, so the common case needs no database
// round trip while revocations and role changes still take effect at once.
package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/fernet"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Config is the identity service's configuration.
type Config struct {
	// PublicURL is the identity endpoint clients use, e.g.
	// http://127.0.0.1:5000; links in bodies are built from it. Empty means
	// "from the request's Host".
	PublicURL string
	// KeyDir is the Fernet key repository.
	KeyDir string
	// TokenLifetime is how long issued tokens live (Keystone: 1 h).
	TokenLifetime time.Duration
	// AllowExpiredWindow is how long after expiry a token may still be
	// validated with allow_expired=1 (Keystone: 48 h).
	AllowExpiredWindow time.Duration
	// LockoutFailures locks a user after this many consecutive failed
	// password attempts (0 disables lockout), for LockoutDuration.
	LockoutFailures int
	LockoutDuration time.Duration
	// UniqueLastPasswordCount refuses self-service changes to any of the
	// last N passwords (0: off).
	UniqueLastPasswordCount int
	// BcryptCost is the stored-password KDF cost (Keystone: 12).
	BcryptCost int
	// PolicyFile optionally overrides the default policy rules (YAML).
	PolicyFile string
	// MaxActiveKeys bounds the key repository on rotation.
	MaxActiveKeys int
}

func (c *Config) setDefaults() {
	if c.TokenLifetime == 0 {
		c.TokenLifetime = time.Hour
	}
	if c.AllowExpiredWindow == 0 {
		c.AllowExpiredWindow = 48 * time.Hour
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = 12
	}
	if c.LockoutDuration == 0 {
		c.LockoutDuration = 30 * time.Minute
	}
	if c.MaxActiveKeys == 0 {
		c.MaxActiveKeys = 3
	}
}

// Service is a running identity service.
type Service struct {
	cfg  Config
	db   *store.DB
	keys *fernet.Keyring
	api  *api.Service
	log  *slog.Logger

	// generation counts identity writes; caches stamped with an older
	// generation are stale. Bumped after every committed write.
	generation atomic.Uint64

	tokenCache  sync.Map // token string -> *cachedToken
	revocations atomic.Pointer[revocationList]
	passwords   *passwordCache
	cache       readCache
	notify      atomic.Pointer[func()]
}

// New opens the identity service on db, migrating its schema and loading
// the key repository (created if missing).
func New(ctx context.Context, cfg Config, db *store.DB, svc *api.Service, log *slog.Logger) (*Service, error) {
	cfg.setDefaults()
	if log == nil {
		log = slog.Default()
	}
	if err := db.Migrate(ctx, "identity", schema()); err != nil {
		return nil, err
	}
	if err := fernet.Setup(cfg.KeyDir); err != nil {
		return nil, fmt.Errorf("fernet key repository: %w", err)
	}
	keys, err := fernet.NewKeyring(cfg.KeyDir)
	if err != nil {
		return nil, fmt.Errorf("load fernet keys: %w", err)
	}
	s := &Service{cfg: cfg, db: db, keys: keys, api: svc, log: log, passwords: newPasswordCache()}
	if err := s.loadRevocations(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Keys returns the token key ring, so the process can reload it on rotation.
func (s *Service) Keys() *fernet.Keyring { return s.keys }

// changed marks every cache stale after a committed write and tells the
// other identity processes sharing the database, if any, to do the same.
func (s *Service) changed() {
	s.generation.Add(1)
	if n := s.notify.Load(); n != nil {
		(*n)()
	}
}

// OnChange registers a function called after every committed identity
// write; the process wiring uses it to broadcast the change on the bus.
func (s *Service) OnChange(notify func()) { s.notify.Store(&notify) }

// Invalidate drops every cached answer and reloads revocations, after
// another process changed identity data in the shared database.
func (s *Service) Invalidate(ctx context.Context) error {
	// Revocations first, generation second; see recordRevocation.
	err := s.loadRevocations(ctx)
	s.generation.Add(1)
	return err
}

// newID returns a Keystone-style id: 32 lowercase hex digits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// baseURL is the identity endpoint as clients reach it.
func (s *Service) baseURL(r *http.Request) string {
	return api.BaseURL(r, s.cfg.PublicURL)
}

// now is the service's clock, truncated to microseconds as stored.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
