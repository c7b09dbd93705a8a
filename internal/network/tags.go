package network

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"unicode/utf8"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// maxTags bounds the tags of one resource, as Neutron's tag plugin does.
const maxTags = 50

func validTag(t string) error {
	if t == "" || utf8.RuneCountInString(t) > 255 {
		return invalidInput("'%s' is not a valid tag", t)
	}
	return nil
}

func validTags(tags []string) error {
	for _, t := range tags {
		if err := validTag(t); err != nil {
			return err
		}
	}
	if len(tags) > maxTags {
		return invalidInput("'%d' exceeds the maximum number of tags %d", len(tags), maxTags)
	}
	return nil
}

// setTags replaces a resource's tags.
func setTags(ctx context.Context, tx *store.Tx, id string, tags []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM tags WHERE resource_id = ?`, id); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if seen[t] {
			continue
		}
		seen[t] = true
		if _, err := tx.Exec(ctx, `INSERT INTO tags (resource_id, tag) VALUES (?, ?)`, id, t); err != nil {
			return err
		}
	}
	return nil
}

// taggedResource finds a taggable resource the caller may see and
// returns the policy target for changing its tags and the table that
// holds it (for its revision).
type taggedResource func(ctx context.Context, q store.Querier, c caller, id string) (target obj, table, realID string, err error)

func (s *Service) taggable() map[string]taggedResource {
	return map[string]taggedResource{
		"networks": func(ctx context.Context, q store.Querier, c caller, id string) (obj, string, string, error) {
			n, err := s.loadNetwork(ctx, q, c, id)
			if err != nil {
				return nil, "", "", err
			}
			return obj{"project_id": n.ProjectID}, "networks", n.ID, nil
		},
		"subnets": func(ctx context.Context, q store.Querier, c caller, id string) (obj, string, string, error) {
			sn, net, err := s.loadSubnet(ctx, q, c, id)
			if err != nil {
				return nil, "", "", err
			}
			return obj{"project_id": sn.ProjectID, "network_project_id": net.ProjectID}, "subnets", sn.ID, nil
		},
		"ports": func(ctx context.Context, q store.Querier, c caller, id string) (obj, string, string, error) {
			p, net, err := s.loadPort(ctx, q, c, id)
			if err != nil {
				return nil, "", "", err
			}
			return obj{"project_id": p.ProjectID, "network_project_id": net.ProjectID}, "ports", p.ID, nil
		},
		"subnetpools": func(ctx context.Context, q store.Querier, c caller, id string) (obj, string, string, error) {
			sp, err := s.loadSubnetPool(ctx, q, c, id)
			if err != nil {
				return nil, "", "", err
			}
			return obj{"project_id": sp.ProjectID}, "subnetpools", sp.ID, nil
		},
		"security-groups": func(ctx context.Context, q store.Querier, c caller, id string) (obj, string, string, error) {
			sg, err := s.loadSecurityGroup(ctx, q, c, id)
			if err != nil {
				return nil, "", "", err
			}
			return obj{"project_id": sg.ProjectID}, "security_groups", sg.ID, nil
		},
		"routers": func(ctx context.Context, q store.Querier, c caller, id string) (obj, string, string, error) {
			rt, err := s.loadRouter(ctx, q, c, id)
			if err != nil {
				return nil, "", "", err
			}
			return obj{"project_id": rt.ProjectID}, "routers", rt.ID, nil
		},
		"floatingips": func(ctx context.Context, q store.Querier, c caller, id string) (obj, string, string, error) {
			f, err := s.loadFloatingIP(ctx, q, c, id)
			if err != nil {
				return nil, "", "", err
			}
			return obj{"project_id": f.ProjectID}, "floatingips", f.ID, nil
		},
	}
}

// tagRoutes returns the tag routes of every taggable collection.
func (s *Service) tagRoutes() []api.Route {
	var routes []api.Route
	res := s.taggable()
	names := make([]string, 0, len(res))
	for n := range res {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, coll := range names {
		load := res[coll]
		base := "/v2.0/" + coll + "/{id}/tags"
		routes = append(routes,
			api.Route{Method: "GET", Pattern: base, Handler: s.tagHandler(load, "list")},
			api.Route{Method: "PUT", Pattern: base, Handler: s.tagHandler(load, "replace")},
			api.Route{Method: "POST", Pattern: base, Handler: s.tagHandler(load, "add-many")},
			api.Route{Method: "DELETE", Pattern: base, Handler: s.tagHandler(load, "clear")},
			api.Route{Method: "GET", Pattern: base + "/{tag}", Handler: s.tagHandler(load, "check")},
			api.Route{Method: "PUT", Pattern: base + "/{tag}", Handler: s.tagHandler(load, "add")},
			api.Route{Method: "DELETE", Pattern: base + "/{tag}", Handler: s.tagHandler(load, "remove")},
		)
	}
	return routes
}

func (s *Service) tagHandler(load taggedResource, op string) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		c := s.caller(r)
		var body struct {
			Tags []string `json:"tags"`
		}
		if op == "replace" || op == "add-many" {
			if err := api.DecodeJSON(r, &body); err != nil {
				return nil, err
			}
			if body.Tags == nil {
				return nil, badRequest("tags", "Invalid input for tags: 'tags' is required")
			}
			if err := validTags(body.Tags); err != nil {
				return nil, err
			}
		}
		tag := r.PathValue("tag")
		if (op == "add") && validTag(tag) != nil {
			return nil, validTag(tag)
		}
		var resp *api.Response
		err := s.writeTx(r.Context(), func(tx *store.Tx) error {
			ctx := r.Context()
			target, table, id, err := load(ctx, tx, c, r.PathValue("id"))
			if err != nil {
				return err
			}
			current, err := store.QueryStrings(ctx, tx, `SELECT tag FROM tags WHERE resource_id = ? ORDER BY tag`, id)
			if err != nil {
				return err
			}
			if op != "list" && op != "check" {
				if err := s.authorize(r, "update_tags", target); err != nil {
					return err
				}
			}
			var next []string
			switch op {
			case "list":
				resp = api.JSON(http.StatusOK, obj{"tags": orEmpty(current)})
				return nil
			case "check":
				if !slices.Contains(current, tag) {
					return notFound("TagNotFound", "Tag %s could not be found for %s %s.", tag, table, id)
				}
				resp = api.NoContent()
				return nil
			case "replace":
				next = body.Tags
				resp = api.JSON(http.StatusOK, obj{"tags": orEmpty(dedupSorted(next))})
			case "add-many":
				next = append(current, body.Tags...)
				resp = api.JSON(http.StatusOK, obj{"tags": orEmpty(dedupSorted(next))})
			case "clear":
				resp = api.NoContent()
			case "add":
				if slices.Contains(current, tag) {
					resp = &api.Response{Status: http.StatusCreated}
					return nil
				}
				next = append(current, tag)
				resp = &api.Response{Status: http.StatusCreated}
			case "remove":
				i := slices.Index(current, tag)
				if i < 0 {
					return notFound("TagNotFound", "Tag %s could not be found for %s %s.", tag, table, id)
				}
				next = slices.Delete(current, i, i+1)
				resp = api.NoContent()
			}
			if len(dedupSorted(next)) > maxTags {
				return invalidInput("'%d' exceeds the maximum number of tags %d", len(next), maxTags)
			}
			if err := setTags(ctx, tx, id, next); err != nil {
				return err
			}
			return bump(ctx, tx, table, id)
		})
		return resp, err
	}
}

func dedupSorted(xs []string) []string {
	out := slices.Clone(xs)
	sort.Strings(out)
	return slices.Compact(out)
}
