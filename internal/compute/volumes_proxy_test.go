package compute_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakevolumes"
)

// proxyHarness is a compute API with the fake volume service and no
// host: the volume proxy needs none.
func proxyHarness(t *testing.T) (*harness, *fakevolumes.Service) {
	t.Helper()
	fv := fakevolumes.New()
	h := newHarness(t, func(c *compute.Config) { c.Volumes = fv })
	return h, fv
}

// The key sets of Tempest's compute volume and snapshot schemas
// (tempest/lib/api_schema/response/compute/v2_1/volumes.py and
// snapshots.py): each body must hold every required key and nothing
// outside the allowed ones (additionalProperties: false).
var (
	proxyVolumeRequired = []string{"id", "status", "displayName", "availabilityZone", "createdAt", "displayDescription",
		"volumeType", "snapshotId", "metadata", "size", "attachments"}
	proxyVolumeOptional   = []string{"os-vol-host-attr:host"}
	proxyAttachmentKeys   = []string{"id", "device", "volumeId", "serverId"}
	proxySnapshotRequired = []string{"id", "volumeId", "status", "size", "createdAt", "displayName", "displayDescription"}
)

// proxyVolumeBody and proxySnapshotBody type the schemas' properties;
// decoding with unknown fields disallowed catches a wrong type or an
// extra key.
type proxyVolumeBody struct {
	ID                 string            `json:"id"`
	Status             string            `json:"status"`
	DisplayName        *string           `json:"displayName"`
	AvailabilityZone   string            `json:"availabilityZone"`
	CreatedAt          string            `json:"createdAt"`
	DisplayDescription *string           `json:"displayDescription"`
	VolumeType         *string           `json:"volumeType"`
	SnapshotID         *string           `json:"snapshotId"`
	Metadata           map[string]string `json:"metadata"`
	Size               int               `json:"size"`
	Attachments        []struct {
		ID       string `json:"id"`
		Device   string `json:"device"`
		VolumeID string `json:"volumeId"`
		ServerID string `json:"serverId"`
	} `json:"attachments"`
	Host string `json:"os-vol-host-attr:host"`
}

type proxySnapshotBody struct {
	ID                 string  `json:"id"`
	VolumeID           string  `json:"volumeId"`
	Status             string  `json:"status"`
	Size               int     `json:"size"`
	CreatedAt          string  `json:"createdAt"`
	DisplayName        *string `json:"displayName"`
	DisplayDescription *string `json:"displayDescription"`
}

// checkKeys fails unless m holds every required key and only allowed
// ones.
func checkKeys(t *testing.T, what string, m map[string]any, required []string, optional ...string) {
	t.Helper()
	for _, k := range required {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: missing %q in %v", what, k, m)
		}
	}
	for k := range m {
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			t.Errorf("%s: unexpected key %q in %v", what, k, m)
		}
	}
}

// strictDecode decodes v (a decoded JSON value) into out, refusing
// unknown fields and wrong types.
func strictDecode(t *testing.T, what string, v any, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s does not fit the schema: %v: %s", what, err, b)
	}
}

// checkProxyVolume validates one volume against Tempest's schema.
func checkProxyVolume(t *testing.T, what string, v any) proxyVolumeBody {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: %v is not an object", what, v)
	}
	checkKeys(t, what, m, proxyVolumeRequired, proxyVolumeOptional...)
	for _, a := range m["attachments"].([]any) {
		checkKeys(t, what+" attachment", a.(map[string]any), nil, proxyAttachmentKeys...)
	}
	var out proxyVolumeBody
	strictDecode(t, what, v, &out)
	if _, err := time.Parse("2006-01-02T15:04:05.999999", out.CreatedAt); err != nil {
		t.Errorf("%s: createdAt %q: %v", what, out.CreatedAt, err)
	}
	return out
}

