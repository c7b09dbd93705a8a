package image

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func ids(body map[string]any) []string {
	var out []string
	for _, im := range body["images"].([]any) {
		out = append(out, im.(map[string]any)["id"].(string))
	}
	return out
}

func TestVersions(t *testing.T) {
	h := newHarness(t)
	body := h.json("", "GET", "/", nil, http.StatusMultipleChoices)
	vs := body["versions"].([]any)
	top := vs[0].(map[string]any)
	if top["id"] != "v2.16" || top["status"] != "CURRENT" || len(vs) != 17 {
		t.Fatalf("versions %v", body)
	}
	h.json("", "GET", "/versions", nil, http.StatusOK)
}

func TestCreateShowDefaults(t *testing.T) {
	h := newHarness(t)
	im := h.create("a", map[string]any{"name": "cirros", "disk_format": "qcow2", "container_format": "bare",
		"min_ram": 64, "tags": []string{"x", "y"}, "os_distro": "cirros"})
	if im["status"] != "queued" || im["visibility"] != "shared" || im["owner"] != projA || im["os_distro"] != "cirros" ||
		im["protected"] != false || im["size"] != nil || im["self"] != "/v2/images/"+im["id"].(string) || len(im["tags"].([]any)) != 2 {
		t.Fatalf("created %v", im)
	}
	got := h.json("a", "GET", "/v2/images/"+im["id"].(string), nil, http.StatusOK)
	if got["name"] != "cirros" || got["min_ram"] != float64(64) {
		t.Fatalf("show %v", got)
	}
	// Explicit id, then a duplicate.
	id := "6f3e9e35-6f1a-4a5c-9f59-6a1a8c1c1c1c"
	h.create("a", map[string]any{"id": id})
	h.json("a", "POST", "/v2/images", map[string]any{"id": id}, http.StatusConflict)

	h.json("a", "POST", "/v2/images", map[string]any{"disk_format": "floppy"}, http.StatusBadRequest)
	h.json("a", "POST", "/v2/images", map[string]any{"container_format": "box"}, http.StatusBadRequest)
	h.json("a", "POST", "/v2/images", map[string]any{"status": "active"}, http.StatusForbidden)
	h.json("a", "POST", "/v2/images", map[string]any{"os_glance_foo": "bar"}, http.StatusForbidden)
	h.json("a", "POST", "/v2/images", map[string]any{"visibility": "public"}, http.StatusForbidden)
	h.json("a", "POST", "/v2/images", map[string]any{"owner": projB}, http.StatusForbidden)
	h.json("a", "POST", "/v2/images", map[string]any{"owner": projA}, http.StatusCreated)
	if im := h.json("admin", "POST", "/v2/images", map[string]any{"owner": projB}, http.StatusCreated); im["owner"] != projB {
		t.Fatalf("admin-created image for B: %v", im)
	}
	h.json("admin", "POST", "/v2/images", map[string]any{"visibility": "public"}, http.StatusCreated)
	h.json("a", "GET", "/v2/images/not-a-uuid", nil, http.StatusNotFound)
	h.json("a", "GET", "/v2/images/00000000-0000-0000-0000-000000000000", nil, http.StatusNotFound)
	h.json("", "GET", "/v2/images", nil, http.StatusUnauthorized)
	h.json("a", "GET", "/v2/images/", nil, http.StatusNotFound)
	h.json("a", "DELETE", "/v2/images/", nil, http.StatusNotFound)
	// Ids are UUIDs whatever their case.
	h.json("a", "GET", "/v2/images/"+strings.ToUpper(im["id"].(string)), nil, http.StatusOK)
	// Errors come in Glance's shape.
	e := h.json("a", "GET", "/v2/images/"+id+"x", nil, http.StatusNotFound)
	if e["code"] != "404 Not Found" || e["title"] != "Not Found" || e["message"] == "" {
		t.Fatalf("error body %v", e)
	}
}

