package ring

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// topology is the builder's devices arranged as failure-domain tiers, with
// each device's target share of partition replicas. It is derived from the
// device list on every rebalance and never stored.
type topology struct {
	replicas int
	idSlot   []int // device id → index into Builder.devs, -1 if none
	// region, zone and host map a slot to its tier node at that level; node
	// indices are global per level (a zone index names region and zone).
	region, zone, host []int
	// maxRegion, maxZone, maxHost and maxDev say how many replicas of one
	// partition a tier node should hold: its target share per partition,
	// rounded up. A zone with a third of the weight of a three-replica ring
	// holds one replica of each partition; one with two thirds holds two.
	maxRegion, maxZone, maxHost, maxDev []int
	live                                []bool    // weight > 0 and not removed: may receive partitions
	removed                             []bool    // partitions must leave regardless of min_part_hours
	liveSlots                           []int     // slots with live set, ascending
	target                              []float64 // wanted partition replicas per slot
	quota                               []int     // ceil(target): most a slot may hold after balancing
	active                              int       // len(liveSlots)
}

func (t *topology) slotOf(id int32) int {
	if id < 0 || int(id) >= len(t.idSlot) {
		return -1
	}
	return t.idSlot[id]
}

// keyBase encodes per-tier replica counts (each at most MaxReplicas) as
// digits of one comparable integer; keyBase4 shifts a whole four-tier key.
const (
	keyBase  = MaxReplicas + 1
	keyBase4 = keyBase * keyBase * keyBase * keyBase
)

// key scores placing a replica on slot e next to the partition's other
// replicas. over counts, per tier from region down to device, by how much e's
// node would exceed its share of this partition (maxRegion...maxDev); raw
// counts how many siblings already share e's region, zone, host and device.
// Both compare lexicographically, lower being more dispersed. This is the
// whole dispersion policy: region before zone before host before device.
func (t *topology) key(e int, others []int) (over, raw int) {
	var cr, cz, ch, cd int
	for _, s := range others {
		if s < 0 || t.region[s] != t.region[e] {
			continue
		}
		cr++
		if t.zone[s] != t.zone[e] {
			continue
		}
		cz++
		if t.host[s] != t.host[e] {
			continue
		}
		ch++
		if s == e {
			cd++
		}
	}
	excess := func(count, allowed int) int { return max(0, count+1-allowed) }
	over = ((excess(cr, t.maxRegion[t.region[e]])*keyBase+excess(cz, t.maxZone[t.zone[e]]))*keyBase+
		excess(ch, t.maxHost[t.host[e]]))*keyBase + excess(cd, t.maxDev[e])
	raw = ((cr*keyBase+cz)*keyBase+ch)*keyBase + cd
	return over, raw
}

// fullKey folds key's two parts into one integer with over dominant, for
// "no less dispersed than" comparisons.
func (t *topology) fullKey(e int, others []int) int {
	over, raw := t.key(e, others)
	return over*keyBase4 + raw
}

// undispersed returns the index of a replica that is unassigned, on a device
// that should hold nothing, or in a tier node holding more replicas of this
// partition than its share; -1 when the partition is placed as well as the
// weights allow.
func (t *topology) undispersed(slots []int) int {
	for r, s := range slots {
		if s < 0 || !t.live[s] {
			return r
		}
	}
	for r, s := range slots {
		var cr, cz, ch, cd int
		for _, o := range slots {
			if t.region[o] == t.region[s] {
				cr++
			}
			if t.zone[o] == t.zone[s] {
				cz++
			}
			if t.host[o] == t.host[s] {
				ch++
			}
			if o == s {
				cd++
			}
		}
		if cr > t.maxRegion[t.region[s]] || cz > t.maxZone[t.zone[s]] ||
			ch > t.maxHost[t.host[s]] || cd > t.maxDev[s] {
			return r
		}
	}
	return -1
}

