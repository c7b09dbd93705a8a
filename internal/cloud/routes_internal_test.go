package cloud

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
)

type fakeVPC struct {
	routes  map[netip.Prefix]bool
	calls   int
	failing bool
}

func (f *fakeVPC) EnsureRoute(_ context.Context, p netip.Prefix) error {
	f.calls++
	if f.failing {
		return errors.New("throttled")
	}
	f.routes[p] = true
	return nil
}

func (f *fakeVPC) RemoveRoute(_ context.Context, p netip.Prefix) error {
	f.calls++
	delete(f.routes, p)
	return nil
}

func TestVPCRoutesFollowTheRoutedCIDRs(t *testing.T) {
	f := &fakeVPC{routes: map[netip.Prefix]bool{}}
	v := &vpcRoutes{router: f, log: slog.New(slog.NewTextHandler(io.Discard, nil)), have: map[netip.Prefix]bool{}}
	a, b := netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("198.51.100.0/24")
	ctx := context.Background()

	f.failing = true
	v.sync(ctx, []netip.Prefix{a})
	if len(f.routes) != 0 {
		t.Fatal("a failed call recorded a route")
	}
	f.failing = false
	v.sync(ctx, []netip.Prefix{a}) // retried on the next sync
	v.sync(ctx, []netip.Prefix{a, b})
	calls := f.calls
	v.sync(ctx, []netip.Prefix{a, b}) // nothing new: no API calls
	if !f.routes[a] || !f.routes[b] || f.calls != calls {
		t.Fatalf("routes %v after %d calls (%d before the no-op sync)", f.routes, f.calls, calls)
	}
	v.sync(ctx, []netip.Prefix{b})
	if f.routes[a] || !f.routes[b] {
		t.Fatalf("routes %v, want only %s", f.routes, b)
	}
}
