package volume

// DefaultPolicy is the volume service's built-in policy in the oslo.policy
// language, after Cinder's defaults: admins do anything, a project's
// members act on its volumes and readers look. Which volumes a caller
// sees at all is decided by the service (another project's volume is a
// 404), so these rules decide 403s. Operators override any rule with a
// policy file.
var DefaultPolicy = map[string]string{
	"context_is_admin":        "role:admin",
	"admin_api":               "rule:context_is_admin",
	"project_member_api":      "role:member and project_id:%(project_id)s",
	"project_reader_api":      "role:reader and project_id:%(project_id)s",
	"project_member_or_admin": "rule:project_member_api or rule:context_is_admin",
	"project_reader_or_admin": "rule:project_reader_api or rule:context_is_admin",

	"volume:create":                                         "rule:project_member_or_admin",
	"volume:get":                                            "rule:project_reader_or_admin",
	"volume:get_all":                                        "rule:project_reader_or_admin",
	"volume:update":                                         "rule:project_member_or_admin",
	"volume:delete":                                         "rule:project_member_or_admin",
	"volume:extend":                                         "rule:project_member_or_admin",
	"volume:retype":                                         "rule:project_member_or_admin",
	"volume:get_volume_metadata":                            "rule:project_reader_or_admin",
	"volume:update_volume_metadata":                         "rule:project_member_or_admin",
	"volume:create_snapshot":                                "rule:project_member_or_admin",
	"volume:get_snapshot":                                   "rule:project_reader_or_admin",
	"volume:get_all_snapshots":                              "rule:project_reader_or_admin",
	"volume:update_snapshot":                                "rule:project_member_or_admin",
	"volume:delete_snapshot":                                "rule:project_member_or_admin",
	"volume_extension:volume_actions:reserve":               "rule:project_member_or_admin",
	"volume_extension:volume_actions:unreserve":             "rule:project_member_or_admin",
	"volume_extension:volume_actions:begin_detaching":       "rule:project_member_or_admin",
	"volume_extension:volume_actions:roll_detaching":        "rule:project_member_or_admin",
	"volume_extension:volume_actions:initialize_connection": "rule:project_member_or_admin",
	"volume_extension:volume_actions:terminate_connection":  "rule:project_member_or_admin",
	"volume_extension:volume_actions:attach":                "rule:project_member_or_admin",
	"volume_extension:volume_actions:detach":                "rule:project_member_or_admin",
	"volume_extension:volume_actions:set_bootable":          "rule:project_member_or_admin",
	"volume_extension:volume_actions:update_readonly_flag":  "rule:project_member_or_admin",
	"volume_extension:volume_actions:upload_image":          "rule:project_member_or_admin",
	"volume_extension:volume_image_metadata:set":            "rule:project_member_or_admin",

	"backup:create":  "rule:project_member_or_admin",
	"backup:get":     "rule:project_reader_or_admin",
	"backup:get_all": "rule:project_reader_or_admin",
	"backup:delete":  "rule:project_member_or_admin",
	"backup:restore": "rule:project_member_or_admin",

	"backup:export-import":                               "rule:admin_api",
	"volume_extension:backup_admin_actions:reset_status": "rule:admin_api",
	"volume_extension:backup_admin_actions:force_delete": "rule:admin_api",
	"volume_extension:types_manage":                      "rule:admin_api",
	"volume_extension:types_extra_specs":                 "rule:admin_api",
	"volume_extension:volume_type_access":                "rule:admin_api",
	"volume_extension:quotas:update":                     "rule:admin_api",
	"volume_extension:quotas:delete":                     "rule:admin_api",
	"volume_extension:services:index":                    "rule:admin_api",
	"volume_extension:services:update":                   "rule:admin_api",
	"volume_extension:hosts":                             "rule:admin_api",
	"volume_extension:quota_classes":                     "rule:admin_api",
	"volume_extension:capabilities":                      "rule:admin_api",
	"scheduler_extension:scheduler_stats:get_pools":      "rule:admin_api",
	"volume_extension:extensions":                        "",
	"volume_extension:availability_zones":                "",
	"volume_extension:types:read":                        "",
	"volume_extension:limits":                            "",
}
