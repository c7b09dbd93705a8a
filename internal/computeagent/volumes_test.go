package computeagent_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakevolumes"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

const kernelID = "5a1e6f0e-0c1d-4f5e-9a7b-2b3c4d5e6f70"

func volumeDisk(spec hypervisor.Spec, volumeID string) *hypervisor.Disk {
	for k := range spec.Disks {
		if v := spec.Disks[k].Volume; v != nil && v.VolumeID == volumeID {
			return &spec.Disks[k]
		}
	}
	return nil
}

// OpAttachVolume and OpDetachVolume through the agent and the fake
// driver: the disk is in the guest's saved spec under its device name
// with the connection the API got, and gone after the detach; a power
// cycle keeps it.
func TestAgentAttachDetachVolume(t *testing.T) {
	fv := fakevolumes.New()
	h := newHarnessWith(t, func(c *compute.Config) { c.Volumes = fv })
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")
	vol := fv.Add(projA, 1, false, nil)
	h.json("a", "POST", "/v2.1/servers/"+id+"/os-volume_attachments", map[string]any{"volumeAttachment": map[string]any{"volumeId": vol}}, 200)
	h.eventually("volume in-use", func() bool { v := fv.Get(vol); return v != nil && v.Status == "in-use" })
	spec, err := drv.Spec(id)
	if err != nil {
		t.Fatal(err)
	}
	d := volumeDisk(spec, vol)
	if d == nil || d.Name != "vdb" || d.Volume.PSKIdentity != "host1" || d.Volume.Export != vol+"-abcdef12" || d.Bus != "virtio" {
		t.Fatalf("volume disk %+v in %+v", d, spec.Disks)
	}
	h.action(id, map[string]any{"os-stop": nil})
	h.waitStatus(id, "SHUTOFF")
	h.action(id, map[string]any{"os-start": nil})
	h.waitStatus(id, "ACTIVE")
	if spec, _ := drv.Spec(id); volumeDisk(spec, vol) == nil {
		t.Fatal("the volume did not survive a power cycle")
	}
	h.json("a", "DELETE", "/v2.1/servers/"+id+"/os-volume_attachments/"+vol, nil, 202)
	h.eventually("volume available", func() bool { return fv.Get(vol).Status == "available" })
	if spec, _ := drv.Spec(id); volumeDisk(spec, vol) != nil {
		t.Fatalf("volume still in the spec: %+v", spec.Disks)
	}
}

// A driver that cannot plug the disk fails the attach; the volume goes
// back to available.
func TestAgentAttachVolumeFails(t *testing.T) {
	fv := fakevolumes.New()
	h := newHarnessWith(t, func(c *compute.Config) { c.Volumes = fv })
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")
	drv.Fail("attach_volume", context.DeadlineExceeded)
	vol := fv.Add(projA, 1, false, nil)
	h.json("a", "POST", "/v2.1/servers/"+id+"/os-volume_attachments", map[string]any{"volumeAttachment": map[string]any{"volumeId": vol}}, 200)
	h.eventually("attach rolled back", func() bool {
		l := h.json("a", "GET", "/v2.1/servers/"+id+"/os-volume_attachments", nil, 200)["volumeAttachments"].([]any)
		return len(l) == 0 && fv.Get(vol).Status == "available"
	})
}

// A volume-backed build: no image download for the root, the kernel and
// ramdisk of a direct boot taken from the volume's image properties, the
// root disk the volume.
func TestAgentBootFromVolume(t *testing.T) {
	fv := fakevolumes.New()
	h := newHarnessWith(t, func(c *compute.Config) { c.Volumes = fv })
	h.cloud.mu.Lock()
	h.cloud.images[kernelID] = []byte("a kernel")
	h.cloud.mu.Unlock()
	drv := newRecDriver()
	h.startAgent(h.config("host1", drv))
	root := fv.Add(projA, 1, true, map[string]string{"image_id": imageID, "kernel_id": kernelID, "os_command_line": "console=ttyS0 root=/dev/vda"})
	body := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": map[string]any{"name": "bfv", "imageRef": "", "flavorRef": "1",
		"block_device_mapping_v2": []map[string]any{{"uuid": root, "source_type": "volume", "destination_type": "volume", "boot_index": 0}}}}, 202)
	id := body["server"].(map[string]any)["id"].(string)
	h.waitStatus(id, "ACTIVE")
	spec := drv.spec(id)
	if len(spec.Disks) == 0 || spec.Disks[0].Volume == nil || spec.Disks[0].Volume.VolumeID != root || spec.Disks[0].Image != nil || spec.Disks[0].Name != "vda" {
		t.Fatalf("disks %+v", spec.Disks)
	}
	if spec.Boot == nil || spec.Boot.Kernel.ID != kernelID || spec.Boot.Cmdline != "console=ttyS0 root=/dev/vda" {
		t.Fatalf("boot %+v", spec.Boot)
	}
	h.eventually("root volume in-use", func() bool { return fv.Get(root).Status == "in-use" })
}

// The heartbeat carries what each guest really has of its volumes (the
// fake driver's Info.Volumes): the attached volume while attached, none
// after the detach. The compute API's watchdog settles lost attaches and
// detaches from it.
func TestAgentHeartbeatVolumes(t *testing.T) {
	fv := fakevolumes.New()
	h := newHarnessWith(t, func(c *compute.Config) { c.Volumes = fv })
	drv := newRecDriver()
	cfg := h.config("host1", drv)
	cfg.Heartbeat = 50 * time.Millisecond
	h.startAgent(cfg)
	beats := make(chan compute.HostReport, 100)
	sub, err := bus.Subscribe(h.bus, compute.SubjectHeartbeat, "", func(_ context.Context, rep compute.HostReport) error {
		select {
		case beats <- rep:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	id := h.boot("vm1", nil)
	h.waitStatus(id, "ACTIVE")
	vol := fv.Add(projA, 1, false, nil)
	// waitBeat waits for a heartbeat in which the guest has want.
	waitBeat := func(want []string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case rep := <-beats:
				if !rep.GuestsListed {
					t.Fatalf("heartbeat without its guests: %+v", rep)
				}
				for _, g := range rep.Guests {
					if g.InstanceID == id && !g.Busy && !g.Unknown && slices.Equal(g.Volumes, want) {
						return
					}
				}
			case <-deadline:
				t.Fatalf("no heartbeat with guest %s having volumes %v", id, want)
			}
		}
	}
	h.json("a", "POST", "/v2.1/servers/"+id+"/os-volume_attachments", map[string]any{"volumeAttachment": map[string]any{"volumeId": vol}}, 200)
	h.eventually("volume in-use", func() bool { return fv.Get(vol).Status == "in-use" })
	waitBeat([]string{vol})
	h.json("a", "DELETE", "/v2.1/servers/"+id+"/os-volume_attachments/"+vol, nil, 202)
	h.eventually("volume available", func() bool { return fv.Get(vol).Status == "available" })
	waitBeat(nil)
}
