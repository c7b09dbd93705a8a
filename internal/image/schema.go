package image

import "github.com/nimbus-cloud/nimbus/internal/store"

// schema returns the image service's migrations, component "image".
// Extra properties and tags are kept as JSON beside the core columns:
// Glance filters on them rarely and always together with visibility, so
// the list path filters them in Go after the indexed visibility query.
func schema() []store.Migration {
	m := append(coreMigrations(), metadefMigrations...)
	return append(m, importMigration)
}

func coreMigrations() []store.Migration {
	return []store.Migration{{
		Version: 1,
		Name:    "images and members",
		SQL: `CREATE TABLE images (
	id TEXT PRIMARY KEY,
	name TEXT,
	status TEXT NOT NULL,
	visibility TEXT NOT NULL,
	owner TEXT NOT NULL,
	protected INTEGER NOT NULL DEFAULT 0,
	os_hidden INTEGER NOT NULL DEFAULT 0,
	disk_format TEXT,
	container_format TEXT,
	min_disk INTEGER NOT NULL DEFAULT 0,
	min_ram INTEGER NOT NULL DEFAULT 0,
	size BIGINT,
	virtual_size BIGINT,
	checksum TEXT,
	os_hash_algo TEXT,
	os_hash_value TEXT,
	properties TEXT NOT NULL DEFAULT '{}',
	tags TEXT NOT NULL DEFAULT '[]',
	location_store TEXT NOT NULL DEFAULT '',
	location_url TEXT NOT NULL DEFAULT '',
	upload_heartbeat TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX images_owner ON images (owner);
CREATE INDEX images_visibility ON images (visibility);
CREATE TABLE image_members (
	image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
	member_id TEXT NOT NULL,
	status TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (image_id, member_id)
);
CREATE INDEX image_members_member ON image_members (member_id)`,
	}}
}

// importMigration adds locations (an image's data may live in several
// stores: multi-store imports, copy-image, the locations API; one row per
// copy, in the order clients see them), the import progress columns and
// the tasks imports run as.
var importMigration = store.Migration{
	Version: 3,
	Name:    "image locations and import tasks",
	SQL: `CREATE TABLE image_locations (
	image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
	position INTEGER NOT NULL,
	store TEXT NOT NULL,
	url TEXT NOT NULL,
	metadata TEXT NOT NULL DEFAULT '{}',
	PRIMARY KEY (image_id, url)
);
INSERT INTO image_locations (image_id, position, store, url)
	SELECT id, 0, location_store, location_url FROM images WHERE location_url <> '';
ALTER TABLE images DROP COLUMN location_store;
ALTER TABLE images DROP COLUMN location_url;
ALTER TABLE images ADD COLUMN importing_stores TEXT;
ALTER TABLE images ADD COLUMN failed_import TEXT;
CREATE TABLE image_tasks (
	id TEXT PRIMARY KEY,
	image_id TEXT NOT NULL,
	type TEXT NOT NULL,
	status TEXT NOT NULL,
	owner TEXT NOT NULL,
	user_id TEXT NOT NULL,
	request_id TEXT NOT NULL,
	input TEXT NOT NULL,
	result TEXT NOT NULL DEFAULT 'null',
	message TEXT NOT NULL DEFAULT '',
	heartbeat TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	expires_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX image_tasks_image ON image_tasks (image_id)`,
}
