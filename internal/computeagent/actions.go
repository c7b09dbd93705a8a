package computeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// The operations beyond the power actions: snapshots (createImage,
// createBackup, shelve), resize, rescue, crash dumps and interface
// hot-plug, each a driver call plus what the API needs to hear.

// vmNow is the vm_state the API was last told for the guest, or the one
// its power state implies.
func (a *Agent) vmNow(ctx context.Context, id string) string {
	a.mu.Lock()
	g := a.guests[id]
	a.mu.Unlock()
	if g != nil && g.vm != "" {
		return g.vm
	}
	info, err := a.cfg.Driver.GetState(ctx, id)
	if err != nil {
		return ""
	}
	return vmOf(info.State)
}

// failed is the report of an operation that did not happen: the guest
// keeps its vm_state, the fault says why.
func (a *Agent) failed(ctx context.Context, op, id string, err error) compute.InstanceReport {
	rep := a.stateReport(ctx, id)
	rep.VMState = ""
	rep.Fault = faultOf(op, err)
	var ie *imageError
	if errors.As(err, &ie) {
		rep.Fault.Code = ie.code
	}
	return rep
}

// succeeded reports an operation done, the guest now in vm (or, when vm
// is empty, in the state the API was last told).
func (a *Agent) succeeded(ctx context.Context, cmd compute.Command, vm string) compute.InstanceReport {
	rep := a.stateReport(ctx, cmd.Instance.ID)
	if vm == "" {
		vm = a.vmNow(ctx, cmd.Instance.ID)
	}
	rep.Success, rep.VMState = true, vm
	a.setGuest(cmd.Instance, vm, rep.PowerState)
	return rep
}

// snapshot uploads a crash-consistent copy of the guest's root disk as
// the image the API created (queued) for it, cmd.ImageID. When it fails
// the image is deleted, as Nova does, so that nobody waits for an image
// that will never become active.
func (a *Agent) snapshot(ctx context.Context, log *slog.Logger, cmd compute.Command) error {
	err := a.uploadSnapshot(ctx, cmd)
	if err != nil && cmd.ImageID != "" {
		a.deleteImage(context.WithoutCancel(ctx), log, cmd.ImageID)
	}
	return err
}

// deleteImage deletes an image the agent is done with (a failed
// snapshot's, an unshelved server's snapshot), logging a failure.
func (a *Agent) deleteImage(ctx context.Context, log *slog.Logger, id string) {
	if a.cfg.Image == nil {
		return
	}
	if _, err := a.cfg.Image.Delete(ctx, a.cfg.Image.ServiceURL("images", url.PathEscape(id)), nil); err != nil && !isNotFound(err) {
		log.Error("delete image", "image", id, "err", err)
	}
}

func (a *Agent) uploadSnapshot(ctx context.Context, cmd compute.Command) error {
	if a.cfg.Image == nil {
		return errors.New("this compute host has no image service configured")
	}
	if cmd.ImageID == "" {
		return errors.New("no image to upload the snapshot to")
	}
	if err := os.MkdirAll(a.cfg.ImageCacheDir, 0o755); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	dst := filepath.Join(a.cfg.ImageCacheDir, ".snapshot-"+cmd.ImageID+".qcow2")
	defer os.Remove(dst)
	if err := a.cfg.Driver.Snapshot(ctx, cmd.Instance.ID, dst); err != nil {
		return err
	}
	f, err := os.Open(dst)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	_, err = a.cfg.Image.Put(ctx, a.cfg.Image.ServiceURL("images", url.PathEscape(cmd.ImageID), "file"), f, nil,
		&gophercloud.RequestOpts{MoreHeaders: map[string]string{"Content-Type": "application/octet-stream"},
			OkCodes: []int{http.StatusNoContent}})
	if err != nil {
		return fmt.Errorf("upload snapshot image %s: %w", cmd.ImageID, err)
	}
	return nil
}

