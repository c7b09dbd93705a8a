package compute

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
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
	host
	freeVCPU, freeRAM, freeDisk float64
	capVCPU, capRAM             float64
	groupMembers                int
}

// claim picks a host for req and records the allocation in the same
// transaction. Claims are serialised (SQLite holds the write lock for the
// whole transaction; PostgreSQL takes an advisory lock), and usage is
// read inside that serialisation, so two concurrent boots can never both
// take the last room on a host.
func (s *Service) claim(ctx context.Context, tx *store.Tx, kind string, req request) (string, error) {
	if err := lockKey(ctx, tx, "compute-claims"); err != nil {
		return "", err
	}
	hosts, err := s.allHosts(ctx, tx)
	if err != nil {
		return "", err
	}
	used, err := s.hostUsage(ctx, tx)
	if err != nil {
		return "", err
	}
	policy, members, err := s.groupPlacement(ctx, tx, req.GroupID, req.InstanceID)
	if err != nil {
		return "", err
	}
	var cands []candidate
	for _, h := range hosts {
		if !s.passes(h, req, policy, members) {
			continue
		}
		u := used[h.Host]
		c := candidate{host: h,
			capVCPU:      float64(h.VCPUs) * h.CPURatio,
			capRAM:       float64(h.MemoryMB) * h.RAMRatio,
			groupMembers: members[h.Host],
		}
		c.freeVCPU = c.capVCPU - float64(u.VCPUs)
		c.freeRAM = c.capRAM - float64(u.MemoryMB)
		c.freeDisk = float64(h.LocalGB)*h.DiskRatio - float64(u.DiskGB)
		if c.freeVCPU < float64(req.VCPUs) || c.freeRAM < float64(req.MemoryMB) || c.freeDisk < float64(req.DiskGB) {
			continue
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return "", errNoValidHost
	}
	chosen := s.weigh(cands, req, policy)
	if _, err := tx.Exec(ctx, `INSERT INTO compute_allocations (instance_id, kind, host, vcpus, memory_mb, disk_gb, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		req.InstanceID, kind, chosen.Host, req.VCPUs, req.MemoryMB, req.DiskGB, store.FormatTime(now())); err != nil {
		return "", fmt.Errorf("claim on %s: %w", chosen.Host, err)
	}
	return chosen.Host, nil
}

// passes applies the filters that do not depend on usage.
func (s *Service) passes(h host, req request, policy string, members map[string]int) bool {
	switch {
	case h.Disabled && req.ForceHost == "", !s.up(h):
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
	sort.SliceStable(cands, func(i, j int) bool {
		si, sj := score(cands[i]), score(cands[j])
		if si != sj {
			return si > sj
		}
		return cands[i].Host < cands[j].Host
	})
	return cands[0]
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
	return nil
}
