package compute

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// The stuck-attach watchdog (docs/volumes-plan.md §4.3). An attach or
// detach whose agent never reports (the host died, the command or its
// report was lost) would leave the volume attaching or detaching and the
// mapping pending forever. Every heartbeat of an agent carries what its
// guests really have (HostReport.Guests, stored with the host); once a
// mapping has waited VolumeAttachTimeout, the reconcile loop decides
// from the host's latest such sync, taken after the command went out:
//
//	attaching, the guest has it    → os-attach, the mapping attached
//	attaching, the guest lacks it  → terminate_connection, unreserve, the
//	                                 mapping dropped, the action failed
//	detaching, the guest lacks it  → terminate_connection, os-detach
//	detaching, the guest has it    → roll_detaching, the action failed
//
// The decision is a settle value committed with the command's end (its
// pending row goes, so a report arriving later is ignored), and the
// calls follow as for a report (volume_settle.go). Nothing is decided
// while the host is down, has not synced since the command, or says the
// guest is busy or did not answer: a volume is never set to error, since
// its bytes are fine wherever it ends. Because a late command could
// still run after the decision, the host is then sent the command that
// makes its guest match it (a detach after an attach given back, an
// attach after a detach rolled back); both are idempotent on the agent,
// and their reports, having no pending row, change nothing here.

// defaultVolumeAttachTimeout is how long an attach or detach may wait
// for its report before the watchdog settles it (a choice, as Nova
// waits minutes for a volume operation before failing it).
const defaultVolumeAttachTimeout = 5 * time.Minute

// guestVolumesJSON is the stored form of a heartbeat's guests.
func guestVolumesJSON(guests []GuestVolumes) string {
	if guests == nil {
		guests = []GuestVolumes{}
	}
	return jsonText(guests)
}

// hostSync is a host's latest volume sync as the API stored it.
type hostSync struct {
	up       bool
	syncedAt string // '' before the first sync
	guests   map[string]GuestVolumes
}

// hostSyncOf reads the latest volume sync of host; found is false for a
// host never heard of.
func (s *Service) hostSyncOf(ctx context.Context, host string) (hostSync, bool, error) {
	type row struct {
		lastSeen, guests, syncedAt string
		forced                     int
	}
	r, err := store.QueryOne(ctx, s.db, func(sc store.Scanner) (row, error) {
		var r row
		err := sc.Scan(&r.lastSeen, &r.forced, &r.guests, &r.syncedAt)
		return r, err
	}, `SELECT last_seen, forced_down, guest_volumes, volumes_synced_at FROM compute_hosts WHERE host = ?`, host)
	if isNoRows(err) {
		return hostSync{}, false, nil
	}
	if err != nil {
		return hostSync{}, false, fmt.Errorf("volume sync of host %s: %w", host, err)
	}
	hs := hostSync{
		up:       r.forced == 0 && time.Since(parseTime(r.lastSeen)) < s.cfg.ServiceDownTime,
		syncedAt: r.syncedAt,
		guests:   map[string]GuestVolumes{},
	}
	for _, g := range fromJSON[[]GuestVolumes](r.guests) {
		hs.guests[g.InstanceID] = g
	}
	return hs, true, nil
}

// stuckOutcome is what the watchdog decided for one mapping.
type stuckOutcome struct {
	settle string // the calls owed, as a report would have decided
	ok     bool   // the outcome of the command's instance action event
	msg    string // the event's fault when not ok
	// converge is the command that makes the guest match the decision,
	// "" when the guest already does.
	converge string
}

// decideStuck maps a mapping's state and the guest's volumes to an
// outcome.
func decideStuck(b blockDevice, host string, present bool) stuckOutcome {
	switch {
	case b.Status == bdmAttaching && present:
		return stuckOutcome{settle: settleAttach, ok: true}
	case b.Status == bdmAttaching:
		return stuckOutcome{settle: settleUnattach, converge: OpDetachVolume,
			msg: fmt.Sprintf("Volume %s was not attached: host %s never reported the attach, and the guest does not have the volume.", b.VolumeID, host)}
	case !present:
		return stuckOutcome{settle: settleDetach, ok: true}
	default:
		return stuckOutcome{settle: settleRoll, converge: OpAttachVolume,
			msg: fmt.Sprintf("Volume %s was not detached: host %s never reported the detach, and the guest still has the volume.", b.VolumeID, host)}
	}
}

