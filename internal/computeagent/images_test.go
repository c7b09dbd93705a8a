package computeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
)

// TestDirectBoot: an image's kernel_id and ramdisk_id are fetched into
// the cache and verified like the image itself, os_command_line is the
// command line (Nova's default without it), and a missing kernel image
// fails the build as an image error, not a host error to retry elsewhere.
func TestDirectBoot(t *testing.T) {
	files := map[string][]byte{"kernel-1": []byte("an ELF kernel"), "ramdisk-1": []byte("a cpio archive")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/images/{id}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.PathValue("id")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		sum := sha256.Sum256(b)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "active", "os_hash_algo": "sha256", "os_hash_value": hex.EncodeToString(sum[:])})
	})
	mux.HandleFunc("GET /v2/images/{id}/file", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(files[r.PathValue("id")])
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	a := &Agent{images: map[string]*sync.Mutex{}, cfg: Config{
		ImageCacheDir: t.TempDir(),
		Image:         &gophercloud.ServiceClient{ProviderClient: &gophercloud.ProviderClient{}, Endpoint: srv.URL + "/", ResourceBase: srv.URL + "/v2/"},
	}}
	ctx := context.Background()

	if b, err := a.directBoot(ctx, map[string]string{"os_distro": "debian"}); b != nil || err != nil {
		t.Fatalf("no kernel_id: %+v, %v; want a disk boot", b, err)
	}
	b, err := a.directBoot(ctx, map[string]string{"kernel_id": "kernel-1", "ramdisk_id": "ramdisk-1", "os_command_line": "root=/dev/vda1 rw"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(b.Kernel.Path); string(got) != "an ELF kernel" || b.Kernel.ID != "kernel-1" {
		t.Errorf("kernel %+v holds %q", b.Kernel, got)
	}
	if b.Ramdisk == nil {
		t.Fatal("no ramdisk")
	}
	if got, _ := os.ReadFile(b.Ramdisk.Path); string(got) != "a cpio archive" {
		t.Errorf("ramdisk %+v holds %q", b.Ramdisk, got)
	}
	if b.Cmdline != "root=/dev/vda1 rw" {
		t.Errorf("cmdline %q", b.Cmdline)
	}
	b, err = a.directBoot(ctx, map[string]string{"kernel_id": "kernel-1"})
	if err != nil || b.Ramdisk != nil || b.Cmdline != defaultCmdline {
		t.Errorf("kernel alone: %+v, %v; want no ramdisk and Nova's command line", b, err)
	}
	_, err = a.directBoot(ctx, map[string]string{"kernel_id": "gone"})
	var ie *imageError
	if !errors.As(err, &ie) || ie.code != http.StatusNotFound {
		t.Errorf("missing kernel: %v, want a 404 image error", err)
	}
}