// shelve snapshots the guest into cmd.ImageID and removes it from the
// host (Nova's shelve with shelved_offload_time 0). Its ports stay the
// server's, unbound from this host; unshelve builds it again from the
// snapshot.
func (a *Agent) shelve(ctx context.Context, log *slog.Logger, cmd compute.Command) compute.InstanceReport {
	id := cmd.Instance.ID
	if err := a.cfg.Driver.PowerOff(ctx, id, a.cfg.ShutdownTimeout); err != nil && !errors.Is(err, hypervisor.ErrInvalidState) {
		return a.failed(ctx, cmd.Op, id, err)
	}
	if err := a.snapshot(ctx, log, cmd); err != nil {
		return a.failed(ctx, cmd.Op, id, err)
	}
	if err := a.cfg.Driver.Destroy(ctx, id); err != nil {
		return a.failed(ctx, cmd.Op, id, err)
	}
	if a.cfg.Network != nil {
		var res struct {
			Ports []port `json:"ports"`
		}
		if err := a.netGet(ctx, "ports?device_id="+url.QueryEscape(id), &res); err != nil {
			log.Error("list ports of shelved instance", "err", err)
		}
		for _, p := range res.Ports {
			body := map[string]any{"port": map[string]any{"binding:host_id": ""}}
			if _, err := a.cfg.Network.Put(ctx, a.cfg.Network.ServiceURL("ports", url.PathEscape(p.ID)), body, nil,
				&gophercloud.RequestOpts{OkCodes: []int{http.StatusOK}}); err != nil && !isNotFound(err) {
				log.Error("unbind port of shelved instance", "port", p.ID, "err", err)
			}
		}
	}
	a.forget(id)
	return compute.InstanceReport{Success: true, PowerState: compute.PowerNoState}
}

// resize gives the guest the new flavor's vCPUs, memory and root disk;
// the driver keeps what a revert needs until the confirm.
func (a *Agent) resize(ctx context.Context, cmd compute.Command) compute.InstanceReport {
	id := cmd.Instance.ID
	f := cmd.NewFlavor
	if f == nil {
		f = &cmd.Instance.Flavor
	}
	to := hypervisor.Resize{VCPUs: f.VCPUs, MemoryMiB: f.MemoryMB, RootBytes: int64(f.RootGB) << 30,
		ShutdownTimeout: a.cfg.ShutdownTimeout}
	if err := a.cfg.Driver.Resize(ctx, id, to); err != nil {
		return a.failed(ctx, cmd.Op, id, err)
	}
	inst := cmd.Instance
	inst.Flavor = *f
	cmd.Instance = inst
	return a.succeeded(ctx, cmd, "resized")
}

// rescue boots the guest from the rescue image (cmd.ImageID, else its
// own image) with its disks attached.
func (a *Agent) rescue(ctx context.Context, cmd compute.Command) compute.InstanceReport {
	id := cmd.Instance.ID
	imageID := cmd.ImageID
	if imageID == "" {
		imageID = cmd.Instance.ImageID
	}
	img, err := a.fetchImage(ctx, imageID)
	if err != nil {
		return a.failed(ctx, cmd.Op, id, err)
	}
	if err := a.cfg.Driver.Rescue(ctx, id, img, a.cfg.ShutdownTimeout); err != nil {
		return a.failed(ctx, cmd.Op, id, err)
	}
	return a.succeeded(ctx, cmd, "rescued")
}

// attachInterface binds the port (the API has set its device_id) to this
// host, waits for the networking agent's tap and hot-plugs the NIC.
func (a *Agent) attachInterface(ctx context.Context, cmd compute.Command) compute.InstanceReport {
	id := cmd.Instance.ID
	if a.cfg.Network == nil {
		return a.failed(ctx, cmd.Op, id, errNoNetworking)
	}
	var rv revert
	p, err := a.bindPort(ctx, cmd.Instance, cmd.PortID, &rv)
	if err == nil {
		err = a.waitTaps(ctx, []port{p})
	}
	if err == nil {
		err = a.cfg.Driver.AttachInterface(ctx, id, hypervisor.NIC{TapName: dataplane.PortDevice(a.cfg.TapPrefix, p.ID), MAC: p.MAC})
	}
	if err != nil {
		return a.failed(ctx, cmd.Op, id, err)
	}
	rep := a.succeeded(ctx, cmd, "")
	rep.Addresses = a.currentAddresses(ctx, id)
	return rep
}

