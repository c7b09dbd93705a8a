package volume

import (
	"context"
	"fmt"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// storageHost is a row of volume_services: a storage host as its last
// heartbeat described it.
type storageHost struct {
	Host, Backend, Pool, Zone string
	TotalGB, FreeGB           float64
	ProvisionedGB, Ratio      float64
	Disabled                  bool
	DisabledReason            *string
	CreatedAt, UpdatedAt      string
}

const hostCols = `host, backend, pool, zone, total_gb, free_gb, provisioned_gb, max_over_subscription, disabled, disabled_reason, created_at, updated_at`

func scanHost(row store.Scanner) (*storageHost, error) {
	var h storageHost
	var dis int
	err := row.Scan(&h.Host, &h.Backend, &h.Pool, &h.Zone, &h.TotalGB, &h.FreeGB, &h.ProvisionedGB, &h.Ratio, &dis, &h.DisabledReason, &h.CreatedAt, &h.UpdatedAt)
	h.Disabled = dis == 1
	return &h, err
}

// up reports whether the host has beaten recently enough.
func (s *Service) up(h *storageHost) bool {
	return time.Since(parseTime(h.UpdatedAt)) < s.cfg.ServiceDownTime
}

// RecordHeartbeat stores a storage host's heartbeat.
func (s *Service) RecordHeartbeat(ctx context.Context, hb agentproto.Heartbeat) error {
	if !validHostName(hb.Host) {
		return fmt.Errorf("heartbeat: invalid host name %q", hb.Host)
	}
	if hb.Zone == "" {
		hb.Zone = s.cfg.DefaultAvailabilityZone
	}
	if hb.Backend == "" {
		hb.Backend = "file"
	}
	if hb.Pool == "" {
		hb.Pool = "default"
	}
	if hb.MaxOverSubscription < 1 {
		hb.MaxOverSubscription = 1
	}
	t := stamp()
	_, err := s.db.Exec(ctx, `INSERT INTO volume_services (host, backend, pool, zone, total_gb, free_gb, provisioned_gb, max_over_subscription, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (host) DO UPDATE SET backend = excluded.backend, pool = excluded.pool, zone = excluded.zone, total_gb = excluded.total_gb,
			free_gb = excluded.free_gb, provisioned_gb = excluded.provisioned_gb, max_over_subscription = excluded.max_over_subscription,
			updated_at = excluded.updated_at`,
		hb.Host, hb.Backend, hb.Pool, hb.Zone, hb.TotalGB, hb.FreeGB, hb.ProvisionedGB, hb.MaxOverSubscription, t, t)
	if err != nil {
		return fmt.Errorf("record heartbeat of %s: %w", hb.Host, err)
	}
	return s.reconcile(ctx, hb)
}

// validHostName keeps host names to what is safe in a NATS subject token
// and in Cinder's host@backend#pool.
func validHostName(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// pickHost chooses the storage host for a new volume of sizeGB in zone,
// in tx: among hosts that are up, enabled and in the zone, the one with
// the most free virtual capacity (the pool times its over-subscription
// ratio, less what the database has provisioned on it, so concurrent
// creates see each other's claims). nil when none fits, which sends the
// volume to error as Cinder's scheduler does.
func (s *Service) pickHost(ctx context.Context, tx *store.Tx, zone string, sizeGB int) (*storageHost, error) {
	if err := store.LockKey(ctx, tx, "volume-scheduler"); err != nil {
		return nil, err
	}
	hosts, err := store.QueryAll(ctx, tx, scanHost, `SELECT `+hostCols+` FROM volume_services WHERE zone = ? AND disabled = 0 ORDER BY host`, zone)
	if err != nil {
		return nil, fmt.Errorf("list storage hosts: %w", err)
	}
	var best *storageHost
	bestFree := 0.0
	for _, h := range hosts {
		if !s.up(h) {
			continue
		}
		var used float64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(size), 0) FROM volume_volumes WHERE host = ?`, h.Host).Scan(&used); err != nil {
			return nil, fmt.Errorf("provisioned size of %s: %w", h.Host, err)
		}
		var snaps float64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(size), 0) FROM volume_snapshots WHERE host = ?`, h.Host).Scan(&snaps); err != nil {
			return nil, fmt.Errorf("provisioned snapshots of %s: %w", h.Host, err)
		}
		free := h.TotalGB*h.Ratio - used - snaps
		if free < float64(sizeGB) {
			continue
		}
		if best == nil || free > bestFree {
			best, bestFree = h, free
		}
	}
	return best, nil
}

// loadHost reads one storage host; nil when unknown.
func (s *Service) loadHost(ctx context.Context, q store.Querier, host string) (*storageHost, error) {
	h, err := store.QueryOne(ctx, q, scanHost, `SELECT `+hostCols+` FROM volume_services WHERE host = ?`, host)
	if err == store.ErrNotFound {
		return nil, nil
	}
	return h, err
}

// zones lists the availability zones of known storage hosts, with the
// default zone always among them.
func (s *Service) zones(ctx context.Context) ([]string, error) {
	zs, err := store.QueryStrings(ctx, s.db, `SELECT DISTINCT zone FROM volume_services ORDER BY zone`)
	if err != nil {
		return nil, fmt.Errorf("list zones: %w", err)
	}
	if !containsStr(zs, s.cfg.DefaultAvailabilityZone) {
		zs = append([]string{s.cfg.DefaultAvailabilityZone}, zs...)
	}
	return zs, nil
}