func TestListFilterSortPaginate(t *testing.T) {
	h := newHarness(t)
	var created []string
	for i, name := range []string{"c", "a", "b", "d", "e"} {
		fmt := []string{"raw", "qcow2"}[i%2]
		im := h.create("a", map[string]any{"name": name, "disk_format": fmt, "container_format": "bare", "tags": []string{"t" + name}})
		created = append(created, im["id"].(string))
	}
	body := h.json("a", "GET", "/v2/images", nil, http.StatusOK)
	if body["schema"] != "/v2/schemas/images" || body["first"] != "/v2/images" || len(ids(body)) != 5 {
		t.Fatalf("list %v", body)
	}
	// Default order: newest first.
	if got := ids(body); got[0] != created[4] {
		t.Fatalf("default order %v, created %v", got, created)
	}
	body = h.json("a", "GET", "/v2/images?sort_key=name&sort_dir=asc", nil, http.StatusOK)
	names := []string{}
	for _, im := range body["images"].([]any) {
		names = append(names, im.(map[string]any)["name"].(string))
	}
	if strings.Join(names, "") != "abcde" {
		t.Fatalf("sorted %v", names)
	}
	body = h.json("a", "GET", "/v2/images?sort=name:desc", nil, http.StatusOK)
	if body["images"].([]any)[0].(map[string]any)["name"] != "e" {
		t.Fatalf("sort=name:desc %v", body)
	}
	h.json("a", "GET", "/v2/images?sort_key=bogus", nil, http.StatusBadRequest)

	if n := len(ids(h.json("a", "GET", "/v2/images?disk_format=raw", nil, http.StatusOK))); n != 3 {
		t.Fatalf("disk_format=raw: %d", n)
	}
	if got := ids(h.json("a", "GET", "/v2/images?name=b", nil, http.StatusOK)); len(got) != 1 || got[0] != created[2] {
		t.Fatalf("name=b: %v", got)
	}
	if got := ids(h.json("a", "GET", "/v2/images?tag=td", nil, http.StatusOK)); len(got) != 1 || got[0] != created[3] {
		t.Fatalf("tag=td: %v", got)
	}
	if n := len(ids(h.json("a", "GET", "/v2/images?status=active", nil, http.StatusOK))); n != 0 {
		t.Fatalf("status=active: %d", n)
	}
	if n := len(ids(h.json("a", "GET", "/v2/images?disk_format=in:raw,qcow2&container_format=bare", nil, http.StatusOK))); n != 5 {
		t.Fatalf("disk_format=in:raw,qcow2: %d", n)
	}
	// Hidden images are listed only when asked for.
	h.patch("a", created[0], []map[string]any{{"op": "replace", "path": "/os_hidden", "value": true}}, http.StatusOK)
	if n := len(ids(h.json("a", "GET", "/v2/images", nil, http.StatusOK))); n != 4 {
		t.Fatalf("hidden image listed: %d", n)
	}
	if got := ids(h.json("a", "GET", "/v2/images?os_hidden=true", nil, http.StatusOK)); !slices.Equal(got, []string{created[0]}) {
		t.Fatalf("os_hidden=true: %v", got)
	}
	h.patch("a", created[0], []map[string]any{{"op": "replace", "path": "/os_hidden", "value": false}}, http.StatusOK)

	// Pages of two, following next links.
	var all []string
	next := "/v2/images?limit=2&sort_key=name&sort_dir=asc"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		body := h.json("a", "GET", next, nil, http.StatusOK)
		all = append(all, ids(body)...)
		next, _ = body["next"].(string)
		if next != "" {
			u, _ := url.Parse(next)
			if u.Path != "/v2/images" || u.Query().Get("marker") == "" {
				t.Fatalf("next link %q", next)
			}
		}
	}
	if len(all) != 5 || all[0] != created[1] {
		t.Fatalf("paged %v", all)
	}
	h.json("a", "GET", "/v2/images?marker=00000000-0000-0000-0000-000000000000", nil, http.StatusBadRequest)
}

func TestPatch(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "old", "extra": "1"})["id"].(string)
	got := h.patch("a", id, []map[string]any{
		{"op": "replace", "path": "/name", "value": "new"},
		{"op": "add", "path": "/color", "value": "blue"},
		{"op": "remove", "path": "/extra"},
		{"op": "replace", "path": "/min_disk", "value": 3},
		{"op": "replace", "path": "/protected", "value": true},
	}, http.StatusOK)
	if got["name"] != "new" || got["color"] != "blue" || got["extra"] != nil || got["min_disk"] != float64(3) || got["protected"] != true {
		t.Fatalf("patched %v", got)
	}
	h.patch("a", id, []map[string]any{{"op": "replace", "path": "/status", "value": "active"}}, http.StatusForbidden)
	h.patch("a", id, []map[string]any{{"op": "add", "path": "/checksum", "value": "x"}}, http.StatusForbidden)
	h.patch("a", id, []map[string]any{{"op": "remove", "path": "/name"}}, http.StatusForbidden)
	h.patch("a", id, []map[string]any{{"op": "remove", "path": "/nothing"}}, http.StatusConflict)
	h.patch("a", id, []map[string]any{{"op": "replace", "path": "/visibility", "value": "public"}}, http.StatusForbidden)
	h.patch("a", id, []map[string]any{{"op": "replace", "path": "/visibility", "value": "private"}}, http.StatusOK)
	h.patch("a", id, []map[string]any{{"op": "move", "path": "/name"}}, http.StatusBadRequest)
	h.json("a", "PATCH", "/v2/images/"+id, []map[string]any{{"op": "replace", "path": "/name", "value": "x"}}, http.StatusUnsupportedMediaType)
	// Another project cannot see a private image, so it cannot patch it.
	h.patch("b", id, []map[string]any{{"op": "replace", "path": "/name", "value": "x"}}, http.StatusNotFound)

	// Protected images are not deletable until unprotected.
	h.json("a", "DELETE", "/v2/images/"+id, nil, http.StatusForbidden)
	h.patch("a", id, []map[string]any{{"op": "replace", "path": "/protected", "value": false}}, http.StatusOK)
	h.json("a", "DELETE", "/v2/images/"+id, nil, http.StatusNoContent)
	h.json("a", "GET", "/v2/images/"+id, nil, http.StatusNotFound)
	h.json("a", "DELETE", "/v2/images/"+id, nil, http.StatusNotFound)
}

