package compute_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

// BenchmarkBootToActive measures boots per second through the whole
// control plane (API, quota, scheduler claim, bus, fake agent, report)
// with 100 fake hosts and 16 concurrent clients. Run it with
//
//	go test ./internal/compute -run '^$' -bench BootToActive -benchtime 500x
func BenchmarkBootToActive(b *testing.B) {
	h := newBenchHarness(b)
	for i := range 100 {
		h.addHost(fakeagent.Config{Host: fmt.Sprint("bh", i), VCPUs: 64, MemoryMB: 256 << 10, LocalGB: 10 << 10, Heartbeat: 10 * time.Second})
	}
	ids := make([]string, b.N)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ids[i] = h.boot("a", fmt.Sprint("b", i), nil)
		})
	}
	wg.Wait()
	for _, id := range ids {
		h.eventually("active", func() bool {
			st, body, _ := h.do("a", "GET", "/v2.1/servers/"+id, nil)
			return st == 200 && containsBytes(body, `"status":"ACTIVE"`)
		})
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "boots/s")
}

func containsBytes(b []byte, s string) bool { return len(b) > 0 && stringIndex(string(b), s) >= 0 }

// BenchmarkServerListDetail measures GET /servers/detail of a full page
// (1,000 servers, microversion 2.37 as an admin, as bench/computescale
// calls it) out of 10,000: the cost must be the page's, not the table's.
// The servers are copies of one booted server, written straight to the
// database. Run it with
//
//	go test ./internal/compute -run '^$' -bench ServerListDetail -benchtime 20x
func BenchmarkServerListDetail(b *testing.B) {
	h := newBenchHarness(b)
	h.addHost(fakeagent.Config{Host: "lh", VCPUs: 64})
	id := h.boot("admin", "proto", nil)
	h.eventually("active", func() bool {
		st, body, _ := h.do("admin", "GET", "/v2.1/servers/"+id, nil)
		return st == 200 && containsBytes(body, `"status":"ACTIVE"`)
	})
	cols := strings.SplitN(compute.InstanceColumnsForTest, ",", 3)[2] // all but id, seq
	for n := range 9999 {
		if _, err := h.db.Exec(b.Context(), `INSERT INTO compute_instances (id, seq, `+cols+`) SELECT ?, ?, `+cols+
			` FROM compute_instances WHERE id = ?`, fmt.Sprintf("%08d-0000-4000-8000-000000000000", n), n+2, id); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		st, body, _ := h.do("admin", "GET", "/v2.1/servers/detail", nil, mv("2.37"))
		if st != 200 || strings.Count(string(body), `"OS-EXT-STS:vm_state"`) != 1000 {
			b.Fatalf("status %d, %d servers", st, strings.Count(string(body), `"OS-EXT-STS:vm_state"`))
		}
	}
}
