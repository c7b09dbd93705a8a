package computeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// adopt reconciles the driver's guests with what the API says this host
// should have. It runs before any command is taken, so nothing it decides
// races a command.
func (a *Agent) adopt(ctx context.Context) {
	found, err := a.cfg.Driver.List(ctx)
	if err != nil {
		a.log.Error("list guests at start; adopting none", "err", err)
		return
	}
	reply, err := a.syncCall(ctx)
	if err != nil {
		// Without the API's word nothing is destroyed: every guest is
		// kept as it is, and the power sync reports its state.
		a.log.Error("sync with the compute API failed; adopting every guest found", "err", err)
		for _, g := range found {
			a.setGuest(compute.InstanceSpec{ID: g.UUID, Name: g.Name}, vmOf(g.State), int(g.State))
		}
		return
	}
	want := map[string]compute.SyncInstance{}
	for _, si := range reply.Instances {
		want[si.Instance.ID] = si
	}
	have := map[string]hypervisor.Info{}
	for _, g := range found {
		have[g.UUID] = g
		si, ok := want[g.UUID]
		switch {
		case !ok:
			// Deleted (or moved away) while the agent was down.
			a.log.Info("destroying a guest the compute API no longer has here", "instance", g.UUID)
			if err := a.cfg.Driver.Destroy(ctx, g.UUID); err != nil {
				a.log.Error("destroy leftover guest", "instance", g.UUID, "err", err)
			}
		case si.TaskState == "deleting":
			rep := a.delete(ctx, si.Instance)
			a.report(ctx, si.Instance.ID, rep)
		default:
			vm := si.VMState
			if vm == "building" || vm == "" {
				vm = vmOf(g.State) // the build's report is still to come
			}
			a.log.Info("adopted guest", "instance", g.UUID, "power_state", g.State.String())
			a.setGuest(si.Instance, vm, int(g.State))
		}
	}
	for id, si := range want {
		if _, ok := have[id]; ok {
			continue
		}
		switch si.VMState {
		case "active", "paused", "suspended", "stopped", "resized", "rescued":
			// The API expects a guest the host does not have: it is off.
			a.log.Warn("guest missing on this host", "instance", id, "vm_state", si.VMState)
			a.setGuest(si.Instance, "stopped", compute.PowerNoState)
			a.report(ctx, id, compute.InstanceReport{VMState: "stopped", PowerState: compute.PowerNoState})
		default:
			if si.TaskState == "deleting" {
				// Nothing left here to delete; confirm it.
				rep := a.delete(ctx, si.Instance)
				a.report(ctx, id, rep)
			}
			// A build still queued arrives as a command.
		}
	}
}

// syncCall asks the API for the host's guests, retrying within
// SyncTimeout.
func (a *Agent) syncCall(ctx context.Context) (compute.SyncReply, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.SyncTimeout)
	defer cancel()
	for delay := 200 * time.Millisecond; ; delay = min(delay*2, 5*time.Second) {
		reply, err := bus.Call[compute.SyncRequest, compute.SyncReply](ctx, a.cfg.Bus, compute.SubjectSync, compute.SyncRequest{Host: a.cfg.Host})
		if err == nil {
			return reply, nil
		}
		a.log.Warn("sync call", "err", err)
		select {
		case <-ctx.Done():
			return compute.SyncReply{}, fmt.Errorf("sync: %w", err)
		case <-time.After(delay):
		}
	}
}

// report sends an unsolicited report.
func (a *Agent) report(ctx context.Context, id string, rep compute.InstanceReport) {
	rep.Host, rep.InstanceID, rep.At = a.cfg.Host, id, time.Now().UTC()
	if rep.Fault == nil && rep.CommandID == "" {
		rep.Success = true
	}
	if err := bus.CastDurable(ctx, a.cfg.Bus, compute.SubjectReports, rep); err != nil {
		a.log.Warn("report", "instance", id, "err", err)
	}
}

// SyncPowerStates compares every guest's power state with what the API
// was last told and reports the differences; a guest that died or shut
// itself down is reported SHUTOFF (vm_state stopped). Guests with a
// command in flight are left to the command's report.
func (a *Agent) SyncPowerStates(ctx context.Context) error {
	a.mu.Lock()
	ids := make([]string, 0, len(a.guests))
	for id := range a.guests {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	var errs []error
	for _, id := range ids {
		a.mu.Lock()
		before := a.guests[id]
		a.mu.Unlock()
		if before == nil || a.busy(id) {
			continue
		}
		info, err := a.cfg.Driver.GetState(ctx, id)
		power := int(info.State)
		if errors.Is(err, hypervisor.ErrNotFound) {
			power = compute.PowerNoState
		} else if err != nil {
			errs = append(errs, fmt.Errorf("state of %s: %w", id, err))
			continue
		}
		a.mu.Lock()
		g := a.guests[id]
		// A command that ran meanwhile replaced the record and reported
		// a state newer than the one read here.
		if g != before || g.power == power || a.busyLocked(id) {
			a.mu.Unlock()
			continue
		}
		vm := ""
		switch power {
		case compute.PowerShutdown, compute.PowerCrashed, compute.PowerNoState:
			if g.vm != "stopped" && g.vm != "suspended" {
				vm = "stopped"
			}
		}
		g.power = power
		if vm != "" {
			g.vm = vm
		}
		a.mu.Unlock()
		a.log.Info("power state changed", "instance", id, "power_state", hypervisor.PowerState(power).String(), "vm_state", vm)
		rep := compute.InstanceReport{VMState: vm, PowerState: power}
		rep.Host, rep.InstanceID, rep.At, rep.Success = a.cfg.Host, id, time.Now().UTC(), true
		if err := bus.CastDurable(ctx, a.cfg.Bus, compute.SubjectReports, rep); err != nil {
			errs = append(errs, fmt.Errorf("report %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func (a *Agent) busyLocked(id string) bool { return len(a.queues[id]) > 0 }

// busyGuests are the guests with a command running or waiting.
func (a *Agent) busyGuests() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]bool, len(a.queues))
	for id, q := range a.queues {
		if len(q) > 0 {
			out[id] = true
		}
	}
	return out
}

// guestVolumes is the heartbeat's account of the guests' volumes. A
// guest busy before or after the driver listed it may have changed
// meanwhile, so it is marked busy and the API waits for its report; a
// busy guest the driver did not list (being spawned or rebuilt) is
// listed busy too, so its absence is not read as "no volumes".
func guestVolumes(list []hypervisor.Info, busyBefore, busyAfter map[string]bool) []compute.GuestVolumes {
	out := make([]compute.GuestVolumes, 0, len(list))
	listed := make(map[string]bool, len(list))
	for _, g := range list {
		listed[g.UUID] = true
		out = append(out, compute.GuestVolumes{
			InstanceID: g.UUID,
			Volumes:    g.Volumes,
			Busy:       busyBefore[g.UUID] || busyAfter[g.UUID],
			Unknown:    g.State == hypervisor.NoState,
		})
	}
	for _, busy := range []map[string]bool{busyBefore, busyAfter} {
		for id := range busy {
			if !listed[id] {
				listed[id] = true
				out = append(out, compute.GuestVolumes{InstanceID: id, Busy: true})
			}
		}
	}
	return out
}
