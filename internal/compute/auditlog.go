package compute

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// os-instance_usage_audit_log reports Nova's instance_usage_audit task,
// which Nova runs only with instance_usage_audit = True (off by default)
// and Nimbus does not run: every compute host is listed as not having run
// it for the last completed audit period (a month, Nova's default).

// auditPeriod is Nova's last_completed_audit_period for "month": from
// the first of the month before the one holding before, to the first of
// that month.
func auditPeriod(before time.Time) (begin, end time.Time) {
	before = before.UTC()
	end = time.Date(before.Year(), before.Month(), 1, 0, 0, 0, 0, time.UTC)
	return end.AddDate(0, -1, 0), end
}

func (s *Service) auditLog(r *http.Request, before time.Time) (map[string]any, error) {
	hosts, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, h := range hosts {
		names = append(names, h.Host)
	}
	sort.Strings(names)
	begin, end := auditPeriod(before)
	const layout = "2006-01-02 15:04:05"
	return map[string]any{
		"period_beginning": begin.Format(layout), "period_ending": end.Format(layout),
		"num_hosts": len(names), "num_hosts_done": 0, "num_hosts_running": 0, "num_hosts_not_run": len(names),
		"hosts_not_run": names, "total_instances": 0, "total_errors": 0,
		"overall_status": fmt.Sprintf("%d of %d hosts done. 0 errors.", 0, len(names)), "log": map[string]any{},
	}, nil
}

func (s *Service) listAuditLogs(r *http.Request) (*api.Response, error) {
	out, err := s.auditLog(r, now())
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"instance_usage_audit_logs": out}), nil
}

// showAuditLog takes the period before a timestamp "YYYY-MM-DD hh:mm:ss"
// (optionally with fractional seconds), as Nova.
func (s *Service) showAuditLog(r *http.Request) (*api.Response, error) {
	v := r.PathValue("before_timestamp")
	t, err := time.Parse("2006-01-02 15:04:05", v)
	if err != nil {
		if t, err = time.Parse("2006-01-02 15:04:05.999999", v); err != nil {
			return nil, api.BadRequest("Invalid timestamp for date %s", v)
		}
	}
	out, err := s.auditLog(r, t)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"instance_usage_audit_log": out}), nil
}
