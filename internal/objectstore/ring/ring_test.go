package ring

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testHash = HashPath{Prefix: "pre", Suffix: "suf"}

func testRing(t testing.TB, partPower int, build func(*Builder)) (*Builder, *Ring) {
	t.Helper()
	b, _ := newTestBuilder(t, partPower, 3, 1)
	build(b)
	mustRebalance(t, b)
	r, err := b.Ring(testHash)
	if err != nil {
		t.Fatal(err)
	}
	return b, r
}

// TestGetNodesMatchesMD5 checks hashes and partitions against digests
// computed independently (Python's hashlib):
// md5("pre" + "/" + "AUTH_test/cont/obj.txt" + "suf").
func TestGetNodesMatchesMD5(t *testing.T) {
	for _, tc := range []struct {
		partPower      int
		a, c, o, hash  string
		wantPartition  int
		checkPartition bool
	}{
		{10, "AUTH_test", "cont", "obj.txt", "b1ce4425f41d7a2400b4274823d907be", 711, true},
		{16, "AUTH_test", "cont", "obj.txt", "b1ce4425f41d7a2400b4274823d907be", 45518, true},
		{10, "AUTH_test", "cont", "", "1e011b455bc328637ea2da744c77ade5", 0, false},
		{10, "AUTH_test", "", "", "71be447877bb1fbeb54daa00a8d52de8", 0, false},
	} {
		b, r := testRing(t, tc.partPower, func(b *Builder) { addGrid(t, b, 1, 3, 1, 1, 1) })
		if got := r.HashHex(tc.a, tc.c, tc.o); got != tc.hash {
			t.Errorf("HashHex(%q,%q,%q) = %s, want %s", tc.a, tc.c, tc.o, got, tc.hash)
		}
		sum, _ := hex.DecodeString(tc.hash)
		want := int(uint32(sum[0])<<24|uint32(sum[1])<<16|uint32(sum[2])<<8|uint32(sum[3])) >> (32 - tc.partPower)
		if tc.checkPartition && want != tc.wantPartition {
			t.Fatalf("test vector: partition %d, table says %d", want, tc.wantPartition)
		}
		part, nodes := r.GetNodes(tc.a, tc.c, tc.o)
		if part != want || r.GetPartition(tc.a, tc.c, tc.o) != want {
			t.Errorf("partition %d, want %d", part, want)
		}
		if len(nodes) != 3 {
			t.Fatalf("%d nodes, want 3", len(nodes))
		}
		for i, n := range nodes {
			if int32(n.ID) != b.assign[i][part] {
				t.Errorf("replica %d on %d, builder says %d", i, n.ID, b.assign[i][part])
			}
		}
		// The same name always maps to the same nodes.
		part2, nodes2 := r.GetNodes(tc.a, tc.c, tc.o)
		if part2 != part || !reflect.DeepEqual(nodes, nodes2) {
			t.Error("GetNodes not deterministic")
		}
	}
}

func TestHashPathSecretChangesPlacement(t *testing.T) {
	b, r := testRing(t, 16, func(b *Builder) { addGrid(t, b, 1, 3, 1, 1, 1) })
	other, _ := b.Ring(HashPath{Prefix: "other", Suffix: "suf"})
	if r.HashHex("a", "c", "o") == other.HashHex("a", "c", "o") {
		t.Error("prefix does not affect the hash")
	}
}

func TestGetNodesDeduplicates(t *testing.T) {
	_, r := testRing(t, 4, func(b *Builder) { addDev(t, b, 1, 1, "127.0.0.1", 6200, "d1", 1) })
	if _, nodes := r.GetNodes("a", "c", "o"); len(nodes) != 1 {
		t.Errorf("%d nodes on a one-device ring, want 1", len(nodes))
	}
}

func TestHandoffs(t *testing.T) {
	// 4 zones, 3 replicas: the first handoff must be in the zone holding no
	// replica; then other hosts before a second device on a used host.
	_, r := testRing(t, 8, func(b *Builder) {
		addGrid(t, b, 1, 4, 2, 2, 100)
		addDev(t, b, 1, 4, "10.1.4.9", 6200, "drain", 0)
	})
	all := r.Devices()
	for part := range r.PartitionCount() {
		primaries := r.GetPartNodes(part)
		seen := map[int]bool{}
		zones := map[int]bool{}
		hosts := map[string]bool{}
		for _, d := range primaries {
			seen[d.ID] = true
			zones[d.Zone] = true
			hosts[d.Host()] = true
		}
		var handoffs []Device
		for d := range r.GetMoreNodes(part) {
			if seen[d.ID] {
				t.Fatalf("partition %d: handoff %d repeats a primary or earlier handoff", part, d.ID)
			}
			seen[d.ID] = true
			handoffs = append(handoffs, d)
		}
		if len(seen) != len(all) {
			t.Fatalf("partition %d: primaries+handoffs cover %d of %d devices", part, len(seen), len(all))
		}
		if zones[handoffs[0].Zone] {
			t.Fatalf("partition %d: first handoff in zone %d which holds a primary", part, handoffs[0].Zone)
		}
		// Handoffs 2..4 should be on hosts not yet used (8 hosts, 3 primaries).
		hosts[handoffs[0].Host()] = true
		for _, h := range handoffs[1:5] {
			if hosts[h.Host()] {
				t.Fatalf("partition %d: handoff %s on a used host while unused hosts remain", part, h)
			}
			hosts[h.Host()] = true
		}
		if last := handoffs[len(handoffs)-1]; last.Weight != 0 {
			t.Fatalf("partition %d: draining device not last (last is %s)", part, last)
		}
		again := slices.Collect(r.GetMoreNodes(part))
		if !reflect.DeepEqual(again, handoffs) {
			t.Fatalf("partition %d: handoff order not deterministic", part)
		}
	}
	// Stopping early must not panic.
	for range r.GetMoreNodes(0) {
		break
	}
}

func TestRingFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	b, mem := testRing(t, 10, func(b *Builder) { addGrid(t, b, 2, 2, 2, 1, 100) })
	path := filepath.Join(dir, "object.ring.gz")
	if err := b.WriteRing(path); err != nil {
		t.Fatal(err)
	}
	r, err := Load(path, testHash)
	if err != nil {
		t.Fatal(err)
	}
	if r.PartPower() != 10 || r.ReplicaCount() != 3 || r.BuildVersion() != b.BuildVersion() {
		t.Errorf("loaded power %d replicas %d version %d", r.PartPower(), r.ReplicaCount(), r.BuildVersion())
	}
	if !reflect.DeepEqual(r.Devices(), mem.Devices()) {
		t.Errorf("devices differ after round trip")
	}
	for p := range r.PartitionCount() {
		if !reflect.DeepEqual(r.GetPartNodes(p), mem.GetPartNodes(p)) {
			t.Fatalf("partition %d nodes differ after round trip", p)
		}
		if !reflect.DeepEqual(slices.Collect(r.GetMoreNodes(p)), slices.Collect(mem.GetMoreNodes(p))) {
			t.Fatalf("partition %d handoffs differ after round trip", p)
		}
	}
	if d, ok := r.Device(3); !ok || d.ID != 3 {
		t.Errorf("Device(3) = %v %v", d, ok)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestBuilderFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "object.builder")
	b, _ := newTestBuilder(t, 8, 3, 2)
	addGrid(t, b, 1, 3, 2, 1, 100)
	mustRebalance(t, b)
	if err := b.RemoveDevice(2); err != nil {
		t.Fatal(err)
	}
	addDev(t, b, 1, 1, "10.9.9.9", 6200, "sdz", 50)
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadBuilder(path)
	if err != nil {
		t.Fatal(err)
	}
	got.now, b.now = nil, nil
	if !reflect.DeepEqual(got, b) {
		t.Errorf("builder differs after round trip:\n got %+v\nwant %+v", got, b)
	}
	// A never-rebalanced builder round-trips too.
	empty, _ := newTestBuilder(t, 4, 1, 0)
	if err := empty.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBuilder(path); err != nil {
		t.Fatal(err)
	}
}

func gz(s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(s))
	zw.Close()
	return buf.Bytes()
}

const validRing = `{"format":"nimbus-ring","version":1,"build_version":1,"part_power":1,"part_shift":31,"replicas":1,
"devices":[{"id":0,"region":1,"zone":1,"ip":"1.2.3.4","port":6200,"device":"a","weight":1}],"replica2part2dev":[[0,0]]}`

