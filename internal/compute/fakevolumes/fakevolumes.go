// Package fakevolumes is an in-memory block storage service for tests of
// the compute API and agent: it implements compute.VolumeService with
// Cinder's state rules for the legacy attach flow (available → attaching
// → in-use → detaching → available), so that tests see the same refusals
// a real volume service gives, without one.
package fakevolumes

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// Volume is one volume as the fake keeps it.
type Volume struct {
	ID, Name, Status, Project string
	Size                      int
	Bootable                  bool
	ImageMetadata             map[string]string
	// Attachment is set while in-use.
	Attachment *compute.VolumeAttachmentInfo
	// Connections are the hosts the volume is exported to.
	Connections map[string]bool
	// What Nova's volume proxy shows besides.
	Description, VolumeType, SnapshotID, AvailabilityZone, CreatedAt string
	Metadata                                                         map[string]string
	// seq orders volumes by creation, newest first in lists, as
	// Cinder's default created_at desc.
	seq int
}

// DefaultVolumeType is the type a volume gets without one, and the only
// one the fake knows (Cinder's __DEFAULT__).
const DefaultVolumeType = "__DEFAULT__"

// Service is the fake. The zero value is not usable; use New.
type Service struct {
	mu        sync.Mutex
	volumes   map[string]*Volume   // guarded by mu
	snapshots map[string]*Snapshot // guarded by mu
	seq       int                  // guarded by mu; the last creation's number
	calls     []string             // guarded by mu; "action volume-id"
	// CreateStatus is the status a created volume ends in (available by
	// default); guarded by mu.
	createStatus string
	// fail makes the named call fail; guarded by mu.
	fail map[string]error
}

var _ compute.VolumeService = (*Service)(nil)

// New returns an empty fake volume service.
func New() *Service {
	return &Service{volumes: map[string]*Volume{}, snapshots: map[string]*Snapshot{}, fail: map[string]error{}, createStatus: "available"}
}

// Add makes a volume (available unless status says otherwise).
func (s *Service) Add(project string, size int, bootable bool, meta map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := uuid.NewString()
	v := s.newVolume(id, project, size)
	v.Status, v.Bootable, v.ImageMetadata = "available", bootable, meta
	s.volumes[id] = v
	return id
}

// Get returns a copy of a volume, nil when it does not exist.
func (s *Service) Get(id string) *Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.volumes[id]
	if !ok {
		return nil
	}
	c := *v
	c.Metadata = copyMap(v.Metadata)
	c.Connections = map[string]bool{}
	for h := range v.Connections {
		c.Connections[h] = true
	}
	return &c
}

// IDs lists every volume.
func (s *Service) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.volumes {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// SetStatus forces a volume's status (an error, a volume being made).
func (s *Service) SetStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.volumes[id]; ok {
		v.Status = status
	}
}

// SetCreateStatus sets the status new volumes get ("creating" leaves
// them for the test to finish with SetStatus).
func (s *Service) SetCreateStatus(status string) {
	s.mu.Lock()
	s.createStatus = status
	s.mu.Unlock()
}

// Fail makes every later call named op ("os-attach", "create", ...) fail
// with err; nil clears it.
func (s *Service) Fail(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, op)
	} else {
		s.fail[op] = err
	}
}

// Calls lists the calls made, as "op volume-id", in order.
func (s *Service) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func invalid(format string, args ...any) error {
	return &compute.VolumeError{Status: 400, Message: "Invalid volume: " + fmt.Sprintf(format, args...)}
}

// step looks a volume up for op, records the call and applies the
// injected failure; the caller holds mu.
func (s *Service) step(op, id string, auth compute.VolumeAuth) (*Volume, error) {
	s.calls = append(s.calls, op+" "+id)
	if err := s.fail[op]; err != nil {
		return nil, err
	}
	v, ok := s.volumes[id]
	if !ok {
		return nil, compute.ErrNotFound
	}
	if !visible(auth, v.Project) {
		return nil, compute.ErrNotFound
	}
	return v, nil
}

