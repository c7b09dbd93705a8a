package agentproto

// Backup operations. A backup lives in object storage (the Swift API of
// the object proxy), as Cinder's Swift backup driver keeps it: in
// Container of Account, every object named under Prefix, which is unique
// to the backup. The volume's bytes are cut into chunks of ChunkSize;
// chunks that hold only zeros are not stored, and a metadata object
// (Prefix + "/metadata") lists the others with their sha256, so a
// restore can check every byte. An incremental backup stores only the
// chunks whose sha256 differs from its parent's and lists the parent's
// objects for the rest, so a parent must outlive its increments (the API
// refuses to delete a backup with dependents).
const (
	// OpBackup copies volume VolumeID (or, when SnapshotID is set, that
	// snapshot of it) into Backup, consistently even while a guest
	// writes to the volume. Reports BackupStatus StatusAvailable with
	// ObjectCount, or StatusError, and Status = ReturnStatus for the
	// volume (the snapshot's status when SnapshotID is set).
	OpBackup = "backup"
	// OpRestore writes Backup into volume VolumeID, grown to SizeGB,
	// making the volume's file when it does not exist yet. The volume's
	// file is replaced whole, only once every chunk was read and
	// verified. Reports Status StatusAvailable or StatusErrorRestoring
	// for the volume.
	OpRestore = "restore"
	// OpDeleteBackup removes Backup's objects (objects already gone
	// are fine). Reports BackupStatus StatusDeleted or
	// StatusErrorDeleting.
	OpDeleteBackup = "delete_backup"
)

// StatusErrorRestoring is a volume whose restore failed.
const StatusErrorRestoring = "error_restoring"

// DefaultChunkSize is the chunk size of a backup that sets none: Cinder's
// Swift driver's default object size.
const DefaultChunkSize = 32 << 20

// Backup says where a backup's objects are and how to reach them.
type Backup struct {
	ID string `json:"id"`
	// Account is the Swift account ("AUTH_" + the volume owner's
	// project), Container the container in it.
	Account   string `json:"account"`
	Container string `json:"container"`
	// Prefix starts the name of every object of the backup.
	Prefix string `json:"prefix"`
	// Token is the requester's token, which owns Account (Cinder's
	// per-user Swift auth); empty uses the agent's own service
	// credentials, which then need access to Account.
	Token string `json:"token,omitempty"`
	// ChunkSize is the size of the chunks in bytes (DefaultChunkSize
	// when 0); OpBackup only.
	ChunkSize int64 `json:"chunk_size,omitempty"`
	// ParentPrefix is the prefix of the backup an incremental OpBackup
	// builds on (same account and container); empty for a full backup.
	ParentPrefix string `json:"parent_prefix,omitempty"`
}

// MetadataObject is the name of a backup's metadata object.
func (b Backup) MetadataObject() string { return b.Prefix + "/metadata" }
