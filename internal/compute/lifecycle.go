package compute

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Start connects the service to the agents: it consumes their reports
// and heartbeats, answers their sync calls and runs the reconcile loop
// that owns every transitional state. Close stops all of it.
func (s *Service) Start(ctx context.Context) error {
	b := s.cfg.Bus
	if b == nil {
		return errors.New("compute service: start: no bus")
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	queue := make(chan queuedReport)
	writerDone := make(chan struct{})
	s.mu.Lock()
	s.reports, s.reportsDone = queue, writerDone
	s.mu.Unlock()
	go func() {
		defer close(writerDone)
		s.writeReports(loopCtx, queue)
	}()
	// Enough workers that a batch can fill while the last one commits.
	reports, err := bus.Consume(ctx, b, SubjectReports, s.handleReport, bus.WithConcurrency(reportBatch))
	if err != nil {
		cancel()
		<-writerDone
		return fmt.Errorf("compute service: consume reports: %w", err)
	}
	beats, err := bus.Subscribe(b, SubjectHeartbeat, "compute-api", func(ctx context.Context, rep HostReport) error {
		return s.RecordHeartbeat(ctx, rep)
	}, bus.WithConcurrency(4))
	if err != nil {
		_ = reports.Unsubscribe()
		cancel()
		<-writerDone
		return fmt.Errorf("compute service: subscribe heartbeats: %w", err)
	}
	sync, err := bus.Handle(b, SubjectSync, "compute-api", s.handleSync)
	if err != nil {
		_ = reports.Unsubscribe()
		_ = beats.Unsubscribe()
		cancel()
		<-writerDone
		return fmt.Errorf("compute service: handle sync: %w", err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.subs = append(s.subs, reports, beats, sync)
	s.stop, s.stopped = cancel, done
	s.mu.Unlock()
	if err := s.beatControl(ctx); err != nil {
		s.log.Warn("control services heartbeat", "err", err)
	}
	go func() {
		defer close(done)
		defer func() { <-writerDone }()
		t := time.NewTicker(s.cfg.ReconcileInterval)
		defer t.Stop()
		beat := time.NewTicker(controlBeat)
		defer beat.Stop()
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-t.C:
				if err := s.Reconcile(loopCtx); err != nil && loopCtx.Err() == nil {
					s.log.Warn("compute reconcile", "err", err)
				}
			case <-beat.C:
				if err := s.beatControl(loopCtx); err != nil && loopCtx.Err() == nil {
					s.log.Warn("control services heartbeat", "err", err)
				}
			}
		}
	}()
	return nil
}

// Close stops consuming reports and the reconcile loop.
func (s *Service) Close() error {
	s.mu.Lock()
	subs, stop, stopped := s.subs, s.stop, s.stopped
	s.subs, s.stop = nil, nil
	bgCancel := s.bgCancel
	s.bgCtx = nil
	s.mu.Unlock()
	if bgCancel != nil {
		bgCancel()
	}
	s.bg.Wait()
	var errs []error
	for _, sub := range subs {
		errs = append(errs, sub.Unsubscribe())
	}
	if stop != nil {
		stop()
		<-stopped
	}
	return errors.Join(errs...)
}

// send casts a command to the instance's host. Commands are durable: an
// agent that is restarting gets them when it comes back.
func (s *Service) send(ctx context.Context, host string, cmd Command) error {
	if s.cfg.Bus == nil {
		return errors.New("no message bus")
	}
	if cmd.RequestID == "" {
		cmd.RequestID = api.RequestID(ctx)
	}
	return bus.CastDurable(ctx, s.cfg.Bus, HostSubject(host), cmd)
}

// scheduleBuild places one building server and sends its build command.
// A server that fits nowhere goes to ERROR with Nova's fault.
func (s *Service) scheduleBuild(ctx context.Context, id string) error {
	var cmd Command
	var target string
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		cmd, target, err = s.place(ctx, tx, id)
		return err
	})
	if err != nil || target == "" {
		return err
	}
	return s.sendBuild(ctx, id, target, cmd)
}

