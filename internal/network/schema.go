package network

import "github.com/nimbus-cloud/nimbus/internal/store"

// schema returns the networking service's migrations, component
// "network". Unique constraints are the last line of defence against
// double allocation: one address per subnet (ip_allocations), one MAC per
// network, one segmentation id per segment type and physical network,
// one default security group per project. Lists (DNS servers, pools,
// routes, address pairs) are JSON beside the row: they are always read
// and written with it.
func schema() []store.Migration {
	return []store.Migration{{
		Version: 1,
		Name:    "networks, subnets, ports, security groups, routers, floating IPs, quotas",
		SQL: `CREATE TABLE networks (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	name TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	admin_state_up INTEGER NOT NULL DEFAULT 1,
	shared INTEGER NOT NULL DEFAULT 0,
	external INTEGER NOT NULL DEFAULT 0,
	is_default INTEGER NOT NULL DEFAULT 0,
	status TEXT NOT NULL,
	network_type TEXT NOT NULL,
	physical_network TEXT NOT NULL DEFAULT '',
	segmentation_id INTEGER,
	mtu INTEGER NOT NULL,
	port_security_enabled INTEGER NOT NULL DEFAULT 1,
	az_hints TEXT NOT NULL DEFAULT '[]',
	revision_number INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX networks_project ON networks (project_id);
CREATE UNIQUE INDEX networks_segment ON networks (network_type, physical_network, segmentation_id);
CREATE TABLE subnetpools (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	name TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	ip_version INTEGER NOT NULL,
	prefixes TEXT NOT NULL,
	default_prefixlen INTEGER NOT NULL,
	min_prefixlen INTEGER NOT NULL,
	max_prefixlen INTEGER NOT NULL,
	shared INTEGER NOT NULL DEFAULT 0,
	is_default INTEGER NOT NULL DEFAULT 0,
	default_quota INTEGER,
	address_scope_id TEXT,
	revision_number INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE TABLE subnets (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	network_id TEXT NOT NULL REFERENCES networks (id),
	name TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	ip_version INTEGER NOT NULL,
	cidr TEXT NOT NULL,
	gateway_ip TEXT,
	enable_dhcp INTEGER NOT NULL DEFAULT 1,
	ipv6_ra_mode TEXT,
	ipv6_address_mode TEXT,
	subnetpool_id TEXT REFERENCES subnetpools (id),
	allocation_pools TEXT NOT NULL DEFAULT '[]',
	dns_nameservers TEXT NOT NULL DEFAULT '[]',
	host_routes TEXT NOT NULL DEFAULT '[]',
	service_types TEXT NOT NULL DEFAULT '[]',
	revision_number INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX subnets_network ON subnets (network_id);
CREATE INDEX subnets_pool ON subnets (subnetpool_id);
CREATE TABLE ports (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	network_id TEXT NOT NULL REFERENCES networks (id),
	name TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	admin_state_up INTEGER NOT NULL DEFAULT 1,
	mac_address TEXT NOT NULL,
	device_id TEXT NOT NULL DEFAULT '',
	device_owner TEXT NOT NULL DEFAULT '',
	status TEXT NOT NULL,
	port_security_enabled INTEGER NOT NULL DEFAULT 1,
	binding_host_id TEXT NOT NULL DEFAULT '',
	binding_vnic_type TEXT NOT NULL DEFAULT 'normal',
	binding_profile TEXT NOT NULL DEFAULT '{}',
	binding_vif_type TEXT NOT NULL DEFAULT 'unbound',
	binding_vif_details TEXT NOT NULL DEFAULT '{}',
	allowed_address_pairs TEXT NOT NULL DEFAULT '[]',
	extra_dhcp_opts TEXT NOT NULL DEFAULT '[]',
	revision_number INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	UNIQUE (network_id, mac_address)
);
CREATE INDEX ports_project ON ports (project_id);
CREATE INDEX ports_device ON ports (device_id);
CREATE TABLE ip_allocations (
	subnet_id TEXT NOT NULL REFERENCES subnets (id),
	ip_address TEXT NOT NULL,
	port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
	network_id TEXT NOT NULL,
	PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX ip_allocations_port ON ip_allocations (port_id);
CREATE TABLE security_groups (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	name TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	stateful INTEGER NOT NULL DEFAULT 1,
	revision_number INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX security_groups_project ON security_groups (project_id);
CREATE TABLE default_security_groups (
	project_id TEXT PRIMARY KEY,
	security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE
);
CREATE TABLE security_group_rules (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
	direction TEXT NOT NULL,
	ethertype TEXT NOT NULL,
	protocol TEXT,
	port_range_min INTEGER,
	port_range_max INTEGER,
	remote_ip_prefix TEXT,
	remote_group_id TEXT REFERENCES security_groups (id) ON DELETE CASCADE,
	description TEXT NOT NULL DEFAULT '',
	revision_number INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX security_group_rules_group ON security_group_rules (security_group_id);
CREATE TABLE port_security_groups (
	port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
	security_group_id TEXT NOT NULL REFERENCES security_groups (id),
	PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX port_security_groups_group ON port_security_groups (security_group_id);
CREATE TABLE routers (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	name TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	admin_state_up INTEGER NOT NULL DEFAULT 1,
	status TEXT NOT NULL,
	gw_port_id TEXT REFERENCES ports (id),
	enable_snat INTEGER NOT NULL DEFAULT 1,
	routes TEXT NOT NULL DEFAULT '[]',
	az_hints TEXT NOT NULL DEFAULT '[]',
	revision_number INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX routers_project ON routers (project_id);
CREATE TABLE floatingips (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	floating_network_id TEXT NOT NULL REFERENCES networks (id),
	floating_port_id TEXT NOT NULL REFERENCES ports (id),
	floating_ip_address TEXT NOT NULL,
	port_id TEXT REFERENCES ports (id),
	fixed_ip_address TEXT,
	router_id TEXT REFERENCES routers (id),
	status TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	revision_number INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	UNIQUE (port_id, fixed_ip_address)
);
CREATE INDEX floatingips_project ON floatingips (project_id);
CREATE TABLE quotas (
	project_id TEXT NOT NULL,
	resource TEXT NOT NULL,
	hard_limit INTEGER NOT NULL,
	PRIMARY KEY (project_id, resource)
);
CREATE TABLE tags (
	resource_id TEXT NOT NULL,
	tag TEXT NOT NULL,
	PRIMARY KEY (resource_id, tag)
)`,
	}, {
		Version: 2,
		Name:    "agents and their networks and routers",
		SQL: `CREATE TABLE agents (
	id TEXT PRIMARY KEY,
	agent_type TEXT NOT NULL,
	host TEXT NOT NULL,
	binary_name TEXT NOT NULL,
	topic TEXT NOT NULL,
	availability_zone TEXT,
	admin_state_up INTEGER NOT NULL DEFAULT 1,
	description TEXT,
	configurations TEXT NOT NULL DEFAULT '{}',
	created_at TEXT NOT NULL,
	started_at TEXT NOT NULL,
	heartbeat_at TEXT NOT NULL,
	UNIQUE (agent_type, host)
);
CREATE TABLE network_dhcp_agents (
	network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
	agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
	PRIMARY KEY (network_id, agent_id)
);
CREATE TABLE router_l3_agents (
	router_id TEXT NOT NULL REFERENCES routers (id) ON DELETE CASCADE,
	agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
	PRIMARY KEY (router_id, agent_id)
)`,
	}, {
		Version: 3,
		Name:    "metering labels and rules",
		SQL: `CREATE TABLE metering_labels (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	name TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	shared INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE metering_label_rules (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	metering_label_id TEXT NOT NULL REFERENCES metering_labels (id) ON DELETE CASCADE,
	direction TEXT NOT NULL,
	excluded INTEGER NOT NULL DEFAULT 0,
	remote_ip_prefix TEXT NOT NULL
)`,
	}, {
		Version: 4,
		Name:    "distributed routers (dvr)",
		SQL:     `ALTER TABLE routers ADD COLUMN distributed INTEGER NOT NULL DEFAULT 0`,
	}}
}
