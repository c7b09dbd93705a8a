package qemu

import (
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// TestLiveVolumes: a running guest's volumes are those its record has
// and QEMU has connected. A recorded volume without its NBD node (a
// detach that closed the connection and died before saving) and a node
// without a record (an attach that died before saving) are not listed;
// a monitor that fails the query is an error, not "no volumes".
func TestLiveVolumes(t *testing.T) {
	a, b, stray := "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", "1c2d3e4f-5061-4b7c-8d9e-0f1a2b3c4d5e", "2d3e4f50-6172-4c8d-9eaf-1a2b3c4d5e6f"
	rec := &record{Disks: []diskFile{{Name: "root", Path: "/d.qcow2"},
		{Name: "vdb", Volume: &hypervisor.VolumeConn{VolumeID: a}}, {Name: "vdc", Volume: &hypervisor.VolumeConn{VolumeID: b}}}}
	var asked atomic.Int32
	mon := fakeMonitor(t, func(w *json.Encoder, command string, id json.RawMessage) bool {
		if command != "query-named-block-nodes" {
			return false
		}
		asked.Add(1)
		w.Encode(map[string]any{"return": []map[string]any{
			{"node-name": "root-fmt", "drv": "qcow2"}, {"node-name": volumeNodeName(a), "drv": "nbd"},
			{"node-name": volumeNodeName(stray), "drv": "nbd"}}, "id": id})
		return true
	})
	ctx := context.Background()
	got, err := liveVolumes(ctx, mon, rec)
	if err != nil || !slices.Equal(got, []string{a}) {
		t.Fatalf("live volumes %v (%v), want [%s]", got, err, a)
	}
	if ids := recordVolumeIDs(rec); !slices.Equal(ids, []string{a, b}) {
		t.Fatalf("recorded volumes %v", ids)
	}

	// No recorded volume: QEMU is not asked.
	n := asked.Load()
	if got, err := liveVolumes(ctx, mon, &record{Disks: rec.Disks[:1]}); err != nil || got != nil {
		t.Fatalf("guest without volumes: %v %v", got, err)
	}
	if asked.Load() != n {
		t.Fatal("QEMU was asked about a guest without volumes")
	}

	failing := fakeMonitor(t, func(w *json.Encoder, command string, id json.RawMessage) bool {
		w.Encode(map[string]any{"error": map[string]any{"class": "GenericError", "desc": "no"}, "id": id})
		return true
	})
	if got, err := liveVolumes(ctx, failing, rec); err == nil {
		t.Fatalf("a failed query listed %v", got)
	}
}
