package identity

import "github.com/nimbus-cloud/nimbus/internal/store"

// rootDomainID is the parent "domain" of domains, as Keystone stores them:
// a domain is a project row with is_domain true whose domain_id is this
// sentinel, so (domain_id, name) uniqueness covers domains too.
const rootDomainID = "<<keystone.domain.root>>"

// globalRoleDomain stands in for "no domain" in roles.domain_id so that the
// (name, domain_id) unique constraint also holds for global roles (NULLs
// would never compare equal).
const globalRoleDomain = "<<null>>"

// schema returns the identity migrations in order: the core tables, then
// each extension's.
func schema() []store.Migration {
	var all []store.Migration
	all = append(all, migrations...)
	all = append(all, trustMigrations...)
	all = append(all, extensionMigrations...)
	return all
}

// migrations is the identity schema. Times are fixed-width UTC text (see
// store.FormatTime); free-form attributes live in JSON text columns.
var migrations = []store.Migration{
	{Version: 1, Name: "identity core", SQL: `
CREATE TABLE projects (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	domain_id TEXT NOT NULL,
	parent_id TEXT,
	description TEXT NOT NULL DEFAULT '',
	enabled BOOLEAN NOT NULL DEFAULT TRUE,
	is_domain BOOLEAN NOT NULL DEFAULT FALSE,
	extra TEXT NOT NULL DEFAULT '{}',
	UNIQUE (domain_id, name)
);
CREATE INDEX projects_parent ON projects (parent_id);
CREATE TABLE project_tags (
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	tag TEXT NOT NULL,
	PRIMARY KEY (project_id, tag)
);
CREATE TABLE users (
	id TEXT PRIMARY KEY,
	domain_id TEXT NOT NULL,
	name TEXT NOT NULL,
	enabled BOOLEAN NOT NULL DEFAULT TRUE,
	default_project_id TEXT,
	password_hash TEXT,
	password_created_at TEXT,
	password_expires_at TEXT,
	created_at TEXT NOT NULL,
	last_active_at TEXT,
	failed_auth_count INTEGER NOT NULL DEFAULT 0,
	failed_auth_at TEXT,
	options TEXT NOT NULL DEFAULT '{}',
	extra TEXT NOT NULL DEFAULT '{}',
	UNIQUE (domain_id, name)
);
CREATE TABLE password_history (
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	hash TEXT NOT NULL,
	created_at TEXT NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id);
CREATE TABLE groups (
	id TEXT PRIMARY KEY,
	domain_id TEXT NOT NULL,
	name TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	extra TEXT NOT NULL DEFAULT '{}',
	UNIQUE (domain_id, name)
);
CREATE TABLE group_members (
	group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);
CREATE TABLE roles (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	domain_id TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	options TEXT NOT NULL DEFAULT '{}',
	extra TEXT NOT NULL DEFAULT '{}',
	UNIQUE (name, domain_id)
);
CREATE TABLE implied_roles (
	prior_role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
	implied_role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
	PRIMARY KEY (prior_role_id, implied_role_id)
);
CREATE TABLE assignments (
	type TEXT NOT NULL,
	actor_id TEXT NOT NULL,
	target_id TEXT NOT NULL,
	role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
	inherited BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (type, actor_id, target_id, role_id, inherited)
);
CREATE INDEX assignments_actor ON assignments (actor_id);
CREATE INDEX assignments_target ON assignments (target_id);
CREATE TABLE regions (
	id TEXT PRIMARY KEY,
	description TEXT NOT NULL DEFAULT '',
	parent_region_id TEXT,
	extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE services (
	id TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	enabled BOOLEAN NOT NULL DEFAULT TRUE,
	extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE endpoints (
	id TEXT PRIMARY KEY,
	service_id TEXT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
	interface TEXT NOT NULL,
	url TEXT NOT NULL,
	region_id TEXT REFERENCES regions (id),
	enabled BOOLEAN NOT NULL DEFAULT TRUE,
	extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE credentials (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	project_id TEXT,
	type TEXT NOT NULL,
	blob TEXT NOT NULL,
	extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX credentials_user ON credentials (user_id);
CREATE TABLE application_credentials (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	user_id TEXT NOT NULL,
	project_id TEXT,
	system TEXT,
	secret_hash TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	expires_at TEXT,
	unrestricted BOOLEAN NOT NULL DEFAULT FALSE,
	created_at TEXT NOT NULL,
	UNIQUE (user_id, name)
);
CREATE TABLE application_credential_roles (
	application_credential_id TEXT NOT NULL REFERENCES application_credentials (id) ON DELETE CASCADE,
	role_id TEXT NOT NULL,
	PRIMARY KEY (application_credential_id, role_id)
);
CREATE TABLE access_rules (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	service TEXT NOT NULL,
	path TEXT NOT NULL,
	method TEXT NOT NULL,
	UNIQUE (user_id, service, path, method)
);
CREATE TABLE application_credential_access_rules (
	application_credential_id TEXT NOT NULL REFERENCES application_credentials (id) ON DELETE CASCADE,
	access_rule_id TEXT NOT NULL REFERENCES access_rules (id) ON DELETE CASCADE,
	PRIMARY KEY (application_credential_id, access_rule_id)
);
CREATE TABLE revocation_events (
	id TEXT PRIMARY KEY,
	user_id TEXT,
	project_id TEXT,
	domain_id TEXT,
	audit_id TEXT,
	audit_chain_id TEXT,
	trust_id TEXT,
	issued_before TEXT NOT NULL,
	revoked_at TEXT NOT NULL
);
CREATE INDEX revocation_events_revoked_at ON revocation_events (revoked_at)`},
}