// visible says whether auth sees a resource of project: a user's token
// sees its own project's; the service user (empty token) and the admin
// token see all, as Cinder's admin.
func visible(auth compute.VolumeAuth, project string) bool {
	return auth.Token == "" || auth.Token == "admin" || project == auth.Project
}

func info(v *Volume) *compute.VolumeInfo {
	out := &compute.VolumeInfo{ID: v.ID, Name: v.Name, Status: v.Status, Size: v.Size, AvailabilityZone: v.AvailabilityZone, Bootable: v.Bootable,
		ImageMetadata: copyMap(v.ImageMetadata), Description: v.Description, VolumeType: v.VolumeType, SnapshotID: v.SnapshotID,
		Metadata: copyMap(v.Metadata), CreatedAt: v.CreatedAt}
	if v.Attachment != nil {
		out.Attachments = []compute.VolumeAttachmentInfo{*v.Attachment}
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// newVolume makes a volume's record with the defaults Cinder gives; the
// caller holds mu.
func (s *Service) newVolume(id, project string, size int) *Volume {
	s.seq++
	return &Volume{ID: id, Project: project, Size: size, VolumeType: DefaultVolumeType, AvailabilityZone: "nova",
		CreatedAt: time.Now().UTC().Format("2006-01-02T15:04:05.000000"), Metadata: map[string]string{},
		Connections: map[string]bool{}, seq: s.seq}
}

// Volume implements compute.VolumeService.
func (s *Service) Volume(_ context.Context, auth compute.VolumeAuth, id string) (*compute.VolumeInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.step("get", id, auth)
	if err != nil {
		return nil, err
	}
	return info(v), nil
}

// CreateVolume implements compute.VolumeService.
func (s *Service) CreateVolume(_ context.Context, auth compute.VolumeAuth, req compute.VolumeCreate) (*compute.VolumeInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "create "+req.ImageRef)
	if err := s.fail["create"]; err != nil {
		return nil, err
	}
	if req.Size < 1 {
		return nil, &compute.VolumeError{Status: 400, Message: "Invalid input received: size must be at least 1"}
	}
	if req.VolumeType != "" && req.VolumeType != DefaultVolumeType {
		return nil, compute.ErrNotFound // Cinder: VolumeTypeNotFoundByName, a 404
	}
	if req.AvailabilityZone != "" && req.AvailabilityZone != "nova" {
		return nil, &compute.VolumeError{Status: 400, Message: "Invalid input received: Availability zone '" + req.AvailabilityZone + "' is invalid."}
	}
	if req.SnapshotID != "" {
		sn, ok := s.snapshots[req.SnapshotID]
		if !ok || !visible(auth, sn.Project) {
			return nil, compute.ErrNotFound
		}
		if req.Size < sn.Size {
			return nil, &compute.VolumeError{Status: 400, Message: fmt.Sprintf("Invalid input received: Volume size '%d'GB cannot be smaller than the snapshot size %dGB.", req.Size, sn.Size)}
		}
	}
	id := uuid.NewString()
	v := s.newVolume(id, auth.Project, req.Size)
	v.Name, v.Status, v.Description, v.SnapshotID = req.Name, s.createStatus, req.Description, req.SnapshotID
	for k, val := range req.Metadata {
		v.Metadata[k] = val
	}
	if req.ImageRef != "" {
		v.Bootable = true
		v.ImageMetadata = map[string]string{"image_id": req.ImageRef}
	}
	s.volumes[id] = v
	return info(v), nil
}

// Volumes implements compute.VolumeService: the project's volumes, newest
// first.
func (s *Service) Volumes(_ context.Context, auth compute.VolumeAuth) ([]compute.VolumeInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "list "+auth.Project)
	if err := s.fail["list"]; err != nil {
		return nil, err
	}
	var mine []*Volume
	for _, v := range s.volumes {
		if v.Project == auth.Project {
			mine = append(mine, v)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].seq > mine[j].seq })
	out := make([]compute.VolumeInfo, 0, len(mine))
	for _, v := range mine {
		out = append(out, *info(v))
	}
	return out, nil
}

