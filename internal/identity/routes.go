package identity

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Routes returns the identity API's route table.
func (s *Service) Routes() *api.Router {
	rt := api.NewRouter(s.api)
	none := api.AuthNone
	type R = api.Route
	rt.Handle(
		R{Method: "GET", Pattern: "/{$}", Handler: s.versions, Auth: none},
		R{Method: "GET", Pattern: "/v3", Handler: s.version, Auth: none},
		R{Method: "GET", Pattern: "/v3/{$}", Handler: s.version, Auth: none},

		// Tokens.
		R{Method: "POST", Pattern: "/v3/auth/tokens", Handler: s.createToken, Auth: none},
		R{Method: "GET", Pattern: "/v3/auth/tokens", Handler: s.validateToken},
		R{Method: "HEAD", Pattern: "/v3/auth/tokens", Handler: s.checkToken},
		R{Method: "DELETE", Pattern: "/v3/auth/tokens", Handler: s.revokeToken},
		R{Method: "GET", Pattern: "/v3/auth/catalog", Handler: s.authCatalog, Policy: "identity:get_auth_catalog"},
		R{Method: "GET", Pattern: "/v3/auth/projects", Handler: s.authProjects, Policy: "identity:get_auth_projects"},
		R{Method: "GET", Pattern: "/v3/auth/domains", Handler: s.authDomains, Policy: "identity:get_auth_domains"},
		R{Method: "GET", Pattern: "/v3/auth/system", Handler: s.authSystem, Policy: "identity:get_auth_system"},

		// Domains and projects.
		R{Method: "POST", Pattern: "/v3/domains", Handler: s.createDomain, Policy: "identity:create_domain"},
		R{Method: "GET", Pattern: "/v3/domains", Handler: s.listDomains},
		R{Method: "GET", Pattern: "/v3/domains/{domain_id}", Handler: s.showDomain},
		R{Method: "PATCH", Pattern: "/v3/domains/{domain_id}", Handler: s.updateDomain, Policy: "identity:update_domain"},
		R{Method: "DELETE", Pattern: "/v3/domains/{domain_id}", Handler: s.deleteDomain, Policy: "identity:delete_domain"},
		R{Method: "POST", Pattern: "/v3/projects", Handler: s.createProject},
		R{Method: "GET", Pattern: "/v3/projects", Handler: s.listProjects, Policy: "identity:list_projects"},
		R{Method: "GET", Pattern: "/v3/projects/{project_id}", Handler: s.showProject},
		R{Method: "PATCH", Pattern: "/v3/projects/{project_id}", Handler: s.updateProject, Policy: "identity:update_project"},
		R{Method: "DELETE", Pattern: "/v3/projects/{project_id}", Handler: s.deleteProject},
		R{Method: "GET", Pattern: "/v3/projects/{project_id}/tags", Handler: s.listProjectTags, Policy: "identity:get_project_tags"},
		R{Method: "PUT", Pattern: "/v3/projects/{project_id}/tags", Handler: s.replaceProjectTags, Policy: "identity:update_project_tags"},
		R{Method: "DELETE", Pattern: "/v3/projects/{project_id}/tags", Handler: s.deleteProjectTags, Policy: "identity:delete_project_tags"},
		R{Method: "GET", Pattern: "/v3/projects/{project_id}/tags/{tag}", Handler: s.checkProjectTag, Policy: "identity:get_project_tag"},
		R{Method: "PUT", Pattern: "/v3/projects/{project_id}/tags/{tag}", Handler: s.addProjectTag, Policy: "identity:create_project_tag"},
		R{Method: "DELETE", Pattern: "/v3/projects/{project_id}/tags/{tag}", Handler: s.deleteProjectTag, Policy: "identity:delete_project_tag"},

		// Users and groups.
		R{Method: "POST", Pattern: "/v3/users", Handler: s.createUser},
		R{Method: "GET", Pattern: "/v3/users", Handler: s.listUsers},
		R{Method: "GET", Pattern: "/v3/users/{user_id}", Handler: s.showUser},
		R{Method: "PATCH", Pattern: "/v3/users/{user_id}", Handler: s.updateUser},
		R{Method: "DELETE", Pattern: "/v3/users/{user_id}", Handler: s.deleteUser},
		R{Method: "POST", Pattern: "/v3/users/{user_id}/password", Handler: s.changePassword, Auth: none},
		R{Method: "GET", Pattern: "/v3/users/{user_id}/groups", Handler: s.listUserGroups},
		R{Method: "GET", Pattern: "/v3/users/{user_id}/projects", Handler: s.listUserProjects},
		R{Method: "POST", Pattern: "/v3/groups", Handler: s.createGroup},
		R{Method: "GET", Pattern: "/v3/groups", Handler: s.listGroups},
		R{Method: "GET", Pattern: "/v3/groups/{group_id}", Handler: s.showGroup},
		R{Method: "PATCH", Pattern: "/v3/groups/{group_id}", Handler: s.updateGroup},
		R{Method: "DELETE", Pattern: "/v3/groups/{group_id}", Handler: s.deleteGroup},
		R{Method: "GET", Pattern: "/v3/groups/{group_id}/users", Handler: s.listGroupUsers},
		R{Method: "PUT", Pattern: "/v3/groups/{group_id}/users/{user_id}", Handler: s.addUserToGroup},
		R{Method: "HEAD", Pattern: "/v3/groups/{group_id}/users/{user_id}", Handler: s.checkUserInGroup},
		R{Method: "GET", Pattern: "/v3/groups/{group_id}/users/{user_id}", Handler: s.checkUserInGroup},
		R{Method: "DELETE", Pattern: "/v3/groups/{group_id}/users/{user_id}", Handler: s.removeUserFromGroup},

		// Roles and inferences.
		R{Method: "POST", Pattern: "/v3/roles", Handler: s.createRole, Policy: "identity:create_role"},
		R{Method: "GET", Pattern: "/v3/roles", Handler: s.listRoles, Policy: "identity:list_roles"},
		R{Method: "GET", Pattern: "/v3/roles/{role_id}", Handler: s.showRole, Policy: "identity:get_role"},
		R{Method: "PATCH", Pattern: "/v3/roles/{role_id}", Handler: s.updateRole, Policy: "identity:update_role"},
		R{Method: "DELETE", Pattern: "/v3/roles/{role_id}", Handler: s.deleteRole, Policy: "identity:delete_role"},
		R{Method: "GET", Pattern: "/v3/roles/{prior_role_id}/implies", Handler: s.listImpliedRoles, Policy: "identity:list_implied_roles"},
		R{Method: "PUT", Pattern: "/v3/roles/{prior_role_id}/implies/{implied_role_id}", Handler: s.createImpliedRole, Policy: "identity:create_implied_role"},
		R{Method: "GET", Pattern: "/v3/roles/{prior_role_id}/implies/{implied_role_id}", Handler: s.showImpliedRole, Policy: "identity:get_implied_role"},
		R{Method: "HEAD", Pattern: "/v3/roles/{prior_role_id}/implies/{implied_role_id}", Handler: s.checkImpliedRole, Policy: "identity:check_implied_role"},
		R{Method: "DELETE", Pattern: "/v3/roles/{prior_role_id}/implies/{implied_role_id}", Handler: s.deleteImpliedRole, Policy: "identity:delete_implied_role"},
		R{Method: "GET", Pattern: "/v3/role_inferences", Handler: s.listRoleInferences, Policy: "identity:list_role_inference_rules"},
		R{Method: "GET", Pattern: "/v3/role_assignments", Handler: s.listRoleAssignments, Policy: "identity:list_role_assignments"},

		// Catalog.
		R{Method: "POST", Pattern: "/v3/regions", Handler: s.createRegion, Policy: "identity:create_region"},
		R{Method: "GET", Pattern: "/v3/regions", Handler: s.listRegions, Policy: "identity:list_regions"},
		R{Method: "GET", Pattern: "/v3/regions/{region_id}", Handler: s.showRegion, Policy: "identity:get_region"},
		R{Method: "PUT", Pattern: "/v3/regions/{region_id}", Handler: s.createRegionWithID, Policy: "identity:create_region"},
		R{Method: "PATCH", Pattern: "/v3/regions/{region_id}", Handler: s.updateRegion, Policy: "identity:update_region"},
		R{Method: "DELETE", Pattern: "/v3/regions/{region_id}", Handler: s.deleteRegion, Policy: "identity:delete_region"},
		R{Method: "POST", Pattern: "/v3/services", Handler: s.createService, Policy: "identity:create_service"},
		R{Method: "GET", Pattern: "/v3/services", Handler: s.listServices, Policy: "identity:list_services"},
		R{Method: "GET", Pattern: "/v3/services/{service_id}", Handler: s.showService, Policy: "identity:get_service"},
		R{Method: "PATCH", Pattern: "/v3/services/{service_id}", Handler: s.updateService, Policy: "identity:update_service"},
		R{Method: "DELETE", Pattern: "/v3/services/{service_id}", Handler: s.deleteService, Policy: "identity:delete_service"},
		R{Method: "POST", Pattern: "/v3/endpoints", Handler: s.createEndpoint, Policy: "identity:create_endpoint"},
		R{Method: "GET", Pattern: "/v3/endpoints", Handler: s.listEndpoints, Policy: "identity:list_endpoints"},
		R{Method: "GET", Pattern: "/v3/endpoints/{endpoint_id}", Handler: s.showEndpoint, Policy: "identity:get_endpoint"},
		R{Method: "PATCH", Pattern: "/v3/endpoints/{endpoint_id}", Handler: s.updateEndpoint, Policy: "identity:update_endpoint"},
		R{Method: "DELETE", Pattern: "/v3/endpoints/{endpoint_id}", Handler: s.deleteEndpoint, Policy: "identity:delete_endpoint"},

		// Application credentials and access rules.
		R{Method: "POST", Pattern: "/v3/users/{user_id}/application_credentials", Handler: s.createAppCred},
		R{Method: "GET", Pattern: "/v3/users/{user_id}/application_credentials", Handler: s.listAppCreds},
		R{Method: "GET", Pattern: "/v3/users/{user_id}/application_credentials/{application_credential_id}", Handler: s.showAppCred},
		R{Method: "DELETE", Pattern: "/v3/users/{user_id}/application_credentials/{application_credential_id}", Handler: s.deleteAppCred},
		R{Method: "GET", Pattern: "/v3/users/{user_id}/access_rules", Handler: s.listAccessRules},
		R{Method: "GET", Pattern: "/v3/users/{user_id}/access_rules/{access_rule_id}", Handler: s.showAccessRule},
		R{Method: "DELETE", Pattern: "/v3/users/{user_id}/access_rules/{access_rule_id}", Handler: s.deleteAccessRule},

		// Trusts.
		R{Method: "POST", Pattern: "/v3/OS-TRUST/trusts", Handler: s.createTrust},
		R{Method: "GET", Pattern: "/v3/OS-TRUST/trusts", Handler: s.listTrusts},
		R{Method: "GET", Pattern: "/v3/OS-TRUST/trusts/{trust_id}", Handler: s.showTrust},
		R{Method: "DELETE", Pattern: "/v3/OS-TRUST/trusts/{trust_id}", Handler: s.deleteTrust},
		R{Method: "GET", Pattern: "/v3/OS-TRUST/trusts/{trust_id}/roles", Handler: s.listTrustRoles},
		R{Method: "GET", Pattern: "/v3/OS-TRUST/trusts/{trust_id}/roles/{role_id}", Handler: s.showTrustRole},
	)
	s.grantRoutes(rt)
	s.extensionRoutes(rt)
	return rt
}

