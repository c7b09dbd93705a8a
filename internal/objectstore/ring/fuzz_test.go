package ring

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecodeRing feeds arbitrary bytes to the ring loader: it must never
// panic, and whatever it accepts must answer lookups for every partition.
func FuzzDecodeRing(f *testing.F) {
	f.Add(gz(validRing))
	f.Add([]byte{})
	f.Add([]byte("\x1f\x8b"))
	b, _ := newTestBuilder(f, 3, 2, 0)
	addGrid(f, b, 1, 2, 1, 1, 1)
	mustRebalance(f, b)
	path := filepath.Join(f.TempDir(), "r.ring.gz")
	if err := b.WriteRing(path); err != nil {
		f.Fatal(err)
	}
	f.Add(mustRead(f, path))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRing(bytes.NewReader(data), testHash)
		if err != nil {
			return
		}
		for p := range r.PartitionCount() {
			nodes := r.GetPartNodes(p)
			if len(nodes) == 0 || len(nodes) > r.ReplicaCount() {
				t.Fatalf("partition %d has %d nodes", p, len(nodes))
			}
			for range r.GetMoreNodes(p) {
			}
		}
		r.GetNodes("a", "c", "o")
	})
}

// FuzzDecodeRingJSON fuzzes the JSON inside the gzip layer, where the
// validation lives; mutating compressed bytes rarely gets that far.
func FuzzDecodeRingJSON(f *testing.F) {
	f.Add([]byte(validRing))
	f.Add([]byte(`{"format":"nimbus-ring","version":1,"part_power":0,"part_shift":32,"replicas":2,` +
		`"devices":[{"id":5,"region":0,"zone":0,"ip":"::1","port":1,"device":"x","weight":0}],"replica2part2dev":[[5],[5]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := decodeRingJSON(data)
		if err != nil {
			return
		}
		r := &Ring{hash: testHash}
		r.cur.Store(tb)
		for p := range r.PartitionCount() {
			if n := len(r.GetPartNodes(p)); n == 0 || n > r.ReplicaCount() {
				t.Fatalf("partition %d has %d nodes", p, n)
			}
			seen := 0
			for range r.GetMoreNodes(p) {
				seen++
			}
			if seen+len(r.GetPartNodes(p)) != len(r.Devices()) {
				t.Fatalf("partition %d: handoffs and primaries cover %d of %d devices", p, seen+len(r.GetPartNodes(p)), len(r.Devices()))
			}
		}
	})
}

// FuzzDecodeBuilder fuzzes builder JSON (below the gzip layer): the
// loader must never panic, and an accepted builder must survive a save/load
// round trip unchanged and rebalance without panicking.
func FuzzDecodeBuilder(f *testing.F) {
	b, _ := newTestBuilder(f, 2, 2, 1)
	addGrid(f, b, 1, 2, 1, 1, 1)
	path := filepath.Join(f.TempDir(), "b.builder")
	if err := b.Save(path); err != nil {
		f.Fatal(err)
	}
	f.Add(mustGunzip(f, mustRead(f, path)))
	mustRebalance(f, b)
	b.RemoveDevice(0)
	if err := b.Save(path); err != nil {
		f.Fatal(err)
	}
	f.Add(mustGunzip(f, mustRead(f, path)))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeBuilderJSON(data)
		if err != nil {
			return
		}
		// JSON rather than Save: fsync and gzip per input starve the fuzzer;
		// TestBuilderFileRoundTrip covers the file layer.
		raw, err := json.Marshal(got.file())
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeBuilderJSON(raw)
		if err != nil {
			t.Fatalf("saved builder does not load: %v", err)
		}
		got.now, again.now = nil, nil
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("builder changed in a save/load round trip:\n%+v\n%+v", got, again)
		}
		// Large accepted parameters are legal but would make the fuzzer
		// allocate gigabytes; rebalancing small ones is what finds bugs.
		if again.Partitions()*again.Replicas() > 1<<12 {
			return
		}
		again.now = b.now
		if _, err := again.Rebalance(); err == nil {
			if _, err := again.Ring(testHash); err != nil {
				t.Fatalf("rebalanced builder has no ring: %v", err)
			}
		}
	})
}

func mustGunzip(tb testing.TB, data []byte) []byte {
	tb.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}
