package computeagent_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/fake"
)

// A server goes ACTIVE through the agent: image downloaded once and
// verified, a port created and bound to the host, its tap waited for,
// the config drive written and the addresses reported.
func TestBuildActive(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	h.json("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "k", "public_key": testKey}}, 200)

	id := h.boot("vm1", map[string]any{"key_name": "k", "config_drive": true, "user_data": "IyEvYmluL3NoCmVjaG8gaGk=",
		"metadata": map[string]any{"role": "web"}})
	s := h.waitStatus(id, "ACTIVE")
	if s["OS-EXT-STS:power_state"] != float64(1) {
		t.Fatalf("power_state %v", s["OS-EXT-STS:power_state"])
	}
	addrs, _ := s["addresses"].(map[string]any)["private"].([]any)
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0].(map[string]any)["addr"].(string), "10.0.0.") {
		t.Fatalf("addresses %v", s["addresses"])
	}
	ports := h.cloud.portsOf(id)
	if len(ports) != 1 || ports[0]["binding:host_id"] != "host1" || ports[0]["network_id"] != netID ||
		ports[0]["project_id"] != projA || ports[0]["device_owner"] != "compute:nova" {
		t.Fatalf("ports %v", ports)
	}
	if sgs, _ := ports[0]["security_groups"].([]any); len(sgs) != 1 || sgs[0] != sgID {
		t.Fatalf("security groups %v", ports[0]["security_groups"])
	}

	spec := drv.spec(id)
	if spec.VCPUs != 1 || spec.MemoryMiB != 512 || len(spec.Disks) != 1 || spec.Disks[0].SizeBytes != 1<<30 {
		t.Fatalf("spec %+v", spec)
	}
	img := spec.Disks[0].Image
	if img == nil || img.ID != imageID || img.Algorithm != "sha256" || !strings.HasSuffix(img.Path, img.Checksum) {
		t.Fatalf("image %+v", img)
	}
	if len(spec.NICs) != 1 || spec.NICs[0].TapName != dataplane.PortDevice(prefix, ports[0]["id"].(string)) || spec.NICs[0].MAC != ports[0]["mac_address"] {
		t.Fatalf("nics %+v", spec.NICs)
	}
	if spec.ConfigDrive == nil {
		t.Fatal("no config drive")
	}
	files := spec.ConfigDrive.Files
	var meta map[string]any
	if err := json.Unmarshal(files["openstack/latest/meta_data.json"], &meta); err != nil {
		t.Fatal(err)
	}
	if meta["uuid"] != id || meta["name"] != "vm1" || meta["hostname"] != "vm1" || meta["project_id"] != projA ||
		meta["availability_zone"] != "nova" || meta["public_keys"].(map[string]any)["k"] != testKey ||
		meta["meta"].(map[string]any)["role"] != "web" {
		t.Fatalf("meta_data.json %v", meta)
	}
	if got := string(files["openstack/latest/user_data"]); got != "#!/bin/sh\necho hi" {
		t.Fatalf("user_data %q", got)
	}
	var nd struct {
		Links    []map[string]any `json:"links"`
		Networks []map[string]any `json:"networks"`
		Services []map[string]any `json:"services"`
	}
	if err := json.Unmarshal(files["openstack/latest/network_data.json"], &nd); err != nil {
		t.Fatal(err)
	}
	if len(nd.Links) != 1 || nd.Links[0]["ethernet_mac_address"] != ports[0]["mac_address"] || nd.Links[0]["mtu"] != float64(1450) ||
		len(nd.Networks) != 1 || nd.Networks[0]["type"] != "ipv4_dhcp" || nd.Networks[0]["link"] != nd.Links[0]["id"] ||
		len(nd.Services) != 1 || nd.Services[0]["address"] != "10.0.0.2" {
		t.Fatalf("network_data.json %+v", nd)
	}

	// A second server uses the cached image.
	id2 := h.boot("vm2", nil)
	h.waitStatus(id2, "ACTIVE")
	h.cloud.mu.Lock()
	downloads := h.cloud.downloads
	h.cloud.mu.Unlock()
	if downloads != 1 {
		t.Fatalf("%d downloads, want 1", downloads)
	}
	if drv.spec(id2).ConfigDrive != nil {
		t.Fatal("config drive without asking")
	}

	// The console log comes from the driver. length counts pieces of
	// the log split on newlines, as Nova's: the last line and the empty
	// piece after its newline.
	out := h.json("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"os-getConsoleOutput": map[string]any{"length": 2}}, 200)
	if got := out["output"].(string); !strings.Contains(got, "login:") || strings.Contains(got, "fake boot") {
		t.Fatalf("console output %q", got)
	}
	vnc, err := bus.Call[compute.ConsoleRequest, compute.ConsoleReply](context.Background(), h.bus, compute.ConsoleSubject("host1"),
		compute.ConsoleRequest{InstanceID: id, Type: "novnc"})
	if err != nil || vnc.Host != "127.0.0.1" || vnc.Port != 5900 {
		t.Fatalf("vnc console %+v, %v", vnc, err)
	}
	serial, err := bus.Call[compute.ConsoleRequest, compute.ConsoleReply](context.Background(), h.bus, compute.ConsoleSubject("host1"),
		compute.ConsoleRequest{InstanceID: id, Type: "serial"})
	if err != nil || serial.Host != "127.0.0.1" || serial.Port != 10000 {
		t.Fatalf("serial console %+v, %v", serial, err)
	}
}

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@nimbus"

