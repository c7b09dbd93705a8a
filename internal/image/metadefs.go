package image

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// metadefMigrations are the metadata definitions catalog's tables
// (versions 2 and up). A namespace's objects, properties, tags and
// resource type associations are all items of one table, told apart by
// kind and kept as JSON bodies: the catalog is small and always read a
// namespace at a time.
var metadefMigrations = []store.Migration{{
	Version: 2,
	Name:    "metadata definitions catalog",
	SQL: `CREATE TABLE metadef_namespaces (
	namespace TEXT PRIMARY KEY,
	display_name TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	visibility TEXT NOT NULL,
	protected INTEGER NOT NULL DEFAULT 0,
	owner TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX metadef_namespaces_owner ON metadef_namespaces (owner);
CREATE TABLE metadef_items (
	kind TEXT NOT NULL,
	namespace TEXT NOT NULL,
	name TEXT NOT NULL,
	body TEXT NOT NULL DEFAULT '{}',
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (namespace, kind, name)
);
CREATE INDEX metadef_items_kind_name ON metadef_items (kind, name)`,
}}

// Item kinds of metadef_items.
const (
	kindObject   = "object"
	kindProperty = "property"
	kindTag      = "tag"
	kindRTA      = "resource_type"
)

// metadefResourceTypes are the resource types Glance's standard metadata
// definitions declare; names first used in an association are added.
var metadefResourceTypes = []string{
	"OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor",
	"OS::Nova::Aggregate", "OS::Nova::Server", "OS::Trove::Instance",
}