// Placement modes for best.
const (
	// mustPlace is for replicas that have to land somewhere: any device.
	mustPlace = iota
	// roomOnly picks only devices below quota whose fullKey is at most
	// maxKey: for optional moves that must not overfill a device or lose
	// dispersion.
	roomOnly
	// keyOnly picks any device whose fullKey is at most maxKey: for
	// dispersion repairs worth overfilling a device that the balance pass
	// then relieves.
	keyOnly
	// needyOnly is roomOnly restricted to devices below floor(target).
	needyOnly
)

// best picks the live slot for a replica whose siblings sit on others:
// first a placement that keeps every tier within its share of the
// partition (key's over), then the device furthest below its target, then
// the placement sharing fewest tiers with siblings (key's raw), then the
// lowest slot for determinism; -1 if nothing qualifies.
//
// Weight bounds dispersion through the tier shares: a failure domain too
// light to hold a replica of every partition has a share below one, so it
// gets its weight's worth and its disks cannot overfill (Swift's behaviour
// with overload 0). Putting the target before raw dispersion is what lets a
// zone with two thirds of the weight take exactly two replicas of every
// partition instead of running out of partners for the last ones. Device
// quotas are deliberately not a hard limit here: with exact quotas the last
// partitions placed find only devices that already hold them, and a second
// replica on one disk is far worse than one partition too many.
func (t *topology) best(part int, others []int, counts []int, mode int, maxKey int) int {
	bestSlot, bestOver, bestRaw, bestWant, bestTie := -1, 0, 0, 0.0, uint64(0)
	for _, e := range t.liveSlots {
		if (mode == roomOnly && counts[e]+1 > t.quota[e]) || (mode == needyOnly && float64(counts[e]+1) > t.target[e]+1e-6) {
			continue
		}
		over, raw := t.key(e, others)
		if mode != mustPlace && over*keyBase4+raw > maxKey {
			continue
		}
		want := t.target[e] - float64(counts[e])
		if bestSlot >= 0 {
			if over != bestOver {
				if over > bestOver {
					continue
				}
			} else if want != bestWant {
				if want < bestWant {
					continue
				}
			} else if raw != bestRaw {
				if raw > bestRaw {
					continue
				}
			} else if mix(uint64(part), uint64(e)) >= bestTie {
				continue
			}
		}
		bestSlot, bestOver, bestRaw, bestWant, bestTie = e, over, raw, want, mix(uint64(part), uint64(e))
	}
	return bestSlot
}

// tierNode is a region, zone or host while targets are computed.
type tierNode struct {
	weight float64
	kids   []int // node indices one level down; slots for hosts
}

