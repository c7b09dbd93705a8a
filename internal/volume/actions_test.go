package volume_test

import (
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

const serverID = "9d0f5a9b-7f69-4c0e-9d7c-2f2b9f4b8a11"

// TestNovaAttachFlow is the legacy flow Nova drives with an admin token
// in its service project, whatever project owns the volume: reserve,
// initialize_connection, attach, then begin_detaching, terminate and
// detach.
func TestNovaAttachFlow(t *testing.T) {
	h := newHarness(t)
	id := h.createVolume("a", map[string]any{"size": 1, "name": "data"}, "available")["id"].(string)
	nova := func(body any, want int) map[string]any {
		t.Helper()
		// The admin's URL names its own project, not the volume's.
		return h.json("admin", "POST", "/v3/"+projX+"/volumes/"+id+"/action", body, want)
	}
	nova(map[string]any{"os-reserve": map[string]any{}}, 202)
	if st := h.waitVolume("a", id, "attaching")["status"]; st != "attaching" {
		t.Fatal(st)
	}
	msg := h.fail("admin", "POST", "/v3/"+projX+"/volumes/"+id+"/action", map[string]any{"os-reserve": map[string]any{}}, 400)
	if msg != "Invalid volume: Volume status must be available to reserve, but the status is attaching." {
		t.Fatalf("second reserve: %q", msg)
	}
	var ci connectionInfoResp
	h.strict("admin", "POST", "/v3/"+projX+"/volumes/"+id+"/action", map[string]any{"os-initialize_connection": map[string]any{"connector": map[string]any{"host": "compute1"}}}, 200, &ci)
	d := ci.ConnectionInfo.Data
	if ci.ConnectionInfo.DriverVolumeType != "nbd" || d.VolumeID != id || d.Host != "127.0.0.1" || d.Port != 10809 || d.TLSPSKIdentity != "compute1" ||
		len(d.TLSPSKKey) != 64 || d.AccessMode != "rw" || d.ReadOnly || !strings.HasPrefix(d.Export, id+"-") {
		t.Fatalf("connection_info %+v", ci)
	}
	if _, err := hex.DecodeString(d.TLSPSKKey); err != nil {
		t.Fatalf("psk key %q", d.TLSPSKKey)
	}
	// Idempotent: asking again gives the same export.
	var again connectionInfoResp
	h.strict("admin", "POST", "/v3/"+projX+"/volumes/"+id+"/action", map[string]any{"os-initialize_connection": map[string]any{"connector": map[string]any{"host": "compute1"}}}, 200, &again)
	if again.ConnectionInfo.Data != ci.ConnectionInfo.Data {
		t.Fatalf("second export differs: %+v", again)
	}
	h.fail("admin", "POST", "/v3/"+projX+"/volumes/"+id+"/action", map[string]any{"os-initialize_connection": map[string]any{}}, 400)

	nova(map[string]any{"os-attach": map[string]any{"instance_uuid": serverID, "mountpoint": "/dev/vdb", "mode": "rw", "host_name": "compute1"}}, 202)
	var shown volumeDetailResp
	h.strict("a", "GET", path("a", "/volumes/"+id), nil, 200, &shown)
	v := shown.Volume
	if v.Status != "in-use" || len(v.Attachments) != 1 {
		t.Fatalf("after attach %+v", v)
	}
	at := v.Attachments[0]
	if *at.ServerID != serverID || *at.Device != "/dev/vdb" || *at.HostName != "compute1" || at.VolumeID != id || at.ID != id || at.AttachedAt == nil || at.AttachmentID == "" {
		t.Fatalf("attachment %+v", at)
	}
	// An attached volume cannot be deleted.
	h.fail("a", "DELETE", path("a", "/volumes/"+id), nil, 400)

	nova(map[string]any{"os-begin_detaching": map[string]any{}}, 202)
	h.waitVolume("a", id, "detaching")
	nova(map[string]any{"os-roll_detaching": map[string]any{}}, 202)
	h.waitVolume("a", id, "in-use")
	nova(map[string]any{"os-begin_detaching": map[string]any{}}, 202)
	nova(map[string]any{"os-terminate_connection": map[string]any{"connector": map[string]any{"host": "compute1"}}}, 202)
	if h.agents["stor1"].Exported(id, "compute1") {
		t.Fatal("still exported after terminate_connection")
	}
	nova(map[string]any{"os-detach": map[string]any{"attachment_id": at.AttachmentID}}, 202)
	after := h.waitVolume("a", id, "available")
	if len(after["attachments"].([]any)) != 0 {
		t.Fatalf("attachments left %v", after["attachments"])
	}
	// Detaching a volume with nothing attached is done, as Cinder's
	// volume manager has it (Tempest's clean-up after a force detach).
	h.action("a", id, map[string]any{"os-detach": map[string]any{}}, 202)
	h.waitVolume("a", id, "available")

	// unreserve returns a reserved volume.
	nova(map[string]any{"os-reserve": map[string]any{}}, 202)
	nova(map[string]any{"os-unreserve": map[string]any{}}, 202)
	h.waitVolume("a", id, "available")
	// The owner's own token works too, and another project's does not.
	h.action("a", id, map[string]any{"os-reserve": map[string]any{}}, 202)
	h.fail("b", "POST", path("b", "/volumes/"+id+"/action"), map[string]any{"os-unreserve": map[string]any{}}, 404)
	h.fail("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-reserve": map[string]any{}, "os-unreserve": map[string]any{}}, 400)
	h.fail("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-frobnicate": map[string]any{}}, 400)
}

