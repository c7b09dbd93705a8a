package compute_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute"
)

// cinderStub answers the Cinder v3 calls the volume proxy's client makes,
// with Cinder's bodies, and records the requests.
type cinderStub struct {
	volumes   []map[string]any // in Cinder's list order
	snapshots []map[string]any
	mu        sync.Mutex
	requests  []string         // guarded by mu; "METHOD path?query"
	bodies    []map[string]any // guarded by mu; the decoded request bodies
}

// page applies limit and marker as Cinder does.
func (c *cinderStub) page(w http.ResponseWriter, r *http.Request, key string, rows []map[string]any) {
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit < 1 || limit > 1000 {
		http.Error(w, `{"badRequest":{"code":400,"message":"bad limit"}}`, 400)
		return
	}
	start := 0
	if m := r.URL.Query().Get("marker"); m != "" {
		start = -1
		for i, row := range rows {
			if row["id"] == m {
				start = i + 1
			}
		}
		if start < 0 {
			http.Error(w, `{"itemNotFound":{"code":404,"message":"marker not found"}}`, 404)
			return
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{key: rows[start:min(len(rows), start+limit)]})
}

func (c *cinderStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests = append(c.requests, r.Method+" "+r.URL.RequestURI())
	if r.Body != nil {
		var b map[string]any
		if json.NewDecoder(r.Body).Decode(&b) == nil {
			c.bodies = append(c.bodies, b)
		}
	}
	c.mu.Unlock()
	if r.Header.Get("X-Auth-Token") != "user-token" {
		http.Error(w, `{"error":{"code":401,"message":"no token"}}`, http.StatusUnauthorized)
		return
	}
	const p = "/v3/proj"
	switch r.Method + " " + r.URL.Path {
	case "GET " + p + "/volumes/detail":
		c.page(w, r, "volumes", c.volumes)
	case "GET " + p + "/snapshots/detail":
		c.page(w, r, "snapshots", c.snapshots)
	case "GET " + p + "/snapshots/s1":
		_ = json.NewEncoder(w).Encode(map[string]any{"snapshot": c.snapshots[0]})
	case "POST " + p + "/snapshots":
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"snapshot": map[string]any{"id": "s9", "volume_id": "v1", "status": "creating",
			"size": 3, "name": "n", "description": nil, "created_at": "2026-11-27T10:00:00.000001", "metadata": map[string]any{}}})
	case "POST " + p + "/volumes":
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"volume": c.volumes[0]})
	case "DELETE " + p + "/snapshots/s1":
		w.WriteHeader(http.StatusAccepted)
	case "DELETE " + p + "/snapshots/busy":
		http.Error(w, `{"badRequest":{"code":400,"message":"Invalid snapshot: it is busy."}}`, 400)
	default:
		http.Error(w, `{"itemNotFound":{"code":404,"message":"nothing here"}}`, 404)
	}
}

