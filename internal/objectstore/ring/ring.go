package ring

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"iter"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// HashPath is the cluster secret mixed into every path hash, Swift's
// swift_hash_path_prefix and swift_hash_path_suffix. Every proxy and
// storage server of a cluster must use the same values, and they must never
// change once data is stored, or objects become unfindable.
type HashPath struct {
	Prefix string
	Suffix string
}

// table is one immutable loaded ring. Readers take a pointer to it once and
// see a consistent ring even while Reload swaps in a new one.
type table struct {
	buildVersion int
	partPower    int
	partShift    uint
	replicas     int
	devs         []Device       // sorted by id
	byID         map[int]int    // id → index into devs
	assign       [][]uint16     // [replica][partition] device id
	tiers        []handoffTiers // parallel to devs
}

// handoffTiers caches each device's failure domains as small integers so
// handoff selection compares ints, not strings.
type handoffTiers struct{ region, zone, host int }

// Ring maps names to partitions and partitions to devices. It is safe for
// concurrent use; Reload replaces the table atomically.
type Ring struct {
	hash HashPath
	path string
	cur  atomic.Pointer[table]

	mu   sync.Mutex  // serialises Reload
	stat os.FileInfo // guarded by mu: the file the current table came from
}

// Load reads a ring file written by Builder.WriteRing and validates it.
func Load(path string, hash HashPath) (*Ring, error) {
	r := &Ring{hash: hash, path: path}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the ring file if it changed since the last load (another
// inode, size or modification time), so servers pick up a pushed ring
// without restarting. On error the previous ring stays in use. It reports
// whether a new ring was loaded.
func (r *Ring) Reload() (bool, error) {
	if r.path == "" {
		return false, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fi, err := os.Stat(r.path)
	if err != nil {
		return false, fmt.Errorf("reload ring %s: %w", r.path, err)
	}
	if r.stat != nil && os.SameFile(r.stat, fi) && fi.ModTime().Equal(r.stat.ModTime()) && fi.Size() == r.stat.Size() {
		return false, nil
	}
	f, err := os.Open(r.path)
	if err != nil {
		return false, fmt.Errorf("reload ring: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the recorded identity matches
	// what was read even if the file is replaced meanwhile.
	if fi, err = f.Stat(); err != nil {
		return false, fmt.Errorf("reload ring %s: %w", r.path, err)
	}
	t, err := decodeRing(f)
	if err != nil {
		return false, fmt.Errorf("load ring %s: %w", r.path, err)
	}
	r.cur.Store(t)
	r.stat = fi
	return true, nil
}

// Path returns the file the ring was loaded from, empty for in-memory rings.
func (r *Ring) Path() string { return r.path }

// ModTime is the modification time of the loaded file.
func (r *Ring) ModTime() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stat == nil {
		return time.Time{}
	}
	return r.stat.ModTime()
}

// BuildVersion is the builder's rebalance counter the ring was made at.
func (r *Ring) BuildVersion() int { return r.cur.Load().buildVersion }

// PartPower is log2 of the partition count.
func (r *Ring) PartPower() int { return r.cur.Load().partPower }

// PartitionCount is 2^PartPower.
func (r *Ring) PartitionCount() int { return 1 << r.cur.Load().partPower }

// ReplicaCount is the number of primary copies of each partition.
func (r *Ring) ReplicaCount() int { return r.cur.Load().replicas }

// Devices returns the ring's devices ordered by id.
func (r *Ring) Devices() []Device { return slices.Clone(r.cur.Load().devs) }

// Device looks a device up by id.
func (r *Ring) Device(id int) (Device, bool) {
	t := r.cur.Load()
	i, ok := t.byID[id]
	if !ok {
		return Device{}, false
	}
	return t.devs[i], true
}

// Hash returns md5(prefix + "/" + account[/container[/object]] + suffix),
// the hash Swift uses both for placement and for naming the on-disk
// directories of accounts, containers and objects. Empty trailing parts are
// left out; an object without a container is the caller's bug.
func (r *Ring) Hash(account, container, object string) [md5.Size]byte {
	// One md5.Sum over a stack buffer: this runs for every request the
	// proxy serves.
	var buf [512]byte
	b := append(buf[:0], r.hash.Prefix...)
	b = append(b, '/')
	b = append(b, account...)
	if container != "" {
		b = append(b, '/')
		b = append(b, container...)
		if object != "" {
			b = append(b, '/')
			b = append(b, object...)
		}
	}
	b = append(b, r.hash.Suffix...)
	return md5.Sum(b)
}

// HashHex is Hash in lowercase hex, as Swift names hash directories.
func (r *Ring) HashHex(account, container, object string) string {
	sum := r.Hash(account, container, object)
	return hex.EncodeToString(sum[:])
}

// PartitionOf maps a path hash to its partition: the first four bytes,
// big-endian, shifted right by 32 - part_power.
func (r *Ring) PartitionOf(hash [md5.Size]byte) int {
	return int(binary.BigEndian.Uint32(hash[:4]) >> r.cur.Load().partShift)
}

// GetPartition returns the partition an account, container or object lives in.
func (r *Ring) GetPartition(account, container, object string) int {
	return r.PartitionOf(r.Hash(account, container, object))
}

// GetNodes returns the partition of a name and its primary devices, in
// replica order, each device once even if it holds several replicas.
func (r *Ring) GetNodes(account, container, object string) (int, []Device) {
	t := r.cur.Load()
	sum := r.Hash(account, container, object)
	part := int(binary.BigEndian.Uint32(sum[:4]) >> t.partShift)
	return part, t.partNodes(part)
}

// GetPartNodes returns the primary devices of a partition, as replicators
// need when they walk partitions rather than names. It panics on a
// partition outside the ring, like a slice index would.
func (r *Ring) GetPartNodes(part int) []Device { return r.cur.Load().partNodes(part) }

func (t *table) partNodes(part int) []Device {
	nodes := make([]Device, 0, t.replicas)
	for _, row := range t.assign {
		id := int(row[part])
		if !slices.ContainsFunc(nodes, func(d Device) bool { return d.ID == id }) {
			nodes = append(nodes, t.devs[t.byID[id]])
		}
	}
	return nodes
}

// GetMoreNodes yields handoff devices for a partition: every device that is
// not a primary, each once, in a deterministic order. It prefers, in turn,
// devices in regions, then zones, then hosts that hold none of the
// partition's copies yet, so a write that cannot reach its primaries still
// lands in a separate failure domain. Within that, devices are ranked by a
// weighted rendezvous hash of (partition, device), which spreads handoff
// load by weight and keeps a partition's handoff order mostly unchanged
// when devices come and go. Zero-weight (draining) devices come last.
func (r *Ring) GetMoreNodes(part int) iter.Seq[Device] {
	t := r.cur.Load()
	return func(yield func(Device) bool) {
		primary := make(map[int]bool, t.replicas)
		usedRegion, usedZone, usedHost := map[int]bool{}, map[int]bool{}, map[int]bool{}
		use := func(i int) {
			tr := t.tiers[i]
			usedRegion[tr.region], usedZone[tr.zone], usedHost[tr.host] = true, true, true
		}
		for _, row := range t.assign {
			i := t.byID[int(row[part])]
			primary[i] = true
			use(i)
		}
		type cand struct {
			i     int
			score float64
		}
		var weighted, drained []cand
		for i, d := range t.devs {
			if primary[i] {
				continue
			}
			u := rendezvous(uint64(part), uint64(d.ID))
			if d.Weight > 0 {
				// Exponential race: smallest -ln(u)/w first, so a device
				// with twice the weight comes first twice as often.
				weighted = append(weighted, cand{i, -math.Log(u) / d.Weight})
			} else {
				drained = append(drained, cand{i, u})
			}
		}
		byScore := func(a, b cand) int {
			if a.score != b.score {
				if a.score < b.score {
					return -1
				}
				return 1
			}
			return a.i - b.i
		}
		slices.SortFunc(weighted, byScore)
		slices.SortFunc(drained, byScore)
		done := make([]bool, len(t.devs))
		passes := []func(handoffTiers) bool{
			func(tr handoffTiers) bool { return !usedRegion[tr.region] },
			func(tr handoffTiers) bool { return !usedZone[tr.zone] },
			func(tr handoffTiers) bool { return !usedHost[tr.host] },
			func(handoffTiers) bool { return true },
		}
		for _, pass := range passes {
			for _, c := range weighted {
				if done[c.i] || !pass(t.tiers[c.i]) {
					continue
				}
				done[c.i] = true
				use(c.i)
				if !yield(t.devs[c.i]) {
					return
				}
			}
		}
		for _, c := range drained {
			if !yield(t.devs[c.i]) {
				return
			}
		}
	}
}

// rendezvous hashes a (partition, device) pair to a uniform float in (0, 1)
// with splitmix64. Changing it changes handoff order (not placement), so it
// stays fixed.
func rendezvous(part, dev uint64) float64 {
	return (float64(mix(part, dev)>>11) + 0.5) / (1 << 53)
}

// newTable indexes validated ring contents for lookups.
func newTable(buildVersion, partPower, replicas int, devs []Device, assign [][]uint16) *table {
	t := &table{
		buildVersion: buildVersion, partPower: partPower, partShift: uint(32 - partPower),
		replicas: replicas, assign: assign, byID: make(map[int]int, len(devs)),
	}
	t.devs = slices.Clone(devs)
	slices.SortFunc(t.devs, func(a, b Device) int { return a.ID - b.ID })
	type zoneKey struct{ r, z int }
	type hostKey struct {
		r, z int
		h    string
	}
	regions, zones, hosts := map[int]int{}, map[zoneKey]int{}, map[hostKey]int{}
	t.tiers = make([]handoffTiers, len(t.devs))
	for i, d := range t.devs {
		t.byID[d.ID] = i
		ri, ok := regions[d.Region]
		if !ok {
			ri = len(regions)
			regions[d.Region] = ri
		}
		zi, ok := zones[zoneKey{d.Region, d.Zone}]
		if !ok {
			zi = len(zones)
			zones[zoneKey{d.Region, d.Zone}] = zi
		}
		hi, ok := hosts[hostKey{d.Region, d.Zone, d.Host()}]
		if !ok {
			hi = len(hosts)
			hosts[hostKey{d.Region, d.Zone, d.Host()}] = hi
		}
		t.tiers[i] = handoffTiers{ri, zi, hi}
	}
	return t
}

// Ring returns an in-memory ring of the builder's current assignment, for
// tools and tests that do not need a file. Reload on it is a no-op.
func (b *Builder) Ring(hash HashPath) (*Ring, error) {
	t, err := b.table()
	if err != nil {
		return nil, err
	}
	r := &Ring{hash: hash}
	r.cur.Store(t)
	return r, nil
}

// table converts the builder's assignment into ring form.
func (b *Builder) table() (*table, error) {
	if b.assign == nil {
		return nil, ErrNotRebalanced
	}
	devs := make([]Device, 0, len(b.devs))
	known := make([]bool, b.nextID)
	for _, d := range b.devs {
		devs = append(devs, d.Device)
		known[d.ID] = true
	}
	assign := make([][]uint16, b.replicas)
	for r, row := range b.assign {
		assign[r] = make([]uint16, len(row))
		for p, id := range row {
			if id < 0 || int(id) >= len(known) || !known[id] {
				return nil, fmt.Errorf("partition %d replica %d is unassigned: %w", p, r, ErrNotRebalanced)
			}
			assign[r][p] = uint16(id)
		}
	}
	return newTable(b.buildVersion, b.partPower, b.replicas, devs, assign), nil
}
