package volume_test

// The structs below are Tempest's response schemas
// (tempest/lib/api_schema/response/volume/): decoded strictly, a key the
// schema does not allow fails the test, and pointer fields mark the keys
// that may be null.

type link struct {
	Href string `json:"href"`
	Rel  string `json:"rel"`
	Type string `json:"type,omitempty"`
}

type attachmentSchema struct {
	ServerID     *string `json:"server_id"`
	AttachmentID string  `json:"attachment_id"`
	AttachedAt   *string `json:"attached_at"`
	HostName     *string `json:"host_name"`
	VolumeID     string  `json:"volume_id"`
	Device       *string `json:"device"`
	ID           string  `json:"id"`
}

// volumeSchema is create_volume's volume (also update_volume's).
type volumeSchema struct {
	MigrationStatus    *string            `json:"migration_status"`
	Attachments        []attachmentSchema `json:"attachments"`
	Links              []link             `json:"links"`
	AvailabilityZone   *string            `json:"availability_zone"`
	Encrypted          bool               `json:"encrypted"`
	UpdatedAt          *string            `json:"updated_at"`
	ReplicationStatus  *string            `json:"replication_status"`
	SnapshotID         *string            `json:"snapshot_id"`
	ID                 string             `json:"id"`
	Size               int                `json:"size"`
	UserID             string             `json:"user_id"`
	Metadata           map[string]string  `json:"metadata"`
	Status             string             `json:"status"`
	Description        *string            `json:"description"`
	Multiattach        bool               `json:"multiattach"`
	SourceVolID        *string            `json:"source_volid"`
	ConsistencyGroupID *string            `json:"consistencygroup_id"`
	Name               *string            `json:"name"`
	Bootable           string             `json:"bootable"`
	CreatedAt          string             `json:"created_at"`
	VolumeType         *string            `json:"volume_type"`
	GroupID            *string            `json:"group_id"`
	ProviderID         *string            `json:"provider_id,omitempty"`
	ServiceUUID        *string            `json:"service_uuid,omitempty"`
	SharedTargets      *bool              `json:"shared_targets,omitempty"`
}

// volumeDetailSchema is common_show_volume: create's keys plus the
// extended attributes.
type volumeDetailSchema struct {
	volumeSchema
	Host          *string           `json:"os-vol-host-attr:host"`
	TenantID      string            `json:"os-vol-tenant-attr:tenant_id"`
	MigStat       *string           `json:"os-vol-mig-status-attr:migstat"`
	NameID        *string           `json:"os-vol-mig-status-attr:name_id"`
	ImageMetadata map[string]string `json:"volume_image_metadata"`
}

type volumeResp struct {
	Volume volumeSchema `json:"volume"`
}

type volumeDetailResp struct {
	Volume volumeDetailSchema `json:"volume"`
}

type volumeListResp struct {
	Volumes []struct {
		Links []link  `json:"links"`
		ID    string  `json:"id"`
		Name  *string `json:"name"`
	} `json:"volumes"`
	VolumesLinks []link `json:"volumes_links"`
}

type volumeDetailListResp struct {
	Volumes      []volumeDetailSchema `json:"volumes"`
	VolumesLinks []link               `json:"volumes_links"`
}

type snapshotSchema struct {
	Status      string            `json:"status"`
	Description *string           `json:"description"`
	CreatedAt   string            `json:"created_at"`
	Name        *string           `json:"name"`
	VolumeID    string            `json:"volume_id"`
	Metadata    map[string]string `json:"metadata"`
	ID          string            `json:"id"`
	Size        int               `json:"size"`
	UpdatedAt   *string           `json:"updated_at"`
}

type snapshotDetailSchema struct {
	snapshotSchema
	Progress  string `json:"os-extended-snapshot-attributes:progress"`
	ProjectID string `json:"os-extended-snapshot-attributes:project_id"`
}

type snapshotResp struct {
	Snapshot snapshotSchema `json:"snapshot"`
}

type snapshotDetailResp struct {
	Snapshot snapshotDetailSchema `json:"snapshot"`
}

type snapshotListResp struct {
	Snapshots      []snapshotSchema `json:"snapshots"`
	SnapshotsLinks []link           `json:"snapshots_links"`
}

type snapshotDetailListResp struct {
	Snapshots      []snapshotDetailSchema `json:"snapshots"`
	SnapshotsLinks []link                 `json:"snapshots_links"`
}

