package compute

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// The calls to the volume service that finish an attach, a detach, a
// build or a delete. A report (or a delete) commits what it decided as a
// mapping's settle value in the same transaction as everything else;
// the calls follow, as the compute service user, and clear it. A call
// that fails leaves the value for the reconcile loop, so that a crash or
// an unreachable volume service delays the volume service's view but
// never loses it.

// markSettle records what a server's mappings (those in one of states,
// or all when states is empty) owe the volume service.
func markSettle(ctx context.Context, tx *store.Tx, instanceID, volumeID, settle string, states ...string) error {
	q := `UPDATE compute_block_devices SET settle = ?, updated_at = ? WHERE instance_id = ?`
	args := []any{settle, store.FormatTime(now()), instanceID}
	if volumeID != "" {
		q += ` AND volume_id = ?`
		args = append(args, volumeID)
	}
	if len(states) > 0 {
		q += ` AND status IN (` + placeholders(len(states)) + `)`
		args = append(args, anys(states)...)
	}
	if settle != settleRelease {
		// A release decided earlier wins over anything later.
		q += ` AND settle <> '` + settleRelease + `'`
	}
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("record volume follow-up of server %s: %w", instanceID, err)
	}
	return nil
}

// volumeReport records, in the report's transaction, what an agent's
// report means for the server's volumes.
func (s *Service) volumeReport(ctx context.Context, tx *store.Tx, i instance, rep InstanceReport) error {
	switch rep.Op {
	case OpAttachVolume:
		if rep.VolumeID == "" {
			return nil
		}
		if rep.Success {
			return markSettle(ctx, tx, i.ID, rep.VolumeID, settleAttach, bdmAttaching)
		}
		return markSettle(ctx, tx, i.ID, rep.VolumeID, settleUnattach, bdmAttaching)
	case OpDetachVolume:
		if rep.VolumeID == "" {
			return nil
		}
		if rep.Success {
			return markSettle(ctx, tx, i.ID, rep.VolumeID, settleDetach, bdmDetaching)
		}
		return markSettle(ctx, tx, i.ID, rep.VolumeID, settleRoll, bdmDetaching)
	case OpBuild:
		if rep.Success {
			return markSettle(ctx, tx, i.ID, "", settleAttach, bdmAttaching)
		}
		// A build that failed for good (ERROR) lets its volumes go; one
		// rescheduled connects them to its next host.
		now, err := loadInstance(ctx, tx, i.ID)
		if err != nil {
			return err
		}
		if now.VMState == vmError {
			return markSettle(ctx, tx, i.ID, "", settleRelease)
		}
	}
	return nil
}

// settleVolumes makes the calls a server's mappings owe the volume
// service. Failures are logged and left for the reconcile loop.
func (s *Service) settleVolumes(ctx context.Context, instanceID string) {
	if s.cfg.Volumes == nil {
		return
	}
	list, err := store.QueryAll(ctx, s.db, scanBlockDevice, `SELECT `+blockDeviceCols+` FROM compute_block_devices WHERE instance_id = ? AND settle <> ''`, instanceID)
	if err != nil {
		s.log.Warn("volumes to settle", "instance", instanceID, "err", err)
		return
	}
	for _, b := range list {
		if !s.claimSettle(b.ID) {
			continue // another goroutine of this process is on it, and goes again
		}
		for {
			err := s.settleOne(ctx, b)
			if err != nil {
				s.log.Warn("settle volume with the volume service", "instance", instanceID, "volume", b.VolumeID, "step", b.Settle, "err", err)
			}
			if !s.releaseSettle(b.ID) {
				break
			}
			// Decided anew while this call was made (a delete during an
			// attach): settle what the row says now.
			b, err = store.QueryOne(ctx, s.db, scanBlockDevice, `SELECT `+blockDeviceCols+` FROM compute_block_devices WHERE id = ?`, b.ID)
			if err != nil || b.Settle == settleNone || !s.claimSettle(b.ID) {
				break
			}
		}
	}
}

// claimSettle takes a mapping for this goroutine; when another has it,
// that one is told to look again when it is done.
func (s *Service) claimSettle(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settling == nil {
		s.settling = map[string]bool{}
	}
	if _, busy := s.settling[id]; busy {
		s.settling[id] = true
		return false
	}
	s.settling[id] = false
	return true
}

// releaseSettle lets a mapping go and reports whether another goroutine
// asked for it meanwhile.
func (s *Service) releaseSettle(id string) (again bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	again = s.settling[id]
	delete(s.settling, id)
	return again
}

// ignoreGone treats a volume that no longer exists, or a call the
// volume's state makes moot (a refusal), as done: the calls here only
// ever give a volume back.
func ignoreGone(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if _, ok := volumeRefusal(err); ok {
		return nil
	}
	return err
}

