package dataplane

import (
	"testing"
	"time"
)

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
	for b.Loop() {
		b.StopTimer()
		closed.Rules = base
		apply(b, e.agent, e.st)
		if tcpOK(e.guests["client"], "10.90.0.21:7000") {
			b.Fatal("closed port reachable before the rule")
		}
		closed.Rules = append(append([]SecurityGroupRule(nil), base...), allow)
		b.StartTimer()
		apply(b, e.agent, e.st)
		if !waitFor(5*time.Second, func() bool {
			_, err := tcpEcho(e.guests["client"], "10.90.0.21:7000", 100*time.Millisecond)
			return err == nil
		}) {
			b.Fatal("rule not enforced within 5s")
		}
	}
}

// BenchmarkFloatingIPToReachability measures associating a floating IP in
// routed mode on the simulated VPC: from the start of Apply until the
// outside host completes a TCP exchange with the guest through it.
func BenchmarkFloatingIPToReachability(b *testing.B) {
	e := newVPC(b, ExternalRouted)
	with := e.state(ExternalRouted)
	without := e.state(ExternalRouted)
	without.Routers[0].FloatingIPs = nil
	for b.Loop() {
		b.StopTimer()
		apply(b, e.agent, without)
		b.StartTimer()
		apply(b, e.agent, with)
		if !waitFor(5*time.Second, func() bool {
			_, err := tcpEcho(e.out, e.fip+":7000", 100*time.Millisecond)
			return err == nil
		}) {
			b.Fatal("floating IP not reachable within 5s")
		}
	}
}

// BenchmarkApplyNoop is the cost of a reconcile pass that finds nothing to
// do (the agent's steady state).
func BenchmarkApplyNoop(b *testing.B) {
	e := newSGEnv(b)
	for b.Loop() {
		apply(b, e.agent, e.st)
	}
}