// Every action reaches the driver and the server's status follows; a
// delete destroys the guest and deletes the port the agent created.
func TestActions(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")

	h.action(id, map[string]any{"reboot": map[string]any{"type": "HARD"}})
	h.waitStatus(id, "ACTIVE")
	h.action(id, map[string]any{"reboot": map[string]any{"type": "SOFT"}})
	h.waitStatus(id, "ACTIVE")
	if drv.count("reboot-HARD "+id) != 1 || drv.count("reboot-SOFT "+id) != 1 {
		t.Fatalf("calls %v", drv.calls)
	}

	h.action(id, map[string]any{"os-stop": nil})
	s := h.waitStatus(id, "SHUTOFF")
	if s["OS-EXT-STS:power_state"] != float64(4) {
		t.Fatalf("power_state %v", s["OS-EXT-STS:power_state"])
	}
	if info, _ := drv.GetState(context.Background(), id); info.State != hypervisor.Shutdown {
		t.Fatalf("driver state %v", info.State)
	}
	h.action(id, map[string]any{"os-start": nil})
	h.waitStatus(id, "ACTIVE")
	if drv.count("power_off "+id) != 1 || drv.count("power_on "+id) != 1 {
		t.Fatalf("calls %v", drv.calls)
	}

	h.action(id, map[string]any{"pause": nil})
	h.waitStatus(id, "PAUSED")
	h.action(id, map[string]any{"unpause": nil})
	h.waitStatus(id, "ACTIVE")
	h.action(id, map[string]any{"suspend": nil})
	h.waitStatus(id, "SUSPENDED")
	if info, _ := drv.GetState(context.Background(), id); info.State != hypervisor.Suspended {
		t.Fatalf("driver state %v", info.State)
	}
	h.action(id, map[string]any{"resume": nil})
	h.waitStatus(id, "ACTIVE")

	h.json("a", "DELETE", "/v2.1/servers/"+id, nil, 204)
	h.waitGone(id)
	if _, err := drv.GetState(context.Background(), id); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("guest still there: %v", err)
	}
	if p := h.cloud.portsOf(id); len(p) != 0 {
		t.Fatalf("ports left: %v", p)
	}
}

// A port the user brings is bound for the server and given back unbound,
// not deleted, when the server goes.
func TestUserPortKept(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	p := h.cloud.addPort(map[string]any{"network_id": netID, "project_id": projA})
	pid := p["id"].(string)
	id := h.boot("vm1", map[string]any{"networks": []any{map[string]any{"port": pid}}})
	h.waitStatus(id, "ACTIVE")
	if got := h.cloud.port(pid); got["device_id"] != id || got["binding:host_id"] != "host1" {
		t.Fatalf("port %v", got)
	}
	h.json("a", "DELETE", "/v2.1/servers/"+id, nil, 204)
	h.waitGone(id)
	got := h.cloud.port(pid)
	if got == nil || got["device_id"] != "" || got["binding:host_id"] != "" {
		t.Fatalf("port after delete %v", got)
	}
}

