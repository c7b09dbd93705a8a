package fakevolumes

import (
	"context"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/compute"
)

// Snapshot is one volume snapshot as the fake keeps it. It is available
// as soon as it is made unless SetSnapshotStatus says otherwise.
type Snapshot struct {
	ID, VolumeID, Project, Name, Description, Status, CreatedAt string
	Size                                                        int
	seq                                                         int
}

func snapshotInfo(sn *Snapshot) *compute.SnapshotInfo {
	return &compute.SnapshotInfo{ID: sn.ID, VolumeID: sn.VolumeID, Status: sn.Status, Size: sn.Size, Name: sn.Name,
		Description: sn.Description, CreatedAt: sn.CreatedAt}
}

// GetSnapshot returns a copy of a snapshot, nil when it does not exist.
func (s *Service) GetSnapshot(id string) *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.snapshots[id]
	if !ok {
		return nil
	}
	c := *sn
	return &c
}

// SetSnapshotStatus forces a snapshot's status (one being made, an
// error).
func (s *Service) SetSnapshotStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn, ok := s.snapshots[id]; ok {
		sn.Status = status
	}
}

// snapshotStep looks a snapshot up for op, records the call and applies
// the injected failure; the caller holds mu.
func (s *Service) snapshotStep(op, id string, auth compute.VolumeAuth) (*Snapshot, error) {
	s.calls = append(s.calls, op+" "+id)
	if err := s.fail[op]; err != nil {
		return nil, err
	}
	sn, ok := s.snapshots[id]
	if !ok || !visible(auth, sn.Project) {
		return nil, compute.ErrNotFound
	}
	return sn, nil
}

// Snapshot implements compute.VolumeService.
func (s *Service) Snapshot(_ context.Context, auth compute.VolumeAuth, id string) (*compute.SnapshotInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.snapshotStep("snapshot-get", id, auth)
	if err != nil {
		return nil, err
	}
	return snapshotInfo(sn), nil
}

// Snapshots implements compute.VolumeService: the project's snapshots,
// newest first.
func (s *Service) Snapshots(_ context.Context, auth compute.VolumeAuth) ([]compute.SnapshotInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "snapshot-list "+auth.Project)
	if err := s.fail["snapshot-list"]; err != nil {
		return nil, err
	}
	var mine []*Snapshot
	for _, sn := range s.snapshots {
		if sn.Project == auth.Project {
			mine = append(mine, sn)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].seq > mine[j].seq })
	out := make([]compute.SnapshotInfo, 0, len(mine))
	for _, sn := range mine {
		out = append(out, *snapshotInfo(sn))
	}
	return out, nil
}

// CreateSnapshot implements compute.VolumeService with Cinder's rule: the
// volume must be available, or in-use when forced.
func (s *Service) CreateSnapshot(_ context.Context, auth compute.VolumeAuth, req compute.SnapshotCreate) (*compute.SnapshotInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.step("snapshot-create", req.VolumeID, auth)
	if err != nil {
		return nil, err
	}
	if v.Status != "available" && !(v.Status == "in-use" && req.Force) {
		return nil, invalid("Volume %s status must be available, or in-use with force, but current status is: %s.", v.ID, v.Status)
	}
	s.seq++
	sn := &Snapshot{ID: uuid.NewString(), VolumeID: v.ID, Project: v.Project, Name: req.Name, Description: req.Description,
		Status: "available", Size: v.Size, CreatedAt: time.Now().UTC().Format("2006-01-02T15:04:05.000000"), seq: s.seq}
	s.snapshots[sn.ID] = sn
	return snapshotInfo(sn), nil
}

// DeleteSnapshot implements compute.VolumeService: an available or
// failed snapshot goes at once; one in another state is refused.
func (s *Service) DeleteSnapshot(_ context.Context, auth compute.VolumeAuth, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.snapshotStep("snapshot-delete", id, auth)
	if err != nil {
		return err
	}
	if sn.Status != "available" && sn.Status != "error" {
		return &compute.VolumeError{Status: 400, Message: "Invalid snapshot: Volume Snapshot status must be available or error, but current status is: " + sn.Status + "."}
	}
	delete(s.snapshots, id)
	return nil
}