// metadefRoutes registers /v2/metadefs/... and their schemas.
func (s *Service) metadefRoutes(rt *api.Router) {
	type R = api.Route
	const ns = "/v2/metadefs/namespaces/{namespace}"
	rt.Handle(
		R{Method: "GET", Pattern: "/v2/metadefs/namespaces", Handler: s.listNamespaces},
		R{Method: "POST", Pattern: "/v2/metadefs/namespaces", Handler: s.createNamespace},
		R{Method: "GET", Pattern: ns, Handler: s.showNamespace},
		R{Method: "PUT", Pattern: ns, Handler: s.updateNamespace},
		R{Method: "DELETE", Pattern: ns, Handler: s.deleteNamespace},

		R{Method: "GET", Pattern: ns + "/objects", Handler: s.listMetadefObjects},
		R{Method: "POST", Pattern: ns + "/objects", Handler: s.createMetadefObject},
		R{Method: "DELETE", Pattern: ns + "/objects", Handler: s.deleteAllItems(kindObject)},
		R{Method: "GET", Pattern: ns + "/objects/{name}", Handler: s.showMetadefObject},
		R{Method: "PUT", Pattern: ns + "/objects/{name}", Handler: s.updateMetadefObject},
		R{Method: "DELETE", Pattern: ns + "/objects/{name}", Handler: s.deleteItem(kindObject)},

		R{Method: "GET", Pattern: ns + "/properties", Handler: s.listMetadefProperties},
		R{Method: "POST", Pattern: ns + "/properties", Handler: s.createMetadefProperty},
		R{Method: "DELETE", Pattern: ns + "/properties", Handler: s.deleteAllItems(kindProperty)},
		R{Method: "GET", Pattern: ns + "/properties/{name}", Handler: s.showMetadefProperty},
		R{Method: "PUT", Pattern: ns + "/properties/{name}", Handler: s.updateMetadefProperty},
		R{Method: "DELETE", Pattern: ns + "/properties/{name}", Handler: s.deleteItem(kindProperty)},

		R{Method: "GET", Pattern: ns + "/tags", Handler: s.listMetadefTags},
		R{Method: "POST", Pattern: ns + "/tags", Handler: s.createMetadefTags},
		R{Method: "DELETE", Pattern: ns + "/tags", Handler: s.deleteAllItems(kindTag)},
		R{Method: "GET", Pattern: ns + "/tags/{name}", Handler: s.showMetadefTag},
		R{Method: "POST", Pattern: ns + "/tags/{name}", Handler: s.createMetadefTag},
		R{Method: "PUT", Pattern: ns + "/tags/{name}", Handler: s.updateMetadefTag},
		R{Method: "DELETE", Pattern: ns + "/tags/{name}", Handler: s.deleteItem(kindTag)},

		R{Method: "GET", Pattern: "/v2/metadefs/resource_types", Handler: s.listResourceTypes},
		R{Method: "GET", Pattern: ns + "/resource_types", Handler: s.listAssociations},
		R{Method: "POST", Pattern: ns + "/resource_types", Handler: s.createAssociation},
		R{Method: "DELETE", Pattern: ns + "/resource_types/{name}", Handler: s.deleteItem(kindRTA)},

		R{Method: "GET", Pattern: "/v2/schemas/metadefs/namespace", Handler: s.schema(mdNamespaceSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/metadefs/namespaces", Handler: s.schema(mdNamespacesSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/metadefs/object", Handler: s.schema(mdObjectSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/metadefs/objects", Handler: s.schema(mdObjectsSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/metadefs/property", Handler: s.schema(mdPropertySchema)},
		R{Method: "GET", Pattern: "/v2/schemas/metadefs/properties", Handler: s.schema(mdPropertiesSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/metadefs/tag", Handler: s.schema(mdTagSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/metadefs/tags", Handler: s.schema(mdTagsSchema)},
		R{Method: "GET", Pattern: "/v2/schemas/metadefs/resource_type", Handler: s.schema(mdRTASchema)},
		R{Method: "GET", Pattern: "/v2/schemas/metadefs/resource_types", Handler: s.schema(mdRTAsSchema)},
	)
}

// namespace is one metadata definition namespace.
type namespace struct {
	Namespace   string
	DisplayName string
	Description string
	Visibility  string
	Protected   bool
	Owner       string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

const namespaceColumns = `namespace, display_name, description, visibility, protected, owner, created_at, updated_at`

func scanNamespace(row store.Scanner) (*namespace, error) {
	var (
		n                namespace
		protected        int
		created, updated string
	)
	if err := row.Scan(&n.Namespace, &n.DisplayName, &n.Description, &n.Visibility, &protected, &n.Owner, &created, &updated); err != nil {
		return nil, err
	}
	n.Protected = protected != 0
	n.CreatedAt, _ = store.ParseTime(created)
	n.UpdatedAt, _ = store.ParseTime(updated)
	return &n, nil
}

func (n *namespace) view() map[string]any {
	m := map[string]any{
		"namespace": n.Namespace, "visibility": n.Visibility, "protected": n.Protected, "owner": n.Owner,
		"created_at": glanceTime(n.CreatedAt), "updated_at": glanceTime(n.UpdatedAt),
		"self": "/v2/metadefs/namespaces/" + n.Namespace, "schema": "/v2/schemas/metadefs/namespace",
	}
	if n.DisplayName != "" {
		m["display_name"] = n.DisplayName
	}
	if n.Description != "" {
		m["description"] = n.Description
	}
	return m
}

// item is one object, property, tag or resource type association.
type item struct {
	Name      string
	Body      map[string]any
	CreatedAt time.Time
	UpdatedAt time.Time
}

func scanItem(row store.Scanner) (*item, error) {
	var (
		it                     item
		body, created, updated string
	)
	if err := row.Scan(&it.Name, &body, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(body), &it.Body); err != nil {
		return nil, err
	}
	if it.Body == nil {
		it.Body = map[string]any{}
	}
	it.CreatedAt, _ = store.ParseTime(created)
	it.UpdatedAt, _ = store.ParseTime(updated)
	return &it, nil
}

// canSeeNamespace: admins and owners see every namespace, others the
// public ones.
func (s *Service) canSeeNamespace(r *http.Request, n *namespace) bool {
	return n.Visibility == "public" || s.isAdmin(r) || (n.Owner != "" && n.Owner == projectOf(r))
}

// loadNamespace fetches the {namespace} of the path if the caller may
// see it; otherwise it is a 404.
func (s *Service) loadNamespace(r *http.Request) (*namespace, error) {
	name := r.PathValue("namespace")
	n, err := store.QueryOne(r.Context(), s.db, scanNamespace, `SELECT `+namespaceColumns+` FROM metadef_namespaces WHERE namespace = ?`, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !s.canSeeNamespace(r, n)) {
		return nil, api.NotFound("Metadata definition namespace=%s was not found.", name)
	}
	return n, err
}

// authorizeNamespace enforces a metadef policy action against n; the
// actions are not in DefaultPolicy and so fall to its admin-only
// "default" rule, as Glance's defaults make metadef writes admin-only.
func (s *Service) authorizeNamespace(r *http.Request, action string, n *namespace) error {
	target := map[string]any{"namespace": "", "owner": "", "project_id": "", "visibility": ""}
	if n != nil {
		target = map[string]any{"namespace": n.Namespace, "owner": n.Owner, "project_id": n.Owner, "visibility": n.Visibility}
	}
	return s.api.Authorize(r, action, target)
}

// loadForWrite loads the path's namespace and authorizes action on it.
func (s *Service) loadForWrite(r *http.Request, action string) (*namespace, error) {
	n, err := s.loadNamespace(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeNamespace(r, action, n); err != nil {
		return nil, err
	}
	return n, nil
}

func (s *Service) items(r *http.Request, ns, kind string) ([]*item, error) {
	return store.QueryAll(r.Context(), s.db, scanItem,
		`SELECT name, body, created_at, updated_at FROM metadef_items WHERE namespace = ? AND kind = ? ORDER BY created_at, name`, ns, kind)
}

func (s *Service) getItem(r *http.Request, ns, kind, name string) (*item, error) {
	it, err := store.QueryOne(r.Context(), s.db, scanItem,
		`SELECT name, body, created_at, updated_at FROM metadef_items WHERE namespace = ? AND kind = ? AND name = ?`, ns, kind, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Metadata definition %s not found: %s in namespace %s.", kind, name, ns)
	}
	return it, err
}

func insertItem(ctx context.Context, q store.Querier, ns, kind, name string, body map[string]any) (*item, error) {
	now := time.Now().UTC()
	if body == nil {
		body = map[string]any{}
	}
	_, err := q.Exec(ctx, `INSERT INTO metadef_items (kind, namespace, name, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		kind, ns, name, jsonText(body), store.FormatTime(now), store.FormatTime(now))
	if store.IsConflict(err) {
		return nil, api.Conflict("A metadata definition %s with name=%s already exists in namespace=%s.", kind, name, ns)
	}
	if err != nil {
		return nil, err
	}
	return &item{Name: name, Body: body, CreatedAt: now, UpdatedAt: now}, nil
}

// replaceItem renames and rewrites an item.
func (s *Service) replaceItem(r *http.Request, ns, kind string, old *item, name string, body map[string]any) (*item, error) {
	now := time.Now().UTC()
	if body == nil {
		body = map[string]any{}
	}
	_, err := s.db.Exec(r.Context(), `UPDATE metadef_items SET name = ?, body = ?, updated_at = ? WHERE namespace = ? AND kind = ? AND name = ?`,
		name, jsonText(body), store.FormatTime(now), ns, kind, old.Name)
	if store.IsConflict(err) {
		return nil, api.Conflict("A metadata definition %s with name=%s already exists in namespace=%s.", kind, name, ns)
	}
	if err != nil {
		return nil, err
	}
	return &item{Name: name, Body: body, CreatedAt: old.CreatedAt, UpdatedAt: now}, nil
}

func (s *Service) deleteItem(kind string) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		n, err := s.loadForWrite(r, "delete_metadef_"+kind)
		if err != nil {
			return nil, err
		}
		name := r.PathValue("name")
		if _, err := s.getItem(r, n.Namespace, kind, name); err != nil {
			return nil, err
		}
		if _, err := s.db.Exec(r.Context(), `DELETE FROM metadef_items WHERE namespace = ? AND kind = ? AND name = ?`, n.Namespace, kind, name); err != nil {
			return nil, err
		}
		return api.NoContent(), nil
	}
}

func (s *Service) deleteAllItems(kind string) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		n, err := s.loadForWrite(r, "delete_metadef_"+kind+"s")
		if err != nil {
			return nil, err
		}
		if n.Protected {
			return nil, api.Forbidden("Namespace %s is protected and cannot be modified.", n.Namespace)
		}
		if _, err := s.db.Exec(r.Context(), `DELETE FROM metadef_items WHERE namespace = ? AND kind = ?`, n.Namespace, kind); err != nil {
			return nil, err
		}
		return api.NoContent(), nil
	}
}

// validName checks a namespace or item name (Glance allows 1 to 80
// characters for namespaces and objects/properties/tags).
func validName(what, name string, max int) error {
	if strings.TrimSpace(name) == "" {
		return api.BadRequest("Invalid %s: name is required.", what)
	}
	if len([]rune(name)) > max {
		return api.BadRequest("Invalid %s: name %q is longer than %d characters.", what, name, max)
	}
	return nil
}

// ---- namespaces ----

// nsBody is a namespace as clients send it.
type nsBody struct {
	Namespace                *string                   `json:"namespace"`
	DisplayName              *string                   `json:"display_name"`
	Description              *string                   `json:"description"`
	Visibility               *string                   `json:"visibility"`
	Protected                *bool                     `json:"protected"`
	Owner                    *string                   `json:"owner"`
	ResourceTypeAssociations []map[string]any          `json:"resource_type_associations"`
	Properties               map[string]map[string]any `json:"properties"`
	Objects                  []map[string]any          `json:"objects"`
	Tags                     []map[string]any          `json:"tags"`
}

func (b *nsBody) apply(n *namespace) error {
	if b.Namespace != nil {
		if err := validName("namespace", *b.Namespace, 80); err != nil {
			return err
		}
		n.Namespace = *b.Namespace
	}
	if b.DisplayName != nil {
		n.DisplayName = *b.DisplayName
	}
	if b.Description != nil {
		n.Description = *b.Description
	}
	if b.Visibility != nil {
		if *b.Visibility != "public" && *b.Visibility != "private" {
			return api.BadRequest("Invalid visibility %q: must be public or private.", *b.Visibility)
		}
		n.Visibility = *b.Visibility
	}
	if b.Protected != nil {
		n.Protected = *b.Protected
	}
	if b.Owner != nil && *b.Owner != "" {
		n.Owner = *b.Owner
	}
	return nil
}

func (s *Service) listNamespaces(r *http.Request) (*api.Response, error) {
	q := r.URL.Query()
	all, err := store.QueryAll(r.Context(), s.db, scanNamespace, `SELECT `+namespaceColumns+` FROM metadef_namespaces ORDER BY namespace`)
	if err != nil {
		return nil, err
	}
	var rtFilter []string
	if v := q.Get("resource_types"); v != "" {
		rtFilter = strings.Split(v, ",")
	}
	out := []any{}
	for _, n := range all {
		if !s.canSeeNamespace(r, n) {
			continue
		}
		if v := q.Get("visibility"); v != "" && n.Visibility != v {
			continue
		}
		m := n.view()
		assocs, err := s.items(r, n.Namespace, kindRTA)
		if err != nil {
			return nil, err
		}
		if rtFilter != nil && !slices.ContainsFunc(assocs, func(it *item) bool { return slices.Contains(rtFilter, it.Name) }) {
			continue
		}
		if len(assocs) > 0 {
			m["resource_type_associations"] = assocViews(assocs)
		}
		out = append(out, m)
	}
	return api.JSON(http.StatusOK, map[string]any{
		"namespaces": out, "first": "/v2/metadefs/namespaces", "schema": "/v2/schemas/metadefs/namespaces",
	}), nil
}

func (s *Service) createNamespace(r *http.Request) (*api.Response, error) {
	if err := s.authorizeNamespace(r, "add_metadef_namespace", nil); err != nil {
		return nil, err
	}
	var b nsBody
	if err := decodeJSON(r, &b); err != nil {
		return nil, err
	}
	if b.Namespace == nil {
		return nil, api.BadRequest("Invalid namespace: namespace is required.")
	}
	now := time.Now().UTC()
	n := &namespace{Visibility: "private", Owner: projectOf(r), CreatedAt: now, UpdatedAt: now}
	if err := b.apply(n); err != nil {
		return nil, err
	}
	// Validate the children before writing anything.
	for _, o := range b.Objects {
		if err := validName("object", str(o["name"]), 80); err != nil {
			return nil, err
		}
	}
	for name, p := range b.Properties {
		if err := validProperty(name, p); err != nil {
			return nil, err
		}
	}
	for _, t := range b.Tags {
		if err := validName("tag", str(t["name"]), 255); err != nil {
			return nil, err
		}
	}
	for _, a := range b.ResourceTypeAssociations {
		if err := validName("resource type", str(a["name"]), 80); err != nil {
			return nil, err
		}
	}
	m := n.view()
	var (
		objs, assocs []*item
		props        = map[string]any{}
		tags         []*item
	)
	err := s.db.InTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		_, err := tx.Exec(ctx, `INSERT INTO metadef_namespaces (`+namespaceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			n.Namespace, n.DisplayName, n.Description, n.Visibility, boolInt(n.Protected), n.Owner, store.FormatTime(now), store.FormatTime(now))
		if store.IsConflict(err) {
			return api.Conflict("Metadata definition namespace=%s already exists.", n.Namespace)
		}
		if err != nil {
			return err
		}
		// Clear leftovers of an earlier namespace of the same name.
		if _, err := tx.Exec(ctx, `DELETE FROM metadef_items WHERE namespace = ?`, n.Namespace); err != nil {
			return err
		}
		for _, a := range b.ResourceTypeAssociations {
			it, err := insertItem(ctx, tx, n.Namespace, kindRTA, str(a["name"]), assocBody(a))
			if err != nil {
				return err
			}
			assocs = append(assocs, it)
		}
		for name, p := range b.Properties {
			delete(p, "name")
			if _, err := insertItem(ctx, tx, n.Namespace, kindProperty, name, p); err != nil {
				return err
			}
			props[name] = p
		}
		for _, o := range b.Objects {
			it, err := insertItem(ctx, tx, n.Namespace, kindObject, str(o["name"]), objectBody(o))
			if err != nil {
				return err
			}
			objs = append(objs, it)
		}
		for _, t := range b.Tags {
			it, err := insertItem(ctx, tx, n.Namespace, kindTag, str(t["name"]), nil)
			if err != nil {
				return err
			}
			tags = append(tags, it)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	addChildren(m, n, objs, props, tags, assocs)
	return api.JSON(http.StatusCreated, m), nil
}

func addChildren(m map[string]any, n *namespace, objs []*item, props map[string]any, tags, assocs []*item) {
	if len(assocs) > 0 {
		m["resource_type_associations"] = assocViews(assocs)
	}
	if len(props) > 0 {
		m["properties"] = props
	}
	if len(objs) > 0 {
		out := make([]any, len(objs))
		for i, o := range objs {
			v := objectView(n.Namespace, o)
			delete(v, "schema")
			delete(v, "self")
			out[i] = v
		}
		m["objects"] = out
	}
	if len(tags) > 0 {
		out := make([]any, len(tags))
		for i, t := range tags {
			out[i] = map[string]any{"name": t.Name}
		}
		m["tags"] = out
	}
}

func (s *Service) showNamespace(r *http.Request) (*api.Response, error) {
	n, err := s.loadNamespace(r)
	if err != nil {
		return nil, err
	}
	m := n.view()
	objs, err := s.items(r, n.Namespace, kindObject)
	if err != nil {
		return nil, err
	}
	propItems, err := s.items(r, n.Namespace, kindProperty)
	if err != nil {
		return nil, err
	}
	tags, err := s.items(r, n.Namespace, kindTag)
	if err != nil {
		return nil, err
	}
	assocs, err := s.items(r, n.Namespace, kindRTA)
	if err != nil {
		return nil, err
	}
	props := map[string]any{}
	for _, p := range propItems {
		props[p.Name] = p.Body
	}
	addChildren(m, n, objs, props, tags, assocs)
	return api.JSON(http.StatusOK, m), nil
}

func (s *Service) updateNamespace(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "modify_metadef_namespace")
	if err != nil {
		return nil, err
	}
	var b nsBody
	if err := decodeJSON(r, &b); err != nil {
		return nil, err
	}
	old := n.Namespace
	if err := b.apply(n); err != nil {
		return nil, err
	}
	n.UpdatedAt = time.Now().UTC()
	err = s.db.InTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		_, err := tx.Exec(ctx, `UPDATE metadef_namespaces SET namespace = ?, display_name = ?, description = ?, visibility = ?,
		protected = ?, owner = ?, updated_at = ? WHERE namespace = ?`,
			n.Namespace, n.DisplayName, n.Description, n.Visibility, boolInt(n.Protected), n.Owner, store.FormatTime(n.UpdatedAt), old)
		if store.IsConflict(err) {
			return api.Conflict("Metadata definition namespace=%s already exists.", n.Namespace)
		}
		if err != nil {
			return err
		}
		if old != n.Namespace {
			if _, err := tx.Exec(ctx, `DELETE FROM metadef_items WHERE namespace = ?`, n.Namespace); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE metadef_items SET namespace = ? WHERE namespace = ?`, n.Namespace, old); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, n.view()), nil
}

func (s *Service) deleteNamespace(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "delete_metadef_namespace")
	if err != nil {
		return nil, err
	}
	if n.Protected {
		return nil, api.Forbidden("Namespace %s is protected and cannot be deleted.", n.Namespace)
	}
	err = s.db.InTx(r.Context(), func(tx *store.Tx) error {
		if _, err := tx.Exec(r.Context(), `DELETE FROM metadef_items WHERE namespace = ?`, n.Namespace); err != nil {
			return err
		}
		_, err := tx.Exec(r.Context(), `DELETE FROM metadef_namespaces WHERE namespace = ?`, n.Namespace)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// ---- objects ----

// objectBody keeps an object's description, required and properties.
func objectBody(in map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"description", "required", "properties"} {
		if v, ok := in[k]; ok && v != nil {
			out[k] = v
		}
	}
	return out
}

func objectView(ns string, it *item) map[string]any {
	m := map[string]any{"name": it.Name, "created_at": glanceTime(it.CreatedAt), "updated_at": glanceTime(it.UpdatedAt),
		"schema": "/v2/schemas/metadefs/object", "self": "/v2/metadefs/namespaces/" + ns + "/objects/" + it.Name}
	for k, v := range it.Body {
		m[k] = v
	}
	if _, ok := m["required"]; !ok {
		m["required"] = []any{}
	}
	if _, ok := m["properties"]; !ok {
		m["properties"] = map[string]any{}
	}
	return m
}

func decodeObject(r *http.Request) (string, map[string]any, error) {
	var b map[string]any
	if err := decodeJSON(r, &b); err != nil {
		return "", nil, err
	}
	name := str(b["name"])
	if err := validName("object", name, 80); err != nil {
		return "", nil, err
	}
	if v, ok := b["required"]; ok && v != nil {
		if _, ok := v.([]any); !ok {
			return "", nil, api.BadRequest("Invalid object: required must be a list.")
		}
	}
	if v, ok := b["properties"]; ok && v != nil {
		if _, ok := v.(map[string]any); !ok {
			return "", nil, api.BadRequest("Invalid object: properties must be an object.")
		}
	}
	return name, objectBody(b), nil
}

func (s *Service) listMetadefObjects(r *http.Request) (*api.Response, error) {
	n, err := s.loadNamespace(r)
	if err != nil {
		return nil, err
	}
	its, err := s.items(r, n.Namespace, kindObject)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(its))
	for i, it := range its {
		out[i] = objectView(n.Namespace, it)
	}
	return api.JSON(http.StatusOK, map[string]any{"objects": out, "schema": "/v2/schemas/metadefs/objects"}), nil
}

func (s *Service) createMetadefObject(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "add_metadef_object")
	if err != nil {
		return nil, err
	}
	name, body, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	it, err := insertItem(r.Context(), s.db, n.Namespace, kindObject, name, body)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, objectView(n.Namespace, it)), nil
}

func (s *Service) showMetadefObject(r *http.Request) (*api.Response, error) {
	n, err := s.loadNamespace(r)
	if err != nil {
		return nil, err
	}
	it, err := s.getItem(r, n.Namespace, kindObject, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, objectView(n.Namespace, it)), nil
}

func (s *Service) updateMetadefObject(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "modify_metadef_object")
	if err != nil {
		return nil, err
	}
	old, err := s.getItem(r, n.Namespace, kindObject, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	name, body, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	it, err := s.replaceItem(r, n.Namespace, kindObject, old, name, body)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, objectView(n.Namespace, it)), nil
}

// ---- properties ----

var propertyTypes = []string{"array", "boolean", "integer", "number", "object", "string"}

func validProperty(name string, p map[string]any) error {
	if err := validName("property", name, 80); err != nil {
		return err
	}
	if str(p["title"]) == "" {
		return api.BadRequest("Invalid property %s: title is required.", name)
	}
	if t := str(p["type"]); !slices.Contains(propertyTypes, t) {
		return api.BadRequest("Invalid property %s: type must be one of %s.", name, strings.Join(propertyTypes, ", "))
	}
	return nil
}

func decodeProperty(r *http.Request) (string, map[string]any, error) {
	var b map[string]any
	if err := decodeJSON(r, &b); err != nil {
		return "", nil, err
	}
	if b == nil {
		b = map[string]any{}
	}
	name := str(b["name"])
	if err := validProperty(name, b); err != nil {
		return "", nil, err
	}
	delete(b, "name")
	return name, b, nil
}

func propertyView(it *item) map[string]any {
	m := map[string]any{"name": it.Name}
	for k, v := range it.Body {
		m[k] = v
	}
	return m
}

func (s *Service) listMetadefProperties(r *http.Request) (*api.Response, error) {
	n, err := s.loadNamespace(r)
	if err != nil {
		return nil, err
	}
	its, err := s.items(r, n.Namespace, kindProperty)
	if err != nil {
		return nil, err
	}
	props := map[string]any{}
	for _, it := range its {
		props[it.Name] = it.Body
	}
	return api.JSON(http.StatusOK, map[string]any{"properties": props}), nil
}

func (s *Service) createMetadefProperty(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "add_metadef_property")
	if err != nil {
		return nil, err
	}
	name, body, err := decodeProperty(r)
	if err != nil {
		return nil, err
	}
	it, err := insertItem(r.Context(), s.db, n.Namespace, kindProperty, name, body)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, propertyView(it)), nil
}

