package ring

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a settable clock for min_part_hours tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestBuilder(t testing.TB, partPower, replicas, minPartHours int) (*Builder, *fakeClock) {
	t.Helper()
	b, err := NewBuilder(partPower, replicas, minPartHours)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}
	b.now = clk.now
	return b, clk
}

// addGrid adds regions × zones × hosts × devs devices of equal weight; host
// i of zone z in region r is 10.r.z.i:6200.
func addGrid(t testing.TB, b *Builder, regions, zones, hosts, devs int, weight float64) {
	t.Helper()
	for r := 1; r <= regions; r++ {
		for z := 1; z <= zones; z++ {
			for h := 1; h <= hosts; h++ {
				for d := 1; d <= devs; d++ {
					addDev(t, b, r, z, fmt.Sprintf("10.%d.%d.%d", r, z, h), 6200, fmt.Sprintf("sd%c", 'a'+d), weight)
				}
			}
		}
	}
}

func addDev(t testing.TB, b *Builder, region, zone int, ip string, port int, name string, weight float64) int {
	t.Helper()
	id, err := b.AddDevice(Device{Region: region, Zone: zone, IP: ip, Port: port, Name: name, Weight: weight})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustRebalance(t testing.TB, b *Builder) RebalanceResult {
	t.Helper()
	res, err := b.Rebalance()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// snapshot copies the assignment table for before/after comparisons.
func snapshot(b *Builder) [][]int32 {
	out := make([][]int32, len(b.assign))
	for r := range b.assign {
		out[r] = append([]int32(nil), b.assign[r]...)
	}
	return out
}

func devByID(b *Builder, id int32) Device { return b.devs[b.index(int(id))].Device }

func checkFullyAssigned(t *testing.T, b *Builder) {
	t.Helper()
	for r, row := range b.assign {
		for p, id := range row {
			if id < 0 || b.index(int(id)) < 0 {
				t.Fatalf("replica %d of partition %d on %d, not a live device", r, p, id)
			}
		}
	}
}