// TestAttachWithoutReserve is Tempest's test_attach_detach_volume_to_instance:
// os-attach straight on an available volume, then os-detach.
func TestAttachWithoutReserve(t *testing.T) {
	h := newHarness(t)
	id := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	h.action("a", id, map[string]any{"os-attach": map[string]any{"instance_uuid": serverID, "mountpoint": "/dev/vdc", "mode": "rw"}}, 202)
	v := h.waitVolume("a", id, "in-use")
	if v["metadata"].(map[string]any)["attached_mode"] != "rw" {
		t.Fatalf("metadata %v", v["metadata"])
	}
	h.fail("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-attach": map[string]any{"instance_uuid": serverID, "mountpoint": "/dev/vdd"}}, 400)
	h.fail("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-attach": map[string]any{"instance_uuid": serverID, "mountpoint": "/dev/vdd", "mode": "xx"}}, 400)
	h.action("a", id, map[string]any{"os-detach": map[string]any{}}, 202)
	v = h.waitVolume("a", id, "available")
	if _, ok := v["metadata"].(map[string]any)["attached_mode"]; ok {
		t.Fatalf("metadata after detach %v", v["metadata"])
	}
}

// TestReserveRace: of 50 concurrent os-reserve calls exactly one wins,
// the others get Cinder's 400; the compare-and-set decides.
func TestReserveRace(t *testing.T) {
	h := newHarness(t)
	id := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, _ := h.do("admin", "POST", "/v3/"+projX+"/volumes/"+id+"/action", map[string]any{"os-reserve": map[string]any{}})
			mu.Lock()
			counts[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[202] != 1 || counts[400] != 49 {
		t.Fatalf("statuses %v, want one 202 and 49 400s", counts)
	}
}

// TestVolumeActions is test_volumes_actions and the extend negatives.
func TestVolumeActions(t *testing.T) {
	h := newHarness(t)
	id := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	for _, flag := range []bool{true, false} {
		status, body, _ := h.do("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-set_bootable": map[string]any{"bootable": flag}})
		if status != 200 || len(body) != 0 {
			t.Fatalf("set_bootable: %d %s", status, body)
		}
		want := "false"
		if flag {
			want = "true"
		}
		if got := h.waitVolume("a", id, "available")["bootable"]; got != want {
			t.Fatalf("bootable %v, want %v", got, want)
		}
	}
	h.fail("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-set_bootable": map[string]any{"bootable": "maybe"}}, 400)
	for _, flag := range []bool{true, false} {
		h.action("a", id, map[string]any{"os-update_readonly_flag": map[string]any{"readonly": flag}}, 202)
		want := "False"
		if flag {
			want = "True"
		}
		if got := h.waitVolume("a", id, "available")["metadata"].(map[string]any)["readonly"]; got != want {
			t.Fatalf("readonly %v, want %v", got, want)
		}
	}
	// A read-only volume is exported read-only.
	h.action("a", id, map[string]any{"os-update_readonly_flag": map[string]any{"readonly": true}}, 202)
	var ci connectionInfoResp
	h.strict("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-initialize_connection": map[string]any{"connector": map[string]any{"host": "c2"}}}, 200, &ci)
	if ci.ConnectionInfo.Data.AccessMode != "ro" || !ci.ConnectionInfo.Data.ReadOnly {
		t.Fatalf("read-only export %+v", ci)
	}
	h.action("a", id, map[string]any{"os-update_readonly_flag": map[string]any{"readonly": false}}, 202)

	for _, bad := range []any{1, "abc", nil} {
		h.fail("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-extend": map[string]any{"new_size": bad}}, 400)
	}
	h.action("a", id, map[string]any{"os-extend": map[string]any{"new_size": 3}}, 202)
	if v := h.waitVolume("a", id, "available"); v["size"] != float64(3) {
		t.Fatalf("extended size %v", v["size"])
	}

	up := h.action("a", id, map[string]any{"os-volume_upload_image": map[string]any{"image_name": "from-vol", "disk_format": "raw"}}, 202)["os-volume_upload_image"].(map[string]any)
	if up["image_name"] != "from-vol" || up["disk_format"] != "raw" || up["status"] != "uploading" || up["image_id"] == "" || up["container_format"] != "bare" {
		t.Fatalf("upload %v", up)
	}
	h.images.mu.Lock()
	if len(h.images.created) != 1 || h.images.tokens[0] != "a" || h.images.created[0].DiskFormat != "raw" {
		t.Fatalf("images created %+v with %v", h.images.created, h.images.tokens)
	}
	h.images.mu.Unlock()
	h.waitVolume("a", id, "available")
	var sawUpload bool
	for _, c := range h.agents["stor1"].Commands() {
		if c.Op == "upload" && c.Upload != nil && c.Upload.ImageID == up["image_id"] && c.ReturnStatus == "available" {
			sawUpload = true
		}
	}
	if !sawUpload {
		t.Fatal("no upload command reached the agent")
	}
	h.fail("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-volume_upload_image": map[string]any{"image_name": "x", "disk_format": "vmdk"}}, 400)
	h.fail("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-volume_upload_image": map[string]any{"disk_format": "raw"}}, 400)

	// Admin actions.
	h.fail("a", "POST", path("a", "/volumes/"+id+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "error"}}, 403)
	h.fail("admin", "POST", path("admin", "/volumes/"+id+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "bogus"}}, 400)
	h.json("admin", "POST", path("admin", "/volumes/"+id+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "maintenance"}}, 202)
	h.waitVolume("a", id, "maintenance")
	h.fail("a", "DELETE", path("a", "/volumes/"+id), nil, 400)
	h.json("admin", "POST", path("admin", "/volumes/"+id+"/action"), map[string]any{"os-force_delete": map[string]any{}}, 202)
	h.waitGone("a", path("a", "/volumes/"+id))

	// force_detach drops an attachment whatever the state.
	id2 := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	h.action("a", id2, map[string]any{"os-attach": map[string]any{"instance_uuid": serverID, "mountpoint": "/dev/vdb"}}, 202)
	h.json("admin", "POST", path("admin", "/volumes/"+id2+"/action"), map[string]any{"os-force_detach": map[string]any{"connector": map[string]any{"host": "compute1"}}}, 202)
	h.waitVolume("a", id2, "available")
}

// TestAgentFailures: an agent's failed create leaves error, a failed
// extend error_extending, a failed delete error_deleting.
func TestAgentFailures(t *testing.T) {
	h := newBareHarness(t, testDB(t))
	cfg := fakeagentConfig("flaky")
	cfg.Fail = func(cmd agentproto.Command) string {
		if cmd.SizeGB == 7 || cmd.Op == agentproto.OpDelete {
			return "disk on fire"
		}
		return ""
	}
	h.addHost(cfg)
	h.createVolume("a", map[string]any{"size": 7}, "error")
	id := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	h.action("a", id, map[string]any{"os-extend": map[string]any{"new_size": 7}}, 202)
	if v := h.waitVolume("a", id, "error_extending"); v["size"] != float64(1) {
		t.Fatalf("size after a failed extend %v", v["size"])
	}
	h.json("admin", "POST", path("admin", "/volumes/"+id+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "available"}}, 202)
	h.json("a", "DELETE", path("a", "/volumes/"+id), nil, 202)
	h.waitVolume("a", id, "error_deleting")
}
