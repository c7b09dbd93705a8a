package cloud

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// The first-run resources, named as DevStack names them so that guides
// written for it work here: an external network "public", a tenant
// network "private" of the admin project behind "router1", and the
// guest image built by scripts/build-guest-image.sh.
const (
	SeedImageName     = "nimbus-guest"
	SeedPublicNetwork = "public"
	SeedPublicCIDR    = "172.24.4.0/24"
	SeedPrivateNet    = "private"
	SeedPrivateCIDR   = "10.0.0.0/24"
	SeedRouter        = "router1"
	seededMarker      = "seeded"
)

// Seed gives a new one-machine cloud what a user needs to boot a guest
// at once: the guest image (when <data_dir>/guest holds one), an external
// network routed by this host, and a private network with a router. It
// runs once per data directory (a marker file records it), through the
// public APIs as the bootstrap admin, so it creates nothing a user could
// not; a later start never recreates what an operator deleted.
func (c *Cloud) Seed(ctx context.Context) error {
	marker := filepath.Join(c.Config.DataDir, seededMarker)
	if fileExists(marker) {
		return nil
	}
	if c.Identity == nil || c.ImageURL == "" || c.NetworkURL == "" {
		return errors.New("seed: needs the identity, image and network roles in this process")
	}
	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
		IdentityEndpoint: c.IdentityURL + "/v3", Username: "admin", Password: c.AdminPassword,
		DomainName: "Default", TenantName: "admin",
	})
	if err != nil {
		return fmt.Errorf("seed: log in: %w", err)
	}
	eo := gophercloud.EndpointOpts{Region: c.Config.Region}
	img, err := openstack.NewImageV2(provider, eo)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := seedImage(ctx, img, filepath.Join(c.Config.DataDir, GuestImageDir)); err != nil {
		return err
	}
	nc, err := openstack.NewNetworkV2(provider, eo)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := seedNetworks(ctx, nc); err != nil {
		return err
	}
	if err := os.WriteFile(marker, []byte("first-run resources created\n"), 0o600); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	c.log.Info("first run: created the guest image, networks public and private, and router1")
	return nil
}

// seedImage uploads the guest image as a public image, if it was built.
// When the build also left the parts of a direct kernel boot, the kernel
// and ramdisk are uploaded first (as aki and ari images) and the disk
// image names them with kernel_id, ramdisk_id and os_command_line, so the
// compute agent boots the kernel directly: under TCG that reaches the
// guest's DHCP lease about 9 s sooner than going through the BIOS and
// extlinux, which the disk keeps for a boot without those properties.
func seedImage(ctx context.Context, img *gophercloud.ServiceClient, dir string) error {
	disk := filepath.Join(dir, "nimbus-guest.qcow2")
	if !fileExists(disk) {
		return nil // `make up` builds it as root; without it there is no image
	}
	props := map[string]string{"os_distro": "debian", "hw_rng_model": "virtio"}
	kernel, ramdisk, cmdline := filepath.Join(dir, "nimbus-guest.vmlinux"), filepath.Join(dir, "nimbus-guest.initrd"), filepath.Join(dir, "nimbus-guest.cmdline")
	if fileExists(kernel) && fileExists(ramdisk) && fileExists(cmdline) {
		line, err := os.ReadFile(cmdline)
		if err != nil {
			return fmt.Errorf("seed image: %w", err)
		}
		if props["kernel_id"], err = seedOneImage(ctx, img, SeedImageName+"-kernel", "aki", nil, kernel); err != nil {
			return err
		}
		if props["ramdisk_id"], err = seedOneImage(ctx, img, SeedImageName+"-ramdisk", "ari", nil, ramdisk); err != nil {
			return err
		}
		props["os_command_line"] = strings.TrimSpace(string(line))
	}
	_, err := seedOneImage(ctx, img, SeedImageName, "qcow2", props, disk)
	return err
}