// detachInterface unplugs the NIC of cmd.PortID (the API gives the port
// back to its owner).
func (a *Agent) detachInterface(ctx context.Context, cmd compute.Command) compute.InstanceReport {
	id := cmd.Instance.ID
	if err := a.cfg.Driver.DetachInterface(ctx, id, dataplane.PortDevice(a.cfg.TapPrefix, cmd.PortID)); err != nil {
		return a.failed(ctx, cmd.Op, id, err)
	}
	rep := a.succeeded(ctx, cmd, "")
	if addrs := a.currentAddresses(ctx, id); addrs != nil {
		// The API may not have released the port yet.
		for n, list := range addrs {
			keep := list[:0]
			for _, ad := range list {
				if ad.PortID != cmd.PortID {
					keep = append(keep, ad)
				}
			}
			if len(keep) == 0 {
				delete(addrs, n)
			} else {
				addrs[n] = keep
			}
		}
		rep.Addresses = addrs
	}
	return rep
}

// externalEvent acts on an event the compute API passed on: after
// network-changed (a floating IP joined or left one of the server's
// ports) the server's addresses are read and reported anew.
func (a *Agent) externalEvent(ctx context.Context, ev compute.ExternalEvent) error {
	if ev.Name != "network-changed" {
		return nil
	}
	a.mu.Lock()
	_, ours := a.guests[ev.ServerUUID]
	a.mu.Unlock()
	if !ours {
		return nil
	}
	addrs := a.currentAddresses(ctx, ev.ServerUUID)
	if addrs == nil {
		return nil
	}
	rep := a.stateReport(ctx, ev.ServerUUID)
	rep.Addresses = addrs
	a.report(ctx, ev.ServerUUID, rep)
	return nil
}

// currentAddresses are the addresses of the instance's ports now, their
// floating IPs included, or nil when they cannot be read (the API then
// keeps what it has).
func (a *Agent) currentAddresses(ctx context.Context, id string) map[string][]compute.Address {
	if a.cfg.Network == nil {
		return nil
	}
	var res struct {
		Ports []port `json:"ports"`
	}
	if err := a.netGet(ctx, "ports?device_id="+url.QueryEscape(id), &res); err != nil {
		return nil
	}
	nets, _, err := a.portDetails(ctx, res.Ports)
	if err != nil {
		return nil
	}
	out, err := a.addressesOf(ctx, res.Ports, nets)
	if err != nil {
		return nil
	}
	return out
}

// addressesOf renders the ports as the server's addresses, with the
// floating IPs that map to them: Nova lists a floating IP after the
// fixed address it maps to, under the same network.
func (a *Agent) addressesOf(ctx context.Context, ports []port, nets map[string]network) (map[string][]compute.Address, error) {
	out := addresses(ports, nets)
	for _, p := range ports {
		var fips struct {
			FloatingIPs []struct {
				Address string `json:"floating_ip_address"`
			} `json:"floatingips"`
		}
		if err := a.netGet(ctx, "floatingips?port_id="+url.QueryEscape(p.ID), &fips); err != nil {
			return nil, fmt.Errorf("floating IPs of port %s: %w", p.ID, err)
		}
		name := networkName(p, nets)
		for _, f := range fips.FloatingIPs {
			out[name] = append(out[name], compute.Address{Addr: f.Address, Version: 4, MAC: p.MAC, Type: "floating", PortID: p.ID})
		}
	}
	return out, nil
}
