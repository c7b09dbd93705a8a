package cloud

import (
	"context"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/config"
)

// The image service finds image endpoints (for glance-download) in the
// catalog, here through the in-memory identity API as the admin.
func TestCatalogFinder(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir, cfg.Identity.Port, cfg.Image.Port, cfg.Network.Port, cfg.Compute.Port, cfg.NATSPort = t.TempDir(), 0, 0, 0, 0, 0
	cfg.Identity.BcryptCost, cfg.LogLevel, cfg.Compute.Metadata.Port = 4, "warn", 0
	cfg.Object.Port, cfg.Object.Storage.ObjectPort, cfg.Object.Storage.ContainerPort, cfg.Object.Storage.AccountPort = 0, 0, 0, 0
	cfg.Compute.Console.NoVNCProxyPort, cfg.Compute.Console.SerialProxyPort = 0, 0
	cfg.Volume.Port = 0
	c, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	f := c.catalogFinder()
	ctx := context.Background()
	got, err := f.endpoint(ctx, "image", "RegionOne", "internal")
	if err != nil || got != c.ImageURL {
		t.Fatalf("image endpoint = %q, %v; want %q", got, err, c.ImageURL)
	}
	if _, err := f.endpoint(ctx, "image", "RegionTwo", "public"); err == nil {
		t.Fatal("an endpoint was found in a region that does not exist")
	}
}
