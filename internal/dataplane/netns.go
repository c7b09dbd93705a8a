package dataplane

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 keeps named namespaces.
const netnsDir = "/run/netns"

// InNetns runs fn on an OS thread that has joined the named network
// namespace. Sockets fn creates stay in that namespace for their whole life
// and may be used from any goroutine afterwards; that is the only reason to
// call it.
//
// The Go runtime multiplexes goroutines over threads, and setns changes one
// thread, so fn runs in a goroutine locked to its thread. After fn the thread
// is switched back; if that fails, the goroutine exits still locked, and the
// runtime then destroys the thread instead of reusing it in the wrong
// namespace.
func InNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(netnsDir, name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- fmt.Errorf("return from netns %s: %w (thread discarded)", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// ListenInNetns opens a listener inside the named namespace.
func ListenInNetns(name, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := InNetns(name, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// DialInNetns connects from inside the named namespace. addr must hold an IP
// literal: name resolution could run on threads outside the namespace.
func DialInNetns(ctx context.Context, name, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := InNetns(name, func() error {
		var err error
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// netnsInode identifies a named namespace instance (a deleted and recreated
// namespace has the same name but a new inode).
func netnsInode(name string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(netnsDir, name), &st); err != nil {
		return 0, fmt.Errorf("stat netns %s: %w", name, err)
	}
	return st.Ino, nil
}
