package cloud_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/volume/fakeagent"
)

// TestVolumeRoleInTheCloud: the volume role serves Cinder v3 behind the
// cloud's identity, on the endpoint the catalog gives as volumev3, and
// volumes go to a storage host that joins over the cloud's bus.
func TestVolumeRoleInTheCloud(t *testing.T) {
	c := start(t, testConfig(t, t.TempDir()))
	if c.VolumeURL == "" || c.Volume == nil {
		t.Fatal("no volume service")
	}
	token := issueToken(t, c.IdentityURL+"/v3", "admin", c.AdminPassword, "admin")
	agent, err := fakeagent.Start(context.Background(), c.Bus, fakeagent.Config{Host: "cloudstor", Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Stop() })

	call := func(method, url string, body any, want int) map[string]any {
		t.Helper()
		var rd *bytes.Reader
		if body != nil {
			data, _ := json.Marshal(body)
			rd = bytes.NewReader(data)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, url, rd)
		req.Header.Set("X-Auth-Token", token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %v", method, url, resp.StatusCode, want, out)
		}
		return out
	}
	// The catalog's volumev3 endpoint, with the project substituted.
	req, _ := http.NewRequest("GET", c.IdentityURL+"/v3/auth/catalog", nil)
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cat struct {
		Catalog []struct {
			Type      string `json:"type"`
			Endpoints []struct {
				Interface string `json:"interface"`
				URL       string `json:"url"`
			} `json:"endpoints"`
		} `json:"catalog"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&cat)
	resp.Body.Close()
	endpoint := ""
	for _, s := range cat.Catalog {
		if s.Type == "volumev3" {
			for _, e := range s.Endpoints {
				if e.Interface == "public" {
					endpoint = e.URL
				}
			}
		}
	}
	if !strings.HasPrefix(endpoint, c.VolumeURL+"/v3/") || strings.Contains(endpoint, "$(") {
		t.Fatalf("volumev3 endpoint %q", endpoint)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		svcs := call("GET", endpoint+"/os-services?binary=cinder-volume", nil, 200)["services"].([]any)
		if len(svcs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the storage host never registered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	id := call("POST", endpoint+"/volumes", map[string]any{"volume": map[string]any{"size": 1, "name": "in-cloud"}}, 202)["volume"].(map[string]any)["id"].(string)
	for {
		v := call("GET", endpoint+"/volumes/"+id, nil, 200)["volume"].(map[string]any)
		if v["status"] == "available" {
			break
		}
		if v["status"] == "error" || time.Now().After(deadline) {
			t.Fatalf("volume %v", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ci := call("POST", endpoint+"/volumes/"+id+"/action", map[string]any{"os-initialize_connection": map[string]any{"connector": map[string]any{"host": "h1"}}}, 200)
	if ci["connection_info"].(map[string]any)["driver_volume_type"] != "nbd" {
		t.Fatalf("connection %v", ci)
	}
	call("DELETE", endpoint+"/volumes/"+id, nil, 202)
}
