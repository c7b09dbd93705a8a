package volume_test

import (
	"net/url"
	"testing"
)

// TestSnapshots is test_volumes_snapshots: create (202, create schema)
// with metadata and size equal to the volume's, show (detail schema with
// progress and project), update, list with params, metadata, delete;
// and the negatives (unknown or null volume_id is a 404).
func TestSnapshots(t *testing.T) {
	h := newHarness(t)
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	var created snapshotResp
	h.strict("a", "POST", path("a", "/snapshots"), map[string]any{"snapshot": map[string]any{"volume_id": vol, "display_name": "s1", "metadata": map[string]string{"k": "v"}}}, 202, &created)
	sn := created.Snapshot
	if sn.Status != "creating" || sn.Size != 1 || sn.VolumeID != vol || *sn.Name != "s1" || sn.Metadata["k"] != "v" {
		t.Fatalf("created %+v", sn)
	}
	var shown snapshotDetailResp
	h.eventually("snapshot available", func() bool {
		h.strict("a", "GET", path("a", "/snapshots/"+sn.ID), nil, 200, &shown)
		return shown.Snapshot.Status == "available"
	})
	if shown.Snapshot.Progress != "100%" || shown.Snapshot.ProjectID != projA {
		t.Fatalf("shown %+v", shown)
	}
	var updated snapshotResp
	h.strict("a", "PUT", path("a", "/snapshots/"+sn.ID), map[string]any{"snapshot": map[string]any{"name": "s1-new", "description": "d"}}, 200, &updated)
	if *updated.Snapshot.Name != "s1-new" || *updated.Snapshot.Description != "d" {
		t.Fatalf("updated %+v", updated)
	}
	h.strict("a", "POST", path("a", "/snapshots"), map[string]any{"snapshot": map[string]any{"volume_id": vol, "name": "s2"}}, 202, &created)
	h.eventually("second snapshot", func() bool {
		return h.json("a", "GET", path("a", "/snapshots/"+created.Snapshot.ID), nil, 200)["snapshot"].(map[string]any)["status"] == "available"
	})
	var list snapshotListResp
	h.strict("a", "GET", path("a", "/snapshots?name=s1-new"), nil, 200, &list)
	if len(list.Snapshots) != 1 || list.Snapshots[0].ID != sn.ID {
		t.Fatalf("by name %+v", list)
	}
	var detail snapshotDetailListResp
	h.strict("a", "GET", path("a", "/snapshots/detail?status=available&volume_id="+vol), nil, 200, &detail)
	if len(detail.Snapshots) != 2 {
		t.Fatalf("detail by status %+v", detail)
	}
	h.strict("a", "GET", path("a", "/snapshots?limit=1&sort_key=created_at&sort_dir=asc"), nil, 200, &list)
	if len(list.Snapshots) != 1 || list.Snapshots[0].ID != sn.ID || len(list.SnapshotsLinks) != 1 {
		t.Fatalf("first page %+v", list)
	}
	next, _ := url.Parse(list.SnapshotsLinks[0].Href)
	h.strict("a", "GET", next.RequestURI(), nil, 200, &list)
	if len(list.Snapshots) != 1 || list.Snapshots[0].ID != created.Snapshot.ID {
		t.Fatalf("second page %+v", list)
	}
	h.strict("a", "GET", path("a", "/snapshots?limit=0"), nil, 200, &list)
	if len(list.Snapshots) != 0 {
		t.Fatalf("limit 0 %+v", list)
	}
	h.fail("a", "GET", path("a", "/snapshots?limit=invalid"), nil, 400)
	h.fail("a", "GET", path("a", "/snapshots?sort_key=invalid"), nil, 400)
	h.fail("a", "GET", path("a", "/snapshots?marker=6a1b1f8a-1a5a-4a5e-9e63-0e1c2b8a9f10"), nil, 404)

	mp := path("a", "/snapshots/"+sn.ID+"/metadata")
	if m := h.json("a", "POST", mp, map[string]any{"metadata": map[string]string{"k2": "v2"}}, 200)["metadata"].(map[string]any); len(m) != 2 {
		t.Fatalf("snapshot metadata merge %v", m)
	}
	if m := h.json("a", "PUT", mp, map[string]any{"metadata": map[string]string{"k3": "v3"}}, 200)["metadata"].(map[string]any); len(m) != 1 {
		t.Fatalf("snapshot metadata replace %v", m)
	}
	if m := h.json("a", "GET", mp+"/k3", nil, 200)["meta"].(map[string]any); m["k3"] != "v3" {
		t.Fatalf("snapshot metadata item %v", m)
	}
	h.json("a", "DELETE", mp+"/k3", nil, 200)

	h.fail("a", "POST", path("a", "/snapshots"), map[string]any{"snapshot": map[string]any{"volume_id": "6a1b1f8a-1a5a-4a5e-9e63-0e1c2b8a9f10"}}, 404)
	h.fail("a", "POST", path("a", "/snapshots"), map[string]any{"snapshot": map[string]any{"volume_id": nil}}, 404)
	h.fail("b", "GET", path("b", "/snapshots/"+sn.ID), nil, 404)

	// An in-use volume needs force.
	h.action("a", vol, map[string]any{"os-attach": map[string]any{"instance_uuid": serverID, "mountpoint": "/dev/vdb"}}, 202)
	h.fail("a", "POST", path("a", "/snapshots"), map[string]any{"snapshot": map[string]any{"volume_id": vol}}, 400)
	h.json("a", "POST", path("a", "/snapshots"), map[string]any{"snapshot": map[string]any{"volume_id": vol, "force": true}}, 202)

	// os-update_snapshot_status (the owner may, as Nova does for the
	// snapshots it makes) moves creating to error with a progress.
	h.fail("a", "POST", path("a", "/snapshots/"+sn.ID+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "creating"}}, 403)
	h.json("admin", "POST", path("admin", "/snapshots/"+sn.ID+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "creating"}}, 202)
	h.json("a", "POST", path("a", "/snapshots/"+sn.ID+"/action"), map[string]any{"os-update_snapshot_status": map[string]any{"status": "error", "progress": "80%"}}, 202)
	h.strict("a", "GET", path("a", "/snapshots/"+sn.ID), nil, 200, &shown)
	if shown.Snapshot.Status != "error" || shown.Snapshot.Progress != "80%" {
		t.Fatalf("after update_snapshot_status %+v", shown.Snapshot)
	}
	h.fail("a", "POST", path("a", "/snapshots/"+sn.ID+"/action"), map[string]any{"os-update_snapshot_status": map[string]any{"status": "available"}}, 400)

	h.json("a", "DELETE", path("a", "/snapshots/"+sn.ID), nil, 202)
	h.waitGone("a", path("a", "/snapshots/"+sn.ID))
	h.fail("a", "DELETE", path("a", "/snapshots/"+sn.ID), nil, 404)
}
