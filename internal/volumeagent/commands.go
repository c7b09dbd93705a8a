package volumeagent

import (
	"context"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// faultf is a failure in words for the volume's fault.
func faultf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// handle runs one command and reports it; a failure is reported as the
// volume's fault rather than retried, since redoing a failed qemu-img
// step gives the same answer. Every operation is idempotent
// (files are made under a part name and renamed when whole; deleting
// what is gone succeeds), because a command is redelivered when the
// agent dies before its report is stored.
func (a *Agent) handle(ctx context.Context, cmd agentproto.Command) error {
	log := a.log.With("op", cmd.Op, "volume", cmd.VolumeID, "snapshot", cmd.SnapshotID, "command", cmd.ID, "request_id", cmd.RequestID)
	rep := agentproto.Report{CommandID: cmd.ID, Op: cmd.Op, Host: a.cfg.Host, VolumeID: cmd.VolumeID, SnapshotID: cmd.SnapshotID}
	if cmd.Backup != nil {
		rep.BackupID = cmd.Backup.ID
		log = log.With("backup", cmd.Backup.ID)
	}
	err := a.run(ctx, cmd, &rep)
	if err != nil && ctx.Err() != nil {
		return err // the agent is stopping: redelivered to the next one
	}
	if err != nil {
		rep.Fault = err.Error()
		rep.Status = failedStatus(cmd)
		rep.BackupStatus = failedBackupStatus(cmd)
		log.Warn("volume command failed", "fault", rep.Fault, "status", rep.Status)
	} else {
		log.Info("volume command done", "status", rep.Status, "size_gb", rep.SizeGB)
	}
	if err := bus.CastDurable(ctx, a.cfg.Bus, agentproto.SubjectReports, rep); err != nil {
		return fmt.Errorf("report %s: %w", cmd.ID, err)
	}
	return nil
}

// failedStatus is what a failed command leaves its volume or snapshot in.
func failedStatus(cmd agentproto.Command) string {
	switch cmd.Op {
	case agentproto.OpDelete, agentproto.OpDeleteSnapshot:
		return agentproto.StatusErrorDeleting
	case agentproto.OpExtend:
		return agentproto.StatusErrorExtending
	case agentproto.OpUpload, agentproto.OpBackup:
		return returnStatus(cmd) // the volume is as it was
	case agentproto.OpRestore:
		return agentproto.StatusErrorRestoring
	case agentproto.OpDeleteBackup:
		return ""
	}
	return agentproto.StatusError
}

// failedBackupStatus is what a failed command leaves its backup in.
func failedBackupStatus(cmd agentproto.Command) string {
	switch cmd.Op {
	case agentproto.OpBackup:
		return agentproto.StatusError
	case agentproto.OpDeleteBackup:
		return agentproto.StatusErrorDeleting
	}
	return ""
}

func returnStatus(cmd agentproto.Command) string {
	if cmd.ReturnStatus != "" {
		return cmd.ReturnStatus
	}
	return agentproto.StatusAvailable
}

// run does the command's work and fills the success part of rep.
func (a *Agent) run(ctx context.Context, cmd agentproto.Command, rep *agentproto.Report) error {
	if !validID(cmd.VolumeID) && !(cmd.Op == agentproto.OpDeleteSnapshot && cmd.VolumeID == "") {
		return faultf("invalid volume id %q", cmd.VolumeID)
	}
	switch cmd.Op {
	case agentproto.OpSnapshot, agentproto.OpDeleteSnapshot:
		if !validID(cmd.SnapshotID) {
			return faultf("invalid snapshot id %q", cmd.SnapshotID)
		}
	case agentproto.OpBackup:
		if cmd.SnapshotID != "" && !validID(cmd.SnapshotID) {
			return faultf("invalid snapshot id %q", cmd.SnapshotID)
		}
		fallthrough
	case agentproto.OpRestore, agentproto.OpDeleteBackup:
		if err := validBackup(cmd.Backup); err != nil {
			return err
		}
	}
	ids := []string{cmd.VolumeID, cmd.SnapshotID, cmd.SourceVolumeID, cmd.SourceSnapshotID}
	if cmd.Op == agentproto.OpDeleteBackup {
		ids = nil // only the objects, not the volume
	}
	if cmd.Backup != nil {
		ids = append(ids, cmd.Backup.ID)
	}
	unlock, err := a.lock(ctx, ids...)
	if err != nil {
		return err
	}
	defer unlock()
	switch cmd.Op {
	case agentproto.OpCreate:
		return a.create(ctx, cmd, rep)
	case agentproto.OpDelete:
		return a.delete(ctx, cmd, rep)
	case agentproto.OpExtend:
		return a.extend(ctx, cmd, rep)
	case agentproto.OpSnapshot:
		return a.snapshot(ctx, cmd, rep)
	case agentproto.OpDeleteSnapshot:
		if err := removeFile(partPath(a.snapshotPath(cmd.SnapshotID))); err != nil {
			return fmt.Errorf("delete snapshot: %w", err)
		}
		if err := removeFile(a.snapshotPath(cmd.SnapshotID)); err != nil {
			return fmt.Errorf("delete snapshot: %w", err)
		}
		rep.Status = agentproto.StatusDeleted
		return nil
	case agentproto.OpUpload:
		return a.upload(ctx, cmd, rep)
	case agentproto.OpBackup:
		return a.backup(ctx, cmd, rep)
	case agentproto.OpRestore:
		return a.restore(ctx, cmd, rep)
	case agentproto.OpDeleteBackup:
		return a.deleteBackup(ctx, cmd, rep)
	}
	return faultf("unknown operation %q", cmd.Op)
}

// create makes the volume's file from its source under the part name and
// renames it when whole; a volume already there is reported again.
func (a *Agent) create(ctx context.Context, cmd agentproto.Command, rep *agentproto.Report) error {
	sources := 0
	for _, s := range []string{cmd.ImageID, cmd.SourceVolumeID, cmd.SourceSnapshotID} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		return faultf("a volume has at most one source")
	}
	if cmd.SizeGB < 1 {
		return faultf("invalid size %d GiB", cmd.SizeGB)
	}
	final := a.volumePath(cmd.VolumeID)
	size := int64(cmd.SizeGB) * gib
	if exists(final) {
		// A redelivery after the file was finished.
		if cmd.ImageID != "" {
			meta, err := a.imageMeta(ctx, cmd.ImageID)
			if err != nil {
				return err
			}
			rep.ImageMetadata = meta.volumeImageMetadata()
		}
		return a.reportSize(final, rep, agentproto.StatusAvailable)
	}
	part := partPath(final)
	if err := removeFile(part); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = removeFile(part)
		}
	}()
	switch {
	case cmd.ImageID != "":
		md, err := a.fromImage(ctx, cmd.ImageID, part, size)
		if err != nil {
			return err
		}
		rep.ImageMetadata = md
	case cmd.SourceVolumeID != "":
		if !validID(cmd.SourceVolumeID) || !exists(a.volumePath(cmd.SourceVolumeID)) {
			return faultf("source volume %s is not on this host", cmd.SourceVolumeID)
		}
		if err := a.copyVolume(ctx, cmd.SourceVolumeID, part); err != nil {
			return fmt.Errorf("clone volume %s: %w", cmd.SourceVolumeID, err)
		}
	case cmd.SourceSnapshotID != "":
		src := a.snapshotPath(cmd.SourceSnapshotID)
		if !validID(cmd.SourceSnapshotID) || !exists(src) {
			return faultf("snapshot %s is not on this host", cmd.SourceSnapshotID)
		}
		if err := convert(ctx, src, "qcow2", part, "qcow2"); err != nil {
			return fmt.Errorf("create from snapshot %s: %w", cmd.SourceSnapshotID, err)
		}
	default:
		if err := createBlank(ctx, part, size); err != nil {
			return fmt.Errorf("create: %w", err)
		}
	}
	if err := growTo(ctx, part, size); err != nil {
		return err
	}
	if err := publish(part, final); err != nil {
		return err
	}
	ok = true
	return a.reportSize(final, rep, agentproto.StatusAvailable)
}

