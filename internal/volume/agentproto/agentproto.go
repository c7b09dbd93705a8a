// Package agentproto is the protocol between the volume API and the volume
// agents on storage hosts: the bus subjects and the messages sent over
// them. The API owns the database and decides; an agent owns its host's
// volume files and its qemu-storage-daemon, does the work it is told, and
// reports what happened. Neither side imports the other; both import this.
//
// Commands are durable (bus.CastDurable on HostSubject): an agent that
// restarts mid-command gets it again, so every command is idempotent on
// the agent's side. Exports are synchronous calls (bus.Call on
// ConnSubject), because the compute side waits for the connection.
package agentproto

import (
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// Bus subjects. Per-host subjects embed the storage host's name, which is
// restricted to characters safe in a NATS subject token.
const (
	// SubjectHostPrefix + host is the durable command queue of one host.
	SubjectHostPrefix = "volume.host."
	// SubjectConnPrefix + host answers ConnRequest calls.
	SubjectConnPrefix = "volume.conn."
	// SubjectReports carries Report from agents to the API, durably.
	SubjectReports = "volume.reports"
	// SubjectHeartbeat carries Heartbeat from agents, every HeartbeatEvery.
	SubjectHeartbeat = "volume.heartbeat"
)

// HostSubject is the durable command subject of a storage host.
func HostSubject(host string) string { return SubjectHostPrefix + host }

// ConnSubject is the export call subject of a storage host.
func ConnSubject(host string) string { return SubjectConnPrefix + host }

// Operations of a Command.
const (
	// OpCreate makes the volume's file: blank, or from ImageID,
	// SourceVolumeID or SourceSnapshotID (all on this host), grown to
	// SizeGB. Reports StatusAvailable (with ImageMetadata when made
	// from an image) or StatusError.
	OpCreate = "create"
	// OpDelete removes the volume's file and any export of it. Reports
	// StatusDeleted or StatusErrorDeleting.
	OpDelete = "delete"
	// OpExtend grows the volume to SizeGB (online when it is exported).
	// Reports the status the volume had, or StatusErrorExtending.
	OpExtend = "extend"
	// OpSnapshot copies the volume into snapshot SnapshotID, consistently
	// even while a guest writes to it. Reports StatusAvailable for the
	// snapshot, or StatusError.
	OpSnapshot = "snapshot"
	// OpDeleteSnapshot removes snapshot SnapshotID. Reports
	// StatusDeleted or StatusErrorDeleting for the snapshot.
	OpDeleteSnapshot = "delete_snapshot"
	// OpUpload converts the volume to Upload.DiskFormat and uploads it
	// as the bytes of the image Upload.ImageID, which the API has
	// created. It always reports Command.ReturnStatus, the status the
	// volume goes back to: a failed upload leaves the volume as it was
	// and reports a Fault.
	OpUpload = "upload"
)

// Statuses an agent reports. They are Cinder's volume and snapshot
// statuses, plus StatusDeleted for a file that is gone.
const (
	StatusAvailable      = "available"
	StatusInUse          = "in-use"
	StatusError          = "error"
	StatusErrorDeleting  = "error_deleting"
	StatusErrorExtending = "error_extending"
	StatusDeleted        = "deleted"
)

// Command is one piece of work for a storage host.
type Command struct {
	// ID is unique per command, for logs and to tell redeliveries apart.
	ID string `json:"id"`
	Op string `json:"op"`
	// RequestID carries the API request's id into the agent's logs.
	RequestID string `json:"request_id,omitempty"`
	VolumeID  string `json:"volume_id"`
	// SnapshotID is the snapshot made by OpSnapshot or removed by
	// OpDeleteSnapshot.
	SnapshotID string `json:"snapshot_id,omitempty"`
	// SizeGB is the size to create or extend to, in GiB.
	SizeGB int `json:"size_gb,omitempty"`
	// At most one source for OpCreate.
	ImageID          string `json:"image_id,omitempty"`
	SourceVolumeID   string `json:"source_volume_id,omitempty"`
	SourceSnapshotID string `json:"source_snapshot_id,omitempty"`
	// Upload is set for OpUpload.
	Upload *Upload `json:"upload,omitempty"`
	// ReturnStatus is the status the volume had before a transient one
	// (extending, uploading, backing-up), for the agent to report back.
	ReturnStatus string `json:"return_status,omitempty"`
	// Backup is set for OpBackup, OpRestore and OpDeleteBackup.
	Backup *Backup `json:"backup,omitempty"`
}

// Upload is the target of OpUpload.
type Upload struct {
	ImageID string `json:"image_id"`
	// DiskFormat is the image's disk_format: "raw" or "qcow2".
	DiskFormat string `json:"disk_format"`
}

// Report is an agent's answer to one Command.
type Report struct {
	CommandID  string `json:"command_id"`
	Op         string `json:"op"`
	Host       string `json:"host"`
	VolumeID   string `json:"volume_id"`
	SnapshotID string `json:"snapshot_id,omitempty"`
	// Status is the volume's new status (the snapshot's for snapshot
	// operations).
	Status string `json:"status"`
	// Fault says what went wrong; empty on success.
	Fault string `json:"fault,omitempty"`
	// SizeGB is the volume's (or snapshot's) size now.
	SizeGB int `json:"size_gb,omitempty"`
	// BackupID is the backup of OpBackup, OpRestore and OpDeleteBackup.
	BackupID string `json:"backup_id,omitempty"`
	// BackupStatus is the backup's new status after OpBackup
	// (StatusAvailable or StatusError) and OpDeleteBackup (StatusDeleted
	// or StatusErrorDeleting); for those, Status is the volume's (or,
	// for a backup of a snapshot, the snapshot's) status again.
	BackupStatus string `json:"backup_status,omitempty"`
	// ObjectCount is how many objects OpBackup stored, the metadata
	// object included.
	ObjectCount int `json:"object_count,omitempty"`
	// ImageMetadata is the volume_image_metadata of a volume created from
	// an image: the image's id, name, checksum, formats, min_disk,
	// min_ram, size and every custom property (kernel_id, ramdisk_id,
	// os_command_line, hw_disk_bus, ...). Such a volume is bootable.
	ImageMetadata map[string]string `json:"image_metadata,omitempty"`
}

// ConnRequest asks a storage host to export a volume to one compute host
// (OpExport) or to stop doing so (OpUnexport). Both are idempotent: a
// second export to the same initiator answers the same connection.
type ConnRequest struct {
	Op       string `json:"op"`
	VolumeID string `json:"volume_id"`
	// Initiator is the compute host that connects (Cinder's
	// connector["host"]).
	Initiator string `json:"initiator"`
	ReadOnly  bool   `json:"read_only,omitempty"`
}

// ConnRequest operations.
const (
	OpExport   = "export"
	OpUnexport = "unexport"
)

// ConnReply answers a ConnRequest; Conn is nil for OpUnexport.
type ConnReply struct {
	Conn *hypervisor.VolumeConn `json:"conn,omitempty"`
}

// Heartbeat is a storage host's state, published every HeartbeatEvery; the
// API lists it in os-services and schedules on its free capacity.
type Heartbeat struct {
	// Host is the storage host's name; Cinder's host string for its
	// volumes is Host@Backend#Pool.
	Host    string `json:"host"`
	Backend string `json:"backend"`
	Pool    string `json:"pool"`
	Zone    string `json:"zone"`
	// TotalGB and FreeGB are the pool's filesystem; ProvisionedGB is the
	// sum of the volumes' sizes (files are sparse, so it may exceed
	// TotalGB up to MaxOverSubscription times).
	TotalGB             float64 `json:"total_gb"`
	FreeGB              float64 `json:"free_gb"`
	ProvisionedGB       float64 `json:"provisioned_gb"`
	MaxOverSubscription float64 `json:"max_over_subscription_ratio"`
	// Volumes and Snapshots are the ids whose files the host has, so the
	// API can reconcile volumes stuck in a transient status.
	Volumes   []string `json:"volumes,omitempty"`
	Snapshots []string `json:"snapshots,omitempty"`
}

// HeartbeatEvery is how often an agent publishes its Heartbeat; the API
// counts a host as down after three missed beats.
const HeartbeatEvery = 10 * time.Second
