package compute

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// errNoValidHost is the scheduler's answer when no host passes the filters.
var errNoValidHost = errors.New("no valid host was found")

// request is what the scheduler places: the resources of one server and
// the constraints on where it may go.
type request struct {
	InstanceID string
	VCPUs      int
	MemoryMB   int
	DiskGB     int
	// Zone is the requested availability zone; "" is any.
	Zone string
	// ForceHost pins the server to a host (admins: "zone:host", 2.74 host).
	ForceHost string
	// ImageProps filter on architecture and hypervisor type.
	ImageProps map[string]string
	// GroupID is the server group the server is a member of.
	GroupID string
	// Exclude lists hosts already tried for this build.
	Exclude map[string]bool
	// Include, when not empty, limits the candidates (resize to the same host).
	Include map[string]bool
}

// candidate is a host with its free capacity as filters see it.
type candidate struct {
	// A pointer, not a copy of each row: a claim weighs every host.
	*host
	freeVCPU, freeRAM, freeDisk float64
	capVCPU, capRAM             float64
	groupMembers                int
}

// claim picks a host for req and records the allocation in the same
// transaction. Claims are serialised (SQLite holds the write lock for the
// whole transaction; PostgreSQL takes an advisory lock), and the chosen
// host's row and usage are read again from the database inside that
// serialisation before the allocation is written, so two concurrent
// boots can never both take the last room on a host. The candidates come
// from the host cache (see hostCache), so a claim does not read every
// host and every allocation.
func (s *Service) claim(ctx context.Context, tx *store.Tx, kind string, req request) (string, error) {
	if err := store.LockKey(ctx, tx, "compute-claims"); err != nil {
		return "", err
	}
	policy, members, err := s.groupPlacement(ctx, tx, req.GroupID, req.InstanceID)
	if err != nil {
		return "", err
	}
	c := hostCacheOf(s.db)
	c.mu.Lock()
	defer c.mu.Unlock()
	reloaded, err := c.fresh(ctx, s, tx)
	if err != nil {
		return "", err
	}
	// Hosts found unfit by their database rows; each turn of the loop
	// adds one or reloads once, so it ends.
	rejected := map[string]bool{}
	for {
		cands := make([]candidate, 0, len(c.hosts))
		for n := range c.hosts {
			h := &c.hosts[n]
			if rejected[h.Host] {
				continue
			}
			if cand, ok := s.fits(h, c.used[h.Host], req, policy, members); ok {
				cands = append(cands, cand)
			}
		}
		if len(cands) == 0 {
			if reloaded {
				return "", errNoValidHost
			}
			// The view may lack a host that registered, came back up or
			// has room again since it was loaded.
			if err := c.reload(ctx, s, tx); err != nil {
				return "", err
			}
			reloaded = true
			continue
		}
		chosen := s.weigh(cands, req, policy)
		h, u, ok, err := c.recheck(ctx, tx, chosen.Host)
		if err != nil {
			return "", err
		}
		if _, fit := s.fits(&h, u, req, policy, members); !ok || !fit {
			rejected[chosen.Host] = true
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO compute_allocations (instance_id, kind, host, vcpus, memory_mb, disk_gb, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			req.InstanceID, kind, h.Host, req.VCPUs, req.MemoryMB, req.DiskGB, store.FormatTime(now())); err != nil {
			return "", fmt.Errorf("claim on %s: %w", h.Host, err)
		}
		// Re-summed at the next claim: this transaction may yet roll back.
		c.dirty[h.Host] = true
		return h.Host, nil
	}
}

// fits applies the filters to a host with its usage: the host as a
// candidate, and whether it passes and has room for req.
func (s *Service) fits(h *host, u usage, req request, policy string, members map[string]int) (candidate, bool) {
	if !s.passes(h, req, policy, members) {
		return candidate{}, false
	}
	c := candidate{host: h,
		capVCPU:      float64(h.VCPUs) * h.CPURatio,
		capRAM:       float64(h.MemoryMB) * h.RAMRatio,
		groupMembers: members[h.Host],
	}
	c.freeVCPU = c.capVCPU - float64(u.VCPUs)
	c.freeRAM = c.capRAM - float64(u.MemoryMB)
	c.freeDisk = float64(h.LocalGB)*h.DiskRatio - float64(u.DiskGB)
	ok := c.freeVCPU >= float64(req.VCPUs) && c.freeRAM >= float64(req.MemoryMB) && c.freeDisk >= float64(req.DiskGB)
	return c, ok
}

// passes applies the filters that do not depend on usage.
func (s *Service) passes(h *host, req request, policy string, members map[string]int) bool {
	switch {
	case h.Disabled && req.ForceHost == "", !s.up(*h):
		return false // ComputeFilter: enabled (unless forced) and up
	case req.Exclude[h.Host], len(req.Include) > 0 && !req.Include[h.Host]:
		return false
	case req.ForceHost != "" && req.ForceHost != h.Host:
		return false
	case req.Zone != "" && req.Zone != h.Zone:
		return false // AvailabilityZoneFilter
	}
	// ImagePropertiesFilter.
	if arch := firstProp(req.ImageProps, "hw_architecture", "architecture"); arch != "" && h.Arch != "" && !strings.EqualFold(arch, h.Arch) {
		return false
	}
	if hv := firstProp(req.ImageProps, "img_hv_type", "hypervisor_type"); hv != "" && !strings.EqualFold(hv, h.HypervisorType) {
		return false
	}
	// Server group filters; the soft variants only weigh.
	switch policy {
	case "affinity":
		if len(members) > 0 && members[h.Host] == 0 {
			return false
		}
	case "anti-affinity":
		if members[h.Host] > 0 {
			return false
		}
	}
	return true
}

func firstProp(props map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := props[k]; v != "" {
			return v
		}
	}
	return ""
}

