package volume_test

import (
	"context"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/limits"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/snapshots"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumetypes"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// client is a gophercloud block storage v3 client for a token of the
// harness, on the project's endpoint as the catalog gives it.
func (h *harness) client(token string) *gophercloud.ServiceClient {
	pc := &gophercloud.ProviderClient{TokenID: token, HTTPClient: *h.srv.Client()}
	base := h.srv.URL + "/v3/" + tokens[token].ProjectID + "/"
	return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: base, ResourceBase: base, Type: "volumev3"}
}

// TestGophercloud drives the API with gophercloud's blockstorage v3
// package, a second client whose result types, pagers and error handling
// judge wire compatibility.
func TestGophercloud(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, admin := h.client("a"), h.client("admin")

	vol, err := volumes.Create(ctx, a, volumes.CreateOpts{Size: 1, Name: "gc", Metadata: map[string]string{"k": "v"}}, nil).Extract()
	if err != nil || vol.Status != "creating" {
		t.Fatalf("create %+v %v", vol, err)
	}
	if err := volumes.WaitForStatus(ctx, a, vol.ID, "available"); err != nil {
		t.Fatal(err)
	}
	got, err := volumes.Get(ctx, a, vol.ID).Extract()
	if err != nil || got.Name != "gc" || got.Size != 1 || got.Metadata["k"] != "v" || got.VolumeType != "__DEFAULT__" || got.Bootable != "false" || got.TenantID != projA {
		t.Fatalf("get %+v %v", got, err)
	}
	if _, err := volumes.Get(ctx, a, "6a1b1f8a-1a5a-4a5e-9e63-0e1c2b8a9f10").Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("get unknown: %v", err)
	}
	name := "gc2"
	if up, err := volumes.Update(ctx, a, vol.ID, volumes.UpdateOpts{Name: &name}).Extract(); err != nil || up.Name != "gc2" {
		t.Fatalf("update %+v %v", up, err)
	}
	for i := 0; i < 2; i++ {
		v, err := volumes.Create(ctx, a, volumes.CreateOpts{Size: 1}, nil).Extract()
		if err != nil {
			t.Fatal(err)
		}
		if err := volumes.WaitForStatus(ctx, a, v.ID, "available"); err != nil {
			t.Fatal(err)
		}
	}
	// The pager follows volumes_links one volume at a time.
	count := 0
	err = volumes.List(a, volumes.ListOpts{Limit: 1}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
		vs, err := volumes.ExtractVolumes(p)
		count += len(vs)
		return true, err
	})
	if err != nil || count != 3 {
		t.Fatalf("paged %d %v", count, err)
	}
	all, err := volumes.List(a, volumes.ListOpts{Name: "gc2"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if vs, _ := volumes.ExtractVolumes(all); len(vs) != 1 || vs[0].ID != vol.ID {
		t.Fatalf("list by name %+v", vs)
	}

	// Actions.
	if err := volumes.Reserve(ctx, admin, vol.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := volumes.Reserve(ctx, admin, vol.ID).ExtractErr(); !gophercloud.ResponseCodeIs(err, 400) {
		t.Fatalf("second reserve: %v", err)
	}
	conn, err := volumes.InitializeConnection(ctx, admin, vol.ID, volumes.InitializeConnectionOpts{Host: "compute1", Multipath: new(bool)}).Extract()
	if err != nil || conn["driver_volume_type"] != "nbd" {
		t.Fatalf("initialize_connection %v %v", conn, err)
	}
	if err := volumes.Attach(ctx, admin, vol.ID, volumes.AttachOpts{MountPoint: "/dev/vdb", InstanceUUID: serverID, Mode: volumes.ReadWrite}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := volumes.WaitForStatus(ctx, a, vol.ID, "in-use"); err != nil {
		t.Fatal(err)
	}
	got, _ = volumes.Get(ctx, a, vol.ID).Extract()
	if len(got.Attachments) != 1 || got.Attachments[0].ServerID != serverID || got.Attachments[0].Device != "/dev/vdb" {
		t.Fatalf("attachments %+v", got.Attachments)
	}
	if err := volumes.BeginDetaching(ctx, admin, vol.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := volumes.TerminateConnection(ctx, admin, vol.ID, volumes.TerminateConnectionOpts{Host: "compute1", Multipath: new(bool)}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := volumes.Detach(ctx, admin, vol.ID, volumes.DetachOpts{AttachmentID: got.Attachments[0].AttachmentID}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := volumes.WaitForStatus(ctx, a, vol.ID, "available"); err != nil {
		t.Fatal(err)
	}
	if err := volumes.ExtendSize(ctx, a, vol.ID, volumes.ExtendSizeOpts{NewSize: 2}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := volumes.WaitForStatus(ctx, a, vol.ID, "available"); err != nil {
		t.Fatal(err)
	}
	if err := volumes.SetBootable(ctx, a, vol.ID, volumes.BootableOpts{Bootable: true}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	got, _ = volumes.Get(ctx, a, vol.ID).Extract()
	if got.Size != 2 || got.Bootable != "true" {
		t.Fatalf("after extend and set_bootable %+v", got)
	}

	// Snapshots.
	snap, err := snapshots.Create(ctx, a, snapshots.CreateOpts{VolumeID: vol.ID, Name: "gs"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshots.WaitForStatus(ctx, a, snap.ID, "available"); err != nil {
		t.Fatal(err)
	}
	sp, err := snapshots.List(a, snapshots.ListOpts{VolumeID: vol.ID}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ss, _ := snapshots.ExtractSnapshots(sp); len(ss) != 1 || ss[0].Size != 2 {
		t.Fatalf("snapshots %+v", ss)
	}
	if err := snapshots.Delete(ctx, a, snap.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}

	// Types and limits.
	tp, err := volumetypes.List(a, volumetypes.ListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ts, _ := volumetypes.ExtractVolumeTypes(tp); len(ts) != 1 || ts[0].Name != "__DEFAULT__" {
		t.Fatalf("types %+v", ts)
	}
	lim, err := limits.Get(ctx, a).Extract()
	if err != nil || lim.Absolute.TotalVolumesUsed != 3 {
		t.Fatalf("limits %+v %v", lim, err)
	}

	h.waitGone("a", path("a", "/snapshots/"+snap.ID))
	if err := volumes.Delete(ctx, a, vol.ID, volumes.DeleteOpts{}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	h.waitGone("a", path("a", "/volumes/"+vol.ID))
}
