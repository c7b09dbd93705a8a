package computeagent_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/computeagent"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/fake"
	"github.com/nimbus-cloud/nimbus/internal/policy"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

const (
	projA    = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	imageID  = "70a599e0-31e7-49b7-b260-868f441e862b"
	badImage = "0badbad0-31e7-49b7-b260-868f441e862b"
	netID    = "11111111-2222-3333-4444-555555555555"
	subnetID = "66666666-7777-8888-9999-000000000000"
	sgID     = "5ec00000-0000-0000-0000-000000000001"
	prefix   = "tt"
)

var tokens = apitest.Tokens{
	"admin": {UserID: "u-admin", ProjectID: "adadadadadadadadadadadadadadadad", Roles: []api.Role{{Name: "admin"}, {Name: "member"}, {Name: "reader"}}},
	"a":     {UserID: "u-a", ProjectID: projA, Roles: []api.Role{{Name: "member"}, {Name: "reader"}}},
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// recDriver is the fake driver, counting what the agent asks of it.
type recDriver struct {
	*fake.Driver
	mu     sync.Mutex
	starts map[string]int             // guarded by mu; spawns that started a guest
	specs  map[string]hypervisor.Spec // guarded by mu
	calls  []string                   // guarded by mu; "op uuid"
	// spawnErr, when set, fails every spawn.
	spawnErr error // guarded by mu
}

func newRecDriver() *recDriver { return newRecDriverWith(fake.Config{}) }

func newRecDriverWith(cfg fake.Config) *recDriver {
	return &recDriver{Driver: fake.New(cfg), starts: map[string]int{}, specs: map[string]hypervisor.Spec{}}
}

func (d *recDriver) note(op, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, op+" "+id)
}

func (d *recDriver) count(call string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (d *recDriver) Spawn(ctx context.Context, spec hypervisor.Spec) (hypervisor.Info, error) {
	d.mu.Lock()
	fail := d.spawnErr
	d.mu.Unlock()
	info, err := hypervisor.Info{}, fail
	if fail == nil {
		info, err = d.Driver.Spawn(ctx, spec)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, "spawn "+spec.UUID)
	if err == nil {
		d.starts[spec.UUID]++
		d.specs[spec.UUID] = spec
	}
	return info, err
}

func (d *recDriver) Reboot(ctx context.Context, id string, k hypervisor.RebootKind) error {
	d.note("reboot-"+string(k), id)
	return d.Driver.Reboot(ctx, id, k)
}

func (d *recDriver) PowerOff(ctx context.Context, id string, t time.Duration) error {
	d.note("power_off", id)
	return d.Driver.PowerOff(ctx, id, t)
}

func (d *recDriver) PowerOn(ctx context.Context, id string) error {
	d.note("power_on", id)
	return d.Driver.PowerOn(ctx, id)
}

func (d *recDriver) Destroy(ctx context.Context, id string) error {
	d.note("destroy", id)
	return d.Driver.Destroy(ctx, id)
}

func (d *recDriver) startsOf(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.starts[id]
}

func (d *recDriver) spec(id string) hypervisor.Spec {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.specs[id]
}

// fakeCloud is the image and networking APIs, as much as an agent uses.
type fakeCloud struct {
	mu        sync.Mutex
	images    map[string][]byte // guarded by mu; id -> bytes
	badSum    map[string]bool   // guarded by mu; images whose checksum lies
	downloads int               // guarded by mu
	ports     map[string]map[string]any
	nextIP    int
}

func newFakeCloud() *fakeCloud {
	return &fakeCloud{
		images: map[string][]byte{imageID: []byte("a tiny guest image"), badImage: []byte("corrupt bytes")},
		badSum: map[string]bool{badImage: true}, ports: map[string]map[string]any{},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (c *fakeCloud) imageHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/images/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		b, ok := c.images[r.PathValue("id")]
		bad := c.badSum[r.PathValue("id")]
		c.mu.Unlock()
		if !ok {
			writeJSON(w, 404, map[string]any{"message": "not found"})
			return
		}
		sum := sha256.Sum256(b)
		if bad {
			sum = sha256.Sum256([]byte("something else"))
		}
		m := md5.Sum(b)
		writeJSON(w, 200, map[string]any{"id": r.PathValue("id"), "status": "active", "os_hash_algo": "sha256",
			"os_hash_value": hex.EncodeToString(sum[:]), "checksum": hex.EncodeToString(m[:]), "size": len(b)})
	})
	mux.HandleFunc("PUT /v2/images/{id}/file", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.images[r.PathValue("id")] = b
		c.mu.Unlock()
		w.WriteHeader(204)
	})
	mux.HandleFunc("DELETE /v2/images/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		delete(c.images, r.PathValue("id"))
		c.mu.Unlock()
		w.WriteHeader(204)
	})
	mux.HandleFunc("GET /v2/images/{id}/file", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		b, ok := c.images[r.PathValue("id")]
		c.downloads++
		c.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b)
	})
	return mux
}

