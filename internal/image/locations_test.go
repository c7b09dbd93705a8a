package image

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
)

// withLocations enables the locations API with an HTTP store that may
// read from loopback (where the test's image server is).
func withLocations(cfg *Config) {
	cfg.ShowMultipleLocations = true
	cfg.Stores["http"] = imagestore.NewHTTP("http", nil, &imagestore.SSRFGuard{AllowedHosts: []string{"127.0.0.1"}})
}

func TestLocations(t *testing.T) {
	data := bytes.Repeat([]byte("loc"), 1000)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/image") {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(data))
	}))
	defer src.Close()
	h := newHarnessWith(t, withLocations)
	id := h.create("a", map[string]any{"name": "loc", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)
	if locs, ok := im["locations"].([]any); !ok || len(locs) != 0 {
		t.Fatalf("queued image locations %v, want []", im["locations"])
	}
	add := func(url string, meta map[string]any, vd map[string]any, want int) map[string]any {
		t.Helper()
		v := map[string]any{"url": url, "metadata": meta}
		if vd != nil {
			v["validation_data"] = vd
		}
		return h.patch("a", id, []map[string]any{{"op": "add", "path": "/locations/-", "value": v}}, want)
	}
	for _, bad := range []string{"gopher://info.cern.ch", "file:///etc/passwd", "http://169.254.169.254/latest", src.URL + "/missing"} {
		add(bad, map[string]any{}, nil, http.StatusBadRequest)
	}
	vd := map[string]any{"checksum": strings.Repeat("1", 32), "os_hash_algo": "sha512", "os_hash_value": strings.Repeat("deadbeef", 16)}
	im = add(src.URL+"/image", map[string]any{"foo": "bar"}, vd, http.StatusOK)
	if im["status"] != "active" || im["size"] != float64(len(data)) || im["checksum"] != vd["checksum"] || im["os_hash_value"] != vd["os_hash_value"] {
		t.Fatalf("after the first location: %v", im)
	}
	status, _, got := h.do("a", "GET", "/v2/images/"+id+"/file", nil)
	if status != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("download through the location: %d, %d bytes", status, len(got))
	}
	// A second location must agree with the validation data.
	bad := map[string]any{"checksum": strings.Repeat("2", 32)}
	add(src.URL+"/image#new", map[string]any{}, bad, http.StatusConflict)
	// A mismatch is a conflict even when the value would not be valid for
	// the algorithm (Tempest's test_set_location_with_hash_not_matching).
	otherAlgo := map[string]any{"checksum": vd["checksum"], "os_hash_algo": "sha256", "os_hash_value": vd["os_hash_value"]}
	add(src.URL+"/image#new", map[string]any{}, otherAlgo, http.StatusConflict)
	add(src.URL+"/image", map[string]any{}, nil, http.StatusBadRequest) // duplicate
	im = add(src.URL+"/image#new", map[string]any{"speed": "88mph"}, vd, http.StatusOK)
	locs := im["locations"].([]any)
	if len(locs) != 2 || locs[1].(map[string]any)["url"] != src.URL+"/image#new" {
		t.Fatalf("locations %v", locs)
	}
	// Replacing may change metadata only.
	first := locs[0].(map[string]any)
	first["metadata"] = map[string]any{"date": "2015-10-15"}
	h.patch("a", id, []map[string]any{{"op": "replace", "path": "/locations", "value": locs}}, http.StatusOK)
	h.patch("a", id, []map[string]any{{"op": "replace", "path": "/locations", "value": locs[:1]}}, http.StatusBadRequest)
	other := map[string]any{"url": src.URL + "/image#new3", "metadata": map[string]any{}}
	h.patch("a", id, []map[string]any{{"op": "replace", "path": "/locations", "value": []any{locs[0], other}}}, http.StatusBadRequest)
	im = h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)
	if got := im["locations"].([]any)[0].(map[string]any)["metadata"].(map[string]any)["date"]; got != "2015-10-15" {
		t.Fatalf("replaced metadata %v", im["locations"])
	}
	// Removing works down to one location, not below.
	im = h.patch("a", id, []map[string]any{{"op": "remove", "path": "/locations/0"}}, http.StatusOK)
	if locs := im["locations"].([]any); len(locs) != 1 || locs[0].(map[string]any)["url"] != src.URL+"/image#new" {
		t.Fatalf("after remove: %v", im["locations"])
	}
	h.patch("a", id, []map[string]any{{"op": "remove", "path": "/locations/0"}}, http.StatusForbidden)
	// Another project cannot touch them.
	h.patch("b", id, []map[string]any{{"op": "remove", "path": "/locations/0"}}, http.StatusNotFound)
}

func TestLocationsHiddenByDefault(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "x", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	if im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK); im["locations"] != nil {
		t.Fatalf("locations shown without show_multiple_locations: %v", im["locations"])
	}
	h.patch("a", id, []map[string]any{{"op": "add", "path": "/locations/-", "value": map[string]any{"url": "http://example.com/x", "metadata": map[string]any{}}}}, http.StatusForbidden)
}
