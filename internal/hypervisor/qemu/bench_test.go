package qemu

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// BenchmarkBootToLogin measures, per iteration, the wall time from Spawn
// (overlay, config drive, QEMU start) to the login prompt on the serial
// console under the probed accelerator (TCG here), with a config drive
// and no NIC. It also reports when each boot stage first showed on the
// console: extlinux, the initramfs, userspace, the end of the guest agent;
// and, to calibrate against the machine's load, how long the same kernel
// takes to reach the driver's probe init.
//
//	go test ./internal/hypervisor/qemu -run '^$' -bench BootToLogin -benchtime 3x
func BenchmarkBootToLogin(b *testing.B) {
	requireRoot(b)
	_, kernel, _ := guestImage(b)
	state, run := testDirs(b)
	d := newTestDriver(b, Config{StateDir: state, RunDir: run, ProbeKernel: kernel})
	b.Logf("virt_type %s", d.VirtType())
	ctx := context.Background()
	// Calibration: the same kernel booting the one-file probe initramfs
	// (no firmware disk reads, no modules, no agent), comparable across
	// machines and loads with the guest notes' "kernel to userspace".
	var probeSum time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := probe(ctx, d.cfg.QEMU, kernel, run, d.VirtType(), 5*time.Minute); err != nil {
			b.Fatal(err)
		}
		probeSum += time.Since(start)
	}
	stages := []string{"SYSLINUX", "nimbus-init: initramfs", "nimbus-init: userspace up", "nimbus-init: up in", " login: "}
	names := []string{"s-to-extlinux", "s-to-initramfs", "s-to-userspace", "s-to-agent-done", "s-to-login"}
	sums := make([]time.Duration, len(stages))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		uuid := newUUID(b)
		spec := guestSpec(b, uuid)
		spec.ConfigDrive = &hypervisor.ConfigDrive{Files: map[string][]byte{
			"openstack/latest/meta_data.json": []byte(`{"uuid": "` + uuid + `", "hostname": "bench"}`),
		}}
		b.StartTimer()
		start := time.Now()
		if _, err := d.Spawn(ctx, spec); err != nil {
			b.Fatal(err)
		}
		next := 0
		for next < len(stages) {
			log, err := d.ConsoleLog(ctx, uuid, 0)
			if err != nil {
				b.Fatal(err)
			}
			for next < len(stages) && bytes.Contains(log, []byte(stages[next])) {
				sums[next] += time.Since(start)
				next++
			}
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("no %q within 2m:\n%s", stages[next], log)
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.StopTimer()
		if err := d.Destroy(ctx, uuid); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	for i, s := range sums {
		b.ReportMetric(s.Seconds()/float64(b.N), names[i])
	}
	b.ReportMetric(probeSum.Seconds()/float64(b.N), "s-probe-kernel-to-init")
}
