package compute_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/hypervisors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/quotasets"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servergroups"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
	"github.com/gophercloud/gophercloud/v2/pagination"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

// client is a gophercloud compute client for a token of the harness,
// pinned to microversion (empty: none sent, i.e. 2.1).
func (h *harness) client(token, microversion string) *gophercloud.ServiceClient {
	pc := &gophercloud.ProviderClient{TokenID: token, HTTPClient: *h.srv.Client()}
	return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: h.srv.URL + "/v2.1/", ResourceBase: h.srv.URL + "/v2.1/",
		Type: "compute", Microversion: microversion}
}

// TestGophercloud drives the API with gophercloud, a second client whose
// result types, pagers and error handling judge wire compatibility.
func TestGophercloud(t *testing.T) {
	h := newHarness(t)
	h.addHost(fakeagent.Config{Host: "gc-host"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, admin := h.client("a", ""), h.client("admin", "2.79")

	// Flavors, through the pager.
	var names []string
	err := flavors.ListDetail(a, flavors.ListOpts{}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
		fs, err := flavors.ExtractFlavors(p)
		for _, f := range fs {
			names = append(names, f.Name)
		}
		return true, err
	})
	if err != nil || len(names) != 7 {
		t.Fatalf("flavors %v %v", names, err)
	}
	small, err := flavors.Get(ctx, a, "2").Extract()
	if err != nil || small.Name != "m1.small" || small.RAM != 2048 {
		t.Fatalf("flavor 2: %+v %v", small, err)
	}
	// Paging through flavors one at a time follows flavors_links.
	count := 0
	err = flavors.ListDetail(a, flavors.ListOpts{Limit: 1}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
		fs, err := flavors.ExtractFlavors(p)
		count += len(fs)
		return true, err
	})
	if err != nil || count != 7 {
		t.Fatalf("paged flavors %d %v", count, err)
	}

	// Keypairs.
	kp, err := keypairs.Create(ctx, a, keypairs.CreateOpts{Name: "gk", PublicKey: edKey}).Extract()
	if err != nil || kp.Fingerprint == "" {
		t.Fatalf("keypair %+v %v", kp, err)
	}

	// Servers: create, wait, list, act, delete.
	srv, err := servers.Create(ctx, a, keypairs.CreateOptsExt{
		CreateOptsBuilder: servers.CreateOpts{Name: "gc", ImageRef: imageID, FlavorRef: "1", Metadata: map[string]string{"k": "v"}},
		KeyName:           "gk",
	}, nil).Extract()
	if err != nil || srv.AdminPass == "" {
		t.Fatalf("create %+v %v", srv, err)
	}
	if err := servers.WaitForStatus(ctx, a, srv.ID, "ACTIVE"); err != nil {
		t.Fatal(err)
	}
	got, err := servers.Get(ctx, a, srv.ID).Extract()
	if err != nil || got.Status != "ACTIVE" || got.Metadata["k"] != "v" || got.KeyName != "gk" || got.Flavor["id"] != "1" {
		t.Fatalf("get %+v %v", got, err)
	}
	all, err := servers.List(a, servers.ListOpts{Name: "gc"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := servers.ExtractServers(all); len(list) != 1 {
		t.Fatalf("list %v", list)
	}
	if err := servers.Reboot(ctx, a, srv.ID, servers.RebootOpts{Type: servers.SoftReboot}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := servers.WaitForStatus(ctx, a, srv.ID, "ACTIVE"); err != nil {
		t.Fatal(err)
	}
	out, err := servers.ShowConsoleOutput(ctx, a, srv.ID, servers.ShowConsoleOutputOpts{Length: 2}).Extract()
	if err != nil || out == "" {
		t.Fatalf("console %q %v", out, err)
	}
	imgID, err := servers.CreateImage(ctx, a, srv.ID, servers.CreateImageOpts{Name: "snap"}).ExtractImageID()
	if err != nil || imgID == "" {
		t.Fatalf("snapshot %q %v", imgID, err)
	}
	// Errors by status: another project's server is a 404.
	_, err = servers.Get(ctx, h.client("b", ""), srv.ID).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("other project: %v", err)
	}

	// Admin views at 2.79.
	hvPages, err := hypervisors.List(admin, nil).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hvs, err := hypervisors.ExtractHypervisors(hvPages)
	if err != nil || len(hvs) != 1 || hvs[0].HypervisorHostname != "gc-host" || hvs[0].VCPUsUsed != 1 {
		t.Fatalf("hypervisors %+v %v", hvs, err)
	}
	svcPages, err := services.List(admin, nil).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := services.ExtractServices(svcPages)
	if err != nil || len(svcs) != 3 || svcs[0].Binary != "nova-compute" || svcs[0].State != "up" ||
		svcs[1].Binary != "nova-scheduler" || svcs[2].Binary != "nova-conductor" || svcs[2].Zone != "internal" || svcs[2].State != "up" {
		t.Fatalf("services %+v %v", svcs, err)
	}
	qs, err := quotasets.Get(ctx, admin, projA).Extract()
	if err != nil || qs.Instances != 10 {
		t.Fatalf("quota %+v %v", qs, err)
	}
	sg, err := servergroups.Create(ctx, h.client("a", "2.64"), servergroups.CreateOpts{Name: "g", Policy: "anti-affinity"}).Extract()
	if err != nil || sg.Policy == nil || *sg.Policy != "anti-affinity" {
		t.Fatalf("server group %+v %v", sg, err)
	}

	if err := servers.Delete(ctx, a, srv.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	err = gophercloud.WaitFor(ctx, func(ctx context.Context) (bool, error) {
		_, err := servers.Get(ctx, a, srv.ID).Extract()
		if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return true, nil
		}
		return false, nil
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}