// place claims a host for a building (or unshelving) server in tx and
// prepares its build command; target is "" when there is nothing to send
// (the server went to ERROR, or was deleted or placed meanwhile).
func (s *Service) place(ctx context.Context, tx *store.Tx, id string) (cmd Command, target string, err error) {
	i, err := loadInstance(ctx, tx, id)
	if err != nil {
		return cmd, "", fmt.Errorf("schedule %s: %w", id, err)
	}
	unshelve := i.VMState == vmShelvedOffloaded && i.task() == taskUnshelving
	if i.Deleted || !(unshelve || (i.VMState == vmBuilding && i.task() == taskScheduling)) {
		return cmd, "", nil // deleted meanwhile, or someone else scheduled it
	}
	tried := fromJSON[[]string](i.TriedHosts)
	req := request{InstanceID: i.ID, VCPUs: i.VCPUs, MemoryMB: i.MemoryMB, DiskGB: i.RootGB + i.flavorSpec().EphemeralG,
		ImageProps: fromJSON[map[string]string](i.ImageProps), Exclude: map[string]bool{}}
	for _, h := range tried {
		req.Exclude[h] = true
	}
	if i.RequestedAZ != nil {
		req.Zone = *i.RequestedAZ
	}
	hints := fromJSON[map[string]string](i.Hints)
	req.ForceHost = hints["force_host"]
	if i.ServerGroupID != nil {
		req.GroupID = *i.ServerGroupID
	}
	host, err := s.claim(ctx, tx, "instance", req)
	if errors.Is(err, errNoValidHost) && unshelve {
		// The server stays shelved, with the reason, as Nova leaves it.
		ts := store.FormatTime(now())
		f := Fault{Code: 500, Message: "No valid host was found. There are not enough hosts available."}
		if _, err := tx.Exec(ctx, `UPDATE compute_instances SET task_state = NULL, fault = ?, updated_at = ? WHERE id = ?`,
			jsonText(faultRecord{Fault: f, Created: ts}), ts, i.ID); err != nil {
			return cmd, "", err
		}
		return cmd, "", s.finishAction(ctx, tx, i.ID, "unshelve", eventName(OpBuild), false, f.Message, "")
	}
	if errors.Is(err, errNoValidHost) {
		msg := "No valid host was found. There are not enough hosts available."
		if len(tried) > 0 {
			msg = fmt.Sprintf("Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance %s.", i.ID)
		}
		return cmd, "", s.failBuild(ctx, tx, i, &Fault{Code: 500, Message: msg})
	}
	if err != nil {
		return cmd, "", err
	}
	zone, err := zoneOf(ctx, tx, host)
	if err != nil {
		return cmd, "", err
	}
	// A server with volumes waits for them to be made and connected to
	// this host before its build goes out (volume_build.go).
	withVolumes, err := hasBlockDevices(ctx, tx, i.ID)
	if err != nil {
		return cmd, "", err
	}
	task := taskSpawning
	if withVolumes {
		task = taskBlockDeviceMapping
	}
	if _, err := tx.Exec(ctx, `UPDATE compute_instances SET host = ?, node = ?, availability_zone = ?, task_state = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?`,
		host, host, zone, task, store.FormatTime(now()), i.ID); err != nil {
		return cmd, "", err
	}
	i.Attempts++
	i.AZ = &zone
	cmd, err = s.buildCommand(ctx, tx, i, newID())
	if err != nil {
		return cmd, "", err
	}
	action := "create"
	if unshelve {
		action = "unshelve"
	}
	if err := s.addPending(ctx, tx, i.ID, cmd.ID, OpBuild, action, host); err != nil {
		return cmd, "", err
	}
	cmd.prepareVolumes = withVolumes
	return cmd, host, nil
}

// buildCommand is the build command of a placed server; the reconcile
// loop rebuilds it with the same id to send it again.
func (s *Service) buildCommand(ctx context.Context, q store.Querier, i instance, id string) (Command, error) {
	spec, err := s.specOf(ctx, q, i)
	if err != nil {
		return Command{}, err
	}
	cmd := Command{ID: id, Op: OpBuild, Instance: spec, Attempt: i.Attempts}
	if i.VMState == vmShelvedOffloaded {
		// Unshelving builds from the image shelving saved.
		cmd.ImageID = fromJSON[map[string]string](i.Hints)["shelved_image_id"]
	}
	return cmd, nil
}

