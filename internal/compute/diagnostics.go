package compute

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// Server diagnostics (GET /servers/{id}/diagnostics, admin only): the
// API asks the guest's host, whose driver reads the counters the host
// keeps (hypervisor.Diagnoser).

// SubjectDiagnosticsPrefix + host answers DiagnosticsRequest calls with
// a hypervisor.Diagnostics.
const SubjectDiagnosticsPrefix = "compute.diagnostics."

// DiagnosticsSubject is the diagnostics call subject of host.
func DiagnosticsSubject(host string) string { return SubjectDiagnosticsPrefix + host }

// DiagnosticsRequest asks an agent for one guest's diagnostics.
type DiagnosticsRequest struct {
	InstanceID string `json:"instance_id"`
}

// CodeNotImplemented is the bus error code of an agent whose driver
// cannot report diagnostics; the API answers Nova's 501.
const CodeNotImplemented = "not_implemented"

func (s *Service) serverDiagnostics(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:os-server-diagnostics")
	if err != nil {
		return nil, err
	}
	if i.host() == "" || i.VMState == vmBuilding || s.cfg.Bus == nil {
		return nil, api.Conflict("Instance %s is not ready", i.ID)
	}
	ctx, cancel := contextTimeout(r, 10*time.Second)
	defer cancel()
	d, err := bus.Call[DiagnosticsRequest, hypervisor.Diagnostics](ctx, s.cfg.Bus, DiagnosticsSubject(i.host()), DiagnosticsRequest{InstanceID: i.ID})
	if err != nil {
		s.log.Warn("diagnostics request", "instance", i.ID, "host", i.host(), "request_id", api.RequestID(r.Context()), "err", err)
		if re, ok := errors.AsType[*bus.RemoteError](err); ok && re.Code == CodeNotImplemented {
			return nil, api.Errorf(http.StatusNotImplemented, "Unable to get diagnostics, functionality not implemented")
		}
		return nil, api.Conflict("Instance %s is not ready", i.ID)
	}
	if at(r, 48) {
		return api.JSON(http.StatusOK, diagnosticsView(d)), nil
	}
	return api.JSON(http.StatusOK, legacyDiagnostics(d)), nil
}

// diagnosticsView is the driver-neutral body of 2.48. "driver" names the
// Nova virt driver family: Nova's schema knows libvirt, xenapi,
// vmwareapi, ironic and hyperv, and the QEMU/KVM guests Nimbus runs are
// what Nova's libvirt driver runs (with virt_type "kvm" or "qemu" in
// "hypervisor").
func diagnosticsView(d hypervisor.Diagnostics) map[string]any {
	driver := "libvirt"
	if d.Hypervisor != "kvm" && d.Hypervisor != "qemu" {
		driver = d.Hypervisor
	}
	cpus := []map[string]any{}
	for _, c := range d.CPUs {
		cpus = append(cpus, map[string]any{"id": c.ID, "time": c.TimeNS, "utilisation": nil})
	}
	nics := []map[string]any{}
	for _, n := range d.NICs {
		nics = append(nics, map[string]any{"mac_address": n.MAC,
			"rx_octets": n.RxOctets, "rx_errors": n.RxErrors, "rx_drop": n.RxDrop, "rx_packets": n.RxPackets, "rx_rate": nil,
			"tx_octets": n.TxOctets, "tx_errors": n.TxErrors, "tx_drop": n.TxDrop, "tx_packets": n.TxPackets, "tx_rate": nil})
	}
	disks := []map[string]any{}
	for _, k := range d.Disks {
		disks = append(disks, map[string]any{"read_bytes": k.ReadBytes, "read_requests": k.ReadRequests,
			"write_bytes": k.WriteBytes, "write_requests": k.WriteRequests, "errors_count": k.Errors})
	}
	return map[string]any{
		"state": powerStateName(d.State), "driver": driver, "hypervisor": d.Hypervisor, "hypervisor_os": d.HypervisorOS,
		"uptime": d.UptimeSeconds, "config_drive": d.ConfigDrive,
		"num_cpus": len(d.CPUs), "num_nics": len(d.NICs), "num_disks": len(d.Disks),
		"memory_details": map[string]any{"maximum": d.MemoryMaxMiB, "used": d.MemoryUsedMiB},
		"cpu_details":    cpus, "nic_details": nics, "disk_details": disks,
	}
}

// legacyDiagnostics is the body before 2.48, which was each driver's own;
// this is the libvirt driver's flat one (memory in KiB, counters named
// after the vCPU, disk and tap), with the values the host has.
func legacyDiagnostics(d hypervisor.Diagnostics) map[string]any {
	out := map[string]any{"memory": d.MemoryMaxMiB << 10}
	if d.MemoryUsedMiB != nil {
		out["memory-rss"] = *d.MemoryUsedMiB << 10
	}
	set := func(key string, v *int64) {
		if v != nil {
			out[key] = *v
		}
	}
	for _, c := range d.CPUs {
		set(fmt.Sprintf("cpu%d_time", c.ID), c.TimeNS)
	}
	for _, k := range d.Disks {
		set(k.Device+"_read", k.ReadBytes)
		set(k.Device+"_read_req", k.ReadRequests)
		set(k.Device+"_write", k.WriteBytes)
		set(k.Device+"_write_req", k.WriteRequests)
		set(k.Device+"_errors", k.Errors)
	}
	for _, n := range d.NICs {
		set(n.Device+"_rx", n.RxOctets)
		set(n.Device+"_rx_packets", n.RxPackets)
		set(n.Device+"_rx_errors", n.RxErrors)
		set(n.Device+"_rx_drop", n.RxDrop)
		set(n.Device+"_tx", n.TxOctets)
		set(n.Device+"_tx_packets", n.TxPackets)
		set(n.Device+"_tx_errors", n.TxErrors)
		set(n.Device+"_tx_drop", n.TxDrop)
	}
	return out
}

// powerStateName is Nova's diagnostics name of a power state.
func powerStateName(p hypervisor.PowerState) string {
	switch p {
	case hypervisor.Running:
		return "running"
	case hypervisor.Paused:
		return "paused"
	case hypervisor.Shutdown:
		return "shutdown"
	case hypervisor.Crashed:
		return "crashed"
	case hypervisor.Suspended:
		return "suspended"
	}
	return "pending"
}
