package volume_test

import (
	"net/url"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/volume"
)

// Each test here asks at 3.N-1 and at 3.N and checks that only the
// latter has the change of 3.N (Cinder's rest_api_version_history).

// TestMicroversion3_1UploadVisibility: visibility and protected reach
// the image service only from 3.1.
func TestMicroversion3_1UploadVisibility(t *testing.T) {
	h := newHarness(t)
	id := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	upload := map[string]any{"os-volume_upload_image": map[string]any{"image_name": "img", "visibility": "public", "protected": true}}
	for i, v := range []string{"3.0", "3.1"} {
		h.json("a", "POST", path("a", "/volumes/"+id+"/action"), upload, 202, mv(v))
		h.waitVolume("a", id, "available")
		h.images.mu.Lock()
		got := h.images.created[i]
		h.images.mu.Unlock()
		want := v == "3.1"
		if (got.Visibility == "public") != want || got.Protected != want {
			t.Fatalf("at %s the image was created with %+v", v, got)
		}
	}
}

// TestMicroversion3_2BootableFilter: before 3.2 only "false"/"False" mean
// non-bootable; from 3.2 the filter is a strict boolean.
func TestMicroversion3_2BootableFilter(t *testing.T) {
	h := newHarness(t)
	h.createVolume("a", map[string]any{"size": 1}, "available")
	count := func(filter, v string) int {
		return len(h.json("a", "GET", path("a", "/volumes?bootable="+filter), nil, 200, mv(v))["volumes"].([]any))
	}
	for _, c := range []struct {
		filter, version string
		want            int
	}{{"False", "3.1", 1}, {"0", "3.1", 0}, {"maybe", "3.1", 0}, {"0", "3.2", 1}, {"no", "3.2", 1}, {"true", "3.2", 0}} {
		if got := count(c.filter, c.version); got != c.want {
			t.Fatalf("bootable=%s at %s: %d volumes, want %d", c.filter, c.version, got, c.want)
		}
	}
	h.fail("a", "GET", path("a", "/volumes?bootable=maybe"), nil, 400, mv("3.2"))
}

// TestMicroversion3_3Messages: a volume that no storage host could take
// leaves a message for its project from 3.3; 3.5 pages the list.
func TestMicroversion3_3Messages(t *testing.T) {
	h := newBareHarness(t, testDB(t))
	vol := h.json("a", "POST", path("a", "/volumes"), map[string]any{"volume": map[string]any{"size": 1}}, 202)["volume"].(map[string]any)["id"].(string)
	h.waitVolume("a", vol, "error")
	h.fail("a", "GET", path("a", "/messages"), nil, 404, mv("3.2"))
	msgs := h.json("a", "GET", path("a", "/messages"), nil, 200, mv("3.3"))["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("messages %v", msgs)
	}
	m := msgs[0].(map[string]any)
	if m["event_id"] != "VOLUME_VOLUME_001_003" || m["resource_uuid"] != vol || m["resource_type"] != "VOLUME" || m["message_level"] != "ERROR" ||
		m["user_message"] != "schedule allocate volume:Could not find any available weighted backend." || m["request_id"] == nil ||
		m["guaranteed_until"] == nil || len(m["links"].([]any)) != 2 {
		t.Fatalf("message %v", m)
	}
	if n := len(h.json("b", "GET", path("b", "/messages"), nil, 200, mv("3.3"))["messages"].([]any)); n != 0 {
		t.Fatalf("project b sees %d messages", n)
	}
	h.fail("b", "GET", path("b", "/messages/"+m["id"].(string)), nil, 404, mv("3.3"))
	// limit and filters are ignored before 3.5 and honoured from it.
	if n := len(h.json("a", "GET", path("a", "/messages?limit=0"), nil, 200, mv("3.4"))["messages"].([]any)); n != 1 {
		t.Fatalf("limit=0 at 3.4: %d messages", n)
	}
	if n := len(h.json("a", "GET", path("a", "/messages?limit=0"), nil, 200, mv("3.5"))["messages"].([]any)); n != 0 {
		t.Fatalf("limit=0 at 3.5: %d messages", n)
	}
	if n := len(h.json("a", "GET", path("a", "/messages?event_id=VOLUME_VOLUME_001_002"), nil, 200, mv("3.5"))["messages"].([]any)); n != 0 {
		t.Fatalf("event_id filter at 3.5: %d messages", n)
	}
	h.json("a", "GET", path("a", "/messages/"+m["id"].(string)), nil, 200, mv("3.3"))
	status, _, _ := h.do("a", "DELETE", path("a", "/messages/"+m["id"].(string)), nil, mv("3.3"))
	if status != 204 {
		t.Fatalf("delete message: %d", status)
	}
	h.fail("a", "GET", path("a", "/messages/"+m["id"].(string)), nil, 404, mv("3.3"))
}