func (c *fakeCloud) networkHandler() http.Handler {
	mux := http.NewServeMux()
	net := map[string]any{"id": netID, "name": "private", "mtu": 1450, "project_id": projA, "shared": false}
	mux.HandleFunc("GET /v2.0/networks", func(w http.ResponseWriter, r *http.Request) {
		list := []any{}
		if r.URL.Query().Get("project_id") == projA {
			list = append(list, net)
		}
		writeJSON(w, 200, map[string]any{"networks": list})
	})
	mux.HandleFunc("GET /v2.0/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != netID {
			writeJSON(w, 404, map[string]any{})
			return
		}
		writeJSON(w, 200, map[string]any{"network": net})
	})
	mux.HandleFunc("GET /v2.0/subnets/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"subnet": map[string]any{"id": subnetID, "ip_version": 4, "cidr": "10.0.0.0/24",
			"gateway_ip": "10.0.0.1", "enable_dhcp": true, "dns_nameservers": []string{"10.0.0.2"}}})
	})
	mux.HandleFunc("GET /v2.0/security-groups", func(w http.ResponseWriter, r *http.Request) {
		list := []any{}
		if r.URL.Query().Get("name") == "default" {
			list = append(list, map[string]any{"id": sgID})
		}
		writeJSON(w, 200, map[string]any{"security_groups": list})
	})
	mux.HandleFunc("POST /v2.0/ports", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Port map[string]any `json:"port"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		writeJSON(w, 201, map[string]any{"port": c.addPort(body.Port)})
	})
	mux.HandleFunc("GET /v2.0/ports", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		list := []any{}
		for _, p := range c.ports {
			if d := r.URL.Query().Get("device_id"); d == "" || p["device_id"] == d {
				list = append(list, p)
			}
		}
		writeJSON(w, 200, map[string]any{"ports": list})
	})
	mux.HandleFunc("GET /v2.0/ports/{id}", func(w http.ResponseWriter, r *http.Request) {
		p := c.port(r.PathValue("id"))
		if p == nil {
			writeJSON(w, 404, map[string]any{})
			return
		}
		writeJSON(w, 200, map[string]any{"port": p})
	})
	mux.HandleFunc("PUT /v2.0/ports/{id}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Port map[string]any `json:"port"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		c.mu.Lock()
		p := c.ports[r.PathValue("id")]
		for k, v := range body.Port {
			if p != nil {
				p[k] = v
			}
		}
		c.mu.Unlock()
		if p == nil {
			writeJSON(w, 404, map[string]any{})
			return
		}
		writeJSON(w, 200, map[string]any{"port": c.port(r.PathValue("id"))})
	})
	mux.HandleFunc("DELETE /v2.0/ports/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		_, ok := c.ports[r.PathValue("id")]
		delete(c.ports, r.PathValue("id"))
		c.mu.Unlock()
		if !ok {
			writeJSON(w, 404, map[string]any{})
			return
		}
		w.WriteHeader(204)
	})
	return mux
}

func (c *fakeCloud) addPort(p map[string]any) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextIP++
	p["id"] = uuid.NewString()
	p["mac_address"] = fmt.Sprintf("fa:16:3e:00:00:%02x", c.nextIP)
	p["fixed_ips"] = []any{map[string]any{"subnet_id": subnetID, "ip_address": fmt.Sprintf("10.0.0.%d", c.nextIP+10)}}
	if _, ok := p["device_id"]; !ok {
		p["device_id"] = ""
	}
	if _, ok := p["binding:host_id"]; !ok {
		p["binding:host_id"] = ""
	}
	c.ports[p["id"].(string)] = p
	return copyMap(p)
}

func copyMap(p map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range p {
		out[k] = v
	}
	return out
}

func (c *fakeCloud) port(id string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.ports[id]; p != nil {
		return copyMap(p)
	}
	return nil
}

func (c *fakeCloud) portsOf(device string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, p := range c.ports {
		if p["device_id"] == device {
			out = append(out, copyMap(p))
		}
	}
	return out
}

// tapExists plays the networking agent: a port bound to host has a tap.
func (c *fakeCloud) tapExists(host string) func(string) bool {
	return func(name string) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for id, p := range c.ports {
			if p["binding:host_id"] == host && dataplane.PortDevice(prefix, id) == name {
				return true
			}
		}
		return false
	}
}