func (s *Service) showMetadefProperty(r *http.Request) (*api.Response, error) {
	n, err := s.loadNamespace(r)
	if err != nil {
		return nil, err
	}
	it, err := s.getItem(r, n.Namespace, kindProperty, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, propertyView(it)), nil
}

func (s *Service) updateMetadefProperty(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "modify_metadef_property")
	if err != nil {
		return nil, err
	}
	old, err := s.getItem(r, n.Namespace, kindProperty, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	name, body, err := decodeProperty(r)
	if err != nil {
		return nil, err
	}
	it, err := s.replaceItem(r, n.Namespace, kindProperty, old, name, body)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, propertyView(it)), nil
}

// ---- tags ----

func tagView(it *item) map[string]any {
	return map[string]any{"name": it.Name, "created_at": glanceTime(it.CreatedAt), "updated_at": glanceTime(it.UpdatedAt)}
}

func (s *Service) listMetadefTags(r *http.Request) (*api.Response, error) {
	n, err := s.loadNamespace(r)
	if err != nil {
		return nil, err
	}
	its, err := s.items(r, n.Namespace, kindTag)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(its))
	for i, it := range its {
		out[i] = tagView(it)
	}
	return api.JSON(http.StatusOK, map[string]any{"tags": out}), nil
}

// createMetadefTags replaces the namespace's tags with the body's list,
// or adds to them with X-Openstack-Append: true, as Glance does.
func (s *Service) createMetadefTags(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "add_metadef_tags")
	if err != nil {
		return nil, err
	}
	var b struct {
		Tags []struct {
			Name string `json:"name"`
		} `json:"tags"`
	}
	if err := decodeJSON(r, &b); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, t := range b.Tags {
		if err := validName("tag", t.Name, 255); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, api.Conflict("Duplicate tag %s in the request.", t.Name)
		}
		seen[t.Name] = true
	}
	out := make([]any, 0, len(b.Tags))
	err = s.db.InTx(r.Context(), func(tx *store.Tx) error {
		if !strings.EqualFold(r.Header.Get("X-Openstack-Append"), "true") {
			if _, err := tx.Exec(r.Context(), `DELETE FROM metadef_items WHERE namespace = ? AND kind = ?`, n.Namespace, kindTag); err != nil {
				return err
			}
		}
		for _, t := range b.Tags {
			if _, err := insertItem(r.Context(), tx, n.Namespace, kindTag, t.Name, nil); err != nil {
				return err
			}
			out = append(out, map[string]any{"name": t.Name})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, map[string]any{"tags": out}), nil
}

func (s *Service) createMetadefTag(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "add_metadef_tag")
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	if err := validName("tag", name, 255); err != nil {
		return nil, err
	}
	it, err := insertItem(r.Context(), s.db, n.Namespace, kindTag, name, nil)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, tagView(it)), nil
}

