package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Stored passwords are bcrypt over the hex SHA-256 of the password, so that
// passwords longer than bcrypt's 72-byte input limit are not silently
// truncated; the prefix names the scheme so it can change later.
const passwordScheme = "bcrypt-sha256$"

func prehash(password string) []byte {
	sum := sha256.Sum256([]byte(password))
	return []byte(hex.EncodeToString(sum[:]))
}

// hashPassword derives the stored form of a password with the configured
// (slow, by design) bcrypt cost.
func (s *Service) hashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword(prehash(password), s.cfg.BcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return passwordScheme + string(h), nil
}

// checkPassword verifies a password against the user's stored hash.
// Successful verifications are remembered in memory (never on disk) under
// an HMAC keyed with a per-process secret over the user, the stored hash
// and the password, so a repeated login skips bcrypt while a changed
// password (new stored hash) or a wrong password never hits the cache.
func (s *Service) checkPassword(u *user, password string) bool {
	if u.PasswordHash == "" || !strings.HasPrefix(u.PasswordHash, passwordScheme) {
		s.burnPasswordCheck(password)
		return false
	}
	key := s.passwords.key(u.ID, u.PasswordHash, password)
	if s.passwords.has(key) {
		return true
	}
	err := bcrypt.CompareHashAndPassword([]byte(strings.TrimPrefix(u.PasswordHash, passwordScheme)), prehash(password))
	if err != nil {
		return false
	}
	s.passwords.add(key)
	return true
}

// burnPasswordCheck spends the same work as a real verification, so that an
// unknown user and a wrong password take similar time and cannot be told
// apart by a client.
func (s *Service) burnPasswordCheck(password string) {
	s.passwords.dummyOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte("nimbus-dummy-password"), s.cfg.BcryptCost)
		if err == nil {
			s.passwords.dummy = h
		}
	})
	_ = bcrypt.CompareHashAndPassword(s.passwords.dummy, prehash(password))
}

// passwordCache remembers recent successful password verifications.
type passwordCache struct {
	secret [32]byte

	mu      sync.Mutex
	entries map[[32]byte]time.Time // guarded by mu; value is when the entry expires

	dummyOnce sync.Once
	dummy     []byte
}

const (
	passwordCacheTTL  = 10 * time.Minute
	passwordCacheSize = 100_000
)

func newPasswordCache() *passwordCache {
	c := &passwordCache{entries: map[[32]byte]time.Time{}}
	_, _ = rand.Read(c.secret[:])
	return c
}

func (c *passwordCache) key(userID, storedHash, password string) [32]byte {
	m := hmac.New(sha256.New, c.secret[:])
	for _, part := range []string{userID, storedHash, password} {
		fmt.Fprintf(m, "%d:", len(part))
		m.Write([]byte(part))
	}
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

func (c *passwordCache) has(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[k]
	if !ok {
		return false
	}
	if time.Now().After(exp) {
		delete(c.entries, k)
		return false
	}
	return true
}

func (c *passwordCache) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= passwordCacheSize {
		// Drop expired entries; if the cache is still full, start over
		// rather than grow without bound.
		now := time.Now()
		for k, exp := range c.entries {
			if now.After(exp) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= passwordCacheSize {
			clear(c.entries)
		}
	}
	c.entries[k] = time.Now().Add(passwordCacheTTL)
}
