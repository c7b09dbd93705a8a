package compute

import (
	"context"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// VolumeInfo is what the compute API needs to know about a block storage
// volume (Cinder's volume body, trimmed).
type VolumeInfo struct {
	ID               string
	Name             string
	Status           string
	Size             int
	AvailabilityZone string
	// Bootable is Cinder's "bootable" string, "true" or "false", as a bool.
	Bootable    bool
	Multiattach bool
	Attachments []VolumeAttachmentInfo
	// ImageMetadata is volume_image_metadata: the properties of the image
	// the volume was made from, which a volume-backed server boots with.
	ImageMetadata map[string]string
	// Description, VolumeType (a name), SnapshotID (the source) and
	// Metadata are shown by Nova's volume proxy (/os-volumes); an empty
	// string is Cinder's null.
	Description string
	VolumeType  string
	SnapshotID  string
	Metadata    map[string]string
	// CreatedAt is Cinder's created_at, passed on as Cinder wrote it.
	CreatedAt string
}

// VolumeAttachmentInfo is one entry of a volume's attachments[].
type VolumeAttachmentInfo struct {
	AttachmentID string
	ServerID     string
	Device       string
	HostName     string
}

// VolumeCreate asks for a new volume: blank, or from an image or a
// snapshot (block_device_mapping_v2 with destination_type volume).
type VolumeCreate struct {
	Name             string
	Size             int
	ImageRef         string
	SnapshotID       string
	AvailabilityZone string
	// Description, VolumeType and Metadata come from Nova's volume proxy
	// (POST /os-volumes); empty ones are not sent.
	Description string
	VolumeType  string
	Metadata    map[string]string
}

// SnapshotInfo is a volume snapshot as Nova's proxy (/os-snapshots)
// shows it (Cinder's snapshot body, trimmed). Size is the source
// volume's size; empty strings are Cinder's nulls.
type SnapshotInfo struct {
	ID          string
	VolumeID    string
	Status      string
	Size        int
	Name        string
	Description string
	CreatedAt   string
}

// SnapshotCreate asks for a snapshot of a volume. Force allows one of an
// in-use volume, which Cinder otherwise refuses.
type SnapshotCreate struct {
	VolumeID    string
	Name        string
	Description string
	Force       bool
}

// VolumeAuth says who calls the volume service: a user's token within a
// request, or, with Token empty, the compute service user (an admin), for
// work that finishes after the request has been answered. Project is the
// project in the volume API's URLs (/v3/{project}/volumes/...): the
// volume's owner, which an admin token may address too.
type VolumeAuth struct {
	Token   string
	Project string
}

// VolumeService is the block storage service as the compute API uses it:
// Nova's legacy Cinder flow (reserve, initialize_connection, attach;
// begin_detaching, terminate_connection, detach). Every call answers
// ErrNotFound for a missing volume and a *VolumeError for a refusal
// (Cinder's 400 "Invalid volume: ..."), which the API passes on.
type VolumeService interface {
	Volume(ctx context.Context, auth VolumeAuth, id string) (*VolumeInfo, error)
	CreateVolume(ctx context.Context, auth VolumeAuth, req VolumeCreate) (*VolumeInfo, error)
	DeleteVolume(ctx context.Context, auth VolumeAuth, id string) error
	// Reserve moves an available volume to attaching; Unreserve back.
	Reserve(ctx context.Context, auth VolumeAuth, id string) error
	Unreserve(ctx context.Context, auth VolumeAuth, id string) error
	// InitializeConnection exports the volume to the compute host and
	// says how to reach it; TerminateConnection ends that export.
	InitializeConnection(ctx context.Context, auth VolumeAuth, id, host string) (hypervisor.VolumeConn, error)
	TerminateConnection(ctx context.Context, auth VolumeAuth, id, host string) error
	// Attach records the attachment (in-use); Detach removes it
	// (available).
	Attach(ctx context.Context, auth VolumeAuth, id, instanceID, mountpoint, hostName string) error
	Detach(ctx context.Context, auth VolumeAuth, id, attachmentID string) error
	// BeginDetaching moves an in-use volume to detaching;
	// RollDetaching back to in-use.
	BeginDetaching(ctx context.Context, auth VolumeAuth, id string) error
	RollDetaching(ctx context.Context, auth VolumeAuth, id string) error

	// The calls below serve Nova's volume proxy (/os-volumes and
	// /os-snapshots, up to microversion 2.35), always with the user's
	// token. Volumes and Snapshots list every one of auth.Project's, in
	// Cinder's default order (newest first).
	Volumes(ctx context.Context, auth VolumeAuth) ([]VolumeInfo, error)
	Snapshot(ctx context.Context, auth VolumeAuth, id string) (*SnapshotInfo, error)
	Snapshots(ctx context.Context, auth VolumeAuth) ([]SnapshotInfo, error)
	CreateSnapshot(ctx context.Context, auth VolumeAuth, req SnapshotCreate) (*SnapshotInfo, error)
	DeleteSnapshot(ctx context.Context, auth VolumeAuth, id string) error
}

// VolumeError is the volume service refusing a call, with its status and
// message (Cinder's {"badRequest":{"message":...}}).
type VolumeError struct {
	Status  int
	Message string
}

func (e *VolumeError) Error() string {
	return fmt.Sprintf("volume service answered %d: %s", e.Status, e.Message)
}

// volumeRefusal reports whether err is the volume service refusing a
// call for the volume's state (a 4xx other than 404), as opposed to the
// service failing.
func volumeRefusal(err error) (*VolumeError, bool) {
	var ve *VolumeError
	if errors.As(err, &ve) && ve.Status >= 400 && ve.Status < 500 {
		return ve, true
	}
	return nil, false
}