// growTo resizes a new volume's file to size; a source larger than the
// volume cannot be shrunk into it.
func growTo(ctx context.Context, path string, size int64) error {
	have, err := qcow2Size(path)
	if err != nil {
		return err
	}
	switch {
	case have > size:
		return faultf("the source is %d bytes, larger than the volume's %d GiB", have, size/gib)
	case have < size:
		if err := resize(ctx, path, size); err != nil {
			return fmt.Errorf("grow to %d GiB: %w", size/gib, err)
		}
	}
	return nil
}

// copyVolume copies a volume into a new qcow2 file at dst: through the
// storage daemon when it has the volume open (consistent while written),
// else with qemu-img. Called with the source locked.
func (a *Agent) copyVolume(ctx context.Context, volumeID, dst string) error {
	src := a.volumePath(volumeID)
	busy, err := a.exported(ctx, volumeID)
	if err != nil {
		return err
	}
	if !busy {
		return convert(ctx, src, "qcow2", dst, "qcow2")
	}
	size, err := qcow2Size(src)
	if err != nil {
		return err
	}
	if err := createBlank(ctx, dst, size); err != nil {
		return err
	}
	return a.qsd.Backup(ctx, nodeName(volumeID), dst)
}

// reportSize fills rep with status and the file's size in GiB.
func (a *Agent) reportSize(path string, rep *agentproto.Report, status string) error {
	size, err := qcow2Size(path)
	if err != nil {
		return err
	}
	rep.Status, rep.SizeGB = status, sizeGB(size)
	return nil
}

