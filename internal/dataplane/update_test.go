package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// failingRunner fails every command once fail is set.
type failingRunner struct {
	*RecordingRunner
	fail bool
}

func (f *failingRunner) Run(ctx context.Context, netns string, stdin []byte, argv ...string) ([]byte, error) {
	out, err := f.RecordingRunner.Run(ctx, netns, stdin, argv...)
	if f.fail {
		return nil, errors.New("host says no")
	}
	return out, err
}

// TestUpdateTouchesOnlyWhatChanged pins Update's incremental paths by the
// commands they issue: the first Update is a full pass (the router's
// namespace is made); the same state again issues nothing; a new port is
// filtered and plugged without a look at the router; a router change, or a
// failed pass before, makes the next Update full again.
func TestUpdateTouchesOnlyWhatChanged(t *testing.T) {
	rr := &RecordingRunner{Replies: map[string][]byte{
		"nft -j list tables":                           []byte(`{"nftables":[]}`),
		"sysctl -n net.bridge.bridge-nf-call-iptables": []byte("1\n"),
	}}
	fr := &failingRunner{RecordingRunner: rr}
	a, err := New(Config{Prefix: "nb", StateDir: t.TempDir(), Runner: fr})
	if err != nil {
		t.Fatal(err)
	}
	n := names{"nb"}
	st := State{
		Networks: []Network{{ID: "net", Type: NetworkLocal, Subnets: []Subnet{{ID: "s", CIDR: prefix("10.94.0.0/24"), Gateway: addr("10.94.0.1")}}}},
		Routers:  []Router{{ID: "r1", Interfaces: []RouterInterface{{NetworkID: "net", IP: addr("10.94.0.1")}}}},
	}
	ctx := context.Background()
	update := func(st State) []string {
		t.Helper()
		rr.mu.Lock()
		rr.Commands = nil
		rr.mu.Unlock()
		if err := a.Update(ctx, st); err != nil {
			t.Fatalf("update: %v", err)
		}
		return slices.Clone(rr.Commands)
	}
	touchesRouter := func(cmds []string) bool {
		return slices.ContainsFunc(cmds, func(c string) bool { return strings.Contains(c, n.routerNS("r1")) })
	}

	if cmds := update(st); !slices.Contains(cmds, "ip netns add "+n.routerNS("r1")) {
		t.Errorf("first Update is not a full pass:\n%s", strings.Join(cmds, "\n"))
	}
	if cmds := update(st); len(cmds) != 0 {
		t.Errorf("Update of an unchanged state issued:\n%s", strings.Join(cmds, "\n"))
	}

	st.Ports = []Port{{ID: "vm", NetworkID: "net", MAC: mac("fa:16:3e:00:06:01"), FixedIPs: []netip.Addr{addr("10.94.0.10")}, PortSecurity: true}}
	cmds := update(st)
	tap := slices.Index(cmds, "ip tuntap add dev "+n.port("vm")+" mode tap")
	filter := slices.IndexFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "nft -f") })
	if tap < 0 || filter < 0 || filter > tap {
		t.Errorf("new port not filtered, then plugged:\n%s", strings.Join(cmds, "\n"))
	}
	if touchesRouter(cmds) || slices.Contains(cmds, "ip -j netns list") {
		t.Errorf("a port change looked at routers or namespaces:\n%s", strings.Join(cmds, "\n"))
	}

	rr.Replies["ip -j -d link show"] = []byte(`[{"ifname":"` + n.port("vm") + `","linkinfo":{"info_kind":"tun"}}]`)
	st.Ports = nil
	cmds = update(st)
	if !slices.Contains(cmds, "ip link del "+n.port("vm")) || touchesRouter(cmds) {
		t.Errorf("port removal is not an unplug without a look at the router:\n%s", strings.Join(cmds, "\n"))
	}
	delete(rr.Replies, "ip -j -d link show")

	st.Routers[0].Routes = []Route{{Destination: prefix("172.16.0.0/16"), NextHop: addr("10.94.0.254")}}
	if cmds := update(st); !touchesRouter(cmds) {
		t.Errorf("a router change did not reach the router:\n%s", strings.Join(cmds, "\n"))
	}

	// A failed pass leaves the host somewhere in between: the next
	// Update, even of a port change only, is full.
	fr.fail = true
	st.Ports = []Port{{ID: "vm2", NetworkID: "net", MAC: mac("fa:16:3e:00:06:02")}}
	if err := a.Update(ctx, st); err == nil {
		t.Fatal("Update on a failing host succeeded")
	}
	fr.fail = false
	if cmds := update(st); !touchesRouter(cmds) {
		t.Errorf("Update after a failure was not a full pass:\n%s", strings.Join(cmds, "\n"))
	}
}

// TestApplyYielding: a full pass whose caller has something waiting stops
// after the guest ports (the new port is plugged, the router is not
// looked at) with ErrYielded; since the networks and routers are the
// ones applied before, Update then has nothing left to do, while a full
// Apply still goes through the router.
func TestApplyYielding(t *testing.T) {
	a, rr := fakeAgent(t, nil)
	n := names{"nb"}
	st := State{
		Networks: []Network{{ID: "net", Type: NetworkLocal, Subnets: []Subnet{{ID: "s", CIDR: prefix("10.94.0.0/24"), Gateway: addr("10.94.0.1")}}}},
		Routers:  []Router{{ID: "r1", Interfaces: []RouterInterface{{NetworkID: "net", IP: addr("10.94.0.1")}}}},
	}
	ctx := context.Background()
	if err := a.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	commands := func(f func() error) ([]string, error) {
		rr.mu.Lock()
		rr.Commands = nil
		rr.mu.Unlock()
		err := f()
		return slices.Clone(rr.Commands), err
	}
	touchesRouter := func(cmds []string) bool {
		return slices.ContainsFunc(cmds, func(c string) bool { return strings.Contains(c, n.routerNS("r1")) })
	}
	st.Ports = []Port{{ID: "vm", NetworkID: "net", MAC: mac("fa:16:3e:00:06:01"), FixedIPs: []netip.Addr{addr("10.94.0.10")}}}
	cmds, err := commands(func() error { return a.ApplyYielding(ctx, st, func() bool { return true }) })
	if !errors.Is(err, ErrYielded) {
		t.Fatalf("ApplyYielding: %v, want ErrYielded", err)
	}
	if !slices.Contains(cmds, "ip tuntap add dev "+n.port("vm")+" mode tap") || touchesRouter(cmds) {
		t.Errorf("yielded pass did not stop after plugging the port:\n%s", strings.Join(cmds, "\n"))
	}
	if cmds, err := commands(func() error { return a.Update(ctx, st) }); err != nil || len(cmds) != 0 {
		t.Errorf("Update after the yielded pass: %v, issued:\n%s", err, strings.Join(cmds, "\n"))
	}
	if cmds, err := commands(func() error { return a.Apply(ctx, st) }); err != nil || !touchesRouter(cmds) {
		t.Errorf("full Apply after the yielded pass: %v, issued:\n%s", err, strings.Join(cmds, "\n"))
	}
}
