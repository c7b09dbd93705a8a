package compute

import "github.com/nimbus-cloud/nimbus/internal/store"

// schema is the compute service's migrations. Booleans are INTEGER 0/1 and
// times fixed-width text (store.FormatTime) so the SQL is the same on both
// engines; maps and lists a server carries whole (flavor snapshot,
// addresses, requested networks) are JSON text.
func schema() []store.Migration {
	return []store.Migration{{
		Version: 1,
		Name:    "compute core",
		SQL: `
CREATE TABLE compute_flavors (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	memory_mb INTEGER NOT NULL,
	vcpus INTEGER NOT NULL,
	root_gb INTEGER NOT NULL,
	ephemeral_gb INTEGER NOT NULL,
	swap INTEGER NOT NULL,
	rxtx_factor REAL NOT NULL,
	is_public INTEGER NOT NULL,
	disabled INTEGER NOT NULL DEFAULT 0,
	description TEXT,
	extra_specs TEXT NOT NULL DEFAULT '{}',
	created_at TEXT NOT NULL,
	seq INTEGER NOT NULL
);
CREATE TABLE compute_flavor_access (
	flavor_id TEXT NOT NULL REFERENCES compute_flavors(id) ON DELETE CASCADE,
	project_id TEXT NOT NULL,
	PRIMARY KEY (flavor_id, project_id)
);
CREATE TABLE compute_keypairs (
	id INTEGER NOT NULL,
	user_id TEXT NOT NULL,
	name TEXT NOT NULL,
	type TEXT NOT NULL,
	public_key TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (user_id, name)
);
CREATE UNIQUE INDEX compute_keypairs_id ON compute_keypairs (id);
CREATE TABLE compute_hosts (
	id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL UNIQUE,
	host TEXT NOT NULL UNIQUE,
	zone TEXT NOT NULL,
	reported_zone TEXT NOT NULL DEFAULT '',
	disabled INTEGER NOT NULL DEFAULT 0,
	disabled_reason TEXT,
	forced_down INTEGER NOT NULL DEFAULT 0,
	vcpus INTEGER NOT NULL,
	memory_mb INTEGER NOT NULL,
	local_gb INTEGER NOT NULL,
	cpu_ratio REAL NOT NULL,
	ram_ratio REAL NOT NULL,
	disk_ratio REAL NOT NULL,
	hypervisor_type TEXT NOT NULL,
	hypervisor_version INTEGER NOT NULL,
	hypervisor_hostname TEXT NOT NULL,
	host_ip TEXT NOT NULL,
	architecture TEXT NOT NULL,
	running_vms INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	last_seen TEXT NOT NULL
);
CREATE TABLE compute_instances (
	id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL,
	project_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	name TEXT NOT NULL,
	description TEXT,
	hostname TEXT NOT NULL,
	image_ref TEXT NOT NULL,
	image_props TEXT NOT NULL DEFAULT '{}',
	flavor_id TEXT NOT NULL,
	flavor TEXT NOT NULL,
	old_flavor TEXT,
	new_flavor TEXT,
	vcpus INTEGER NOT NULL,
	memory_mb INTEGER NOT NULL,
	root_gb INTEGER NOT NULL,
	vm_state TEXT NOT NULL,
	task_state TEXT,
	power_state INTEGER NOT NULL DEFAULT 0,
	host TEXT,
	node TEXT,
	old_host TEXT,
	availability_zone TEXT,
	requested_az TEXT,
	key_name TEXT,
	key_data TEXT,
	user_data TEXT,
	access_ipv4 TEXT NOT NULL DEFAULT '',
	access_ipv6 TEXT NOT NULL DEFAULT '',
	config_drive INTEGER NOT NULL DEFAULT 0,
	disk_config TEXT NOT NULL DEFAULT 'MANUAL',
	locked INTEGER NOT NULL DEFAULT 0,
	locked_by TEXT,
	locked_reason TEXT,
	reservation_id TEXT NOT NULL,
	launch_index INTEGER NOT NULL DEFAULT 0,
	security_groups TEXT NOT NULL DEFAULT '[]',
	networks TEXT NOT NULL DEFAULT '{}',
	addresses TEXT NOT NULL DEFAULT '{}',
	fault TEXT,
	server_group_id TEXT,
	hints TEXT NOT NULL DEFAULT '{}',
	tried_hosts TEXT NOT NULL DEFAULT '[]',
	attempts INTEGER NOT NULL DEFAULT 0,
	progress INTEGER NOT NULL DEFAULT 0,
	launched_at TEXT,
	terminated_at TEXT,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	deleted_at TEXT,
	deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX compute_instances_project ON compute_instances (project_id, deleted);
CREATE INDEX compute_instances_host ON compute_instances (host);
CREATE UNIQUE INDEX compute_instances_seq ON compute_instances (seq);
CREATE TABLE compute_instance_metadata (
	instance_id TEXT NOT NULL REFERENCES compute_instances(id) ON DELETE CASCADE,
	key TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (instance_id, key)
);
CREATE TABLE compute_instance_tags (
	instance_id TEXT NOT NULL REFERENCES compute_instances(id) ON DELETE CASCADE,
	tag TEXT NOT NULL,
	PRIMARY KEY (instance_id, tag)
);
CREATE TABLE compute_allocations (
	instance_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	host TEXT NOT NULL,
	vcpus INTEGER NOT NULL,
	memory_mb INTEGER NOT NULL,
	disk_gb INTEGER NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (instance_id, kind)
);
CREATE INDEX compute_allocations_host ON compute_allocations (host);
CREATE TABLE compute_instance_actions (
	id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL UNIQUE,
	instance_id TEXT NOT NULL,
	action TEXT NOT NULL,
	request_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	project_id TEXT NOT NULL,
	start_time TEXT NOT NULL,
	finish_time TEXT,
	message TEXT,
	updated_at TEXT NOT NULL
);
CREATE INDEX compute_instance_actions_instance ON compute_instance_actions (instance_id);
CREATE TABLE compute_instance_action_events (
	id TEXT PRIMARY KEY,
	action_id TEXT NOT NULL REFERENCES compute_instance_actions(id) ON DELETE CASCADE,
	event TEXT NOT NULL,
	start_time TEXT NOT NULL,
	finish_time TEXT,
	result TEXT,
	traceback TEXT,
	host TEXT
);
CREATE TABLE compute_pending (
	command_id TEXT PRIMARY KEY,
	instance_id TEXT NOT NULL,
	op TEXT NOT NULL,
	action_id TEXT,
	created_at TEXT NOT NULL
);
CREATE TABLE compute_server_groups (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	project_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	policy TEXT NOT NULL,
	rules TEXT NOT NULL DEFAULT '{}',
	created_at TEXT NOT NULL
);
CREATE TABLE compute_server_group_members (
	group_id TEXT NOT NULL REFERENCES compute_server_groups(id) ON DELETE CASCADE,
	instance_id TEXT NOT NULL,
	PRIMARY KEY (group_id, instance_id)
);
CREATE TABLE compute_quotas (
	project_id TEXT NOT NULL,
	resource TEXT NOT NULL,
	hard_limit INTEGER NOT NULL,
	PRIMARY KEY (project_id, resource)
);
CREATE TABLE compute_migrations (
	id INTEGER PRIMARY KEY,
	uuid TEXT NOT NULL UNIQUE,
	instance_id TEXT NOT NULL,
	project_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	source_host TEXT NOT NULL,
	dest_host TEXT NOT NULL,
	old_flavor_id INTEGER NOT NULL,
	new_flavor_id INTEGER NOT NULL,
	migration_type TEXT NOT NULL,
	status TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX compute_migrations_instance ON compute_migrations (instance_id);
CREATE TABLE compute_console_tokens (
	token_hash TEXT PRIMARY KEY,
	instance_id TEXT NOT NULL,
	console_type TEXT NOT NULL,
	host TEXT NOT NULL,
	port INTEGER NOT NULL,
	expires_at TEXT NOT NULL
);
CREATE TABLE compute_aggregates (
	id INTEGER PRIMARY KEY,
	uuid TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL UNIQUE,
	metadata TEXT NOT NULL DEFAULT '{}',
	created_at TEXT NOT NULL,
	updated_at TEXT
);
CREATE TABLE compute_aggregate_hosts (
	aggregate_id INTEGER NOT NULL REFERENCES compute_aggregates(id) ON DELETE CASCADE,
	host TEXT NOT NULL,
	PRIMARY KEY (aggregate_id, host)
)`,
	}, {
		Version: 2,
		Name:    "indexes for claims and server lists at scale",
		// The allocation index covers what a host's usage sums, so the
		// scheduler re-sums a host (and the hypervisor views sum all hosts)
		// from the index alone. The instance indexes are the server list's
		// order, created_at DESC, seq DESC: a page is read in that order
		// from the marker on and stops at the limit, for one project or
		// (all_tenants) for all; the first also serves usage counts by
		// project, so it replaces (project_id, deleted).
		SQL: `
CREATE INDEX compute_allocations_host_usage ON compute_allocations (host, vcpus, memory_mb, disk_gb, instance_id);
DROP INDEX compute_allocations_host;
CREATE INDEX compute_instances_project_list ON compute_instances (project_id, deleted, created_at, seq);
DROP INDEX compute_instances_project;
CREATE INDEX compute_instances_list ON compute_instances (created_at, seq)`,
	}, {
		Version: 3,
		Name:    "control-plane services",
		// The scheduler and conductor of each compute API process, for
		// os-services and os-hosts (controlservices.go).
		SQL: `
CREATE TABLE compute_control_services (
	id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL UNIQUE,
	host TEXT NOT NULL,
	binary_name TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	UNIQUE (host, binary_name)
)`,
	}, {
		Version: 4,
		Name:    "zone of a host's aggregates",
		// Written with the aggregate, read by the heartbeat's own update,
		// so a heartbeat cannot put back a zone an aggregate change just
		// took away (aggregates.go rezone).
		SQL: `ALTER TABLE compute_hosts ADD COLUMN aggregate_zone TEXT NOT NULL DEFAULT ''`,
	}, {
		Version: 5,
		Name:    "block device mappings",
		// A server's volumes (Nova's block_device_mapping rows of
		// destination volume). status is where the attachment stands on
		// the compute side; settle names the call to the volume service
		// that is still owed (volume_settle.go), so that work interrupted
		// by a restart is finished by the reconcile loop.
		SQL: `
CREATE TABLE compute_block_devices (
	id TEXT PRIMARY KEY,
	instance_id TEXT NOT NULL,
	volume_id TEXT NOT NULL,
	project_id TEXT NOT NULL,
	device TEXT NOT NULL,
	boot_index INTEGER NOT NULL,
	source_type TEXT NOT NULL,
	image_id TEXT NOT NULL DEFAULT '',
	volume_size INTEGER NOT NULL DEFAULT 0,
	delete_on_termination INTEGER NOT NULL,
	tag TEXT,
	disk_bus TEXT NOT NULL DEFAULT 'virtio',
	status TEXT NOT NULL,
	settle TEXT NOT NULL DEFAULT '',
	host TEXT NOT NULL DEFAULT '',
	connection_info TEXT,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	UNIQUE (instance_id, volume_id)
);
CREATE INDEX compute_block_devices_volume ON compute_block_devices (volume_id);
CREATE UNIQUE INDEX compute_block_devices_device ON compute_block_devices (instance_id, device);
CREATE INDEX compute_block_devices_settle ON compute_block_devices (settle)`,
	}, {
		Version: 6,
		Name:    "volume sync of hosts",
		// command_id is the attach or detach command a mapping waits on,
		// so the watchdog can close its instance action when the report
		// never comes; a host's guest_volumes is the last inventory its
		// agent sent (JSON of []GuestVolumes), taken at volumes_synced_at
		// ('' before the first), which that watchdog decides from
		// (volume_watchdog.go).
		SQL: `
ALTER TABLE compute_block_devices ADD COLUMN command_id TEXT NOT NULL DEFAULT '';
ALTER TABLE compute_hosts ADD COLUMN guest_volumes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE compute_hosts ADD COLUMN volumes_synced_at TEXT NOT NULL DEFAULT ''`,
	}}
}