// topology arranges the builder's devices into tiers and computes targets.
func (b *Builder) topology() *topology {
	n := len(b.devs)
	t := &topology{
		replicas: b.replicas,
		idSlot:   make([]int, b.nextID),
		region:   make([]int, n), zone: make([]int, n), host: make([]int, n),
		maxDev: make([]int, n), live: make([]bool, n), removed: make([]bool, n),
		target: make([]float64, n), quota: make([]int, n),
	}
	for i := range t.idSlot {
		t.idSlot[i] = -1
	}
	type zoneKey struct{ r, z int }
	type hostKey struct {
		r, z int
		h    string
	}
	regionIdx, zoneIdx, hostIdx := map[int]int{}, map[zoneKey]int{}, map[hostKey]int{}
	var regions, zones, hosts []tierNode
	for s, d := range b.devs {
		if d.ID < len(t.idSlot) {
			t.idSlot[d.ID] = s
		}
		t.removed[s] = d.Removed
		t.live[s] = !d.Removed && d.Weight > 0
		ri, ok := regionIdx[d.Region]
		if !ok {
			ri = len(regions)
			regionIdx[d.Region] = ri
			regions = append(regions, tierNode{})
		}
		zk := zoneKey{d.Region, d.Zone}
		zi, ok := zoneIdx[zk]
		if !ok {
			zi = len(zones)
			zoneIdx[zk] = zi
			zones = append(zones, tierNode{})
		}
		hk := hostKey{d.Region, d.Zone, d.Host()}
		hi, ok := hostIdx[hk]
		if !ok {
			hi = len(hosts)
			hostIdx[hk] = hi
			hosts = append(hosts, tierNode{})
		}
		t.region[s], t.zone[s], t.host[s] = ri, zi, hi
		if !t.live[s] {
			continue
		}
		t.liveSlots = append(t.liveSlots, s)
		w := d.Weight
		// Link each weighted node to its parent once, when it first gains
		// weight, so zero-weight subtrees never count as children.
		if zones[zi].weight == 0 {
			regions[ri].kids = append(regions[ri].kids, zi)
		}
		if hosts[hi].weight == 0 {
			zones[zi].kids = append(zones[zi].kids, hi)
		}
		hosts[hi].kids = append(hosts[hi].kids, s)
		regions[ri].weight += w
		zones[zi].weight += w
		hosts[hi].weight += w
	}
	t.active = len(t.liveSlots)
	t.maxRegion, t.maxZone, t.maxHost = make([]int, len(regions)), make([]int, len(zones)), make([]int, len(hosts))
	if t.active == 0 {
		return t
	}

	parts := float64(b.Partitions())
	// A device holds at most one replica of a partition unless there are
	// fewer devices than replicas; a tier node at most what its devices can.
	devAllowance := (b.replicas + t.active - 1) / t.active
	liveUnder := func(lv, k int) int {
		switch lv {
		case 0:
			n := 0
			for _, z := range regions[k].kids {
				for _, h := range zones[z].kids {
					n += len(hosts[h].kids)
				}
			}
			return n
		case 1:
			n := 0
			for _, h := range zones[k].kids {
				n += len(hosts[h].kids)
			}
			return n
		case 2:
			return len(hosts[k].kids)
		}
		return 1
	}
	var rootKids []int
	for i, r := range regions {
		if r.weight > 0 {
			rootKids = append(rootKids, i)
		}
	}
	// Walk down the tiers splitting each node's replica total over its
	// weighted children by weight. The only caps are physical (a child can
	// hold no more replicas per partition than it has devices), so weights
	// are honoured exactly wherever they can be; the excess of a capped
	// child goes to its siblings.
	nodes := [][]tierNode{regions, zones, hosts}
	maxOut := [][]int{t.maxRegion, t.maxZone, t.maxHost}
	perPart := func(share float64) int { return max(1, int(math.Ceil(share/parts-1e-9))) }
	var split func(lv int, kids []int, total float64)
	split = func(lv int, kids []int, total float64) {
		weights := make([]float64, len(kids))
		caps := make([]float64, len(kids))
		for i, k := range kids {
			if lv < len(nodes) {
				weights[i] = nodes[lv][k].weight
			} else {
				weights[i] = b.devs[k].Weight
			}
			caps[i] = parts * float64(min(b.replicas, devAllowance*liveUnder(lv, k)))
		}
		shares := waterFill(weights, caps, total)
		for i, k := range kids {
			if lv == len(nodes) {
				t.target[k] = shares[i]
				t.maxDev[k] = perPart(shares[i])
				continue
			}
			maxOut[lv][k] = perPart(shares[i])
			split(lv+1, nodes[lv][k].kids, shares[i])
		}
	}
	split(0, rootKids, parts*float64(b.replicas))
	for _, s := range t.liveSlots {
		t.quota[s] = int(math.Ceil(t.target[s] - 1e-6))
	}
	return t
}

// waterFill splits total over items in proportion to weight, capping each
// at its limit and handing what a capped item cannot take to the others.
func waterFill(weights, limits []float64, total float64) []float64 {
	shares := make([]float64, len(weights))
	capped := make([]bool, len(weights))
	for {
		var w, rest float64 = 0, total
		for i := range weights {
			if capped[i] {
				rest -= shares[i]
			} else {
				w += weights[i]
			}
		}
		if w == 0 {
			return shares
		}
		again := false
		for i := range weights {
			if !capped[i] && rest*weights[i]/w > limits[i] {
				shares[i], capped[i], again = limits[i], true, true
			}
		}
		if !again {
			for i := range weights {
				if !capped[i] {
					shares[i] = rest * weights[i] / w
				}
			}
			return shares
		}
	}
}

