package cloud_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/containers"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"

	"github.com/nimbus-cloud/nimbus/internal/cloud"
	"github.com/nimbus-cloud/nimbus/internal/config"
)

// A whole cloud serves object storage on its own: the catalog leads a
// client to the project's account, and objects land on all three local
// devices.
func TestObjectStorageInTheCloud(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	c, err := cloud.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: c.IdentityURL + "/v3",
		Username: "admin", Password: c.AdminPassword, DomainName: "Default", TenantName: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := openstack.NewObjectStorageV1(provider, gophercloud.EndpointOpts{Region: cfg.Region})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sc.Endpoint, "/v1/AUTH_") || strings.Contains(sc.Endpoint, "%(") {
		t.Fatalf("object-store endpoint %q is not the project's account", sc.Endpoint)
	}
	if _, err := containers.Create(ctx, sc, "docs", nil).Extract(); err != nil {
		t.Fatal(err)
	}
	if _, err := objects.Create(ctx, sc, "docs", "a.txt", objects.CreateOpts{Content: strings.NewReader("hello")}).Extract(); err != nil {
		t.Fatal(err)
	}
	res := objects.Download(ctx, sc, "docs", "a.txt", nil)
	body, err := res.ExtractContent()
	if err != nil || string(body) != "hello" {
		t.Fatalf("download: %q %v", body, err)
	}
	var copies int
	filepath.Walk(filepath.Join(cfg.DataDir, "objects", "devices"), func(p string, _ os.FileInfo, _ error) error {
		if filepath.Ext(p) == ".data" {
			copies++
		}
		return nil
	})
	if copies != 3 {
		t.Fatalf("%d copies on disk, want 3", copies)
	}

	// Large bodies: the servers of this process take the MD5 the proxy
	// computed once (bodyhash). It must be the body's, with a length
	// given or chunked, and a wrong ETag must still be refused.
	big := make([]byte, 3<<20+12345)
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	sum := md5.Sum(big)
	want := hex.EncodeToString(sum[:])
	if _, err := objects.Create(ctx, sc, "docs", "big", objects.CreateOpts{Content: bytes.NewReader(big), ETag: want}).Extract(); err != nil {
		t.Fatalf("large upload: %v", err)
	}
	if _, err := objects.Create(ctx, sc, "docs", "chunked", objects.CreateOpts{Content: struct{ io.Reader }{bytes.NewReader(big)}}).Extract(); err != nil {
		t.Fatalf("chunked upload: %v", err)
	}
	for _, name := range []string{"big", "chunked"} {
		res := objects.Download(ctx, sc, "docs", name, nil)
		body, err := res.ExtractContent()
		if err != nil || !bytes.Equal(body, big) {
			t.Fatalf("download %s: %d bytes, %v", name, len(body), err)
		}
		if got := res.Header.Get("Etag"); got != want {
			t.Fatalf("%s stored with ETag %s, want %s", name, got, want)
		}
	}
	bad := strings.Repeat("0", 32)
	_, err = objects.Create(ctx, sc, "docs", "bad", objects.CreateOpts{Content: bytes.NewReader(big), ETag: bad}).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusUnprocessableEntity) {
		t.Fatalf("large upload with a wrong ETag: %v, want 422", err)
	}
}

// A one-machine cloud is its own sync realm under Tempest's default names,
// with a key kept in the data dir; configured realms replace it, and a
// storage node of a real cluster gets only the configured ones.
func TestSyncRealms(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	realms, current, err := cloud.SyncRealms(&cfg, "http://127.0.0.1:8080/v1/")
	if err != nil {
		t.Fatal(err)
	}
	if current != "//realm1/name1" || len(realms.Keys("realm1")) != 1 {
		t.Fatalf("default realm: %q %v", current, realms.Info(current))
	}
	key, err := os.ReadFile(filepath.Join(cfg.DataDir, "container-sync-realm-key"))
	if err != nil || strings.TrimSpace(string(key)) != realms.Keys("realm1")[0] {
		t.Fatalf("realm key not kept in the data dir: %q %v", key, err)
	}
	if realms, _, err = cloud.SyncRealms(&cfg, ""); err != nil || len(realms.Keys("realm1")) != 0 {
		t.Fatalf("realms without a local proxy: %v %v", realms.Info(""), err)
	}
	cfg.Object.ContainerSync.Realms = map[string]config.SyncRealmConfig{"r": {Key: "k", Clusters: map[string]string{"c": "https://x.example.com/v1/"}}}
	if realms, _, err = cloud.SyncRealms(&cfg, "http://127.0.0.1:8080/v1/"); err != nil || len(realms.Keys("R")) != 1 || len(realms.Keys("realm1")) != 0 {
		t.Fatalf("configured realms: %v %v", realms.Info(""), err)
	}
}

// The proxy gets the domain_remap settings of the object section, and
// only those: every other middleware keeps its default.
func TestProxyMiddlewaresDomainRemap(t *testing.T) {
	cfg := config.Default()
	if mw := cloud.ProxyMiddlewares(&cfg); len(mw.DomainRemap.StorageDomains) != 0 {
		t.Fatalf("domain_remap on by default: %+v", mw.DomainRemap)
	}
	cfg.Object.DomainRemap = config.DomainRemapConfig{StorageDomain: []string{"example.net"}, DefaultResellerPrefix: "AUTH", MangleClientPaths: true}
	mw := cloud.ProxyMiddlewares(&cfg)
	dr := mw.DomainRemap
	if len(dr.StorageDomains) != 1 || dr.StorageDomains[0] != "example.net" || dr.DefaultResellerPrefix != "AUTH" || !dr.MangleClientPaths ||
		mw.DisableSLO || mw.DisableStaticWeb {
		t.Fatalf("proxy middlewares %+v", mw)
	}
}
