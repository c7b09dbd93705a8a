package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// errQuota marks over-quota answers, so that data errors pass them through.
var errQuota = errors.New("over quota")

// usage is one project's consumption of the quota resources.
type usage struct {
	images    int64 // image_count_total
	bytes     int64 // image_size_total: data of its images
	staging   int64 // image_stage_total: data staged for import
	uploading int64 // image_count_uploading: uploads and imports under way
}

// projectUsage adds up what a project uses. Staged data is measured on
// disk: it is what the staging area really holds.
func (s *Service) projectUsage(ctx context.Context, project string) (usage, error) {
	var u usage
	err := s.db.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0),
		COALESCE(SUM(CASE WHEN status IN ('saving', 'uploading', 'importing') THEN 1 ELSE 0 END), 0)
		FROM images WHERE owner = ?`, project).Scan(&u.images, &u.bytes, &u.uploading)
	if err != nil {
		return u, fmt.Errorf("image usage of %s: %w", project, err)
	}
	rows, err := s.db.Query(ctx, `SELECT id FROM images WHERE owner = ? AND status IN ('uploading', 'importing')`, project)
	if err != nil {
		return u, fmt.Errorf("staged images of %s: %w", project, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return u, err
		}
		if fi, err := os.Stat(s.stagedPath(id)); err == nil {
			u.staging += fi.Size()
		}
	}
	return u, rows.Err()
}

// overLimit is the 413 Glance answers with when unified limits refuse.
func overLimit(project, resource string, limit, current, delta int64) error {
	e := api.Errorf(http.StatusRequestEntityTooLarge,
		"Project %s is over a limit for [Resource %s is over limit of %d due to current usage %d and delta %d]",
		project, resource, limit, current, delta)
	return fmt.Errorf("%w: %w", errQuota, e)
}

// checkImageCount refuses a new image beyond the project's image count.
func (s *Service) checkImageCount(ctx context.Context, project string) error {
	if s.cfg.Quota.Images <= 0 {
		return nil
	}
	u, err := s.projectUsage(ctx, project)
	if err != nil {
		return err
	}
	if u.images+1 > s.cfg.Quota.Images {
		return overLimit(project, "image_count_total", s.cfg.Quota.Images, u.images, 1)
	}
	return nil
}

// dataAllowance returns how many bytes of image data the project may
// still store, bounded by the size cap; a declared length (>= 0) beyond
// it, or a project already at its limits, is refused at once. Uploads
// are cut off at the allowance while they stream, so a client that
// declares nothing still cannot overrun the quota.
func (s *Service) dataAllowance(ctx context.Context, project string, declared int64) (int64, error) {
	limit := s.cfg.MaxImageSize
	if declared > limit {
		return 0, api.Errorf(http.StatusRequestEntityTooLarge, "Image exceeds the storage quota of %d bytes.", limit)
	}
	q := s.cfg.Quota
	if q.Bytes <= 0 && q.Uploading <= 0 {
		return limit, nil
	}
	u, err := s.projectUsage(ctx, project)
	if err != nil {
		return 0, err
	}
	if q.Uploading > 0 && u.uploading+1 > q.Uploading {
		return 0, overLimit(project, "image_count_uploading", q.Uploading, u.uploading, 1)
	}
	if q.Bytes > 0 {
		left := q.Bytes - u.bytes
		if left <= 0 || declared > left {
			return 0, overLimit(project, "image_size_total", q.Bytes>>20, u.bytes>>20, max(declared, 0)>>20)
		}
		limit = min(limit, left)
	}
	return limit, nil
}

// stagingAllowance is dataAllowance for the staging area.
func (s *Service) stagingAllowance(ctx context.Context, project string, declared int64) (int64, error) {
	limit, err := s.dataAllowance(ctx, project, declared)
	if err != nil || s.cfg.Quota.Staging <= 0 {
		return limit, err
	}
	u, err := s.projectUsage(ctx, project)
	if err != nil {
		return 0, err
	}
	left := s.cfg.Quota.Staging - u.staging
	if left <= 0 || declared > left {
		return 0, overLimit(project, "image_stage_total", s.cfg.Quota.Staging>>20, u.staging>>20, max(declared, 0)>>20)
	}
	return min(limit, left), nil
}

// infoUsage reports the caller project's usage against its limits as
// Glance's /v2/info/usage does: sizes in MiB, -1 for unlimited.
func (s *Service) infoUsage(r *http.Request) (*api.Response, error) {
	u, err := s.projectUsage(r.Context(), projectOf(r))
	if err != nil {
		return nil, err
	}
	limit := func(n int64) int64 {
		if n <= 0 {
			return -1
		}
		return n
	}
	mib := func(n int64) int64 {
		if n <= 0 {
			return -1
		}
		return n >> 20
	}
	entry := func(lim, use int64) map[string]any { return map[string]any{"limit": lim, "usage": use} }
	q := s.cfg.Quota
	return api.JSON(http.StatusOK, map[string]any{"usage": map[string]any{
		"image_size_total":      entry(mib(q.Bytes), u.bytes>>20),
		"image_stage_total":     entry(mib(q.Staging), u.staging>>20),
		"image_count_total":     entry(limit(q.Images), u.images),
		"image_count_uploading": entry(limit(q.Uploading), u.uploading),
	}}), nil
}

// stagedPath is where an image's staged data lives once complete.
func (s *Service) stagedPath(imageID string) string {
	return filepath.Join(s.cfg.StagingDir, imageID)
}
