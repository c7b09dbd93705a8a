package compute_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/volumeattach"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakevolumes"
)

// volumeHarness is a compute API with the fake volume service and one
// fake host.
func volumeHarness(t *testing.T, agent fakeagent.Config) (*harness, *fakevolumes.Service, *fakeagent.Agent) {
	t.Helper()
	fv := fakevolumes.New()
	h := newHarness(t, func(c *compute.Config) {
		c.Volumes = fv
		c.VolumeCreateTimeout = 10 * time.Second
	})
	if agent.Host == "" {
		agent.Host = "host1"
	}
	return h, fv, h.addHost(agent)
}

func (h *harness) attachments(token, id string, opts ...reqOpt) []any {
	h.t.Helper()
	return h.json(token, "GET", "/v2.1/servers/"+id+"/os-volume_attachments", nil, 200, opts...)["volumeAttachments"].([]any)
}

func (h *harness) waitVolume(fv *fakevolumes.Service, id, status string) {
	h.t.Helper()
	h.eventually("volume "+id+" "+status, func() bool {
		v := fv.Get(id)
		return v != nil && v.Status == status
	})
}

// The legacy attach flow end to end: device naming, the POST answer
// equal to the listed entry, volumes_attached, the command to the host
// carrying the connection, Cinder's states, detach, and the errors.
func TestVolumeAttachDetach(t *testing.T) {
	h, fv, agent := volumeHarness(t, fakeagent.Config{})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	v1 := fv.Add(projA, 1, false, nil)
	v2 := fv.Add(projA, 1, false, nil)
	path := "/v2.1/servers/" + id + "/os-volume_attachments"

	att := h.json("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": v1}}, 200)["volumeAttachment"].(map[string]any)
	want := map[string]any{"id": v1, "volumeId": v1, "serverId": id, "device": "/dev/vdb"}
	if !reflect.DeepEqual(att, want) {
		t.Fatalf("attach answered %v, want %v", att, want)
	}
	h.waitVolume(fv, v1, "in-use")
	if v := fv.Get(v1); v.Attachment == nil || v.Attachment.ServerID != id || v.Attachment.Device != "/dev/vdb" || !v.Connections["host1"] {
		t.Fatalf("volume after attach %+v", v)
	}
	if list := h.attachments("a", id); len(list) != 1 || !reflect.DeepEqual(list[0], any(att)) {
		t.Fatalf("list %v, want exactly the POST's %v", list, att)
	}
	show := h.json("a", "GET", path+"/"+v1, nil, 200)["volumeAttachment"]
	if !reflect.DeepEqual(show, any(att)) {
		t.Fatalf("show %v", show)
	}
	var cmd *compute.Command
	for _, c := range agent.Commands() {
		if c.Op == compute.OpAttachVolume {
			cmd = &c
		}
	}
	if cmd == nil || cmd.Volume == nil || cmd.Volume.VolumeID != v1 || cmd.Volume.Conn == nil || cmd.Volume.Conn.PSKIdentity != "host1" ||
		cmd.Volume.DiskName() != "vdb" || cmd.Volume.Bus != "virtio" {
		t.Fatalf("attach command %+v", cmd)
	}

	// Tag and delete_on_termination are shown from their microversions.
	att2 := h.json("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": v2, "tag": "data", "delete_on_termination": true}}, 200, mv("2.79"))["volumeAttachment"].(map[string]any)
	if att2["device"] != "/dev/vdc" || att2["tag"] != "data" || att2["delete_on_termination"] != true {
		t.Fatalf("second attach %v", att2)
	}
	h.waitVolume(fv, v2, "in-use")
	srv := h.server("a", id, mv("2.79"))
	va := srv["os-extended-volumes:volumes_attached"].([]any)
	if len(va) != 2 || va[0].(map[string]any)["id"] != v1 || va[0].(map[string]any)["delete_on_termination"] != false ||
		va[1].(map[string]any)["id"] != v2 || va[1].(map[string]any)["delete_on_termination"] != true {
		t.Fatalf("volumes_attached %v", va)
	}
	if list := h.json("a", "GET", "/v2.1/servers/detail", nil, 200)["servers"].([]any); len(list[0].(map[string]any)["os-extended-volumes:volumes_attached"].([]any)) != 2 {
		t.Fatalf("detail volumes_attached %v", list[0])
	}
	if va := h.server("a", id)["os-extended-volumes:volumes_attached"].([]any); len(va) != 2 || len(va[0].(map[string]any)) != 1 {
		t.Fatalf("2.1 volumes_attached %v", va)
	}

	// Refusals.
	h.fail("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": v1}}, 400)
	h.fail("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": "1b7e3a5e-0000-4000-8000-000000000000"}}, 404)
	h.fail("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": "nope"}}, 400)
	h.fail("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{}}, 400)
	h.fail("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": v1, "tag": "x"}}, 400) // tag before 2.49
	h.fail("b", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": v1}}, 404)             // another project's server
	other := h.boot("a", "other", nil)
	h.waitStatus("a", other, "ACTIVE")
	h.fail("a", "POST", "/v2.1/servers/"+other+"/os-volume_attachments", map[string]any{"volumeAttachment": map[string]any{"volumeId": v1}}, 400)
	h.fail("a", "GET", path+"/"+other, nil, 404)
	h.fail("a", "DELETE", path+"/"+other, nil, 404)
	h.fail("a", "PUT", path+"/"+v1, map[string]any{"volumeAttachment": map[string]any{"volumeId": v2}}, 403)
	h.fail("admin", "PUT", path+"/"+other, map[string]any{"volumeAttachment": map[string]any{"volumeId": v2}}, 404)
	h.fail("admin", "PUT", path+"/"+v1, map[string]any{"volumeAttachment": map[string]any{"volumeId": "1b7e3a5e-0000-4000-8000-000000000000"}}, 400)

	// Detach: 202, then the volume leaves the list and is available.
	h.json("a", "DELETE", path+"/"+v1, nil, 202)
	h.eventually("v1 detached", func() bool { return len(h.attachments("a", id)) == 1 })
	if v := fv.Get(v1); v.Status != "available" || v.Attachment != nil || len(v.Connections) != 0 {
		t.Fatalf("volume after detach %+v", v)
	}
	if calls := strings.Join(fv.Calls(), ","); !strings.Contains(calls, "os-begin_detaching "+v1) || !strings.Contains(calls, "os-detach "+v1) {
		t.Fatalf("calls %s", calls)
	}
	// The freed device is handed out again.
	att3 := h.json("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": v1}}, 200)["volumeAttachment"].(map[string]any)
	if att3["device"] != "/dev/vdb" {
		t.Fatalf("re-attach device %v", att3["device"])
	}
	h.waitVolume(fv, v1, "in-use")

	// Stop and start keep the volumes.
	h.action("a", id, map[string]any{"os-stop": nil}, 202)
	h.waitStatus("a", id, "SHUTOFF")
	h.action("a", id, map[string]any{"os-start": nil}, 202)
	h.waitStatus("a", id, "ACTIVE")
	if n := len(h.attachments("a", id)); n != 2 {
		t.Fatalf("%d attachments after a power cycle", n)
	}
	for _, c := range agent.Commands() {
		if c.Op == compute.OpStart && len(c.Instance.Volumes) != 2 {
			t.Fatalf("start command volumes %+v", c.Instance.Volumes)
		}
	}
}

