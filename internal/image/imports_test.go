package image

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// withImport gives the harness a staging area and a second writable
// store, "cheap", beside the default "file".
func withImport(t *testing.T) func(*Config) {
	return func(cfg *Config) {
		cfg.StagingDir = filepath.Join(t.TempDir(), "staging")
		cheap, err := imagestore.NewFilesystem("cheap", filepath.Join(t.TempDir(), "cheap"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Stores["cheap"] = cheap
	}
}

func (h *harness) stage(token, id string, data []byte, want int) {
	h.t.Helper()
	status, _, body := h.do(token, "PUT", "/v2/images/"+id+"/stage", bytes.NewReader(data), "Content-Type", "application/octet-stream")
	if status != want {
		h.t.Fatalf("stage %s: status %d, want %d: %s", id, status, want, body)
	}
}

// importImage posts an import request and returns the request id the
// service answered with.
func (h *harness) importImage(token, id string, req map[string]any, want int) string {
	h.t.Helper()
	status, hdr, body := h.do(token, "POST", "/v2/images/"+id+"/import", jsonBody(h.t, req), "Content-Type", "application/json")
	if status != want {
		h.t.Fatalf("import %s: status %d, want %d: %s", id, status, want, body)
	}
	return hdr.Get("X-Openstack-Request-Id")
}

// waitImport waits until no store is left to import to and returns the
// image as then shown.
func waitImport(t *testing.T, h *harness, token, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		im := h.json(token, "GET", "/v2/images/"+id, nil, http.StatusOK)
		left, ok := im["os_glance_importing_to_stores"].(string)
		if ok && left == "" && im["status"] != "importing" {
			return im
		}
		if time.Now().After(deadline) {
			t.Fatalf("import of %s does not finish: %v", id, im)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) tasks(token, id string) []any {
	h.t.Helper()
	return h.json(token, "GET", "/v2/images/"+id+"/tasks", nil, http.StatusOK)["tasks"].([]any)
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestGlanceDirectImport(t *testing.T) {
	h := newHarnessWith(t, withImport(t))
	info := h.json("a", "GET", "/v2/info/import", nil, http.StatusOK)
	methods := info["import-methods"].(map[string]any)["value"].([]any)
	if len(methods) != 2 || methods[0] != "glance-direct" || methods[1] != "copy-image" {
		t.Fatalf("import methods %v, want glance-direct and copy-image (no web-download guard configured)", methods)
	}
	status, hdr, _ := h.do("a", "POST", "/v2/images", jsonBody(t, map[string]any{"name": "x"}), "Content-Type", "application/json")
	if status != http.StatusCreated || hdr.Get("OpenStack-image-import-methods") != "glance-direct,copy-image" ||
		hdr.Get("OpenStack-image-store-ids") != "cheap,file" {
		t.Fatalf("create: %d, import methods %q, store ids %q", status, hdr.Get("OpenStack-image-import-methods"), hdr.Get("OpenStack-image-store-ids"))
	}

	id := h.create("a", map[string]any{"name": "direct", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	// Importing before staging is refused, and so is staging twice.
	h.importImage("a", id, map[string]any{"method": map[string]any{"name": "glance-direct"}}, http.StatusConflict)
	data := bytes.Repeat([]byte("nimbus-import "), 5000)
	h.stage("a", id, data, http.StatusNoContent)
	if st := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)["status"]; st != "uploading" {
		t.Fatalf("staged image is %v, want uploading", st)
	}
	h.stage("a", id, data, http.StatusConflict)
	// Another project's member may not import it.
	h.importImage("b", id, map[string]any{"method": map[string]any{"name": "glance-direct"}}, http.StatusNotFound)

	reqID := h.importImage("a", id, map[string]any{"method": map[string]any{"name": "glance-direct"}, "stores": []string{"cheap"}}, http.StatusAccepted)
	im := waitImport(t, h, "a", id)
	if im["status"] != "active" || im["stores"] != "cheap" || im["checksum"] != md5hex(data) ||
		im["size"] != float64(len(data)) || im["os_glance_failed_import"] != "" {
		t.Fatalf("after import: %v", im)
	}
	status, _, got := h.do("a", "GET", "/v2/images/"+id+"/file", nil)
	if status != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("download after import: %d, %d bytes", status, len(got))
	}
	if h.svc.staged(id) {
		t.Error("staged data outlives a successful import")
	}
	tasks := h.tasks("a", id)
	if len(tasks) != 1 {
		t.Fatalf("tasks %v", tasks)
	}
	task := tasks[0].(map[string]any)
	in := task["input"].(map[string]any)["import_req"].(map[string]any)
	if task["status"] != "success" || task["request_id"] != reqID || in["method"].(map[string]any)["name"] != "glance-direct" ||
		task["type"] != "api_image_import" || task["expires_at"] == nil {
		t.Fatalf("task %v (import request id %s)", task, reqID)
	}
	// A finished import can't be repeated.
	h.importImage("a", id, map[string]any{"method": map[string]any{"name": "glance-direct"}}, http.StatusConflict)
}

func TestImportRequestValidation(t *testing.T) {
	h := newHarnessWith(t, withImport(t))
	id := h.create("a", map[string]any{"name": "v", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.stage("a", id, []byte("data"), http.StatusNoContent)
	for name, req := range map[string]map[string]any{
		"no method":       {},
		"unknown method":  {"method": map[string]any{"name": "carrier-pigeon"}},
		"disabled method": {"method": map[string]any{"name": "web-download", "uri": "http://example.com/x"}},
		"both store args": {"method": map[string]any{"name": "glance-direct"}, "stores": []string{"file"}, "all_stores": true},
		"unknown store":   {"method": map[string]any{"name": "glance-direct"}, "stores": []string{"nowhere"}},
		"bad stores type": {"method": map[string]any{"name": "glance-direct"}, "stores": "file"},
	} {
		t.Run(name, func(t *testing.T) {
			h.importImage("a", id, req, http.StatusBadRequest)
		})
	}
	if st := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)["status"]; st != "uploading" {
		t.Fatalf("refused imports changed the image to %v", st)
	}
	// copy-image is an admin's action, and only for active images.
	h.importImage("a", id, map[string]any{"method": map[string]any{"name": "copy-image"}, "all_stores": true}, http.StatusForbidden)
	h.importImage("admin", id, map[string]any{"method": map[string]any{"name": "copy-image"}, "all_stores": true}, http.StatusConflict)
}

func TestImportAllStoresThenCopy(t *testing.T) {
	h := newHarnessWith(t, withImport(t))
	data := bytes.Repeat([]byte{7}, 300_000)
	id := h.create("a", map[string]any{"name": "multi", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("a", id, data, http.StatusNoContent)
	im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)
	if im["stores"] != "file" {
		t.Fatalf("uploaded image in stores %v, want file", im["stores"])
	}
	// Copying to all stores skips the one that has it.
	h.importImage("admin", id, map[string]any{"method": map[string]any{"name": "copy-image"}, "all_stores": true,
		"all_stores_must_succeed": false}, http.StatusAccepted)
	im = waitImport(t, h, "a", id)
	if im["status"] != "active" || im["stores"] != "cheap,file" || im["os_glance_failed_import"] != "" {
		t.Fatalf("after copy: %v", im)
	}
	// Copying to a store that has the image is a conflict.
	h.importImage("admin", id, map[string]any{"method": map[string]any{"name": "copy-image"}, "stores": []string{"cheap"}}, http.StatusConflict)

	// The copy serves the data when the first is lost.
	if err := os.Remove(filepath.Join(h.dataDir, id)); err != nil {
		t.Fatal(err)
	}
	status, _, got := h.do("a", "GET", "/v2/images/"+id+"/file", nil)
	if status != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("download from the copy: %d, %d bytes", status, len(got))
	}
	cheapDir := filepath.Dir(strings.TrimPrefix(h.svc.cfg.Stores["cheap"].(*imagestore.Filesystem).Description(), "Filesystem store at ") + "/x")
	h.json("a", "DELETE", "/v2/images/"+id, nil, http.StatusNoContent)
	if _, err := os.Stat(filepath.Join(cheapDir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleting the image left its copy: %v", err)
	}
}

func TestWebDownloadImport(t *testing.T) {
	data := bytes.Repeat([]byte("web "), 40_000)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/image.raw" {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	defer src.Close()
	// The test server is on loopback: this operator allows it.
	withGuard := func(g *imagestore.SSRFGuard) func(*Config) {
		return func(cfg *Config) {
			withImport(t)(cfg)
			cfg.WebDownload = g
		}
	}
	t.Run("imports", func(t *testing.T) {
		h := newHarnessWith(t, withGuard(&imagestore.SSRFGuard{AllowedHosts: []string{"127.0.0.1"}}))
		id := h.create("a", map[string]any{"name": "web", "disk_format": "raw", "container_format": "bare"})["id"].(string)
		h.importImage("a", id, map[string]any{"method": map[string]any{"name": "web-download", "uri": src.URL + "/image.raw"}}, http.StatusAccepted)
		im := waitImport(t, h, "a", id)
		if im["status"] != "active" || im["checksum"] != md5hex(data) || im["stores"] != "file" {
			t.Fatalf("after web-download: %v", im)
		}
		// A URL that fails leaves the image queued with the failure shown.
		id = h.create("a", map[string]any{"name": "web404", "disk_format": "raw", "container_format": "bare"})["id"].(string)
		h.importImage("a", id, map[string]any{"method": map[string]any{"name": "web-download", "uri": src.URL + "/missing"}}, http.StatusAccepted)
		im = waitImport(t, h, "a", id)
		if im["status"] != "queued" || im["os_glance_failed_import"] != "file" || h.svc.staged(id) {
			t.Fatalf("after a failed web-download: %v", im)
		}
		task := h.tasks("a", id)[0].(map[string]any)
		if task["status"] != "failure" || !strings.Contains(task["message"].(string), "404") {
			t.Fatalf("failed task %v", task)
		}
	})
	t.Run("refuses internal targets", func(t *testing.T) {
		h := newHarnessWith(t, withGuard(&imagestore.SSRFGuard{Resolve: func(context.Context, string) ([]netip.Addr, error) {
			return nil, errors.New("no such host")
		}}))
		id := h.create("a", map[string]any{"name": "ssrf", "disk_format": "raw", "container_format": "bare"})["id"].(string)
		for _, uri := range []string{
			src.URL + "/image.raw", // loopback
			"http://169.254.169.254/latest/meta-data/",
			"http://100.100.100.200/latest/meta-data/",
			"http://10.0.0.1/image",
			"http://[::1]/image",
			"file:///etc/passwd",
			"",
		} {
			h.importImage("a", id, map[string]any{"method": map[string]any{"name": "web-download", "uri": uri}}, http.StatusBadRequest)
		}
		if im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK); im["status"] != "queued" || im["os_glance_failed_import"] != nil {
			t.Fatalf("refused imports touched the image: %v", im)
		}
		// A name that does not resolve is accepted, then fails.
		h.importImage("a", id, map[string]any{"method": map[string]any{"name": "web-download", "uri": "http://does-not.exist/x"}}, http.StatusAccepted)
		if im := waitImport(t, h, "a", id); im["status"] != "queued" || im["os_glance_failed_import"] != "file" {
			t.Fatalf("after an unresolvable web-download: %v", im)
		}
	})
}

func TestGlanceDownloadImport(t *testing.T) {
	var h *harness
	h = newHarnessWith(t, func(cfg *Config) {
		withImport(t)(cfg)
		cfg.Endpoints = func(_ context.Context, region, iface string) (string, error) {
			if region != "RegionTwo" || iface != "public" {
				return "", errors.New("no image endpoint")
			}
			return h.srv.URL, nil
		}
	})
	data := []byte("remote image data")
	src := h.create("a", map[string]any{"name": "src", "disk_format": "qcow2", "container_format": "bare",
		"hw_cpu_cores": "5", "os_distro": "rhel", "speed": "88mph"})["id"].(string)
	h.upload("a", src, data, http.StatusNoContent)

	dst := h.create("a", map[string]any{"name": "dst", "disk_format": "iso", "container_format": "ovf", "os_distro": "windows"})["id"].(string)
	h.importImage("a", dst, map[string]any{"method": map[string]any{"name": "glance-download", "glance_image_id": "not-a-uuid",
		"glance_region": "RegionTwo"}}, http.StatusBadRequest)
	h.importImage("a", dst, map[string]any{"method": map[string]any{"name": "glance-download", "glance_image_id": src,
		"glance_region": "RegionTwo", "glance_service_interface": "public"}}, http.StatusAccepted)
	im := waitImport(t, h, "a", dst)
	if im["status"] != "active" || im["checksum"] != md5hex(data) || im["disk_format"] != "qcow2" || im["container_format"] != "bare" ||
		im["hw_cpu_cores"] != "5" || im["os_distro"] != "rhel" || im["speed"] != nil {
		t.Fatalf("after glance-download: %v", im)
	}

	bad := h.create("a", map[string]any{"name": "bad", "disk_format": "raw", "container_format": "bare", "os_distro": "windows"})["id"].(string)
	h.importImage("a", bad, map[string]any{"method": map[string]any{"name": "glance-download", "glance_image_id": src,
		"glance_region": "not a region"}}, http.StatusAccepted)
	im = waitImport(t, h, "a", bad)
	if im["status"] != "queued" || im["os_distro"] != "windows" || h.tasks("a", bad)[0].(map[string]any)["status"] != "failure" {
		t.Fatalf("after a failed glance-download: %v", im)
	}
}

func TestImportQuotas(t *testing.T) {
	h := newHarnessWith(t, func(cfg *Config) {
		withImport(t)(cfg)
		cfg.Quota = Quota{Images: 3, Bytes: 1000, Staging: 500}
	})
	a := h.create("a", map[string]any{"name": "a", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	b := h.create("a", map[string]any{"name": "b", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	c := h.create("a", map[string]any{"name": "c", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	status, _, body := h.do("a", "POST", "/v2/images", jsonBody(t, map[string]any{"name": "d"}), "Content-Type", "application/json")
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "image_count_total") {
		t.Fatalf("fourth image: %d %s", status, body)
	}
	// Another project has its own count.
	h.create("b", map[string]any{"name": "b's"})

	h.upload("a", a, make([]byte, 800), http.StatusNoContent)
	h.upload("a", b, make([]byte, 300), http.StatusRequestEntityTooLarge)
	if im := h.json("a", "GET", "/v2/images/"+b, nil, http.StatusOK); im["status"] != "queued" || im["size"] != nil {
		t.Fatalf("over-quota upload left %v", im)
	}
	h.stage("a", c, make([]byte, 600), http.StatusRequestEntityTooLarge)
	h.stage("a", c, make([]byte, 150), http.StatusNoContent)
	usage := h.json("a", "GET", "/v2/info/usage", nil, http.StatusOK)["usage"].(map[string]any)
	count := usage["image_count_total"].(map[string]any)
	if count["limit"] != float64(3) || count["usage"] != float64(3) {
		t.Fatalf("usage %v", usage)
	}
}

func TestContentMD5Mismatch(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "md5", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	data := []byte("some image data")
	status, _, body := h.do("a", "PUT", "/v2/images/"+id+"/file", bytes.NewReader(data),
		"Content-Type", "application/octet-stream", "Content-MD5", md5hex([]byte("other data")))
	if status != http.StatusBadRequest {
		t.Fatalf("mismatched Content-MD5: %d %s", status, body)
	}
	if im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK); im["status"] != "queued" || len(h.files()) != 0 {
		t.Fatalf("mismatched upload left %v, files %v", im["status"], h.files())
	}
	status, _, _ = h.do("a", "PUT", "/v2/images/"+id+"/file", bytes.NewReader(data),
		"Content-Type", "application/octet-stream", "Content-MD5", md5hex(data))
	if status != http.StatusNoContent {
		t.Fatalf("matching Content-MD5: %d", status)
	}
}

func TestRecoverInterruptedImport(t *testing.T) {
	h := newHarnessWith(t, withImport(t))
	ctx := context.Background()
	id := h.create("a", map[string]any{"name": "crash", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.stage("a", id, []byte("staged"), http.StatusNoContent)
	im, err := h.svc.getImage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// A process died while importing: its task stopped beating an hour ago.
	dead := newTask(im, "api_image_import", "u-a", "req-1", map[string]any{"image_id": id})
	if err := insertTask(ctx, h.svc.db, dead); err != nil {
		t.Fatal(err)
	}
	old := store.FormatTime(time.Now().Add(-time.Hour))
	if _, err := h.svc.db.Exec(ctx, `UPDATE image_tasks SET status = 'processing', heartbeat = ? WHERE id = ?`, old, dead.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.db.Exec(ctx, `UPDATE images SET status = 'importing', importing_stores = 'file' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	again, err := New(ctx, h.svc.cfg, h.svc.db, h.svc.api, h.svc.log)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	got := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)
	if got["status"] != "uploading" || got["os_glance_importing_to_stores"] != "" || got["os_glance_failed_import"] != "file" {
		t.Fatalf("after recovery: %v", got)
	}
	if task := h.tasks("a", id)[0].(map[string]any); task["status"] != "failure" {
		t.Fatalf("interrupted task %v", task)
	}
	// The staged data is still there: the import can be retried.
	h.importImage("a", id, map[string]any{"method": map[string]any{"name": "glance-direct"}}, http.StatusAccepted)
	if im := waitImport(t, h, "a", id); im["status"] != "active" {
		t.Fatalf("retried import: %v", im)
	}
}
