package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/cloud"
	"github.com/nimbus-cloud/nimbus/internal/config"
)

// execNimbus runs the CLI with args and returns what it printed.
func execNimbus(args ...string) (string, error) {
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// runNimbus is execNimbus for commands that must succeed.
func runNimbus(t *testing.T, args ...string) string {
	t.Helper()
	out, err := execNimbus(args...)
	if err != nil {
		t.Fatalf("nimbus %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// `nimbus manage bootstrap` creates the image service user when the
// config gives it a password, converges on a rerun without duplicating it,
// and gives it the configured password back, as it does for the admin.
func TestBootstrapCreatesServiceUser(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("NIMBUS_BCRYPT_COST", "4")
	t.Setenv("NIMBUS_IMAGE_AUTH_PASSWORD", "first")
	out := runNimbus(t, "--data-dir", dir, "--log-level", "warn", "manage", "bootstrap",
		"--bootstrap-password", "admin-pw", "--image-url", "http://images.example:9292")
	if !strings.Contains(out, "service user glance ready in project service") {
		t.Fatalf("bootstrap output:\n%s", out)
	}
	t.Setenv("NIMBUS_IMAGE_AUTH_PASSWORD", "second")
	runNimbus(t, "--data-dir", dir, "--log-level", "warn", "manage", "bootstrap", "--bootstrap-password", "admin-pw")

	cfg := config.Default()
	cfg.DataDir, cfg.Roles, cfg.Identity.Port, cfg.NATSPort = dir, []string{"identity"}, 0, 0
	cfg.Identity.BcryptCost, cfg.Identity.AdminPassword = 4, "admin-pw"
	c, err := cloud.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var users, images int
	if err := c.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM users WHERE name = 'glance'`).Scan(&users); err != nil {
		t.Fatal(err)
	}
	if err := c.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM services WHERE type = 'image'`).Scan(&images); err != nil {
		t.Fatal(err)
	}
	if users != 1 || images != 1 {
		t.Fatalf("%d glance users and %d image services, want 1 and 1", users, images)
	}
	for pw, want := range map[string]int{"second": http.StatusCreated, "first": http.StatusUnauthorized} {
		body, _ := json.Marshal(map[string]any{"auth": map[string]any{
			"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
				"name": "glance", "password": pw, "domain": map[string]any{"name": "Default"}}}},
			"scope": map[string]any{"project": map[string]any{"name": "service", "domain": map[string]any{"name": "Default"}}},
		}})
		resp, err := http.Post(c.IdentityURL+"/v3/auth/tokens", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("glance login with the %s password: %d, want %d", pw, resp.StatusCode, want)
		}
	}
}
