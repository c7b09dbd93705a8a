package volume_test

import "testing"

// TestVolumeTypes: __DEFAULT__ always exists and cannot go; admins
// create, update and delete types, their extra specs and access; a type
// in use cannot be deleted; private types are seen by the projects they
// are shared with.
func TestVolumeTypes(t *testing.T) {
	h := newHarness(t)
	types := h.json("a", "GET", path("a", "/types"), nil, 200)["volume_types"].([]any)
	if len(types) != 1 || types[0].(map[string]any)["name"] != "__DEFAULT__" {
		t.Fatalf("types %v", types)
	}
	var def volumeTypeResp
	h.strict("a", "GET", path("a", "/types/default"), nil, 200, &def)
	h.fail("admin", "DELETE", path("admin", "/types/"+def.VolumeType.ID), nil, 400)

	h.fail("a", "POST", path("a", "/types"), map[string]any{"volume_type": map[string]any{"name": "gold"}}, 403)
	var gold volumeTypeCreatedResp
	h.strict("admin", "POST", path("admin", "/types"), map[string]any{"volume_type": map[string]any{"name": "gold", "description": "fast", "extra_specs": map[string]any{"tier": "1"}}}, 200, &gold)
	if gold.VolumeType.ExtraSpecs["tier"] != "1" || !gold.VolumeType.IsPublic {
		t.Fatalf("gold %+v", gold)
	}
	h.fail("admin", "POST", path("admin", "/types"), map[string]any{"volume_type": map[string]any{"name": "gold"}}, 409)
	h.fail("admin", "POST", path("admin", "/types"), map[string]any{"volume_type": map[string]any{"name": ""}}, 400)
	tp := path("admin", "/types/"+gold.VolumeType.ID)
	h.json("admin", "POST", tp+"/extra_specs", map[string]any{"extra_specs": map[string]string{"a": "b"}}, 200)
	if specs := h.json("admin", "GET", tp+"/extra_specs", nil, 200)["extra_specs"].(map[string]any); len(specs) != 2 {
		t.Fatalf("specs %v", specs)
	}
	if v := h.json("admin", "PUT", tp+"/extra_specs/a", map[string]any{"a": "c"}, 200); v["a"] != "c" {
		t.Fatalf("spec update %v", v)
	}
	h.fail("admin", "PUT", tp+"/extra_specs/a", map[string]any{"b": "c"}, 400)
	h.json("admin", "DELETE", tp+"/extra_specs/a", nil, 202)
	h.fail("admin", "GET", tp+"/extra_specs/a", nil, 404)
	var upd volumeTypeUpdatedResp
	h.strict("admin", "PUT", tp, map[string]any{"volume_type": map[string]any{"description": "faster"}}, 200, &upd)
	if *upd.VolumeType.Description != "faster" || upd.VolumeType.Name != "gold" {
		t.Fatalf("update %+v", upd)
	}

	// By name or id; in use it cannot be deleted.
	v := h.createVolume("a", map[string]any{"size": 1, "volume_type": "gold"}, "available")
	if v["volume_type"] != "gold" {
		t.Fatalf("volume type %v", v["volume_type"])
	}
	h.fail("admin", "DELETE", tp, nil, 400)
	h.json("a", "DELETE", path("a", "/volumes/"+v["id"].(string)), nil, 202)
	h.waitGone("a", path("a", "/volumes/"+v["id"].(string)))
	h.json("admin", "DELETE", tp, nil, 202)
	h.fail("admin", "GET", tp, nil, 404)

	// Private types and access.
	var priv volumeTypeCreatedResp
	h.strict("admin", "POST", path("admin", "/types"), map[string]any{"volume_type": map[string]any{"name": "secret", "os-volume-type-access:is_public": false}}, 200, &priv)
	pp := path("admin", "/types/"+priv.VolumeType.ID)
	h.fail("a", "GET", path("a", "/types/"+priv.VolumeType.ID), nil, 404)
	h.fail("a", "POST", path("a", "/volumes"), map[string]any{"volume": map[string]any{"size": 1, "volume_type": "secret"}}, 404)
	h.json("admin", "POST", pp+"/action", map[string]any{"addProjectAccess": map[string]any{"project": projA}}, 202)
	h.fail("admin", "POST", pp+"/action", map[string]any{"addProjectAccess": map[string]any{"project": projA}}, 409)
	acc := h.json("admin", "GET", pp+"/os-volume-type-access", nil, 200)["volume_type_access"].([]any)
	if len(acc) != 1 || acc[0].(map[string]any)["project_id"] != projA {
		t.Fatalf("access %v", acc)
	}
	var shown volumeTypeResp
	h.strict("a", "GET", path("a", "/types/"+priv.VolumeType.ID), nil, 200, &shown)
	if shown.VolumeType.IsPublic || shown.VolumeType.Name != "secret" {
		t.Fatalf("shared type %+v", shown)
	}
	if n := len(h.json("a", "GET", path("a", "/types"), nil, 200)["volume_types"].([]any)); n != 2 {
		t.Fatalf("a sees %d types", n)
	}
	h.createVolume("a", map[string]any{"size": 1, "volume_type": priv.VolumeType.ID}, "available")
	h.json("admin", "POST", pp+"/action", map[string]any{"removeProjectAccess": map[string]any{"project": projA}}, 202)
	h.fail("admin", "POST", pp+"/action", map[string]any{"removeProjectAccess": map[string]any{"project": projA}}, 404)
	if n := len(h.json("admin", "GET", path("admin", "/types?is_public=None"), nil, 200)["volume_types"].([]any)); n != 2 {
		t.Fatalf("admin sees %d types", n)
	}
}
