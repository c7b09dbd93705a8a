package identity

import (
	"context"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// extensionMigrations are the schema of the API extensions (OS-OAUTH1,
// OS-EP-FILTER, domain configuration, policies, limits, federation
// mappings, credentials), versions 3 and up.
var extensionMigrations []store.Migration

// extensionRoutes registers the API extensions' routes.
func (s *Service) extensionRoutes(rt *api.Router) {}

// Cleanup hooks: what else goes when a domain, project, user or role is
// deleted, beyond the core tables. Each runs inside the deleting
// transaction, so a failure leaves everything in place.

func (s *Service) deleteDomainExtras(ctx context.Context, tx *store.Tx, domainID string) error {
	return nil
}

func (s *Service) deleteProjectExtras(ctx context.Context, tx *store.Tx, projectID string) error {
	_, err := tx.Exec(ctx, `UPDATE trusts SET deleted_at = ? WHERE project_id = ? AND deleted_at IS NULL`, store.FormatTime(now()), projectID)
	return err
}

func (s *Service) deleteUserExtras(ctx context.Context, tx *store.Tx, userID string) error {
	_, err := tx.Exec(ctx, `UPDATE trusts SET deleted_at = ? WHERE (trustor_user_id = ? OR trustee_user_id = ?) AND deleted_at IS NULL`, store.FormatTime(now()), userID, userID)
	return err
}

func (s *Service) deleteRoleExtras(ctx context.Context, tx *store.Tx, roleID string) error {
	_, err := tx.Exec(ctx, `DELETE FROM trust_roles WHERE role_id = ?`, roleID)
	return err
}

// projectEndpointFilter returns the endpoints a project-scoped token's
// catalog is limited to (OS-EP-FILTER), or nil for no filter.
func (s *Service) projectEndpointFilter(ctx context.Context, v *tokenView) (map[string]bool, error) {
	return nil, nil
}

// oauth1Method is the oauth1 auth method's body.
type oauth1Method struct{}

func (s *Service) authOAuth1(r *http.Request, m *oauth1Method) (*authResult, error) {
	return nil, api.Unauthorized("Attempted to authenticate with an unsupported method.")
}

func (s *Service) oauthConsumerOf(ctx context.Context, accessTokenID string) string { return "" }
