package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// latencies holds each iteration's timed span, so that a benchmark can
// report the median and the worst case beside the mean (ns/op): a target on
// enforcement time is about every change, not the average one.
type latencies []time.Duration

// report adds p50-ms and max-ms to the benchmark's result.
func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(l[(len(l)-1)/2]), "p50-ms")
	b.ReportMetric(ms(l[len(l)-1]), "max-ms")
}

// waitFor polls until ok or the deadline; it reports whether ok happened.
func waitFor(d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return true
		}
	}
	return false
}

// BenchmarkRuleToEnforcement measures a security group rule change: from the
// start of Apply until a new TCP connection the rule allows goes through.
func BenchmarkRuleToEnforcement(b *testing.B) {
	e := newSGEnv(b)
	closed := &e.st.SecurityGroups[3]
	base := closed.Rules
	allow := SecurityGroupRule{Direction: Ingress, EtherType: IPv4, Protocol: "tcp", PortMin: intp(7000), PortMax: intp(7000)}
	var lat latencies
	for b.Loop() {
		b.StopTimer()
		closed.Rules = base
		apply(b, e.agent, e.st)
		if tcpOK(e.guests["client"], "10.90.0.21:7000") {
			b.Fatal("closed port reachable before the rule")
		}
		closed.Rules = append(append([]SecurityGroupRule(nil), base...), allow)
		b.StartTimer()
		start := time.Now()
		apply(b, e.agent, e.st)
		if !waitFor(5*time.Second, func() bool {
			_, err := tcpEcho(e.guests["client"], "10.90.0.21:7000", 100*time.Millisecond)
			return err == nil
		}) {
			b.Fatal("rule not enforced within 5s")
		}
		lat = append(lat, time.Since(start))
	}
	lat.report(b)
}

// BenchmarkFloatingIPToReachability measures associating a floating IP in
// routed mode on the simulated VPC: from the start of Apply until the
// outside host completes a TCP exchange with the guest through it.
func BenchmarkFloatingIPToReachability(b *testing.B) {
	e := newVPC(b, ExternalRouted)
	with := e.state(ExternalRouted)
	without := e.state(ExternalRouted)
	without.Routers[0].FloatingIPs = nil
	var lat latencies
	for b.Loop() {
		b.StopTimer()
		apply(b, e.agent, without)
		b.StartTimer()
		start := time.Now()
		apply(b, e.agent, with)
		if !waitFor(5*time.Second, func() bool {
			_, err := tcpEcho(e.out, e.fip+":7000", 100*time.Millisecond)
			return err == nil
		}) {
			b.Fatal("floating IP not reachable within 5s")
		}
		lat = append(lat, time.Since(start))
	}
	lat.report(b)
}

// BenchmarkApplyNoop is the cost of a reconcile pass that finds nothing to
// do (the agent's steady state).
func BenchmarkApplyNoop(b *testing.B) {
	e := newSGEnv(b)
	for b.Loop() {
		apply(b, e.agent, e.st)
	}
}

// Throughput over the data paths. The traffic generator is in this file so
// that the benchmark needs nothing but Go (no iperf on the host): a sink in
// one namespace, one or more TCP streams from another, every block
// acknowledged so that the sender times bytes that arrived rather than
// bytes that merely left its socket buffer.
const (
	// throughputBlock is what one stream carries per iteration: large
	// enough that the acknowledgement round trip (tens of µs) is noise next
	// to the transfer (milliseconds at GB/s).
	throughputBlock = 8 << 20
	// throughputIO is the size of each read and write; small ones would
	// measure system-call overhead instead of the path (iperf uses 128 KiB).
	throughputIO = 256 << 10
	// sinkPort is where the sinks listen; the benchmarks open it in the
	// security groups.
	sinkPort = 5201
)

// throughputStreams: one stream is bound by one core; several show what
// the path does with both.
var throughputStreams = []int{1, 4}

// endpoint is one end of a measured path: a namespace and, for the
// receiving end, the address the sender dials.
type endpoint struct{ netns, addr string }

// startSink accepts connections in netns on addr and, on each, reads
// blocks of throughputBlock bytes and answers every block with one byte.
func startSink(t testing.TB, netns, addr string) {
	t.Helper()
	serveConns(t, netns, addr, func(c net.Conn) {
		buf := make([]byte, throughputIO)
		for {
			for left := throughputBlock; left > 0; left -= len(buf) {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
			}
			if _, err := c.Write([]byte{1}); err != nil {
				return
			}
		}
	})
}

// flow is a set of parallel TCP streams from one namespace to a sink.
type flow struct {
	conns []net.Conn
	buf   []byte // read-only payload shared by the writers
}

// dialFlow opens the streams from namespace from to the sink at to and
// sends one block over each before returning.
func dialFlow(t testing.TB, from string, to endpoint, streams int) *flow {
	t.Helper()
	f := &flow{buf: make([]byte, throughputIO)}
	for range streams {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := DialInNetns(ctx, from, "tcp", to.addr)
		cancel()
		if err != nil {
			t.Fatalf("dial %s from %s: %v", to.addr, from, err)
		}
		t.Cleanup(func() { c.Close() })
		f.conns = append(f.conns, c)
	}
	// One untimed block per stream first: neighbour resolution, conntrack
	// entries and TCP slow start are not what is measured.
	if err := f.send(); err != nil {
		t.Fatalf("warm-up %s → %s: %v", from, to.addr, err)
	}
	return f
}

// bytes is what one send carries over all streams.
func (f *flow) bytes() int64 { return int64(len(f.conns)) * throughputBlock }