func TestCorruptRingFiles(t *testing.T) {
	if _, err := DecodeRing(bytes.NewReader(gz(validRing)), testHash); err != nil {
		t.Fatalf("valid ring rejected: %v", err)
	}
	valid := gz(validRing)
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"empty":         {nil, "not gzip"},
		"not gzip":      {[]byte("hello"), "not gzip"},
		"truncated":     {valid[:len(valid)-10], "decompress"},
		"not json":      {gz("nope"), "decode json"},
		"trailing":      {gz(validRing + "{}"), "trailing"},
		"unknown field": {gz(strings.Replace(validRing, `"replicas"`, `"surprise":1,"replicas"`, 1)), "unknown field"},
		"builder file":  {gz(strings.Replace(validRing, `"nimbus-ring"`, `"nimbus-ring-builder"`, 1)), "format"},
		"future":        {gz(strings.Replace(validRing, `"version":1`, `"version":2`, 1)), "version"},
		"part shift":    {gz(strings.Replace(validRing, `"part_shift":31`, `"part_shift":30`, 1)), "part_shift"},
		"huge power":    {gz(strings.Replace(validRing, `"part_power":1`, `"part_power":40`, 1)), "part_power"},
		"zero replicas": {gz(strings.Replace(validRing, `"replicas":1`, `"replicas":0`, 1)), "replicas"},
		"short row":     {gz(strings.Replace(validRing, `[[0,0]]`, `[[0]]`, 1)), "partitions"},
		"missing row":   {gz(strings.Replace(validRing, `[[0,0]]`, `[]`, 1)), "replica rows"},
		"unknown dev":   {gz(strings.Replace(validRing, `[[0,0]]`, `[[0,7]]`, 1)), "unknown device 7"},
		"bad port":      {gz(strings.Replace(validRing, `"port":6200`, `"port":0`, 1)), "port"},
		"dup device":    {gz(strings.Replace(validRing, `"weight":1}]`, `"weight":1},{"id":0,"region":1,"zone":1,"ip":"1.2.3.5","port":6200,"device":"a","weight":1}]`, 1)), "twice"},
		"negative":      {gz(strings.Replace(validRing, `[[0,0]]`, `[[0,-1]]`, 1)), "decode json"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeRing(bytes.NewReader(tc.data), testHash)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrCorrupt mentioning %q", err, tc.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "object.ring.gz")
	os.WriteFile(path, []byte("garbage"), 0o644)
	if _, err := Load(path, testHash); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load error %v should name the file", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing"), testHash); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCorruptBuilderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "object.builder")
	b, _ := newTestBuilder(t, 2, 1, 0)
	addDev(t, b, 1, 1, "1.2.3.4", 6200, "a", 1)
	mustRebalance(t, b)
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	zr, _ := gzip.NewReader(bytes.NewReader(data))
	var raw bytes.Buffer
	raw.ReadFrom(zr)
	good := raw.String()
	for name, edit := range map[string][2]string{
		"unknown device": {`"replica2part2dev":[[0,0,0,0]]`, `"replica2part2dev":[[0,0,9,0]]`},
		"rows mismatch":  {`"last_moved":[[`, `"last_moved":[[1],[`},
		"next id":        {`"next_device_id":1`, `"next_device_id":0`},
		"ring format":    {`"nimbus-ring-builder"`, `"nimbus-ring"`},
	} {
		bad := strings.Replace(good, edit[0], edit[1], 1)
		if bad == good {
			t.Fatalf("%s: edit %q did not apply to %s", name, edit[0], good)
		}
		if _, err := DecodeBuilder(bytes.NewReader(gz(bad))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", name, err)
		}
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "object.ring.gz")
	b, clk := newTestBuilder(t, 8, 3, 1)
	addGrid(t, b, 1, 3, 1, 1, 100)
	mustRebalance(t, b)
	if err := b.WriteRing(path); err != nil {
		t.Fatal(err)
	}
	r, err := Load(path, testHash)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := r.Reload(); changed || err != nil {
		t.Fatalf("Reload of an unchanged file = %v, %v", changed, err)
	}
	v1 := r.BuildVersion()

	addDev(t, b, 1, 1, "10.1.1.9", 6200, "sdb", 100)
	clk.advance(2 * time.Hour)
	mustRebalance(t, b)
	if err := b.WriteRing(path); err != nil {
		t.Fatal(err)
	}
	if changed, err := r.Reload(); !changed || err != nil {
		t.Fatalf("Reload after rewrite = %v, %v", changed, err)
	}
	if r.BuildVersion() != v1+1 || len(r.Devices()) != 4 {
		t.Errorf("reloaded version %d with %d devices, want %d with 4", r.BuildVersion(), len(r.Devices()), v1+1)
	}

	// A broken push keeps the last good ring serving.
	os.WriteFile(path+".tmp", []byte("broken"), 0o644)
	os.Rename(path+".tmp", path)
	if changed, err := r.Reload(); changed || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Reload of a corrupt file = %v, %v", changed, err)
	}
	if len(r.Devices()) != 4 {
		t.Error("corrupt reload replaced the ring")
	}
	if _, nodes := r.GetNodes("a", "c", "o"); len(nodes) != 3 {
		t.Error("ring unusable after failed reload")
	}
}

// TestReloadWhileServing: lookups running during reloads always see a whole
// ring, old or new (run with -race).
func TestReloadWhileServing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "object.ring.gz")
	b, clk := newTestBuilder(t, 8, 3, 0)
	addGrid(t, b, 1, 3, 1, 1, 100)
	mustRebalance(t, b)
	if err := b.WriteRing(path); err != nil {
		t.Fatal(err)
	}
	r, err := Load(path, testHash)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan string, 1)
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			part, nodes := r.GetNodes("AUTH_x", "c", strconv.Itoa(i))
			if len(nodes) != 3 || part >= r.PartitionCount() {
				select {
				case errs <- fmt.Sprintf("lookup %d: partition %d, %d nodes", i, part, len(nodes)):
				default:
				}
				return
			}
			for range r.GetMoreNodes(part) {
			}
		}
	}()
	for i := range 5 {
		addDev(t, b, 1, 1+i%3, fmt.Sprintf("10.5.5.%d", i), 6200, "sdb", 100)
		clk.advance(time.Hour)
		mustRebalance(t, b)
		if err := b.WriteRing(path); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	select {
	case msg := <-errs:
		t.Fatal(msg)
	default:
	}
}