// A server being rescued, or in a task, refuses volume changes with 409.
func TestVolumeAttachStates(t *testing.T) {
	h, fv, _ := volumeHarness(t, fakeagent.Config{})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	vol := fv.Add(projA, 1, false, nil)
	h.action("a", id, map[string]any{"rescue": map[string]any{}}, 200)
	h.waitStatus("a", id, "RESCUE")
	path := "/v2.1/servers/" + id + "/os-volume_attachments"
	h.fail("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": vol}}, 409)
	if v := fv.Get(vol); v.Status != "available" {
		t.Fatalf("a refused attach left the volume %s", v.Status)
	}
}

// When the host fails to plug the disk, the volume is given back and the
// mapping dropped; the failure is on the instance action.
func TestVolumeAttachRollback(t *testing.T) {
	h, fv, _ := volumeHarness(t, fakeagent.Config{FailVolume: func(cmd compute.Command) *compute.Fault {
		return &compute.Fault{Code: 500, Message: "device_add failed"}
	}})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	vol := fv.Add(projA, 1, false, nil)
	h.json("a", "POST", "/v2.1/servers/"+id+"/os-volume_attachments", map[string]any{"volumeAttachment": map[string]any{"volumeId": vol}}, 200)
	h.eventually("attachment rolled back", func() bool { return len(h.attachments("a", id)) == 0 })
	h.waitVolume(fv, vol, "available")
	if v := fv.Get(vol); len(v.Connections) != 0 {
		t.Fatalf("connection left %+v", v.Connections)
	}
	acts := h.json("a", "GET", "/v2.1/servers/"+id+"/os-instance-actions", nil, 200)["instanceActions"].([]any)
	var reqID string
	for _, a := range acts {
		if a.(map[string]any)["action"] == "attach_volume" {
			reqID = a.(map[string]any)["request_id"].(string)
		}
	}
	if reqID == "" {
		t.Fatalf("no attach_volume action in %v", acts)
	}
	act := h.json("admin", "GET", "/v2.1/servers/"+id+"/os-instance-actions/"+reqID, nil, 200)["instanceAction"].(map[string]any)
	ev := act["events"].([]any)
	if len(ev) != 1 || ev[0].(map[string]any)["result"] != "Error" {
		t.Fatalf("events %v", ev)
	}
	if s := h.server("a", id); s["status"] != "ACTIVE" {
		t.Fatalf("server %v after a failed attach", s["status"])
	}
}

