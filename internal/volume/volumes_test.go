package volume_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestVolumeLifecycle is Tempest's test_volume_create_get_update_delete:
// create (202, create schema, no os-vol-* keys), wait for available,
// show (detail schema), rename, a second volume in the same zone with a
// duplicate name, delete (202, deleting, then 404).
func TestVolumeLifecycle(t *testing.T) {
	h := newHarness(t)
	var created volumeResp
	h.strict("a", "POST", path("a", "/volumes"), map[string]any{"volume": map[string]any{"size": 1, "name": "v1", "metadata": map[string]string{"Type": "Test"}}}, 202, &created)
	v := created.Volume
	if v.Status != "creating" || v.Size != 1 || *v.Name != "v1" || v.Bootable != "false" || *v.VolumeType != "__DEFAULT__" || v.Metadata["Type"] != "Test" || *v.AvailabilityZone != "nova" {
		t.Fatalf("created %+v", v)
	}
	if len(v.Links) != 2 || v.Links[0].Href != h.srv.URL+"/v3/"+projA+"/volumes/"+v.ID || v.Links[1].Rel != "bookmark" {
		t.Fatalf("links %+v", v.Links)
	}
	h.waitVolume("a", v.ID, "available")
	var shown volumeDetailResp
	h.strict("a", "GET", path("a", "/volumes/"+v.ID), nil, 200, &shown)
	if shown.Volume.TenantID != projA || shown.Volume.Host != nil || shown.Volume.UserID != tokens["a"].UserID {
		t.Fatalf("shown to its owner %+v", shown.Volume)
	}
	var asAdmin volumeDetailResp
	h.strict("admin", "GET", path("admin", "/volumes/"+v.ID), nil, 200, &asAdmin)
	if asAdmin.Volume.Host == nil || *asAdmin.Volume.Host != "stor1@file#default" {
		t.Fatalf("admin sees host %v", asAdmin.Volume.Host)
	}

	var updated volumeResp
	h.strict("a", "PUT", path("a", "/volumes/"+v.ID), map[string]any{"volume": map[string]any{"name": "v1"}}, 200, &updated)
	h.strict("a", "PUT", path("a", "/volumes/"+v.ID), map[string]any{"volume": map[string]any{"name": "v1-new", "description": "d"}}, 200, &updated)
	if *updated.Volume.Name != "v1-new" || *updated.Volume.Description != "d" {
		t.Fatalf("updated %+v", updated.Volume)
	}
	// display_name is the legacy alias Nova and Tempest's compute base send.
	v2 := h.createVolume("a", map[string]any{"size": "1", "display_name": "v1-new", "availability_zone": "nova"}, "available")
	if v2["name"] != "v1-new" {
		t.Fatalf("v2 %v", v2)
	}

	// Another project sees neither.
	h.fail("b", "GET", path("b", "/volumes/"+v.ID), nil, 404)
	h.fail("b", "DELETE", path("b", "/volumes/"+v.ID), nil, 404)
	// A reader of the project cannot write.
	h.fail("ra", "DELETE", path("ra", "/volumes/"+v.ID), nil, 403)

	h.json("a", "DELETE", path("a", "/volumes/"+v.ID), nil, 202)
	h.waitGone("a", path("a", "/volumes/"+v.ID))
	if h.agents["stor1"].HasVolume(v.ID) {
		t.Fatal("the agent still has the deleted volume")
	}
}

