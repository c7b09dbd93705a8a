package image

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// qcow2Image makes a real qcow2 of the given virtual size with qemu-img,
// optionally on a backing file, and returns its bytes.
func qcow2Image(t *testing.T, virtualSize string, backing string) []byte {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is needed to build test images (Debian package qemu-utils; scripts/install-deps.sh test installs it)")
	}
	path := filepath.Join(t.TempDir(), "disk.qcow2")
	args := []string{"create", "-q", "-f", "qcow2"}
	if backing != "" {
		args = append(args, "-b", backing, "-F", "raw")
	}
	args = append(args, path, virtualSize)
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v: %s", args, err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUploadInspectsDiskFormat(t *testing.T) {
	h := newHarness(t)
	good := qcow2Image(t, "64M", "")
	id := h.create("a", map[string]any{"name": "q", "disk_format": "qcow2", "container_format": "bare"})["id"].(string)
	h.upload("a", id, good, http.StatusNoContent)
	if im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK); im["virtual_size"] != float64(64<<20) {
		t.Fatalf("virtual_size %v, want %d", im["virtual_size"], 64<<20)
	}
	// A qcow2 naming a backing file would make the hypervisor read a
	// host file: refused, and nothing kept.
	evil := qcow2Image(t, "64M", "/etc/shadow")
	id = h.create("a", map[string]any{"name": "evil", "disk_format": "qcow2", "container_format": "bare"})["id"].(string)
	h.upload("a", id, evil, http.StatusBadRequest)
	if im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK); im["status"] != "queued" {
		t.Fatalf("refused upload left status %v", im["status"])
	}
	// Even when declared as something else.
	id = h.create("a", map[string]any{"name": "evil-raw", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("a", id, evil, http.StatusBadRequest)
	if files := h.files(); len(files) != 1 {
		t.Fatalf("store holds %v, want only the good image", files)
	}
	// By default a format that does not match is accepted (as Glance
	// does unless told otherwise), but its virtual size is not guessed.
	id = h.create("a", map[string]any{"name": "mismatch", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("a", id, good, http.StatusNoContent)
	if im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK); im["virtual_size"] != nil {
		t.Fatalf("mismatched image got virtual_size %v", im["virtual_size"])
	}
}

func TestRequireFormatMatch(t *testing.T) {
	h := newHarnessWith(t, func(cfg *Config) { cfg.RequireFormatMatch = true })
	id := h.create("a", map[string]any{"name": "m", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("a", id, qcow2Image(t, "16M", ""), http.StatusBadRequest)
	id = h.create("a", map[string]any{"name": "n", "disk_format": "qcow2", "container_format": "bare"})["id"].(string)
	h.upload("a", id, []byte("not a qcow2 at all"), http.StatusBadRequest)
	if files := h.files(); len(files) != 0 {
		t.Fatalf("refused uploads left %v", files)
	}
}

func TestImportConvertsToRaw(t *testing.T) {
	h := newHarnessWith(t, func(cfg *Config) {
		withImport(t)(cfg)
		cfg.ConvertTo = "raw"
	})
	id := h.create("a", map[string]any{"name": "conv", "disk_format": "qcow2", "container_format": "bare"})["id"].(string)
	h.stage("a", id, qcow2Image(t, "32M", ""), http.StatusNoContent)
	h.importImage("a", id, map[string]any{"method": map[string]any{"name": "glance-direct"}}, http.StatusAccepted)
	im := waitImport(t, h, "a", id)
	if im["status"] != "active" || im["disk_format"] != "raw" || im["size"] != float64(32<<20) || im["virtual_size"] != float64(32<<20) {
		t.Fatalf("after a converting import: %v", im)
	}
	// An unsafe qcow2 is not converted (qemu-img would read the backing
	// file): the import fails and the image keeps its staged data.
	id = h.create("a", map[string]any{"name": "evil", "disk_format": "qcow2", "container_format": "bare"})["id"].(string)
	h.stage("a", id, qcow2Image(t, "32M", "/etc/shadow"), http.StatusNoContent)
	h.importImage("a", id, map[string]any{"method": map[string]any{"name": "glance-direct"}}, http.StatusAccepted)
	im = waitImport(t, h, "a", id)
	if im["status"] != "uploading" || im["os_glance_failed_import"] != "file" {
		t.Fatalf("after an unsafe converting import: %v", im)
	}
}