// A spawn that fails on one host is rescheduled to another; the port it
// made on the first host is gone.
func TestSpawnFailureReschedules(t *testing.T) {
	h := newHarness(t)
	bad := newRecDriver()
	bad.spawnErr = errors.New("qemu exited: no space left on device")
	// host2 is small, so the least-loaded scheduler tries host1 first.
	good := newRecDriverWith(fake.Config{VCPUs: 1, MemoryMiB: 1024, DiskGiB: 10})
	h.startAgent(h.config("host1", bad))
	h.startAgent(h.config("host2", good))
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")
	host := h.json("admin", "GET", "/v2.1/servers/"+id, nil, 200)["server"].(map[string]any)["OS-EXT-SRV-ATTR:host"]
	if host != "host2" || bad.count("spawn "+id) != 1 || good.startsOf(id) != 1 {
		t.Fatalf("server on %v; host1 spawns %d, host2 starts %d", host, bad.count("spawn "+id), good.startsOf(id))
	}
	ports := h.cloud.portsOf(id)
	if len(ports) != 1 || ports[0]["binding:host_id"] != "host2" {
		t.Fatalf("ports %v", ports)
	}
	if list, _ := bad.List(context.Background()); len(list) != 0 {
		t.Fatalf("guests left on host1: %v", list)
	}
}

// A spawn that fails on the only host ends in ERROR with a fault, and
// nothing is left behind.
func TestSpawnFailureError(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	drv.Fail("spawn", errors.New("qemu exited: could not open disk"))
	h.startAgent(h.config("host1", drv))
	id := h.boot("vm1", nil)
	s := h.waitStatus(id, "ERROR")
	// The agent asked for another host; with none left the API records
	// Nova's "Exceeded maximum number of retries" fault.
	fault, _ := s["fault"].(map[string]any)
	if fault == nil || !strings.Contains(fault["message"].(string), "retries") {
		t.Fatalf("fault %v", s["fault"])
	}
	if drv.count("spawn "+id) != 1 {
		t.Fatalf("calls %v", drv.calls)
	}
	if p := h.cloud.portsOf(id); len(p) != 0 {
		t.Fatalf("ports left: %v", p)
	}
	if list, _ := drv.List(context.Background()); len(list) != 0 {
		t.Fatalf("guests left: %v", list)
	}
}

// An image whose bytes do not match its checksum is refused, without
// trying other hosts.
func TestChecksumMismatch(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	body := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "vm", "imageRef": badImage, "flavorRef": "1"}}, 202)
	id := body["server"].(map[string]any)["id"].(string)
	s := h.waitStatus(id, "ERROR")
	fault, _ := s["fault"].(map[string]any)
	if fault == nil || !strings.Contains(fault["message"].(string), "checksum") || strings.Contains(fault["message"].(string), "retries") {
		t.Fatalf("fault %v", s["fault"])
	}
	if drv.count("spawn "+id) != 0 {
		t.Fatal("spawned a corrupt image")
	}
}

// A command delivered twice is carried out once.
func TestDuplicateCommandIgnored(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")
	spec := compute.InstanceSpec{ID: id, Name: "vm1", ProjectID: projA, ImageID: imageID}
	cmd := compute.Command{ID: uuid.NewString(), Op: compute.OpReboot, RebootType: "HARD", Instance: spec}
	ctx := context.Background()
	for range 2 {
		if err := bus.CastDurable(ctx, h.bus, compute.HostSubject("host1"), cmd); err != nil {
			t.Fatal(err)
		}
	}
	// A marker command after both: once it has run, so have they.
	marker := compute.Command{ID: uuid.NewString(), Op: compute.OpReboot, RebootType: "SOFT", Instance: spec}
	if err := bus.CastDurable(ctx, h.bus, compute.HostSubject("host1"), marker); err != nil {
		t.Fatal(err)
	}
	h.eventually("marker", func() bool { return drv.count("reboot-SOFT "+id) == 1 })
	if n := drv.count("reboot-HARD " + id); n != 1 {
		t.Fatalf("%d hard reboots, want 1", n)
	}
}

