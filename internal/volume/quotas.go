package volume

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// defaultQuotas are Cinder's default limits; -1 is unlimited.
var defaultQuotas = map[string]int{
	"volumes": 10, "snapshots": 10, "gigabytes": 1000, "backups": 10, "backup_gigabytes": 1000,
	"groups": 10, "per_volume_gigabytes": -1,
}

// quotaOrder is the order of quota keys in errors and tests.
var quotaOrder = []string{"volumes", "snapshots", "gigabytes", "backups", "backup_gigabytes", "groups", "per_volume_gigabytes"}

// usage is what a project holds now. Usage is counted from the rows
// themselves, in the transaction that writes, so it cannot drift.
type usage struct{ volumes, snapshots, gigabytes, backups, backupGigabytes int }

func projectUsage(ctx context.Context, q store.Querier, project string) (usage, error) {
	var u usage
	var vgb, sgb int
	if err := q.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM volume_volumes WHERE project_id = ?`, project).Scan(&u.volumes, &vgb); err != nil {
		return u, fmt.Errorf("volume usage of %s: %w", project, err)
	}
	if err := q.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM volume_snapshots WHERE project_id = ?`, project).Scan(&u.snapshots, &sgb); err != nil {
		return u, fmt.Errorf("snapshot usage of %s: %w", project, err)
	}
	u.gigabytes = vgb + sgb
	if err := q.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM volume_backups WHERE project_id = ?`, project).Scan(&u.backups, &u.backupGigabytes); err != nil {
		return u, fmt.Errorf("backup usage of %s: %w", project, err)
	}
	return u, nil
}

// classPrefix marks the rows of volume_quotas that hold a quota class's
// limits (only the "default" class is applied, as in Cinder) instead of a
// project's.
const classPrefix = "class:"

// limits returns the project's effective limits: its own, else the
// default class's, else the configured defaults, else Cinder's. Per-type
// keys (volumes_<type>, ...) appear only when set.
func (s *Service) limits(ctx context.Context, q store.Querier, project string) (map[string]int, error) {
	out, err := s.classLimits(ctx, q, "default")
	if err != nil {
		return nil, err
	}
	if err := readLimits(ctx, q, project, out); err != nil {
		return nil, err
	}
	return out, nil
}

// classLimits are the limits of a quota class over the built-in ones.
func (s *Service) classLimits(ctx context.Context, q store.Querier, class string) (map[string]int, error) {
	out := s.defaultLimits()
	if err := readLimits(ctx, q, classPrefix+class, out); err != nil {
		return nil, err
	}
	return out, nil
}

// readLimits overlays the stored limits of owner (a project, or a
// class under classPrefix) on out.
func readLimits(ctx context.Context, q store.Querier, owner string, out map[string]int) error {
	rows, err := q.Query(ctx, `SELECT resource, hard_limit FROM volume_quotas WHERE project_id = ?`, owner)
	if err != nil {
		return fmt.Errorf("quotas of %s: %w", owner, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v int
		if err := rows.Scan(&k, &v); err != nil {
			return fmt.Errorf("quotas of %s: %w", owner, err)
		}
		out[k] = v
	}
	return rows.Err()
}

func (s *Service) defaultLimits() map[string]int {
	out := make(map[string]int, len(defaultQuotas))
	for k, v := range defaultQuotas {
		out[k] = v
	}
	for k, v := range s.cfg.Quotas {
		out[k] = v
	}
	return out
}

// checkQuota refuses, with Cinder's 413, a change that would take the
// project over a limit. It runs in the writing transaction, under a
// per-project lock, so concurrent creates cannot both slip under.
func (s *Service) checkQuota(ctx context.Context, tx *store.Tx, project string, dVolumes, dSnapshots, dGB, volumeSize int) error {
	if err := store.LockKey(ctx, tx, "volume-quota:"+project); err != nil {
		return err
	}
	lim, err := s.limits(ctx, tx, project)
	if err != nil {
		return err
	}
	if p := lim["per_volume_gigabytes"]; p >= 0 && volumeSize > p {
		return api.BadRequest("Invalid input received: The size of the volume (%dG) exceeds the allowed maximum of %dG per volume.", volumeSize, p)
	}
	u, err := projectUsage(ctx, tx, project)
	if err != nil {
		return err
	}
	over := func(res string, used, delta int) bool {
		l := lim[res]
		return delta > 0 && l >= 0 && used+delta > l
	}
	switch {
	case over("volumes", u.volumes, dVolumes):
		return api.Errorf(http.StatusRequestEntityTooLarge, "VolumeLimitExceeded: Maximum number of volumes allowed (%d) exceeded for quota 'volumes'.", lim["volumes"])
	case over("snapshots", u.snapshots, dSnapshots):
		return api.Errorf(http.StatusRequestEntityTooLarge, "SnapshotLimitExceeded: Maximum number of snapshots allowed (%d) exceeded.", lim["snapshots"])
	case over("gigabytes", u.gigabytes, dGB):
		return api.Errorf(http.StatusRequestEntityTooLarge, "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested %dG, quota is %dG and %dG has been consumed.",
			dGB, lim["gigabytes"], u.gigabytes)
	}
	return nil
}

// checkBackupQuota refuses, with Cinder's 413, backups that would take
// the project over its backups or backup_gigabytes limit; like
// checkQuota it runs in the writing transaction under the project lock.
func (s *Service) checkBackupQuota(ctx context.Context, tx *store.Tx, project string, dBackups, dGB int) error {
	if err := store.LockKey(ctx, tx, "volume-quota:"+project); err != nil {
		return err
	}
	lim, err := s.limits(ctx, tx, project)
	if err != nil {
		return err
	}
	u, err := projectUsage(ctx, tx, project)
	if err != nil {
		return err
	}
	if l := lim["backups"]; dBackups > 0 && l >= 0 && u.backups+dBackups > l {
		return api.Errorf(http.StatusRequestEntityTooLarge, "BackupLimitExceeded: Maximum number of backups allowed (%d) exceeded.", l)
	}
	if l := lim["backup_gigabytes"]; dGB > 0 && l >= 0 && u.backupGigabytes+dGB > l {
		return api.Errorf(http.StatusRequestEntityTooLarge, "VolumeBackupSizeExceedsAvailableQuota: Requested backup size exceeds allowed Backup gigabytes quota. Requested %dG, quota is %dG and %dG has been consumed.",
			dGB, l, u.backupGigabytes)
	}
	return nil
}

// quotaSet renders a project's quotas, with the per-type keys of every
// volume type, or their usage when withUsage.
func (s *Service) quotaSet(ctx context.Context, project string, lim map[string]int, withUsage bool) (map[string]any, error) {
	out := map[string]any{}
	var u usage
	if withUsage {
		var err error
		if u, err = projectUsage(ctx, s.db, project); err != nil {
			return nil, err
		}
	}
	inUse := map[string]int{"volumes": u.volumes, "snapshots": u.snapshots, "gigabytes": u.gigabytes,
		"backups": u.backups, "backup_gigabytes": u.backupGigabytes}
	for _, k := range quotaOrder {
		if withUsage {
			out[k] = map[string]any{"limit": lim[k], "in_use": inUse[k], "reserved": 0}
		} else {
			out[k] = lim[k]
		}
	}
	names, err := s.typeNames(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		for _, res := range []string{"volumes", "gigabytes", "snapshots"} {
			l, ok := lim[res+"_"+name]
			if !ok {
				l = -1
			}
			if withUsage {
				out[res+"_"+name] = map[string]any{"limit": l, "in_use": 0, "reserved": 0}
			} else {
				out[res+"_"+name] = l
			}
		}
	}
	return out, nil
}

func (s *Service) showQuotas(r *http.Request) (*api.Response, error) {
	project := r.PathValue("target_project")
	c := s.caller(r)
	if !c.admin && project != c.project {
		return nil, api.Forbidden("Policy doesn't allow volume_extension:quotas:show to be performed.")
	}
	lim, err := s.limits(r.Context(), s.db, project)
	if err != nil {
		return nil, err
	}
	withUsage := strings.EqualFold(r.URL.Query().Get("usage"), "true")
	qs, err := s.quotaSet(r.Context(), project, lim, withUsage)
	if err != nil {
		return nil, err
	}
	qs["id"] = project
	return api.JSON(http.StatusOK, map[string]any{"quota_set": qs}), nil
}

func (s *Service) showQuotaDefaults(r *http.Request) (*api.Response, error) {
	lim, err := s.classLimits(r.Context(), s.db, "default")
	if err != nil {
		return nil, err
	}
	qs, err := s.quotaSet(r.Context(), "", lim, false)
	if err != nil {
		return nil, err
	}
	qs["id"] = r.PathValue("target_project")
	return api.JSON(http.StatusOK, map[string]any{"quota_set": qs}), nil
}

func (s *Service) updateQuotas(r *http.Request) (*api.Response, error) {
	project := r.PathValue("target_project")
	set, err := s.quotaBody(r, "quota_set")
	if err != nil {
		return nil, err
	}
	if err := s.storeLimits(r.Context(), project, set); err != nil {
		return nil, err
	}
	lim, err := s.limits(r.Context(), s.db, project)
	if err != nil {
		return nil, err
	}
	qs, err := s.quotaSet(r.Context(), project, lim, false)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"quota_set": qs}), nil
}

// quotaBody reads {"<envelope>": {resource: limit}}: Cinder's resources
// and the per-type ones of existing types, with integer limits of -1 or
// more. Anything else is a 400 and nothing is stored.
func (s *Service) quotaBody(r *http.Request, envelope string) (map[string]int, error) {
	var body map[string]map[string]any
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in, ok := body[envelope]
	if !ok || in == nil || len(body) != 1 {
		return nil, api.BadRequest("Missing required element '%s' in request body.", envelope)
	}
	names, err := s.typeNames(r.Context())
	if err != nil {
		return nil, err
	}
	perType := map[string]bool{}
	for _, n := range names {
		for _, res := range []string{"volumes_", "gigabytes_", "snapshots_"} {
			perType[res+n] = true
		}
	}
	set := map[string]int{}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "tenant_id" || k == "id" {
			continue
		}
		if _, ok := defaultQuotas[k]; !ok && !perType[k] {
			return nil, api.BadRequest("Bad key(s) in quota set: %s", k)
		}
		n, ok := quotaValue(in[k])
		if !ok || n < -1 {
			return nil, api.BadRequest("Quota value for key '%s' must be an integer of -1 or more.", k)
		}
		set[k] = n
	}
	return set, nil
}

// storeLimits writes the limits of owner in one transaction.
func (s *Service) storeLimits(ctx context.Context, owner string, set map[string]int) error {
	return s.writeTx(ctx, func(tx *store.Tx) error {
		for k, v := range set {
			if _, err := tx.Exec(ctx, `INSERT INTO volume_quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)
				ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit`, owner, k, v); err != nil {
				return fmt.Errorf("set quota %s of %s: %w", k, owner, err)
			}
		}
		return nil
	})
}

func (s *Service) showQuotaClass(r *http.Request) (*api.Response, error) {
	class := r.PathValue("class_name")
	lim, err := s.classLimits(r.Context(), s.db, class)
	if err != nil {
		return nil, err
	}
	qs, err := s.quotaSet(r.Context(), "", lim, false)
	if err != nil {
		return nil, err
	}
	qs["id"] = class
	return api.JSON(http.StatusOK, map[string]any{"quota_class_set": qs}), nil
}

func (s *Service) updateQuotaClass(r *http.Request) (*api.Response, error) {
	class := r.PathValue("class_name")
	if class == "" || len(class) > 255 {
		return nil, api.BadRequest("Invalid quota class name.")
	}
	set, err := s.quotaBody(r, "quota_class_set")
	if err != nil {
		return nil, err
	}
	if err := s.storeLimits(r.Context(), classPrefix+class, set); err != nil {
		return nil, err
	}
	lim, err := s.classLimits(r.Context(), s.db, class)
	if err != nil {
		return nil, err
	}
	qs, err := s.quotaSet(r.Context(), "", lim, false)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"quota_class_set": qs}), nil
}

// quotaValue takes an integer, or a string of one, as Cinder does.
func quotaValue(v any) (int, bool) {
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) {
			return 0, false
		}
		return int(x), true
	case string:
		n, ok := parseIntStrict(x)
		return n, ok
	}
	return 0, false
}

func (s *Service) deleteQuotas(r *http.Request) (*api.Response, error) {
	if _, err := s.db.Exec(r.Context(), `DELETE FROM volume_quotas WHERE project_id = ?`, r.PathValue("target_project")); err != nil {
		return nil, fmt.Errorf("delete quotas: %w", err)
	}
	return api.JSON(http.StatusOK, nil), nil
}

// showLimits answers /limits: the absolute limits and usage of the
// caller's project (rate limits are not enforced, so none are listed).
func (s *Service) showLimits(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	lim, err := s.limits(r.Context(), s.db, c.project)
	if err != nil {
		return nil, err
	}
	u, err := projectUsage(r.Context(), s.db, c.project)
	if err != nil {
		return nil, err
	}
	abs := map[string]any{
		"maxTotalVolumes": lim["volumes"], "maxTotalSnapshots": lim["snapshots"], "maxTotalVolumeGigabytes": lim["gigabytes"],
		"maxTotalBackups": lim["backups"], "maxTotalBackupGigabytes": lim["backup_gigabytes"],
		"totalVolumesUsed": u.volumes, "totalGigabytesUsed": u.gigabytes, "totalSnapshotsUsed": u.snapshots,
		"totalBackupsUsed": u.backups, "totalBackupGigabytesUsed": u.backupGigabytes,
	}
	return api.JSON(http.StatusOK, map[string]any{"limits": map[string]any{"rate": []any{}, "absolute": abs}}), nil
}
