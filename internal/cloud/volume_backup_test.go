package cloud_test

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
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
	deadline := time.Now().Add(30 * time.Second)
	for len(call("GET", "os-services", nil, 200)["services"].([]any)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the volume agent never registered")
		}
		time.Sleep(100 * time.Millisecond)
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
	for time.Now().Before(deadline.Add(30 * time.Second)) {
		if len(names()) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("objects left after the backup was deleted: %v", names())
}
