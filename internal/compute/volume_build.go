package compute

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Building a server with volumes: once the scheduler has placed it, the
// server waits in task_state block_device_mapping while the volumes the
// API asked for are made, each volume is reserved and connected to the
// chosen host, and only then does the build command (which carries the
// connections) go to the agent. This runs in the background of the API
// process that placed the server; the reconcile loop takes over a
// preparation that process did not finish.

// hasBlockDevices reports whether a server has volume mappings.
func hasBlockDevices(ctx context.Context, q store.Querier, instanceID string) (bool, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM compute_block_devices WHERE instance_id = ?`, instanceID).Scan(&n); err != nil {
		return false, fmt.Errorf("volumes of server %s: %w", instanceID, err)
	}
	return n > 0, nil
}

func (s *Service) preparing(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prepares[id]
}

// startPrepare prepares the volumes of a server placed on host in the
// background, then sends its build.
func (s *Service) startPrepare(id, host string) {
	s.mu.Lock()
	if s.prepares == nil {
		s.prepares = map[string]bool{}
	}
	if s.prepares[id] || s.bgCtx == nil {
		s.mu.Unlock()
		return
	}
	s.prepares[id] = true
	ctx := s.bgCtx
	s.bg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.bg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.prepares, id)
			s.mu.Unlock()
		}()
		s.prepareBuild(ctx, id, host)
	}()
}

// prepareBuild readies the server's volumes on host and sends the build,
// or fails the build with the reason.
func (s *Service) prepareBuild(ctx context.Context, id, host string) {
	err := s.connectVolumes(ctx, id, host)
	if ctx.Err() != nil {
		return // the service stops; the reconcile loop of the next one goes on
	}
	var cmd Command
	send := false
	werr := s.writeTx(ctx, func(tx *store.Tx) error {
		send = false
		i, err2 := loadInstance(ctx, tx, id)
		if err2 != nil {
			return err2
		}
		if i.Deleted || i.task() != taskBlockDeviceMapping || i.host() != host {
			return nil // deleted, or moved on meanwhile
		}
		if err != nil {
			if _, err2 := tx.Exec(ctx, `DELETE FROM compute_pending WHERE instance_id = ? AND op = ?`, id, OpBuild); err2 != nil {
				return err2
			}
			return s.failBuild(ctx, tx, i, &Fault{Code: 500, Message: fmt.Sprintf("Build of instance %s aborted: %v", id, err)})
		}
		cmdID, err2 := pendingBuild(ctx, tx, id)
		if err2 != nil {
			return err2
		}
		if _, err2 := tx.Exec(ctx, `UPDATE compute_instances SET task_state = ?, updated_at = ? WHERE id = ?`, taskSpawning, store.FormatTime(now()), id); err2 != nil {
			return err2
		}
		i.TaskState = ptr(taskSpawning)
		if cmd, err2 = s.buildCommand(ctx, tx, i, cmdID); err2 != nil {
			return err2
		}
		send = true
		return nil
	})
	if werr != nil {
		s.log.Error("prepare volumes of a build", "instance", id, "err", werr)
		return
	}
	if err != nil {
		s.log.Warn("build failed preparing its volumes", "instance", id, "err", err)
		s.settleVolumes(ctx, id)
		return
	}
	if send {
		if err := s.sendBuild(ctx, id, host, cmd); err != nil {
			s.log.Error("send build", "instance", id, "err", err)
		}
	}
}

// pendingBuild is the id of the server's pending build command (placing
// recorded it), or a new one when it is gone.
func pendingBuild(ctx context.Context, tx *store.Tx, id string) (string, error) {
	ids, err := store.QueryStrings(ctx, tx, `SELECT command_id FROM compute_pending WHERE instance_id = ? AND op = ?`, id, OpBuild)
	if err != nil {
		return "", err
	}
	if len(ids) > 0 {
		return ids[0], nil
	}
	return newID(), nil
}

// volumePoll is how often a volume being created is looked at.
const volumePoll = 250 * time.Millisecond

// connectVolumes waits for the volumes being made, reserves them, and
// connects every mapping to host (a mapping connected to another host,
// before a reschedule or an unshelve, is disconnected there first).
func (s *Service) connectVolumes(ctx context.Context, id, host string) error {
	if s.cfg.Volumes == nil {
		return errors.New("the block storage service is not configured")
	}
	v := s.cfg.Volumes
	bdms, err := blockDevicesOf(ctx, s.db, id)
	if err != nil {
		return err
	}
	for _, b := range bdms {
		auth := VolumeAuth{Project: b.ProjectID}
		if b.Status == bdmCreating {
			if err := s.waitVolume(ctx, auth, b.VolumeID); err != nil {
				return err
			}
			if err := v.Reserve(ctx, auth, b.VolumeID); err != nil {
				vol, gerr := v.Volume(ctx, auth, b.VolumeID)
				if gerr != nil || vol.Status != "attaching" {
					return fmt.Errorf("reserve volume %s: %w", b.VolumeID, err)
				}
				// Reserved by an earlier try that did not record it.
			}
			if err := s.setBlockDevice(ctx, b.ID, `status = ?`, bdmReserved); err != nil {
				return err
			}
			b.Status = bdmReserved
		}
		if b.Status != bdmReserved && b.Host == host && b.conn() != nil {
			continue
		}
		if old := b.conn(); old != nil && b.Host != "" && b.Host != host {
			if err := ignoreGone(v.TerminateConnection(ctx, auth, b.VolumeID, b.Host)); err != nil {
				return fmt.Errorf("disconnect volume %s from %s: %w", b.VolumeID, b.Host, err)
			}
		}
		conn, err := v.InitializeConnection(ctx, auth, b.VolumeID, host)
		if err != nil {
			return fmt.Errorf("connect volume %s to %s: %w", b.VolumeID, host, err)
		}
		status := b.Status
		if status == bdmReserved {
			status = bdmAttaching
		}
		if err := s.setBlockDevice(ctx, b.ID, `status = ?, host = ?, connection_info = ?`, status, host, jsonText(conn)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) setBlockDevice(ctx context.Context, id, set string, args ...any) error {
	if _, err := s.db.Exec(ctx, `UPDATE compute_block_devices SET `+set+`, updated_at = ? WHERE id = ?`, append(args, store.FormatTime(now()), id)...); err != nil {
		return fmt.Errorf("update volume mapping %s: %w", id, err)
	}
	return nil
}

// waitVolume waits until a new volume is available, as Nova's
// block_device_allocate_retries: an error status or the timeout fails
// the build.
func (s *Service) waitVolume(ctx context.Context, auth VolumeAuth, id string) error {
	deadline := time.Now().Add(s.cfg.VolumeCreateTimeout)
	for {
		vol, err := s.cfg.Volumes.Volume(ctx, auth, id)
		if err != nil {
			return fmt.Errorf("volume %s: %w", id, err)
		}
		switch vol.Status {
		case "available":
			return nil
		case "creating", "downloading":
		default:
			return fmt.Errorf("volume %s did not finish being created: it is %s", id, vol.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("volume %s did not finish being created even after we waited %s", id, s.cfg.VolumeCreateTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(volumePoll):
		}
	}
}