// TestVolumeBadInput covers the negative tests of test_volumes_negative:
// 404 for unknown, malformed and empty ids, 400 for bad sizes, 404 for
// unknown types and sources.
func TestVolumeBadInput(t *testing.T) {
	h := newHarness(t)
	random := "6a1b1f8a-1a5a-4a5e-9e63-0e1c2b8a9f10"
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/volumes/" + random, nil, 404},
		{"GET", "/volumes/invalid-volume-id", nil, 404},
		{"GET", "/volumes/", nil, 404},
		{"PUT", "/volumes/" + random, map[string]any{"volume": map[string]any{"name": "x"}}, 404},
		{"PUT", "/volumes/" + url.PathEscape("#$%"), map[string]any{"volume": map[string]any{"name": "x"}}, 404},
		{"PUT", "/volumes/", map[string]any{"volume": map[string]any{"name": "x"}}, 404},
		{"DELETE", "/volumes/" + random, nil, 404},
		{"DELETE", "/volumes/" + url.PathEscape("!@#$%^&*()"), nil, 404},
		{"DELETE", "/volumes/", nil, 404},
		{"POST", "/volumes/" + random + "/action", map[string]any{"os-attach": map[string]any{"instance_uuid": random, "mountpoint": "/dev/vdc", "mode": "rw"}}, 404},
		{"POST", "/volumes/invalid/action", map[string]any{"os-detach": map[string]any{}}, 404},
		{"POST", "/volumes/" + random + "/action", map[string]any{"os-extend": map[string]any{"new_size": 2}}, 404},
		{"POST", "/volumes/None/action", map[string]any{"os-extend": map[string]any{"new_size": 2}}, 404},
		{"POST", "/volumes/" + random + "/action", map[string]any{"os-reserve": map[string]any{}}, 404},
		{"POST", "/volumes/" + random + "/action", map[string]any{"os-unreserve": map[string]any{}}, 404},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": "#$%"}}, 400},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": ""}}, 400},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": "0"}}, 400},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": "-1"}}, 400},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": 1.5}}, 400},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{}}, 400},
		{"POST", "/volumes", map[string]any{"nothing": 1}, 400},
		{"POST", "/volumes", "{not json", 400},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": 1, "volume_type": random}}, 404},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": 1, "snapshot_id": random}}, 404},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": 1, "source_volid": random}}, 404},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": 1, "imageRef": random}}, 404},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": 1, "imageRef": imageDeactivated}}, 400},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": 1, "imageRef": imageBigMinDisk}}, 400},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": 1, "availability_zone": "elsewhere"}}, 400},
		{"POST", "/volumes", map[string]any{"volume": map[string]any{"size": 1, "metadata": map[string]string{"k": strings.Repeat("x", 256)}}}, 400},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			h.t = t
			h.fail("a", c.method, path("a", c.path), c.body, c.want)
		})
	}
	h.t = t
	// Nothing half-applied: no volume was made by any of those.
	if vols := h.json("a", "GET", path("a", "/volumes"), nil, 200)["volumes"].([]any); len(vols) != 0 {
		t.Fatalf("bad requests left volumes: %v", vols)
	}
}