// A restarted agent re-adopts its running guests without starting them
// again, destroys a guest the API does not know, and carries out the
// delete queued while it was away.
func TestRestartReadopts(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	a := h.startAgent(h.config("host1", drv))
	keep := h.boot("keep", nil)
	gone := h.boot("gone", nil)
	h.waitStatus(keep, "ACTIVE")
	h.waitStatus(gone, "ACTIVE")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	// While the agent is away: a delete is queued and a stray guest appears.
	h.json("a", "DELETE", "/v2.1/servers/"+gone, nil, 204)
	stray := uuid.NewString()
	img := drv.spec(keep).Disks[0].Image
	if _, err := drv.Driver.Spawn(context.Background(), hypervisor.Spec{UUID: stray, VCPUs: 1, MemoryMiB: 64,
		Disks: []hypervisor.Disk{{Name: "root", Image: img}}}); err != nil {
		t.Fatal(err)
	}

	h.startAgent(h.config("host1", drv))
	h.waitGone(gone)
	h.eventually("stray destroyed", func() bool {
		_, err := drv.GetState(context.Background(), stray)
		return errors.Is(err, hypervisor.ErrNotFound)
	})
	if n := drv.startsOf(keep); n != 1 {
		t.Fatalf("kept guest started %d times", n)
	}
	if info, _ := drv.GetState(context.Background(), keep); info.State != hypervisor.Running {
		t.Fatalf("kept guest %v", info.State)
	}
	h.waitStatus(keep, "ACTIVE")
	// The adopted guest is still under control.
	h.action(keep, map[string]any{"os-stop": nil})
	h.waitStatus(keep, "SHUTOFF")
	if p := h.cloud.portsOf(gone); len(p) != 0 {
		t.Fatalf("ports of deleted server left: %v", p)
	}
}

// A guest that dies is reported SHUTOFF by the power sync.
func TestPowerSync(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")
	if err := drv.SetState(id, hypervisor.Shutdown); err != nil {
		t.Fatal(err)
	}
	s := h.waitStatus(id, "SHUTOFF")
	if s["OS-EXT-STS:power_state"] != float64(4) {
		t.Fatalf("power_state %v", s["OS-EXT-STS:power_state"])
	}
	h.action(id, map[string]any{"os-start": nil})
	h.waitStatus(id, "ACTIVE")
}

// A build whose tap never appears fails in bounded time and is
// rescheduled (here: nowhere else, so ERROR), with its port removed.
func TestTapTimeout(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	cfg := h.config("host1", drv)
	cfg.TapExists = func(string) bool { return false }
	cfg.TapTimeout = 200 * time.Millisecond
	h.startAgent(cfg)
	id := h.boot("vm1", nil)
	s := h.waitStatus(id, "ERROR")
	if f, _ := s["fault"].(map[string]any); f == nil || !strings.Contains(f["message"].(string), "retries") {
		t.Fatalf("fault %v", s["fault"])
	}
	if p := h.cloud.portsOf(id); len(p) != 0 {
		t.Fatalf("ports left: %v", p)
	}
	if drv.count("spawn "+id) != 0 {
		t.Fatal("spawned without a tap")
	}
}

// A rebuild makes the guest again from the image and keeps its port.
func TestRebuild(t *testing.T) {
	h := newHarness(t)
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")
	before := h.cloud.portsOf(id)
	h.json("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"rebuild": map[string]any{"imageRef": imageID}}, 202)
	h.waitStatus(id, "ACTIVE")
	if drv.startsOf(id) != 2 || drv.count("destroy "+id) != 1 {
		t.Fatalf("calls %v", drv.calls)
	}
	after := h.cloud.portsOf(id)
	if len(before) != 1 || len(after) != 1 || before[0]["id"] != after[0]["id"] {
		t.Fatalf("ports before %v after %v", before, after)
	}
}
