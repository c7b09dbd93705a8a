package network

import (
	"context"
	"errors"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// The helpers here carry the shape the resource handlers share, so that a
// handler reads as what is particular to its resource.
//
// Reads: the policy allows the action, the caller sees only what its
// project may (anything else is 404, as in Neutron), resources are
// rendered with their tags.
//
// Writes: load, authorize and change in one transaction, run again when
// it lost a race (writeTx); only once it has committed is the data plane
// told (notify) and the client answered.

// commit runs change in a write transaction and, after the commit, sends
// the events change returned.
func (s *Service) commit(r *http.Request, change func(ctx context.Context, tx *store.Tx) ([]Event, error)) error {
	var evs []Event
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		var err error
		evs, err = change(r.Context(), tx)
		return err
	})
	if err != nil {
		return err
	}
	s.notify(r.Context(), evs...)
	return nil
}

// updateOne serves an update of one resource: change applies it and
// returns the resource's id and new representation, which is the answer.
func (s *Service) updateOne(r *http.Request, resource string, change func(ctx context.Context, tx *store.Tx) (string, obj, error)) (*api.Response, error) {
	return s.updateOneFor(r, resource, nil, change)
}

// updateOneFor is updateOne for a change that may alter compute servers'
// addresses: change sets *servers to those servers, which the update's
// event names.
func (s *Service) updateOneFor(r *http.Request, resource string, servers *[]string, change func(ctx context.Context, tx *store.Tx) (string, obj, error)) (*api.Response, error) {
	var o obj
	err := s.commit(r, func(ctx context.Context, tx *store.Tx) ([]Event, error) {
		id, out, err := change(ctx, tx)
		o = out
		ev := Event{Resource: resource, ID: id, Action: "update"}
		if servers != nil {
			ev.Servers = *servers
		}
		return []Event{ev}, err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, obj{resource: o}), nil
}

// deleteOne serves the deletion of one resource: change removes it and
// returns its id.
func (s *Service) deleteOne(r *http.Request, resource string, change func(ctx context.Context, tx *store.Tx) (string, error)) (*api.Response, error) {
	err := s.commit(r, func(ctx context.Context, tx *store.Tx) ([]Event, error) {
		id, err := change(ctx, tx)
		return []Event{{Resource: resource, ID: id, Action: "delete"}}, err
	})
	if err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

// authorizeOwned enforces action on a resource of the given project.
func (s *Service) authorizeOwned(r *http.Request, action, projectID string) error {
	return s.authorize(r, action, obj{"project_id": projectID})
}

// touch records an update in a resource's standard attributes: a new
// revision and update time, which the row's UPDATE then stores.
func touch(revision *int, updatedAt *string) {
	*revision++
	*updatedAt = neutronTime(now())
}

// loadVisible fetches the row query selects for the id in a request
// path. An id that is not a UUID, a missing row and a row the caller may
// not see are all notFound(id): Neutron does not tell them apart.
func loadVisible[T any](ctx context.Context, q store.Querier, scan func(store.Scanner) (T, error), query, id string,
	visible func(T) bool, notFound func(string) *api.Error) (T, error) {
	var zero T
	uid, ok := validUUID(id)
	if !ok {
		return zero, notFound(id)
	}
	v, err := store.QueryOne(ctx, q, scan, query, uid)
	if errors.Is(err, store.ErrNotFound) || err == nil && !visible(v) {
		return zero, notFound(id)
	}
	return v, err
}

// tagsByID returns the tags of the listed resources, by resource id.
func tagsByID[T any](ctx context.Context, q store.Querier, items []T, id func(T) string) (map[string][]string, error) {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = id(it)
	}
	return tagsFor(ctx, q, ids)
}

// withTags renders one resource with its tags.
func withTags[T any](ctx context.Context, q store.Querier, id string, v T, render func(T, []string) obj) (obj, error) {
	tags, err := tagsFor(ctx, q, []string{id})
	if err != nil {
		return nil, err
	}
	return render(v, tags[id]), nil
}

// renderTagged renders the rows keep accepts, each with its tags, for a
// list.
func renderTagged[T any](ctx context.Context, q store.Querier, rows []T, id func(T) string, keep func(T) bool,
	render func(T, []string) obj) ([]obj, error) {
	tags, err := tagsByID(ctx, q, rows, id)
	if err != nil {
		return nil, err
	}
	var items []obj
	for _, row := range rows {
		if keep(row) {
			items = append(items, render(row, tags[id(row)]))
		}
	}
	return items, nil
}

// showOne answers GET on one resource: load fetches the one the path
// names, if the caller may see it, and render renders it.
func showOne[T any](s *Service, r *http.Request, name string, load func(context.Context, store.Querier, caller, string) (T, error),
	render func(context.Context, store.Querier, T) (obj, error)) (*api.Response, error) {
	v, err := load(r.Context(), s.db, s.caller(r), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	o, err := render(r.Context(), s.db, v)
	if err != nil {
		return nil, err
	}
	return show(r, name, o), nil
}

// owned is a resource that belongs to a project.
type owned interface {
	// ownership returns the resource's id and its project's.
	ownership() (id, projectID string)
}

// loader fetches the resource an id names, if the caller may see it.
type loader[T owned] func(ctx context.Context, q store.Querier, c caller, id string) (T, error)

// updateOwned serves PUT on a project's resource: in one transaction it
// loads the resource the path names, enforces update_<resource>, and lets
// change apply the request and return the new representation.
func updateOwned[T owned](s *Service, r *http.Request, resource string, load loader[T],
	change func(ctx context.Context, tx *store.Tx, v T) (obj, error)) (*api.Response, error) {
	c := s.caller(r)
	return s.updateOne(r, resource, func(ctx context.Context, tx *store.Tx) (string, obj, error) {
		v, err := load(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return "", nil, err
		}
		id, project := v.ownership()
		if err := s.authorizeOwned(r, "update_"+resource, project); err != nil {
			return "", nil, err
		}
		o, err := change(ctx, tx, v)
		return id, o, err
	})
}

// deleteOwned serves DELETE on a project's resource: in one transaction
// it loads the resource the path names, enforces delete_<resource>, and
// lets remove delete it.
func deleteOwned[T owned](s *Service, r *http.Request, resource string, load loader[T],
	remove func(ctx context.Context, tx *store.Tx, v T) error) (*api.Response, error) {
	c := s.caller(r)
	return s.deleteOne(r, resource, func(ctx context.Context, tx *store.Tx) (string, error) {
		v, err := load(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return "", err
		}
		id, project := v.ownership()
		if err := s.authorizeOwned(r, "delete_"+resource, project); err != nil {
			return "", err
		}
		return id, remove(ctx, tx, v)
	})
}

func (f *floatingIP) ownership() (string, string)    { return f.ID, f.ProjectID }
func (g *securityGroup) ownership() (string, string) { return g.ID, g.ProjectID }
func (rt *router) ownership() (string, string)       { return rt.ID, rt.ProjectID }
func (n *network) ownership() (string, string)       { return n.ID, n.ProjectID }

// loadOnNetwork fetches a resource that lives on a network (a port, a
// subnet) with its network, if the caller may see it; like loadVisible,
// anything else is notFound(id).
func loadOnNetwork[T any](ctx context.Context, s *Service, q store.Querier, id string, get func(context.Context, store.Querier, string) (T, error),
	networkOf func(T) string, visible func(T, *network) bool, notFound func(string) *api.Error) (T, *network, error) {
	var zero T
	uid, ok := validUUID(id)
	if !ok {
		return zero, nil, notFound(id)
	}
	v, err := get(ctx, q, uid)
	if err != nil {
		return zero, nil, err
	}
	n, err := s.getNetwork(ctx, q, networkOf(v))
	if err != nil {
		return zero, nil, err
	}
	if !visible(v, n) {
		return zero, nil, notFound(id)
	}
	return v, n, nil
}

// queryList reads the rows of a collection the caller may list: the
// policy must allow action, and only the rows visibility admits (SQL with
// each '?' bound to the caller's project) are read, all of them for
// admins. before, when set, runs between the policy check and the query.
func queryList[T any](s *Service, r *http.Request, c caller, action string, scan func(store.Scanner) (T, error), query, visibility string,
	before func() error) ([]T, error) {
	if err := s.authorizeOwned(r, action, c.project); err != nil {
		return nil, err
	}
	if before != nil {
		if err := before(); err != nil {
			return nil, err
		}
	}
	where, args := c.scope(visibility)
	return store.QueryAll(r.Context(), s.db, scan, query+where, args...)
}

// authorizeCreate resolves the project a new resource goes to (ownerFor)
// and enforces action on it, with the attribute rules for attrs
// ("create_network:shared", ...).
func (s *Service) authorizeCreate(r *http.Request, c caller, action string, projectID, tenantID *string, attrs ...string) (string, error) {
	project, err := ownerFor(c, projectID, tenantID)
	if err != nil {
		return "", err
	}
	target := obj{"project_id": project}
	if err := s.authorize(r, action, target); err != nil {
		return "", err
	}
	return project, s.authorizeAttrs(r, action, target, attrs...)
}

// renderAll renders each row for a list.
func renderAll[T any](rows []T, render func(T) (obj, error)) ([]obj, error) {
	items := make([]obj, 0, len(rows))
	for _, row := range rows {
		o, err := render(row)
		if err != nil {
			return nil, err
		}
		items = append(items, o)
	}
	return items, nil
}
