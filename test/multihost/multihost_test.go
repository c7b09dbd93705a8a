// Package multihost runs one cloud with several hypervisor hosts on one
// machine: each host is a network namespace running its own `nimbus
// agent` process, joined to the controller over a shared underlay bridge,
// as separate servers would be over a LAN. The compute agents use the
// fake hypervisor (the subject is scheduling, liveness and the overlay
// between hosts, not guests; real guests are test/cli/compute.sh's).
package multihost

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/nimbus-cloud/nimbus/internal/cloud"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/test/internal/proctest"
)

const (
	networkPassword = "Neutron-Multi-1"
	computePassword = "Nova-Multi-1"
)

// host is one hypervisor host: a namespace with an agent process.
type host struct {
	name, ns, addr, prefix, dataDir string
	cmd                             *exec.Cmd
}

func TestTwoHosts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the hosts are network namespaces: run as root")
	}
	ctx := context.Background()
	bin := proctest.BuildNimbus(t)
	tag := randomLetters(3)
	underlay := "mh" + tag + "br"
	ctrlAddr := "10.252.0.1"
	run(t, "ip", "link", "add", underlay, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", underlay).Run() })
	run(t, "ip", "addr", "add", ctrlAddr+"/24", "dev", underlay)
	run(t, "ip", "link", "set", underlay, "up")

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Bind, cfg.PublicHost = ctrlAddr, ctrlAddr
	cfg.Identity.Port, cfg.Image.Port, cfg.Network.Port, cfg.Compute.Port, cfg.Compute.Metadata.Port, cfg.NATSPort = 0, 0, 0, 0, 0, 0
	cfg.Identity.BcryptCost, cfg.LogLevel = 4, "warn"
	cfg.Network.Auth.Password, cfg.Compute.Auth.Password = networkPassword, computePassword
	cfg.Object.Port, cfg.Object.Storage.ObjectPort, cfg.Object.Storage.ContainerPort, cfg.Object.Storage.AccountPort = 0, 0, 0, 0
	cfg.Compute.Console.NoVNCProxyPort, cfg.Compute.Console.SerialProxyPort = 0, 0
	cfg.Volume.Port = 0
	// Longer than the agents' heartbeat interval (10 s), or live hosts
	// would count as down between two beats; short enough to see a dead
	// one go down within the test.
	cfg.Compute.ServiceDownTime = 25 * time.Second
	cfg.Network.VXLANRanges = []string{"7400:7499"}
	ctrl, err := cloud.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("start the controller: %v", err)
	}
	t.Cleanup(func() { ctrl.Close(context.Background()) })

	hosts := []*host{
		{name: "host-a", addr: "10.252.0.2"},
		{name: "host-b", addr: "10.252.0.3"},
	}
	for i, h := range hosts {
		h.ns = fmt.Sprintf("mh-%s-%d", tag, i)
		h.prefix = "m" + tag[:2] + string(rune('a'+i))
		h.dataDir = t.TempDir()
		addHost(t, h, underlay)
		startAgent(t, bin, h, ctrl, cfg)
	}

	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: ctrl.IdentityURL + "/v3",
		Username: "admin", Password: ctrl.AdminPassword, DomainName: "Default", TenantName: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	eo := gophercloud.EndpointOpts{Region: cfg.Region}
	cc, err := openstack.NewComputeV2(provider, eo)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := openstack.NewNetworkV2(provider, eo)
	if err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, 30*time.Second, "both compute services up", func() (bool, string) {
		st := computeStates(ctx, t, cc)
		return st["host-a"] == "up" && st["host-b"] == "up", fmt.Sprint(st)
	})

	ic, err := openstack.NewImageV2(provider, eo)
	if err != nil {
		t.Fatal(err)
	}
	im, err := images.Create(ctx, ic, images.CreateOpts{Name: "tiny", DiskFormat: "raw", ContainerFormat: "bare"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if err := imagedata.Upload(ctx, ic, im.ID, strings.NewReader(strings.Repeat("x", 4096))).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	n, err := networks.Create(ctx, nc, networks.CreateOpts{Name: "multihost"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.90.0.0/24", IPVersion: 4, EnableDHCP: &yes}).Extract(); err != nil {
		t.Fatal(err)
	}

	// The least-loaded scheduler spreads guests over both hosts.
	placed := bootServers(ctx, t, cc, im.ID, n.ID, "spread", 4)
	if placed["host-a"] == 0 || placed["host-b"] == 0 {
		t.Fatalf("4 servers on two empty hosts were not spread: %v", placed)
	}
	// The hosts' agents build the tenant network's VXLAN towards each
	// other: each host's forwarding table points at the other's VTEP.
	for i, h := range hosts {
		peer := hosts[1-i].addr
		proctest.WaitFor(t, 30*time.Second, h.name+" forwards to "+peer, func() (bool, string) {
			out, _ := exec.Command("ip", "netns", "exec", h.ns, "bridge", "fdb", "show").CombinedOutput()
			return strings.Contains(string(out), "dst "+peer), string(out)
		})
	}

	// A host whose agent dies is reported down and gets no new guests.
	b := hosts[1]
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Wait()
	proctest.WaitFor(t, 60*time.Second, "host-b reported down", func() (bool, string) {
		st := computeStates(ctx, t, cc)
		return st["host-b"] == "down" && st["host-a"] == "up", fmt.Sprint(st)
	})
	if placed := bootServers(ctx, t, cc, im.ID, n.ID, "after", 2); placed["host-b"] != 0 {
		t.Fatalf("servers scheduled on a host that is down: %v", placed)
	}
}

// bootServers creates count servers and waits for them to be ACTIVE; it
// returns how many landed on each host.
func bootServers(ctx context.Context, t *testing.T, cc *gophercloud.ServiceClient, imageID, networkID, name string, count int) map[string]int {
	t.Helper()
	var ids []string
	for i := range count {
		s, err := servers.Create(ctx, cc, servers.CreateOpts{Name: fmt.Sprintf("%s-%d", name, i), FlavorRef: "42",
			ImageRef: imageID, Networks: []servers.Network{{UUID: networkID}}}, nil).Extract()
		if err != nil {
			t.Fatalf("create server: %v", err)
		}
		ids = append(ids, s.ID)
	}
	placed := map[string]int{}
	for _, id := range ids {
		var s *servers.Server
		proctest.WaitFor(t, 60*time.Second, "server "+id+" ACTIVE", func() (bool, string) {
			var err error
			if s, err = servers.Get(ctx, cc, id).Extract(); err != nil {
				return false, err.Error()
			}
			if s.Status == "ERROR" {
				t.Fatalf("server %s: ERROR %+v", id, s.Fault)
			}
			return s.Status == "ACTIVE", s.Status
		})
		placed[s.Host]++
	}
	return placed
}

// computeStates maps each compute host to its service state (up/down).
func computeStates(ctx context.Context, t *testing.T, cc *gophercloud.ServiceClient) map[string]string {
	t.Helper()
	pages, err := services.List(cc, services.ListOpts{Binary: "nova-compute"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, err := services.ExtractServices(pages)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list {
		out[s.Host] = s.State
	}
	return out
}

// addHost creates the host's namespace with a leg on the underlay.
func addHost(t *testing.T, h *host, underlay string) {
	t.Helper()
	run(t, "ip", "netns", "add", h.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", h.ns).Run() })
	outer := h.prefix + "u"
	run(t, "ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	run(t, "ip", "link", "set", outer, "master", underlay, "up")
	for _, args := range [][]string{
		{"addr", "add", h.addr + "/24", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"link", "set", "lo", "up"},
		{"route", "add", "default", "via", "10.252.0.1"},
	} {
		run(t, append([]string{"ip", "netns", "exec", h.ns, "ip"}, args...)...)
	}
}

// startAgent runs `nimbus agent` in the host's namespace, configured as
// an operator would configure a new hypervisor host.
func startAgent(t *testing.T, bin string, h *host, ctrl *cloud.Cloud, cfg config.Config) {
	t.Helper()
	authURL := ctrl.IdentityURL + "/v3"
	conf := fmt.Sprintf(`data_dir: %s
nats: %s
log_level: warn
network:
  auth: {auth_url: %q, password: %q}
  agent: {host: %s, prefix: %s, vtep: %s, underlay_device: eth0, external_mode: routed, uplink: eth0}
compute:
  auth: {auth_url: %q, password: %q}
  agent: {enabled: true, driver: fake}
`, h.dataDir, ctrl.BusURL(), authURL, networkPassword, h.name, h.prefix, h.addr, authURL, computePassword)
	path := filepath.Join(h.dataDir, "nimbus.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(h.dataDir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	h.cmd = exec.Command("ip", "netns", "exec", h.ns, bin, "--config", path, "agent")
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h.cmd.ProcessState == nil {
			_ = h.cmd.Process.Signal(syscall.SIGTERM)
			_ = h.cmd.Wait()
		}
		// What the agent built lives in its namespace, except the router
		// and DHCP namespaces, which are named globally: take it all down.
		out, err := exec.Command("ip", "netns", "exec", h.ns, bin, "--config", path, "manage", "network-cleanup").CombinedOutput()
		if err != nil {
			t.Errorf("clean up %s: %v: %s", h.name, err, out)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("agent log of %s:\n%s", h.name, b)
		}
		logf.Close()
	})
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func randomLetters(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz"[int(b[i])%26]
	}
	return string(b)
}