// Deleting a server detaches its volumes: delete_on_termination ones are
// deleted, the others are available again.
func TestDeleteServerWithVolumes(t *testing.T) {
	h, fv, _ := volumeHarness(t, fakeagent.Config{})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	keep, drop := fv.Add(projA, 1, false, nil), fv.Add(projA, 1, false, nil)
	path := "/v2.1/servers/" + id + "/os-volume_attachments"
	h.json("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": keep}}, 200)
	h.json("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": drop, "delete_on_termination": true}}, 200, mv("2.79"))
	h.waitVolume(fv, keep, "in-use")
	h.waitVolume(fv, drop, "in-use")
	h.json("a", "DELETE", "/v2.1/servers/"+id, nil, 204)
	h.eventually("volumes released", func() bool { return fv.Get(drop) == nil })
	// The two are released one after the other: wait for the second too.
	h.waitVolume(fv, keep, "available")
	if v := fv.Get(keep); v.Status != "available" || v.Attachment != nil || len(v.Connections) != 0 {
		t.Fatalf("kept volume %+v", v)
	}
}

// Boot from volume: an existing bootable volume at boot index 0 and no
// image; the server shows image "", boots with the volume's image
// properties, attaches the volume and takes no disk from its host.
func TestBootFromVolume(t *testing.T) {
	h, fv, agent := volumeHarness(t, fakeagent.Config{})
	meta := map[string]string{"image_id": imageID, "kernel_id": "k-1", "ramdisk_id": "r-1", "os_command_line": "console=ttyS0", "min_disk": "1"}
	root := fv.Add(projA, 1, true, meta)
	data := fv.Add(projA, 1, false, nil)
	bdm := []map[string]any{
		{"uuid": root, "source_type": "volume", "destination_type": "volume", "boot_index": "0", "delete_on_termination": true},
		{"uuid": data, "source_type": "volume", "destination_type": "volume"},
	}
	body := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "bfv", "imageRef": "", "flavorRef": "1",
		"block_device_mapping_v2": bdm}}, 202)
	id := body["server"].(map[string]any)["id"].(string)
	s := h.waitStatus("a", id, "ACTIVE")
	if s["image"] != "" {
		t.Fatalf("image %#v, want \"\"", s["image"])
	}
	h.waitVolume(fv, root, "in-use")
	h.waitVolume(fv, data, "in-use")
	va := h.server("a", id)["os-extended-volumes:volumes_attached"].([]any)
	if len(va) != 2 || va[0].(map[string]any)["id"] != root || va[1].(map[string]any)["id"] != data {
		t.Fatalf("volumes_attached %v", va)
	}
	list := h.attachments("a", id)
	if list[0].(map[string]any)["device"] != "/dev/vda" || list[1].(map[string]any)["device"] != "/dev/vdb" {
		t.Fatalf("devices %v", list)
	}
	var build *compute.Command
	for _, c := range agent.Commands() {
		if c.Op == compute.OpBuild && c.Instance.ID == id {
			build = &c
		}
	}
	if build == nil || build.Instance.ImageID != "" || build.Instance.ImageProperties["kernel_id"] != "k-1" ||
		build.Instance.ImageProperties["image_id"] != "" || len(build.Instance.Volumes) != 2 ||
		build.Instance.Volumes[0].BootIndex != 0 || build.Instance.Volumes[0].Conn == nil || build.Instance.Volumes[1].Conn == nil {
		t.Fatalf("build command %+v", build)
	}
	hv := h.json("admin", "GET", "/v2.1/os-hypervisors/detail", nil, 200)["hypervisors"].([]any)[0].(map[string]any)
	if hv["local_gb_used"] != float64(0) {
		t.Fatalf("a volume-backed server took %v GB of its host's disk", hv["local_gb_used"])
	}
	// The root volume cannot be detached; rebuilding is refused.
	h.fail("a", "DELETE", "/v2.1/servers/"+id+"/os-volume_attachments/"+root, nil, 400)
	h.fail("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"rebuild": map[string]any{"imageRef": imageID}}, 400)

	h.json("a", "DELETE", "/v2.1/servers/"+id, nil, 204)
	h.eventually("root volume deleted with its server", func() bool { return fv.Get(root) == nil })
	h.waitVolume(fv, data, "available")
}

