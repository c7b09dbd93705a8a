package image

// DefaultPolicy is the image service's built-in policy in the oslo.policy
// language. It follows Glance's secure-RBAC defaults (admin, member and
// reader personas; Keystone's implied roles make every member a reader):
// admins may do anything, a project's members manage its images, its
// readers look. Who may see which image (visibility and membership) is
// decided by the service itself, as Glance's image repository does, so
// the read rules only ask for the reader role. Operators override any
// rule with a policy file.
var DefaultPolicy = map[string]string{
	"default":          "role:admin",
	"context_is_admin": "role:admin",
	"admin":            "role:admin",
	"reader":           "role:admin or role:reader",
	"project_member":   "role:member and project_id:%(project_id)s",
	"admin_or_member":  "rule:admin or rule:project_member",

	"add_image":         "rule:admin_or_member",
	"get_image":         "rule:reader",
	"get_images":        "rule:reader",
	"modify_image":      "rule:admin_or_member",
	"delete_image":      "rule:admin_or_member",
	"upload_image":      "rule:admin_or_member",
	"download_image":    "rule:admin or role:member",
	"publicize_image":   "rule:admin",
	"communitize_image": "rule:admin_or_member",
	"deactivate":        "rule:admin_or_member",
	"reactivate":        "rule:admin_or_member",
	"copy_image":        "rule:admin",

	"add_member":    "rule:admin_or_member",
	"delete_member": "rule:admin_or_member",
	"get_member":    "rule:reader",
	"get_members":   "rule:reader",
	"modify_member": "rule:admin or (role:member and project_id:%(member_id)s)",

	"cache_list":   "rule:admin",
	"cache_image":  "rule:admin",
	"cache_delete": "rule:admin",

	"stores_info":    "rule:reader",
	"get_usage_info": "rule:reader",
}