// mix is splitmix64 over a pair, a cheap deterministic scrambler.
func mix(a, b uint64) uint64 {
	z := a*0x9e3779b97f4a7c15 ^ (b + 0x632be59bd9b4e019)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// RebalanceResult reports what a rebalance did.
type RebalanceResult struct {
	// Moved counts partition replicas whose device changed, including
	// first-time assignments.
	Moved int
	// Total is partitions × replicas, for putting Moved in proportion.
	Total int
	// Balance is the largest percentage by which a device's partition count
	// differs from its weight-ideal share.
	Balance float64
	// Dispersion is the percentage of partitions not placed as dispersed as
	// the weights allow (min_part_hours may have held them back).
	Dispersion float64
	// Removed counts devices dropped because they were marked for removal.
	Removed int
	// Pending counts partition replicas that should still move (above their
	// device's quota, on a zero-weight device, or crowding a failure domain)
	// but could not, nearly always because min_part_hours or the
	// one-replica-per-partition rule holds them; rebalance again later.
	Pending int
}

// Rebalance assigns partition replicas to devices. It works in three passes
// so that only what must move does:
//
//  1. replicas that are unassigned or on removed devices are placed, even
//     within min_part_hours, since their data is going away anyway;
//  2. replicas on zero-weight devices, or in a failure domain holding more
//     of their partition than its weight share, move to a more dispersed
//     device that is below its weighted target;
//  3. devices above their weighted target hand replicas to devices below
//     theirs, never putting more of a partition in a failure domain than
//     its share; replicas placed by passes 1 and 2 go first, as their data
//     has not been copied yet. When no direct hand-over fits, a replica goes
//     to a full neighbour that passes one of its own on.
//
// Passes 2 and 3 skip any partition that had a replica move within
// min_part_hours, and move at most one replica of a partition per
// rebalance, so a partition always keeps the rest of its replicas where
// replication expects them. The result is deterministic for a given builder
// state and clock.
func (b *Builder) Rebalance() (RebalanceResult, error) {
	t := b.topology()
	if t.active == 0 {
		return RebalanceResult{}, fmt.Errorf("rebalance: no devices with weight > 0")
	}
	parts, reps := b.Partitions(), b.replicas
	if b.assign == nil {
		b.assign = make([][]int32, reps)
		b.lastMoved = make([][]int64, reps)
		for r := range reps {
			b.assign[r] = make([]int32, parts)
			for p := range b.assign[r] {
				b.assign[r][p] = -1
			}
			b.lastMoved[r] = make([]int64, parts)
		}
	}
	before := make([][]int32, reps)
	for r := range reps {
		before[r] = slices.Clone(b.assign[r])
	}
	now := b.now().UTC()
	nowSec := now.Unix()
	window := int64(b.minPartHours) * 3600
	movedNow := make([]bool, parts)
	// fresh marks replicas placed earlier in this rebalance: their data is
	// not on the new device yet, so the balance pass may re-place them at no
	// cost even though their partition is locked.
	fresh := make([]bool, reps*parts)
	locked := func(p int) bool {
		if movedNow[p] {
			return true
		}
		for r := range reps {
			if lm := b.lastMoved[r][p]; lm != 0 && nowSec-lm < window {
				return true
			}
		}
		return false
	}

	counts := make([]int, len(b.devs))
	slots := make([]int, reps)
	others := make([]int, 0, reps)
	load := func(p int) {
		for r := range reps {
			slots[r] = t.slotOf(b.assign[r][p])
		}
	}
	othersOf := func(skip int) []int {
		others = others[:0]
		for r, s := range slots {
			if r != skip && s >= 0 {
				others = append(others, s)
			}
		}
		return others
	}
	move := func(r, p, from, to int) {
		if from >= 0 {
			counts[from]--
		}
		counts[to]++
		slots[r] = to
		b.assign[r][p] = int32(b.devs[to].ID)
		movedNow[p] = true
	}
	for r := range reps {
		for _, id := range b.assign[r] {
			if s := t.slotOf(id); s >= 0 {
				counts[s]++
			}
		}
	}

	// Pass 1: unassigned replicas and replicas on removed devices.
	for p := range parts {
		load(p)
		for r, s := range slots {
			if s >= 0 && !t.removed[s] {
				continue
			}
			if s >= 0 {
				counts[s]--
			}
			slots[r] = -1
			move(r, p, -1, t.best(p, othersOf(r), counts, mustPlace, 0))
			fresh[r*parts+p] = true
		}
	}

	// Pass 2: dispersion and draining.
	for p := range parts {
		if locked(p) {
			continue
		}
		load(p)
		r := t.undispersed(slots)
		if r < 0 {
			continue
		}
		from := slots[r]
		o := othersOf(r)
		to := -1
		if t.live[from] {
			// A strictly better spot, with room if possible; otherwise
			// overfill one and let the balance pass pass something on.
			cur := t.fullKey(from, o)
			if to = t.best(p, o, counts, roomOnly, cur-1); to < 0 {
				to = t.best(p, o, counts, keyOnly, cur-1)
			}
		} else {
			to = t.best(p, o, counts, mustPlace, 0)
		}
		if to < 0 || to == from {
			continue
		}
		move(r, p, from, to)
		fresh[r*parts+p] = true
	}

	// Pass 3: weight balance, from the most overloaded device down.
	type replicaRef struct{ r, p int32 }
	lists := make([][]replicaRef, len(b.devs)) // per slot; stale entries are skipped
	var over []int
	for _, s := range t.liveSlots {
		if counts[s] > t.quota[s] {
			over = append(over, s)
		}
	}
	if len(over) > 0 {
		for r := range reps {
			for p, id := range b.assign[r] {
				if s := t.slotOf(id); s >= 0 && t.live[s] {
					lists[s] = append(lists[s], replicaRef{int32(r), int32(p)})
				}
			}
		}
	}
	slices.SortFunc(over, func(a, c int) int {
		return cmp.Or(cmp.Compare(counts[c]-t.quota[c], counts[a]-t.quota[a]), cmp.Compare(a, c))
	})
	holds := func(s int, ref replicaRef) bool { return b.assign[ref.r][ref.p] == int32(b.devs[s].ID) }
	movable := func(ref replicaRef) bool {
		return !locked(int(ref.p)) || fresh[int(ref.r)*parts+int(ref.p)]
	}
	relocate := func(ref replicaRef, from, to int) {
		move(int(ref.r), int(ref.p), from, to)
		lists[to] = append(lists[to], ref)
	}
	// shed finds a device below quota (mode roomOnly) or below target
	// (needyOnly) for ref, now on from, that puts no more of its partition
	// in any failure domain than its share (balance may trade raw spread,
	// e.g. share a zone entitled to two replicas).
	shed := func(ref replicaRef, from, mode int) int {
		load(int(ref.p))
		o := othersOf(int(ref.r))
		over, _ := t.key(from, o)
		to := t.best(int(ref.p), o, counts, mode, over*keyBase4+keyBase4-1)
		if to == from {
			return -1
		}
		return to
	}
	for _, from := range over {
		refs := lists[from]
		// Take replicas from across the partition space rather than its
		// start, so consecutive rebalances do not keep picking the same
		// partitions; seeded for reproducible rings.
		rng := rand.New(rand.NewPCG(uint64(b.buildVersion), uint64(b.devs[from].ID)))
		rng.Shuffle(len(refs), func(i, j int) { refs[i], refs[j] = refs[j], refs[i] })
		// Replicas placed earlier in this rebalance go first: their data
		// has not been copied yet, so re-placing them costs nothing.
		slices.SortStableFunc(refs, func(a, c replicaRef) int {
			fa, fc := fresh[int(a.r)*parts+int(a.p)], fresh[int(c.r)*parts+int(c.p)]
			switch {
			case fa == fc:
				return 0
			case fa:
				return -1
			}
			return 1
		})
		for _, ref := range refs {
			if counts[from] <= t.quota[from] {
				break
			}
			if !holds(from, ref) || !movable(ref) {
				continue
			}
			if to := shed(ref, from, roomOnly); to >= 0 {
				relocate(ref, from, to)
			}
		}
	}
	// Pass 3b: a device can be over quota while every device with room
	// already holds a replica of each of its partitions in the same failure
	// domain, e.g. a shrunken device in a zone entitled to two replicas of
	// some partitions. Then go through a full neighbour: move one of our
	// replicas to it and one of its replicas, of a partition with room to
	// spare, onward to a device below quota.
	twoStep := func(from int) bool {
		for _, mid := range t.liveSlots {
			if mid == from || counts[mid] < t.quota[mid] {
				continue
			}
			for _, ref := range lists[from] {
				if !holds(from, ref) || !movable(ref) {
					continue
				}
				load(int(ref.p))
				o := othersOf(int(ref.r))
				if slices.Contains(o, mid) {
					continue
				}
				fromOver, _ := t.key(from, o)
				if midOver, _ := t.key(mid, o); midOver > fromOver {
					continue
				}
				for _, ref2 := range lists[mid] {
					if ref2.p == ref.p || !holds(mid, ref2) || !movable(ref2) {
						continue
					}
					if to := shed(ref2, mid, roomOnly); to >= 0 && to != from {
						relocate(ref2, mid, to)
						relocate(ref, from, mid)
						return true
					}
				}
				break // mid has nothing to pass on; try the next neighbour
			}
		}
		return false
	}
	for _, from := range over {
		for counts[from] > t.quota[from] && twoStep(from) {
		}
	}
	// Pass 3c: quotas round targets up, so every device can sit at its
	// quota while one is left well short. Devices above target hand
	// replicas to devices more than one below theirs.
	needy := 0
	for _, s := range t.liveSlots {
		needy += max(0, int(t.target[s]+1e-6)-counts[s])
	}
	if needy > 0 && len(over) == 0 {
		for r := range reps {
			for p, id := range b.assign[r] {
				if s := t.slotOf(id); s >= 0 && t.live[s] {
					lists[s] = append(lists[s], replicaRef{int32(r), int32(p)})
				}
			}
		}
	}
	for _, from := range t.liveSlots {
		for _, ref := range lists[from] {
			if needy == 0 || float64(counts[from]) <= t.target[from]+1e-6 {
				break
			}
			if !holds(from, ref) || !movable(ref) {
				continue
			}
			if to := shed(ref, from, needyOnly); to >= 0 {
				relocate(ref, from, to)
				needy--
			}
		}
	}

	res := RebalanceResult{Total: parts * reps}
	for r := range reps {
		for p := range parts {
			if b.assign[r][p] != before[r][p] {
				res.Moved++
				b.lastMoved[r][p] = nowSec
			}
		}
	}
	for _, s := range t.liveSlots {
		res.Pending += max(0, counts[s]-t.quota[s])
	}
	undispersed := 0
	for p := range parts {
		load(p)
		if t.undispersed(slots) >= 0 {
			undispersed++
		}
	}
	res.Pending += undispersed
	kept := b.devs[:0]
	for _, d := range b.devs {
		if d.Removed {
			res.Removed++
			continue
		}
		kept = append(kept, d)
	}
	b.devs = kept
	// Every rebalance produces a ring worth telling apart, even one that
	// only adds devices with no partitions yet.
	b.buildVersion++
	b.lastRebal = now
	res.Balance, res.Dispersion = b.Balance(), 100*float64(undispersed)/float64(parts)
	return res, nil
}

// LastRebalance is when Rebalance last ran; zero if never.
func (b *Builder) LastRebalance() time.Time { return b.lastRebal }

// MinPartHoursRemaining is how long until every partition may move again,
// for the operator deciding when to rebalance next.
func (b *Builder) MinPartHoursRemaining() time.Duration {
	var newest int64
	for _, row := range b.lastMoved {
		for _, v := range row {
			newest = max(newest, v)
		}
	}
	if newest == 0 {
		return 0
	}
	left := time.Unix(newest, 0).Add(time.Duration(b.minPartHours) * time.Hour).Sub(b.now())
	return max(left, 0)
}
