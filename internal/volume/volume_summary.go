package volume

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// volumeSummary serves GET /volumes/summary (3.12): how many volumes the
// project has and their total size, every project's for an admin with
// all_tenants. From 3.36 it also lists, per metadata key, the distinct
// values the volumes carry. Like Cinder's, it takes no other filter.
func (s *Service) volumeSummary(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "volume:get_all", c.project); err != nil {
		return nil, err
	}
	query := `SELECT ` + volumeCols + ` FROM volume_volumes`
	var args []any
	if !(c.admin && isTrue(r.URL.Query().Get("all_tenants"))) {
		query, args = query+` WHERE project_id = ?`, append(args, c.project)
	}
	rows, err := store.QueryAll(ctx, s.db, scanVolume, query, args...)
	if err != nil {
		return nil, fmt.Errorf("volume summary: %w", err)
	}
	size := 0
	values := map[string]map[string]bool{}
	for _, v := range rows {
		size += v.Size
		for k, val := range v.Metadata {
			if values[k] == nil {
				values[k] = map[string]bool{}
			}
			values[k][val] = true
		}
	}
	sum := map[string]any{"total_size": size, "total_count": len(rows)}
	if atLeast(r, 36) {
		meta := map[string][]string{}
		for k, vals := range values {
			for val := range vals {
				meta[k] = append(meta[k], val)
			}
			sort.Strings(meta[k])
		}
		sum["metadata"] = meta
	}
	return api.JSON(http.StatusOK, map[string]any{"volume-summary": sum}), nil
}
