package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu/qmp"
)

// Diagnostics implements hypervisor.Diagnoser from what the host already
// counts: the QEMU process in /proc (uptime, resident memory, each vCPU
// thread's run time), QEMU's block statistics over QMP, and the taps'
// counters in sysfs. A stopped guest has its shape and no counters.
func (d *Driver) Diagnostics(ctx context.Context, uuid string) (hypervisor.Diagnostics, error) {
	if !validInstanceName(uuid) {
		return hypervisor.Diagnostics{}, fmt.Errorf("instance %q: %w", uuid, hypervisor.ErrNotFound)
	}
	rec, err := d.readRecord(uuid)
	if err != nil {
		return hypervisor.Diagnostics{}, err
	}
	info, err := d.getState(ctx, uuid)
	if err != nil {
		return hypervisor.Diagnostics{}, err
	}
	out := hypervisor.Diagnostics{
		State: info.State, Hypervisor: d.virtType, HypervisorOS: "linux",
		ConfigDrive: rec.ConfigISO != "", MemoryMaxMiB: rec.Spec.MemoryMiB,
	}
	for i := range rec.Spec.VCPUs {
		out.CPUs = append(out.CPUs, hypervisor.CPUStats{ID: i})
	}
	for _, n := range rec.Spec.NICs {
		out.NICs = append(out.NICs, tapStats(n))
	}
	devices := rec.bootDisks()
	if rec.ConfigISO != "" {
		devices = append(devices, diskFile{Name: "config"})
	}
	for i := range devices {
		out.Disks = append(out.Disks, hypervisor.DiskStats{Device: guestDiskName(i)})
	}
	if info.PID == 0 {
		return out, nil
	}
	if up, err := processUptime(info.PID); err == nil {
		out.UptimeSeconds = &up
	}
	if rss, err := processRSS(info.PID); err == nil {
		mib := rss >> 20
		out.MemoryUsedMiB = &mib
	}
	if err := d.queryCounters(ctx, uuid, info.PID, devices, &out); err != nil {
		// The shape is still right; counters QEMU did not give stay nil.
		d.log.Warn("diagnostics: QMP counters", "uuid", uuid, "err", err)
	}
	return out, nil
}

// queryCounters fills vCPU run times and disk statistics from QMP.
func (d *Driver) queryCounters(ctx context.Context, uuid string, pid int, devices []diskFile, out *hypervisor.Diagnostics) error {
	defer d.lockQuery(uuid)()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	mon, err := qmp.Dial(cctx, d.statusSocket(uuid))
	if err != nil {
		return err
	}
	defer mon.Close()
	var cpus []struct {
		Index    int `json:"cpu-index"`
		ThreadID int `json:"thread-id"`
	}
	if err := mon.Execute(cctx, "query-cpus-fast", nil, &cpus); err != nil {
		return fmt.Errorf("query-cpus-fast: %w", err)
	}
	for _, c := range cpus {
		if c.Index < 0 || c.Index >= len(out.CPUs) {
			continue
		}
		if ns, err := threadRunTime(pid, c.ThreadID); err == nil {
			out.CPUs[c.Index].TimeNS = &ns
		}
	}
	var blocks []struct {
		Device   string `json:"device"`
		NodeName string `json:"node-name"`
		Stats    struct {
			RdBytes      int64 `json:"rd_bytes"`
			WrBytes      int64 `json:"wr_bytes"`
			RdOperations int64 `json:"rd_operations"`
			WrOperations int64 `json:"wr_operations"`
			FailedRd     int64 `json:"failed_rd_operations"`
			FailedWr     int64 `json:"failed_wr_operations"`
		} `json:"stats"`
	}
	if err := mon.Execute(cctx, "query-blockstats", nil, &blocks); err != nil {
		return fmt.Errorf("query-blockstats: %w", err)
	}
	// Disks from -drive have a named backend; volumes (-blockdev) have
	// an anonymous one, known by its node's name.
	index := map[string]int{}
	for i, df := range devices {
		if df.Volume != nil {
			index[volumeNodeName(df.Volume.VolumeID)] = i
		} else {
			index["drive-"+df.Name] = i
		}
	}
	for _, b := range blocks {
		i, ok := index[b.Device]
		if !ok && b.Device == "" {
			i, ok = index[b.NodeName]
		}
		if !ok {
			continue
		}
		s := b.Stats
		errs := s.FailedRd + s.FailedWr
		out.Disks[i].ReadBytes, out.Disks[i].WriteBytes = &s.RdBytes, &s.WrBytes
		out.Disks[i].ReadRequests, out.Disks[i].WriteRequests = &s.RdOperations, &s.WrOperations
		out.Disks[i].Errors = &errs
	}
	return nil
}

// guestDiskName is the guest's name of the i-th virtio disk.
func guestDiskName(i int) string { return "vd" + string(rune('a'+i%26)) }

// tapStats reads a tap's counters, turned around to the guest's view:
// what the tap transmitted, the guest received. A missing tap (the guest
// is stopped and the network agent unplugged it) gives no counters.
func tapStats(n hypervisor.NIC) hypervisor.NICStats {
	s := hypervisor.NICStats{MAC: n.MAC, Device: n.TapName}
	read := func(name string) *int64 {
		b, err := os.ReadFile(filepath.Join("/sys/class/net", n.TapName, "statistics", name))
		if err != nil {
			return nil
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil
		}
		return &v
	}
	s.RxOctets, s.RxPackets, s.RxErrors, s.RxDrop = read("tx_bytes"), read("tx_packets"), read("tx_errors"), read("tx_dropped")
	s.TxOctets, s.TxPackets, s.TxErrors, s.TxDrop = read("rx_bytes"), read("rx_packets"), read("rx_errors"), read("rx_dropped")
	return s
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on
// every Linux architecture Nimbus runs on.
const clockTicks = 100

// processUptime is how long the process has run, in seconds: its start
// (field 22 of /proc/<pid>/stat, in ticks since boot) against the host's
// uptime.
func processUptime(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	start, err := strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return 0, err
	}
	u, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	up, err := strconv.ParseFloat(strings.Fields(string(u))[0], 64)
	if err != nil {
		return 0, err
	}
	return max(0, int64(up)-start/clockTicks), nil
}

// processRSS is the process's resident memory in bytes.
func processRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("short /proc/%d/statm", pid)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}

// threadRunTime is the CPU time a thread has run, in nanoseconds (the
// first field of its schedstat).
func threadRunTime(pid, tid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, tid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("empty schedstat of thread %d", tid)
	}
	return strconv.ParseInt(f[0], 10, 64)
}