func (s *Service) showMetadefTag(r *http.Request) (*api.Response, error) {
	n, err := s.loadNamespace(r)
	if err != nil {
		return nil, err
	}
	it, err := s.getItem(r, n.Namespace, kindTag, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, tagView(it)), nil
}

func (s *Service) updateMetadefTag(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "modify_metadef_tag")
	if err != nil {
		return nil, err
	}
	old, err := s.getItem(r, n.Namespace, kindTag, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	var b struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(r, &b); err != nil {
		return nil, err
	}
	if err := validName("tag", b.Name, 255); err != nil {
		return nil, err
	}
	it, err := s.replaceItem(r, n.Namespace, kindTag, old, b.Name, nil)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, tagView(it)), nil
}

// ---- resource types ----

func assocBody(in map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"prefix", "properties_target"} {
		if v := str(in[k]); v != "" {
			out[k] = v
		}
	}
	return out
}

func assocView(it *item) map[string]any {
	m := map[string]any{"name": it.Name, "created_at": glanceTime(it.CreatedAt), "updated_at": glanceTime(it.UpdatedAt)}
	for k, v := range it.Body {
		m[k] = v
	}
	return m
}

func assocViews(its []*item) []any {
	out := make([]any, len(its))
	for i, it := range its {
		out[i] = assocView(it)
	}
	return out
}