// sendBuild sends a placed server's build; when the bus refuses it the
// server goes to ERROR and its claim is released.
func (s *Service) sendBuild(ctx context.Context, id, target string, cmd Command) error {
	if cmd.prepareVolumes {
		s.startPrepare(id, target) // which sends the build when the volumes are ready
		return nil
	}
	err := s.send(ctx, target, cmd)
	if err == nil {
		return nil
	}
	s.log.Error("send build", "instance", id, "host", target, "err", err)
	return s.writeTx(ctx, func(tx *store.Tx) error {
		i, err2 := loadInstance(ctx, tx, id)
		if err2 != nil {
			return err2
		}
		if _, err2 := tx.Exec(ctx, `DELETE FROM compute_pending WHERE command_id = ?`, cmd.ID); err2 != nil {
			return err2
		}
		return s.failBuild(ctx, tx, i, &Fault{Code: 500, Message: "Build of instance " + id + " could not be sent to its host.", Details: err.Error()})
	})
}

func zoneOf(ctx context.Context, q store.Querier, host string) (string, error) {
	var z string
	if err := q.QueryRow(ctx, `SELECT zone FROM compute_hosts WHERE host = ?`, host).Scan(&z); err != nil {
		return "", fmt.Errorf("zone of %s: %w", host, err)
	}
	return z, nil
}

// failBuild puts a building server in ERROR with a fault and releases its
// claim, and records the failure on its create action.
func (s *Service) failBuild(ctx context.Context, tx *store.Tx, i instance, f *Fault) error {
	if err := release(ctx, tx, i.ID, ""); err != nil {
		return err
	}
	// Its volumes are given back, and the ones made for it deleted, as
	// Nova's cleanup of a failed build.
	if err := markSettle(ctx, tx, i.ID, "", settleRelease); err != nil {
		return err
	}
	ts := store.FormatTime(now())
	if _, err := tx.Exec(ctx, `UPDATE compute_instances SET vm_state = ?, task_state = NULL, power_state = 0, host = NULL, node = NULL, fault = ?, updated_at = ? WHERE id = ?`,
		vmError, jsonText(faultRecord{Fault: *f, Created: ts}), ts, i.ID); err != nil {
		return fmt.Errorf("fail build of %s: %w", i.ID, err)
	}
	return s.finishAction(ctx, tx, i.ID, "create", "compute__do_build_and_run_instance", false, f.Message, "")
}

// faultRecord is the stored fault with its time.
type faultRecord struct {
	Fault
	Created string `json:"created"`
}

