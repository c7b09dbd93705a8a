package compute_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakevolumes"
)

// watchdogTimeout is the tests' VolumeAttachTimeout.
const watchdogTimeout = 300 * time.Millisecond

// watchdogHarness is a compute API with the fake volume service, a short
// attach timeout and a short service down time, and one fake host that
// beats every 50ms. The reconcile loop does not run by itself: tests
// sweep with Reconcile.
func watchdogHarness(t *testing.T) (*harness, *fakevolumes.Service, *fakeagent.Agent) {
	t.Helper()
	fv := fakevolumes.New()
	h := newHarness(t, func(c *compute.Config) {
		c.Volumes = fv
		c.VolumeCreateTimeout = 10 * time.Second
		c.VolumeAttachTimeout = watchdogTimeout
		c.ServiceDownTime = 2 * time.Second
	})
	return h, fv, h.addHost(fakeagent.Config{Host: "host1", Heartbeat: 50 * time.Millisecond})
}

// sweepUntil runs the reconcile loop's sweep until ok holds.
func (h *harness) sweepUntil(what string, ok func() bool) {
	h.t.Helper()
	h.eventually(what, func() bool {
		if err := h.svc.Reconcile(context.Background()); err != nil {
			h.t.Fatalf("reconcile: %v", err)
		}
		return ok()
	})
}

// sweepIdle waits out the timeout and a few heartbeats, sweeps twice and
// fails if the volume service was called.
func (h *harness) sweepIdle(fv *fakevolumes.Service, why string) {
	h.t.Helper()
	time.Sleep(watchdogTimeout + 200*time.Millisecond)
	before := fv.Calls()
	for range 2 {
		if err := h.svc.Reconcile(context.Background()); err != nil {
			h.t.Fatalf("reconcile: %v", err)
		}
	}
	if after := fv.Calls(); len(after) != len(before) {
		h.t.Fatalf("%s: the sweep called the volume service: %v", why, after[len(before):])
	}
}

// loseVolumeOps loses the attach or detach (op) of the volumes in loss.
func loseVolumeOps(op string, loss map[string]fakeagent.Loss) func(compute.Command) fakeagent.Loss {
	return func(c compute.Command) fakeagent.Loss {
		if c.Op != op || c.Volume == nil {
			return fakeagent.Keep
		}
		return loss[c.Volume.VolumeID]
	}
}

// volumeEventResults counts the results of a server's events of one
// instance action (attach_volume, detach_volume).
func (h *harness) volumeEventResults(id, action string) map[string]int {
	h.t.Helper()
	out := map[string]int{}
	for _, a := range h.json("admin", "GET", "/v2.1/servers/"+id+"/os-instance-actions", nil, 200)["instanceActions"].([]any) {
		a := a.(map[string]any)
		if a["action"] != action {
			continue
		}
		act := h.json("admin", "GET", "/v2.1/servers/"+id+"/os-instance-actions/"+a["request_id"].(string), nil, 200)["instanceAction"].(map[string]any)
		for _, ev := range act["events"].([]any) {
			r, _ := ev.(map[string]any)["result"].(string)
			out[r]++
		}
	}
	return out
}

// sentVolumeOp reports whether the host was sent op for volume.
func sentVolumeOp(a *fakeagent.Agent, op, volume string) int {
	n := 0
	for _, c := range a.Commands() {
		if c.Op == op && c.Volume != nil && c.Volume.VolumeID == volume {
			n++
		}
	}
	return n
}

func attachedIDs(h *harness, id string) []string {
	var out []string
	for _, a := range h.attachments("a", id) {
		out = append(out, a.(map[string]any)["volumeId"].(string))
	}
	return out
}

