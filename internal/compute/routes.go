package compute

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Routes returns the compute API's route table. Handlers that act on a
// project's resource enforce policy themselves once they know the owner;
// admin-only calls carry their policy here.
func (s *Service) Routes() *api.Router {
	rt := api.NewRouter(s.api)
	none := api.AuthNone
	type R = api.Route
	const v = "/v2.1"
	rt.Handle(
		R{Method: "GET", Pattern: "/{$}", Handler: s.versions, Auth: none},
		R{Method: "GET", Pattern: "/v2.0", Handler: s.versionV20, Auth: none},
		R{Method: "GET", Pattern: v, Handler: s.versionV21, Auth: none},
		R{Method: "GET", Pattern: v + "/{$}", Handler: s.versionV21, Auth: none},
		R{Method: "GET", Pattern: v + "/extensions", Handler: s.listExtensions, Policy: "os_compute_api:extensions"},
		R{Method: "GET", Pattern: v + "/extensions/{alias}", Handler: s.showExtension, Policy: "os_compute_api:extensions"},

		R{Method: "GET", Pattern: v + "/flavors", Handler: s.listFlavors},
		R{Method: "GET", Pattern: v + "/flavors/detail", Handler: s.listFlavorsDetail},
		R{Method: "POST", Pattern: v + "/flavors", Handler: s.createFlavor, Policy: "os_compute_api:os-flavor-manage:create"},
		R{Method: "GET", Pattern: v + "/flavors/{flavor_id}", Handler: s.showFlavor},
		R{Method: "PUT", Pattern: v + "/flavors/{flavor_id}", Handler: s.updateFlavor, Policy: "os_compute_api:os-flavor-manage:update"},
		R{Method: "DELETE", Pattern: v + "/flavors/{flavor_id}", Handler: s.deleteFlavor, Policy: "os_compute_api:os-flavor-manage:delete"},
		R{Method: "POST", Pattern: v + "/flavors/{flavor_id}/action", Handler: s.flavorAction},
		R{Method: "GET", Pattern: v + "/flavors/{flavor_id}/os-flavor-access", Handler: s.listFlavorAccess, Policy: "os_compute_api:os-flavor-access"},
		R{Method: "GET", Pattern: v + "/flavors/{flavor_id}/os-extra_specs", Handler: s.listExtraSpecs, Policy: "os_compute_api:os-flavor-extra-specs:index"},
		R{Method: "POST", Pattern: v + "/flavors/{flavor_id}/os-extra_specs", Handler: s.createExtraSpecs, Policy: "os_compute_api:os-flavor-extra-specs:create"},
		R{Method: "GET", Pattern: v + "/flavors/{flavor_id}/os-extra_specs/{key}", Handler: s.showExtraSpec, Policy: "os_compute_api:os-flavor-extra-specs:show"},
		R{Method: "PUT", Pattern: v + "/flavors/{flavor_id}/os-extra_specs/{key}", Handler: s.updateExtraSpec, Policy: "os_compute_api:os-flavor-extra-specs:update"},
		R{Method: "DELETE", Pattern: v + "/flavors/{flavor_id}/os-extra_specs/{key}", Handler: s.deleteExtraSpec, Policy: "os_compute_api:os-flavor-extra-specs:delete"},

		R{Method: "GET", Pattern: v + "/os-keypairs", Handler: s.listKeypairs},
		R{Method: "POST", Pattern: v + "/os-keypairs", Handler: s.createKeypair},
		R{Method: "GET", Pattern: v + "/os-keypairs/{name}", Handler: s.showKeypair},
		R{Method: "DELETE", Pattern: v + "/os-keypairs/{name}", Handler: s.deleteKeypair},

		R{Method: "GET", Pattern: v + "/servers", Handler: s.listServers},
		R{Method: "GET", Pattern: v + "/servers/detail", Handler: s.listServersDetail},
		R{Method: "POST", Pattern: v + "/servers", Handler: s.createServer},
		R{Method: "GET", Pattern: v + "/servers/{server_id}", Handler: s.showServer},
		R{Method: "PUT", Pattern: v + "/servers/{server_id}", Handler: s.updateServer},
		R{Method: "DELETE", Pattern: v + "/servers/{server_id}", Handler: s.deleteServer},
		R{Method: "POST", Pattern: v + "/servers/{server_id}/action", Handler: s.serverAction},
		R{Method: "POST", Pattern: v + "/servers/{server_id}/remote-consoles", Handler: s.createRemoteConsole},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/metadata", Handler: s.listServerMetadata},
		R{Method: "POST", Pattern: v + "/servers/{server_id}/metadata", Handler: s.createServerMetadata},
		R{Method: "PUT", Pattern: v + "/servers/{server_id}/metadata", Handler: s.replaceServerMetadata},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/metadata/{key}", Handler: s.showServerMetadata},
		R{Method: "PUT", Pattern: v + "/servers/{server_id}/metadata/{key}", Handler: s.updateServerMetadataItem},
		R{Method: "DELETE", Pattern: v + "/servers/{server_id}/metadata/{key}", Handler: s.deleteServerMetadataItem},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/tags", Handler: s.listServerTags},
		R{Method: "PUT", Pattern: v + "/servers/{server_id}/tags", Handler: s.replaceServerTags},
		R{Method: "DELETE", Pattern: v + "/servers/{server_id}/tags", Handler: s.deleteServerTags},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/tags/{tag}", Handler: s.checkServerTag},
		R{Method: "PUT", Pattern: v + "/servers/{server_id}/tags/{tag}", Handler: s.addServerTag},
		R{Method: "DELETE", Pattern: v + "/servers/{server_id}/tags/{tag}", Handler: s.deleteServerTag},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/ips", Handler: s.listServerIPs},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/diagnostics", Handler: s.serverDiagnostics},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/ips/{network}", Handler: s.showServerIPs},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/os-instance-actions", Handler: s.listInstanceActions},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/os-instance-actions/{request_id}", Handler: s.showInstanceAction},

		R{Method: "GET", Pattern: v + "/images", Handler: s.listImages},
		R{Method: "GET", Pattern: v + "/images/detail", Handler: s.listImagesDetail},
		R{Method: "GET", Pattern: v + "/images/{image_id}", Handler: s.showImage},
		R{Method: "DELETE", Pattern: v + "/images/{image_id}", Handler: s.deleteImage},
		R{Method: "GET", Pattern: v + "/images/{image_id}/metadata", Handler: s.listImageMetadata},
		R{Method: "POST", Pattern: v + "/images/{image_id}/metadata", Handler: s.createImageMetadata},
		R{Method: "PUT", Pattern: v + "/images/{image_id}/metadata", Handler: s.replaceImageMetadata},
		R{Method: "GET", Pattern: v + "/images/{image_id}/metadata/{key}", Handler: s.showImageMetadata},
		R{Method: "PUT", Pattern: v + "/images/{image_id}/metadata/{key}", Handler: s.updateImageMetadataItem},
		R{Method: "DELETE", Pattern: v + "/images/{image_id}/metadata/{key}", Handler: s.deleteImageMetadataItem},
		R{Method: "GET", Pattern: v + "/os-security-groups", Handler: s.listSecurityGroups},
		R{Method: "POST", Pattern: v + "/os-security-groups", Handler: s.createSecurityGroup},
		R{Method: "GET", Pattern: v + "/os-security-groups/{group_id}", Handler: s.showSecurityGroup},
		R{Method: "PUT", Pattern: v + "/os-security-groups/{group_id}", Handler: s.updateSecurityGroup},
		R{Method: "DELETE", Pattern: v + "/os-security-groups/{group_id}", Handler: s.deleteSecurityGroup},
		R{Method: "POST", Pattern: v + "/os-security-group-rules", Handler: s.createSecurityGroupRule},
		R{Method: "DELETE", Pattern: v + "/os-security-group-rules/{rule_id}", Handler: s.deleteSecurityGroupRule},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/os-security-groups", Handler: s.listServerSecurityGroups},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/os-server-password", Handler: s.serverPassword},
		R{Method: "DELETE", Pattern: v + "/servers/{server_id}/os-server-password", Handler: s.clearServerPassword},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/os-interface", Handler: s.listInterfaces},
		R{Method: "POST", Pattern: v + "/servers/{server_id}/os-interface", Handler: s.attachInterface},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/os-interface/{port_id}", Handler: s.showInterface},
		R{Method: "DELETE", Pattern: v + "/servers/{server_id}/os-interface/{port_id}", Handler: s.detachInterface},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/os-volume_attachments", Handler: s.listVolumeAttachments},
		R{Method: "POST", Pattern: v + "/servers/{server_id}/os-volume_attachments", Handler: s.attachVolume},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/os-volume_attachments/{volume_id}", Handler: s.showVolumeAttachment},
		R{Method: "PUT", Pattern: v + "/servers/{server_id}/os-volume_attachments/{volume_id}", Handler: s.swapVolume},
		R{Method: "DELETE", Pattern: v + "/servers/{server_id}/os-volume_attachments/{volume_id}", Handler: s.detachVolume},
		R{Method: "GET", Pattern: v + "/os-volumes", Handler: s.listProxyVolumes},
		R{Method: "GET", Pattern: v + "/os-volumes/detail", Handler: s.listProxyVolumesDetail},
		R{Method: "POST", Pattern: v + "/os-volumes", Handler: s.createProxyVolume},
		R{Method: "GET", Pattern: v + "/os-volumes/{volume_id}", Handler: s.showProxyVolume},
		R{Method: "DELETE", Pattern: v + "/os-volumes/{volume_id}", Handler: s.deleteProxyVolume},
		R{Method: "GET", Pattern: v + "/os-snapshots", Handler: s.listProxySnapshots},
		R{Method: "GET", Pattern: v + "/os-snapshots/detail", Handler: s.listProxySnapshotsDetail},
		R{Method: "POST", Pattern: v + "/os-snapshots", Handler: s.createProxySnapshot},
		R{Method: "GET", Pattern: v + "/os-snapshots/{snapshot_id}", Handler: s.showProxySnapshot},
		R{Method: "DELETE", Pattern: v + "/os-snapshots/{snapshot_id}", Handler: s.deleteProxySnapshot},
		R{Method: "GET", Pattern: v + "/os-networks", Handler: s.listOSNetworks},
		R{Method: "GET", Pattern: v + "/os-networks/{network_id}", Handler: s.showOSNetwork},
		R{Method: "GET", Pattern: v + "/os-tenant-networks", Handler: s.listTenantNetworks},
		R{Method: "GET", Pattern: v + "/os-tenant-networks/{network_id}", Handler: s.showTenantNetwork},
		R{Method: "POST", Pattern: v + "/os-server-external-events", Handler: s.externalEvents, Policy: "os_compute_api:os-server-external-events:create"},
		R{Method: "GET", Pattern: v + "/os-floating-ip-pools", Handler: s.listFloatingIPPools},
		R{Method: "GET", Pattern: v + "/os-floating-ips", Handler: s.listFloatingIPs},
		R{Method: "POST", Pattern: v + "/os-floating-ips", Handler: s.createFloatingIP},
		R{Method: "GET", Pattern: v + "/os-floating-ips/{fip_id}", Handler: s.showFloatingIP},
		R{Method: "DELETE", Pattern: v + "/os-floating-ips/{fip_id}", Handler: s.deleteFloatingIP},

		R{Method: "GET", Pattern: v + "/os-services", Handler: s.listServices, Policy: "os_compute_api:os-services:list"},
		R{Method: "PUT", Pattern: v + "/os-services/{action}", Handler: s.serviceAction, Policy: "os_compute_api:os-services:update"},
		R{Method: "DELETE", Pattern: v + "/os-services/{action}", Handler: s.deleteService, Policy: "os_compute_api:os-services:delete"},
		R{Method: "GET", Pattern: v + "/os-hypervisors", Handler: s.listHypervisors, Policy: "os_compute_api:os-hypervisors:list"},
		R{Method: "GET", Pattern: v + "/os-hypervisors/detail", Handler: s.listHypervisorsDetail, Policy: "os_compute_api:os-hypervisors:list-detail"},
		R{Method: "GET", Pattern: v + "/os-hypervisors/statistics", Handler: s.hypervisorStatistics, Policy: "os_compute_api:os-hypervisors:statistics"},
		R{Method: "GET", Pattern: v + "/os-hypervisors/{id}", Handler: s.showHypervisor, Policy: "os_compute_api:os-hypervisors:show"},
		R{Method: "GET", Pattern: v + "/os-hypervisors/{id}/uptime", Handler: s.hypervisorUptime, Policy: "os_compute_api:os-hypervisors:uptime"},
		R{Method: "GET", Pattern: v + "/os-hypervisors/{pattern}/search", Handler: s.searchHypervisors, Policy: "os_compute_api:os-hypervisors:search"},
		R{Method: "GET", Pattern: v + "/os-hypervisors/{pattern}/servers", Handler: s.hypervisorServers, Policy: "os_compute_api:os-hypervisors:servers"},

		R{Method: "GET", Pattern: v + "/os-console-auth-tokens/{token}", Handler: s.showConsoleToken, Policy: "os_compute_api:os-console-auth-tokens"},
		R{Method: "GET", Pattern: v + "/os-migrations", Handler: s.listMigrations, Policy: "os_compute_api:os-migrations:index"},
		R{Method: "GET", Pattern: v + "/servers/{server_id}/migrations", Handler: s.listServerMigrations},
		R{Method: "GET", Pattern: v + "/os-aggregates", Handler: s.listAggregates, Policy: "os_compute_api:os-aggregates:index"},
		R{Method: "POST", Pattern: v + "/os-aggregates", Handler: s.createAggregate, Policy: "os_compute_api:os-aggregates:create"},
		R{Method: "GET", Pattern: v + "/os-aggregates/{aggregate_id}", Handler: s.showAggregate, Policy: "os_compute_api:os-aggregates:show"},
		R{Method: "PUT", Pattern: v + "/os-aggregates/{aggregate_id}", Handler: s.updateAggregate, Policy: "os_compute_api:os-aggregates:update"},
		R{Method: "DELETE", Pattern: v + "/os-aggregates/{aggregate_id}", Handler: s.deleteAggregate, Policy: "os_compute_api:os-aggregates:delete"},
		R{Method: "POST", Pattern: v + "/os-aggregates/{aggregate_id}/action", Handler: s.aggregateAction, Policy: "os_compute_api:os-aggregates:add_host"},
		R{Method: "GET", Pattern: v + "/os-hosts", Handler: s.listOSHosts, Policy: "os_compute_api:os-hosts:list"},
		R{Method: "GET", Pattern: v + "/os-hosts/{host_name}", Handler: s.showOSHost, Policy: "os_compute_api:os-hosts:show"},
		R{Method: "PUT", Pattern: v + "/os-hosts/{host_name}", Handler: s.updateOSHost, Policy: "os_compute_api:os-hosts:update"},
		R{Method: "GET", Pattern: v + "/os-instance_usage_audit_log", Handler: s.listAuditLogs, Policy: "os_compute_api:os-instance-usage-audit-log:list"},
		R{Method: "GET", Pattern: v + "/os-instance_usage_audit_log/{before_timestamp}", Handler: s.showAuditLog, Policy: "os_compute_api:os-instance-usage-audit-log:show"},
		R{Method: "GET", Pattern: v + "/os-hosts/{host_name}/startup", Handler: s.hostPowerAction("startup"), Policy: "os_compute_api:os-hosts:start"},
		R{Method: "GET", Pattern: v + "/os-hosts/{host_name}/shutdown", Handler: s.hostPowerAction("shutdown"), Policy: "os_compute_api:os-hosts:shutdown"},
		R{Method: "GET", Pattern: v + "/os-hosts/{host_name}/reboot", Handler: s.hostPowerAction("reboot"), Policy: "os_compute_api:os-hosts:reboot"},

		R{Method: "GET", Pattern: v + "/os-server-groups", Handler: s.listServerGroups},
		R{Method: "POST", Pattern: v + "/os-server-groups", Handler: s.createServerGroup},
		R{Method: "GET", Pattern: v + "/os-server-groups/{group_id}", Handler: s.showServerGroup},
		R{Method: "DELETE", Pattern: v + "/os-server-groups/{group_id}", Handler: s.deleteServerGroup},

		R{Method: "GET", Pattern: v + "/os-availability-zone", Handler: s.listZones, Policy: "os_compute_api:os-availability-zone:list"},
		R{Method: "GET", Pattern: v + "/os-availability-zone/detail", Handler: s.detailZones, Policy: "os_compute_api:os-availability-zone:detail"},
		R{Method: "GET", Pattern: v + "/limits", Handler: s.limits, Policy: "os_compute_api:limits"},
		R{Method: "GET", Pattern: v + "/os-quota-sets/{project_id}", Handler: s.showQuotas},
		R{Method: "PUT", Pattern: v + "/os-quota-sets/{project_id}", Handler: s.updateQuotas},
		R{Method: "DELETE", Pattern: v + "/os-quota-sets/{project_id}", Handler: s.deleteQuotas},
		R{Method: "GET", Pattern: v + "/os-quota-sets/{project_id}/defaults", Handler: s.showQuotaDefaults, Policy: "os_compute_api:os-quota-sets:defaults"},
		R{Method: "GET", Pattern: v + "/os-quota-sets/{project_id}/detail", Handler: s.showQuotaDetail},
		R{Method: "GET", Pattern: v + "/os-quota-class-sets/{class}", Handler: s.showQuotaClass, Policy: "os_compute_api:os-quota-class-sets:show"},
		R{Method: "PUT", Pattern: v + "/os-quota-class-sets/{class}", Handler: s.updateQuotaClass, Policy: "os_compute_api:os-quota-class-sets:update"},
		R{Method: "GET", Pattern: v + "/os-simple-tenant-usage", Handler: s.listUsage, Policy: "os_compute_api:os-simple-tenant-usage:list"},
		R{Method: "GET", Pattern: v + "/os-simple-tenant-usage/{tenant_id}", Handler: s.showUsage},
	)
	return rt
}