func TestTags(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "t"})["id"].(string)
	h.json("a", "PUT", "/v2/images/"+id+"/tags/blue", nil, http.StatusNoContent)
	h.json("a", "PUT", "/v2/images/"+id+"/tags/blue", nil, http.StatusNoContent)
	got := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)
	if tags := got["tags"].([]any); len(tags) != 1 || tags[0] != "blue" {
		t.Fatalf("tags %v", tags)
	}
	h.json("a", "DELETE", "/v2/images/"+id+"/tags/blue", nil, http.StatusNoContent)
	h.json("a", "DELETE", "/v2/images/"+id+"/tags/blue", nil, http.StatusNotFound)
	h.json("b", "PUT", "/v2/images/"+id+"/tags/x", nil, http.StatusNotFound)
}

func TestVisibility(t *testing.T) {
	h := newHarness(t)
	priv := h.create("a", map[string]any{"name": "priv", "visibility": "private"})["id"].(string)
	shared := h.create("a", map[string]any{"name": "shared"})["id"].(string)
	comm := h.create("a", map[string]any{"name": "comm", "visibility": "community"})["id"].(string)
	pub := h.create("admin", map[string]any{"name": "pub", "visibility": "public"})["id"].(string)

	h.json("b", "GET", "/v2/images/"+priv, nil, http.StatusNotFound)
	h.json("b", "GET", "/v2/images/"+shared, nil, http.StatusNotFound)
	h.json("b", "GET", "/v2/images/"+comm, nil, http.StatusOK)
	h.json("b", "GET", "/v2/images/"+pub, nil, http.StatusOK)
	h.json("admin", "GET", "/v2/images/"+priv, nil, http.StatusOK)

	if got := ids(h.json("b", "GET", "/v2/images", nil, http.StatusOK)); !slices.Equal(got, []string{pub}) {
		t.Fatalf("b lists %v", got)
	}
	if got := ids(h.json("b", "GET", "/v2/images?visibility=community", nil, http.StatusOK)); !slices.Equal(got, []string{comm}) {
		t.Fatalf("b lists community %v", got)
	}
	if got := ids(h.json("a", "GET", "/v2/images", nil, http.StatusOK)); len(got) != 4 {
		t.Fatalf("a lists %v", got)
	}
	// A reader of the owning project looks but does not touch.
	h.json("ra", "GET", "/v2/images/"+priv, nil, http.StatusOK)
	h.json("ra", "POST", "/v2/images", map[string]any{"name": "r"}, http.StatusForbidden)
	h.patch("ra", priv, []map[string]any{{"op": "replace", "path": "/name", "value": "x"}}, http.StatusForbidden)
	h.json("ra", "DELETE", "/v2/images/"+priv, nil, http.StatusForbidden)
	// Others may not change or delete an image they can see.
	h.patch("b", pub, []map[string]any{{"op": "replace", "path": "/name", "value": "x"}}, http.StatusForbidden)
	h.json("b", "DELETE", "/v2/images/"+comm, nil, http.StatusForbidden)
}

