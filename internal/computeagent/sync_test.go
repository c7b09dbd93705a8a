package computeagent

import (
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// TestGuestVolumes: the heartbeat's guests carry the driver's volumes; a
// guest with a command before or after the listing is busy, one the
// driver did not answer for unknown, and a busy guest the driver did not
// list (being spawned) is still named, busy, so its absence is not read
// as a guest without volumes.
func TestGuestVolumes(t *testing.T) {
	list := []hypervisor.Info{
		{UUID: "g1", State: hypervisor.Running, Volumes: []string{"v1"}},
		{UUID: "g2", State: hypervisor.Running},
		{UUID: "g3", State: hypervisor.NoState},
		{UUID: "g4", State: hypervisor.Shutdown, Volumes: []string{"v4"}},
	}
	got := guestVolumes(list, map[string]bool{"g2": true}, map[string]bool{"g4": true, "g5": true})
	want := map[string]compute.GuestVolumes{
		"g1": {InstanceID: "g1", Volumes: []string{"v1"}},
		"g2": {InstanceID: "g2", Busy: true},
		"g3": {InstanceID: "g3", Unknown: true},
		"g4": {InstanceID: "g4", Volumes: []string{"v4"}, Busy: true},
		"g5": {InstanceID: "g5", Busy: true},
	}
	if len(got) != len(want) {
		t.Fatalf("guests %+v", got)
	}
	for _, g := range got {
		w := want[g.InstanceID]
		if g.Busy != w.Busy || g.Unknown != w.Unknown || len(g.Volumes) != len(w.Volumes) || (len(w.Volumes) > 0 && g.Volumes[0] != w.Volumes[0]) {
			t.Errorf("guest %+v, want %+v", g, w)
		}
	}
}
