package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu/qmp"
)

// unplugTimeout bounds the wait for a guest to release a NIC; a guest that
// ignores ACPI hot-unplug (still booting, or without support) never does.
const unplugTimeout = 60 * time.Second

// liveMonitor connects to the guest's QMP for a change to its devices.
// It returns nil without error when the guest has no process (the change
// goes into the record only).
func (d *Driver) liveMonitor(ctx context.Context, op, uuid string) (*qmp.Monitor, error) {
	info, err := d.changeableState(ctx, op, uuid)
	if err != nil {
		return nil, err
	}
	if info.PID == 0 {
		return nil, nil
	}
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return mon, nil
}

// AttachInterface implements hypervisor.Driver with netdev_add on the
// existing tap and device_add of a virtio-net-pci with the port's MAC,
// named as qemuArgs names boot NICs, so a later detach or a hard reboot
// treats both alike.
func (d *Driver) AttachInterface(ctx context.Context, uuid string, nic hypervisor.NIC) error {
	if err := nic.Validate(); err != nil {
		return fmt.Errorf("attach interface to %s: %w", uuid, err)
	}
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("attach interface: %w", err)
	}
	for _, n := range rec.Spec.NICs {
		if n.TapName == nic.TapName {
			return nil
		}
	}
	mon, err := d.liveMonitor(ctx, "attach interface", uuid)
	if err != nil {
		return err
	}
	if mon != nil {
		defer mon.Close()
		if err := mon.NetdevAdd(ctx, map[string]any{"type": "tap", "id": netdevID(nic.TapName), "ifname": nic.TapName,
			"script": "no", "downscript": "no"}); err != nil {
			return fmt.Errorf("attach interface %s to %s: %w", nic.TapName, uuid, err)
		}
		if err := mon.DeviceAdd(ctx, map[string]any{"driver": "virtio-net-pci", "id": nicID(nic.TapName),
			"netdev": netdevID(nic.TapName), "mac": strings.ToLower(nic.MAC), "romfile": ""}); err != nil {
			mon.NetdevDel(context.WithoutCancel(ctx), netdevID(nic.TapName))
			return fmt.Errorf("attach interface %s to %s: %w", nic.TapName, uuid, err)
		}
	}
	rec.Spec.NICs = append(rec.Spec.NICs, nic)
	if err := d.writeRecord(rec); err != nil {
		if mon != nil {
			d.unplugNIC(context.WithoutCancel(ctx), mon, nic.TapName)
		}
		return fmt.Errorf("attach interface: %w", err)
	}
	return nil
}

// DetachInterface implements hypervisor.Driver. A paused guest is
// refused: it cannot acknowledge the unplug, so the wait would only time
// out.
func (d *Driver) DetachInterface(ctx context.Context, uuid, tapName string) error {
	defer d.lock(uuid)()
	rec, err := d.readRecord(uuid)
	if err != nil {
		return fmt.Errorf("detach interface: %w", err)
	}
	idx := -1
	for i, n := range rec.Spec.NICs {
		if n.TapName == tapName {
			idx = i
		}
	}
	if idx < 0 {
		return nil
	}
	mon, err := d.liveMonitor(ctx, "detach interface", uuid)
	if err != nil {
		return err
	}
	if mon != nil {
		defer mon.Close()
		if st, err := mon.QueryStatus(ctx); err != nil {
			return fmt.Errorf("detach interface from %s: %w", uuid, err)
		} else if stateFromQMP(st.Status) == hypervisor.Paused {
			return fmt.Errorf("detach interface %s from %s: %w", tapName, uuid, &hypervisor.StateError{Op: "detach interface", State: hypervisor.Paused})
		}
		if err := d.unplugNIC(ctx, mon, tapName); err != nil {
			return fmt.Errorf("detach interface %s from %s: %w", tapName, uuid, err)
		}
	}
	rec.Spec.NICs = append(rec.Spec.NICs[:idx:idx], rec.Spec.NICs[idx+1:]...)
	if err := d.writeRecord(rec); err != nil {
		return fmt.Errorf("detach interface: %w", err)
	}
	return nil
}

// unplugNIC removes a NIC's device, waiting for the guest to release it
// (DEVICE_DELETED), then its tap backend. Either already gone is fine, so
// a retried detach completes.
func (d *Driver) unplugNIC(ctx context.Context, mon *qmp.Monitor, tap string) error {
	id := nicID(tap)
	err := mon.DeviceDel(ctx, id)
	switch {
	case qmp.IsDeviceNotFound(err):
	case err != nil:
		return err
	default:
		if err := waitDeviceDeleted(ctx, mon, id, unplugTimeout); err != nil {
			return err
		}
	}
	if err := mon.NetdevDel(ctx, netdevID(tap)); err != nil && !qmp.IsDeviceNotFound(err) {
		return err
	}
	return nil
}

// waitDeviceDeleted waits for QEMU's DEVICE_DELETED event of device id.
func waitDeviceDeleted(ctx context.Context, mon *qmp.Monitor, id string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-mon.Events():
			if !ok {
				return fmt.Errorf("waiting for the guest to release %s: %w", id, qmp.ErrClosed)
			}
			var data struct {
				Device string `json:"device"`
			}
			if ev.Name == "DEVICE_DELETED" && json.Unmarshal(ev.Data, &data) == nil && data.Device == id {
				return nil
			}
		case <-t.C:
			return fmt.Errorf("the guest did not release %s within %s (does it support ACPI hot-unplug?)", id, timeout)
		case <-ctx.Done():
			return fmt.Errorf("waiting for the guest to release %s: %w", id, ctx.Err())
		}
	}
}

// InjectNMI implements hypervisor.Driver.
func (d *Driver) InjectNMI(ctx context.Context, uuid string) error {
	defer d.lock(uuid)()
	info, err := d.getState(ctx, uuid)
	if err != nil {
		return fmt.Errorf("inject nmi: %w", err)
	}
	if info.PID == 0 {
		return fmt.Errorf("inject nmi %s: %w", uuid, &hypervisor.StateError{Op: "trigger crash dump", State: info.State})
	}
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		return fmt.Errorf("inject nmi: %w", err)
	}
	defer mon.Close()
	if err := mon.InjectNMI(ctx); err != nil {
		return fmt.Errorf("inject nmi %s: %w", uuid, err)
	}
	return nil
}