// DeleteVolume implements compute.VolumeService.
func (s *Service) DeleteVolume(_ context.Context, auth compute.VolumeAuth, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.step("delete", id, auth)
	if err != nil {
		return err
	}
	switch v.Status {
	case "available", "error":
	default:
		return invalid("Volume status must be available or error, but current status is: %s.", v.Status)
	}
	for _, sn := range s.snapshots {
		if sn.VolumeID == id {
			return invalid("Volume %s still has dependent snapshots.", id)
		}
	}
	delete(s.volumes, id)
	return nil
}

// transition moves a volume from one of from to to, or refuses as
// Cinder does.
func (s *Service) transition(op, id string, auth compute.VolumeAuth, to string, from ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.step(op, id, auth)
	if err != nil {
		return err
	}
	for _, f := range from {
		if v.Status == f {
			v.Status = to
			return nil
		}
	}
	return invalid("volume %s status must be %v, but it is %s.", id, from, v.Status)
}

// Reserve implements compute.VolumeService.
func (s *Service) Reserve(_ context.Context, auth compute.VolumeAuth, id string) error {
	return s.transition("os-reserve", id, auth, "attaching", "available")
}

// Unreserve implements compute.VolumeService.
func (s *Service) Unreserve(_ context.Context, auth compute.VolumeAuth, id string) error {
	return s.transition("os-unreserve", id, auth, "available", "attaching")
}

// BeginDetaching implements compute.VolumeService.
func (s *Service) BeginDetaching(_ context.Context, auth compute.VolumeAuth, id string) error {
	return s.transition("os-begin_detaching", id, auth, "detaching", "in-use")
}

// RollDetaching implements compute.VolumeService.
func (s *Service) RollDetaching(_ context.Context, auth compute.VolumeAuth, id string) error {
	return s.transition("os-roll_detaching", id, auth, "in-use", "detaching")
}

// InitializeConnection implements compute.VolumeService: an export on
// 127.0.0.1 with a PSK identity named after the host.
func (s *Service) InitializeConnection(_ context.Context, auth compute.VolumeAuth, id, host string) (hypervisor.VolumeConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.step("os-initialize_connection", id, auth)
	if err != nil {
		return hypervisor.VolumeConn{}, err
	}
	if v.Status != "attaching" && v.Status != "in-use" && v.Status != "detaching" {
		return hypervisor.VolumeConn{}, invalid("volume %s is %s: reserve it first.", id, v.Status)
	}
	v.Connections[host] = true
	return hypervisor.VolumeConn{VolumeID: id, Host: "127.0.0.1", Port: 10809, Export: id + "-abcdef12",
		PSKIdentity: host, PSKKey: "00112233445566778899aabbccddeeff", Discard: true}, nil
}

// TerminateConnection implements compute.VolumeService.
func (s *Service) TerminateConnection(_ context.Context, auth compute.VolumeAuth, id, host string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.step("os-terminate_connection", id, auth)
	if err != nil {
		return err
	}
	delete(v.Connections, host)
	return nil
}

// Attach implements compute.VolumeService.
func (s *Service) Attach(_ context.Context, auth compute.VolumeAuth, id, instanceID, mountpoint, hostName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.step("os-attach", id, auth)
	if err != nil {
		return err
	}
	if v.Status != "attaching" {
		return invalid("volume %s status must be attaching, but it is %s.", id, v.Status)
	}
	v.Status = "in-use"
	v.Attachment = &compute.VolumeAttachmentInfo{AttachmentID: uuid.NewString(), ServerID: instanceID, Device: mountpoint, HostName: hostName}
	return nil
}

// Detach implements compute.VolumeService.
func (s *Service) Detach(_ context.Context, auth compute.VolumeAuth, id, attachmentID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.step("os-detach", id, auth)
	if err != nil {
		return err
	}
	if v.Status != "in-use" && v.Status != "detaching" {
		return invalid("volume %s is %s: not attached.", id, v.Status)
	}
	if attachmentID != "" && (v.Attachment == nil || v.Attachment.AttachmentID != attachmentID) {
		return &compute.VolumeError{Status: 404, Message: "attachment " + attachmentID + " not found"}
	}
	v.Status, v.Attachment = "available", nil
	return nil
}
