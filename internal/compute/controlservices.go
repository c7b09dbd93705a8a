package compute

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Control-plane services. Nova lists its scheduler and conductor next to
// the compute hosts in os-services and os-hosts, in the zone "internal".
// The compute role is both here (the claim is the scheduler; the report
// writer and the reconcile loop do the conductor's work), so each compute
// API process keeps a row per binary for its host and beats it; a process
// that stopped shows its services down after the service down time, as a
// dead nova-scheduler would.

// controlBinaries are the control-plane services a compute API process
// runs, with the service name os-hosts gives each.
var controlBinaries = []struct{ binary, service string }{
	{"nova-scheduler", "scheduler"},
	{"nova-conductor", "conductor"},
}

// internalZone is where Nova puts services that are not compute hosts.
const internalZone = "internal"

// controlBeat is how often a compute API process beats its services.
const controlBeat = 10 * time.Second

type controlService struct {
	ID, Host, Binary, UpdatedAt string
	Seq                         int
}

// serviceHost is the host name this process's control services are
// listed under.
func serviceHost() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// beatControl records that this process's control services are alive,
// registering them on first use.
func (s *Service) beatControl(ctx context.Context) error {
	host, ts := serviceHost(), store.FormatTime(now())
	return s.writeTx(ctx, func(tx *store.Tx) error {
		for _, b := range controlBinaries {
			res, err := tx.Exec(ctx, `UPDATE compute_control_services SET updated_at = ? WHERE host = ? AND binary_name = ?`, ts, host, b.binary)
			if err != nil {
				return fmt.Errorf("beat %s: %w", b.binary, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				continue
			}
			seq, err := nextServiceSeq(ctx, tx)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO compute_control_services (id, seq, host, binary_name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
				newID(), seq, host, b.binary, ts, ts); err != nil {
				return fmt.Errorf("register %s: %w", b.binary, err)
			}
		}
		return nil
	})
}

// controlSeqBase starts the control services' ids (before 2.53 a service
// id is an integer). A compute host's seq is both its service id and its
// hypervisor id, counted from 1 as Nova's compute nodes are; control
// services count from here, so no two services share an id and the
// hypervisor ids stay as they were.
const controlSeqBase = 1 << 30

// nextServiceSeq is the next control service id.
func nextServiceSeq(ctx context.Context, tx *store.Tx) (int, error) {
	var seq int
	err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), ?) + 1 FROM compute_control_services`, controlSeqBase).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("next service id: %w", err)
	}
	return seq, nil
}

func (s *Service) controlServices(ctx context.Context, q store.Querier) ([]controlService, error) {
	return store.QueryAll(ctx, q, func(row store.Scanner) (controlService, error) {
		var c controlService
		err := row.Scan(&c.ID, &c.Seq, &c.Host, &c.Binary, &c.UpdatedAt)
		return c, err
	}, `SELECT id, seq, host, binary_name, updated_at FROM compute_control_services ORDER BY seq`)
}

// controlServiceView is a control service in os-services.
func (s *Service) controlServiceView(r *http.Request, c controlService) map[string]any {
	state := "up"
	if time.Since(parseTime(c.UpdatedAt)) >= s.cfg.ServiceDownTime {
		state = "down"
	}
	out := map[string]any{"id": c.Seq, "binary": c.Binary, "host": c.Host, "zone": internalZone, "status": "enabled",
		"state": state, "updated_at": isoMicro(parseTime(c.UpdatedAt)), "disabled_reason": nil}
	if at(r, 53) {
		out["id"] = c.ID
	}
	if at(r, 11) {
		out["forced_down"] = false
	}
	return out
}

// osHostsService is the os-hosts service name of a control binary.
func osHostsService(binary string) string {
	for _, b := range controlBinaries {
		if b.binary == binary {
			return b.service
		}
	}
	return binary
}
