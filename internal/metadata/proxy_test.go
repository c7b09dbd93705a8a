package metadata

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
)

// fakeNeutron serves the few networking API calls the metadata service
// makes, over one router with one guest (10.0.0.5) and, on a network the
// router is not attached to, another guest with the same address.
type fakeNeutron struct {
	portLists atomic.Int32
}

func (f *fakeNeutron) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ports := []map[string]any{
		{"id": "rtr-if", "network_id": "net-1", "device_id": "router-1", "device_owner": "network:router_interface",
			"fixed_ips": []map[string]string{{"subnet_id": "sub-1", "ip_address": "10.0.0.1"}}},
		{"id": "port-0123456789", "network_id": "net-1", "device_id": testInstance, "device_owner": "compute:nova",
			"project_id": testProject, "mac_address": "fa:16:3e:00:00:05",
			"fixed_ips": []map[string]string{{"subnet_id": "sub-1", "ip_address": "10.0.0.5"}}},
		{"id": "dhcp", "network_id": "net-1", "device_id": "dhcp-1", "device_owner": "network:dhcp",
			"fixed_ips": []map[string]string{{"subnet_id": "sub-1", "ip_address": "10.0.0.2"}}},
		{"id": "elsewhere", "network_id": "net-2", "device_id": "other-instance", "device_owner": "compute:nova",
			"project_id": "proj-2", "fixed_ips": []map[string]string{{"subnet_id": "sub-2", "ip_address": "10.0.0.5"}}},
	}
	var out any
	switch r.URL.Path {
	case "/v2.0/ports":
		f.portLists.Add(1)
		q := r.URL.Query()
		var sel []map[string]any
		for _, p := range ports {
			ip := p["fixed_ips"].([]map[string]string)[0]["ip_address"]
			if (q.Has("device_id") && p["device_id"] != q.Get("device_id")) ||
				(q.Has("network_id") && !slices.Contains(q["network_id"], p["network_id"].(string))) ||
				(q.Has("fixed_ips") && q.Get("fixed_ips") != "ip_address="+ip) {
				continue
			}
			sel = append(sel, p)
		}
		out = map[string]any{"ports": sel}
	case "/v2.0/networks/net-1":
		out = map[string]any{"network": map[string]any{"id": "net-1", "mtu": 1450}}
	case "/v2.0/subnets/sub-1":
		out = map[string]any{"subnet": map[string]any{"id": "sub-1", "ip_version": 4, "cidr": "10.0.0.0/24", "enable_dhcp": true}}
	case "/v2.0/floatingips":
		out = map[string]any{"floatingips": []map[string]string{{"floating_ip_address": "172.24.4.10", "fixed_ip_address": "10.0.0.5"}}}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func neutronClient(url string) func(context.Context) (*gophercloud.ServiceClient, error) {
	return func(context.Context) (*gophercloud.ServiceClient, error) {
		return &gophercloud.ServiceClient{ProviderClient: &gophercloud.ProviderClient{}, Endpoint: url + "/", ResourceBase: url + "/v2.0/"}, nil
	}
}

type proxyWorld struct {
	neutron *fakeNeutron
	proxy   *Proxy
}

// newProxyWorld runs the real metadata server behind the proxy, both on
// the fake networking API; proxySecret is the agent's.
func newProxyWorld(t *testing.T, proxySecret []byte) proxyWorld {
	t.Helper()
	fn := &fakeNeutron{}
	ns := httptest.NewServer(fn)
	t.Cleanup(ns.Close)
	nt := &Neutron{Client: neutronClient(ns.URL)}
	ms := httptest.NewServer(NewServer(ServerConfig{Secret: testSecret, Guest: fakeGuests, Network: nt}))
	t.Cleanup(ms.Close)
	p, err := NewProxy(ProxyConfig{Secret: proxySecret, URL: ms.URL, Finder: nt})
	if err != nil {
		t.Fatal(err)
	}
	return proxyWorld{fn, p}
}

// guestGet is a guest's request as the data plane hands it over.
func (w proxyWorld) guestGet(path, ip, router string, extra map[string]string) response {
	h := map[string]string{HeaderForwarded: ip, RouterHeader: router,
		HeaderInstanceID: "", HeaderTenantID: "", HeaderSignature: ""}
	for k, v := range extra {
		h[k] = v
	}
	return get(w.proxy, path, h)
}

func TestProxyFetchesMetadata(t *testing.T) {
	w := newProxyWorld(t, testSecret)
	got := w.guestGet("/openstack/latest/meta_data.json", "10.0.0.5", "router-1", nil)
	var md map[string]any
	if err := json.Unmarshal([]byte(got.body), &md); got.code != 200 || err != nil || md["uuid"] != testInstance || got.ct != appJSON {
		t.Fatalf("%d %s %q", got.code, got.ct, got.body)
	}
	if got := w.guestGet("/latest/meta-data/public-ipv4", "10.0.0.5", "router-1", nil); got.body != "172.24.4.10" {
		t.Fatalf("public-ipv4 %d %q", got.code, got.body)
	}
	// The guest's identity was cached: two port lists for the first
	// request (router interfaces, the address), none after.
	before := w.neutron.portLists.Load()
	w.guestGet("/latest/meta-data/instance-id", "10.0.0.5", "router-1", nil)
	if n := w.neutron.portLists.Load() - before; n > 1 { // the server's own cache may have expired: at most its one list
		t.Fatalf("%d port lists for a cached guest", n)
	}
}

// A guest cannot claim to be another instance: its headers are replaced.
func TestProxyIgnoresGuestHeaders(t *testing.T) {
	w := newProxyWorld(t, testSecret)
	other := "other-instance"
	got := w.guestGet("/latest/meta-data/instance-id", "10.0.0.5", "router-1", map[string]string{
		HeaderInstanceID: other, HeaderTenantID: "proj-2", HeaderSignature: Sign(testSecret, other)})
	if got.code != 200 || got.body != "i-0000002a" {
		t.Fatalf("%d %q", got.code, got.body)
	}
}

func TestProxyRefusals(t *testing.T) {
	w := newProxyWorld(t, testSecret)
	for _, tc := range []struct {
		name, ip, router string
		code             int
	}{
		{"unknown address", "10.0.0.9", "router-1", 404},
		{"a non-compute port", "10.0.0.2", "router-1", 404},
		{"unknown router", "10.0.0.5", "router-2", 404},
		{"no address", "", "router-1", 400},
		{"no router", "10.0.0.5", "", 400},
	} {
		if got := w.guestGet("/latest/meta-data/", tc.ip, tc.router, nil); got.code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, got.code, got.body, tc.code)
		}
	}
	bad := newProxyWorld(t, []byte("not the secret"))
	if got := bad.guestGet("/latest/meta-data/", "10.0.0.5", "router-1", nil); got.code != 403 {
		t.Errorf("mismatched secrets: %d %q", got.code, got.body)
	}
}

func TestProxyUnreachableServer(t *testing.T) {
	ns := httptest.NewServer(&fakeNeutron{})
	defer ns.Close()
	p, err := NewProxy(ProxyConfig{Secret: testSecret, URL: "http://127.0.0.1:1", Finder: &Neutron{Client: neutronClient(ns.URL)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := (proxyWorld{proxy: p}).guestGet("/", "10.0.0.5", "router-1", nil); got.code != 500 {
		t.Fatalf("%d %q", got.code, got.body)
	}
	if _, err := NewProxy(ProxyConfig{URL: "not a url"}); err == nil {
		t.Fatal("accepted a relative URL")
	}
}
