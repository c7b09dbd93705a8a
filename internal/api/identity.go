package api

import (
	"context"
	"time"
)

// Identity is what a validated token proves about its bearer: who they are,
// what the token is scoped to and which roles they hold there. Every service
// authorizes from it.
type Identity struct {
	Token string

	UserID         string
	UserName       string
	UserDomainID   string
	UserDomainName string

	// Scope: at most one of project, domain or system is set; none means
	// an unscoped token.
	ProjectID         string
	ProjectName       string
	ProjectDomainID   string
	ProjectDomainName string
	DomainID          string
	DomainName        string
	System            bool

	Roles []Role

	Methods   []string
	AuditIDs  []string
	IssuedAt  time.Time
	ExpiresAt time.Time

	// Set when the token was obtained through a trust or an application
	// credential, which narrows what it may do.
	TrustID               string
	ApplicationCredential string
	// IsAdminProject is true when the token is scoped to the cloud's admin
	// project, which some services treat as cloud-wide admin.
	IsAdminProject bool
}

// Role is a role held in the token's scope.
type Role struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// RoleNames returns the names of the token's roles.
func (id *Identity) RoleNames() []string {
	names := make([]string, len(id.Roles))
	for i, r := range id.Roles {
		names[i] = r.Name
	}
	return names
}

// HasRole reports whether the token carries the named role.
func (id *Identity) HasRole(name string) bool {
	for _, r := range id.Roles {
		if r.Name == name {
			return true
		}
	}
	return false
}

// TokenValidator turns an X-Auth-Token into the identity it proves. The
// identity service validates in process; other processes validate through
// the identity API with a cache, as keystonemiddleware does.
type TokenValidator interface {
	ValidateToken(ctx context.Context, token string) (*Identity, error)
}

// Authorizer decides whether caller may perform action on target. caller is
// nil for unauthenticated requests.
type Authorizer interface {
	Allow(action string, target map[string]any, caller *Identity) (bool, error)
}
