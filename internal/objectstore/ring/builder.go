package ring

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Limits on builder parameters. A part power above 24 makes a table of
// hundreds of megabytes that every proxy must hold in memory; no Nimbus
// cluster needs 16M partitions. 64 replicas is far beyond any real policy
// but keeps dispersion keys small.
const (
	MaxPartPower = 24
	MaxReplicas  = 64
	// maxMinPartHours is about eleven years; anything larger is a typo.
	maxMinPartHours = 100000
)

// ErrNotRebalanced is returned when a ring is requested from a builder whose
// partitions have never been assigned.
var ErrNotRebalanced = errors.New("builder has not been rebalanced")

// BuilderDevice is a device as the builder tracks it: Removed devices keep
// their partitions until the next Rebalance moves them away, which is how a
// removal reassigns only that device's partitions.
type BuilderDevice struct {
	Device
	Removed bool `json:"removed,omitempty"`
}

// Builder holds the operator's view of a ring and computes new assignments.
// It is not safe for concurrent use; it lives in a single CLI invocation.
type Builder struct {
	partPower    int
	replicas     int
	minPartHours int
	buildVersion int
	nextID       int
	lastRebal    time.Time
	devs         []BuilderDevice // sorted by ID
	// assign[r][p] is the device id holding replica r of partition p, -1 if
	// none; nil until the first rebalance.
	assign [][]int32
	// lastMoved[r][p] is the unix second replica r of partition p last
	// changed device; 0 means never. It is what min_part_hours is checked
	// against.
	lastMoved [][]int64
	now       func() time.Time // replaceable in tests
}

// NewBuilder starts an empty builder for 2^partPower partitions with the
// given replica count; minPartHours is how long a moved partition stays put.
func NewBuilder(partPower, replicas, minPartHours int) (*Builder, error) {
	if partPower < 0 || partPower > MaxPartPower {
		return nil, fmt.Errorf("part power %d out of range 0..%d", partPower, MaxPartPower)
	}
	if replicas < 1 || replicas > MaxReplicas {
		return nil, fmt.Errorf("replicas %d out of range 1..%d", replicas, MaxReplicas)
	}
	if minPartHours < 0 || minPartHours > maxMinPartHours {
		return nil, fmt.Errorf("min_part_hours %d out of range 0..%d", minPartHours, maxMinPartHours)
	}
	return &Builder{partPower: partPower, replicas: replicas, minPartHours: minPartHours, now: time.Now}, nil
}

// PartPower returns log2 of the partition count.
func (b *Builder) PartPower() int { return b.partPower }

// Partitions returns the partition count, 2^PartPower.
func (b *Builder) Partitions() int { return 1 << b.partPower }

// Replicas returns the replica count.
func (b *Builder) Replicas() int { return b.replicas }

// MinPartHours returns the minimum hours between moves of a partition.
func (b *Builder) MinPartHours() int { return b.minPartHours }

// BuildVersion counts rebalances, so operators can
// tell which ring file a server has loaded.
func (b *Builder) BuildVersion() int { return b.buildVersion }

// SetMinPartHours changes the move window; it applies from the next
// rebalance on, against the recorded move times.
func (b *Builder) SetMinPartHours(h int) error {
	if h < 0 || h > maxMinPartHours {
		return fmt.Errorf("min_part_hours %d out of range 0..%d", h, maxMinPartHours)
	}
	b.minPartHours = h
	return nil
}

// Devices returns a copy of the builder's devices, removed ones included,
// ordered by id.
func (b *Builder) Devices() []BuilderDevice { return append([]BuilderDevice(nil), b.devs...) }

func (b *Builder) index(id int) int {
	i := sort.Search(len(b.devs), func(i int) bool { return b.devs[i].ID >= id })
	if i < len(b.devs) && b.devs[i].ID == id {
		return i
	}
	return -1
}

// AddDevice adds d with the next free id and returns that id. Ids are never
// reused, so a ring loaded by a lagging server can never confuse a new
// device with a removed one.
func (b *Builder) AddDevice(d Device) (int, error) {
	if b.nextID > maxDeviceID {
		return 0, fmt.Errorf("add device: no device ids left")
	}
	d.ID = b.nextID
	if err := d.validate(); err != nil {
		return 0, fmt.Errorf("add device: %w", err)
	}
	for _, o := range b.devs {
		if !o.Removed && o.IP == d.IP && o.Port == d.Port && o.Name == d.Name {
			return 0, fmt.Errorf("add device %s: %s already has device %s (id %d)", d, d.Host(), d.Name, o.ID)
		}
	}
	b.devs = append(b.devs, BuilderDevice{Device: d})
	b.nextID++
	return d.ID, nil
}