// TestVolumeSources: from an image (bootable, volume_image_metadata), as
// a clone (source_volid, size at least the source's) and from a snapshot
// grown on create; each goes to the source's host.
func TestVolumeSources(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagentConfig("stor2"))
	img := h.createVolume("a", map[string]any{"size": 1, "imageRef": imageActive}, "available")
	if img["bootable"] != "true" || img["volume_image_metadata"].(map[string]any)["image_id"] != imageActive {
		t.Fatalf("from image %v", img)
	}
	// The image metadata actions.
	imgID := img["id"].(string)
	img = h.action("a", imgID, map[string]any{"os-set_image_metadata": map[string]any{"metadata": map[string]string{"kernel_id": "k", "ramdisk_id": "r"}}}, 200)
	if m := img["metadata"].(map[string]any); m["kernel_id"] != "k" || m["image_id"] != imageActive {
		t.Fatalf("set image metadata %v", m)
	}
	h.action("a", imgID, map[string]any{"os-unset_image_metadata": map[string]any{"key": "ramdisk_id"}}, 200)
	h.fail("a", "POST", path("a", "/volumes/"+imgID+"/action"), map[string]any{"os-unset_image_metadata": map[string]any{"key": "ramdisk_id"}}, 404)
	if m := h.action("a", imgID, map[string]any{"os-show_image_metadata": map[string]any{}}, 200)["metadata"].(map[string]any); m["kernel_id"] != "k" || m["ramdisk_id"] != nil {
		t.Fatalf("show image metadata %v", m)
	}
	src := h.createVolume("a", map[string]any{"size": 1}, "available")
	h.fail("a", "POST", path("a", "/volumes"), map[string]any{"volume": map[string]any{"size": 1, "source_volid": src["id"], "imageRef": imageActive}}, 400)
	clone := h.createVolume("a", map[string]any{"source_volid": src["id"]}, "available")
	if clone["size"] != float64(1) || clone["source_volid"] != src["id"] {
		t.Fatalf("clone %v", clone)
	}
	hostOf := func(id any) any {
		return h.json("admin", "GET", path("admin", "/volumes/"+id.(string)), nil, 200)["volume"].(map[string]any)["os-vol-host-attr:host"]
	}
	if hostOf(clone["id"]) != hostOf(src["id"]) {
		t.Fatalf("clone on %v, source on %v", hostOf(clone["id"]), hostOf(src["id"]))
	}
	var snap snapshotResp
	h.strict("a", "POST", path("a", "/snapshots"), map[string]any{"snapshot": map[string]any{"volume_id": src["id"], "name": "s"}}, 202, &snap)
	h.eventually("snapshot available", func() bool {
		return h.json("a", "GET", path("a", "/snapshots/"+snap.Snapshot.ID), nil, 200)["snapshot"].(map[string]any)["status"] == "available"
	})
	h.fail("a", "POST", path("a", "/volumes"), map[string]any{"volume": map[string]any{"size": "0", "snapshot_id": snap.Snapshot.ID}}, 400)
	grown := h.createVolume("a", map[string]any{"size": 2, "snapshot_id": snap.Snapshot.ID}, "available")
	if grown["size"] != float64(2) || grown["snapshot_id"] != snap.Snapshot.ID || hostOf(grown["id"]) != hostOf(src["id"]) {
		t.Fatalf("from snapshot %v", grown)
	}
	// A volume with snapshots is deleted only with cascade.
	h.fail("a", "DELETE", path("a", "/volumes/"+src["id"].(string)), nil, 400)
	h.json("a", "DELETE", path("a", "/volumes/"+src["id"].(string))+"?cascade=true", nil, 202)
	h.waitGone("a", path("a", "/volumes/"+src["id"].(string)))
	h.waitGone("a", path("a", "/snapshots/"+snap.Snapshot.ID))
}

// TestNoHostMeansError: with no storage host up, a new volume goes to
// error, as Cinder's scheduler leaves it, and can be deleted at once.
func TestNoHostMeansError(t *testing.T) {
	h := newBareHarness(t, testDB(t))
	v := h.json("a", "POST", path("a", "/volumes"), map[string]any{"volume": map[string]any{"size": 1}}, 202)["volume"].(map[string]any)
	if v["status"] != "error" {
		t.Fatalf("status %v", v["status"])
	}
	h.json("a", "DELETE", path("a", "/volumes/"+v["id"].(string)), nil, 202)
	h.fail("a", "GET", path("a", "/volumes/"+v["id"].(string)), nil, 404)
}

