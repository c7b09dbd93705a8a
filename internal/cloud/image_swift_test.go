package cloud_test

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"

	"github.com/nimbus-cloud/nimbus/internal/config"
)

// With image.default_store a swift store, image data lands in the cloud's
// own object storage: an image larger than a segment is an SLO in the
// glance container with its segments in glance_segments, reads back
// whole and by range through the image API, and deleting the image
// deletes its objects.
func TestImageDataInObjectStorage(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	cfg.Image.Stores = []config.ImageStoreConfig{
		{ID: "swift", Type: config.StoreSwift, Swift: &config.SwiftStoreConfig{SegmentSize: 1 << 20}},
		{ID: "file", Type: config.StoreFilesystem},
	}
	cfg.Image.DefaultStore = "swift"
	c := start(t, cfg)
	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: c.IdentityURL + "/v3",
		Username: "admin", Password: c.AdminPassword, DomainName: "Default", TenantName: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	eo := gophercloud.EndpointOpts{Region: cfg.Region}
	ic, err := openstack.NewImageV2(provider, eo)
	if err != nil {
		t.Fatal(err)
	}
	// The image service's user: with identity in this process and no
	// image.auth.password, the bootstrap admin, so its account is ours.
	sc, err := openstack.NewObjectStorageV1(provider, eo)
	if err != nil {
		t.Fatal(err)
	}

	data := make([]byte, 2<<20+12345)
	rand.New(rand.NewSource(1)).Read(data)
	im, err := images.Create(ctx, ic, images.CreateOpts{Name: "big", DiskFormat: "raw", ContainerFormat: "bare"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if err := imagedata.Upload(ctx, ic, im.ID, bytes.NewReader(data)).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	got, err := images.Get(ctx, ic, im.ID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != images.ImageStatusActive || got.SizeBytes != int64(len(data)) {
		t.Fatalf("image is %s with %d bytes", got.Status, got.SizeBytes)
	}
	if stores, _ := got.Properties["stores"].(string); stores != "swift" {
		t.Fatalf("stores = %v, want swift", got.Properties["stores"])
	}

	rc, err := imagedata.Download(ctx, ic, im.ID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(body, data) {
		t.Fatalf("download: %d bytes (want %d), %v", len(body), len(data), err)
	}
	req, _ := http.NewRequest(http.MethodGet, ic.ServiceURL("images", im.ID, "file"), nil)
	req.Header.Set("X-Auth-Token", provider.Token())
	req.Header.Set("Range", "bytes=1048570-1048600")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, data[1048570:1048601]) {
		t.Fatalf("range across a segment boundary: %d, %d bytes", resp.StatusCode, len(part))
	}

	if names := objectNames(t, sc, "glance", ""); len(names) != 1 || names[0] != im.ID {
		t.Fatalf("glance container holds %v, want the image %s", names, im.ID)
	}
	if segs := objectNames(t, sc, "glance_segments", im.ID+"-"); len(segs) != 3 {
		t.Fatalf("glance_segments holds %v, want 3 segments", segs)
	}
	res := objects.Get(ctx, sc, "glance", im.ID, nil)
	if h, err := res.Extract(); err != nil || h.ContentLength != int64(len(data)) || !h.StaticLargeObject {
		t.Fatalf("object %s: %+v %v", im.ID, h, err)
	}

	if err := images.Delete(ctx, ic, im.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if names := objectNames(t, sc, "glance", ""); len(names) != 0 {
		t.Fatalf("glance holds %v after the image was deleted", names)
	}
	if segs := objectNames(t, sc, "glance_segments", ""); len(segs) != 0 {
		t.Fatalf("glance_segments holds %v after the image was deleted", segs)
	}
}

func objectNames(t *testing.T, sc *gophercloud.ServiceClient, container, prefix string) []string {
	t.Helper()
	pages, err := objects.List(sc, container, objects.ListOpts{Prefix: prefix}).AllPages(context.Background())
	if err != nil {
		t.Fatalf("list %s: %v", container, err)
	}
	names, err := objects.ExtractNames(pages)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if strings.TrimSpace(n) != "" {
			out = append(out, n)
		}
	}
	return out
}