// The checks of block_device_mapping_v2 at create: each one refuses with
// 400 and leaves every volume as it was.
func TestBootFromVolumeRefusals(t *testing.T) {
	h, fv, _ := volumeHarness(t, fakeagent.Config{})
	plain := fv.Add(projA, 1, false, nil)
	boot := fv.Add(projA, 1, true, nil)
	busy := fv.Add(projA, 1, true, nil)
	fv.SetStatus(busy, "in-use")
	create := func(bdm []map[string]any, extra map[string]any) string {
		srv := map[string]any{"name": "x", "imageRef": "", "flavorRef": "1", "block_device_mapping_v2": bdm}
		for k, v := range extra {
			srv[k] = v
		}
		return h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": srv}, 400)
	}
	vol := func(id string, extra map[string]any) map[string]any {
		m := map[string]any{"uuid": id, "source_type": "volume", "destination_type": "volume", "boot_index": 0}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	if msg := create([]map[string]any{vol(plain, nil)}, nil); !strings.Contains(msg, "not bootable") {
		t.Fatalf("non-bootable: %s", msg)
	}
	create([]map[string]any{vol(busy, nil)}, nil)
	create([]map[string]any{vol("1b7e3a5e-0000-4000-8000-000000000000", nil)}, nil)
	create([]map[string]any{vol(boot, nil), vol(plain, map[string]any{"destination_type": "invalid", "boot_index": 1})}, nil)
	create([]map[string]any{vol(boot, nil), vol(plain, map[string]any{"boot_index": "0"})}, nil)
	create([]map[string]any{{"source_type": "blank", "destination_type": "volume", "boot_index": 0, "volume_size": 1}}, nil)
	create([]map[string]any{{"source_type": "image", "uuid": imageID, "destination_type": "volume", "boot_index": 0}}, nil)
	create([]map[string]any{vol(boot, nil)}, map[string]any{"max_count": 2})
	create([]map[string]any{vol(boot, map[string]any{"bogus": 1})}, nil)
	for _, id := range []string{plain, boot} {
		if v := fv.Get(id); v.Status != "available" {
			t.Fatalf("volume %s left %s by a refused create", id, v.Status)
		}
	}
	// Missing both an image and a boot volume.
	h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "x", "imageRef": "", "flavorRef": "1"}}, 400)
	// An image at boot index 0 with a data volume beside it is fine.
	srv := map[string]any{"name": "img", "imageRef": imageID, "flavorRef": "1", "block_device_mapping_v2": []map[string]any{
		{"uuid": imageID, "source_type": "image", "destination_type": "local", "boot_index": 0},
		{"uuid": plain, "source_type": "volume", "destination_type": "volume", "boot_index": -1}}}
	id := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": srv}, 202)["server"].(map[string]any)["id"].(string)
	s := h.waitStatus("a", id, "ACTIVE")
	if img, _ := s["image"].(map[string]any); img["id"] != imageID {
		t.Fatalf("image %v", s["image"])
	}
	h.waitVolume(fv, plain, "in-use")
	if d := h.attachments("a", id)[0].(map[string]any)["device"]; d != "/dev/vdb" {
		t.Fatalf("data volume device %v", d)
	}
}