// TestVolumeListFilters is test_volumes_list: by name, status, zone,
// bootable, metadata as a Python dict literal, and sorted pages.
func TestVolumeListFilters(t *testing.T) {
	h := newHarness(t)
	var ids []string
	for i := 0; i < 3; i++ {
		v := h.createVolume("a", map[string]any{"size": 1, "name": fmt.Sprintf("work-%d", i), "metadata": map[string]string{"Type": "work"}}, "available")
		ids = append(ids, v["id"].(string))
	}
	h.createVolume("a", map[string]any{"size": 1, "name": "other"}, "available")
	h.createVolume("b", map[string]any{"size": 1, "name": "work-0"}, "available")
	list := func(detail bool, q string) []map[string]any {
		p := "/volumes"
		if detail {
			p += "/detail"
		}
		var out []map[string]any
		for _, v := range h.json("a", "GET", path("a", p)+"?"+q, nil, 200)["volumes"].([]any) {
			out = append(out, v.(map[string]any))
		}
		return out
	}
	for _, c := range []struct {
		q    string
		want int
	}{
		{"", 4},
		{"name=work-1", 1},
		{"status=available", 4},
		{"status=null", 0},
		{"name=nosuch", 0},
		{"availability_zone=nova", 4},
		{"bootable=false", 4},
		{"bootable=true", 0},
		{"name=work-2&status=available", 1},
		{"metadata=" + url.QueryEscape("{'Type': 'work'}"), 3},
		{"metadata=" + url.QueryEscape(`{"Type": "work"}`), 3},
		{"metadata=" + url.QueryEscape("{'Type': 'play'}"), 0},
		{"limit=2&status=available&sort_dir=asc&sort_key=id", 2},
		{"sort=name:asc&limit=1", 1},
		{"offset=3", 1},
	} {
		for _, detail := range []bool{false, true} {
			if got := list(detail, c.q); len(got) != c.want {
				t.Fatalf("list detail=%v %q: %d rows, want %d: %v", detail, c.q, len(got), c.want, got)
			}
		}
	}
	asc := list(true, "limit=2&status=available&sort_dir=asc&sort_key=id")
	desc := list(true, "limit=2&status=available&sort_dir=desc&sort_key=id")
	if !(asc[0]["id"].(string) < asc[1]["id"].(string)) || !(desc[0]["id"].(string) > desc[1]["id"].(string)) {
		t.Fatalf("order asc %v desc %v", asc, desc)
	}
	if got := list(false, "sort=name:asc")[0]["name"]; got != "other" {
		t.Fatalf("first by name %v", got)
	}
	h.fail("a", "GET", path("a", "/volumes?sort_key=nonsense"), nil, 400)
	h.fail("a", "GET", path("a", "/volumes?sort_dir=sideways"), nil, 400)
	h.fail("a", "GET", path("a", "/volumes?limit=invalid"), nil, 400)
	h.fail("a", "GET", path("a", "/volumes?marker=6a1b1f8a-1a5a-4a5e-9e63-0e1c2b8a9f10"), nil, 404)
	h.fail("a", "GET", path("a", "/volumes?metadata=%7B%27Type%27"), nil, 400)
	// all_tenants is for admins; others get their own volumes only.
	if n := len(h.json("admin", "GET", path("admin", "/volumes?all_tenants=1&name=work-0"), nil, 200)["volumes"].([]any)); n != 2 {
		t.Fatalf("all tenants: %d", n)
	}
	if n := len(list(false, "all_tenants=1")); n != 4 {
		t.Fatalf("all_tenants from a member: %d", n)
	}
	var strictList volumeListResp
	h.strict("a", "GET", path("a", "/volumes"), nil, 200, &strictList)
	var strictDetail volumeDetailListResp
	h.strict("a", "GET", path("a", "/volumes/detail"), nil, 200, &strictDetail)
	_ = ids
}

