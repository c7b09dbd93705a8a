package qemu

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestProbeTCG boots the guest image's kernel with the generated probe
// initramfs under TCG: the hand-assembled init must print the marker.
func TestProbeTCG(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	_, kernel, _ := guestImage(t)
	start := time.Now()
	if err := probe(context.Background(), "qemu-system-x86_64", kernel, t.TempDir(), VirtQEMU, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("TCG probe booted in %s", time.Since(start))
}

// TestChooseAccel runs the real decision. Without a usable /dev/kvm it
// must pick TCG; with one it may pick either, and says why.
func TestChooseAccel(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	_, kernel, _ := guestImage(t)
	// The TCG boot gets 6× the timeout: generous, because this test runs
	// beside other guests and a loaded 2-core CI host slows TCG a lot.
	vt, kvmErr, err := ChooseAccel(context.Background(), "qemu-system-x86_64", kernel, t.TempDir(), 20*time.Second, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("virt_type %s (kvm probe: %v)", vt, kvmErr)
	if _, statErr := os.Stat("/dev/kvm"); statErr != nil && vt != VirtQEMU {
		t.Fatalf("no /dev/kvm but chose %s", vt)
	}
	if vt == VirtQEMU && kvmErr == nil {
		t.Fatal("chose TCG without a KVM probe failure")
	}
	if _, _, err := ChooseAccel(context.Background(), "qemu-system-x86_64", "", t.TempDir(), time.Second, false); err == nil {
		t.Fatal("ChooseAccel without a kernel succeeded")
	}
}
