package ring

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchBuilder is part power 16, 3 replicas, 30 devices: 3 zones × 5 hosts
// × 2 disks.
func benchBuilder(b *testing.B) *Builder {
	bl, _ := newTestBuilder(b, 16, 3, 1)
	addGrid(b, bl, 1, 3, 5, 2, 100)
	return bl
}

func BenchmarkRebalanceInitial(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		bl := benchBuilder(b)
		b.StartTimer()
		mustRebalance(b, bl)
	}
}

// BenchmarkRebalanceAddDevice measures the common case: one disk added to a
// balanced ring.
func BenchmarkRebalanceAddDevice(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		bl := benchBuilder(b)
		mustRebalance(b, bl)
		bl.PretendMinPartHoursPassed()
		addDev(b, bl, 1, 1, "10.1.1.99", 6200, "sdz", 100)
		b.StartTimer()
		res := mustRebalance(b, bl)
		b.ReportMetric(float64(res.Moved), "moved/op")
	}
}

func BenchmarkGetNodes(b *testing.B) {
	bl := benchBuilder(b)
	mustRebalance(b, bl)
	r, err := bl.Ring(testHash)
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprint("object-", i)
	}
	i := 0
	for b.Loop() {
		r.GetNodes("AUTH_test", "container", names[i%len(names)])
		i++
	}
}

func BenchmarkGetMoreNodes(b *testing.B) {
	bl := benchBuilder(b)
	mustRebalance(b, bl)
	r, err := bl.Ring(testHash)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		for range r.GetMoreNodes(i % r.PartitionCount()) {
			break
		}
		i++
	}
}

// BenchmarkLoadRing measures what a server pays to (re)load a part power 16
// ring, and reports the file size.
func BenchmarkLoadRing(b *testing.B) {
	bl := benchBuilder(b)
	mustRebalance(b, bl)
	path := filepath.Join(b.TempDir(), "object.ring.gz")
	if err := bl.WriteRing(path); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Load(path, testHash); err != nil {
			b.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size()), "file-bytes")
}

// BenchmarkSaveBuilder measures an atomic builder save (gzip, fsync,
// rename) at part power 16, and reports the file size.
func BenchmarkSaveBuilder(b *testing.B) {
	bl := benchBuilder(b)
	mustRebalance(b, bl)
	path := filepath.Join(b.TempDir(), "object.builder")
	for b.Loop() {
		if err := bl.Save(path); err != nil {
			b.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size()), "file-bytes")
}