type versionSchema struct {
	Status     string `json:"status"`
	Updated    string `json:"updated"`
	ID         string `json:"id"`
	Links      []link `json:"links"`
	MinVersion string `json:"min_version"`
	Version    string `json:"version"`
	MediaTypes []struct {
		Base string `json:"base"`
		Type string `json:"type"`
	} `json:"media-types"`
}

type versionsResp struct {
	Versions []versionSchema `json:"versions"`
}

type extensionsResp struct {
	Extensions []struct {
		Updated     string `json:"updated"`
		Description string `json:"description"`
		Links       []any  `json:"links"`
		Namespace   string `json:"namespace,omitempty"`
		Alias       string `json:"alias"`
		Name        string `json:"name"`
	} `json:"extensions"`
}

type volumeTypeSchema struct {
	ExtraSpecs     map[string]string `json:"extra_specs"`
	Name           string            `json:"name"`
	IsPublic       bool              `json:"is_public"`
	Description    *string           `json:"description"`
	ID             string            `json:"id"`
	AccessIsPublic bool              `json:"os-volume-type-access:is_public"`
	QosSpecsID     *string           `json:"qos_specs_id"`
}

type volumeTypeResp struct {
	VolumeType volumeTypeSchema `json:"volume_type"`
}

// volumeTypeCreatedResp is create_volume_type: no qos_specs_id.
type volumeTypeCreatedResp struct {
	VolumeType struct {
		ExtraSpecs     map[string]string `json:"extra_specs"`
		Name           string            `json:"name"`
		IsPublic       bool              `json:"is_public"`
		Description    *string           `json:"description"`
		ID             string            `json:"id"`
		AccessIsPublic bool              `json:"os-volume-type-access:is_public"`
	} `json:"volume_type"`
}

// volumeTypeUpdatedResp is update_volume_types: not even the access alias.
type volumeTypeUpdatedResp struct {
	VolumeType struct {
		ExtraSpecs  map[string]string `json:"extra_specs"`
		Name        string            `json:"name"`
		IsPublic    bool              `json:"is_public"`
		Description *string           `json:"description"`
		ID          string            `json:"id"`
	} `json:"volume_type"`
}

// hostsResp is list_hosts.
type hostsResp struct {
	Hosts []struct {
		ServiceStatus string `json:"service-status"`
		Service       string `json:"service"`
		Zone          string `json:"zone"`
		ServiceState  string `json:"service-state"`
		HostName      string `json:"host_name"`
		LastUpdate    string `json:"last-update"`
	} `json:"hosts"`
}

type limitsResp struct {
	Limits struct {
		Rate     []any `json:"rate"`
		Absolute struct {
			TotalSnapshotsUsed       int `json:"totalSnapshotsUsed"`
			MaxTotalBackups          int `json:"maxTotalBackups"`
			MaxTotalVolumeGigabytes  int `json:"maxTotalVolumeGigabytes"`
			MaxTotalSnapshots        int `json:"maxTotalSnapshots"`
			MaxTotalBackupGigabytes  int `json:"maxTotalBackupGigabytes"`
			TotalBackupGigabytesUsed int `json:"totalBackupGigabytesUsed"`
			MaxTotalVolumes          int `json:"maxTotalVolumes"`
			TotalVolumesUsed         int `json:"totalVolumesUsed"`
			TotalBackupsUsed         int `json:"totalBackupsUsed"`
			TotalGigabytesUsed       int `json:"totalGigabytesUsed"`
		} `json:"absolute"`
	} `json:"limits"`
}

type servicesResp struct {
	Services []struct {
		Binary            string  `json:"binary"`
		DisabledReason    *string `json:"disabled_reason"`
		Host              string  `json:"host"`
		State             string  `json:"state"`
		Status            string  `json:"status"`
		Frozen            bool    `json:"frozen"`
		UpdatedAt         string  `json:"updated_at"`
		Zone              string  `json:"zone"`
		ReplicationStatus string  `json:"replication_status"`
		ActiveBackendID   *string `json:"active_backend_id"`
	} `json:"services"`
}

type connectionInfoResp struct {
	ConnectionInfo struct {
		DriverVolumeType string `json:"driver_volume_type"`
		Data             struct {
			VolumeID       string `json:"volume_id"`
			Host           string `json:"host"`
			Port           int    `json:"port"`
			Export         string `json:"export"`
			TLSPSKIdentity string `json:"tls_psk_identity"`
			TLSPSKKey      string `json:"tls_psk_key"`
			ReadOnly       bool   `json:"read_only"`
			Discard        bool   `json:"discard"`
			AccessMode     string `json:"access_mode"`
		} `json:"data"`
	} `json:"connection_info"`
}