// grantRoutes registers the role grant URLs for every actor and target,
// and the OS-INHERIT variants.
func (s *Service) grantRoutes(rt *api.Router) {
	for _, target := range []string{"project", "domain"} {
		for _, actor := range []string{"user", "group"} {
			base := "/v3/" + target + "s/{" + target + "_id}/" + actor + "s/{" + actor + "_id}/roles"
			put, check, del := s.grantHandlers(actor, target, false)
			rt.Handle(
				api.Route{Method: http.MethodGet, Pattern: base, Handler: s.listGrantsHandler(actor, target, false), Policy: "identity:list_grants"},
				api.Route{Method: http.MethodPut, Pattern: base + "/{role_id}", Handler: put},
				api.Route{Method: http.MethodHead, Pattern: base + "/{role_id}", Handler: check},
				api.Route{Method: http.MethodGet, Pattern: base + "/{role_id}", Handler: check},
				api.Route{Method: http.MethodDelete, Pattern: base + "/{role_id}", Handler: del},
			)
			inh := "/v3/OS-INHERIT/" + target + "s/{" + target + "_id}/" + actor + "s/{" + actor + "_id}/roles"
			iput, icheck, idel := s.grantHandlers(actor, target, true)
			rt.Handle(
				api.Route{Method: http.MethodGet, Pattern: inh + "/inherited_to_projects", Handler: s.listGrantsHandler(actor, target, true), Policy: "identity:list_grants"},
				api.Route{Method: http.MethodPut, Pattern: inh + "/{role_id}/inherited_to_projects", Handler: iput},
				api.Route{Method: http.MethodHead, Pattern: inh + "/{role_id}/inherited_to_projects", Handler: icheck},
				api.Route{Method: http.MethodGet, Pattern: inh + "/{role_id}/inherited_to_projects", Handler: icheck},
				api.Route{Method: http.MethodDelete, Pattern: inh + "/{role_id}/inherited_to_projects", Handler: idel},
			)
		}
	}
	for _, actor := range []string{"user", "group"} {
		base := "/v3/system/" + actor + "s/{" + actor + "_id}/roles"
		put, check, del := s.grantHandlers(actor, "system", false)
		rt.Handle(
			api.Route{Method: http.MethodGet, Pattern: base, Handler: s.listGrantsHandler(actor, "system", false), Policy: "identity:list_system_grants_for_" + actor},
			api.Route{Method: http.MethodPut, Pattern: base + "/{role_id}", Handler: put},
			api.Route{Method: http.MethodHead, Pattern: base + "/{role_id}", Handler: check},
			api.Route{Method: http.MethodGet, Pattern: base + "/{role_id}", Handler: check},
			api.Route{Method: http.MethodDelete, Pattern: base + "/{role_id}", Handler: del},
		)
	}
}
