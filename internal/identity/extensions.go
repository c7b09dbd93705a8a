package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// extensionMigrations are the schema of the API extensions (OS-OAUTH1,
// OS-EP-FILTER, domain configuration, policies, unified limits,
// federation), versions 3 and up. Credentials use the core credentials
// table.
//
// Rows that name a project, user, role or endpoint reference it with ON
// DELETE CASCADE where the referenced row is deleted by code outside this
// file (endpoints have no cleanup hook; a domain deletes its projects and
// users in bulk), so nothing dangles whichever path deletes it. The
// cleanup hooks below delete explicitly as well, which keeps the intent
// readable and does not depend on the engine enforcing foreign keys.
var extensionMigrations = []store.Migration{
	{Version: 3, Name: "identity extensions", SQL: `
CREATE TABLE oauth1_consumers (
	id TEXT PRIMARY KEY,
	description TEXT,
	secret TEXT NOT NULL,
	extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE oauth1_request_tokens (
	id TEXT PRIMARY KEY,
	secret TEXT NOT NULL,
	consumer_id TEXT NOT NULL REFERENCES oauth1_consumers (id) ON DELETE CASCADE,
	requested_project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	verifier TEXT,
	authorizing_user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
	expires_at TEXT
);
CREATE INDEX oauth1_request_tokens_consumer ON oauth1_request_tokens (consumer_id);
CREATE TABLE oauth1_request_token_roles (
	request_token_id TEXT NOT NULL REFERENCES oauth1_request_tokens (id) ON DELETE CASCADE,
	role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
	PRIMARY KEY (request_token_id, role_id)
);
CREATE TABLE oauth1_access_tokens (
	id TEXT PRIMARY KEY,
	secret TEXT NOT NULL,
	consumer_id TEXT NOT NULL REFERENCES oauth1_consumers (id) ON DELETE CASCADE,
	authorizing_user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	expires_at TEXT
);
CREATE INDEX oauth1_access_tokens_user ON oauth1_access_tokens (authorizing_user_id);
CREATE INDEX oauth1_access_tokens_consumer ON oauth1_access_tokens (consumer_id);
CREATE TABLE oauth1_access_token_roles (
	access_token_id TEXT NOT NULL REFERENCES oauth1_access_tokens (id) ON DELETE CASCADE,
	role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
	PRIMARY KEY (access_token_id, role_id)
);
CREATE TABLE endpoint_groups (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	description TEXT,
	filters TEXT NOT NULL
);
CREATE TABLE project_endpoints (
	endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	PRIMARY KEY (endpoint_id, project_id)
);
CREATE INDEX project_endpoints_project ON project_endpoints (project_id);
CREATE TABLE project_endpoint_groups (
	endpoint_group_id TEXT NOT NULL REFERENCES endpoint_groups (id) ON DELETE CASCADE,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	PRIMARY KEY (endpoint_group_id, project_id)
);
CREATE INDEX project_endpoint_groups_project ON project_endpoint_groups (project_id);
CREATE TABLE domain_configs (
	domain_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	config_group TEXT NOT NULL,
	config_option TEXT NOT NULL,
	value TEXT NOT NULL,
	sensitive BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (domain_id, config_group, config_option)
);
CREATE TABLE policies (
	id TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	blob TEXT NOT NULL,
	extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE registered_limits (
	id TEXT PRIMARY KEY,
	service_id TEXT NOT NULL,
	region_id TEXT NOT NULL DEFAULT '',
	resource_name TEXT NOT NULL,
	default_limit INTEGER NOT NULL,
	description TEXT,
	UNIQUE (service_id, region_id, resource_name)
);
CREATE TABLE unified_limits (
	id TEXT PRIMARY KEY,
	registered_limit_id TEXT NOT NULL REFERENCES registered_limits (id),
	project_id TEXT REFERENCES projects (id) ON DELETE CASCADE,
	domain_id TEXT REFERENCES projects (id) ON DELETE CASCADE,
	owner_id TEXT NOT NULL,
	resource_limit INTEGER NOT NULL,
	description TEXT,
	UNIQUE (registered_limit_id, owner_id)
);
CREATE INDEX unified_limits_owner ON unified_limits (owner_id);
CREATE TABLE federation_mappings (
	id TEXT PRIMARY KEY,
	rules TEXT NOT NULL
);
CREATE TABLE identity_providers (
	id TEXT PRIMARY KEY,
	domain_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	enabled BOOLEAN NOT NULL DEFAULT FALSE,
	description TEXT,
	authorization_ttl INTEGER
);
CREATE TABLE idp_remote_ids (
	remote_id TEXT PRIMARY KEY,
	idp_id TEXT NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE
);
CREATE INDEX idp_remote_ids_idp ON idp_remote_ids (idp_id);
CREATE TABLE federation_protocols (
	id TEXT NOT NULL,
	idp_id TEXT NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
	mapping_id TEXT NOT NULL,
	remote_id_attribute TEXT,
	PRIMARY KEY (idp_id, id)
)`},
}