// seedOneImage uploads path as a public image called name, unless an
// image of that name exists (a former, interrupted first run got that
// far), and returns its id. Disk format "aki" or "ari" goes with the same
// container format, as Glance expects of kernels and ramdisks; anything
// else is bare.
func seedOneImage(ctx context.Context, img *gophercloud.ServiceClient, name, diskFormat string, props map[string]string, path string) (string, error) {
	pages, err := images.List(img, images.ListOpts{Name: name}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("seed image %s: list: %w", name, err)
	}
	have, err := images.ExtractImages(pages)
	if err != nil {
		return "", fmt.Errorf("seed image %s: list: %w", name, err)
	}
	if len(have) > 0 {
		return have[0].ID, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("seed image %s: %w", name, err)
	}
	defer f.Close()
	container, minDisk := "bare", 1
	if diskFormat == "aki" || diskFormat == "ari" {
		container, minDisk = diskFormat, 0
	}
	public := images.ImageVisibilityPublic
	im, err := images.Create(ctx, img, images.CreateOpts{
		Name: name, DiskFormat: diskFormat, ContainerFormat: container, Visibility: &public,
		MinDisk: minDisk, Properties: props,
	}).Extract()
	if err != nil {
		return "", fmt.Errorf("seed image %s: create: %w", name, err)
	}
	if err := imagedata.Upload(ctx, img, im.ID, f).ExtractErr(); err != nil {
		return "", fmt.Errorf("seed image %s: upload %s: %w", name, path, err)
	}
	return im.ID, nil
}

// seedNetworks creates public (external, flat, routed by this host),
// private (the admin project's tenant network) and router1 between them.
func seedNetworks(ctx context.Context, nc *gophercloud.ServiceClient) error {
	yes, no := true, false
	// A former, interrupted first run may have created some of it.
	pages, err := networks.List(nc, networks.ListOpts{}).AllPages(ctx)
	if err != nil {
		return fmt.Errorf("seed: list networks: %w", err)
	}
	have, err := networks.ExtractNetworks(pages)
	if err != nil {
		return fmt.Errorf("seed: list networks: %w", err)
	}
	for _, n := range have {
		if n.Name == SeedPublicNetwork || n.Name == SeedPrivateNet {
			return fmt.Errorf("seed: network %s exists but the first run did not finish; delete it and start again, or set seed: false", n.Name)
		}
	}
	pub, err := networks.Create(ctx, nc, rawNetwork{"name": SeedPublicNetwork, "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "public"}).Extract()
	if err != nil {
		return fmt.Errorf("seed: network %s: %w", SeedPublicNetwork, err)
	}
	gw := "172.24.4.1"
	if _, err := subnets.Create(ctx, nc, subnets.CreateOpts{Name: SeedPublicNetwork + "-subnet", NetworkID: pub.ID,
		CIDR: SeedPublicCIDR, IPVersion: 4, GatewayIP: &gw, EnableDHCP: &no}).Extract(); err != nil {
		return fmt.Errorf("seed: subnet of %s: %w", SeedPublicNetwork, err)
	}
	priv, err := networks.Create(ctx, nc, networks.CreateOpts{Name: SeedPrivateNet}).Extract()
	if err != nil {
		return fmt.Errorf("seed: network %s: %w", SeedPrivateNet, err)
	}
	sn, err := subnets.Create(ctx, nc, subnets.CreateOpts{Name: SeedPrivateNet + "-subnet", NetworkID: priv.ID,
		CIDR: SeedPrivateCIDR, IPVersion: 4, EnableDHCP: &yes}).Extract()
	if err != nil {
		return fmt.Errorf("seed: subnet of %s: %w", SeedPrivateNet, err)
	}
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: SeedRouter,
		GatewayInfo: &routers.GatewayInfo{NetworkID: pub.ID}}).Extract()
	if err != nil {
		return fmt.Errorf("seed: router %s: %w", SeedRouter, err)
	}
	if _, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sn.ID}).Extract(); err != nil {
		return fmt.Errorf("seed: %s interface on %s: %w", SeedRouter, SeedPrivateNet, err)
	}
	return nil
}

// rawNetwork is a network create body with attributes gophercloud's
// option structs spell differently (provider:*, router:external).
type rawNetwork map[string]any

func (r rawNetwork) ToNetworkCreateMap() (map[string]any, error) {
	return map[string]any{"network": map[string]any(r)}, nil
}
