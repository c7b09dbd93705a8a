package image

import (
	"net/http"
	"testing"
)

func TestMetadefNamespaces(t *testing.T) {
	h := newHarness(t)
	rts := h.json("admin", "GET", "/v2/metadefs/resource_types", nil, http.StatusOK)["resource_types"].([]any)
	rt := rts[0].(map[string]any)["name"].(string)
	if rt != "OS::Glance::Image" {
		t.Fatalf("first resource type %q", rt)
	}
	ns := h.json("admin", "POST", "/v2/metadefs/namespaces", map[string]any{
		"namespace": "ns1", "visibility": "public", "description": "Tempest", "display_name": "ns1",
		"resource_type_associations": []any{map[string]any{"name": rt}}, "protected": true,
	}, http.StatusCreated)
	if ns["namespace"] != "ns1" || ns["owner"] != projX || ns["protected"] != true {
		t.Fatalf("created %v", ns)
	}
	h.json("admin", "POST", "/v2/metadefs/namespaces", map[string]any{"namespace": "ns1"}, http.StatusConflict)
	h.json("admin", "POST", "/v2/metadefs/namespaces", map[string]any{"namespace": "x", "visibility": "shared"}, http.StatusBadRequest)
	h.json("a", "POST", "/v2/metadefs/namespaces", map[string]any{"namespace": "mine"}, http.StatusForbidden)

	list := h.json("admin", "GET", "/v2/metadefs/namespaces", nil, http.StatusOK)["namespaces"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["namespace"] != "ns1" {
		t.Fatalf("list %v", list)
	}
	got := h.json("a", "GET", "/v2/metadefs/namespaces/ns1", nil, http.StatusOK)
	if got["visibility"] != "public" || len(got["resource_type_associations"].([]any)) != 1 {
		t.Fatalf("show %v", got)
	}
	h.json("admin", "DELETE", "/v2/metadefs/namespaces/ns1", nil, http.StatusForbidden)
	h.json("a", "PUT", "/v2/metadefs/namespaces/ns1", map[string]any{"namespace": "ns1", "protected": false}, http.StatusForbidden)

	up := h.json("admin", "PUT", "/v2/metadefs/namespaces/ns1", map[string]any{
		"namespace": "ns1", "description": "Tempest", "visibility": "private", "display_name": "ns1", "protected": false,
	}, http.StatusOK)
	if up["visibility"] != "private" || up["protected"] != false {
		t.Fatalf("updated %v", up)
	}
	// Private now: hidden from other projects.
	h.json("a", "GET", "/v2/metadefs/namespaces/ns1", nil, http.StatusNotFound)
	if l := h.json("a", "GET", "/v2/metadefs/namespaces", nil, http.StatusOK)["namespaces"].([]any); len(l) != 0 {
		t.Fatalf("project a sees %v", l)
	}
	h.json("a", "DELETE", "/v2/metadefs/namespaces/ns1", nil, http.StatusNotFound)
	h.json("admin", "DELETE", "/v2/metadefs/namespaces/ns1", nil, http.StatusNoContent)
	h.json("admin", "GET", "/v2/metadefs/namespaces/ns1", nil, http.StatusNotFound)
	h.json("admin", "GET", "/v2/metadefs/namespaces/ns1/resource_types", nil, http.StatusNotFound)

	// Re-creating the name starts empty.
	h.json("admin", "POST", "/v2/metadefs/namespaces", map[string]any{"namespace": "ns1"}, http.StatusCreated)
	if got := h.json("admin", "GET", "/v2/metadefs/namespaces/ns1", nil, http.StatusOK); got["resource_type_associations"] != nil || got["visibility"] != "private" {
		t.Fatalf("recreated %v", got)
	}
}

func newNamespace(h *harness, name string) {
	h.t.Helper()
	h.json("admin", "POST", "/v2/metadefs/namespaces", map[string]any{
		"namespace": name, "visibility": "public", "description": "Tempest", "protected": false, "display_name": name,
	}, http.StatusCreated)
}

func TestMetadefObjects(t *testing.T) {
	h := newHarness(t)
	newNamespace(h, "ns")
	base := "/v2/metadefs/namespaces/ns/objects"
	o := h.json("admin", "POST", base, map[string]any{"name": "obj1", "required": []any{"p"},
		"properties": map[string]any{"p": map[string]any{"type": "string", "title": "P"}}}, http.StatusCreated)
	if o["name"] != "obj1" || o["self"] != base+"/obj1" {
		t.Fatalf("created %v", o)
	}
	h.json("admin", "POST", base, map[string]any{"name": "obj1"}, http.StatusConflict)
	h.json("admin", "POST", base, map[string]any{"description": "no name"}, http.StatusBadRequest)
	h.json("b", "POST", base, map[string]any{"name": "obj2"}, http.StatusForbidden)
	if got := h.json("b", "GET", base+"/obj1", nil, http.StatusOK); got["name"] != "obj1" {
		t.Fatalf("show %v", got)
	}
	up := h.json("admin", "PUT", base+"/obj1", map[string]any{"name": "obj-up"}, http.StatusOK)
	if up["name"] != "obj-up" {
		t.Fatalf("update %v", up)
	}
	h.json("admin", "GET", base+"/obj1", nil, http.StatusNotFound)
	objs := h.json("admin", "GET", base, nil, http.StatusOK)["objects"].([]any)
	if len(objs) != 1 || objs[0].(map[string]any)["name"] != "obj-up" {
		t.Fatalf("list %v", objs)
	}
	ns := h.json("admin", "GET", "/v2/metadefs/namespaces/ns", nil, http.StatusOK)
	if len(ns["objects"].([]any)) != 1 {
		t.Fatalf("namespace %v", ns)
	}
	h.json("admin", "DELETE", base+"/obj-up", nil, http.StatusNoContent)
	h.json("admin", "DELETE", base+"/obj-up", nil, http.StatusNotFound)
	if objs := h.json("admin", "GET", base, nil, http.StatusOK)["objects"].([]any); len(objs) != 0 {
		t.Fatalf("after delete %v", objs)
	}
}

func TestMetadefProperties(t *testing.T) {
	h := newHarness(t)
	newNamespace(h, "ns")
	rt := "OS::Glance::Image"
	a := h.json("admin", "POST", "/v2/metadefs/namespaces/ns/resource_types", map[string]any{"name": rt}, http.StatusCreated)
	if a["name"] != rt {
		t.Fatalf("association %v", a)
	}
	base := "/v2/metadefs/namespaces/ns/properties"
	enum := []any{"xen", "qemu", "kvm"}
	p := h.json("admin", "POST", base, map[string]any{"name": rt, "title": "t1", "type": "string", "enum": enum}, http.StatusCreated)
	if p["title"] != "t1" || p["name"] != rt {
		t.Fatalf("created %v", p)
	}
	h.json("admin", "POST", base, map[string]any{"name": "bad", "title": "t", "type": "nope"}, http.StatusBadRequest)
	h.json("admin", "POST", base, map[string]any{"name": "bad", "type": "string"}, http.StatusBadRequest)
	if got := h.json("a", "GET", base+"/"+rt, nil, http.StatusOK); got["name"] != rt || len(got["enum"].([]any)) != 3 {
		t.Fatalf("show %v", got)
	}
	up := h.json("admin", "PUT", base+"/"+rt, map[string]any{"name": rt, "title": "t2", "type": "string", "enum": enum}, http.StatusOK)
	if up["title"] != "t2" {
		t.Fatalf("update %v", up)
	}
	props := h.json("admin", "GET", base, nil, http.StatusOK)["properties"].(map[string]any)
	if props[rt].(map[string]any)["title"] != "t2" {
		t.Fatalf("list %v", props)
	}
	h.json("a", "DELETE", base+"/"+rt, nil, http.StatusForbidden)
	h.json("admin", "DELETE", base+"/"+rt, nil, http.StatusNoContent)
	if props := h.json("admin", "GET", base, nil, http.StatusOK)["properties"].(map[string]any); len(props) != 0 {
		t.Fatalf("after delete %v", props)
	}
}

func TestMetadefTags(t *testing.T) {
	h := newHarness(t)
	newNamespace(h, "ns")
	base := "/v2/metadefs/namespaces/ns/tags"
	tags := []any{map[string]any{"name": "t1"}, map[string]any{"name": "t2"}, map[string]any{"name": "t3"}}
	h.json("admin", "POST", base, map[string]any{"tags": tags}, http.StatusCreated)
	if l := h.json("admin", "GET", base, nil, http.StatusOK)["tags"].([]any); len(l) != 3 {
		t.Fatalf("list %v", l)
	}
	// Without X-Openstack-Append the list replaces the tags.
	h.json("admin", "POST", base, map[string]any{"tags": tags[:1]}, http.StatusCreated)
	if l := h.json("admin", "GET", base, nil, http.StatusOK)["tags"].([]any); len(l) != 1 {
		t.Fatalf("replaced %v", l)
	}
	if got := h.json("admin", "POST", base+"/solo", nil, http.StatusCreated); got["name"] != "solo" {
		t.Fatalf("create one %v", got)
	}
	h.json("admin", "POST", base+"/solo", nil, http.StatusConflict)
	if got := h.json("c", "GET", base+"/solo", nil, http.StatusOK); got["name"] != "solo" {
		t.Fatalf("show %v", got)
	}
	if got := h.json("admin", "PUT", base+"/solo", map[string]any{"name": "renamed"}, http.StatusOK); got["name"] != "renamed" {
		t.Fatalf("update %v", got)
	}
	h.json("admin", "DELETE", base+"/renamed", nil, http.StatusNoContent)
	h.json("admin", "GET", base+"/renamed", nil, http.StatusNotFound)
	h.json("admin", "DELETE", base, nil, http.StatusNoContent)
	if l := h.json("admin", "GET", base, nil, http.StatusOK)["tags"].([]any); len(l) != 0 {
		t.Fatalf("after delete all %v", l)
	}
}

func TestMetadefResourceTypeAssociations(t *testing.T) {
	h := newHarness(t)
	newNamespace(h, "ns")
	base := "/v2/metadefs/namespaces/ns/resource_types"
	h.json("admin", "POST", base, map[string]any{"name": "OS::Nova::Flavor", "prefix": "hw:"}, http.StatusCreated)
	h.json("admin", "POST", base, map[string]any{"name": "OS::Nova::Flavor"}, http.StatusConflict)
	l := h.json("admin", "GET", base, nil, http.StatusOK)["resource_type_associations"].([]any)
	if len(l) != 1 || l[0].(map[string]any)["prefix"] != "hw:" {
		t.Fatalf("list %v", l)
	}
	if got := h.json("admin", "GET", "/v2/metadefs/namespaces?resource_types=OS::Nova::Flavor", nil, http.StatusOK)["namespaces"].([]any); len(got) != 1 {
		t.Fatalf("filtered %v", got)
	}
	h.json("admin", "DELETE", base+"/OS::Nova::Flavor", nil, http.StatusNoContent)
	h.json("admin", "DELETE", base+"/OS::Nova::Flavor", nil, http.StatusNotFound)
	if l := h.json("admin", "GET", base, nil, http.StatusOK)["resource_type_associations"].([]any); len(l) != 0 {
		t.Fatalf("after delete %v", l)
	}
}

func TestMetadefSchemas(t *testing.T) {
	h := newHarness(t)
	for path, name := range map[string]string{
		"namespace": "namespace", "namespaces": "namespaces", "object": "object", "objects": "objects",
		"property": "property", "properties": "properties", "tag": "tag", "tags": "tags",
		"resource_type": "resource_type_association", "resource_types": "resource_type_associations",
	} {
		got := h.json("a", "GET", "/v2/schemas/metadefs/"+path, nil, http.StatusOK)
		if got["name"] != name || got["properties"] == nil {
			t.Errorf("schema %s: %v", path, got)
		}
	}
}

func TestMetadefNamespaceRename(t *testing.T) {
	h := newHarness(t)
	newNamespace(h, "old")
	newNamespace(h, "taken")
	h.json("admin", "POST", "/v2/metadefs/namespaces/old/tags/t", nil, http.StatusCreated)
	h.json("admin", "PUT", "/v2/metadefs/namespaces/old", map[string]any{"namespace": "taken"}, http.StatusConflict)
	h.json("admin", "PUT", "/v2/metadefs/namespaces/old", map[string]any{"namespace": "new"}, http.StatusOK)
	h.json("admin", "GET", "/v2/metadefs/namespaces/old", nil, http.StatusNotFound)
	h.json("admin", "GET", "/v2/metadefs/namespaces/new/tags/t", nil, http.StatusOK)
	// Reads of a public namespace need only a token; writes need admin.
	h.json("ra", "GET", "/v2/metadefs/namespaces/new/tags", nil, http.StatusOK)
	h.json("a", "DELETE", "/v2/metadefs/namespaces/new/tags", nil, http.StatusForbidden)
	h.json("", "GET", "/v2/metadefs/namespaces/new", nil, http.StatusUnauthorized)
}

func TestMetadefNamespaceWithContents(t *testing.T) {
	h := newHarness(t)
	body := map[string]any{
		"namespace": "full", "visibility": "public",
		"properties": map[string]any{"p1": map[string]any{"title": "P1", "type": "integer", "minimum": 0}},
		"objects":    []any{map[string]any{"name": "o1", "description": "d"}},
		"tags":       []any{map[string]any{"name": "t1"}, map[string]any{"name": "t1"}},
	}
	// A duplicate tag fails the whole request and leaves nothing behind.
	h.json("admin", "POST", "/v2/metadefs/namespaces", body, http.StatusConflict)
	h.json("admin", "GET", "/v2/metadefs/namespaces/full", nil, http.StatusNotFound)
	body["tags"] = []any{map[string]any{"name": "t1"}}
	h.json("admin", "POST", "/v2/metadefs/namespaces", body, http.StatusCreated)
	got := h.json("b", "GET", "/v2/metadefs/namespaces/full", nil, http.StatusOK)
	if len(got["objects"].([]any)) != 1 || len(got["tags"].([]any)) != 1 ||
		got["properties"].(map[string]any)["p1"].(map[string]any)["title"] != "P1" {
		t.Fatalf("namespace %v", got)
	}
	h.json("admin", "DELETE", "/v2/metadefs/namespaces/full", nil, http.StatusNoContent)
	h.json("admin", "POST", "/v2/metadefs/namespaces", map[string]any{"namespace": "full"}, http.StatusCreated)
	if got := h.json("admin", "GET", "/v2/metadefs/namespaces/full", nil, http.StatusOK); got["objects"] != nil || got["tags"] != nil {
		t.Fatalf("recreated %v", got)
	}
}
