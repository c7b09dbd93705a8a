package volume_test

import (
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/volume"
)

const server2 = "5e5e5e5e-5e5e-45e5-85e5-5e5e5e5e5e5e"

// apiAttachment is Cinder's attachment detail view, exactly.
type apiAttachment struct {
	ID             string         `json:"id"`
	Status         string         `json:"status"`
	Instance       *string        `json:"instance"`
	VolumeID       string         `json:"volume_id"`
	AttachedAt     string         `json:"attached_at"`
	DetachedAt     string         `json:"detached_at"`
	AttachMode     string         `json:"attach_mode"`
	ConnectionInfo map[string]any `json:"connection_info"`
}

type apiAttachmentResp struct {
	Attachment apiAttachment `json:"attachment"`
}

type attachmentSummary struct {
	ID       string  `json:"id"`
	Status   string  `json:"status"`
	Instance *string `json:"instance"`
	VolumeID string  `json:"volume_id"`
}

type attachmentsResp struct {
	Attachments []attachmentSummary `json:"attachments"`
}

type attachmentsDetailResp struct {
	Attachments []apiAttachment `json:"attachments"`
}

var connector = map[string]any{"host": "compute1", "initiator": "iqn.x", "ip": "192.0.2.10", "platform": "x86_64",
	"os_type": "linux", "multipath": false, "mountpoint": "/dev/vdb"}

