package network

import (
	"context"
	"fmt"
	"slices"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// PortStatusReport is what a host's agent says after applying its state:
// the ports it has wired on the host (their taps exist and sit on their
// networks' bridges with their filters), as Neutron's L2 agent reports
// devices up and down.
type PortStatusReport struct {
	Host string
	Up   []string
}

// ReportPortStatus marks the reported ports of a host ACTIVE and the
// host's other bound ports that were ACTIVE DOWN (unplugged since). Ports
// whose administrative state is down stay DOWN whatever the agent says.
// Ports the service itself owns (network:*) keep their status: the
// control plane sets it. It returns the ids whose status changed.
func (s *Service) ReportPortStatus(ctx context.Context, rep PortStatusReport) ([]string, error) {
	if rep.Host == "" {
		return nil, fmt.Errorf("report port status: host is required")
	}
	up := map[string]bool{}
	for _, id := range rep.Up {
		up[id] = true
	}
	var changed []string
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		changed = changed[:0]
		type row struct {
			id, status string
			admin      bool
		}
		var rows []row
		scan := func(sc store.Scanner) (row, error) {
			var r row
			var admin int
			err := sc.Scan(&r.id, &r.status, &admin)
			r.admin = admin != 0
			return r, err
		}
		// The host's bound ports, and the reported ones wherever bound
		// (a port moving between hosts is reported by its new host first).
		bound, err := store.QueryAll(ctx, tx, scan, `SELECT id, status, admin_state_up FROM ports
			WHERE binding_host_id = ? AND device_owner NOT LIKE 'network:%'`, rep.Host)
		if err != nil {
			return err
		}
		rows = append(rows, bound...)
		err = forChunks(rep.Up, func(_ []string, in string, args []any) error {
			more, err := store.QueryAll(ctx, tx, scan, `SELECT id, status, admin_state_up FROM ports
				WHERE id IN `+in+` AND device_owner NOT LIKE 'network:%'`, args...)
			rows = append(rows, more...)
			return err
		})
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, r := range rows {
			if seen[r.id] {
				continue
			}
			seen[r.id] = true
			want := "DOWN"
			if up[r.id] && r.admin {
				want = "ACTIVE"
			}
			if want == r.status {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE ports SET status = ? WHERE id = ?`, want, r.id); err != nil {
				return err
			}
			if err := bump(ctx, tx, "ports", r.id); err != nil {
				return err
			}
			changed = append(changed, r.id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report port status of host %s: %w", rep.Host, err)
	}
	slices.Sort(changed)
	return changed, nil
}
