package policy

// Credentials describe the caller, mirroring the dictionary oslo.context's
// to_policy_values() hands to oslo.policy. The named fields are the
// attributes OpenStack's default policies use; anything else goes in Attrs.
//
// An empty string field counts as absent, not as "": a project-less token
// must never satisfy project_id:%(project_id)s against a target whose
// project_id is also empty. (oslo gets the same effect from None, which
// renders as "None".)
type Credentials struct {
	UserID          string // user_id
	UserDomainID    string // user_domain_id
	ProjectID       string // project_id; empty unless project-scoped
	ProjectDomainID string // project_domain_id
	DomainID        string // domain_id; empty unless domain-scoped
	SystemScope     string // system_scope; "all" for system-scoped tokens
	IsAdmin         bool   // is_admin; always present, renders as True/False

	// Roles are the caller's role names, matched case-insensitively by
	// role: checks and exposed to generic checks as "roles".
	Roles []string

	// Attrs holds further attributes (service_roles, is_admin_project,
	// nested maps for dotted names, ...). A named field that is set takes
	// precedence over an Attrs entry of the same name.
	Attrs map[string]any
}

// attr returns the credential attribute called key.
func (c *Credentials) attr(key string) (any, bool) {
	var named string
	switch key {
	case "user_id":
		named = c.UserID
	case "user_domain_id":
		named = c.UserDomainID
	case "project_id":
		named = c.ProjectID
	case "project_domain_id":
		named = c.ProjectDomainID
	case "domain_id":
		named = c.DomainID
	case "system_scope":
		named = c.SystemScope
	case "roles":
		if len(c.Roles) > 0 {
			return c.Roles, true
		}
	case "is_admin":
		if c.IsAdmin {
			return true, true
		}
		if v, ok := c.Attrs[key]; ok {
			return v, true
		}
		return false, true
	}
	if named != "" {
		return named, true
	}
	v, ok := c.Attrs[key]
	return v, ok
}

// roles returns the role names role: checks compare against: Roles, or a
// list under Attrs["roles"] for callers that only fill the map.
func (c *Credentials) roles() []string {
	if len(c.Roles) > 0 {
		return c.Roles
	}
	v, ok := c.Attrs["roles"]
	if !ok {
		return nil
	}
	var out []string
	eachElem(v, func(e any) bool {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
		return false
	})
	return out
}