// TestVolumePagination follows volumes_links like Tempest's
// _test_pagination: limit=1 pages, each next link on the same scheme,
// host and path with the marker of the page's last id, and a next link
// on the last full page that leads to an empty page without one.
func TestVolumePagination(t *testing.T) {
	h := newHarness(t)
	want := map[string]bool{}
	for i := 0; i < 3; i++ {
		want[h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)] = true
	}
	for _, detail := range []string{"", "/detail"} {
		seen := map[string]bool{}
		next := path("a", "/volumes"+detail) + "?limit=1"
		pages := 0
		for next != "" {
			pages++
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			body := h.json("a", "GET", next, nil, 200)
			vols := body["volumes"].([]any)
			for _, v := range vols {
				id := v.(map[string]any)["id"].(string)
				if seen[id] {
					t.Fatalf("%s listed twice", id)
				}
				seen[id] = true
			}
			next = ""
			if links, ok := body["volumes_links"].([]any); ok {
				if len(vols) != 1 {
					t.Fatalf("a next link on a page of %d", len(vols))
				}
				href := links[0].(map[string]any)["href"].(string)
				u, err := url.Parse(href)
				if err != nil || u.Scheme+"://"+u.Host != h.srv.URL || u.Path != "/v3/"+projA+"/volumes"+detail {
					t.Fatalf("next link %q", href)
				}
				if u.Query().Get("marker") != vols[0].(map[string]any)["id"] || u.Query().Get("limit") != "1" {
					t.Fatalf("next link query %q", href)
				}
				next = u.RequestURI()
			} else if len(vols) != 0 {
				t.Fatalf("no next link on a full page")
			}
		}
		if len(seen) != 3 || pages != 4 {
			t.Fatalf("detail %q: saw %d volumes in %d pages", detail, len(seen), pages)
		}
		for id := range want {
			if !seen[id] {
				t.Fatalf("%s never listed", id)
			}
		}
	}
}

// TestVolumeMetadata covers the metadata sub-resources.
func TestVolumeMetadata(t *testing.T) {
	h := newHarness(t)
	id := h.createVolume("a", map[string]any{"size": 1, "metadata": map[string]string{"a": "1"}}, "available")["id"].(string)
	p := path("a", "/volumes/"+id+"/metadata")
	got := h.json("a", "POST", p, map[string]any{"metadata": map[string]string{"b": "2"}}, 200)["metadata"].(map[string]any)
	if len(got) != 2 || got["a"] != "1" || got["b"] != "2" {
		t.Fatalf("merge %v", got)
	}
	got = h.json("a", "PUT", p, map[string]any{"metadata": map[string]string{"c": "3"}}, 200)["metadata"].(map[string]any)
	if len(got) != 1 || got["c"] != "3" {
		t.Fatalf("replace %v", got)
	}
	if m := h.json("a", "GET", p+"/c", nil, 200)["meta"].(map[string]any); m["c"] != "3" {
		t.Fatalf("item %v", m)
	}
	if m := h.json("a", "PUT", p+"/c", map[string]any{"meta": map[string]string{"c": "4"}}, 200)["meta"].(map[string]any); m["c"] != "4" {
		t.Fatalf("item update %v", m)
	}
	h.fail("a", "PUT", p+"/c", map[string]any{"meta": map[string]string{"d": "4"}}, 400)
	h.fail("a", "PUT", p+"/c", map[string]any{"meta": map[string]string{"c": "4", "d": "5"}}, 400)
	h.fail("a", "POST", p, map[string]any{"metadata": map[string]any{"n": 1}}, 400)
	h.json("a", "DELETE", p+"/c", nil, 200)
	h.fail("a", "GET", p+"/c", nil, 404)
	h.fail("a", "DELETE", p+"/c", nil, 404)
	if m := h.json("a", "GET", p, nil, 200)["metadata"].(map[string]any); len(m) != 0 {
		t.Fatalf("after delete %v", m)
	}
	h.fail("b", "GET", path("b", "/volumes/"+id+"/metadata"), nil, 404)
}

