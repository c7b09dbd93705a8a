package volume

import (
	"context"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// Start connects the service to the volume agents: it consumes their
// reports durably (a report is never lost while the API restarts) and
// records their heartbeats. Close stops both.
func (s *Service) Start(ctx context.Context) error {
	b := s.cfg.Bus
	if b == nil {
		return errors.New("volume service: start: no bus")
	}
	reports, err := bus.Consume(ctx, b, agentproto.SubjectReports, s.HandleReport, bus.WithConcurrency(8))
	if err != nil {
		return fmt.Errorf("volume service: consume reports: %w", err)
	}
	beats, err := bus.Subscribe(b, agentproto.SubjectHeartbeat, "volume-api", func(ctx context.Context, hb agentproto.Heartbeat) error {
		return s.RecordHeartbeat(ctx, hb)
	}, bus.WithConcurrency(4))
	if err != nil {
		_ = reports.Unsubscribe()
		return fmt.Errorf("volume service: subscribe heartbeats: %w", err)
	}
	s.mu.Lock()
	s.subs = append(s.subs, reports, beats)
	s.mu.Unlock()
	return nil
}

// Close stops consuming reports and heartbeats.
func (s *Service) Close() error {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	var errs []error
	for _, sub := range subs {
		errs = append(errs, sub.Unsubscribe())
	}
	return errors.Join(errs...)
}

// send casts a command durably to a storage host: an agent that is
// restarting gets it when it comes back.
func (s *Service) send(ctx context.Context, host string, cmd agentproto.Command) error {
	if s.cfg.Bus == nil {
		return errors.New("no message bus")
	}
	if host == "" {
		return errors.New("no storage host")
	}
	if cmd.RequestID == "" {
		cmd.RequestID = api.RequestID(ctx)
	}
	if err := bus.CastDurable(ctx, s.cfg.Bus, agentproto.HostSubject(host), cmd); err != nil {
		return fmt.Errorf("send %s of volume %s to %s: %w", cmd.Op, cmd.VolumeID, host, err)
	}
	return nil
}

// HandleReport applies an agent's report. Every update is conditional on
// the transient status the command put the volume (or snapshot) in, so a
// redelivered or stale report changes nothing.
func (s *Service) HandleReport(ctx context.Context, rep agentproto.Report) error {
	if rep.Fault != "" {
		s.log.Warn("volume agent reports a failure", "op", rep.Op, "host", rep.Host, "volume", rep.VolumeID, "snapshot", rep.SnapshotID,
			"backup", rep.BackupID, "status", rep.Status, "fault", rep.Fault)
	}
	var err error
	switch rep.Op {
	case agentproto.OpCreate:
		err = s.created(ctx, rep)
	case agentproto.OpDelete:
		err = s.deleted(ctx, rep)
	case agentproto.OpExtend:
		if rep.Status == agentproto.StatusErrorExtending || rep.Status == "" {
			_, err = s.db.Exec(ctx, `UPDATE volume_volumes SET status = ?, fault = ?, updated_at = ? WHERE id = ? AND status = ?`,
				agentproto.StatusErrorExtending, rep.Fault, stamp(), rep.VolumeID, statusExtending)
			if err == nil {
				s.recordMessage(ctx, s.db, userMessage{"VOLUME", actionExtendVolume, detailDriverExtend}, rep.VolumeID, "")
			}
			break
		}
		// The size is what the agent says the volume has now; a report
		// without one keeps the recorded size.
		_, err = s.db.Exec(ctx, `UPDATE volume_volumes SET status = ?, size = CASE WHEN ? > 0 THEN ? ELSE size END, updated_at = ? WHERE id = ? AND status = ?`,
			rep.Status, rep.SizeGB, rep.SizeGB, stamp(), rep.VolumeID, statusExtending)
	case agentproto.OpUpload:
		_, err = s.db.Exec(ctx, `UPDATE volume_volumes SET status = ?, updated_at = ? WHERE id = ? AND status = ?`,
			reportedOr(rep.Status, statusAvailable), stamp(), rep.VolumeID, statusUploading)
	case agentproto.OpSnapshot:
		status, progress := statusAvailable, "100%"
		if rep.Status != agentproto.StatusAvailable {
			status, progress = statusError, "0%"
		}
		_, err = s.db.Exec(ctx, `UPDATE volume_snapshots SET status = ?, progress = ?, fault = ?, updated_at = ? WHERE id = ? AND status = ?`,
			status, progress, rep.Fault, stamp(), rep.SnapshotID, statusCreating)
	case agentproto.OpDeleteSnapshot:
		if rep.Status == agentproto.StatusDeleted {
			_, err = s.db.Exec(ctx, `DELETE FROM volume_snapshots WHERE id = ? AND status = ?`, rep.SnapshotID, statusDeleting)
		} else {
			_, err = s.db.Exec(ctx, `UPDATE volume_snapshots SET status = 'error_deleting', fault = ?, updated_at = ? WHERE id = ? AND status = ?`,
				rep.Fault, stamp(), rep.SnapshotID, statusDeleting)
		}
	case agentproto.OpBackup:
		err = s.backedUp(ctx, rep)
	case agentproto.OpRestore:
		err = s.restored(ctx, rep)
	case agentproto.OpDeleteBackup:
		err = s.backupDeleted(ctx, rep)
	default:
		s.log.Warn("volume report with an unknown operation", "op", rep.Op, "volume", rep.VolumeID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("apply %s report of volume %s: %w", rep.Op, rep.VolumeID, err)
	}
	return nil
}

func reportedOr(status, fallback string) string {
	if status == "" {
		return fallback
	}
	return status
}

// created finishes a create: available with the size the agent made and,
// for a volume made from an image, its image metadata and bootable flag.
func (s *Service) created(ctx context.Context, rep agentproto.Report) error {
	if rep.Status != agentproto.StatusAvailable {
		res, err := s.db.Exec(ctx, `UPDATE volume_volumes SET status = ?, fault = ?, updated_at = ? WHERE id = ? AND status = ?`,
			statusError, rep.Fault, stamp(), rep.VolumeID, statusCreating)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			s.recordMessage(ctx, s.db, userMessage{"VOLUME", actionCreateFromBack, detailDriverCreate}, rep.VolumeID, "")
		}
		return nil
	}
	if rep.ImageMetadata != nil {
		_, err := s.db.Exec(ctx, `UPDATE volume_volumes SET status = ?, image_metadata = ?, bootable = 1, updated_at = ? WHERE id = ? AND status = ?`,
			statusAvailable, jsonText(rep.ImageMetadata), stamp(), rep.VolumeID, statusCreating)
		return err
	}
	_, err := s.db.Exec(ctx, `UPDATE volume_volumes SET status = ?, updated_at = ? WHERE id = ? AND status = ?`,
		statusAvailable, stamp(), rep.VolumeID, statusCreating)
	return err
}

// deleted removes a volume whose file is gone, or marks error_deleting.
func (s *Service) deleted(ctx context.Context, rep agentproto.Report) error {
	if rep.Status != agentproto.StatusDeleted {
		_, err := s.db.Exec(ctx, `UPDATE volume_volumes SET status = ?, fault = ?, updated_at = ? WHERE id = ? AND status = ?`,
			agentproto.StatusErrorDeleting, rep.Fault, stamp(), rep.VolumeID, statusDeleting)
		return err
	}
	return s.writeTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM volume_volumes WHERE id = ? AND status = ?`, rep.VolumeID, statusDeleting)
		return err
	})
}
