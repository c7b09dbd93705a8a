package cloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"

	"github.com/nimbus-cloud/nimbus/internal/config"
)

// TestVolumeBackupsInTheCloud: with the real volume agent and the cloud's
// own object storage, a backup lands as objects in the project's
// volumebackups container, restores into a new volume, and its objects
// go when it is deleted.
func TestVolumeBackupsInTheCloud(t *testing.T) {
	for _, tool := range []string{"qemu-storage-daemon", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; the volume agent needs it", tool)
		}
	}
	cfg := testConfig(t, t.TempDir())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Volume.Agent.NBDPort = l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg.Volume.Agent.Enabled = config.On
	cfg.Volume.Agent.Host = "backuphost"
	// Registered before the cloud's own clean-up, so it runs after the
	// agent has stopped: the storage daemon outlives its agent by design.
	t.Cleanup(func() { stopStorageDaemon(t, filepath.Join(cfg.DataDir, "volumes", "run")) })
	c := start(t, cfg)
	ctx := context.Background()
	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: c.IdentityURL + "/v3",
		Username: "admin", Password: c.AdminPassword, DomainName: "Default", TenantName: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	vc, err := openstack.NewBlockStorageV3(provider, gophercloud.EndpointOpts{Region: cfg.Region})
	if err != nil {
		t.Fatal(err)
	}
	oc, err := openstack.NewObjectStorageV1(provider, gophercloud.EndpointOpts{Region: cfg.Region})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, p string, body any, want int) map[string]any {
		t.Helper()
		out := map[string]any{}
		opts := &gophercloud.RequestOpts{JSONBody: body, JSONResponse: &out, OkCodes: []int{want}}
		if method == "DELETE" {
			opts.JSONResponse = nil // Cinder answers 202 with no body
		}
		_, err := vc.Request(ctx, method, vc.ServiceURL(strings.Split(p, "/")...), opts)
		if err != nil {
			t.Fatalf("%s %s: %v", method, p, err)
		}
		return out
	}
	wait := func(kind, id, want string) map[string]any {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			r := call("GET", kind+"s/"+id, nil, 200)[kind].(map[string]any)
			if r["status"] == want {
				return r
			}
			if strings.HasPrefix(r["status"].(string), "error") || time.Now().After(deadline) {
				t.Fatalf("%s %s: %v, want %s", kind, id, r, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// os-services always lists the scheduler; wait for the storage host.
	storageUp := func() bool {
		for _, row := range call("GET", "os-services", nil, 200)["services"].([]any) {
			if svc := row.(map[string]any); svc["binary"] == "cinder-volume" && svc["state"] == "up" {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); !storageUp(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the volume agent never registered")
		}
	}
	vol := call("POST", "volumes", map[string]any{"volume": map[string]any{"size": 1, "metadata": map[string]string{"k": "v"}}}, 202)["volume"].(map[string]any)["id"].(string)
	wait("volume", vol, "available")
	bid := call("POST", "backups", map[string]any{"backup": map[string]any{"volume_id": vol, "name": "b"}}, 202)["backup"].(map[string]any)["id"].(string)
	b := wait("backup", bid, "available")
	count, _ := b["object_count"].(json.Number).Int64()
	if count < 1 || b["container"] != "volumebackups" {
		t.Fatalf("backup %v", b)
	}
	wait("volume", vol, "available")
	names := func() []string {
		t.Helper()
		page, err := objects.List(oc, "volumebackups", objects.ListOpts{Prefix: "volume_" + vol + "/"}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := objects.ExtractNames(page)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := names(); int64(len(n)) != count || !strings.HasSuffix(n[len(n)-1], "/metadata") {
		t.Fatalf("objects in volumebackups: %v", n)
	}
	restored := call("POST", "backups/"+bid+"/restore", map[string]any{"restore": map[string]any{}}, 202)["restore"].(map[string]any)["volume_id"].(string)
	wait("backup", bid, "available")
	rv := wait("volume", restored, "available")
	if rv["metadata"].(map[string]any)["k"] != "v" {
		t.Fatalf("restored volume %v", rv)
	}
	call("DELETE", "backups/"+bid, nil, 202)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if len(names()) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("objects left after the backup was deleted: %v", names())
}

// stopStorageDaemon stops the qemu-storage-daemon a test's volume agent
// started in runDir, which outlives the agent as it would a restart.
func stopStorageDaemon(t *testing.T, runDir string) {
	t.Helper()
	pidfile := filepath.Join(runDir, "qsd.pid")
	data, err := os.ReadFile(pidfile)
	if err != nil {
		return // the agent never started one
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Errorf("storage daemon pidfile %s: %v", pidfile, err)
		return
	}
	// Only the daemon that wrote this pidfile (its command line names it).
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), pidfile) {
		return
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Errorf("stop storage daemon %d: %v", pid, err)
		return
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
	t.Errorf("storage daemon %d still running 10 s after SIGTERM", pid)
}
