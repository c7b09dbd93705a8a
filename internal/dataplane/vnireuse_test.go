package dataplane

import (
	"strings"
	"testing"
)

// A network deleted and another created with its VNI in one Apply (the
// networking service reuses freed VNIs at once): the stale VXLAN device
// must not block the new one (it used to fail every Apply).
func TestVXLANVNIReused(t *testing.T) {
	t.Parallel()
	requireHost(t)
	p := testPrefix(t)
	h := newNetns(t, p+"-h")
	a := newTestAgent(t, p, h, nil)
	apply(t, a, State{Networks: []Network{{ID: "old", Type: NetworkVXLAN, SegmentationID: 4242}}})
	apply(t, a, State{Networks: []Network{{ID: "new", Type: NetworkVXLAN, SegmentationID: 4242}}})
	out := run(t, h, "ip", "-d", "link", "show", a.n.vxlan("new"))
	if !strings.Contains(out, "vxlan id 4242") {
		t.Fatalf("new network's vxlan: %s", out)
	}
	if _, err := tryRun(h, "ip", "link", "show", a.n.vxlan("old")); err == nil {
		t.Fatal("old network's vxlan left behind")
	}
}
