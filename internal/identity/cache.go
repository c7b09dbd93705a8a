package identity

import (
	"context"
	"sync"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// readCache memoizes the reads that authentication and token validation
// repeat on every request — users, domains, projects, a user's roles in a
// scope, the catalog — for one generation of identity data. Any committed
// write bumps the generation (Service.changed), which empties the cache, so
// a cached answer is never older than the last write this process made.
//
// Values are shared between callers and must be treated as read-only;
// handlers that modify what they load use the uncached getters.
type readCache struct {
	mu  sync.RWMutex
	gen uint64         // guarded by mu; generation the entries belong to
	m   map[string]any // guarded by mu
}

// cached returns the value for key in the current generation, loading it
// on a miss. The generation is read before loading, so a value loaded while
// a write commits is stored under the old generation and never served
// after the write.
func cached[T any](s *Service, key string, load func() (T, error)) (T, error) {
	gen := s.generation.Load()
	c := &s.cache
	c.mu.RLock()
	if c.gen == gen {
		if v, ok := c.m[key]; ok {
			c.mu.RUnlock()
			return v.(T), nil
		}
	}
	c.mu.RUnlock()
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.gen < gen || c.m == nil:
		c.gen, c.m = gen, map[string]any{}
	case c.gen > gen:
		return v, nil // loaded before a write that has since committed
	}
	if len(c.m) < readCacheLimit {
		c.m[key] = v
	}
	return v, nil
}

// readCacheLimit bounds the entries of one generation.
const readCacheLimit = 100_000

func (s *Service) cachedUser(ctx context.Context, id string) (*user, error) {
	return cached(s, "user:"+id, func() (*user, error) { return s.getUser(ctx, id) })
}

func (s *Service) cachedUserByName(ctx context.Context, domainID, name string) (*user, error) {
	return cached(s, "user-name:"+domainID+"\x00"+name, func() (*user, error) { return s.userByName(ctx, domainID, name) })
}

func (s *Service) cachedProject(ctx context.Context, id string) (*project, error) {
	return cached(s, "project:"+id, func() (*project, error) { return s.getProject(ctx, s.db, id) })
}

func (s *Service) cachedDomain(ctx context.Context, id string) (*project, error) {
	p, err := s.cachedProject(ctx, id)
	if err != nil {
		return nil, err
	}
	if !p.IsDomain {
		return nil, store.ErrNotFound
	}
	return p, nil
}

func (s *Service) cachedDomainByName(ctx context.Context, name string) (*project, error) {
	return cached(s, "domain-name:"+name, func() (*project, error) { return s.domainByName(ctx, name) })
}

func (s *Service) cachedRole(ctx context.Context, id string) (*role, error) {
	return cached(s, "role:"+id, func() (*role, error) { return s.getRole(ctx, id) })
}

func (s *Service) cachedScopeRoles(ctx context.Context, userID string, sc scope) ([]string, error) {
	key := "roles:" + userID + "\x00" + sc.ProjectID + "\x00" + sc.DomainID
	if sc.System {
		key += "\x00system"
	}
	return cached(s, key, func() ([]string, error) { return s.scopeRoles(ctx, userID, sc) })
}

func (s *Service) cachedProjectByName(ctx context.Context, domainID, name string) (string, error) {
	return cached(s, "project-name:"+domainID+"\x00"+name, func() (string, error) {
		var id string
		err := s.db.QueryRow(ctx, `SELECT id FROM projects WHERE domain_id = ? AND name = ? AND is_domain = ?`, domainID, name, false).Scan(&id)
		return id, err
	})
}