func checkProxySnapshot(t *testing.T, what string, v any) proxySnapshotBody {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: %v is not an object", what, v)
	}
	checkKeys(t, what, m, proxySnapshotRequired)
	var out proxySnapshotBody
	strictDecode(t, what, v, &out)
	if _, err := time.Parse("2006-01-02T15:04:05.999999", out.CreatedAt); err != nil {
		t.Errorf("%s: createdAt %q: %v", what, out.CreatedAt, err)
	}
	return out
}

// Tempest's VolumesGetTestJSON and VolumesTestJSON: create, show, both
// lists (each row equal to the volume's show), limit and offset, an
// attached volume's attachments, delete, and another project's view.
func TestVolumeProxy(t *testing.T) {
	h, fv := proxyHarness(t)
	create := func(name string) map[string]any {
		t.Helper()
		status, body, hdr := h.do("a", "POST", "/v2.1/os-volumes",
			map[string]any{"volume": map[string]any{"size": 1, "display_name": name, "metadata": map[string]any{"Type": "work"}}})
		if status != 200 {
			t.Fatalf("create: %d %s", status, body)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		checkKeys(t, "create body", m, []string{"volume"})
		v := m["volume"].(map[string]any)
		if loc := hdr.Get("Location"); !strings.HasSuffix(loc, "/v2.1/os-volumes/"+v["id"].(string)) {
			t.Errorf("Location %q", loc)
		}
		return v
	}
	v1 := create("v1")
	got := checkProxyVolume(t, "create", v1)
	if *got.DisplayName != "v1" || got.Size != 1 || got.Status != "available" || got.Metadata["Type"] != "work" ||
		got.AvailabilityZone != "nova" || *got.VolumeType != fakevolumes.DefaultVolumeType || got.SnapshotID != nil || got.DisplayDescription != nil {
		t.Errorf("created %+v", got)
	}
	if !reflect.DeepEqual(v1["attachments"], []any{map[string]any{}}) {
		t.Errorf("unattached volume's attachments %v, want [{}]", v1["attachments"])
	}
	id1 := v1["id"].(string)
	if v := fv.Get(id1); v == nil || v.Name != "v1" || v.Project != projA {
		t.Fatalf("volume service has %+v", v)
	}

	show := h.json("a", "GET", "/v2.1/os-volumes/"+id1, nil, 200)
	checkKeys(t, "show body", show, []string{"volume"})
	checkProxyVolume(t, "show", show["volume"])
	if !reflect.DeepEqual(show["volume"], any(v1)) {
		t.Errorf("show %v differs from create %v", show["volume"], v1)
	}

	ids := []string{id1, create("v2")["id"].(string), create("v3")["id"].(string)}
	for _, path := range []string{"/v2.1/os-volumes", "/v2.1/os-volumes/detail"} {
		body := h.json("a", "GET", path, nil, 200)
		checkKeys(t, path, body, []string{"volumes"})
		all := body["volumes"].([]any)
		if len(all) != 3 {
			t.Fatalf("%s: %d volumes", path, len(all))
		}
		for i, v := range all {
			checkProxyVolume(t, path, v)
			// Tempest looks each shown volume up in the list by equality.
			id := v.(map[string]any)["id"].(string)
			if want := h.json("a", "GET", "/v2.1/os-volumes/"+id, nil, 200)["volume"]; !reflect.DeepEqual(v, want) {
				t.Errorf("%s row %d %v differs from its show %v", path, i, v, want)
			}
		}
		// Newest first, as Cinder lists them.
		if all[0].(map[string]any)["id"] != ids[2] || all[2].(map[string]any)["id"] != ids[0] {
			t.Errorf("%s order %v", path, all)
		}
		if n := len(h.json("a", "GET", path+"?limit=2", nil, 200)["volumes"].([]any)); n != 2 {
			t.Errorf("%s?limit=2: %d rows", path, n)
		}
		page := h.json("a", "GET", path+"?offset=1&limit=1", nil, 200)["volumes"].([]any)
		if len(page) != 1 || page[0].(map[string]any)["id"] != all[1].(map[string]any)["id"] {
			t.Errorf("%s?offset=1&limit=1: %v", path, page)
		}
		if n := len(h.json("a", "GET", path+"?offset=5", nil, 200)["volumes"].([]any)); n != 0 {
			t.Errorf("%s?offset=5: %d rows", path, n)
		}
		if n := len(h.json("a", "GET", path+"?limit=0", nil, 200)["volumes"].([]any)); n != 3 {
			t.Errorf("%s?limit=0 (the maximum): %d rows", path, n)
		}
	}

	// An attached volume shows its server and device.
	ctx, auth := context.Background(), compute.VolumeAuth{Token: "a", Project: projA}
	const server = "5e3f0a4c-1d2b-4c3d-8e4f-000000000001"
	if err := fv.Reserve(ctx, auth, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := fv.Attach(ctx, auth, ids[1], server, "/dev/vdb", "host1"); err != nil {
		t.Fatal(err)
	}
	att := checkProxyVolume(t, "attached", h.json("a", "GET", "/v2.1/os-volumes/"+ids[1], nil, 200)["volume"])
	if att.Status != "in-use" || len(att.Attachments) != 1 || att.Attachments[0].ID != ids[1] || att.Attachments[0].VolumeID != ids[1] ||
		att.Attachments[0].ServerID != server || att.Attachments[0].Device != "/dev/vdb" {
		t.Errorf("attached volume %+v", att)
	}
	h.fail("a", "DELETE", "/v2.1/os-volumes/"+ids[1], nil, 400) // in use

	// Another project sees none of them; a reader may look but not
	// change.
	if n := len(h.json("b", "GET", "/v2.1/os-volumes", nil, 200)["volumes"].([]any)); n != 0 {
		t.Errorf("project b lists %d volumes", n)
	}
	h.fail("b", "GET", "/v2.1/os-volumes/"+id1, nil, 404)
	h.fail("b", "DELETE", "/v2.1/os-volumes/"+id1, nil, 404)
	h.json("ra", "GET", "/v2.1/os-volumes/"+id1, nil, 200)
	h.fail("ra", "POST", "/v2.1/os-volumes", map[string]any{"volume": map[string]any{"size": 1}}, 403)
	h.fail("ra", "DELETE", "/v2.1/os-volumes/"+id1, nil, 403)

	// Delete: 202, then 404 (Tempest's wait_for_resource_deletion).
	h.json("a", "DELETE", "/v2.1/os-volumes/"+id1, nil, 202)
	if fv.Get(id1) != nil {
		t.Fatal("volume still in the volume service")
	}
	h.fail("a", "GET", "/v2.1/os-volumes/"+id1, nil, 404)
}

// Tempest's VolumesNegativeTest and the schema's refusals: each bad
// request gets Nova's error with the right status, and a body refused
// here reaches the volume service not at all.
func TestVolumeProxyRefusals(t *testing.T) {
	h, fv := proxyHarness(t)
	ctx := context.Background()
	inUse := fv.Add(projA, 1, false, nil)
	fv.SetStatus(inUse, "in-use")
	withSnap := fv.Add(projA, 1, false, nil)
	if _, err := fv.CreateSnapshot(ctx, compute.VolumeAuth{Token: "a", Project: projA}, compute.SnapshotCreate{VolumeID: withSnap}); err != nil {
		t.Fatal(err)
	}
	const missing = "0b9e2c4d-7a1f-4e3b-9c2d-5f6a7b8c9d0e"
	vol := func(fields map[string]any) map[string]any { return map[string]any{"volume": fields} }
	named := func(size any) map[string]any {
		return vol(map[string]any{"size": size, "display_name": "n", "metadata": map[string]any{"Type": "work"}})
	}
	cases := []struct {
		name         string
		method, path string
		body         any
		want         int
		// reaches says whether the volume service may be called.
		reaches bool
	}{
		{"size not a number", "POST", "/v2.1/os-volumes", named("#$%"), 400, false},
		{"size empty", "POST", "/v2.1/os-volumes", named(""), 400, false},
		{"size zero string", "POST", "/v2.1/os-volumes", named("0"), 400, false},
		{"size zero", "POST", "/v2.1/os-volumes", named(0), 400, false},
		{"size negative", "POST", "/v2.1/os-volumes", named(-1), 400, false},
		{"size negative string", "POST", "/v2.1/os-volumes", named("-1"), 400, false},
		{"size fraction", "POST", "/v2.1/os-volumes", named(1.5), 400, false},
		{"size null", "POST", "/v2.1/os-volumes", named(nil), 400, false},
		{"size missing", "POST", "/v2.1/os-volumes", vol(map[string]any{"display_name": "n"}), 400, false},
		{"unknown field", "POST", "/v2.1/os-volumes", vol(map[string]any{"size": 1, "name": "n"}), 400, false},
		{"no volume", "POST", "/v2.1/os-volumes", map[string]any{"size": 1}, 400, false},
		{"metadata not strings", "POST", "/v2.1/os-volumes", vol(map[string]any{"size": 1, "metadata": map[string]any{"a": 1}}), 400, false},
		{"unknown type", "POST", "/v2.1/os-volumes", vol(map[string]any{"size": 1, "volume_type": "gold"}), 404, true},
		{"unknown snapshot", "POST", "/v2.1/os-volumes", vol(map[string]any{"snapshot_id": missing}), 404, true},
		{"unknown zone", "POST", "/v2.1/os-volumes", vol(map[string]any{"size": 1, "availability_zone": "mars"}), 400, true},
		{"show unknown", "GET", "/v2.1/os-volumes/" + missing, nil, 404, true},
		{"show not a uuid", "GET", "/v2.1/os-volumes/invalid-1234", nil, 404, true},
		{"show no id", "GET", "/v2.1/os-volumes/", nil, 404, false},
		{"delete unknown", "DELETE", "/v2.1/os-volumes/" + missing, nil, 404, true},
		{"delete not a uuid", "DELETE", "/v2.1/os-volumes/invalid-1234", nil, 404, true},
		{"delete no id", "DELETE", "/v2.1/os-volumes/", nil, 404, false},
		{"delete in use", "DELETE", "/v2.1/os-volumes/" + inUse, nil, 400, true},
		{"delete with snapshots", "DELETE", "/v2.1/os-volumes/" + withSnap, nil, 400, true},
		{"limit negative", "GET", "/v2.1/os-volumes?limit=-1", nil, 400, true},
		{"limit not a number", "GET", "/v2.1/os-volumes/detail?limit=two", nil, 400, true},
		{"offset negative", "GET", "/v2.1/os-volumes?offset=-1", nil, 400, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(fv.Calls())
			h.fail("a", c.method, c.path, c.body, c.want)
			if !c.reaches && len(fv.Calls()) != before {
				t.Errorf("the volume service was called: %v", fv.Calls()[before:])
			}
		})
	}
	if fv.Get(inUse) == nil || fv.Get(withSnap) == nil || len(fv.IDs()) != 2 {
		t.Fatalf("volumes after refusals: %v", fv.IDs())
	}

	// The volume service's own failures: over quota is Nova's 403; a
	// broken service a 500 that names none of its internals.
	fv.Fail("create", &compute.VolumeError{Status: 413, Message: "VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded"})
	if msg := h.fail("a", "POST", "/v2.1/os-volumes", named(1), 403); !strings.Contains(msg, "VolumeLimitExceeded") {
		t.Errorf("over quota: %q", msg)
	}
	fv.Fail("list", errors.New("dial tcp 10.0.0.9:8776: connection refused"))
	if msg := h.fail("a", "GET", "/v2.1/os-volumes", nil, 500); strings.Contains(msg, "10.0.0.9") {
		t.Errorf("a 500 leaks the cause: %q", msg)
	}
}

// Nova's snapshot proxy (Tempest's VolumesSnapshotsTestJSON): create,
// show, both lists, delete, and its refusals.
func TestSnapshotProxy(t *testing.T) {
	h, fv := proxyHarness(t)
	volID := fv.Add(projA, 2, false, nil)
	body := h.json("a", "POST", "/v2.1/os-snapshots", map[string]any{"snapshot": map[string]any{"volume_id": volID, "display_name": "s1"}}, 200)
	checkKeys(t, "create body", body, []string{"snapshot"})
	sn := checkProxySnapshot(t, "create", body["snapshot"])
	if sn.VolumeID != volID || *sn.DisplayName != "s1" || sn.DisplayDescription != nil || sn.Size != 2 || sn.Status != "available" {
		t.Errorf("created %+v", sn)
	}
	show := h.json("a", "GET", "/v2.1/os-snapshots/"+sn.ID, nil, 200)
	checkKeys(t, "show body", show, []string{"snapshot"})
	checkProxySnapshot(t, "show", show["snapshot"])
	if !reflect.DeepEqual(show["snapshot"], body["snapshot"]) {
		t.Errorf("show %v differs from create %v", show["snapshot"], body["snapshot"])
	}
	second := h.json("a", "POST", "/v2.1/os-snapshots", map[string]any{"snapshot": map[string]any{"volume_id": volID, "display_description": "d", "force": "false"}}, 200)
	for _, path := range []string{"/v2.1/os-snapshots", "/v2.1/os-snapshots/detail"} {
		list := h.json("a", "GET", path, nil, 200)
		checkKeys(t, path, list, []string{"snapshots"})
		rows := list["snapshots"].([]any)
		if len(rows) != 2 || !reflect.DeepEqual(rows[1], show["snapshot"]) || !reflect.DeepEqual(rows[0], second["snapshot"]) {
			t.Errorf("%s: %v", path, rows)
		}
		for _, r := range rows {
			checkProxySnapshot(t, path, r)
		}
		if page := h.json("a", "GET", path+"?offset=1&limit=1", nil, 200)["snapshots"].([]any); len(page) != 1 || !reflect.DeepEqual(page[0], rows[1]) {
			t.Errorf("%s?offset=1&limit=1: %v", path, page)
		}
	}
	if n := len(h.json("b", "GET", "/v2.1/os-snapshots", nil, 200)["snapshots"].([]any)); n != 0 {
		t.Errorf("project b lists %d snapshots", n)
	}
	h.fail("b", "GET", "/v2.1/os-snapshots/"+sn.ID, nil, 404)

	// A volume made from the snapshot takes its size and names it.
	fromSnap := checkProxyVolume(t, "from snapshot",
		h.json("a", "POST", "/v2.1/os-volumes", map[string]any{"volume": map[string]any{"snapshot_id": sn.ID}}, 200)["volume"])
	if fromSnap.Size != 2 || fromSnap.SnapshotID == nil || *fromSnap.SnapshotID != sn.ID {
		t.Errorf("volume from snapshot %+v", fromSnap)
	}
	h.fail("a", "POST", "/v2.1/os-volumes", map[string]any{"volume": map[string]any{"snapshot_id": sn.ID, "size": 1}}, 400) // smaller

	// Refusals.
	const missing = "0b9e2c4d-7a1f-4e3b-9c2d-5f6a7b8c9d0e"
	inUse := fv.Add(projA, 1, false, nil)
	fv.SetStatus(inUse, "in-use")
	snap := func(fields map[string]any) map[string]any { return map[string]any{"snapshot": fields} }
	for _, c := range []struct {
		name         string
		method, path string
		body         any
		want         int
	}{
		{"no volume_id", "POST", "/v2.1/os-snapshots", snap(map[string]any{"display_name": "x"}), 400},
		{"no snapshot", "POST", "/v2.1/os-snapshots", map[string]any{"volume_id": volID}, 400},
		{"unknown field", "POST", "/v2.1/os-snapshots", snap(map[string]any{"volume_id": volID, "name": "x"}), 400},
		{"force not a boolean", "POST", "/v2.1/os-snapshots", snap(map[string]any{"volume_id": volID, "force": "maybe"}), 400},
		{"unknown volume", "POST", "/v2.1/os-snapshots", snap(map[string]any{"volume_id": missing}), 404},
		{"in-use volume", "POST", "/v2.1/os-snapshots", snap(map[string]any{"volume_id": inUse}), 400},
		{"show unknown", "GET", "/v2.1/os-snapshots/" + missing, nil, 404},
		{"delete unknown", "DELETE", "/v2.1/os-snapshots/" + missing, nil, 404},
		{"list bad limit", "GET", "/v2.1/os-snapshots/detail?limit=x", nil, 400},
		{"reader creates", "POST", "/v2.1/os-snapshots", snap(map[string]any{"volume_id": volID}), 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			token := "a"
			if strings.HasPrefix(c.name, "reader") {
				token = "ra"
			}
			h.fail(token, c.method, c.path, c.body, c.want)
		})
	}
	// force takes a snapshot of an in-use volume.
	forced := checkProxySnapshot(t, "forced", h.json("a", "POST", "/v2.1/os-snapshots",
		map[string]any{"snapshot": map[string]any{"volume_id": inUse, "force": true}}, 200)["snapshot"])
	if forced.VolumeID != inUse {
		t.Errorf("forced snapshot %+v", forced)
	}

	// Delete: a snapshot being made is refused; then 202 and 404.
	fv.SetSnapshotStatus(sn.ID, "creating")
	h.fail("a", "DELETE", "/v2.1/os-snapshots/"+sn.ID, nil, 400)
	fv.SetSnapshotStatus(sn.ID, "available")
	h.json("a", "DELETE", "/v2.1/os-snapshots/"+sn.ID, nil, 202)
	if fv.GetSnapshot(sn.ID) != nil {
		t.Fatal("snapshot still in the volume service")
	}
	h.fail("a", "GET", "/v2.1/os-snapshots/"+sn.ID, nil, 404)
}

