package compute_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/compute/fakeagent"
)

// fakeGlance serves the few Glance v2 calls the compute API makes.
type fakeGlance struct {
	mu      sync.Mutex
	images  map[string]map[string]any // guarded by mu
	created []map[string]any          // guarded by mu
	tokens  []string                  // guarded by mu
}

func (g *fakeGlance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokens = append(g.tokens, r.Header.Get("X-Auth-Token"))
	switch {
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v2/images/"):
		img, ok := g.images[strings.TrimPrefix(r.URL.Path, "/v2/images/")]
		if !ok {
			http.Error(w, "not found", 404)
			return
		}
		_ = json.NewEncoder(w).Encode(img)
	case r.Method == "POST" && r.URL.Path == "/v2/images":
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		g.created = append(g.created, body)
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "11111111-2222-3333-4444-555555555555"})
	default:
		http.Error(w, "unexpected", 500)
	}
}

// fakeNeutron knows one network and two ports, one of them in use.
func fakeNeutron(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v2.0/networks/3b7d6b2c-0a2e-4e47-9f3b-8f0b7c4e2d11":
		_, _ = w.Write([]byte(`{"network": {"id": "3b7d6b2c-0a2e-4e47-9f3b-8f0b7c4e2d11"}}`))
	case "/v2.0/ports/aaaaaaaa-0000-0000-0000-000000000001":
		_, _ = w.Write([]byte(`{"port": {"device_id": ""}}`))
	case "/v2.0/ports/aaaaaaaa-0000-0000-0000-000000000002":
		_, _ = w.Write([]byte(`{"port": {"device_id": "someone"}}`))
	default:
		http.Error(w, "not found", 404)
	}
}

const (
	armImage    = "0f7c1c4e-1111-4444-8888-000000000001"
	bigImage    = "0f7c1c4e-1111-4444-8888-000000000002"
	queuedImage = "0f7c1c4e-1111-4444-8888-000000000003"
)

func TestImageAndNetworkChecks(t *testing.T) {
	glance := &fakeGlance{images: map[string]map[string]any{
		imageID:     {"id": imageID, "status": "active", "size": 20 << 20, "min_disk": 0, "min_ram": 0, "os_distro": "cirros"},
		armImage:    {"id": armImage, "status": "active", "size": 1 << 20, "hw_architecture": "aarch64"},
		bigImage:    {"id": bigImage, "status": "active", "size": 3 << 30},
		queuedImage: {"id": queuedImage, "status": "queued"},
	}}
	gs := httptest.NewServer(glance)
	defer gs.Close()
	ns := httptest.NewServer(http.HandlerFunc(fakeNeutron))
	defer ns.Close()
	h := newHarness(t, func(c *computeConfig) {
		c.Images = compute.NewImageClient(gs.URL)
		c.Networks = compute.NewNetworkClient(ns.URL)
	})
	h.addHost(fakeagent.Config{Host: "x86"})
	post := func(srv map[string]any, want int) string {
		t.Helper()
		body := map[string]any{"name": "x", "imageRef": imageID, "flavorRef": "1"}
		for k, v := range srv {
			body[k] = v
		}
		return h.fail("a", "POST", "/v2.1/servers", map[string]any{"server": body}, want)
	}
	if msg := post(map[string]any{"imageRef": "0f7c1c4e-1111-4444-8888-00000000ffff"}, 400); !strings.Contains(msg, "could not be found") {
		t.Fatalf("unknown image: %q", msg)
	}
	if msg := post(map[string]any{"imageRef": bigImage}, 400); !strings.HasPrefix(msg, "Flavor's disk is too small for requested image.") {
		t.Fatalf("image too big: %q", msg)
	}
	post(map[string]any{"imageRef": queuedImage}, 400)
	if msg := post(map[string]any{"networks": []any{map[string]any{"uuid": "3b7d6b2c-0a2e-4e47-9f3b-8f0b7c4e2d99"}}}, 400); msg != "Network 3b7d6b2c-0a2e-4e47-9f3b-8f0b7c4e2d99 could not be found." {
		t.Fatalf("unknown network: %q", msg)
	}
	post(map[string]any{"networks": []any{map[string]any{"port": "aaaaaaaa-0000-0000-0000-000000000009"}}}, 400)
	post(map[string]any{"networks": []any{map[string]any{"port": "aaaaaaaa-0000-0000-0000-000000000002"}}}, 409)
	// The big image fits a bigger flavor.
	h.boot("a", "big", map[string]any{"imageRef": bigImage, "flavorRef": "2"})
	// Valid requests build, with the image's properties passed to the agent.
	id := h.boot("a", "ok", map[string]any{"networks": []any{map[string]any{"uuid": "3b7d6b2c-0a2e-4e47-9f3b-8f0b7c4e2d11"},
		map[string]any{"port": "aaaaaaaa-0000-0000-0000-000000000001"}}})
	h.waitStatus("a", id, "ACTIVE")
	var build compute.Command
	for _, c := range h.agents["x86"].Commands() {
		if c.Instance.ID == id {
			build = c
		}
	}
	if build.Instance.ImageProperties["os_distro"] != "cirros" || len(build.Instance.Requested) != 2 {
		t.Fatalf("build spec %+v", build.Instance)
	}
	// An aarch64 image only goes to an aarch64 host.
	arm := h.boot("a", "arm", map[string]any{"imageRef": armImage})
	h.waitStatus("a", arm, "ERROR")
	h.addHost(fakeagent.Config{Host: "arm", Architecture: "aarch64"})
	arm = h.boot("a", "arm2", map[string]any{"imageRef": armImage})
	if s := h.waitStatus("admin", arm, "ACTIVE"); s["OS-EXT-SRV-ATTR:host"] != "arm" {
		t.Fatalf("arm image on %v", s["OS-EXT-SRV-ATTR:host"])
	}
	// Snapshots are registered in the image service with the user's token.
	st, _, hdr := h.do("a", "POST", "/v2.1/servers/"+id+"/action", map[string]any{"createImage": map[string]any{"name": "snap", "metadata": map[string]any{"purpose": "backup"}}})
	if st != 202 || !strings.HasSuffix(hdr.Get("Location"), "/images/11111111-2222-3333-4444-555555555555") {
		t.Fatalf("createImage %d %v", st, hdr)
	}
	glance.mu.Lock()
	defer glance.mu.Unlock()
	if len(glance.created) != 1 || glance.created[0]["instance_uuid"] != id || glance.created[0]["purpose"] != "backup" || glance.created[0]["image_type"] != "snapshot" {
		t.Fatalf("snapshot image %v", glance.created)
	}
	for _, tok := range glance.tokens {
		if tok != "a" {
			t.Fatalf("image service called with token %q", tok)
		}
	}
}
