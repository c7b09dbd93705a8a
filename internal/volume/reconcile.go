package volume

import (
	"context"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// reconcile settles what a heartbeat proves about volumes and snapshots
// stuck in a transient status on its host, when their command's report
// never came (the command could not be sent, or the API lost it): a
// deleting one whose file the host no longer has is gone, and a creating
// one whose file the host has is available (an agent never shows a
// half-made file). Only rows untouched for ReconcileAfter are judged, so
// a command still in flight is left to its report.
func (s *Service) reconcile(ctx context.Context, hb agentproto.Heartbeat) error {
	cutoff := store.FormatTime(now().Add(-s.cfg.ReconcileAfter))
	has := func(list []string) map[string]bool {
		m := make(map[string]bool, len(list))
		for _, id := range list {
			m[id] = true
		}
		return m
	}
	vols, snaps := has(hb.Volumes), has(hb.Snapshots)
	type stuck struct{ id, status string }
	scan := func(row store.Scanner) (stuck, error) {
		var st stuck
		err := row.Scan(&st.id, &st.status)
		return st, err
	}
	rows, err := store.QueryAll(ctx, s.db, scan, `SELECT id, status FROM volume_volumes WHERE host = ? AND status IN (?, ?) AND updated_at < ? AND image_id IS NULL`,
		hb.Host, statusCreating, statusDeleting, cutoff)
	if err != nil {
		return fmt.Errorf("stuck volumes on %s: %w", hb.Host, err)
	}
	for _, v := range rows {
		switch {
		case v.status == statusDeleting && !vols[v.id]:
			_, err = s.db.Exec(ctx, `DELETE FROM volume_volumes WHERE id = ? AND status = ?`, v.id, statusDeleting)
		case v.status == statusCreating && vols[v.id]:
			_, err = casStatus(ctx, s.db, v.id, statusAvailable, statusCreating)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("reconcile volume %s: %w", v.id, err)
		}
		s.log.Info("volume reconciled from its host's heartbeat", "volume", v.id, "was", v.status, "host", hb.Host)
	}
	srows, err := store.QueryAll(ctx, s.db, scan, `SELECT id, status FROM volume_snapshots WHERE host = ? AND status IN (?, ?) AND updated_at < ?`,
		hb.Host, statusCreating, statusDeleting, cutoff)
	if err != nil {
		return fmt.Errorf("stuck snapshots on %s: %w", hb.Host, err)
	}
	for _, sn := range srows {
		switch {
		case sn.status == statusDeleting && !snaps[sn.id]:
			_, err = s.db.Exec(ctx, `DELETE FROM volume_snapshots WHERE id = ? AND status = ?`, sn.id, statusDeleting)
		case sn.status == statusCreating && snaps[sn.id]:
			_, err = s.db.Exec(ctx, `UPDATE volume_snapshots SET status = ?, progress = '100%', updated_at = ? WHERE id = ? AND status = ?`, statusAvailable, stamp(), sn.id, statusCreating)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("reconcile snapshot %s: %w", sn.id, err)
		}
		s.log.Info("snapshot reconciled from its host's heartbeat", "snapshot", sn.id, "was", sn.status, "host", hb.Host)
	}
	return nil
}
