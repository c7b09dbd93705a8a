package volume_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/volume"
)

// cliEndpoint serves the volume API and, beside it, the one compute call
// `volume attachment create` makes first: looking its server up by id.
// keystoneauth's admin_token plugin gives every service one endpoint.
func (h *harness) cliEndpoint() string {
	h.t.Helper()
	vol := h.svc.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, id, ok := strings.Cut(r.URL.Path, "/servers/"); ok && r.Method == "GET" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"server": map[string]any{"id": id, "name": "vm1"}})
			return
		}
		vol.ServeHTTP(w, r)
	}))
	h.t.Cleanup(srv.Close)
	return srv.URL
}

// openstackCLI runs the openstack client against endpoint as token's
// project, with keystoneauth's admin_token plugin (a fixed token and
// endpoint, no Keystone), and decodes its JSON output.
func (h *harness) openstackCLI(endpoint, token string, out any, args ...string) {
	h.t.Helper()
	base := []string{"--os-auth-type", "admin_token", "--os-token", token,
		"--os-endpoint", endpoint + "/v3/" + tokens[token].ProjectID}
	cmd := exec.Command("openstack", append(base, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + h.t.TempDir()}
	got, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		h.t.Fatalf("openstack %s: %v: %s%s", strings.Join(args, " "), err, got, stderr)
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			h.t.Fatalf("openstack %s: %v: %s", strings.Join(args, " "), err, got)
		}
	}
}

// TestOpenstackCLIAttachments is the judge of the attachments API:
// openstackclient's `volume attachment create --connect`, `complete`,
// `show`, `list` and `delete` at 3.44, as an operator runs them.
func TestOpenstackCLIAttachments(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Skip("the openstack client (python3-openstackclient) is not installed")
	}
	h := newHarness(t, volume.WithMaxVersion(44))
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	const v = "3.44"
	ep := h.cliEndpoint()

	var created map[string]any
	h.openstackCLI(ep, "a", &created, "--os-volume-api-version", v, "volume", "attachment", "create", "-f", "json",
		"--connect", "--host", "compute1", "--ip", "192.0.2.10", "--initiator", "iqn.x", "--mountpoint", "/dev/vdb", vol, server2)
	id, _ := created["ID"].(string)
	if id == "" || created["Status"] != "attaching" || created["Volume ID"] != vol {
		t.Fatalf("attachment create: %v", created)
	}
	if !h.agents["stor1"].Exported(vol, "compute1") {
		t.Fatal("the CLI's attachment did not export the volume")
	}
	h.openstackCLI(ep, "a", nil, "--os-volume-api-version", v, "volume", "attachment", "complete", id)
	h.waitVolume("a", vol, "in-use")

	var shown map[string]any
	h.openstackCLI(ep, "a", &shown, "--os-volume-api-version", v, "volume", "attachment", "show", "-f", "json", id)
	if shown["Status"] != "attached" || shown["Attach Mode"] != "rw" {
		t.Fatalf("attachment show: %v", shown)
	}
	var listed []map[string]any
	h.openstackCLI(ep, "a", &listed, "--os-volume-api-version", v, "volume", "attachment", "list", "-f", "json")
	if len(listed) != 1 || listed[0]["ID"] != id {
		t.Fatalf("attachment list: %v", listed)
	}
	h.openstackCLI(ep, "a", nil, "--os-volume-api-version", v, "volume", "attachment", "delete", id)
	h.waitVolume("a", vol, "available")
	if h.agents["stor1"].Exported(vol, "compute1") {
		t.Fatal("the export outlived the CLI's attachment delete")
	}
}

// TestCinderCLISummary: `cinder summary` (3.12); openstackclient 6.0
// has no summary command.
func TestCinderCLISummary(t *testing.T) {
	if _, err := exec.LookPath("cinder"); err != nil {
		t.Skip("the cinder client (python3-cinderclient) is not installed")
	}
	h := newHarness(t)
	h.createVolume("a", map[string]any{"size": 2}, "available")
	cmd := exec.Command("cinder", "--os-auth-type", "admin_token", "--os-token", "a", "--os-project-id", projA,
		"--os-endpoint", h.srv.URL+"/v3/"+projA, "--os-volume-api-version", "3.12", "summary")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cinder summary: %v: %s", err, out)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) == 4 {
			rows[strings.TrimSpace(f[1])] = strings.TrimSpace(f[2])
		}
	}
	if rows["total_count"] != "1" || rows["total_size"] != "2" {
		t.Fatalf("cinder summary:\n%s", out)
	}
}
