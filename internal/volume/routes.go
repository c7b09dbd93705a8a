package volume

import (
	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Routes returns the volume API's route table. Handlers that act on a
// project's resource enforce policy themselves once they know its owner;
// admin-only calls carry their policy here.
func (s *Service) Routes() *api.Router {
	rt := api.NewRouter(s.api)
	none := api.AuthNone
	type R = api.Route
	const v = "/v3/{project_id}"
	vl, vc, vr, vs, vu, vd := s.metaRoutes(s.volumeMeta())
	sl, sc, sr, ss, su, sd := s.metaRoutes(s.snapshotMeta())
	rt.Handle(
		R{Method: "GET", Pattern: "/{$}", Handler: s.versions, Auth: none},
		R{Method: "GET", Pattern: "/v3", Handler: s.versionV3, Auth: none},
		R{Method: "GET", Pattern: "/v3/{$}", Handler: s.versionV3, Auth: none},
		R{Method: "GET", Pattern: v + "/extensions", Handler: s.listExtensions, Policy: "volume_extension:extensions"},
		R{Method: "GET", Pattern: v + "/os-availability-zone", Handler: s.listZones, Policy: "volume_extension:availability_zones"},
		R{Method: "GET", Pattern: v + "/limits", Handler: s.showLimits, Policy: "volume_extension:limits"},

		R{Method: "GET", Pattern: v + "/types", Handler: s.listTypes, Policy: "volume_extension:types:read"},
		R{Method: "POST", Pattern: v + "/types", Handler: s.createType, Policy: "volume_extension:types_manage"},
		R{Method: "GET", Pattern: v + "/types/{type_id}", Handler: s.showType, Policy: "volume_extension:types:read"},
		R{Method: "PUT", Pattern: v + "/types/{type_id}", Handler: s.updateType, Policy: "volume_extension:types_manage"},
		R{Method: "DELETE", Pattern: v + "/types/{type_id}", Handler: s.deleteType, Policy: "volume_extension:types_manage"},
		R{Method: "POST", Pattern: v + "/types/{type_id}/action", Handler: s.typeAction, Policy: "volume_extension:volume_type_access"},
		R{Method: "GET", Pattern: v + "/types/{type_id}/os-volume-type-access", Handler: s.listTypeAccess, Policy: "volume_extension:volume_type_access"},
		R{Method: "GET", Pattern: v + "/types/{type_id}/extra_specs", Handler: s.listExtraSpecs, Policy: "volume_extension:types_extra_specs"},
		R{Method: "POST", Pattern: v + "/types/{type_id}/extra_specs", Handler: s.createExtraSpecs, Policy: "volume_extension:types_extra_specs"},
		R{Method: "GET", Pattern: v + "/types/{type_id}/extra_specs/{key}", Handler: s.showExtraSpec, Policy: "volume_extension:types_extra_specs"},
		R{Method: "PUT", Pattern: v + "/types/{type_id}/extra_specs/{key}", Handler: s.updateExtraSpec, Policy: "volume_extension:types_extra_specs"},
		R{Method: "DELETE", Pattern: v + "/types/{type_id}/extra_specs/{key}", Handler: s.deleteExtraSpec, Policy: "volume_extension:types_extra_specs"},

		R{Method: "GET", Pattern: v + "/volumes", Handler: s.listVolumes},
		R{Method: "GET", Pattern: v + "/volumes/detail", Handler: s.listVolumesDetail},
		R{Method: "GET", Pattern: v + "/volumes/summary", Handler: versioned(12, s.volumeSummary)},
		R{Method: "POST", Pattern: v + "/volumes", Handler: s.createVolume},
		R{Method: "GET", Pattern: v + "/volumes/{volume_id}", Handler: s.showVolume},
		R{Method: "PUT", Pattern: v + "/volumes/{volume_id}", Handler: s.updateVolume},
		R{Method: "DELETE", Pattern: v + "/volumes/{volume_id}", Handler: s.deleteVolume},
		R{Method: "POST", Pattern: v + "/volumes/{volume_id}/action", Handler: s.volumeAction},
		R{Method: "GET", Pattern: v + "/volumes/{volume_id}/metadata", Handler: vl},
		R{Method: "POST", Pattern: v + "/volumes/{volume_id}/metadata", Handler: vc},
		R{Method: "PUT", Pattern: v + "/volumes/{volume_id}/metadata", Handler: vr},
		R{Method: "GET", Pattern: v + "/volumes/{volume_id}/metadata/{key}", Handler: vs},
		R{Method: "PUT", Pattern: v + "/volumes/{volume_id}/metadata/{key}", Handler: vu},
		R{Method: "DELETE", Pattern: v + "/volumes/{volume_id}/metadata/{key}", Handler: vd},

		R{Method: "GET", Pattern: v + "/snapshots", Handler: s.listSnapshots},
		R{Method: "GET", Pattern: v + "/snapshots/detail", Handler: s.listSnapshotsDetail},
		R{Method: "POST", Pattern: v + "/snapshots", Handler: s.createSnapshot},
		R{Method: "GET", Pattern: v + "/snapshots/{snapshot_id}", Handler: s.showSnapshot},
		R{Method: "PUT", Pattern: v + "/snapshots/{snapshot_id}", Handler: s.updateSnapshot},
		R{Method: "DELETE", Pattern: v + "/snapshots/{snapshot_id}", Handler: s.deleteSnapshot},
		R{Method: "POST", Pattern: v + "/snapshots/{snapshot_id}/action", Handler: s.snapshotAction},
		R{Method: "GET", Pattern: v + "/snapshots/{snapshot_id}/metadata", Handler: sl},
		R{Method: "POST", Pattern: v + "/snapshots/{snapshot_id}/metadata", Handler: sc},
		R{Method: "PUT", Pattern: v + "/snapshots/{snapshot_id}/metadata", Handler: sr},
		R{Method: "GET", Pattern: v + "/snapshots/{snapshot_id}/metadata/{key}", Handler: ss},
		R{Method: "PUT", Pattern: v + "/snapshots/{snapshot_id}/metadata/{key}", Handler: su},
		R{Method: "DELETE", Pattern: v + "/snapshots/{snapshot_id}/metadata/{key}", Handler: sd},

		R{Method: "GET", Pattern: v + "/backups", Handler: s.listBackups},
		R{Method: "GET", Pattern: v + "/backups/detail", Handler: s.listBackupsDetail},
		R{Method: "POST", Pattern: v + "/backups", Handler: s.createBackup},
		R{Method: "GET", Pattern: v + "/backups/{backup_id}", Handler: s.showBackup},
		R{Method: "PUT", Pattern: v + "/backups/{backup_id}", Handler: versioned(9, s.updateBackup)},
		R{Method: "DELETE", Pattern: v + "/backups/{backup_id}", Handler: s.deleteBackup},
		R{Method: "POST", Pattern: v + "/backups/{backup_id}/restore", Handler: s.restoreBackup},
		R{Method: "POST", Pattern: v + "/backups/{backup_id}/action", Handler: s.backupAction},
		R{Method: "GET", Pattern: v + "/backups/{backup_id}/export_record", Handler: s.exportBackup},
		R{Method: "POST", Pattern: v + "/backups/import_record", Handler: s.importBackup},

		R{Method: "GET", Pattern: v + "/messages", Handler: versioned(3, s.listMessages)},
		R{Method: "GET", Pattern: v + "/messages/{message_id}", Handler: versioned(3, s.showMessage)},
		R{Method: "DELETE", Pattern: v + "/messages/{message_id}", Handler: versioned(3, s.deleteMessage)},
		R{Method: "GET", Pattern: v + "/clusters", Handler: versioned(7, s.listClusters), Policy: "clusters:get_all"},
		R{Method: "GET", Pattern: v + "/clusters/detail", Handler: versioned(7, s.listClusters), Policy: "clusters:get_all"},
		R{Method: "GET", Pattern: v + "/clusters/{cluster_name}", Handler: versioned(7, s.showCluster), Policy: "clusters:get"},
		R{Method: "PUT", Pattern: v + "/clusters/{cluster_name}", Handler: versioned(7, s.updateCluster), Policy: "clusters:update"},
		R{Method: "GET", Pattern: v + "/manageable_volumes", Handler: versioned(8, s.listManageable("manageable-volumes")), Policy: "volume_extension:list_manageable"},
		R{Method: "GET", Pattern: v + "/manageable_volumes/detail", Handler: versioned(8, s.listManageable("manageable-volumes")), Policy: "volume_extension:list_manageable"},
		R{Method: "GET", Pattern: v + "/manageable_snapshots", Handler: versioned(8, s.listManageable("manageable-snapshots")), Policy: "snapshot_extension:list_manageable"},
		R{Method: "GET", Pattern: v + "/manageable_snapshots/detail", Handler: versioned(8, s.listManageable("manageable-snapshots")), Policy: "snapshot_extension:list_manageable"},

		R{Method: "GET", Pattern: v + "/group_types", Handler: versioned(11, s.listGroupTypes), Policy: "group:group_types:get_all"},
		R{Method: "POST", Pattern: v + "/group_types", Handler: versioned(11, s.createGroupType), Policy: "group:group_types:create"},
		R{Method: "GET", Pattern: v + "/group_types/{group_type_id}", Handler: versioned(11, s.showGroupType), Policy: "group:group_types:get"},
		R{Method: "PUT", Pattern: v + "/group_types/{group_type_id}", Handler: versioned(11, s.updateGroupType), Policy: "group:group_types:update"},
		R{Method: "DELETE", Pattern: v + "/group_types/{group_type_id}", Handler: versioned(11, s.deleteGroupType), Policy: "group:group_types:delete"},
		R{Method: "GET", Pattern: v + "/group_types/{group_type_id}/group_specs", Handler: versioned(11, s.listGroupSpecs), Policy: "group:group_types_specs:get_all"},
		R{Method: "POST", Pattern: v + "/group_types/{group_type_id}/group_specs", Handler: versioned(11, s.createGroupSpecs), Policy: "group:group_types_specs:create"},
		R{Method: "GET", Pattern: v + "/group_types/{group_type_id}/group_specs/{key}", Handler: versioned(11, s.showGroupSpec), Policy: "group:group_types_specs:get"},
		R{Method: "PUT", Pattern: v + "/group_types/{group_type_id}/group_specs/{key}", Handler: versioned(11, s.updateGroupSpec), Policy: "group:group_types_specs:update"},
		R{Method: "DELETE", Pattern: v + "/group_types/{group_type_id}/group_specs/{key}", Handler: versioned(11, s.deleteGroupSpec), Policy: "group:group_types_specs:delete"},

		R{Method: "GET", Pattern: v + "/attachments", Handler: versioned(27, s.listAttachments)},
		R{Method: "GET", Pattern: v + "/attachments/detail", Handler: versioned(27, s.listAttachmentsDetail)},
		R{Method: "POST", Pattern: v + "/attachments", Handler: versioned(27, s.createAttachment)},
		R{Method: "GET", Pattern: v + "/attachments/{attachment_id}", Handler: versioned(27, s.showAttachment)},
		R{Method: "PUT", Pattern: v + "/attachments/{attachment_id}", Handler: versioned(27, s.updateAttachment)},
		R{Method: "DELETE", Pattern: v + "/attachments/{attachment_id}", Handler: versioned(27, s.deleteAttachment)},
		R{Method: "POST", Pattern: v + "/attachments/{attachment_id}/action", Handler: versioned(44, s.attachmentAction)},

		R{Method: "GET", Pattern: v + "/os-quota-sets/{target_project}", Handler: s.showQuotas},
		R{Method: "GET", Pattern: v + "/os-quota-sets/{target_project}/defaults", Handler: s.showQuotaDefaults},
		R{Method: "PUT", Pattern: v + "/os-quota-sets/{target_project}", Handler: s.updateQuotas, Policy: "volume_extension:quotas:update"},
		R{Method: "DELETE", Pattern: v + "/os-quota-sets/{target_project}", Handler: s.deleteQuotas, Policy: "volume_extension:quotas:delete"},
		R{Method: "GET", Pattern: v + "/os-quota-class-sets/{class_name}", Handler: s.showQuotaClass, Policy: "volume_extension:quota_classes"},
		R{Method: "PUT", Pattern: v + "/os-quota-class-sets/{class_name}", Handler: s.updateQuotaClass, Policy: "volume_extension:quota_classes"},
		R{Method: "GET", Pattern: v + "/scheduler-stats/get_pools", Handler: s.getPools, Policy: "scheduler_extension:scheduler_stats:get_pools"},
		R{Method: "GET", Pattern: v + "/capabilities/{host_name}", Handler: s.capabilities, Policy: "volume_extension:capabilities"},
		R{Method: "GET", Pattern: v + "/os-services", Handler: s.listServices, Policy: "volume_extension:services:index"},
		R{Method: "PUT", Pattern: v + "/os-services/{action}", Handler: s.serviceAction, Policy: "volume_extension:services:update"},
		R{Method: "GET", Pattern: v + "/os-hosts", Handler: s.listHosts, Policy: "volume_extension:hosts"},
		R{Method: "GET", Pattern: v + "/os-hosts/{host_name}", Handler: s.showHost, Policy: "volume_extension:hosts"},
	)
	return rt
}