// send moves one block over every stream at once and returns when the sink
// has acknowledged them all.
func (f *flow) send() error {
	errs := make([]error, len(f.conns))
	var wg sync.WaitGroup
	for i, c := range f.conns {
		wg.Go(func() {
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			for left := throughputBlock; left > 0; left -= len(f.buf) {
				if _, err := c.Write(f.buf); err != nil {
					errs[i] = fmt.Errorf("stream %d write: %w", i, err)
					return
				}
			}
			var ack [1]byte
			if _, err := io.ReadFull(c, ack[:]); err != nil {
				errs[i] = fmt.Errorf("stream %d ack: %w", i, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// newVethPair is the baseline: two namespaces joined by one veth pair, no
// bridge, no filtering, no NAT. It returns the sender's namespace and the
// sink.
func newVethPair(t testing.TB) (string, endpoint) {
	t.Helper()
	requireHost(t)
	p := testPrefix(t)
	a, z := newNetns(t, p+"-va"), newNetns(t, p+"-vz")
	run(t, a, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", z)
	run(t, a, "ip", "link", "set", "eth0", "up")
	run(t, z, "ip", "link", "set", "eth0", "up")
	guestIP(t, a, "10.203.0.1/30", "")
	guestIP(t, z, "10.203.0.2/30", "")
	to := endpoint{z, fmt.Sprintf("10.203.0.2:%d", sinkPort)}
	startSink(t, to.netns, to.addr)
	return a, to
}

// BenchmarkThroughput measures TCP throughput over Nimbus's data paths
// against a plain veth pair on the same machine:
//
//   - veth: another veth pair, so the ratio shows the method's own noise
//   - guest-to-guest: two guests on one tenant network's bridge, with
//     security groups (a remote-group rule) and anti-spoofing active
//   - fip-dnat: the outside host to a guest's floating IP in routed mode on
//     the simulated VPC (VPC bridge, host, router namespace, DNAT, tenant
//     bridge, security groups)
//   - snat: a guest without a floating IP to the outside host (the same
//     hops back, SNAT twice)
//
// Each iteration sends one block per stream over the path (timed) and then
// over the baseline (timed separately), so load from other work on the
// machine falls on both alike. MB/s is the path's; veth-MB/s the
// baseline's; %veth the ratio, which the networking target wants ≥ 80.
func BenchmarkThroughput(b *testing.B) {
	paths := []struct {
		name  string
		setup func(b *testing.B) (from string, to endpoint)
	}{
		{"veth", func(b *testing.B) (string, endpoint) { return newVethPair(b) }},
		{"guest-to-guest", func(b *testing.B) (string, endpoint) {
			e := newSGEnv(b)
			web := &e.st.SecurityGroups[2]
			web.Rules = append(web.Rules, SecurityGroupRule{Direction: Ingress, EtherType: IPv4, Protocol: "tcp",
				PortMin: intp(sinkPort), PortMax: intp(sinkPort), RemoteGroupID: "clients"})
			apply(b, e.agent, e.st)
			to := endpoint{e.guests["web"], fmt.Sprintf("10.90.0.20:%d", sinkPort)}
			startSink(b, to.netns, to.addr)
			return e.guests["client"], to
		}},
		{"fip-dnat", func(b *testing.B) (string, endpoint) {
			e := newSinkVPC(b)
			to := endpoint{e.ga1, fmt.Sprintf("%s:%d", e.fip, sinkPort)}
			startSink(b, to.netns, fmt.Sprintf(":%d", sinkPort))
			return e.out, to
		}},
		{"snat", func(b *testing.B) (string, endpoint) {
			e := newSinkVPC(b)
			to := endpoint{e.out, fmt.Sprintf("%s:%d", vpcOutIP, sinkPort)}
			startSink(b, to.netns, to.addr)
			return e.ga2, to
		}},
	}
	baseFrom, baseTo := newVethPair(b)
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			from, to := p.setup(b)
			for _, n := range throughputStreams {
				b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
					measureThroughput(b, dialFlow(b, from, to, n), dialFlow(b, baseFrom, baseTo, n))
				})
			}
		})
	}
}

// newSinkVPC is the routed-mode VPC with the sink's port open to the
// guests' default group.
func newSinkVPC(b *testing.B) *vpcEnv {
	e := newVPC(b, ExternalRouted)
	st := e.state(ExternalRouted)
	g := &st.SecurityGroups[0]
	g.Rules = append(g.Rules, SecurityGroupRule{Direction: Ingress, EtherType: IPv4, Protocol: "tcp",
		PortMin: intp(sinkPort), PortMax: intp(sinkPort)})
	apply(b, e.agent, st)
	return e
}

// measureThroughput sends over the path and the baseline in turn; the
// benchmark's timer holds only the path's sends. Which goes first
// alternates, so that neither always meets the caches and the scheduler as
// the other left them (veth against veth read 95 % with the path always
// first).
func measureThroughput(b *testing.B, path, base *flow) {
	b.SetBytes(path.bytes())
	var baseTime time.Duration
	var iters int64
	sendBase := func() {
		b.StopTimer()
		t := time.Now()
		if err := base.send(); err != nil {
			b.Fatalf("baseline: %v", err)
		}
		baseTime += time.Since(t)
		b.StartTimer()
	}
	for b.Loop() {
		baseFirst := iters%2 == 1
		if baseFirst {
			sendBase()
		}
		if err := path.send(); err != nil {
			b.Fatal(err)
		}
		if !baseFirst {
			sendBase()
		}
		iters++
	}
	pathMBs := float64(iters*path.bytes()) / b.Elapsed().Seconds() / 1e6
	baseMBs := float64(iters*base.bytes()) / baseTime.Seconds() / 1e6
	b.ReportMetric(baseMBs, "veth-MB/s")
	b.ReportMetric(100*pathMBs/baseMBs, "%veth")
}