// TestAttachmentsReserveConnectCompleteDelete is the flow Nova runs
// from Queens on: a reservation without a connector (volume reserved),
// the connector given with PUT (attaching, connection_info from the
// storage host's export), os-complete (3.44: attached, in-use), and
// DELETE (unexported, available). Each route is a 404 below its version.
func TestAttachmentsReserveConnectCompleteDelete(t *testing.T) {
	h := newHarness(t, volume.WithMaxVersion(44))
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	body := map[string]any{"attachment": map[string]any{"volume_uuid": vol, "instance_uuid": server2}}

	h.fail("a", "POST", path("a", "/attachments"), body, 404, mv("3.26"))
	h.fail("a", "GET", path("a", "/attachments"), nil, 404, mv("3.26"))

	var created apiAttachmentResp
	h.strict("a", "POST", path("a", "/attachments"), body, 200, &created, mv("3.27"))
	att := created.Attachment
	if att.Status != "reserved" || att.VolumeID != vol || att.Instance == nil || *att.Instance != server2 ||
		att.AttachMode != "null" || len(att.ConnectionInfo) != 0 || att.AttachedAt != "" || att.DetachedAt != "" {
		t.Fatalf("reserved attachment %+v", att)
	}
	if v := h.waitVolume("a", vol, "reserved"); len(v["attachments"].([]any)) != 0 {
		t.Fatalf("a reserved attachment is listed on the volume: %v", v["attachments"])
	}
	// Reserved is not deletable, and a second reservation of a
	// non-multiattach volume for another server is refused.
	h.fail("a", "DELETE", path("a", "/volumes/"+vol), nil, 400)
	other := map[string]any{"attachment": map[string]any{"volume_uuid": vol, "instance_uuid": "6e6e6e6e-6e6e-46e6-86e6-6e6e6e6e6e6e"}}
	h.fail("a", "POST", path("a", "/attachments"), other, 400, mv("3.27"))
	// Another project sees nothing of it.
	h.fail("b", "GET", path("b", "/attachments/"+att.ID), nil, 404, mv("3.27"))
	var listB attachmentsResp
	h.strict("b", "GET", path("b", "/attachments"), nil, 200, &listB, mv("3.27"))
	if len(listB.Attachments) != 0 {
		t.Fatalf("project b lists %+v", listB)
	}

	var list attachmentsResp
	h.strict("a", "GET", path("a", "/attachments?volume_id="+vol), nil, 200, &list, mv("3.27"))
	if len(list.Attachments) != 1 || list.Attachments[0].ID != att.ID || list.Attachments[0].Status != "reserved" {
		t.Fatalf("list %+v", list)
	}

	var updated apiAttachmentResp
	h.strict("a", "PUT", path("a", "/attachments/"+att.ID), map[string]any{"attachment": map[string]any{"connector": connector}}, 200, &updated, mv("3.27"))
	u := updated.Attachment
	if u.Status != "attaching" || u.AttachMode != "rw" || u.ConnectionInfo["driver_volume_type"] != "nbd" || u.AttachedAt == "" {
		t.Fatalf("connected attachment %+v", u)
	}
	if data := u.ConnectionInfo["data"].(map[string]any); data["volume_id"] != vol || data["access_mode"] != "rw" {
		t.Fatalf("connection data %v", data)
	}
	if !h.agents["stor1"].Exported(vol, "compute1") {
		t.Fatal("the storage host did not export the volume to compute1")
	}
	h.waitVolume("a", vol, "attaching")
	var shown apiAttachmentResp
	h.strict("a", "GET", path("a", "/attachments/"+att.ID), nil, 200, &shown, mv("3.27"))
	if shown.Attachment.ConnectionInfo["driver_volume_type"] != "nbd" {
		t.Fatalf("show %+v", shown)
	}

	complete := map[string]any{"os-complete": map[string]any{}}
	h.fail("a", "POST", path("a", "/attachments/"+att.ID+"/action"), complete, 404, mv("3.43"))
	status, out, _ := h.do("a", "POST", path("a", "/attachments/"+att.ID+"/action"), complete, mv("3.44"))
	if status != 204 || len(out) != 0 {
		t.Fatalf("os-complete: %d %s", status, out)
	}
	v := h.waitVolume("a", vol, "in-use")
	atts := v["attachments"].([]any)
	if len(atts) != 1 || atts[0].(map[string]any)["attachment_id"] != att.ID || atts[0].(map[string]any)["server_id"] != server2 ||
		atts[0].(map[string]any)["device"] != "/dev/vdb" || atts[0].(map[string]any)["host_name"] != "compute1" {
		t.Fatalf("volume attachments %v", atts)
	}
	var detail attachmentsDetailResp
	h.strict("a", "GET", path("a", "/attachments/detail"), nil, 200, &detail, mv("3.44"))
	if len(detail.Attachments) != 1 || detail.Attachments[0].Status != "attached" {
		t.Fatalf("detail %+v", detail)
	}

	var left attachmentsResp
	h.strict("a", "DELETE", path("a", "/attachments/"+att.ID), nil, 200, &left, mv("3.27"))
	if len(left.Attachments) != 0 {
		t.Fatalf("left %+v", left)
	}
	if v := h.waitVolume("a", vol, "available"); len(v["attachments"].([]any)) != 0 {
		t.Fatalf("attachments after delete %v", v["attachments"])
	}
	if h.agents["stor1"].Exported(vol, "compute1") {
		t.Fatal("the export outlived its attachment")
	}
	h.fail("a", "GET", path("a", "/attachments/"+att.ID), nil, 404, mv("3.27"))
}

