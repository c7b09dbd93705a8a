package volume_test

import (
	"context"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/volume"
)

// TestHeartbeatsSettleStuckVolumes: a volume left deleting whose file its
// host no longer has is removed, and a snapshot left creating whose file
// the host has becomes available, from the host's heartbeats alone, as
// after an API that lost a command's report.
func TestHeartbeatsSettleStuckVolumes(t *testing.T) {
	h := newHarness(t, func(c *volume.Config) { c.ReconcileAfter = time.Millisecond })
	ctx := context.Background()
	// "gone" is a volume the API placed on stor1 whose file the host
	// does not have: its create never arrived and its delete is stuck.
	gone := "7a1b1f8a-1a5a-4a5e-9e63-0e1c2b8a9f10"
	old := "2020-01-01T00:00:00.000000Z"
	if _, err := h.db.Exec(ctx, `INSERT INTO volume_volumes (id, project_id, user_id, status, size, availability_zone, host, backend, pool, type_id, created_at, updated_at)
		VALUES (?, ?, 'u', 'deleting', 1, 'nova', 'stor1', 'file', 'default', 'x', ?, ?)`, gone, projA, old, old); err != nil {
		t.Fatal(err)
	}
	kept := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	snap := h.json("a", "POST", path("a", "/snapshots"), map[string]any{"snapshot": map[string]any{"volume_id": kept}}, 202)["snapshot"].(map[string]any)["id"].(string)
	h.eventually("snapshot available", func() bool {
		return h.json("a", "GET", path("a", "/snapshots/"+snap), nil, 200)["snapshot"].(map[string]any)["status"] == "available"
	})
	// The snapshot is rolled back to creating as if its report had been
	// lost, and "kept" to deleting as if its delete were in flight.
	if _, err := h.db.Exec(ctx, `UPDATE volume_volumes SET status = 'deleting' WHERE id = ?`, kept); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Exec(ctx, `UPDATE volume_snapshots SET status = 'creating' WHERE id = ?`, snap); err != nil {
		t.Fatal(err)
	}
	h.waitGone("a", path("a", "/volumes/"+gone))
	h.eventually("snapshot settled", func() bool {
		return h.json("a", "GET", path("a", "/snapshots/"+snap), nil, 200)["snapshot"].(map[string]any)["status"] == "available"
	})
	// A volume whose file the host still has stays deleting: only its
	// report or a new delete may end it.
	time.Sleep(1500 * time.Millisecond)
	if st := h.json("a", "GET", path("a", "/volumes/"+kept), nil, 200)["volume"].(map[string]any)["status"]; st != "deleting" {
		t.Fatalf("kept volume %v", st)
	}
}