// delete ends the volume's exports and removes its file.
func (a *Agent) delete(ctx context.Context, cmd agentproto.Command, rep *agentproto.Report) error {
	if err := a.unexportVolume(ctx, cmd.VolumeID, ""); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	for _, p := range []string{partPath(a.volumePath(cmd.VolumeID)), a.volumePath(cmd.VolumeID)} {
		if err := removeFile(p); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
	}
	rep.Status = agentproto.StatusDeleted
	return nil
}

// extend grows a volume that no compute host has open. An NBD export
// forbids resizing its node (QEMU's NBD server takes the resize
// permission away while it serves it, and NBD clients would not learn
// the new size anyway), so an attached volume keeps its size and
// status, with a fault.
func (a *Agent) extend(ctx context.Context, cmd agentproto.Command, rep *agentproto.Report) error {
	path := a.volumePath(cmd.VolumeID)
	if !exists(path) {
		return faultf("volume %s is not on this host", cmd.VolumeID)
	}
	have, err := qcow2Size(path)
	if err != nil {
		return err
	}
	want := int64(cmd.SizeGB) * gib
	if have >= want {
		return a.reportSize(path, rep, returnStatus(cmd)) // done before
	}
	busy, err := a.exported(ctx, cmd.VolumeID)
	if err != nil {
		return err
	}
	if busy {
		rep.Fault = "an attached volume cannot be extended: detach it first"
		return a.reportSize(path, rep, returnStatus(cmd))
	}
	if err := resize(ctx, path, want); err != nil {
		return fmt.Errorf("extend: %w", err)
	}
	return a.reportSize(path, rep, returnStatus(cmd))
}

// snapshot copies the volume into the snapshot's file, consistently even
// while a guest writes to it.
func (a *Agent) snapshot(ctx context.Context, cmd agentproto.Command, rep *agentproto.Report) error {
	final := a.snapshotPath(cmd.SnapshotID)
	if exists(final) {
		return a.reportSize(final, rep, agentproto.StatusAvailable)
	}
	if !exists(a.volumePath(cmd.VolumeID)) {
		return faultf("volume %s is not on this host", cmd.VolumeID)
	}
	part := partPath(final)
	if err := removeFile(part); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := a.copyVolume(ctx, cmd.VolumeID, part); err != nil {
		_ = removeFile(part)
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := publish(part, final); err != nil {
		_ = removeFile(part)
		return err
	}
	return a.reportSize(final, rep, agentproto.StatusAvailable)
}

var errNoImageService = errors.New("this storage host has no image service configured")