// TestMicroversion3_4GlanceMetadataFilter: glance_metadata filters on
// volume_image_metadata from 3.4 and is ignored before.
func TestMicroversion3_4GlanceMetadataFilter(t *testing.T) {
	h := newHarness(t)
	h.createVolume("a", map[string]any{"size": 1, "imageRef": imageActive}, "available")
	h.createVolume("a", map[string]any{"size": 1}, "available")
	count := func(filter, v string) int {
		return len(h.json("a", "GET", path("a", "/volumes/detail?glance_metadata="+url.QueryEscape(filter)), nil, 200, mv(v))["volumes"].([]any))
	}
	if n := count("{'image_id': 'other'}", "3.3"); n != 2 {
		t.Fatalf("3.3: %d volumes", n)
	}
	if n := count("{'image_id': 'other'}", "3.4"); n != 0 {
		t.Fatalf("3.4 non-matching: %d volumes", n)
	}
	if n := count("{'image_id': '"+imageActive+"'}", "3.4"); n != 1 {
		t.Fatalf("3.4 matching: %d volumes", n)
	}
}

// TestMicroversion3_7Clusters: os-services rows carry cluster from 3.7,
// and /clusters exists (empty: no service is clustered).
func TestMicroversion3_7Clusters(t *testing.T) {
	h := newHarness(t)
	for _, v := range []string{"3.6", "3.7"} {
		svcs := h.json("admin", "GET", path("admin", "/os-services"), nil, 200, mv(v))["services"].([]any)
		for _, s := range svcs {
			c, ok := s.(map[string]any)["cluster"]
			if ok != (v == "3.7") || c != nil {
				t.Fatalf("at %s service %v", v, s)
			}
		}
	}
	h.fail("admin", "GET", path("admin", "/clusters"), nil, 404, mv("3.6"))
	for _, p := range []string{"/clusters", "/clusters/detail"} {
		if cs := h.json("admin", "GET", path("admin", p), nil, 200, mv("3.7"))["clusters"].([]any); len(cs) != 0 {
			t.Fatalf("%s: %v", p, cs)
		}
	}
	h.fail("a", "GET", path("a", "/clusters"), nil, 403, mv("3.7"))
	h.fail("admin", "GET", path("admin", "/clusters/c1"), nil, 404, mv("3.7"))
	h.fail("admin", "PUT", path("admin", "/clusters/enable"), map[string]any{"name": "c1"}, 404, mv("3.7"))
	h.fail("admin", "PUT", path("admin", "/clusters/disable"), map[string]any{"binary": "cinder-volume"}, 400, mv("3.7"))
}

// TestMicroversion3_8Manageable: the manageable listings need a known
// host from 3.8, and list nothing.
func TestMicroversion3_8Manageable(t *testing.T) {
	h := newHarness(t)
	h.fail("admin", "GET", path("admin", "/manageable_volumes?host=stor1"), nil, 404, mv("3.7"))
	h.fail("admin", "GET", path("admin", "/manageable_volumes"), nil, 400, mv("3.8"))
	h.fail("admin", "GET", path("admin", "/manageable_snapshots/detail?host=nowhere"), nil, 404, mv("3.8"))
	h.fail("a", "GET", path("a", "/manageable_volumes?host=stor1"), nil, 403, mv("3.8"))
	for p, key := range map[string]string{"/manageable_volumes?host=stor1@file": "manageable-volumes", "/manageable_snapshots/detail?host=stor1": "manageable-snapshots"} {
		if got := h.json("admin", "GET", path("admin", p), nil, 200, mv("3.8"))[key].([]any); len(got) != 0 {
			t.Fatalf("%s: %v", p, got)
		}
	}
}