// extensions are the legacy extensions whose APIs this service serves.
// Nova's v2.1 API has them built in but still lists them, and clients
// (Tempest among them) probe the list by name.
var extensions = [][2]string{
	{"os-admin-actions", "AdminActions"}, {"os-aggregates", "Aggregates"}, {"os-availability-zone", "AvailabilityZone"},
	{"os-attach-interfaces", "AttachInterfaces"}, {"os-config-drive", "ConfigDrive"}, {"os-console-output", "ConsoleOutput"}, {"os-consoles", "Consoles"},
	{"os-create-backup", "CreateBackup"}, {"OS-DCF", "DiskConfig"}, {"OS-EXT-AZ", "ExtendedAvailabilityZone"},
	{"OS-EXT-IPS", "ExtendedIps"}, {"OS-EXT-IPS-MAC", "ExtendedIpsMac"}, {"OS-EXT-SRV-ATTR", "ExtendedServerAttributes"},
	{"OS-EXT-STS", "ExtendedStatus"}, {"os-extended-volumes", "ExtendedVolumes"}, {"os-flavor-access", "FlavorAccess"},
	{"os-flavor-extra-specs", "FlavorExtraSpecs"}, {"os-flavor-manage", "FlavorManage"}, {"OS-FLV-DISABLED", "FlavorDisabled"},
	{"OS-FLV-EXT-DATA", "FlavorExtraData"}, {"os-floating-ip-pools", "FloatingIpPools"}, {"os-floating-ips", "FloatingIps"},
	{"os-hosts", "Hosts"}, {"os-hypervisors", "Hypervisors"}, {"os-instance-actions", "InstanceActions"},
	{"os-keypairs", "Keypairs"}, {"os-lock-server", "LockServer"}, {"os-multiple-create", "MultipleCreate"},
	{"os-pause-server", "PauseServer"}, {"os-quota-class-sets", "QuotaClasses"}, {"os-quota-sets", "Quotas"},
	{"os-remote-consoles", "Consoles"}, {"os-rescue", "Rescue"}, {"OS-SCH-HNT", "SchedulerHints"},
	{"os-security-groups", "SecurityGroups"}, {"os-server-external-events", "ServerExternalEvents"},
	{"os-server-groups", "ServerGroups"}, {"os-server-password", "ServerPassword"}, {"os-services", "Services"},
	{"os-shelve", "Shelve"}, {"os-simple-tenant-usage", "SimpleTenantUsage"}, {"OS-SRV-USG", "ServerUsage"},
	{"os-suspend-server", "SuspendServer"}, {"os-tenant-networks", "OSTenantNetworks"}, {"os-user-data", "UserData"},
	{"os-volumes", "Volumes"},
}

func extensionView(alias, name string) map[string]any {
	return map[string]any{"alias": alias, "name": name, "description": name + " support.", "links": []any{},
		"namespace": "http://docs.openstack.org/compute/ext/fake_xml", "updated": "2014-12-03T00:00:00Z"}
}

// listExtensions answers the legacy extension list.
func (s *Service) listExtensions(r *http.Request) (*api.Response, error) {
	out := make([]map[string]any, 0, len(extensions))
	for _, e := range extensions {
		out = append(out, extensionView(e[0], e[1]))
	}
	return api.JSON(http.StatusOK, map[string]any{"extensions": out}), nil
}

func (s *Service) showExtension(r *http.Request) (*api.Response, error) {
	alias := r.PathValue("alias")
	for _, e := range extensions {
		if e[0] == alias {
			return api.JSON(http.StatusOK, map[string]any{"extension": extensionView(e[0], e[1])}), nil
		}
	}
	return nil, api.NotFound("Extension %s could not be found.", alias)
}