// An attach whose command the host lost before acting is given back
// (unreserved, its connection ended, the mapping gone, the action
// failed, the host told to drop the disk should the command still run);
// one the host carried out but whose report was lost is completed. The
// sweep does nothing before the timeout, and nothing more after.
func TestWatchdogAttachLost(t *testing.T) {
	h, fv, agent := watchdogHarness(t)
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	never, unreported := fv.Add(projA, 1, false, nil), fv.Add(projA, 1, false, nil)
	agent.Lose(loseVolumeOps(compute.OpAttachVolume, map[string]fakeagent.Loss{never: fakeagent.LoseCommand, unreported: fakeagent.LoseReport}))
	path := "/v2.1/servers/" + id + "/os-volume_attachments"
	for _, v := range []string{never, unreported} {
		h.json("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": v}}, 200)
	}
	if err := h.svc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{never, unreported} {
		if st := fv.Get(v).Status; st != "attaching" {
			t.Fatalf("volume %s %s before the timeout, want attaching", v, st)
		}
	}

	h.sweepUntil("lost attaches settled", func() bool {
		return fv.Get(never).Status == "available" && fv.Get(unreported).Status == "in-use"
	})
	if v := fv.Get(never); v.Attachment != nil || len(v.Connections) != 0 {
		t.Fatalf("given-back volume %+v", v)
	}
	if v := fv.Get(unreported); v.Attachment == nil || v.Attachment.ServerID != id || v.Attachment.Device != "/dev/vdc" || !v.Connections["host1"] {
		t.Fatalf("completed volume %+v", v)
	}
	if got := attachedIDs(h, id); !slices.Equal(got, []string{unreported}) {
		t.Fatalf("attachments %v, want [%s]", got, unreported)
	}
	if r := h.volumeEventResults(id, "attach_volume"); r["Error"] != 1 || r["Success"] != 1 {
		t.Fatalf("attach_volume event results %v, want one Error and one Success", r)
	}
	h.eventually("the host told to drop the given-back disk", func() bool {
		return sentVolumeOp(agent, compute.OpDetachVolume, never) == 1
	})
	if got := agent.Volumes(id); !slices.Equal(got, []string{unreported}) {
		t.Fatalf("the guest has %v, want [%s]", got, unreported)
	}
	if s := h.server("a", id); s["status"] != "ACTIVE" {
		t.Fatalf("server %v", s["status"])
	}
	h.sweepIdle(fv, "after settling")
	if n := sentVolumeOp(agent, compute.OpDetachVolume, never); n != 1 {
		t.Fatalf("%d detach commands for the given-back volume after more sweeps", n)
	}
}

// A detach whose command the host lost leaves the volume with the guest:
// rolled back to in-use (and the host told to keep the disk); one the
// host carried out but whose report was lost is finished. The rolled-back
// volume can be detached again.
func TestWatchdogDetachLost(t *testing.T) {
	h, fv, agent := watchdogHarness(t)
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	kept, gone := fv.Add(projA, 1, false, nil), fv.Add(projA, 1, false, nil)
	path := "/v2.1/servers/" + id + "/os-volume_attachments"
	for _, v := range []string{kept, gone} {
		h.json("a", "POST", path, map[string]any{"volumeAttachment": map[string]any{"volumeId": v}}, 200)
		h.waitVolume(fv, v, "in-use")
	}
	agent.Lose(loseVolumeOps(compute.OpDetachVolume, map[string]fakeagent.Loss{kept: fakeagent.LoseCommand, gone: fakeagent.LoseReport}))
	for _, v := range []string{kept, gone} {
		h.json("a", "DELETE", path+"/"+v, nil, 202)
		h.waitVolume(fv, v, "detaching")
	}

	h.sweepUntil("lost detaches settled", func() bool {
		return fv.Get(kept).Status == "in-use" && fv.Get(gone).Status == "available"
	})
	if v := fv.Get(gone); v.Attachment != nil || len(v.Connections) != 0 {
		t.Fatalf("detached volume %+v", v)
	}
	if v := fv.Get(kept); v.Attachment == nil || v.Attachment.ServerID != id || !v.Connections["host1"] {
		t.Fatalf("rolled-back volume %+v", v)
	}
	if got := attachedIDs(h, id); !slices.Equal(got, []string{kept}) {
		t.Fatalf("attachments %v, want [%s]", got, kept)
	}
	if r := h.volumeEventResults(id, "detach_volume"); r["Error"] != 1 || r["Success"] != 1 {
		t.Fatalf("detach_volume event results %v, want one Error and one Success", r)
	}
	h.eventually("the host told to keep the rolled-back disk", func() bool {
		return sentVolumeOp(agent, compute.OpAttachVolume, kept) == 2
	})
	if got := agent.Volumes(id); !slices.Equal(got, []string{kept}) {
		t.Fatalf("the guest has %v, want [%s]", got, kept)
	}
	h.sweepIdle(fv, "after settling")

	agent.Lose(nil)
	h.json("a", "DELETE", path+"/"+kept, nil, 202)
	h.waitVolume(fv, kept, "available")
	h.eventually("no attachments", func() bool { return len(h.attachments("a", id)) == 0 })
}