// addPending remembers a command until its report arrives, and opens its
// event on the instance action.
func (s *Service) addPending(ctx context.Context, tx *store.Tx, instanceID, cmdID, op, action, host string) error {
	actionID, err := latestAction(ctx, tx, instanceID, action)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO compute_pending (command_id, instance_id, op, action_id, created_at) VALUES (?, ?, ?, ?, ?)`,
		cmdID, instanceID, op, actionID, store.FormatTime(now())); err != nil {
		return fmt.Errorf("record command %s: %w", cmdID, err)
	}
	if actionID != "" {
		if _, err := tx.Exec(ctx, `INSERT INTO compute_instance_action_events (id, action_id, event, start_time, host) VALUES (?, ?, ?, ?, ?)`,
			newID(), actionID, eventName(op), store.FormatTime(now()), host); err != nil {
			return fmt.Errorf("record action event: %w", err)
		}
	}
	return nil
}

// eventName is the instance action event Nova records for an operation.
func eventName(op string) string {
	switch op {
	case OpBuild:
		return "compute__do_build_and_run_instance"
	case OpDelete:
		return "compute_terminate_instance"
	case OpStop:
		return "compute_stop_instance"
	case OpStart:
		return "compute_start_instance"
	case OpSnapshot:
		return "compute_snapshot_instance"
	case OpResize:
		return "compute_finish_resize"
	}
	return "compute_" + op + "_instance"
}

// command records and sends an action's command to a server's host after
// the transaction that changed the server's task state has committed.
type command struct {
	host string
	cmd  Command
}

// dispatch sends prepared commands; when sending fails the task state is
// rolled back so the server is not stuck, and the error returned.
func (s *Service) dispatch(ctx context.Context, cmds ...command) error {
	for _, c := range cmds {
		if err := s.send(ctx, c.host, c.cmd); err != nil {
			s.log.Error("send command", "op", c.cmd.Op, "instance", c.cmd.Instance.ID, "err", err)
			_ = s.writeTx(ctx, func(tx *store.Tx) error {
				if _, err := tx.Exec(ctx, `DELETE FROM compute_pending WHERE command_id = ?`, c.cmd.ID); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `UPDATE compute_instances SET task_state = NULL, updated_at = ? WHERE id = ?`, store.FormatTime(now()), c.cmd.Instance.ID)
				return err
			})
			return api.Errorf(http.StatusServiceUnavailable, "The compute host of instance %s could not be reached.", c.cmd.Instance.ID)
		}
	}
	return nil
}

// handleReport applies an agent's report. Reports are delivered at least
// once; one that answers a command already settled is ignored. While the
// service runs, the report joins the report writer's next transaction
// (writeReports) and this waits until it is committed, so the bus
// acknowledges only what is applied.
func (s *Service) handleReport(ctx context.Context, rep InstanceReport) error {
	s.mu.Lock()
	queue, stopped := s.reports, s.reportsDone
	s.mu.Unlock()
	var res reportResult
	if queue == nil {
		res.reschedule, res.err = s.applyOneReport(ctx, rep)
	} else {
		// A report not applied (the context ended, the service stopped)
		// is not acknowledged: the bus delivers it again, and a report
		// applied twice is ignored the second time.
		q := queuedReport{rep: rep, done: make(chan reportResult, 1)}
		select {
		case queue <- q:
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			return errReportsStopped
		}
		select {
		case res = <-q.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			return errReportsStopped
		}
	}
	if res.err != nil {
		return fmt.Errorf("apply report on %s: %w", rep.InstanceID, res.err)
	}
	switch {
	case rep.Op == OpAttachVolume, rep.Op == OpDetachVolume, rep.Op == OpBuild, rep.Op == OpDelete, rep.Deleted:
		s.settleVolumes(ctx, rep.InstanceID)
	}
	if res.reschedule {
		return s.scheduleBuild(ctx, rep.InstanceID)
	}
	return nil
}

// errReportsStopped answers a report that arrived as the service stopped.
var errReportsStopped = errors.New("compute service stopping: report not applied")

// reportBatch is the most reports one transaction applies.
const reportBatch = 64

// queuedReport is a report waiting for the report writer.
type queuedReport struct {
	rep  InstanceReport
	done chan reportResult
}

type reportResult struct {
	reschedule bool
	err        error
}

// writeReports applies queued reports, as many as are waiting (up to
// reportBatch) in one transaction: with SQLite's one writer, a burst of
// builds finishing would otherwise queue one transaction per report
// behind the API's own writes, and servers would wait for ACTIVE long
// after their guests run. A batch that fails is applied report by
// report, so one bad report holds back no other.
func (s *Service) writeReports(ctx context.Context, queue <-chan queuedReport) {
	for {
		var batch []queuedReport
		select {
		case q := <-queue:
			batch = append(batch, q)
		case <-ctx.Done():
			return
		}
	drain:
		for len(batch) < reportBatch {
			select {
			case q := <-queue:
				batch = append(batch, q)
			default:
				break drain
			}
		}
		reps := make([]InstanceReport, len(batch))
		for i, q := range batch {
			reps[i] = q.rep
		}
		if len(batch) > 1 {
			var resched []bool
			err := s.writeTx(ctx, func(tx *store.Tx) error {
				resched = resched[:0]
				for _, rep := range reps {
					r, err := s.applyReportTx(ctx, tx, rep)
					if err != nil {
						return err
					}
					resched = append(resched, r)
				}
				return nil
			})
			if err == nil {
				for i, q := range batch {
					q.done <- reportResult{reschedule: resched[i]}
				}
				continue
			}
		}
		for _, q := range batch {
			r, err := s.applyOneReport(ctx, q.rep)
			q.done <- reportResult{reschedule: r, err: err}
		}
	}
}

// applyOneReport applies one report in its own transaction.
func (s *Service) applyOneReport(ctx context.Context, rep InstanceReport) (bool, error) {
	reschedule := false
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		reschedule, err = s.applyReportTx(ctx, tx, rep)
		return err
	})
	return reschedule, err
}

// applyReportTx applies one report in tx: the pending command it answers
// goes, the server changes as the report says and the instance action's
// event ends. It returns true when the build should be tried on another
// host.
func (s *Service) applyReportTx(ctx context.Context, tx *store.Tx, rep InstanceReport) (bool, error) {
	i, err := loadInstance(ctx, tx, rep.InstanceID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var actionID string
	if rep.CommandID != "" {
		err := tx.QueryRow(ctx, `SELECT COALESCE(action_id, '') FROM compute_pending WHERE command_id = ?`, rep.CommandID).Scan(&actionID)
		if isNoRows(err) {
			return false, nil // a duplicate, or a command the reconcile loop gave up on
		}
		if err != nil {
			return false, err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM compute_pending WHERE command_id = ?`, rep.CommandID); err != nil {
			return false, err
		}
	}
	reschedule, err := s.applyReport(ctx, tx, i, rep)
	if err != nil {
		return false, err
	}
	if err := s.volumeReport(ctx, tx, i, rep); err != nil {
		return false, err
	}
	if actionID != "" {
		msg, tb := "", ""
		if rep.Fault != nil {
			msg, tb = rep.Fault.Message, rep.Fault.Details
		}
		if err := finishEvent(ctx, tx, actionID, eventName(rep.Op), rep.Success, msg, tb, rep.Host); err != nil {
			return false, err
		}
	}
	return reschedule, nil
}

