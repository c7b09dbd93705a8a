package compute_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"testing"
)

func TestVersionDocuments(t *testing.T) {
	h := newHarness(t)
	status, out, hdr := h.do("", "GET", "/", nil)
	if status != 200 {
		t.Fatalf("GET /: %d %s", status, out)
	}
	var root struct {
		Versions []map[string]any `json:"versions"`
	}
	if err := json.Unmarshal(out, &root); err != nil {
		t.Fatal(err)
	}
	if len(root.Versions) != 2 || root.Versions[0]["id"] != "v2.0" || root.Versions[1]["id"] != "v2.1" {
		t.Fatalf("versions: %s", out)
	}
	v21 := root.Versions[1]
	if v21["status"] != "CURRENT" || v21["min_version"] != "2.1" || v21["version"] != "2.79" || v21["updated"] != "2013-07-23T11:33:21Z" {
		t.Fatalf("v2.1 entry: %v", v21)
	}
	if got, want := sortedKeys(v21), []string{"id", "links", "min_version", "status", "updated", "version"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("v2.1 entry keys %v, want %v", got, want)
	}
	if root.Versions[0]["version"] != "" || root.Versions[0]["min_version"] != "" || root.Versions[0]["status"] != "SUPPORTED" {
		t.Fatalf("v2.0 entry: %v", root.Versions[0])
	}
	if hdr.Get("X-Openstack-Request-Id") == "" || hdr.Get("X-Openstack-Request-Id") != hdr.Get("X-Compute-Request-Id") {
		t.Fatalf("request id headers: %v", hdr)
	}

	for _, path := range []string{"/v2.1", "/v2.1/"} {
		doc := h.json("", "GET", path, nil, 200)["version"].(map[string]any)
		if doc["id"] != "v2.1" || doc["version"] != "2.79" || doc["min_version"] != "2.1" {
			t.Fatalf("%s: %v", path, doc)
		}
		mt := doc["media-types"].([]any)[0].(map[string]any)
		if mt["type"] != "application/vnd.openstack.compute+json;version=2.1" {
			t.Fatalf("media type %v", mt)
		}
		links := doc["links"].([]any)
		if links[0].(map[string]any)["href"] != h.srv.URL+"/v2.1/" || links[1].(map[string]any)["rel"] != "describedby" {
			t.Fatalf("links %v", links)
		}
	}
}

func sortedKeys(m map[string]any) []string {
	k := keys(m)
	sort.Strings(k)
	return k
}

func TestMicroversionHeaders(t *testing.T) {
	h := newHarness(t)
	_, _, hdr := h.do("a", "GET", "/v2.1/flavors", nil)
	if hdr.Get("X-OpenStack-Nova-API-Version") != "2.1" || hdr.Get("OpenStack-API-Version") != "compute 2.1" {
		t.Fatalf("default version headers: %v", hdr)
	}
	if vary := hdr.Values("Vary"); len(vary) != 2 {
		t.Fatalf("Vary: %v", vary)
	}
	_, _, hdr = h.do("a", "GET", "/v2.1/flavors", nil, func(r *http.Request) { r.Header.Set("OpenStack-API-Version", "compute 2.55") })
	if hdr.Get("OpenStack-API-Version") != "compute 2.55" {
		t.Fatalf("negotiated: %v", hdr)
	}
	_, _, hdr = h.do("a", "GET", "/v2.1/flavors", nil, mv("latest"))
	if hdr.Get("X-OpenStack-Nova-API-Version") != "2.79" {
		t.Fatalf("latest: %v", hdr)
	}
	msg := h.fail("a", "GET", "/v2.1/flavors", nil, http.StatusNotAcceptable, mv("2.200"))
	if msg != "Version 2.200 is not supported by the API. Minimum is 2.1 and maximum is 2.79." {
		t.Fatalf("406 message %q", msg)
	}
	h.fail("a", "GET", "/v2.1/flavors", nil, 400, mv("two"))
	// Unauthenticated calls get Nova's error body.
	h.fail("", "GET", "/v2.1/servers", nil, 401)
	h.fail("a", "GET", "/v2.1/no-such-thing", nil, 404)
}

func TestProjectIDInURL(t *testing.T) {
	h := newHarness(t)
	body := h.json("a", "GET", "/v2.1/"+projA+"/flavors", nil, 200)
	if len(body["flavors"].([]any)) == 0 {
		t.Fatal("no flavors through the project-scoped URL")
	}
	// The legacy /v2 endpoint is the 2.1 API.
	h.json("a", "GET", "/v2/"+projA+"/flavors/1", nil, 200)
}

func TestExtensions(t *testing.T) {
	h := newHarness(t)
	exts := h.json("a", "GET", "/v2.1/extensions", nil, 200)["extensions"].([]any)
	found := false
	for _, e := range exts {
		if e.(map[string]any)["name"] == "Hosts" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no Hosts extension in %d", len(exts))
	}
	h.json("a", "GET", "/v2.1/extensions/os-keypairs", nil, 200)
	h.json("a", "GET", "/v2.1/extensions/os-consoles", nil, 200) // Tempest's test_get_extension
	h.fail("a", "GET", "/v2.1/extensions/os-nothing", nil, 404)
}
