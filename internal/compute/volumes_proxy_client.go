package compute

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
)

// The VolumeClient calls behind Nova's volume proxy (/os-volumes,
// /os-snapshots): Cinder's documented list, show, create and delete
// endpoints under /v3/{project}.

// cinderPageSize is the page size asked of Cinder's lists: under its
// osapi_max_limit (1000), and small enough that a page of detailed
// volumes stays well inside the 4 MiB a client answer may take.
const cinderPageSize = 500

// cinderSnapshot is the part of Cinder's snapshot body the proxy shows.
type cinderSnapshot struct {
	ID          string `json:"id"`
	VolumeID    string `json:"volume_id"`
	Status      string `json:"status"`
	Size        int    `json:"size"`
	Name        string `json:"name"`
	Description string `json:"description"`
	CreatedAt   string `json:"created_at"`
}

func (s cinderSnapshot) info() *SnapshotInfo {
	return &SnapshotInfo{ID: s.ID, VolumeID: s.VolumeID, Status: s.Status, Size: s.Size, Name: s.Name, Description: s.Description, CreatedAt: s.CreatedAt}
}

// listAll reads every page of the Cinder list at path, whose rows are
// under key, moving the marker to the last row of each full page.
// Nova's proxy slices the whole list itself (offset, limit), so it needs
// all of it.
func listAll[T any](ctx context.Context, c *VolumeClient, auth VolumeAuth, path, key string, id func(T) string) ([]T, error) {
	var all []T
	marker := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(cinderPageSize)}}
		if marker != "" {
			q.Set("marker", marker)
		}
		var page map[string]json.RawMessage
		if err := c.call(ctx, auth, "GET", path+"?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		var rows []T
		if raw, ok := page[key]; ok {
			if err := json.Unmarshal(raw, &rows); err != nil {
				return nil, fmt.Errorf("decode %s: %w", key, err)
			}
		}
		all = append(all, rows...)
		if len(rows) < cinderPageSize {
			return all, nil
		}
		next := id(rows[len(rows)-1])
		if next == marker {
			return nil, fmt.Errorf("list %s: the volume service repeated the page after %s", key, marker)
		}
		marker = next
	}
}

// Volumes implements VolumeService.
func (c *VolumeClient) Volumes(ctx context.Context, auth VolumeAuth) ([]VolumeInfo, error) {
	rows, err := listAll(ctx, c, auth, "/volumes/detail", "volumes", func(v cinderVolume) string { return v.ID })
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	out := make([]VolumeInfo, 0, len(rows))
	for _, v := range rows {
		out = append(out, *v.info())
	}
	return out, nil
}

// Snapshots implements VolumeService.
func (c *VolumeClient) Snapshots(ctx context.Context, auth VolumeAuth) ([]SnapshotInfo, error) {
	rows, err := listAll(ctx, c, auth, "/snapshots/detail", "snapshots", func(s cinderSnapshot) string { return s.ID })
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := make([]SnapshotInfo, 0, len(rows))
	for _, s := range rows {
		out = append(out, *s.info())
	}
	return out, nil
}

// Snapshot implements VolumeService.
func (c *VolumeClient) Snapshot(ctx context.Context, auth VolumeAuth, id string) (*SnapshotInfo, error) {
	var out struct {
		Snapshot cinderSnapshot `json:"snapshot"`
	}
	if err := c.call(ctx, auth, "GET", "/snapshots/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return out.Snapshot.info(), nil
}

// CreateSnapshot implements VolumeService.
func (c *VolumeClient) CreateSnapshot(ctx context.Context, auth VolumeAuth, req SnapshotCreate) (*SnapshotInfo, error) {
	body := map[string]any{"volume_id": req.VolumeID, "force": req.Force}
	if req.Name != "" {
		body["name"] = req.Name
	}
	if req.Description != "" {
		body["description"] = req.Description
	}
	var out struct {
		Snapshot cinderSnapshot `json:"snapshot"`
	}
	if err := c.call(ctx, auth, "POST", "/snapshots", map[string]any{"snapshot": body}, &out); err != nil {
		return nil, fmt.Errorf("create snapshot of volume %s: %w", req.VolumeID, err)
	}
	return out.Snapshot.info(), nil
}

// DeleteSnapshot implements VolumeService.
func (c *VolumeClient) DeleteSnapshot(ctx context.Context, auth VolumeAuth, id string) error {
	if err := c.call(ctx, auth, "DELETE", "/snapshots/"+url.PathEscape(id), nil, nil); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return nil
}