// applyReport changes the server as the report says; it returns true when
// the build should be tried on another host.
func (s *Service) applyReport(ctx context.Context, tx *store.Tx, i instance, rep InstanceReport) (bool, error) {
	ts := store.FormatTime(now())
	set := func(q string, args ...any) error {
		_, err := tx.Exec(ctx, `UPDATE compute_instances SET `+q+`, updated_at = ? WHERE id = ?`, append(args, ts, i.ID)...)
		return err
	}
	if rep.Op == OpDelete || rep.Deleted {
		if !rep.Success && !rep.Deleted {
			return false, set(`task_state = NULL, fault = ?`, jsonText(faultRecord{Fault: faultOr(rep.Fault, "Delete failed"), Created: ts}))
		}
		return false, s.markDeleted(ctx, tx, i)
	}
	if i.Deleted {
		return false, nil
	}
	deleting := i.task() == taskDeleting
	if rep.Addresses != nil {
		if err := set(`addresses = ?`, jsonText(rep.Addresses)); err != nil {
			return false, err
		}
	}
	switch rep.Op {
	case OpBuild:
		if deleting {
			return false, set(`power_state = ?`, rep.PowerState)
		}
		if rep.Success {
			return false, set(`vm_state = ?, task_state = NULL, power_state = ?, launched_at = ?, progress = 100`, vmActive, rep.PowerState, ts)
		}
		if i.VMState == vmShelvedOffloaded {
			// A failed unshelve leaves the server shelved, with its fault.
			if err := release(ctx, tx, i.ID, ""); err != nil {
				return false, err
			}
			return false, set(`task_state = NULL, host = NULL, node = NULL, fault = ?`, jsonText(faultRecord{Fault: faultOr(rep.Fault, "Unshelve failed"), Created: ts}))
		}
		tried := append(fromJSON[[]string](i.TriedHosts), rep.Host)
		if err := release(ctx, tx, i.ID, ""); err != nil {
			return false, err
		}
		if rep.Reschedule && i.Attempts < s.cfg.MaxAttempts {
			return true, set(`task_state = ?, host = NULL, node = NULL, tried_hosts = ?`, taskScheduling, jsonText(tried))
		}
		f := faultOr(rep.Fault, "Build of instance failed")
		if rep.Reschedule {
			f = Fault{Code: 500, Message: fmt.Sprintf("Exceeded maximum number of retries. Exceeded max scheduling attempts %d for instance %s. Last exception: %s", s.cfg.MaxAttempts, i.ID, f.Message), Details: f.Details}
		}
		return false, set(`vm_state = ?, task_state = NULL, power_state = 0, host = NULL, node = NULL, tried_hosts = ?, fault = ?`,
			vmError, jsonText(tried), jsonText(faultRecord{Fault: f, Created: ts}))
	case "":
		// Unsolicited: the agent noticed a state change (a guest that
		// died is SHUTOFF). Only applied when nothing is in flight.
		if i.TaskState == nil && rep.VMState != "" && i.VMState != vmBuilding {
			return false, set(`vm_state = ?, power_state = ?`, rep.VMState, rep.PowerState)
		}
		return false, set(`power_state = ?`, rep.PowerState)
	}
	if deleting {
		return false, nil
	}
	if !rep.Success {
		f := faultOr(rep.Fault, rep.Op+" failed")
		switch rep.Op {
		case OpResize:
			if err := setMigration(ctx, tx, i.ID, migrationError); err != nil {
				return false, err
			}
			if err := release(ctx, tx, i.ID, "resize"); err != nil {
				return false, err
			}
			if err := set(`new_flavor = NULL, old_flavor = NULL`); err != nil {
				return false, err
			}
		}
		vm := i.VMState
		if rep.VMState != "" {
			vm = rep.VMState
		}
		return false, set(`vm_state = ?, task_state = NULL, power_state = ?, fault = ?`, vm, rep.PowerState, jsonText(faultRecord{Fault: f, Created: ts}))
	}
	vm := rep.VMState
	switch rep.Op {
	case OpShelve:
		// Shelved servers are offloaded at once (Nova's default
		// shelved_offload_time of 0): the guest is gone from its host and
		// so is its claim.
		if err := release(ctx, tx, i.ID, ""); err != nil {
			return false, err
		}
		return false, set(`vm_state = ?, task_state = NULL, power_state = 0, host = NULL, node = NULL`, vmShelvedOffloaded)
	case OpResize:
		vm = vmResized
		if err := setMigration(ctx, tx, i.ID, migrationFinished); err != nil {
			return false, err
		}
	case OpConfirmResize:
		if err := setMigration(ctx, tx, i.ID, migrationConfirmed); err != nil {
			return false, err
		}
		if err := release(ctx, tx, i.ID, "instance"); err != nil {
			return false, err
		}
		if _, err := tx.Exec(ctx, `UPDATE compute_allocations SET kind = 'instance' WHERE instance_id = ? AND kind = 'resize'`, i.ID); err != nil {
			return false, err
		}
		if err := set(`old_flavor = NULL, new_flavor = NULL, old_host = NULL`); err != nil {
			return false, err
		}
	case OpRevertResize:
		if err := setMigration(ctx, tx, i.ID, migrationReverted); err != nil {
			return false, err
		}
		if err := release(ctx, tx, i.ID, "resize"); err != nil {
			return false, err
		}
		if i.OldFlavor != nil {
			old := fromJSON[FlavorSpec](*i.OldFlavor)
			if err := set(`flavor = ?, flavor_id = ?, vcpus = ?, memory_mb = ?, root_gb = ?, old_flavor = NULL, new_flavor = NULL`,
				*i.OldFlavor, old.ID, old.VCPUs, old.MemoryMB, old.RootGB); err != nil {
				return false, err
			}
		}
	}
	if vm == "" {
		vm = i.VMState
	}
	return false, set(`vm_state = ?, task_state = NULL, power_state = ?`, vm, rep.PowerState)
}

