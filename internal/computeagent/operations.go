package computeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// run carries out one command and says how the guest is now.
func (a *Agent) run(ctx context.Context, log *slog.Logger, cmd compute.Command) compute.InstanceReport {
	d := a.cfg.Driver
	id := cmd.Instance.ID
	switch cmd.Op {
	case compute.OpBuild:
		rep := a.build(ctx, log, cmd)
		if rep.Success && cmd.ImageID != "" && cmd.ImageID != cmd.Instance.ImageID {
			// Unshelved from its snapshot, which Nova then deletes.
			a.deleteImage(ctx, log, cmd.ImageID)
		}
		return rep
	case compute.OpDelete:
		return a.delete(ctx, cmd.Instance)
	case compute.OpReboot:
		kind := hypervisor.RebootSoft
		if cmd.RebootType == string(hypervisor.RebootHard) {
			kind = hypervisor.RebootHard
		}
		return a.act(ctx, cmd, "active", func() error { return d.Reboot(ctx, id, kind) })
	case compute.OpStop:
		return a.act(ctx, cmd, "stopped", func() error { return d.PowerOff(ctx, id, a.cfg.ShutdownTimeout) })
	case compute.OpStart:
		if _, err := d.GetState(ctx, id); errors.Is(err, hypervisor.ErrNotFound) {
			// The host lost the guest (its disks went with it, or the
			// host was rebuilt): starting it means building it again.
			log.Warn("start of a guest this host does not have: building it again")
			return a.build(ctx, log, cmd)
		}
		return a.act(ctx, cmd, "active", func() error { return d.PowerOn(ctx, id) })
	case compute.OpRebuild:
		// The guest is made again from the new image (Instance.ImageID)
		// on fresh disks; its ports stay. A stopped server is stopped
		// again after it, as Nova does.
		wasStopped := a.vmNow(ctx, id) == "stopped"
		if err := d.Destroy(ctx, id); err != nil {
			rep := a.stateReport(ctx, id)
			rep.Fault = faultOf(cmd.Op, err)
			return rep
		}
		rep := a.build(ctx, log, cmd)
		if rep.Success && wasStopped {
			if err := d.PowerOff(ctx, id, 0); err != nil {
				log.Error("power off the rebuilt guest of a stopped server", "err", err)
			} else {
				rep.VMState, rep.PowerState = "stopped", compute.PowerShutdown
				a.setGuest(cmd.Instance, "stopped", compute.PowerShutdown)
			}
		}
		return rep
	case compute.OpPause:
		return a.act(ctx, cmd, "paused", func() error { return d.Pause(ctx, id) })
	case compute.OpUnpause:
		return a.act(ctx, cmd, "active", func() error { return d.Unpause(ctx, id) })
	case compute.OpSuspend:
		return a.act(ctx, cmd, "suspended", func() error { return d.Suspend(ctx, id) })
	case compute.OpResume:
		return a.act(ctx, cmd, "active", func() error { return d.Resume(ctx, id) })
	case compute.OpSnapshot:
		// createImage and createBackup: the guest keeps its state.
		if err := a.snapshot(ctx, log, cmd); err != nil {
			return a.failed(ctx, cmd.Op, id, err)
		}
		return a.succeeded(ctx, cmd, "")
	case compute.OpShelve:
		return a.shelve(ctx, log, cmd)
	case compute.OpResize:
		return a.resize(ctx, cmd)
	case compute.OpConfirmResize, compute.OpRevertResize:
		f := d.ConfirmResize
		if cmd.Op == compute.OpRevertResize {
			f = d.RevertResize
		}
		if err := f(ctx, id); err != nil {
			return a.failed(ctx, cmd.Op, id, err)
		}
		vm := "active"
		if info, err := d.GetState(ctx, id); err == nil && info.State != hypervisor.Running {
			vm = vmOf(info.State)
		}
		return a.succeeded(ctx, cmd, vm)
	case compute.OpRescue:
		return a.rescue(ctx, cmd)
	case compute.OpUnrescue:
		return a.act(ctx, cmd, "active", func() error { return d.Unrescue(ctx, id) })
	case compute.OpCrashDump:
		if err := d.InjectNMI(ctx, id); err != nil {
			return a.failed(ctx, cmd.Op, id, err)
		}
		return a.succeeded(ctx, cmd, "")
	case compute.OpAttachInterface:
		return a.attachInterface(ctx, cmd)
	case compute.OpDetachInterface:
		return a.detachInterface(ctx, cmd)
	case compute.OpAttachVolume:
		return a.attachVolume(ctx, cmd)
	case compute.OpDetachVolume:
		return a.detachVolume(ctx, cmd)
	}
	rep := a.stateReport(ctx, id)
	rep.VMState = ""
	rep.Fault = &compute.Fault{Code: http.StatusNotImplemented,
		Message: fmt.Sprintf("Operation %s is not supported by the compute agent on %s.", cmd.Op, a.cfg.Host)}
	return rep
}

// act runs a driver action and reports vm on success; on failure the
// guest keeps its vm_state and the report carries the fault.
func (a *Agent) act(ctx context.Context, cmd compute.Command, vm string, f func() error) compute.InstanceReport {
	err := f()
	rep := a.stateReport(ctx, cmd.Instance.ID)
	if err != nil {
		rep.VMState = ""
		rep.Fault = faultOf(cmd.Op, err)
		return rep
	}
	rep.Success, rep.VMState = true, vm
	a.setGuest(cmd.Instance, vm, rep.PowerState)
	return rep
}

// stateReport is a report carrying the guest's power state as the driver
// sees it now.
func (a *Agent) stateReport(ctx context.Context, id string) compute.InstanceReport {
	info, err := a.cfg.Driver.GetState(ctx, id)
	if err != nil {
		return compute.InstanceReport{PowerState: compute.PowerNoState}
	}
	return compute.InstanceReport{PowerState: int(info.State)}
}

// faultOf turns a driver error into an instance fault.
func faultOf(op string, err error) *compute.Fault {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, hypervisor.ErrInvalidState):
		code = http.StatusConflict
	case errors.Is(err, hypervisor.ErrNotFound):
		code = http.StatusNotFound
	}
	return &compute.Fault{Code: code, Message: fmt.Sprintf("%s failed: %v", op, err)}
}

// delete destroys the guest and releases its ports: ports the user
// passed in are unbound and kept, the ones the agent created are deleted.
func (a *Agent) delete(ctx context.Context, inst compute.InstanceSpec) compute.InstanceReport {
	if err := a.cfg.Driver.Destroy(ctx, inst.ID); err != nil {
		return compute.InstanceReport{Fault: faultOf(compute.OpDelete, err), PowerState: a.stateReport(ctx, inst.ID).PowerState}
	}
	if err := a.releasePorts(ctx, inst); err != nil {
		// The guest is gone; a port left behind is not worth keeping the
		// server alive for, but it is worth a loud log line.
		a.log.Error("release ports of deleted instance", "instance", inst.ID, "err", err)
	}
	a.forget(inst.ID)
	return compute.InstanceReport{Success: true, Deleted: true, PowerState: compute.PowerNoState}
}

// vmOf is the vm_state that matches a guest's power state when the API
// has nothing better to say.
func vmOf(s hypervisor.PowerState) string {
	switch s {
	case hypervisor.Running:
		return "active"
	case hypervisor.Paused:
		return "paused"
	case hypervisor.Suspended:
		return "suspended"
	}
	return "stopped"
}
