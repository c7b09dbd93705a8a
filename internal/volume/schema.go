package volume

import "github.com/nimbus-cloud/nimbus/internal/store"

// schema is the volume service's migrations. Booleans are INTEGER 0/1,
// times fixed-width text (store.FormatTime), and the small maps a volume
// carries whole (metadata, image metadata, a type's extra specs) are JSON
// text, so the SQL is the same on SQLite and PostgreSQL.
func schema() []store.Migration {
	return []store.Migration{{
		Version: 1,
		Name:    "volume core",
		SQL: `
CREATE TABLE volume_types (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	description TEXT,
	is_public INTEGER NOT NULL DEFAULT 1,
	extra_specs TEXT NOT NULL DEFAULT '{}',
	created_at TEXT NOT NULL
);
CREATE TABLE volume_type_projects (
	type_id TEXT NOT NULL REFERENCES volume_types(id) ON DELETE CASCADE,
	project_id TEXT NOT NULL,
	PRIMARY KEY (type_id, project_id)
);
CREATE TABLE volume_volumes (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	name TEXT,
	description TEXT,
	status TEXT NOT NULL,
	size INTEGER NOT NULL,
	availability_zone TEXT NOT NULL,
	host TEXT NOT NULL DEFAULT '',
	backend TEXT NOT NULL DEFAULT '',
	pool TEXT NOT NULL DEFAULT '',
	type_id TEXT NOT NULL,
	bootable INTEGER NOT NULL DEFAULT 0,
	multiattach INTEGER NOT NULL DEFAULT 0,
	admin_metadata TEXT NOT NULL DEFAULT '{}',
	snapshot_id TEXT,
	source_volid TEXT,
	image_id TEXT,
	image_metadata TEXT,
	metadata TEXT NOT NULL DEFAULT '{}',
	migration_status TEXT,
	fault TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX volume_volumes_project ON volume_volumes (project_id, created_at);
CREATE INDEX volume_volumes_host ON volume_volumes (host);
CREATE TABLE volume_attachments (
	id TEXT PRIMARY KEY,
	volume_id TEXT NOT NULL REFERENCES volume_volumes(id) ON DELETE CASCADE,
	instance_uuid TEXT,
	host_name TEXT,
	mountpoint TEXT,
	attach_mode TEXT NOT NULL DEFAULT 'rw',
	attach_status TEXT NOT NULL,
	attached_at TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL
);
CREATE INDEX volume_attachments_volume ON volume_attachments (volume_id);
CREATE TABLE volume_snapshots (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	volume_id TEXT NOT NULL,
	name TEXT,
	description TEXT,
	status TEXT NOT NULL,
	size INTEGER NOT NULL,
	host TEXT NOT NULL DEFAULT '',
	metadata TEXT NOT NULL DEFAULT '{}',
	progress TEXT NOT NULL DEFAULT '0%',
	fault TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX volume_snapshots_project ON volume_snapshots (project_id, created_at);
CREATE INDEX volume_snapshots_volume ON volume_snapshots (volume_id);
CREATE TABLE volume_quotas (
	project_id TEXT NOT NULL,
	resource TEXT NOT NULL,
	hard_limit INTEGER NOT NULL,
	PRIMARY KEY (project_id, resource)
);
CREATE TABLE volume_services (
	host TEXT PRIMARY KEY,
	backend TEXT NOT NULL,
	pool TEXT NOT NULL,
	zone TEXT NOT NULL,
	total_gb REAL NOT NULL,
	free_gb REAL NOT NULL,
	provisioned_gb REAL NOT NULL,
	max_over_subscription REAL NOT NULL,
	disabled INTEGER NOT NULL DEFAULT 0,
	disabled_reason TEXT,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
)`,
	}, {
		Version: 2,
		Name:    "volume backups",
		// account, container and prefix say where the objects are;
		// two rows may share them after an import_record, and the
		// objects go only with the last. volume_state is what a restore
		// gives the volume back (metadata, bootable, image metadata).
		SQL: `
CREATE TABLE volume_backups (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	volume_id TEXT NOT NULL,
	snapshot_id TEXT,
	parent_id TEXT,
	name TEXT,
	description TEXT,
	status TEXT NOT NULL,
	fail_reason TEXT,
	size INTEGER NOT NULL,
	object_count INTEGER NOT NULL DEFAULT 0,
	availability_zone TEXT NOT NULL,
	host TEXT NOT NULL DEFAULT '',
	account TEXT NOT NULL,
	container TEXT NOT NULL,
	prefix TEXT NOT NULL,
	volume_state TEXT NOT NULL DEFAULT '{}',
	restore_volume_id TEXT,
	data_timestamp TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX volume_backups_project ON volume_backups (project_id, created_at);
CREATE INDEX volume_backups_volume ON volume_backups (volume_id);
CREATE INDEX volume_backups_parent ON volume_backups (parent_id)`,
	}, {
		Version: 3,
		Name:    "volume attachments api",
		// The attachments API (3.27) keeps the connector an attachment
		// was connected with, to unexport the volume from that host when
		// the attachment goes, and the connection_info it answered, which
		// GET /attachments/{id} shows again. Both are JSON text, NULL
		// while the attachment is only reserved.
		SQL: `
ALTER TABLE volume_attachments ADD COLUMN connector TEXT;
ALTER TABLE volume_attachments ADD COLUMN connection_info TEXT`,
	}, {
		Version: 4,
		Name:    "volume user messages",
		// Messages (3.3) outlive their volume, as Cinder's do, so
		// resource_uuid is no foreign key.
		SQL: `
CREATE TABLE volume_messages (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	request_id TEXT,
	resource_type TEXT NOT NULL,
	resource_uuid TEXT NOT NULL,
	event_id TEXT NOT NULL,
	message_level TEXT NOT NULL,
	user_message TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL
);
CREATE INDEX volume_messages_project ON volume_messages (project_id, created_at)`,
	}, {
		Version: 5,
		Name:    "volume group types",
		SQL: `
CREATE TABLE volume_group_types (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	description TEXT,
	is_public INTEGER NOT NULL DEFAULT 1,
	group_specs TEXT NOT NULL DEFAULT '{}',
	created_at TEXT NOT NULL
)`,
	}}
}