func faultOr(f *Fault, msg string) Fault {
	if f != nil {
		if f.Code == 0 {
			f.Code = 500
		}
		return *f
	}
	return Fault{Code: 500, Message: msg}
}

// markDeleted finishes a delete: the row stays, soft-deleted, so admins
// can list deleted servers and usage reports can count them, and its
// claim and group membership go.
func (s *Service) markDeleted(ctx context.Context, tx *store.Tx, i instance) error {
	if i.Deleted {
		return nil
	}
	if err := release(ctx, tx, i.ID, ""); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM compute_server_group_members WHERE instance_id = ?`, i.ID); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM compute_pending WHERE instance_id = ?`, i.ID); err != nil {
		return err
	}
	if err := markSettle(ctx, tx, i.ID, "", settleRelease); err != nil {
		return err
	}
	ts := store.FormatTime(now())
	if _, err := tx.Exec(ctx, `UPDATE compute_instances SET deleted = 1, vm_state = ?, task_state = NULL, power_state = 0, deleted_at = ?, terminated_at = ?, updated_at = ? WHERE id = ?`,
		vmDeleted, ts, ts, ts, i.ID); err != nil {
		return fmt.Errorf("mark %s deleted: %w", i.ID, err)
	}
	return s.finishAction(ctx, tx, i.ID, "delete", eventName(OpDelete), true, "", "")
}