// settleOne makes the calls one mapping owes and then records that they
// are made (the compare on settle keeps a newer decision).
func (s *Service) settleOne(ctx context.Context, b blockDevice) error {
	v := s.cfg.Volumes
	auth := VolumeAuth{Project: b.ProjectID}
	done := func(q string, args ...any) error {
		_, err := s.db.Exec(ctx, q, args...)
		return err
	}
	switch b.Settle {
	case settleAttach:
		err := v.Attach(ctx, auth, b.VolumeID, b.InstanceID, b.Device, b.Host)
		if _, refused := volumeRefusal(err); refused {
			// Already attached by an earlier try whose answer was lost?
			vol, gerr := v.Volume(ctx, auth, b.VolumeID)
			if gerr != nil || !attachedTo(vol, b.InstanceID) {
				return fmt.Errorf("attach volume %s: %w", b.VolumeID, err)
			}
			err = nil
		}
		if err != nil {
			return fmt.Errorf("attach volume %s: %w", b.VolumeID, err)
		}
		return done(`UPDATE compute_block_devices SET status = ?, settle = '', updated_at = ? WHERE id = ? AND settle = ?`,
			bdmAttached, store.FormatTime(now()), b.ID, settleAttach)
	case settleUnattach:
		if err := s.giveBack(ctx, b, false); err != nil {
			return err
		}
		return done(`DELETE FROM compute_block_devices WHERE id = ? AND settle = ?`, b.ID, settleUnattach)
	case settleDetach:
		if err := s.giveBack(ctx, b, false); err != nil {
			return err
		}
		return done(`DELETE FROM compute_block_devices WHERE id = ? AND settle = ?`, b.ID, settleDetach)
	case settleRoll:
		if err := ignoreGone(v.RollDetaching(ctx, auth, b.VolumeID)); err != nil {
			return fmt.Errorf("roll back detach of volume %s: %w", b.VolumeID, err)
		}
		return done(`UPDATE compute_block_devices SET status = ?, settle = '', updated_at = ? WHERE id = ? AND settle = ?`,
			bdmAttached, store.FormatTime(now()), b.ID, settleRoll)
	case settleRelease:
		if err := s.giveBack(ctx, b, b.DeleteOnTermination); err != nil {
			return err
		}
		return done(`DELETE FROM compute_block_devices WHERE id = ? AND settle = ?`, b.ID, settleRelease)
	}
	return fmt.Errorf("volume %s: unknown follow-up %q", b.VolumeID, b.Settle)
}

// attachedTo reports whether a volume's attachments name the server.
func attachedTo(vol *VolumeInfo, serverID string) bool {
	for _, a := range vol.Attachments {
		if a.ServerID == serverID {
			return true
		}
	}
	return false
}

// giveBack returns a volume to available from wherever the mapping left
// it (connected or not, reserved or attached), and deletes it when del is
// set. It reads the volume's state first, so that a repeated call after
// a crash does only what is left.
func (s *Service) giveBack(ctx context.Context, b blockDevice, del bool) error {
	v := s.cfg.Volumes
	auth := VolumeAuth{Project: b.ProjectID}
	vol, err := v.Volume(ctx, auth, b.VolumeID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if b.conn() != nil && b.Host != "" {
		if err := ignoreGone(v.TerminateConnection(ctx, auth, b.VolumeID, b.Host)); err != nil {
			return fmt.Errorf("terminate connection of volume %s on %s: %w", b.VolumeID, b.Host, err)
		}
	}
	switch vol.Status {
	case "attaching", "reserved":
		if err := ignoreGone(v.Unreserve(ctx, auth, b.VolumeID)); err != nil {
			return fmt.Errorf("unreserve volume %s: %w", b.VolumeID, err)
		}
	case "in-use", "detaching":
		attachment := ""
		for _, a := range vol.Attachments {
			if a.ServerID == b.InstanceID {
				attachment = a.AttachmentID
			}
		}
		if attachment == "" && len(vol.Attachments) > 0 {
			break // attached to another server since: not ours to detach
		}
		if err := ignoreGone(v.Detach(ctx, auth, b.VolumeID, attachment)); err != nil {
			return fmt.Errorf("detach volume %s: %w", b.VolumeID, err)
		}
	case "creating", "downloading":
		if del {
			// Not deletable yet; the reconcile loop tries again.
			return fmt.Errorf("volume %s is still %s", b.VolumeID, vol.Status)
		}
	}
	if !del {
		return nil
	}
	if err := v.DeleteVolume(ctx, auth, b.VolumeID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if ve, ok := volumeRefusal(err); ok {
			// Attached elsewhere meanwhile, for instance: the volume is
			// no longer this server's to delete.
			s.log.Warn("volume not deleted with its server", "volume", b.VolumeID, "server", b.InstanceID, "reason", ve.Message)
			return nil
		}
		return fmt.Errorf("delete volume %s: %w", b.VolumeID, err)
	}
	return nil
}

// reconcileVolumes finishes what reports and deletes left owed to the
// volume service (a crash, the volume service down), and picks up
// volume-backed builds whose preparation was interrupted.
func (s *Service) reconcileVolumes(ctx context.Context) error {
	if s.cfg.Volumes == nil {
		return nil
	}
	stale := store.FormatTime(now().Add(-30 * time.Second))
	ids, err := store.QueryStrings(ctx, s.db, `SELECT DISTINCT instance_id FROM compute_block_devices WHERE settle <> '' AND updated_at < ?`, stale)
	if err != nil {
		return fmt.Errorf("reconcile volumes: %w", err)
	}
	for _, id := range ids {
		s.settleVolumes(ctx, id)
	}
	rows, err := store.QueryAll(ctx, s.db, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE deleted = 0 AND task_state = ? AND host IS NOT NULL AND updated_at < ?`,
		taskBlockDeviceMapping, stale)
	if err != nil {
		return fmt.Errorf("reconcile volumes: %w", err)
	}
	for _, i := range rows {
		if !s.preparing(i.ID) {
			s.startPrepare(i.ID, i.host())
		}
	}
	return nil
}
