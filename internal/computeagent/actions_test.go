package computeagent_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// snapshotOf finds the image a snapshot of id was uploaded to.
func (c *fakeCloud) snapshotOf(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for img, b := range c.images {
		if strings.Contains(string(b), "fake snapshot of "+id) {
			return img, true
		}
	}
	return "", false
}

// The agent carries out what used to be answered "not supported":
// createImage uploads the guest's disk, resize/confirm/revert change its
// hardware, rescue/unrescue, shelve (snapshot, guest gone) and unshelve
// (built again from the snapshot).
func TestSnapshotResizeRescueShelve(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")
	ctx := context.Background()

	h.action(id, map[string]any{"createImage": map[string]any{"name": "snap"}})
	h.eventually("snapshot uploaded", func() bool { _, ok := h.cloud.snapshotOf(id); return ok })
	h.waitStatus(id, "ACTIVE")

	h.action(id, map[string]any{"resize": map[string]any{"flavorRef": "2"}})
	h.waitStatus(id, "VERIFY_RESIZE")
	if spec, _ := drv.Spec(id); spec.MemoryMiB != 2048 {
		t.Fatalf("memory after resize: %d", spec.MemoryMiB)
	}
	h.action(id, map[string]any{"confirmResize": nil})
	h.waitStatus(id, "ACTIVE")
	h.action(id, map[string]any{"resize": map[string]any{"flavorRef": "3"}})
	h.waitStatus(id, "VERIFY_RESIZE")
	h.action(id, map[string]any{"revertResize": nil})
	h.waitStatus(id, "ACTIVE")
	if spec, _ := drv.Spec(id); spec.MemoryMiB != 2048 {
		t.Fatalf("memory after revert: %d", spec.MemoryMiB)
	}

	h.json("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"rescue": nil}, 200)
	h.waitStatus(id, "RESCUE")
	if drv.Rescued(id) == nil {
		t.Fatal("guest not rescued")
	}
	h.action(id, map[string]any{"unrescue": nil})
	h.waitStatus(id, "ACTIVE")

	h.cloud.mu.Lock()
	for img, b := range h.cloud.images {
		if strings.Contains(string(b), "fake snapshot of "+id) {
			delete(h.cloud.images, img)
		}
	}
	h.cloud.mu.Unlock()
	h.action(id, map[string]any{"shelve": nil})
	h.waitStatus(id, "SHELVED_OFFLOADED")
	if _, err := drv.GetState(ctx, id); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("shelved guest still on the host: %v", err)
	}
	if _, ok := h.cloud.snapshotOf(id); !ok {
		t.Fatal("shelve uploaded no snapshot")
	}
	if p := h.cloud.portsOf(id); len(p) != 1 || p[0]["binding:host_id"] != "" {
		t.Fatalf("ports of the shelved server: %v", p)
	}
	h.action(id, map[string]any{"unshelve": nil})
	h.waitStatus(id, "ACTIVE")
	if drv.startsOf(id) != 2 {
		t.Fatalf("starts %d", drv.startsOf(id))
	}
	// Unshelved, the server's snapshot is deleted, as Nova does.
	h.eventually("shelve snapshot deleted", func() bool { _, ok := h.cloud.snapshotOf(id); return !ok })
}

// Rebuilding a stopped server leaves it stopped, as Nova does (Tempest's
// test_rebuild_server_in_stop_state waits for SHUTOFF).
func TestRebuildStoppedStaysStopped(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")
	h.action(id, map[string]any{"os-stop": nil})
	h.waitStatus(id, "SHUTOFF")
	h.json("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"rebuild": map[string]any{"imageRef": imageID}}, 202)
	h.waitStatus(id, "SHUTOFF")
	if info, _ := drv.GetState(context.Background(), id); info.State != hypervisor.Shutdown {
		t.Fatalf("driver state after rebuild: %v", info.State)
	}
	if drv.startsOf(id) != 2 {
		t.Fatalf("starts %d", drv.startsOf(id))
	}
}