type harness struct {
	t     *testing.T
	bus   *bus.Bus
	srv   *httptest.Server
	cloud *fakeCloud
	image *gophercloud.ServiceClient
	net   *gophercloud.ServiceClient
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t)
}

// newHarnessWith is newHarness with changes to the compute API's config.
func newHarnessWith(t *testing.T, mods ...func(*compute.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	bsrv, err := bus.StartServer(bus.ServerConfig{Port: -1, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(ctx, bus.Config{Server: bsrv, Name: "computeagent-test", Logger: quietLog()})
	if err != nil {
		bsrv.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		bsrv.Shutdown()
	})
	db, err := store.Open(ctx, t.TempDir()+"/nimbus.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	enf, err := policy.NewEnforcer(compute.DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	apiSvc := &api.Service{Name: "compute", Errors: api.NovaErrors, Policy: api.PolicyAuthorizer{Enforcer: enf}, Log: quietLog(), Tokens: tokens}
	cfg := compute.Config{Bus: b, DefaultFlavors: true, ReconcileInterval: time.Hour}
	for _, m := range mods {
		m(&cfg)
	}
	svc, err := compute.New(ctx, cfg, db, apiSvc, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)

	cloud := newFakeCloud()
	imgSrv := httptest.NewServer(cloud.imageHandler())
	t.Cleanup(imgSrv.Close)
	netSrv := httptest.NewServer(cloud.networkHandler())
	t.Cleanup(netSrv.Close)
	pc := &gophercloud.ProviderClient{TokenID: "service-token"}
	return &harness{t: t, bus: b, srv: srv, cloud: cloud,
		image: &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: imgSrv.URL + "/", ResourceBase: imgSrv.URL + "/v2/"},
		net:   &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: netSrv.URL + "/", ResourceBase: netSrv.URL + "/v2.0/"},
	}
}

// config is an agent configuration for host on drv.
func (h *harness) config(host string, drv hypervisor.Driver) computeagent.Config {
	return computeagent.Config{
		Host: host, Bus: h.bus, Driver: drv, Image: h.image, Network: h.net,
		ImageCacheDir: h.t.TempDir(), TapPrefix: prefix, TapExists: h.cloud.tapExists(host),
		TapTimeout: 2 * time.Second, Heartbeat: 500 * time.Millisecond, PowerSync: 100 * time.Millisecond,
		SyncTimeout: 5 * time.Second, Log: quietLog(),
	}
}

// startAgent starts an agent and waits until the API lists its host.
func (h *harness) startAgent(cfg computeagent.Config) *computeagent.Agent {
	h.t.Helper()
	a, err := computeagent.Start(context.Background(), cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = a.Stop() })
	h.eventually("host "+cfg.Host+" up", func() bool {
		body := h.json("admin", "GET", "/v2.1/os-services?host="+cfg.Host, nil, 200)
		svcs, _ := body["services"].([]any)
		return len(svcs) == 1 && svcs[0].(map[string]any)["state"] == "up"
	})
	return a
}

func (h *harness) eventually(what string, ok func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) json(token, method, path string, body any, want int) map[string]any {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, out)
	}
	m := map[string]any{}
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &m); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
	return m
}

// boot creates a server as project A and returns its id.
func (h *harness) boot(name string, extra map[string]any) string {
	h.t.Helper()
	srv := map[string]any{"name": name, "imageRef": imageID, "flavorRef": "1"}
	for k, v := range extra {
		srv[k] = v
	}
	body := h.json("a", "POST", "/v2.1/servers", map[string]any{"server": srv}, 202)
	return body["server"].(map[string]any)["id"].(string)
}

func (h *harness) server(id string) map[string]any {
	h.t.Helper()
	return h.json("a", "GET", "/v2.1/servers/"+id, nil, 200)["server"].(map[string]any)
}

func (h *harness) waitStatus(id, status string) map[string]any {
	h.t.Helper()
	var s map[string]any
	h.eventually("server "+id+" "+status, func() bool {
		s = h.server(id)
		return s["status"] == status && s["OS-EXT-STS:task_state"] == nil
	})
	return s
}

func (h *harness) action(id string, body any) {
	h.t.Helper()
	h.json("a", "POST", "/v2.1/servers/"+id+"/action", body, 202)
}

func (h *harness) waitGone(id string) {
	h.t.Helper()
	h.eventually("server "+id+" deleted", func() bool {
		req, _ := http.NewRequest("GET", h.srv.URL+"/v2.1/servers/"+id, nil)
		req.Header.Set("X-Auth-Token", "a")
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 404
	})
}