// weigh picks among the candidates by the configured strategy. Soft
// affinity and soft anti-affinity come first for every strategy, as
// Nova's group weighers are heavier than its resource weighers.
func (s *Service) weigh(cands []candidate, req request, policy string) candidate {
	switch policy {
	case "soft-affinity":
		best := cands[0].groupMembers
		for _, c := range cands {
			best = max(best, c.groupMembers)
		}
		cands = keep(cands, func(c candidate) bool { return c.groupMembers == best })
	case "soft-anti-affinity":
		best := cands[0].groupMembers
		for _, c := range cands {
			best = min(best, c.groupMembers)
		}
		cands = keep(cands, func(c candidate) bool { return c.groupMembers == best })
	}
	switch s.cfg.Scheduler {
	case StrategyRandom:
		return cands[rand.IntN(len(cands))]
	case StrategyAZ:
		if req.Zone == "" {
			// No zone asked for: stay in the default zone when it has room,
			// so servers without a zone do not scatter over special ones.
			if def := keep(cands, func(c candidate) bool { return c.Zone == s.cfg.DefaultAvailabilityZone }); len(def) > 0 {
				cands = def
			}
		}
		return cands[rand.IntN(len(cands))]
	}
	// least-loaded: the most free RAM and vCPUs, each normalised by the
	// largest free amount among candidates, as Nova's weighers normalise.
	maxRAM, maxCPU := 0.0, 0.0
	for _, c := range cands {
		maxRAM, maxCPU = max(maxRAM, c.freeRAM), max(maxCPU, c.freeVCPU)
	}
	score := func(c candidate) float64 {
		v := 0.0
		if maxRAM > 0 {
			v += c.freeRAM / maxRAM
		}
		if maxCPU > 0 {
			v += c.freeVCPU / maxCPU
		}
		return v
	}
	// The best score wins, the lowest host name among equals; one pass,
	// as a claim may weigh a thousand hosts.
	best, bestScore := cands[0], score(cands[0])
	for _, c := range cands[1:] {
		if sc := score(c); sc > bestScore || (sc == bestScore && c.Host < best.Host) {
			best, bestScore = c, sc
		}
	}
	return best
}

func keep[T any](in []T, ok func(T) bool) []T {
	var out []T
	for _, v := range in {
		if ok(v) {
			out = append(out, v)
		}
	}
	return out
}

// groupPlacement returns a server group's policy and how many of its
// other members each host holds.
func (s *Service) groupPlacement(ctx context.Context, q store.Querier, groupID, self string) (string, map[string]int, error) {
	members := map[string]int{}
	if groupID == "" {
		return "", members, nil
	}
	var policy string
	if err := q.QueryRow(ctx, `SELECT policy FROM compute_server_groups WHERE id = ?`, groupID).Scan(&policy); err != nil {
		if isNoRows(err) {
			return "", members, nil
		}
		return "", nil, fmt.Errorf("server group %s: %w", groupID, err)
	}
	rows, err := q.Query(ctx, `SELECT a.host FROM compute_server_group_members m
		JOIN compute_allocations a ON a.instance_id = m.instance_id
		WHERE m.group_id = ? AND m.instance_id <> ?`, groupID, self)
	if err != nil {
		return "", nil, fmt.Errorf("server group %s members: %w", groupID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return "", nil, err
		}
		members[h]++
	}
	return policy, members, rows.Err()
}

// release drops an instance's allocations of a kind ("" for all).
func release(ctx context.Context, q store.Querier, instanceID, kind string) error {
	var err error
	if kind == "" {
		_, err = q.Exec(ctx, `DELETE FROM compute_allocations WHERE instance_id = ?`, instanceID)
	} else {
		_, err = q.Exec(ctx, `DELETE FROM compute_allocations WHERE instance_id = ? AND kind = ?`, instanceID, kind)
	}
	if err != nil {
		return fmt.Errorf("release claim of %s: %w", instanceID, err)
	}
	// Host caches reload their usage before the next claim. Counted even
	// if the transaction rolls back: a needless reload costs little.
	allocReleases.Add(1)
	return nil
}