// From microversion 2.36 every proxy route answers 404, as Nova's; 2.35
// still serves them.
func TestVolumeProxyGoneAt236(t *testing.T) {
	h, fv := proxyHarness(t)
	volID, other := fv.Add(projA, 1, false, nil), fv.Add(projA, 1, false, nil)
	snap, err := fv.CreateSnapshot(context.Background(), compute.VolumeAuth{Token: "a", Project: projA}, compute.SnapshotCreate{VolumeID: volID})
	if err != nil {
		t.Fatal(err)
	}
	routes := []struct {
		method, path string
		body         any
		ok           int
	}{
		{"GET", "/v2.1/os-volumes", nil, 200},
		{"GET", "/v2.1/os-volumes/detail", nil, 200},
		{"GET", "/v2.1/os-volumes/" + volID, nil, 200},
		{"POST", "/v2.1/os-volumes", map[string]any{"volume": map[string]any{"size": 1}}, 200},
		{"GET", "/v2.1/os-snapshots", nil, 200},
		{"GET", "/v2.1/os-snapshots/detail", nil, 200},
		{"GET", "/v2.1/os-snapshots/" + snap.ID, nil, 200},
		{"POST", "/v2.1/os-snapshots", map[string]any{"snapshot": map[string]any{"volume_id": other}}, 200},
		{"DELETE", "/v2.1/os-snapshots/" + snap.ID, nil, 202},
		{"DELETE", "/v2.1/os-volumes/" + volID, nil, 202},
	}
	for _, rt := range routes {
		h.fail("a", rt.method, rt.path, rt.body, 404, mv("2.36"))
		h.fail("a", rt.method, rt.path, rt.body, 404, mv("latest"))
	}
	if fv.Get(volID) == nil || fv.GetSnapshot(snap.ID) == nil {
		t.Fatal("a refused call changed the volume service")
	}
	for _, rt := range routes {
		h.json("a", rt.method, rt.path, rt.body, rt.ok, mv("2.35"))
	}
}
