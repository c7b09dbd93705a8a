package compute_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

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