// While the host is down nothing is decided, however old the attach:
// its last sync may predate what the host did. When it comes back (here
// without the guest's disk), its sync settles the attach.
func TestWatchdogHostDown(t *testing.T) {
	h, fv, agent := watchdogHarness(t)
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	vol := fv.Add(projA, 1, false, nil)
	agent.Lose(loseVolumeOps(compute.OpAttachVolume, map[string]fakeagent.Loss{vol: fakeagent.LoseCommand}))
	h.json("a", "POST", "/v2.1/servers/"+id+"/os-volume_attachments", map[string]any{"volumeAttachment": map[string]any{"volumeId": vol}}, 200)
	// Syncs newer than the attach arrive before the host goes silent.
	time.Sleep(watchdogTimeout + 100*time.Millisecond)
	if err := agent.Stop(); err != nil {
		t.Fatal(err)
	}
	h.eventually("host1 down", func() bool {
		for _, s := range h.json("admin", "GET", "/v2.1/os-services?binary=nova-compute", nil, 200)["services"].([]any) {
			if s.(map[string]any)["host"] == "host1" {
				return s.(map[string]any)["state"] == "down"
			}
		}
		return false
	})
	h.sweepIdle(fv, "host down")
	if st := fv.Get(vol).Status; st != "attaching" {
		t.Fatalf("volume %s while its host is down, want attaching", st)
	}
	if got := attachedIDs(h, id); !slices.Equal(got, []string{vol}) {
		t.Fatalf("attachments %v while the host is down", got)
	}

	h.addHost(fakeagent.Config{Host: "host1", Heartbeat: 50 * time.Millisecond})
	h.sweepUntil("attach given back once the host is back", func() bool { return fv.Get(vol).Status == "available" })
	if got := attachedIDs(h, id); len(got) != 0 {
		t.Fatalf("attachments %v after the host came back", got)
	}
}

// A guest whose command is still running on its host (here held) is
// busy in the host's sync: its report is awaited however long it takes.
func TestWatchdogWaitsForBusyGuest(t *testing.T) {
	h, fv, agent := watchdogHarness(t)
	id := h.boot("a", "vm", nil)
	h.waitStatus("a", id, "ACTIVE")
	vol := fv.Add(projA, 1, false, nil)
	agent.Hold(func(c compute.Command) bool { return c.Op == compute.OpAttachVolume })
	h.json("a", "POST", "/v2.1/servers/"+id+"/os-volume_attachments", map[string]any{"volumeAttachment": map[string]any{"volumeId": vol}}, 200)
	h.eventually("attach command held", func() bool { return sentVolumeOp(agent, compute.OpAttachVolume, vol) == 1 })
	h.sweepIdle(fv, "busy guest")
	if st := fv.Get(vol).Status; st != "attaching" {
		t.Fatalf("volume %s while its attach runs", st)
	}
	agent.Release(id)
	h.waitVolume(fv, vol, "in-use")
	if r := h.volumeEventResults(id, "attach_volume"); r["Success"] != 1 || r["Error"] != 0 {
		t.Fatalf("attach_volume events %v", r)
	}
}