// handleSync answers an agent's start-up question: which guests should
// it have.
func (s *Service) handleSync(ctx context.Context, req SyncRequest) (SyncReply, error) {
	is, err := store.QueryAll(ctx, s.db, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE host = ? AND deleted = 0`, req.Host)
	if err != nil {
		return SyncReply{}, fmt.Errorf("sync %s: %w", req.Host, err)
	}
	out := SyncReply{Instances: []SyncInstance{}}
	for _, i := range is {
		spec, err := s.specOf(ctx, s.db, i)
		if err != nil {
			return SyncReply{}, err
		}
		out.Instances = append(out.Instances, SyncInstance{Instance: spec, VMState: i.VMState, TaskState: i.task()})
	}
	return out, nil
}

// Reconcile owns every transitional state: servers whose scheduling was
// interrupted are scheduled again, and a server that has waited on its
// agent longer than BuildTimeout is settled (a build goes to ERROR, a
// delete completes, any other task is cleared), so nothing stays in
// BUILD or deleting forever. The loop in Start runs it periodically.
func (s *Service) Reconcile(ctx context.Context) error {
	cutoff := store.FormatTime(now().Add(-s.cfg.BuildTimeout))
	stale := store.FormatTime(now().Add(-30 * time.Second))
	orphans, err := store.QueryStrings(ctx, s.db, `SELECT id FROM compute_instances WHERE deleted = 0 AND vm_state = ? AND task_state = ? AND host IS NULL AND updated_at < ?`,
		vmBuilding, taskScheduling, stale)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	for _, id := range orphans {
		if err := s.scheduleBuild(ctx, id); err != nil {
			s.log.Warn("reconcile: schedule", "instance", id, "err", err)
		}
	}
	// Builds committed but perhaps never sent (the API died between its
	// commit and the cast) go again under the same command id, which
	// agents ignore when they already have it.
	resendBefore := store.FormatTime(now().Add(-min(time.Minute, s.cfg.BuildTimeout/2)))
	rows, err := s.db.Query(ctx, `SELECT command_id, instance_id FROM compute_pending WHERE op = ? AND created_at < ?`, OpBuild, resendBefore)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	type pend struct{ cmd, inst string }
	var resend []pend
	for rows.Next() {
		var p pend
		if err := rows.Scan(&p.cmd, &p.inst); err != nil {
			rows.Close()
			return fmt.Errorf("reconcile: %w", err)
		}
		resend = append(resend, p)
	}
	rows.Close()
	for _, p := range resend {
		i, err := loadInstance(ctx, s.db, p.inst)
		if err != nil || i.Deleted || i.host() == "" || i.task() != taskSpawning {
			continue
		}
		cmd, err := s.buildCommand(ctx, s.db, i, p.cmd)
		if err == nil {
			err = s.send(ctx, i.host(), cmd)
		}
		if err != nil {
			s.log.Warn("reconcile: resend build", "instance", i.ID, "err", err)
		}
	}
	stuck, err := store.QueryAll(ctx, s.db, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE deleted = 0 AND task_state IS NOT NULL AND updated_at < ?`, cutoff)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	for _, i := range stuck {
		err := s.writeTx(ctx, func(tx *store.Tx) error {
			cur, err := loadInstance(ctx, tx, i.ID)
			if err != nil || cur.Deleted || cur.TaskState == nil || cur.UpdatedAt >= cutoff {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM compute_pending WHERE instance_id = ?`, cur.ID); err != nil {
				return err
			}
			switch {
			case cur.task() == taskDeleting:
				return s.markDeleted(ctx, tx, cur)
			case cur.VMState == vmBuilding:
				return s.failBuild(ctx, tx, cur, &Fault{Code: 500, Message: "Build of instance " + cur.ID + " timed out waiting for its compute host."})
			default:
				_, err := tx.Exec(ctx, `UPDATE compute_instances SET task_state = NULL, updated_at = ? WHERE id = ?`, store.FormatTime(now()), cur.ID)
				return err
			}
		})
		if err != nil {
			s.log.Warn("reconcile: settle", "instance", i.ID, "err", err)
		}
	}
	if err := s.reconcileVolumes(ctx); err != nil {
		s.log.Warn("reconcile volumes", "err", err)
	}
	if err := s.reconcileStuckVolumes(ctx); err != nil {
		s.log.Warn("reconcile stuck volume attachments", "err", err)
	}
	_, err = s.db.Exec(ctx, `DELETE FROM compute_console_tokens WHERE expires_at < ?`, store.FormatTime(now()))
	return err
}
