package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// TestGuestMetadataService boots the image without a config drive. Its NIC
// is a tap moved into a network namespace of the test's own, where dnsmasq
// answers DHCP and a Go HTTP server plays the metadata service at
// 169.254.169.254: the guest must take a lease and apply hostname, SSH key
// and user data fetched over HTTP.
func TestGuestMetadataService(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Fatal("dnsmasq not found: install dnsmasq-base (scripts/install-deps.sh test)")
	}
	state, run := testDirs(t)
	d := newTestDriver(t, Config{StateDir: state, RunDir: run, VirtType: VirtQEMU})
	ctx := context.Background()

	var b [3]byte
	rand.Read(b[:])
	ns := fmt.Sprintf("nqns%x", b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	inNS := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}

	var requests bytes.Buffer
	reqCh := make(chan string, 16)
	ln := listenInNetns(t, ns, "169.254.169.254:80")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case reqCh <- r.URL.Path:
		default:
		}
		switch r.URL.Path {
		case "/openstack/latest/meta_data.json":
			fmt.Fprint(w, `{"uuid": "md", "hostname": "nimbus-mdtest", "public_keys": {"k": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMdtestkey md@test"}}`)
		case "/openstack/latest/user_data":
			fmt.Fprint(w, "#!/bin/sh\necho md-user-data-ok\n")
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	uuid := newUUID(t)
	spec := guestSpec(t, uuid)
	tapName := tap(t)
	spec.NICs = []hypervisor.NIC{{TapName: tapName, MAC: "fa:16:3e:aa:bb:01"}}
	if _, err := d.Spawn(ctx, spec); err != nil {
		t.Fatalf("spawn: %v", err)
	}
	// QEMU holds the tap open; the device itself moves into the namespace.
	if out, err := exec.Command("ip", "link", "set", tapName, "netns", ns).CombinedOutput(); err != nil {
		t.Fatalf("move tap: %v: %s", err, out)
	}
	inNS("ip", "link", "set", "lo", "up")
	inNS("ip", "addr", "add", "10.250.0.1/24", "dev", tapName)
	inNS("ip", "addr", "add", "169.254.169.254/32", "dev", tapName)
	inNS("ip", "link", "set", tapName, "up")
	dir := t.TempDir()
	dnsmasq := exec.Command("ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
		"--port=0", "--bind-interfaces", "--interface="+tapName, "--except-interface=lo",
		"--dhcp-range=10.250.0.10,10.250.0.20,255.255.255.0,1h", "--dhcp-option=3,10.250.0.1",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"), "--log-dhcp", "--log-facility=-")
	var dlog bytes.Buffer
	dnsmasq.Stdout, dnsmasq.Stderr = &dlog, &dlog
	if err := dnsmasq.Start(); err != nil {
		t.Fatalf("dnsmasq: %v", err)
	}
	t.Cleanup(func() { dnsmasq.Process.Kill(); dnsmasq.Wait() })

	log := waitConsole(t, d, uuid, " login: ", 1, bootTimeout)
	for _, want := range []string{
		"eth0 lease 10.250.0.1",
		"metadata source: metadata service",
		"hostname nimbus-mdtest",
		"installed 1 SSH key(s)",
		"user_data: md-user-data-ok",
		"nimbus-mdtest login:",
	} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("console lacks %q", want)
		}
	}
drain:
	for {
		select {
		case p := <-reqCh:
			requests.WriteString(p + " ")
		default:
			break drain
		}
	}
	if !strings.Contains(requests.String(), "meta_data.json") {
		t.Errorf("metadata requests: %s", requests.String())
	}
	if t.Failed() {
		curl, _ := exec.Command("ip", "netns", "exec", ns, "curl", "-sS", "-m", "3", "http://169.254.169.254/openstack/latest/meta_data.json").CombinedOutput()
		ss, _ := exec.Command("ip", "netns", "exec", ns, "ss", "-ltn").CombinedOutput()
		addrs, _ := exec.Command("ip", "netns", "exec", ns, "ip", "addr").CombinedOutput()
		t.Fatalf("console:\n%s\ncurl from the namespace: %s\n%s\n%s", log, curl, ss, addrs)
	}
}

// listenInNetns opens a TCP listener inside network namespace ns. The
// socket keeps its namespace, so it can be served from any goroutine; the
// thread that entered the namespace is never returned to the runtime.
func listenInNetns(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		// The address is added to the tap later; bind anyway.
		if err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").Run(); err != nil {
			ch <- result{err: err}
			return
		}
		lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1) })
			return serr
		}}
		ln, err := lc.Listen(context.Background(), "tcp4", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in netns %s: %v", ns, r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}