// image→volume: the API has the volume made, the build waits for it in
// task_state block_device_mapping, then boots from it; a volume that
// ends in error fails the build and is deleted (delete_on_termination).
func TestBootFromImageToVolume(t *testing.T) {
	h, fv, _ := volumeHarness(t, fakeagent.Config{})
	fv.SetCreateStatus("creating")
	bdm := []map[string]any{{"uuid": imageID, "source_type": "image", "destination_type": "volume", "boot_index": 0,
		"volume_size": 1, "delete_on_termination": true}}
	id := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "i2v", "flavorRef": "1",
		"block_device_mapping_v2": bdm}}, 202)["server"].(map[string]any)["id"].(string)
	h.eventually("waiting for its volume", func() bool {
		return h.server("a", id)["OS-EXT-STS:task_state"] == "block_device_mapping"
	})
	vols := fv.IDs()
	if len(vols) != 1 {
		t.Fatalf("volumes %v", vols)
	}
	fv.SetStatus(vols[0], "available")
	s := h.waitStatus("a", id, "ACTIVE")
	if s["image"] != "" {
		t.Fatalf("image %#v", s["image"])
	}
	h.waitVolume(fv, vols[0], "in-use")

	bad := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "i2v-bad", "flavorRef": "1",
		"block_device_mapping_v2": bdm}}, 202)["server"].(map[string]any)["id"].(string)
	var badVol string
	h.eventually("second volume asked for", func() bool {
		for _, v := range fv.IDs() {
			if v != vols[0] {
				badVol = v
			}
		}
		return badVol != ""
	})
	fv.SetStatus(badVol, "error")
	s = h.waitStatus("a", bad, "ERROR")
	if f, _ := s["fault"].(map[string]any); !strings.Contains(f["message"].(string), badVol) {
		t.Fatalf("fault %v", s["fault"])
	}
	h.eventually("failed build's volume deleted", func() bool { return fv.Get(badVol) == nil })
	if slices.Contains(fv.IDs(), badVol) {
		t.Fatal("volume kept")
	}
}

// gophercloud's volumeattach calls, a second client judging the wire.
func TestGophercloudVolumeAttach(t *testing.T) {
	h, fv, _ := volumeHarness(t, fakeagent.Config{})
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	vol := fv.Add(projA, 1, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := h.client("a", "2.79")
	att, err := volumeattach.Create(ctx, c, id, volumeattach.CreateOpts{VolumeID: vol}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if att.VolumeID != vol || att.ServerID != id || att.Device != "/dev/vdb" || att.ID != vol {
		t.Fatalf("created %+v", att)
	}
	h.waitVolume(fv, vol, "in-use")
	pages, err := volumeattach.List(c, id).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, err := volumeattach.ExtractVolumeAttachments(pages)
	if err != nil || len(list) != 1 || list[0].VolumeID != vol || list[0].Device != "/dev/vdb" {
		t.Fatalf("list %+v %v", list, err)
	}
	got, err := volumeattach.Get(ctx, c, id, vol).Extract()
	if err != nil || got.VolumeID != vol || got.DeleteOnTermination == nil || *got.DeleteOnTermination {
		t.Fatalf("get %+v %v", got, err)
	}
	if err := volumeattach.Delete(ctx, c, id, vol).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	h.waitVolume(fv, vol, "available")
}

// Tempest's two block_device_mapping_v2 negatives, with its exact
// bodies: a non-bootable volume at boot_index "0" (a string) and an
// invalid destination_type in the second mapping after a local image.
// Both are 400 and leave the volumes as they were.
func TestBootFromVolumeTempestNegatives(t *testing.T) {
	h, fv, _ := volumeHarness(t, fakeagent.Config{})
	plain := fv.Add(projA, 1, false, nil)
	nonBootable := map[string]any{"name": "x", "imageRef": "", "flavorRef": "1", "block_device_mapping_v2": []map[string]any{
		{"boot_index": "0", "uuid": plain, "source_type": "volume", "destination_type": "volume", "delete_on_termination": false}}}
	if msg := h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": nonBootable}, 400); !strings.Contains(msg, "not bootable") {
		t.Errorf("non-bootable volume: %q", msg)
	}
	invalid2nd := map[string]any{"name": "y", "imageRef": imageID, "flavorRef": "1", "block_device_mapping_v2": []map[string]any{
		{"source_type": "image", "delete_on_termination": true, "boot_index": 0, "uuid": imageID, "destination_type": "local"},
		{"source_type": "volume", "uuid": plain, "destination_type": "invalid"}}}
	if msg := h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": invalid2nd}, 400); !strings.Contains(msg, "destination_type") {
		t.Errorf("invalid destination_type: %q", msg)
	}
	if v := fv.Get(plain); v.Status != "available" {
		t.Errorf("volume left %s", v.Status)
	}
	if servers := h.json("a", "GET", "/v2.1/servers", nil, 200)["servers"].([]any); len(servers) != 0 {
		t.Errorf("refused creates left servers %v", servers)
	}
}