// RemoveDevice marks a device for removal. Its partitions stay readable
// where they are until the next rebalance reassigns them, and only them.
func (b *Builder) RemoveDevice(id int) error {
	i := b.index(id)
	if i < 0 || b.devs[i].Removed {
		return fmt.Errorf("remove device %d: no such device", id)
	}
	b.devs[i].Removed = true
	return nil
}

// SetWeight changes a device's weight; 0 drains it over the following
// rebalances, as min_part_hours allows.
func (b *Builder) SetWeight(id int, weight float64) error {
	i := b.index(id)
	if i < 0 || b.devs[i].Removed {
		return fmt.Errorf("set weight of device %d: no such device", id)
	}
	d := b.devs[i].Device
	d.Weight = weight
	if err := d.validate(); err != nil {
		return fmt.Errorf("set weight: %w", err)
	}
	b.devs[i].Weight = weight
	return nil
}

// PretendMinPartHoursPassed forgets when partitions last moved, for an
// operator who knows replication has caught up (or a test).
func (b *Builder) PretendMinPartHoursPassed() {
	for _, row := range b.lastMoved {
		clear(row)
	}
}

// find returns the ids of live devices matching a search value.
func (b *Builder) find(value string) ([]int, error) {
	q, err := parseSearch(value)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", value, err)
	}
	var ids []int
	for _, d := range b.devs {
		if !d.Removed && q.matches(d.Device) {
			ids = append(ids, d.ID)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("search %q: no matching device", value)
	}
	return ids, nil
}

// partCounts returns how many partition replicas each device id holds.
func (b *Builder) partCounts() map[int]int {
	counts := make(map[int]int, len(b.devs))
	for _, row := range b.assign {
		for _, id := range row {
			if id >= 0 {
				counts[int(id)]++
			}
		}
	}
	return counts
}

// weightIdeal is each live device's share of all partition replicas by
// weight alone, the yardstick the balance figure is measured against.
func (b *Builder) weightIdeal() map[int]float64 {
	var total float64
	for _, d := range b.devs {
		if !d.Removed {
			total += d.Weight
		}
	}
	ideal := make(map[int]float64, len(b.devs))
	if total == 0 {
		return ideal
	}
	all := float64(b.Partitions() * b.replicas)
	for _, d := range b.devs {
		if !d.Removed {
			ideal[d.ID] = all * d.Weight / total
		}
	}
	return ideal
}

// balanceCap is reported for a device that holds partitions but should hold
// none (weight 0), where the relative error is infinite; Swift shows the
// same number.
const balanceCap = 999.99

// deviceBalance returns how far (in percent) a device's partition count is
// from its weight-ideal share: +10 means 10% more than its weight earns.
func deviceBalance(parts int, ideal float64) float64 {
	if ideal == 0 {
		if parts == 0 {
			return 0
		}
		return balanceCap
	}
	return 100 * (float64(parts)/ideal - 1)
}

// Balance is the largest absolute per-device balance over live devices: the
// figure an operator watches to know whether the ring honours the weights.
func (b *Builder) Balance() float64 {
	if b.assign == nil {
		return 0
	}
	counts, ideal := b.partCounts(), b.weightIdeal()
	var worst float64
	for _, d := range b.devs {
		if d.Removed {
			continue
		}
		worst = max(worst, math.Abs(deviceBalance(counts[d.ID], ideal[d.ID])))
	}
	return worst
}

// Dispersion is the percentage of partitions whose replicas are less spread
// across regions, zones and hosts than the topology allows, or that sit on
// removed or zero-weight devices. Nonzero after a rebalance means either
// min_part_hours held moves back (rebalance again later) or a failure
// domain is too light by weight to hold one replica of every partition;
// weight wins, so such partitions double up elsewhere.
func (b *Builder) Dispersion() float64 {
	if b.assign == nil {
		return 0
	}
	t := b.topology()
	if t.active == 0 {
		return 0
	}
	parts := b.Partitions()
	bad := 0
	slots := make([]int, b.replicas)
	for p := 0; p < parts; p++ {
		for r := range b.replicas {
			slots[r] = t.slotOf(b.assign[r][p])
		}
		if t.undispersed(slots) >= 0 {
			bad++
		}
	}
	return 100 * float64(bad) / float64(parts)
}