// TestAttachmentCreateWithConnector reserves and connects in one call;
// a read-only volume is attached "ro"; bad bodies are 400s with nothing
// reserved; deleting a reservation leaves the volume available.
func TestAttachmentCreateWithConnector(t *testing.T) {
	h := newHarness(t, volume.WithMaxVersion(44))
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	for _, bad := range []map[string]any{
		{},
		{"attachment": map[string]any{"instance_uuid": server2}},
		{"attachment": map[string]any{"volume_uuid": "not-a-uuid"}},
		{"attachment": map[string]any{"volume_uuid": vol, "instance_uuid": "nope"}},
		{"attachment": map[string]any{"volume_uuid": vol, "connector": "host1"}},
		{"attachment": map[string]any{"volume_uuid": vol, "connector": map[string]any{"ip": "192.0.2.1"}}},
		{"attachment": map[string]any{"volume_uuid": vol, "mode": "ro"}}, // 3.54
	} {
		h.fail("a", "POST", path("a", "/attachments"), bad, 400, mv("3.44"))
	}
	h.waitVolume("a", vol, "available")
	h.fail("a", "POST", path("a", "/attachments"), map[string]any{"attachment": map[string]any{"volume_uuid": "7e7e7e7e-7e7e-47e7-87e7-7e7e7e7e7e7e"}}, 404, mv("3.44"))

	h.action("a", vol, map[string]any{"os-update_readonly_flag": map[string]any{"readonly": true}}, 202)
	var created apiAttachmentResp
	h.strict("a", "POST", path("a", "/attachments"), map[string]any{"attachment": map[string]any{"volume_uuid": vol, "instance_uuid": server2,
		"connector": connector}}, 200, &created, mv("3.44"))
	if a := created.Attachment; a.Status != "attaching" || a.AttachMode != "ro" || a.ConnectionInfo["data"].(map[string]any)["access_mode"] != "ro" {
		t.Fatalf("created %+v", a)
	}
	h.waitVolume("a", vol, "attaching")
	h.json("a", "DELETE", path("a", "/attachments/"+created.Attachment.ID), nil, 200, mv("3.44"))
	h.waitVolume("a", vol, "available")

	// A bare reservation goes without touching the storage host.
	var res apiAttachmentResp
	h.strict("a", "POST", path("a", "/attachments"), map[string]any{"attachment": map[string]any{"volume_uuid": vol}}, 200, &res, mv("3.44"))
	if res.Attachment.Instance != nil {
		t.Fatalf("instance %v", *res.Attachment.Instance)
	}
	h.json("a", "DELETE", path("a", "/attachments/"+res.Attachment.ID), nil, 200, mv("3.44"))
	h.waitVolume("a", vol, "available")
}

// TestAttachmentExportFailure: when the storage host cannot export,
// the create fails and leaves no reservation behind.
func TestAttachmentExportFailure(t *testing.T) {
	h := newHarness(t, volume.WithMaxVersion(44))
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	if err := h.agents["stor1"].Stop(); err != nil {
		t.Fatal(err)
	}
	status, out, _ := h.do("a", "POST", path("a", "/attachments"), map[string]any{"attachment": map[string]any{"volume_uuid": vol,
		"instance_uuid": server2, "connector": connector}}, mv("3.44"))
	if status < 500 {
		t.Fatalf("create with no storage host: %d %s", status, out)
	}
	h.waitVolume("a", vol, "available")
	var list attachmentsResp
	h.strict("a", "GET", path("a", "/attachments"), nil, 200, &list, mv("3.44"))
	if len(list.Attachments) != 0 {
		t.Fatalf("left behind %+v", list)
	}
}

// TestAttachmentDeleteNeedsTheStorageHost: a connected attachment is
// not forgotten while its export cannot be ended.
func TestAttachmentDeleteNeedsTheStorageHost(t *testing.T) {
	h := newHarness(t, volume.WithMaxVersion(44), func(c *volume.Config) { c.CallTimeout = time.Second })
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	var created apiAttachmentResp
	h.strict("a", "POST", path("a", "/attachments"), map[string]any{"attachment": map[string]any{"volume_uuid": vol,
		"instance_uuid": server2, "connector": connector}}, 200, &created, mv("3.44"))
	if err := h.agents["stor1"].Stop(); err != nil {
		t.Fatal(err)
	}
	if status, out, _ := h.do("a", "DELETE", path("a", "/attachments/"+created.Attachment.ID), nil, mv("3.44")); status < 500 {
		t.Fatalf("delete with the storage host gone: %d %s", status, out)
	}
	h.json("a", "GET", path("a", "/attachments/"+created.Attachment.ID), nil, 200, mv("3.44"))
	h.waitVolume("a", vol, "attaching")
}