// The client behind Nova's volume proxy calls Cinder's documented
// endpoints with the user's token, reads every page of a long list, maps
// Cinder's bodies and turns its failures into ErrNotFound and
// *VolumeError.
func TestVolumeClientProxyCalls(t *testing.T) {
	stub := &cinderStub{}
	for i := range 501 { // one more than a page
		stub.volumes = append(stub.volumes, map[string]any{"id": fmt.Sprintf("v%03d", i), "name": nil, "status": "available", "size": 1,
			"availability_zone": "nova", "bootable": "false", "multiattach": false, "attachments": []any{}, "description": nil,
			"volume_type": "__DEFAULT__", "snapshot_id": nil, "metadata": map[string]any{}, "created_at": "2026-11-27T10:00:00.000001"})
	}
	stub.volumes[0] = map[string]any{"id": "v000", "name": "first", "status": "in-use", "size": 2, "availability_zone": "nova",
		"bootable": "true", "multiattach": false, "description": "d", "volume_type": "gold", "snapshot_id": "s1",
		"metadata": map[string]any{"Type": "work"}, "created_at": "2026-11-27T10:00:00.123456",
		"attachments": []any{map[string]any{"id": "v000", "attachment_id": "a1", "volume_id": "v000", "server_id": "srv", "device": "/dev/vdb",
			"host_name": "host1", "attached_at": "2026-11-27T10:00:01.000000"}}}
	stub.snapshots = []map[string]any{{"id": "s1", "volume_id": "v000", "status": "available", "size": 2, "name": "snap", "description": nil,
		"created_at": "2026-11-27T10:00:00.5", "metadata": map[string]any{}, "updated_at": nil}}
	srv := httptest.NewServer(stub)
	defer srv.Close()
	c := compute.NewVolumeClient(srv.URL+"/", nil)
	ctx, auth := context.Background(), compute.VolumeAuth{Token: "user-token", Project: "proj"}

	vols, err := c.Volumes(ctx, auth)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 501 || vols[500].ID != "v500" {
		t.Fatalf("%d volumes, last %+v", len(vols), vols[len(vols)-1])
	}
	want := compute.VolumeInfo{ID: "v000", Name: "first", Status: "in-use", Size: 2, AvailabilityZone: "nova", Bootable: true,
		Attachments:   []compute.VolumeAttachmentInfo{{AttachmentID: "a1", ServerID: "srv", Device: "/dev/vdb", HostName: "host1"}},
		ImageMetadata: map[string]string{}, Description: "d", VolumeType: "gold", SnapshotID: "s1",
		Metadata: map[string]string{"Type": "work"}, CreatedAt: "2026-11-27T10:00:00.123456"}
	if !reflect.DeepEqual(vols[0], want) {
		t.Errorf("volume\n got %+v\nwant %+v", vols[0], want)
	}
	if vols[1].Name != "" || vols[1].Description != "" || vols[1].SnapshotID != "" {
		t.Errorf("nulls read as %+v", vols[1])
	}
	wantReqs := []string{"GET /v3/proj/volumes/detail?limit=500", "GET /v3/proj/volumes/detail?limit=500&marker=v499"}
	if !reflect.DeepEqual(stub.requests, wantReqs) {
		t.Errorf("requests %v, want %v", stub.requests, wantReqs)
	}

	snaps, err := c.Snapshots(ctx, auth)
	if err != nil {
		t.Fatal(err)
	}
	wantSnap := compute.SnapshotInfo{ID: "s1", VolumeID: "v000", Status: "available", Size: 2, Name: "snap", CreatedAt: "2026-11-27T10:00:00.5"}
	if len(snaps) != 1 || snaps[0] != wantSnap {
		t.Errorf("snapshots %+v", snaps)
	}
	if sn, err := c.Snapshot(ctx, auth, "s1"); err != nil || *sn != wantSnap {
		t.Errorf("snapshot %+v, %v", sn, err)
	}
	if _, err := c.Snapshot(ctx, auth, "nope"); !errors.Is(err, compute.ErrNotFound) {
		t.Errorf("unknown snapshot: %v", err)
	}

	stub.bodies = nil
	sn, err := c.CreateSnapshot(ctx, auth, compute.SnapshotCreate{VolumeID: "v1", Name: "n", Force: true})
	if err != nil || sn.ID != "s9" || sn.Status != "creating" || sn.Size != 3 || sn.Description != "" {
		t.Errorf("create snapshot %+v, %v", sn, err)
	}
	wantBody := map[string]any{"snapshot": map[string]any{"volume_id": "v1", "name": "n", "force": true}}
	if len(stub.bodies) != 1 || !reflect.DeepEqual(stub.bodies[0], wantBody) {
		t.Errorf("create snapshot sent %v, want %v", stub.bodies, wantBody)
	}

	stub.bodies = nil
	if _, err := c.CreateVolume(ctx, auth, compute.VolumeCreate{Size: 1, Name: "x", Description: "d", VolumeType: "gold",
		Metadata: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	wantBody = map[string]any{"volume": map[string]any{"size": float64(1), "name": "x", "description": "d", "volume_type": "gold",
		"metadata": map[string]any{"k": "v"}}}
	if len(stub.bodies) != 1 || !reflect.DeepEqual(stub.bodies[0], wantBody) {
		t.Errorf("create volume sent %v, want %v", stub.bodies, wantBody)
	}

	if err := c.DeleteSnapshot(ctx, auth, "s1"); err != nil {
		t.Errorf("delete snapshot: %v", err)
	}
	var ve *compute.VolumeError
	if err := c.DeleteSnapshot(ctx, auth, "busy"); !errors.As(err, &ve) || ve.Status != 400 || ve.Message != "Invalid snapshot: it is busy." {
		t.Errorf("refused delete: %v", err)
	}
	if err := c.DeleteSnapshot(ctx, auth, "gone"); !errors.Is(err, compute.ErrNotFound) {
		t.Errorf("unknown delete: %v", err)
	}
	if _, err := c.Volumes(ctx, compute.VolumeAuth{Token: "wrong", Project: "proj"}); !errors.As(err, &ve) || ve.Status != 401 {
		t.Errorf("a bad token: %v", err)
	}
}
