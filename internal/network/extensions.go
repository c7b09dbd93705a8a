package network

import (
	"net/http"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// extension is an entry of /v2.0/extensions. Clients and Tempest decide
// what to use and test from this list, so it names exactly the features
// the service implements: each feature file declares its own entries and
// the registry collects them.
type extension struct {
	Alias       string
	Name        string
	Description string
	Updated     string
}

func (e extension) render() obj {
	return obj{"alias": e.Alias, "name": e.Name, "description": e.Description, "updated": e.Updated, "links": []any{}}
}

// extensionRegistry holds the implemented extensions by alias; it is
// filled in New and read-only afterwards.
type extensionRegistry struct {
	byAlias map[string]extension
}

// featureExtensions lists, per implemented feature, the extensions it
// provides. A feature that is not implemented has no entry.
var featureExtensions = [][]extension{
	commonExtensions,
	networkExtensions,
	subnetExtensions,
	portExtensions,
	securityGroupExtensions,
	routerExtensions,
	quotaExtensions,
	infoExtensions,
	agentExtensions,
	meteringExtensions,
}

func newExtensionRegistry() *extensionRegistry {
	reg := &extensionRegistry{byAlias: map[string]extension{}}
	for _, list := range featureExtensions {
		for _, e := range list {
			if _, dup := reg.byAlias[e.Alias]; dup {
				panic("network: extension " + e.Alias + " declared twice")
			}
			reg.byAlias[e.Alias] = e
		}
	}
	return reg
}

// commonExtensions are the behaviours every resource's API shares.
var commonExtensions = []extension{
	{"project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled.", "2016-09-09T09:09:09-09:09"},
	{"standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes", "2016-02-10T10:00:00-00:00"},
	{"standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.", "2016-09-12T10:00:00-00:00"},
	{"standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources.", "2016-04-11T10:00:00-00:00"},
	{"standard-attr-tag", "Tag support for resources with standard attribute: subnet, router, network, subnetpool, port, security_group, floatingip", "Enables to set tag on resources with standard attribute.", "2017-01-01T00:00:00-00:00"},
	{"sorting", "Sorting support", "Extension that indicates that sorting is enabled.", "2016-06-12T00:00:00-00:00"},
	{"pagination", "Pagination support", "Extension that indicates that pagination is enabled.", "2016-06-12T00:00:00-00:00"},
	{"empty-string-filtering", "Empty String Filtering Extension", "Allow filtering by attributes with empty string value", "2018-05-01T10:00:00-00:00"},
}

func (s *Service) listExtensions(r *http.Request) (*api.Response, error) {
	aliases := make([]string, 0, len(s.ext.byAlias))
	for a := range s.ext.byAlias {
		aliases = append(aliases, a)
	}
	sort.Strings(aliases)
	out := make([]obj, 0, len(aliases))
	for _, a := range aliases {
		out = append(out, s.ext.byAlias[a].render())
	}
	return api.JSON(http.StatusOK, obj{"extensions": out}), nil
}

func (s *Service) showExtension(r *http.Request) (*api.Response, error) {
	alias := r.PathValue("alias")
	e, ok := s.ext.byAlias[alias]
	if !ok {
		return nil, notFound("NotFound", "Extension with alias %s does not exist", alias)
	}
	return api.JSON(http.StatusOK, obj{"extension": e.render()}), nil
}

// versions answers GET /: the one API version, v2.0.
func (s *Service) versions(r *http.Request) (*api.Response, error) {
	return api.JSON(http.StatusOK, obj{"versions": []api.VersionDoc{{
		ID: "v2.0", Status: "CURRENT",
		Links: []api.Link{{Rel: "self", Href: s.baseURL(r) + "/v2.0"}},
	}}}), nil
}

// apiResources are the collections GET /v2.0/ lists, by singular name.
var apiResources = [][2]string{
	{"network", "networks"}, {"subnet", "subnets"}, {"subnetpool", "subnetpools"}, {"port", "ports"},
	{"security_group", "security-groups"}, {"security_group_rule", "security-group-rules"},
	{"router", "routers"}, {"floatingip", "floatingips"}, {"quota", "quotas"},
	{"availability_zone", "availability_zones"}, {"network_ip_availability", "network-ip-availabilities"},
	{"service_provider", "service-providers"}, {"agent", "agents"}, {"extension", "extensions"},
}

// versionResources answers GET /v2.0/: the resources of the API.
func (s *Service) versionResources(r *http.Request) (*api.Response, error) {
	base := s.baseURL(r) + "/v2.0/"
	out := make([]obj, 0, len(apiResources))
	for _, res := range apiResources {
		out = append(out, obj{"name": res[0], "collection": res[1], "links": []api.Link{{Rel: "self", Href: base + res[1]}}})
	}
	return api.JSON(http.StatusOK, obj{"resources": out}), nil
}