func (s *Service) listResourceTypes(r *http.Request) (*api.Response, error) {
	used, err := store.QueryStrings(r.Context(), s.db, `SELECT DISTINCT name FROM metadef_items WHERE kind = ?`, kindRTA)
	if err != nil {
		return nil, err
	}
	names := slices.Clone(metadefResourceTypes)
	extra := []string{}
	for _, u := range used {
		if !slices.Contains(names, u) {
			extra = append(extra, u)
		}
	}
	sort.Strings(extra)
	names = append(names, extra...)
	epoch := glanceTime(time.Unix(0, 0).UTC())
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = map[string]any{"name": n, "created_at": epoch, "updated_at": epoch}
	}
	return api.JSON(http.StatusOK, map[string]any{"resource_types": out}), nil
}

func (s *Service) listAssociations(r *http.Request) (*api.Response, error) {
	n, err := s.loadNamespace(r)
	if err != nil {
		return nil, err
	}
	its, err := s.items(r, n.Namespace, kindRTA)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"resource_type_associations": assocViews(its)}), nil
}

func (s *Service) createAssociation(r *http.Request) (*api.Response, error) {
	n, err := s.loadForWrite(r, "add_metadef_resource_type_association")
	if err != nil {
		return nil, err
	}
	var b map[string]any
	if err := decodeJSON(r, &b); err != nil {
		return nil, err
	}
	name := str(b["name"])
	if err := validName("resource type", name, 80); err != nil {
		return nil, err
	}
	it, err := insertItem(r.Context(), s.db, n.Namespace, kindRTA, name, assocBody(b))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, assocView(it)), nil
}