// TestMicroversion3_9BackupUpdate: PUT /backups/{id} renames from 3.9.
func TestMicroversion3_9BackupUpdate(t *testing.T) {
	h := newHarness(t)
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	id := h.createBackup("a", map[string]any{"volume_id": vol, "name": "old"})
	h.waitBackup("a", id, "available")
	h.fail("a", "PUT", path("a", "/backups/"+id), map[string]any{"backup": map[string]any{"name": "new"}}, 404, mv("3.8"))
	got := h.json("a", "PUT", path("a", "/backups/"+id), map[string]any{"backup": map[string]any{"name": "new", "description": "d"}}, 200, mv("3.9"))["backup"].(map[string]any)
	if got["id"] != id || got["name"] != "new" || len(got["links"].([]any)) != 2 || len(got) != 3 {
		t.Fatalf("update answer %v", got)
	}
	if b := h.waitBackup("a", id, "available"); b.Name == nil || *b.Name != "new" || b.Description == nil || *b.Description != "d" {
		t.Fatalf("backup after update %+v", b)
	}
	h.fail("a", "PUT", path("a", "/backups/"+id), map[string]any{"backup": map[string]any{"size": 2}}, 400, mv("3.9"))
	h.fail("b", "PUT", path("b", "/backups/"+id), map[string]any{"backup": map[string]any{"name": "x"}}, 404, mv("3.9"))
}

// TestMicroversion3_10GroupFilter: group_id filters volumes from 3.10;
// no volume is in a group.
func TestMicroversion3_10GroupFilter(t *testing.T) {
	h := newHarness(t)
	h.createVolume("a", map[string]any{"size": 1}, "available")
	q := "/volumes?group_id=8e8e8e8e-8e8e-48e8-88e8-8e8e8e8e8e8e"
	if n := len(h.json("a", "GET", path("a", q), nil, 200, mv("3.9"))["volumes"].([]any)); n != 1 {
		t.Fatalf("3.9: %d volumes", n)
	}
	if n := len(h.json("a", "GET", path("a", q), nil, 200, mv("3.10"))["volumes"].([]any)); n != 0 {
		t.Fatalf("3.10: %d volumes", n)
	}
}