func TestMembers(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "shared"})["id"].(string)
	priv := h.create("a", map[string]any{"name": "priv", "visibility": "private"})["id"].(string)
	h.json("a", "POST", "/v2/images/"+priv+"/members", map[string]any{"member": projB}, http.StatusForbidden)

	m := h.json("a", "POST", "/v2/images/"+id+"/members", map[string]any{"member": projB}, http.StatusOK)
	if m["status"] != "pending" || m["member_id"] != projB || m["image_id"] != id || m["schema"] != "/v2/schemas/member" {
		t.Fatalf("member %v", m)
	}
	h.json("a", "POST", "/v2/images/"+id+"/members", map[string]any{"member": projB}, http.StatusConflict)
	h.json("a", "POST", "/v2/images/"+id+"/members", map[string]any{"member": projC}, http.StatusOK)

	// A pending member sees the image but does not list it.
	h.json("b", "GET", "/v2/images/"+id, nil, http.StatusOK)
	if got := ids(h.json("b", "GET", "/v2/images", nil, http.StatusOK)); len(got) != 0 {
		t.Fatalf("pending member lists %v", got)
	}
	if got := ids(h.json("b", "GET", "/v2/images?member_status=pending", nil, http.StatusOK)); !slices.Equal(got, []string{id}) {
		t.Fatalf("member_status=pending lists %v", got)
	}
	// Only the member accepts; the owner cannot do it for it.
	h.json("a", "PUT", "/v2/images/"+id+"/members/"+projB, map[string]any{"status": "accepted"}, http.StatusForbidden)
	h.json("b", "PUT", "/v2/images/"+id+"/members/"+projB, map[string]any{"status": "bogus"}, http.StatusBadRequest)
	got := h.json("b", "PUT", "/v2/images/"+id+"/members/"+projB, map[string]any{"status": "accepted"}, http.StatusOK)
	if got["status"] != "accepted" {
		t.Fatalf("accepted %v", got)
	}
	if got := ids(h.json("b", "GET", "/v2/images", nil, http.StatusOK)); !slices.Equal(got, []string{id}) {
		t.Fatalf("accepted member lists %v", got)
	}
	// The owner lists all members, a member only itself.
	if n := len(h.json("a", "GET", "/v2/images/"+id+"/members", nil, http.StatusOK)["members"].([]any)); n != 2 {
		t.Fatalf("owner sees %d members", n)
	}
	if n := len(h.json("b", "GET", "/v2/images/"+id+"/members", nil, http.StatusOK)["members"].([]any)); n != 1 {
		t.Fatalf("member sees %d members", n)
	}
	h.json("b", "GET", "/v2/images/"+id+"/members/"+projC, nil, http.StatusNotFound)
	h.json("c", "GET", "/v2/images/"+id+"/members/"+projC, nil, http.StatusOK)
	h.json("b", "DELETE", "/v2/images/"+id+"/members/"+projB, nil, http.StatusForbidden)
	h.json("a", "DELETE", "/v2/images/"+id+"/members/"+projB, nil, http.StatusNoContent)
	h.json("b", "GET", "/v2/images/"+id, nil, http.StatusNotFound)
}

func TestSchemasAndInfo(t *testing.T) {
	h := newHarness(t)
	for _, name := range []string{"image", "images", "member", "members"} {
		body := h.json("a", "GET", "/v2/schemas/"+name, nil, http.StatusOK)
		if body["name"] != name || body["properties"] == nil {
			t.Fatalf("schema %s: %v", name, body)
		}
	}
	props := h.json("a", "GET", "/v2/schemas/image", nil, http.StatusOK)["properties"].(map[string]any)
	for _, k := range []string{"id", "name", "status", "visibility", "os_hash_value", "os_hidden", "disk_format"} {
		if props[k] == nil {
			t.Errorf("image schema lacks %s", k)
		}
	}
	stores := h.json("a", "GET", "/v2/info/stores", nil, http.StatusOK)["stores"].([]any)
	if len(stores) != 1 || stores[0].(map[string]any)["id"] != "file" || stores[0].(map[string]any)["default"] != "true" {
		t.Fatalf("stores %v", stores)
	}
	h.json("a", "GET", "/v2/info/import", nil, http.StatusOK)
	h.json("a", "GET", "/v2/info/usage", nil, http.StatusOK)
}

// Errors follow the Accept header as webob's do: JSON for clients that
// ask for it (openstacksdk), plain text otherwise (glanceclient).
func TestErrorNegotiation(t *testing.T) {
	h := newHarness(t)
	missing := "/v2/images/" + projA[:8] + "-0000-0000-0000-000000000000"
	status, hdr, body := h.do("a", "GET", missing, nil, "Accept", "application/json")
	var m map[string]any
	if status != http.StatusNotFound || json.Unmarshal(body, &m) != nil || m["code"] != "404 Not Found" || m["message"] == nil {
		t.Fatalf("JSON error: %d %s %s", status, hdr.Get("Content-Type"), body)
	}
	status, hdr, body = h.do("a", "GET", missing, nil)
	if status != http.StatusNotFound || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") ||
		!strings.HasPrefix(string(body), "404 Not Found\n\n") || !strings.Contains(string(body), "No image found") {
		t.Fatalf("plain error: %d %s %q", status, hdr.Get("Content-Type"), body)
	}
}
