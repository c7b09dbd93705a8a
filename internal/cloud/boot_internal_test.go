package cloud

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
)

// BootTinyServer uploads a 4 KiB raw image and boots opts from it through
// the compute API, waiting until the server is ACTIVE. The fake compute
// driver of these tests takes any bytes for a disk, so the image is only
// there for the API's checks. Exported (from a test file) so the external
// tests of this package share it.
func BootTinyServer(ctx context.Context, t *testing.T, ic, cc *gophercloud.ServiceClient, opts servers.CreateOpts) *servers.Server {
	t.Helper()
	im, err := images.Create(ctx, ic, images.CreateOpts{Name: "tiny", DiskFormat: "raw", ContainerFormat: "bare"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if err := imagedata.Upload(ctx, ic, im.ID, strings.NewReader(strings.Repeat("x", 4096))).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	opts.ImageRef = im.ID
	s, err := servers.Create(ctx, cc, opts, nil).Extract()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := servers.Get(ctx, cc, s.ID).Extract()
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == "ACTIVE" {
			return got
		}
		if got.Status == "ERROR" || time.Now().After(deadline) {
			t.Fatalf("server %s is %s (fault %+v)", s.ID, got.Status, got.Fault)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