// TestQuotasAndLimits: usage is counted, going over is a 413 with
// Cinder's message, and admins set limits.
func TestQuotasAndLimits(t *testing.T) {
	h := newHarness(t)
	h.createVolume("a", map[string]any{"size": 2}, "available")
	var lim limitsResp
	h.strict("a", "GET", path("a", "/limits"), nil, 200, &lim)
	if lim.Limits.Absolute.TotalVolumesUsed != 1 || lim.Limits.Absolute.TotalGigabytesUsed != 2 || lim.Limits.Absolute.MaxTotalVolumes != 10 {
		t.Fatalf("limits %+v", lim)
	}
	qs := h.json("a", "GET", path("a", "/os-quota-sets/"+projA+"?usage=True"), nil, 200)["quota_set"].(map[string]any)
	if qs["volumes"].(map[string]any)["in_use"] != float64(1) || qs["gigabytes"].(map[string]any)["in_use"] != float64(2) || qs["id"] != projA {
		t.Fatalf("usage %v", qs)
	}
	if _, ok := qs["volumes___DEFAULT__"]; !ok {
		t.Fatalf("no per-type key in %v", qs)
	}
	h.fail("a", "PUT", path("a", "/os-quota-sets/"+projA), map[string]any{"quota_set": map[string]any{"volumes": 1}}, 403)
	h.json("admin", "PUT", path("admin", "/os-quota-sets/"+projA), map[string]any{"quota_set": map[string]any{"volumes": 1}}, 200)
	msg := h.fail("a", "POST", path("a", "/volumes"), map[string]any{"volume": map[string]any{"size": 1}}, 413)
	if !strings.Contains(msg, "VolumeLimitExceeded") {
		t.Fatalf("message %q", msg)
	}
	h.fail("admin", "PUT", path("admin", "/os-quota-sets/"+projA), map[string]any{"quota_set": map[string]any{"volumes": -2}}, 400)
	h.fail("admin", "PUT", path("admin", "/os-quota-sets/"+projA), map[string]any{"quota_set": map[string]any{"bogus": 1}}, 400)
	h.json("admin", "DELETE", path("admin", "/os-quota-sets/"+projA), nil, 200)
	h.json("admin", "PUT", path("admin", "/os-quota-sets/"+projA), map[string]any{"quota_set": map[string]any{"gigabytes": 3}}, 200)
	if msg := h.fail("a", "POST", path("a", "/volumes"), map[string]any{"volume": map[string]any{"size": 2}}, 413); !strings.Contains(msg, "VolumeSizeExceedsAvailableQuota") {
		t.Fatalf("message %q", msg)
	}
	defaults := h.json("a", "GET", path("a", "/os-quota-sets/"+projA+"/defaults"), nil, 200)["quota_set"].(map[string]any)
	if defaults["gigabytes"] != float64(1000) {
		t.Fatalf("defaults %v", defaults)
	}
	// The default quota class changes every project's defaults,
	// per-type keys included; an unknown type's key is refused.
	class := h.json("admin", "PUT", path("admin", "/os-quota-class-sets/default"), map[string]any{"quota_class_set": map[string]any{"snapshots": 11, "volumes___DEFAULT__": 4}}, 200)["quota_class_set"].(map[string]any)
	if class["snapshots"] != float64(11) || class["volumes___DEFAULT__"] != float64(4) {
		t.Fatalf("class %v", class)
	}
	h.fail("admin", "PUT", path("admin", "/os-quota-class-sets/default"), map[string]any{"quota_class_set": map[string]any{"volumes_nosuchtype": 4}}, 400)
	h.fail("a", "GET", path("a", "/os-quota-class-sets/default"), nil, 403)
	if got := h.json("admin", "GET", path("admin", "/os-quota-class-sets/default"), nil, 200)["quota_class_set"].(map[string]any); got["snapshots"] != float64(11) || got["id"] != "default" {
		t.Fatalf("class shown %v", got)
	}
	defaults = h.json("b", "GET", path("b", "/os-quota-sets/"+projB+"/defaults"), nil, 200)["quota_set"].(map[string]any)
	if defaults["snapshots"] != float64(11) || defaults["volumes___DEFAULT__"] != float64(4) {
		t.Fatalf("defaults after the class changed %v", defaults)
	}
}