// TestMicroversion3_11GroupTypes: group types and their specs from 3.11;
// admins manage them, others see the public ones.
func TestMicroversion3_11GroupTypes(t *testing.T) {
	h := newHarness(t)
	body := map[string]any{"group_type": map[string]any{"name": "gt1", "description": "d", "is_public": true,
		"group_specs": map[string]any{"consistent_group_snapshot_enabled": "<is> False"}}}
	h.fail("admin", "POST", path("admin", "/group_types"), body, 404, mv("3.10"))
	h.fail("a", "POST", path("a", "/group_types"), body, 403, mv("3.11"))
	gt := h.json("admin", "POST", path("admin", "/group_types"), body, 202, mv("3.11"))["group_type"].(map[string]any)
	id := gt["id"].(string)
	if gt["name"] != "gt1" || gt["is_public"] != true || gt["group_specs"].(map[string]any)["consistent_group_snapshot_enabled"] != "<is> False" {
		t.Fatalf("created %v", gt)
	}
	h.fail("admin", "POST", path("admin", "/group_types"), body, 409, mv("3.11"))
	h.fail("admin", "POST", path("admin", "/group_types"), map[string]any{"group_type": map[string]any{"name": " "}}, 400, mv("3.11"))
	priv := h.json("admin", "POST", path("admin", "/group_types"), map[string]any{"group_type": map[string]any{"name": "gt2", "is_public": "false"}},
		202, mv("3.11"))["group_type"].(map[string]any)

	if n := len(h.json("a", "GET", path("a", "/group_types"), nil, 200, mv("3.11"))["group_types"].([]any)); n != 1 {
		t.Fatalf("member sees %d group types", n)
	}
	if n := len(h.json("admin", "GET", path("admin", "/group_types?is_public=none"), nil, 200, mv("3.11"))["group_types"].([]any)); n != 2 {
		t.Fatalf("admin sees %d group types", n)
	}
	h.fail("a", "GET", path("a", "/group_types/"+priv["id"].(string)), nil, 404, mv("3.11"))
	h.json("a", "GET", path("a", "/group_types/"+id), nil, 200, mv("3.11"))
	h.fail("a", "GET", path("a", "/group_types/default"), nil, 404, mv("3.11"))

	up := h.json("admin", "PUT", path("admin", "/group_types/"+id), map[string]any{"group_type": map[string]any{"description": "new"}}, 200, mv("3.11"))
	if up["group_type"].(map[string]any)["description"] != "new" || up["group_type"].(map[string]any)["name"] != "gt1" {
		t.Fatalf("update %v", up)
	}
	h.fail("admin", "PUT", path("admin", "/group_types/"+id), map[string]any{"group_type": map[string]any{}}, 400, mv("3.11"))
	h.fail("admin", "PUT", path("admin", "/group_types/"+id), map[string]any{"group_type": map[string]any{"name": "gt2"}}, 409, mv("3.11"))

	specs := path("admin", "/group_types/"+id+"/group_specs")
	h.json("admin", "POST", specs, map[string]any{"group_specs": map[string]any{"k": "v"}}, 202, mv("3.11"))
	if got := h.json("admin", "GET", specs, nil, 200, mv("3.11"))["group_specs"].(map[string]any); len(got) != 2 || got["k"] != "v" {
		t.Fatalf("specs %v", got)
	}
	h.json("admin", "PUT", specs+"/k", map[string]any{"k": "w"}, 200, mv("3.11"))
	if got := h.json("admin", "GET", specs+"/k", nil, 200, mv("3.11")); got["k"] != "w" {
		t.Fatalf("spec %v", got)
	}
	h.fail("admin", "PUT", specs+"/k", map[string]any{"j": "w"}, 400, mv("3.11"))
	h.json("admin", "DELETE", specs+"/k", nil, 202, mv("3.11"))
	h.fail("admin", "GET", specs+"/k", nil, 404, mv("3.11"))
	h.fail("a", "GET", path("a", "/group_types/"+id+"/group_specs"), nil, 403, mv("3.11"))

	h.json("admin", "DELETE", path("admin", "/group_types/"+id), nil, 202, mv("3.11"))
	h.fail("admin", "GET", path("admin", "/group_types/"+id), nil, 404, mv("3.11"))
}

// TestMicroversion3_12Summary: /volumes/summary from 3.12, with the
// metadata values from 3.36.
func TestMicroversion3_12Summary(t *testing.T) {
	h := newHarness(t, volume.WithMaxVersion(36))
	h.createVolume("a", map[string]any{"size": 1, "metadata": map[string]any{"k": "x"}}, "available")
	h.createVolume("a", map[string]any{"size": 2, "metadata": map[string]any{"k": "y"}}, "available")
	h.createVolume("b", map[string]any{"size": 3}, "available")
	h.fail("a", "GET", path("a", "/volumes/summary"), nil, 404, mv("3.11"))
	sum := h.json("a", "GET", path("a", "/volumes/summary"), nil, 200, mv("3.12"))["volume-summary"].(map[string]any)
	if sum["total_size"] != 3.0 || sum["total_count"] != 2.0 || sum["metadata"] != nil {
		t.Fatalf("3.12 summary %v", sum)
	}
	sum = h.json("a", "GET", path("a", "/volumes/summary"), nil, 200, mv("3.36"))["volume-summary"].(map[string]any)
	if m := sum["metadata"].(map[string]any); len(m) != 1 || len(m["k"].([]any)) != 2 {
		t.Fatalf("3.36 summary %v", sum)
	}
	sum = h.json("admin", "GET", path("admin", "/volumes/summary?all_tenants=1"), nil, 200, mv("3.12"))["volume-summary"].(map[string]any)
	if sum["total_size"] != 6.0 || sum["total_count"] != 3.0 {
		t.Fatalf("all tenants %v", sum)
	}
}
