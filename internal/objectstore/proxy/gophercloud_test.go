package proxy

import (
	"context"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/accounts"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/containers"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"
)

// A real client is the judge: gophercloud's object storage API against
// the proxy.
func TestGophercloud(t *testing.T) {
	c := newCluster(t, nil)
	ctx := context.Background()
	sc := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{TokenID: ownerToken},
		Endpoint:       c.url + "/v1/" + account + "/",
	}
	sc.ProviderClient.SetToken(ownerToken)
	if _, err := containers.Create(ctx, sc, "gc", containers.CreateOpts{Metadata: map[string]string{"Owner": "gc"}}).Extract(); err != nil {
		t.Fatalf("create container: %v", err)
	}
	for _, n := range []string{"one.txt", "two.txt", "dir/three.txt"} {
		res := objects.Create(ctx, sc, "gc", n, objects.CreateOpts{Content: strings.NewReader("content of " + n), Metadata: map[string]string{"Name": n}})
		if _, err := res.Extract(); err != nil {
			t.Fatalf("create %s: %v", n, err)
		}
	}
	pages, err := objects.List(sc, "gc", objects.ListOpts{Prefix: "dir/"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names, err := objects.ExtractNames(pages)
	if err != nil || len(names) != 1 || names[0] != "dir/three.txt" {
		t.Fatalf("list: %v %v", names, err)
	}
	pages, err = objects.List(sc, "gc", objects.ListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := objects.ExtractInfo(pages)
	if err != nil || len(infos) != 3 || infos[0].Bytes == 0 || infos[0].Hash == "" {
		t.Fatalf("list info: %+v %v", infos, err)
	}
	dl := objects.Download(ctx, sc, "gc", "two.txt", objects.DownloadOpts{})
	body, err := dl.ExtractContent()
	if err != nil || string(body) != "content of two.txt" {
		t.Fatalf("download %q %v", body, err)
	}
	md, err := objects.Get(ctx, sc, "gc", "two.txt", objects.GetOpts{}).ExtractMetadata()
	if err != nil || md["Name"] != "two.txt" {
		t.Fatalf("object metadata %v %v", md, err)
	}
	cpages, err := containers.List(sc, containers.ListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cnames, err := containers.ExtractNames(cpages)
	if err != nil || len(cnames) != 1 || cnames[0] != "gc" {
		t.Fatalf("containers %v %v", cnames, err)
	}
	if _, err := accounts.Update(ctx, sc, accounts.UpdateOpts{Metadata: map[string]string{"Quota": "1"}}).Extract(); err != nil {
		t.Fatalf("account update: %v", err)
	}
	amd, err := accounts.Get(ctx, sc, accounts.GetOpts{}).ExtractMetadata()
	if err != nil || amd["Quota"] != "1" {
		t.Fatalf("account metadata %v %v", amd, err)
	}
	if _, err := objects.Delete(ctx, sc, "gc", "one.txt", objects.DeleteOpts{}).Extract(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := objects.Download(ctx, sc, "gc", "one.txt", objects.DownloadOpts{}).Err; err == nil {
		t.Fatal("download of a deleted object succeeded")
	}
}
