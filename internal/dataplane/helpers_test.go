package dataplane

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireHost fails (never skips) when the machine cannot run namespace
// tests, naming what is missing.
func requireHost(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("dataplane tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces")
	}
	for _, tool := range []string{"ip", "bridge", "nft", "sysctl", "ping", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("dataplane tests need %s (scripts/install-deps.sh test): %v", tool, err)
		}
	}
}

// testPrefix is unique per test so parallel runs and a developer's agent
// never share a name.
func testPrefix(t testing.TB) string {
	t.Helper()
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	p := []byte{'t'}
	for _, c := range b {
		p = append(p, alphabet[int(c)%len(alphabet)])
	}
	return string(p)
}

func run(t testing.TB, netns string, argv ...string) string {
	t.Helper()
	out, err := ExecRunner{}.Run(context.Background(), netns, nil, argv...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(out)
}

func tryRun(netns string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := ExecRunner{}.Run(ctx, netns, nil, argv...)
	return string(out), err
}

// newNetns creates a test namespace (lo up, IPv6 off so that no stray
// neighbour discovery muddies counters) and removes it when the test ends.
func newNetns(t testing.TB, name string) string {
	t.Helper()
	run(t, "", "ip", "netns", "add", name)
	t.Cleanup(func() { _, _ = tryRun("", "ip", "netns", "del", name) })
	run(t, name, "ip", "link", "set", "lo", "up")
	run(t, name, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return name
}

// cleanupAgent removes whatever an agent with this prefix left: its
// namespaces (global) and DHCP servers. Host-namespace links die with the
// test's host namespace.
func cleanupAgent(t testing.TB, prefix, stateDir string) {
	t.Cleanup(func() {
		matches, _ := filepath.Glob(filepath.Join(stateDir, "dhcp", "*", "pid"))
		ras, _ := filepath.Glob(filepath.Join(stateDir, "ra", "*", "pid"))
		matches = append(matches, ras...)
		for _, pf := range matches {
			if pid, _ := runningPid(pf); pid > 0 {
				_ = stopPid(pid)
			}
		}
		out, _ := tryRun("", "ip", "netns", "list")
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
				_, _ = tryRun("", "ip", "netns", "del", f[0])
			}
		}
	})
}

func newTestAgent(t testing.TB, prefix, hostNS string, mutate func(*Config)) *Agent {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{Prefix: prefix, HostNetns: hostNS, StateDir: dir}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cleanupAgent(t, prefix, dir)
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func apply(t testing.TB, a *Agent, st State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.Apply(ctx, st); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// guest configures a stand-in guest namespace's address and default route
// (what DHCP or cloud-init would do in a VM).
func guestIP(t testing.TB, netns string, addr string, gw string) {
	t.Helper()
	run(t, netns, "ip", "addr", "add", addr, "dev", "eth0")
	if gw != "" {
		run(t, netns, "ip", "route", "add", "default", "via", gw)
	}
}

// canPing keeps sending echo requests every 200ms until one is answered or
// 3s have passed (ARP, and proxy ARP's deliberate delay, come first).
func canPing(netns, dst string) bool {
	_, err := tryRun(netns, "ping", "-n", "-q", "-c", "1", "-w", "3", "-i", "0.2", dst)
	return err == nil
}

// echoServer accepts TCP connections inside netns and echoes a line back,
// prefixed with the client's address as the server saw it.
func echoServer(t testing.TB, netns, addr string) {
	t.Helper()
	serveConns(t, netns, addr, func(c net.Conn) {
		r := bufio.NewReader(c)
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		for {
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", host, line)
		}
	})
}

// tcpEcho connects from netns to addr and returns the source address the
// server saw, or an error when the connection fails.
func tcpEcho(netns, addr string, timeout time.Duration) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := DialInNetns(ctx, netns, "tcp", addr)
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return netip.Addr{}, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return netip.Addr{}, err
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[1] != "hello" {
		return netip.Addr{}, fmt.Errorf("bad echo %q", line)
	}
	return netip.ParseAddr(f[0])
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func intp(i int) *int              { return &i }

// ownedLeft lists what an agent with this prefix still has on the host.
func ownedLeft(t testing.TB, prefix, hostNS string) []string {
	t.Helper()
	var left []string
	for _, line := range strings.Split(run(t, "", "ip", "-n", hostNS, "-o", "link", "show"), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
			if (names{prefix}).ownsLink(name) {
				left = append(left, "link "+name)
			}
		}
	}
	for _, line := range strings.Split(run(t, "", "ip", "netns", "list"), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			if _, ok := (names{prefix}).ownsNS(f[0]); ok {
				left = append(left, "netns "+f[0])
			}
		}
	}
	for _, line := range strings.Split(run(t, hostNS, "nft", "list", "tables"), "\n") {
		if strings.Contains(line, " "+prefix+"_") {
			left = append(left, line)
		}
	}
	return left
}

func runStdin(t testing.TB, netns, stdin string, argv ...string) string {
	t.Helper()
	out, err := ExecRunner{}.Run(context.Background(), netns, []byte(stdin), argv...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(out)
}

// lineConn is a long-lived connection to an echoServer.
type lineConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialLines(netns, addr string) (*lineConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialInNetns(ctx, netns, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &lineConn{c: c, r: bufio.NewReader(c)}, nil
}

func (l *lineConn) exchange(msg string, timeout time.Duration) error {
	_ = l.c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(l.c, msg+"\n"); err != nil {
		return err
	}
	line, err := l.r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasSuffix(line, " "+msg+"\n") {
		return fmt.Errorf("echo %q", line)
	}
	return nil
}

// serveConns listens inside netns until the test ends and runs handle on
// each accepted connection in its own goroutine, closing it afterwards.
func serveConns(t testing.TB, netns, addr string, handle func(net.Conn)) {
	t.Helper()
	l, err := ListenInNetns(netns, "tcp", addr)
	if err != nil {
		t.Fatalf("listen in %s on %s: %v", netns, addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}
