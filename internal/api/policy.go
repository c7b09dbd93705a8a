package api

import "github.com/nimbus-cloud/nimbus/internal/policy"

// PolicyAuthorizer enforces oslo.policy rules with credentials taken from
// the caller's token, shaped like the dictionary oslo.context hands to
// oslo.policy, so operators' policy files work unchanged.
type PolicyAuthorizer struct {
	Enforcer *policy.Enforcer
}

// Allow implements Authorizer.
func (p PolicyAuthorizer) Allow(action string, target map[string]any, caller *Identity) (bool, error) {
	return p.Enforcer.Enforce(action, target, PolicyCredentials(caller))
}

// PolicyCredentials converts a token identity to policy credentials.
// Anonymous callers get empty credentials, which only "@" or "" rules admit.
func PolicyCredentials(id *Identity) policy.Credentials {
	if id == nil {
		return policy.Credentials{}
	}
	c := policy.Credentials{
		UserID: id.UserID, UserDomainID: id.UserDomainID,
		ProjectID: id.ProjectID, ProjectDomainID: id.ProjectDomainID,
		DomainID: id.DomainID, Roles: id.RoleNames(),
		Attrs: map[string]any{"is_admin_project": id.IsAdminProject},
	}
	if id.System {
		c.SystemScope = "all"
	}
	token := map[string]any{"user": map[string]any{"id": id.UserID, "domain": map[string]any{"id": id.UserDomainID}}}
	if id.ProjectID != "" {
		token["project"] = map[string]any{"id": id.ProjectID, "domain": map[string]any{"id": id.ProjectDomainID}}
	}
	if id.DomainID != "" {
		token["domain"] = map[string]any{"id": id.DomainID}
	}
	c.Attrs["token"] = token
	if id.TrustID != "" {
		c.Attrs["trust_id"] = id.TrustID
	}
	return c
}
