package network

import (
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// Routes returns the networking API's route table. Every handler's typed
// failures are rendered with their Neutron exception type.
func (s *Service) Routes() *api.Router {
	rt := api.NewRouter(s.api)
	none := api.AuthNone
	type R = api.Route
	routes := []R{
		{Method: "GET", Pattern: "/{$}", Handler: s.versions, Auth: none},
		{Method: "GET", Pattern: "/v2.0/{$}", Handler: s.versionResources},
		{Method: "GET", Pattern: "/v2.0", Handler: s.versionResources},
		{Method: "GET", Pattern: "/v2.0/extensions", Handler: s.listExtensions},
		{Method: "GET", Pattern: "/v2.0/extensions/{alias}", Handler: s.showExtension},

		{Method: "GET", Pattern: "/v2.0/networks", Handler: s.listNetworks},
		{Method: "POST", Pattern: "/v2.0/networks", Handler: createHandler(s, "network", "networks", s.prepareNetwork)},
		{Method: "GET", Pattern: "/v2.0/networks/{id}", Handler: s.showNetwork},
		{Method: "PUT", Pattern: "/v2.0/networks/{id}", Handler: s.updateNetwork},
		{Method: "DELETE", Pattern: "/v2.0/networks/{id}", Handler: s.deleteNetwork},

		{Method: "GET", Pattern: "/v2.0/subnets", Handler: s.listSubnets},
		{Method: "POST", Pattern: "/v2.0/subnets", Handler: createHandler(s, "subnet", "subnets", s.prepareSubnet)},
		{Method: "GET", Pattern: "/v2.0/subnets/{id}", Handler: s.showSubnet},
		{Method: "PUT", Pattern: "/v2.0/subnets/{id}", Handler: s.updateSubnet},
		{Method: "DELETE", Pattern: "/v2.0/subnets/{id}", Handler: s.deleteSubnet},

		{Method: "GET", Pattern: "/v2.0/subnetpools", Handler: s.listSubnetPools},
		{Method: "POST", Pattern: "/v2.0/subnetpools", Handler: s.createSubnetPool},
		{Method: "GET", Pattern: "/v2.0/subnetpools/{id}", Handler: s.showSubnetPool},
		{Method: "PUT", Pattern: "/v2.0/subnetpools/{id}", Handler: s.updateSubnetPool},
		{Method: "DELETE", Pattern: "/v2.0/subnetpools/{id}", Handler: s.deleteSubnetPool},

		{Method: "GET", Pattern: "/v2.0/ports", Handler: s.listPorts},
		{Method: "POST", Pattern: "/v2.0/ports", Handler: createHandler(s, "port", "ports", s.preparePort)},
		{Method: "GET", Pattern: "/v2.0/ports/{id}", Handler: s.showPort},
		{Method: "PUT", Pattern: "/v2.0/ports/{id}", Handler: s.updatePort},
		{Method: "DELETE", Pattern: "/v2.0/ports/{id}", Handler: s.deletePort},

		{Method: "GET", Pattern: "/v2.0/security-groups", Handler: s.listSecurityGroups},
		{Method: "POST", Pattern: "/v2.0/security-groups", Handler: s.createSecurityGroup},
		{Method: "GET", Pattern: "/v2.0/security-groups/{id}", Handler: s.showSecurityGroup},
		{Method: "PUT", Pattern: "/v2.0/security-groups/{id}", Handler: s.updateSecurityGroup},
		{Method: "DELETE", Pattern: "/v2.0/security-groups/{id}", Handler: s.deleteSecurityGroup},
		{Method: "GET", Pattern: "/v2.0/security-group-rules", Handler: s.listRules},
		{Method: "POST", Pattern: "/v2.0/security-group-rules", Handler: s.createRule},
		{Method: "GET", Pattern: "/v2.0/security-group-rules/{id}", Handler: s.showRule},
		{Method: "DELETE", Pattern: "/v2.0/security-group-rules/{id}", Handler: s.deleteRule},

		{Method: "GET", Pattern: "/v2.0/routers", Handler: s.listRouters},
		{Method: "POST", Pattern: "/v2.0/routers", Handler: s.createRouter},
		{Method: "GET", Pattern: "/v2.0/routers/{id}", Handler: s.showRouter},
		{Method: "PUT", Pattern: "/v2.0/routers/{id}", Handler: s.updateRouter},
		{Method: "DELETE", Pattern: "/v2.0/routers/{id}", Handler: s.deleteRouter},
		{Method: "PUT", Pattern: "/v2.0/routers/{id}/add_router_interface", Handler: s.addInterface},
		{Method: "PUT", Pattern: "/v2.0/routers/{id}/remove_router_interface", Handler: s.removeInterface},

		{Method: "GET", Pattern: "/v2.0/floatingips", Handler: s.listFloatingIPs},
		{Method: "POST", Pattern: "/v2.0/floatingips", Handler: s.createFloatingIP},
		{Method: "GET", Pattern: "/v2.0/floatingips/{id}", Handler: s.showFloatingIP},
		{Method: "PUT", Pattern: "/v2.0/floatingips/{id}", Handler: s.updateFloatingIP},
		{Method: "DELETE", Pattern: "/v2.0/floatingips/{id}", Handler: s.deleteFloatingIP},

		{Method: "GET", Pattern: "/v2.0/availability_zones", Handler: s.listAvailabilityZones},
		{Method: "GET", Pattern: "/v2.0/service-providers", Handler: s.listServiceProviders},
		{Method: "GET", Pattern: "/v2.0/network-ip-availabilities", Handler: s.listIPAvailabilities},
		{Method: "GET", Pattern: "/v2.0/network-ip-availabilities/{id}", Handler: s.showIPAvailability},

		{Method: "GET", Pattern: "/v2.0/quotas", Handler: s.listQuotas},
		{Method: "GET", Pattern: "/v2.0/quotas/{project_id}", Handler: s.showQuota},
		{Method: "PUT", Pattern: "/v2.0/quotas/{project_id}", Handler: s.updateQuota},
		{Method: "DELETE", Pattern: "/v2.0/quotas/{project_id}", Handler: s.deleteQuota},
		{Method: "GET", Pattern: "/v2.0/quotas/{project_id}/default", Handler: s.showDefaultQuota},
		{Method: "GET", Pattern: "/v2.0/quotas/{project_id}/details", Handler: s.showQuotaDetails},
	}
	routes = append(routes, s.extraRoutes()...)
	rt.Handle(routes...)
	rt.Handle(s.tagRoutes()...)
	return rt
}

// Handler is the networking API behind the shared middleware.
func (s *Service) Handler() http.Handler { return s.api.Handler(jsonSuffix(s.Routes())) }

// jsonSuffix serves /v2.0/things.json as /v2.0/things: Neutron still
// accepts the format suffix of its first API, and clients use it (the
// quota details call of Tempest's client, for one). Tag paths are left
// alone, since a tag may end in ".json".
func jsonSuffix(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; strings.HasSuffix(p, ".json") && !strings.Contains(p, "/tags/") {
			r.URL.Path = strings.TrimSuffix(p, ".json")
			r.URL.RawPath = ""
		}
		next.ServeHTTP(w, r)
	})
}

// extraRoutes are the routes of the agent, scheduler and metering APIs.
func (s *Service) extraRoutes() []api.Route {
	return append(s.agentRoutes(), s.meteringRoutes()...)
}