// extensionRoutes registers the API extensions' routes, one table per
// resource family.
func (s *Service) extensionRoutes(rt *api.Router) {
	s.credentialRoutes(rt)
	s.ec2Routes(rt)
	s.oauth1Routes(rt)
	s.epFilterRoutes(rt)
	s.domainConfigRoutes(rt)
	s.policyRoutes(rt)
	s.limitRoutes(rt)
	s.federationRoutes(rt)
}

// Cleanup hooks: what else goes when a domain, project, user or role is
// deleted, beyond the core tables. Each runs inside the deleting
// transaction, so a failure leaves everything in place.

// execAll runs statements that each take the same single argument.
func execAll(ctx context.Context, tx *store.Tx, arg any, stmts ...string) error {
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q, arg); err != nil {
			return err
		}
	}
	return nil
}

// deleteResource runs stmts, each taking id as its one argument, in one
// transaction and answers 204: the delete of a resource, with whatever
// dependent rows go with it.
func (s *Service) deleteResource(ctx context.Context, what, id string, stmts ...string) (*api.Response, error) {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		return execAll(ctx, tx, id, stmts...)
	})
	if err != nil {
		return nil, fmt.Errorf("delete %s %s: %w", what, id, err)
	}
	s.changed()
	return api.NoContent(), nil
}

// deleteOne runs q, a DELETE of a link row (an association, a tag, an
// implication), and answers 204, or notFound when it matched nothing.
func (s *Service) deleteOne(ctx context.Context, notFound error, q string, args ...any) (*api.Response, error) {
	res, err := s.db.Exec(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFound
	}
	s.changed()
	return api.NoContent(), nil
}

// mustExist returns notFound unless q, a SELECT COUNT(*), counts a row.
func (s *Service) mustExist(ctx context.Context, notFound error, q string, args ...any) error {
	var n int
	if err := s.db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return notFound
	}
	return nil
}

func (s *Service) deleteDomainExtras(ctx context.Context, tx *store.Tx, domainID string) error {
	if err := execAll(ctx, tx, domainID,
		`DELETE FROM domain_configs WHERE domain_id = ?`,
		`DELETE FROM unified_limits WHERE domain_id = ?`,
		`DELETE FROM identity_providers WHERE domain_id = ?`,
	); err != nil {
		return err
	}
	// The domain's projects and users were deleted in bulk, without their
	// own hooks: sweep credentials that referred to them.
	for _, q := range []string{
		`DELETE FROM credentials WHERE user_id NOT IN (SELECT id FROM users)`,
		`DELETE FROM credentials WHERE project_id IS NOT NULL AND project_id NOT IN (SELECT id FROM projects)`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) deleteProjectExtras(ctx context.Context, tx *store.Tx, projectID string) error {
	if _, err := tx.Exec(ctx, `UPDATE trusts SET deleted_at = ? WHERE project_id = ? AND deleted_at IS NULL`, store.FormatTime(now()), projectID); err != nil {
		return err
	}
	return execAll(ctx, tx, projectID,
		`DELETE FROM credentials WHERE project_id = ?`,
		`DELETE FROM project_endpoints WHERE project_id = ?`,
		`DELETE FROM project_endpoint_groups WHERE project_id = ?`,
		`DELETE FROM unified_limits WHERE project_id = ?`,
		`DELETE FROM oauth1_request_tokens WHERE requested_project_id = ?`,
		`DELETE FROM oauth1_access_tokens WHERE project_id = ?`,
	)
}

func (s *Service) deleteUserExtras(ctx context.Context, tx *store.Tx, userID string) error {
	if _, err := tx.Exec(ctx, `UPDATE trusts SET deleted_at = ? WHERE (trustor_user_id = ? OR trustee_user_id = ?) AND deleted_at IS NULL`, store.FormatTime(now()), userID, userID); err != nil {
		return err
	}
	return execAll(ctx, tx, userID,
		`DELETE FROM credentials WHERE user_id = ?`,
		`DELETE FROM oauth1_access_tokens WHERE authorizing_user_id = ?`,
		`DELETE FROM oauth1_request_tokens WHERE authorizing_user_id = ?`,
	)
}

func (s *Service) deleteRoleExtras(ctx context.Context, tx *store.Tx, roleID string) error {
	return execAll(ctx, tx, roleID,
		`DELETE FROM trust_roles WHERE role_id = ?`,
		`DELETE FROM oauth1_request_token_roles WHERE role_id = ?`,
		`DELETE FROM oauth1_access_token_roles WHERE role_id = ?`,
	)
}

// isAPIError reports whether err already carries a status for the client.
func isAPIError(err error) bool {
	var e *api.Error
	return errors.As(err, &e)
}
