// Command netbench measures the networking API's latency for the two
// calls the networking issue names: port create and floating IP
// associate. It logs in with a password, builds a private network with a
// /16 subnet and a router to an external network it creates (as admin),
// then runs -concurrency workers for -n operations each and prints
// p50/p90/p99 and throughput per operation as one JSON line on stdout.
// Every resource it made is deleted at the end. Any error exits 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/quotas"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

func main() {
	authURL := flag.String("auth-url", "", "identity v3 URL")
	user := flag.String("user", "admin", "user (needs admin to create the external network)")
	password := flag.String("password", "", "password")
	project := flag.String("project", "admin", "project")
	region := flag.String("region", "RegionOne", "region")
	n := flag.Int("n", 200, "operations per worker")
	concurrency := flag.Int("concurrency", 4, "workers")
	label := flag.String("label", "nimbus", "label for the result")
	flag.Parse()
	ctx := context.Background()
	provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: *authURL, Username: *user,
		Password: *password, DomainName: "Default", TenantName: *project, AllowReauth: true})
	if err == nil {
		var c *gophercloud.ServiceClient
		if c, err = openstack.NewNetworkV2(provider, gophercloud.EndpointOpts{Region: *region}); err == nil {
			var projectID string
			if projectID, err = tokenProject(ctx, provider); err == nil {
				err = run(ctx, c, projectID, *n, *concurrency, *label)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", err)
		os.Exit(1)
	}
}

// topology is what the benchmark builds first and removes last.
type topology struct {
	ext, priv, router string
}

func setup(ctx context.Context, c *gophercloud.ServiceClient, projectID string) (topology, func(), error) {
	var t topology
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	// The run makes more ports and floating IPs than the default quotas
	// allow; the project's own quotas come back afterwards.
	unlimited := -1
	if _, err := quotas.Update(ctx, c, projectID, quotas.UpdateOpts{Port: &unlimited, FloatingIP: &unlimited}).Extract(); err != nil {
		return t, cleanup, fmt.Errorf("lift quotas: %w", err)
	}
	undo = append(undo, func() { quotas.Delete(ctx, c, projectID) })
	yes, no := true, false
	ext, err := networks.Create(ctx, c, networks.CreateOpts{Name: "netbench-ext", AdminStateUp: &yes}).Extract()
	if err != nil {
		return t, cleanup, err
	}
	undo = append(undo, func() { networks.Delete(ctx, c, ext.ID) })
	// Mark it external (admin) through an update, which every Neutron takes.
	if _, err := networks.Update(ctx, c, ext.ID, external{}).Extract(); err != nil {
		return t, cleanup, fmt.Errorf("make the external network: %w", err)
	}
	if _, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: ext.ID, CIDR: "100.80.0.0/16", IPVersion: 4, EnableDHCP: &no}).Extract(); err != nil {
		return t, cleanup, err
	}
	priv, err := networks.Create(ctx, c, networks.CreateOpts{Name: "netbench"}).Extract()
	if err != nil {
		return t, cleanup, err
	}
	undo = append(undo, func() { networks.Delete(ctx, c, priv.ID) })
	sn, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: priv.ID, CIDR: "10.80.0.0/16", IPVersion: 4, EnableDHCP: &no}).Extract()
	if err != nil {
		return t, cleanup, err
	}
	r, err := routers.Create(ctx, c, routers.CreateOpts{Name: "netbench", GatewayInfo: &routers.GatewayInfo{NetworkID: ext.ID}}).Extract()
	if err != nil {
		return t, cleanup, err
	}
	undo = append(undo, func() { routers.Delete(ctx, c, r.ID) })
	if _, err := routers.AddInterface(ctx, c, r.ID, routers.AddInterfaceOpts{SubnetID: sn.ID}).Extract(); err != nil {
		return t, cleanup, err
	}
	undo = append(undo, func() { routers.RemoveInterface(ctx, c, r.ID, routers.RemoveInterfaceOpts{SubnetID: sn.ID}) })
	return topology{ext: ext.ID, priv: priv.ID, router: r.ID}, cleanup, nil
}

// tokenProject is the project the benchmark's token is scoped to.
func tokenProject(ctx context.Context, provider *gophercloud.ProviderClient) (string, error) {
	res, ok := provider.GetAuthResult().(tokens.CreateResult)
	if !ok {
		return "", errors.New("no token from the password login")
	}
	p, err := res.ExtractProject()
	if err != nil || p == nil {
		return "", fmt.Errorf("token project: %v", err)
	}
	return p.ID, nil
}

type external struct{}

func (external) ToNetworkUpdateMap() (map[string]any, error) {
	return map[string]any{"network": map[string]any{"router:external": true}}, nil
}

// stats summarizes one operation's latencies.
func stats(name string, d []time.Duration, wall time.Duration) map[string]any {
	slices.Sort(d)
	q := func(p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	return map[string]any{"op": name, "count": len(d), "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99),
		"per_s": float64(int(float64(len(d))/wall.Seconds()*10)) / 10}
}

func run(ctx context.Context, c *gophercloud.ServiceClient, projectID string, n, workers int, label string) error {
	topo, cleanup, err := setup(ctx, c, projectID)
	defer cleanup()
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var (
		mu                 sync.Mutex
		creates, associate []time.Duration
		made               []string
		fips               []string
		errs               []error
	)
	record := func(dst *[]time.Duration, d time.Duration) {
		mu.Lock()
		*dst = append(*dst, d)
		mu.Unlock()
	}
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// Phase 1: port creates.
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				t := time.Now()
				p, err := ports.Create(ctx, c, ports.CreateOpts{NetworkID: topo.priv}).Extract()
				if err != nil {
					fail(fmt.Errorf("port create: %w", err))
					return
				}
				record(&creates, time.Since(t))
				mu.Lock()
				made = append(made, p.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	createWall := time.Since(start)
	defer func() {
		for _, id := range fips {
			floatingips.Delete(ctx, c, id)
		}
		for _, id := range made {
			ports.Delete(ctx, c, id)
		}
	}()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Phase 2: a floating IP per port (not timed), then associations.
	for range made {
		f, err := floatingips.Create(ctx, c, floatingips.CreateOpts{FloatingNetworkID: topo.ext}).Extract()
		if err != nil {
			return fmt.Errorf("floating ip create: %w", err)
		}
		fips = append(fips, f.ID)
	}
	start = time.Now()
	next := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(made) {
					return
				}
				port := made[i]
				t := time.Now()
				if _, err := floatingips.Update(ctx, c, fips[i], floatingips.UpdateOpts{PortID: &port}).Extract(); err != nil {
					fail(fmt.Errorf("floating ip associate: %w", err))
					return
				}
				record(&associate, time.Since(t))
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	out := map[string]any{"mode": "network-api", "label": label, "concurrency": workers,
		"port_create": stats("port_create", creates, createWall), "fip_associate": stats("fip_associate", associate, time.Since(start))}
	return json.NewEncoder(os.Stdout).Encode(out)
}
