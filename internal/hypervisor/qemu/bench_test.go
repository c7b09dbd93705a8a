package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// BenchmarkBootToLogin measures, per iteration, the wall time from Spawn
// (overlay, config drive, QEMU start) to the login prompt on the serial
// console under the probed accelerator (TCG here), with a config drive
// and no NIC, booting through the disk's extlinux (boot=disk) or the
// kernel and initramfs directly (boot=direct, Spec.Boot: what `nimbus
// up` seeds). It also reports when each boot stage first showed on the
// console: extlinux (disk boots only), the initramfs, userspace, the end
// of the guest agent; and, to calibrate against the machine's load, how
// long the kernel takes to reach the driver's probe init (probe).
// cpu-s-to-login is the CPU time the guest's QEMU used until the prompt:
// on a shared machine it is the steadier figure, and on an idle one wall
// time comes close to it.
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
	b.Run("probe", func(b *testing.B) {
		var sum time.Duration
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if err := probe(ctx, d.cfg.QEMU, kernel, run, d.VirtType(), 5*time.Minute); err != nil {
				b.Fatal(err)
			}
			sum += time.Since(start)
		}
		b.ReportMetric(sum.Seconds()/float64(b.N), "s-kernel-to-init")
	})
	b.Run("boot=disk", func(b *testing.B) { bootToLogin(b, d, false) })
	b.Run("boot=direct", func(b *testing.B) { bootToLogin(b, d, true) })
}

func bootToLogin(b *testing.B, d *Driver, direct bool) {
	ctx := context.Background()
	stages := []string{"SYSLINUX", "nimbus-init: initramfs", "nimbus-init: userspace up", "nimbus-init: up in", " login: "}
	names := []string{"s-to-extlinux", "s-to-initramfs", "s-to-userspace", "s-to-agent-done", "s-to-login"}
	var boot *hypervisor.DirectBoot
	if direct {
		stages, names = stages[1:], names[1:]
		cmdline, err := os.ReadFile(imageDir + "/nimbus-guest.cmdline")
		if err != nil {
			b.Fatal(err)
		}
		boot = &hypervisor.DirectBoot{
			Kernel:  cachedImage(b, "kernel", imageDir+"/nimbus-guest.vmlinux"),
			Ramdisk: ptr(cachedImage(b, "ramdisk", imageDir+"/nimbus-guest.initrd")),
			Cmdline: strings.TrimSpace(string(cmdline)),
		}
	}
	sums := make([]time.Duration, len(stages))
	var cpuSum time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		uuid := newUUID(b)
		spec := guestSpec(b, uuid)
		spec.Boot = boot
		spec.ConfigDrive = &hypervisor.ConfigDrive{Files: map[string][]byte{
			"openstack/latest/meta_data.json": []byte(`{"uuid": "` + uuid + `", "hostname": "bench"}`),
		}}
		b.StartTimer()
		start := time.Now()
		info, err := d.Spawn(ctx, spec)
		if err != nil {
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
			if next == len(stages) {
				cpu, err := processCPU(info.PID)
				if err != nil {
					b.Fatal(err)
				}
				cpuSum += cpu
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
	b.ReportMetric(cpuSum.Seconds()/float64(b.N), "cpu-s-to-login")
}

// processCPU is the user+system CPU time of a process so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+2:]))
	// Fields after the command name start at field 3 (state): utime is
	// field 14, stime 15, in USER_HZ (100 on Linux).
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