// reconcileStuckVolumes is the watchdog's sweep, run by Reconcile.
func (s *Service) reconcileStuckVolumes(ctx context.Context) error {
	if s.cfg.Volumes == nil {
		return nil
	}
	cutoff := store.FormatTime(now().Add(-s.cfg.VolumeAttachTimeout))
	stuck, err := store.QueryAll(ctx, s.db, scanBlockDevice, `SELECT `+blockDeviceCols+` FROM compute_block_devices
		WHERE status IN (?, ?) AND settle = '' AND command_id <> '' AND updated_at < ?`, bdmAttaching, bdmDetaching, cutoff)
	if err != nil {
		return fmt.Errorf("stuck volume attachments: %w", err)
	}
	syncs := map[string]*hostSync{}
	type decided struct {
		b    blockDevice
		host string
		out  stuckOutcome
	}
	var done []decided
	for _, b := range stuck {
		i, err := loadInstance(ctx, s.db, b.InstanceID)
		if isNoRows(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("stuck volume attachments: %w", err)
		}
		// A server being deleted lets its volumes go by its delete (a
		// local delete when its host is down), not here.
		host := i.host()
		if i.Deleted || i.task() == taskDeleting || host == "" {
			continue
		}
		hs, ok := syncs[host]
		if !ok {
			got, found, err := s.hostSyncOf(ctx, host)
			if err != nil {
				return err
			}
			if found {
				hs = &got
			}
			syncs[host] = hs
		}
		// The sync must postdate the command, or it says nothing of it.
		if hs == nil || !hs.up || hs.syncedAt == "" || hs.syncedAt <= b.UpdatedAt {
			continue
		}
		g, listed := hs.guests[i.ID]
		if g.Busy || g.Unknown {
			continue // its report may still come
		}
		out := decideStuck(b, host, listed && slices.Contains(g.Volumes, b.VolumeID))
		applied, err := s.settleStuck(ctx, b, host, out)
		if err != nil {
			s.log.Warn("settle a stuck volume attachment", "instance", b.InstanceID, "volume", b.VolumeID, "err", err)
			continue
		}
		if applied {
			s.log.Warn("volume attachment stuck without a report; settled from the host's sync", "instance", b.InstanceID,
				"volume", b.VolumeID, "status", b.Status, "host", host, "settle", out.settle)
			done = append(done, decided{b, host, out})
		}
	}
	for _, d := range done {
		s.settleVolumes(ctx, d.b.InstanceID)
		if d.out.converge != "" {
			s.converge(ctx, d.b, d.host, d.out.converge)
		}
	}
	return nil
}

// settleStuck commits the watchdog's decision for one mapping if it still
// waits as it was read (a report or another replica may have come
// first): the settle value, and the end of the command with its
// instance action event.
func (s *Service) settleStuck(ctx context.Context, b blockDevice, host string, out stuckOutcome) (applied bool, err error) {
	op := OpAttachVolume
	if b.Status == bdmDetaching {
		op = OpDetachVolume
	}
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		applied = false
		res, err := tx.Exec(ctx, `UPDATE compute_block_devices SET settle = ?, updated_at = ? WHERE id = ? AND status = ? AND settle = '' AND updated_at = ?`,
			out.settle, store.FormatTime(now()), b.ID, b.Status, b.UpdatedAt)
		if err != nil {
			return fmt.Errorf("record settle of volume %s: %w", b.VolumeID, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		applied = true
		var actionID string
		err = tx.QueryRow(ctx, `SELECT COALESCE(action_id, '') FROM compute_pending WHERE command_id = ?`, b.CommandID).Scan(&actionID)
		if isNoRows(err) {
			return nil // ended already (a stuck task state's sweep)
		}
		if err != nil {
			return fmt.Errorf("pending command %s: %w", b.CommandID, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM compute_pending WHERE command_id = ?`, b.CommandID); err != nil {
			return fmt.Errorf("end command %s: %w", b.CommandID, err)
		}
		if actionID == "" {
			return nil
		}
		if err := finishEvent(ctx, tx, actionID, eventName(op), out.ok, out.msg, "", host); err != nil {
			return fmt.Errorf("finish %s event: %w", op, err)
		}
		return nil
	})
	return applied, err
}

// converge sends the host the command that makes the guest match what
// the watchdog decided, in case the lost command still runs there. It
// has no pending row: its report changes nothing. A failure is logged:
// the guest then keeps what the sync saw, which is what was decided.
func (s *Service) converge(ctx context.Context, b blockDevice, host, op string) {
	i, err := loadInstance(ctx, s.db, b.InstanceID)
	if err != nil || i.Deleted || i.host() != host {
		return
	}
	spec, err := s.specOf(ctx, s.db, i)
	if err == nil {
		vs := b.spec()
		err = s.send(ctx, host, Command{ID: newID(), Op: op, Instance: spec, Volume: &vs})
	}
	if err != nil {
		s.log.Warn("send the host the volume change the watchdog decided", "instance", b.InstanceID, "volume", b.VolumeID, "op", op, "err", err)
	}
}
