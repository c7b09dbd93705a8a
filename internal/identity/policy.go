package identity

// DefaultPolicy is the identity service's built-in policy, in the
// oslo.policy language. It follows Keystone's defaults as deployed with
// enforce_scope off (Keystone 22's default): the admin role is cloud-wide,
// readers on the system or a domain may look, and users may look after
// their own resources. Operators override any rule with a policy file.
var DefaultPolicy = map[string]string{
	"default":                "rule:admin_required",
	"admin_required":         "role:admin or is_admin:1",
	"service_role":           "role:service",
	"service_or_admin":       "rule:admin_required or rule:service_role",
	"owner":                  "user_id:%(user_id)s",
	"admin_or_owner":         "rule:admin_required or rule:owner",
	"token_subject":          "user_id:%(target.token.user_id)s",
	"admin_or_token_subject": "rule:admin_required or rule:token_subject",
	"system_reader":          "role:reader and system_scope:all",
	"admin_or_system_reader": "rule:admin_required or rule:system_reader",

	"identity:get_domain":   "rule:admin_or_system_reader or token.domain.id:%(target.domain.id)s or token.project.domain.id:%(target.domain.id)s",
	"identity:list_domains": "rule:admin_or_system_reader",

	"identity:get_project":        "rule:admin_or_system_reader or project_id:%(target.project.id)s or (role:reader and domain_id:%(target.project.domain_id)s)",
	"identity:list_projects":      "rule:admin_or_system_reader or (role:reader and domain_id:%(target.domain_id)s)",
	"identity:list_user_projects": "rule:admin_or_system_reader or user_id:%(target.user.id)s or (role:reader and domain_id:%(target.user.domain_id)s)",
	"identity:create_project":     "rule:admin_required or (role:admin and domain_id:%(target.project.domain_id)s)",

	"identity:get_user":   "rule:admin_or_system_reader or (role:reader and domain_id:%(target.user.domain_id)s) or user_id:%(target.user.id)s",
	"identity:list_users": "rule:admin_or_system_reader or (role:reader and domain_id:%(target.domain_id)s)",

	"identity:get_group":                 "rule:admin_or_system_reader or (role:reader and domain_id:%(target.group.domain_id)s)",
	"identity:list_groups":               "rule:admin_or_system_reader or (role:reader and domain_id:%(target.domain_id)s)",
	"identity:list_groups_for_user":      "rule:admin_or_system_reader or user_id:%(user_id)s",
	"identity:list_users_in_group":       "rule:admin_or_system_reader or (role:reader and domain_id:%(target.group.domain_id)s)",
	"identity:check_user_in_group":       "rule:admin_or_system_reader or (role:reader and domain_id:%(target.group.domain_id)s)",
	"identity:get_role":                  "rule:admin_or_system_reader",
	"identity:list_roles":                "rule:admin_or_system_reader",
	"identity:get_implied_role":          "rule:admin_or_system_reader",
	"identity:list_implied_roles":        "rule:admin_or_system_reader",
	"identity:list_role_inference_rules": "rule:admin_or_system_reader",
	"identity:check_grant":               "rule:admin_or_system_reader",
	"identity:list_grants":               "rule:admin_or_system_reader",
	"identity:list_role_assignments":     "rule:admin_or_system_reader or (role:reader and domain_id:%(target.domain_id)s)",

	"identity:get_region":     "",
	"identity:list_regions":   "",
	"identity:get_service":    "rule:admin_or_system_reader",
	"identity:list_services":  "rule:admin_or_system_reader",
	"identity:get_endpoint":   "rule:admin_or_system_reader",
	"identity:list_endpoints": "rule:admin_or_system_reader",

	"identity:validate_token": "rule:service_or_admin or rule:token_subject or rule:system_reader",
	"identity:check_token":    "rule:admin_or_token_subject or rule:system_reader",
	"identity:revoke_token":   "rule:admin_or_token_subject",

	"identity:get_auth_catalog":  "",
	"identity:get_auth_projects": "",
	"identity:get_auth_domains":  "",
	"identity:get_auth_system":   "",

	"identity:get_credential":    "rule:admin_or_system_reader or user_id:%(target.credential.user_id)s",
	"identity:list_credentials":  "rule:admin_or_system_reader or user_id:%(target.credential.user_id)s",
	"identity:create_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
	"identity:update_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
	"identity:delete_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",

	"identity:ec2_get_credential":    "rule:admin_or_system_reader or user_id:%(target.credential.user_id)s",
	"identity:ec2_list_credentials":  "rule:admin_or_system_reader or rule:owner",
	"identity:ec2_create_credential": "rule:admin_required or rule:owner",
	"identity:ec2_delete_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",

	"identity:get_application_credential":    "rule:admin_or_system_reader or rule:owner",
	"identity:list_application_credentials":  "rule:admin_or_system_reader or rule:owner",
	"identity:delete_application_credential": "rule:admin_required or rule:owner",
	"identity:get_access_rule":               "rule:admin_or_system_reader or rule:owner",
	"identity:list_access_rules":             "rule:admin_or_system_reader or rule:owner",
	"identity:delete_access_rule":            "rule:admin_required or rule:owner",

	"identity:get_trust":    "rule:admin_or_system_reader",
	"identity:list_trusts":  "rule:admin_or_system_reader",
	"identity:delete_trust": "rule:admin_required",

	"identity:get_registered_limit":   "",
	"identity:list_registered_limits": "",
	"identity:get_limit_model":        "",
	"identity:get_limit":              "rule:admin_or_system_reader or project_id:%(target.limit.project_id)s",
	"identity:list_limits":            "",

	// Extensions: system readers may look; changes fall to the default.
	"identity:get_policy":                                    "rule:admin_or_system_reader",
	"identity:list_policies":                                 "rule:admin_or_system_reader",
	"identity:get_consumer":                                  "rule:admin_or_system_reader",
	"identity:list_consumers":                                "rule:admin_or_system_reader",
	"identity:get_endpoint_group":                            "rule:admin_or_system_reader",
	"identity:list_endpoint_groups":                          "rule:admin_or_system_reader",
	"identity:get_endpoint_group_in_project":                 "rule:admin_or_system_reader",
	"identity:list_endpoint_groups_for_project":              "rule:admin_or_system_reader",
	"identity:list_projects_associated_with_endpoint_group":  "rule:admin_or_system_reader",
	"identity:list_endpoints_associated_with_endpoint_group": "rule:admin_or_system_reader",
	"identity:check_endpoint_in_project":                     "rule:admin_or_system_reader",
	"identity:list_endpoints_for_project":                    "rule:admin_or_system_reader",
	"identity:list_projects_for_endpoint":                    "rule:admin_or_system_reader",
	"identity:get_domain_config":                             "rule:admin_or_system_reader",
	"identity:get_domain_config_default":                     "rule:admin_or_system_reader",
	"identity:get_security_compliance_domain_config":         "",
	"identity:get_mapping":                                   "rule:admin_or_system_reader",
	"identity:list_mappings":                                 "rule:admin_or_system_reader",
	"identity:get_identity_provider":                         "rule:admin_or_system_reader",
	"identity:list_identity_providers":                       "rule:admin_or_system_reader",
	"identity:get_protocol":                                  "rule:admin_or_system_reader",
	"identity:list_protocols":                                "rule:admin_or_system_reader",
}
