package cloud

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	"github.com/nimbus-cloud/nimbus/internal/metadata"
)

// The proxy trusts the header the data plane sets.
func TestMetadataRouterHeader(t *testing.T) {
	if metadata.RouterHeader != dataplane.MetadataRouterHeader {
		t.Fatalf("metadata reads %s, the data plane sets %s", metadata.RouterHeader, dataplane.MetadataRouterHeader)
	}
}

// TestMetadataThroughTheAgentProxy boots nimbus up's roles with the fake
// compute driver and fetches a guest's meta_data.json the way the guest
// would: through the networking agent's proxy handler, with its fixed IP
// and its router, to the metadata role.
func TestMetadataThroughTheAgentProxy(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir, cfg.Identity.Port, cfg.Image.Port, cfg.Network.Port, cfg.Compute.Port, cfg.NATSPort = t.TempDir(), 0, 0, 0, 0, 0
	cfg.Compute.Metadata.Port, cfg.Identity.BcryptCost, cfg.LogLevel = 0, 4, "warn"
	cfg.Object.Port, cfg.Object.Storage.ObjectPort, cfg.Object.Storage.ContainerPort, cfg.Object.Storage.AccountPort = 0, 0, 0, 0
	cfg.Compute.Console.NoVNCProxyPort, cfg.Compute.Console.SerialProxyPort = 0, 0
	cfg.Volume.Port = 0
	cfg.Compute.Agent.Enabled, cfg.Compute.Agent.Driver, cfg.Network.Agent.Host = config.On, "fake", "fake-host"
	c, err := Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())

	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: c.IdentityURL + "/v3",
		Username: "admin", Password: c.AdminPassword, DomainName: "Default", TenantName: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	eo := gophercloud.EndpointOpts{Region: cfg.Region}
	nc, _ := openstack.NewNetworkV2(provider, eo)
	ic, _ := openstack.NewImageV2(provider, eo)
	cc, _ := openstack.NewComputeV2(provider, eo)
	n, err := networks.Create(ctx, nc, networks.CreateOpts{Name: "private"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	sn, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.9.0.0/24", IPVersion: 4}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "r1"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sn.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	s := BootTinyServer(ctx, t, ic, cc, servers.CreateOpts{Name: "vm1", FlavorRef: "42",
		Networks: []servers.Network{{UUID: n.ID}}, Metadata: map[string]string{"role": "web"},
		UserData: []byte("#cloud-config\n")})
	pages, err := ports.List(nc, ports.ListOpts{DeviceID: s.ID}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := ports.ExtractPorts(pages)
	if err != nil || len(ps) != 1 {
		t.Fatalf("ports %+v %v", ps, err)
	}
	guestIP := ps[0].FixedIPs[0].IPAddress

	proxy, err := c.metadataProxy(nc)
	if err != nil || proxy == nil {
		t.Fatalf("metadata proxy: %v", err)
	}
	fetch := func(path, ip string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("X-Forwarded-For", ip)
		req.Header.Set(dataplane.MetadataRouterHeader, r.ID)
		w := httptest.NewRecorder()
		proxy.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	code, body := fetch("/openstack/latest/meta_data.json", guestIP)
	var md map[string]any
	if err := json.Unmarshal([]byte(body), &md); code != 200 || err != nil {
		t.Fatalf("meta_data.json: %d %q", code, body)
	}
	if md["uuid"] != s.ID || md["name"] != "vm1" || md["project_id"] != ps[0].ProjectID || md["meta"].(map[string]any)["role"] != "web" {
		t.Fatalf("meta_data.json %v", md)
	}
	if code, body := fetch("/latest/user-data", guestIP); code != 200 || body != "#cloud-config\n" {
		t.Fatalf("user-data: %d %q", code, body)
	}
	if code, body := fetch("/latest/meta-data/local-ipv4", guestIP); code != 200 || body != guestIP {
		t.Fatalf("local-ipv4: %d %q", code, body)
	}
	if code, _ := fetch("/latest/meta-data/", "10.9.0.250"); code != http.StatusNotFound {
		t.Fatalf("a stranger's address: %d", code)
	}
}
