package netagent

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
)

func sh(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// TestAgentDrivesTheDataPlane runs the agent against a real networking
// service and a real data plane whose "host" is a namespace this test
// makes: what the API says becomes bridges, taps, a router namespace and
// a DHCP server, and goes again when the API says so.
func TestAgentDrivesTheDataPlane(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test drives the Linux data plane and needs root (bridges, namespaces, nftables)")
	}
	ctx := context.Background()
	b := make([]byte, 3)
	rand.Read(b)
	prefix := "n"
	for _, c := range b {
		prefix += string("abcdefghijklmnopqrstuvwxyz"[int(c)%26])
	}
	host := "nbtest-" + prefix
	sh(t, "ip", "netns", "add", host)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", host).Run() })
	sh(t, "ip", "-n", host, "link", "set", "lo", "up")
	// The uplink routed mode masquerades to.
	sh(t, "ip", "-n", host, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	sh(t, "ip", "-n", host, "addr", "add", "192.0.2.10/24", "dev", "up0")
	sh(t, "ip", "-n", host, "link", "set", "up0", "up")

	stateDir := t.TempDir()
	dp, err := dataplane.New(dataplane.Config{Prefix: prefix, HostNetns: host, StateDir: stateDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The empty state takes down what the agent made, namespaces and
		// DHCP servers included.
		if err := dp.Apply(context.Background(), dataplane.State{}); err != nil {
			t.Errorf("clean up: %v", err)
		}
		dp.Close()
	})

	c := newNetworking(t)
	_, priv := newTopology(t, c, "198.51.100.0/24")
	guest, err := ports.Create(ctx, c, hostBound{ports.CreateOpts{NetworkID: priv.ID, Name: "guest"}, "host-1"}).Extract()
	if err != nil {
		t.Fatal(err)
	}

	a := New(Config{Host: Host{Name: "host-1", ExternalMode: dataplane.ExternalRouted, Uplink: "up0"}, Client: c, Dataplane: dp,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	tap := dataplane.PortDevice(prefix, guest.ID)
	links := sh(t, "ip", "-n", host, "-o", "link", "show")
	if !strings.Contains(links, tap+":") && !strings.Contains(links, tap+"@") {
		t.Fatalf("no tap %s for the guest port in the host:\n%s", tap, links)
	}
	if n := strings.Count(sh(t, "ip", "-n", host, "-o", "link", "show", "type", "bridge"), "\n"); n < 2 {
		t.Fatalf("%d bridges, want one per network (2)", n)
	}
	nsList := sh(t, "ip", "netns", "list")
	if !strings.Contains(nsList, prefix+"-r-") {
		t.Fatalf("no router namespace %s-r-… in:\n%s", prefix, nsList)
	}
	pids, _ := filepath.Glob(filepath.Join(stateDir, "dhcp", "*", "pid"))
	if len(pids) != 1 {
		t.Fatalf("DHCP servers %v, want one for the private subnet", pids)
	}

	// The API takes the port away: so does the host.
	if err := ports.Delete(ctx, c, guest.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if links := sh(t, "ip", "-n", host, "-o", "link", "show"); strings.Contains(links, tap) {
		t.Fatalf("tap %s outlived its port:\n%s", tap, links)
	}
}
