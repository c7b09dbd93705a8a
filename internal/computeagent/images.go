package computeagent

//lint:file-ignore ST1005 Nova's fault texts, which reach the user as the server's fault message.

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// imageError is an image no host can boot (missing, not active, corrupt):
// the build fails without trying another host.
type imageError struct {
	err  error
	code int
}

func (e *imageError) Error() string { return e.err.Error() }
func (e *imageError) Unwrap() error { return e.err }

// defaultCmdline is the kernel command line of a direct boot whose image
// has no os_command_line: Nova's (libvirt driver) root and consoles.
const defaultCmdline = "root=/dev/vda console=tty0 console=ttyS0"

// directBoot is the kernel, ramdisk and command line an image names in
// its kernel_id, ramdisk_id and os_command_line properties (Nova boots
// such images with them instead of the disk's boot loader), fetched and
// verified like the image itself; nil when the image has no kernel_id.
func (a *Agent) directBoot(ctx context.Context, props map[string]string) (*hypervisor.DirectBoot, error) {
	kernelID := props["kernel_id"]
	if kernelID == "" {
		return nil, nil
	}
	kernel, err := a.fetchImage(ctx, kernelID)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	boot := &hypervisor.DirectBoot{Kernel: *kernel, Cmdline: props["os_command_line"]}
	if boot.Cmdline == "" {
		boot.Cmdline = defaultCmdline
	}
	if id := props["ramdisk_id"]; id != "" {
		if boot.Ramdisk, err = a.fetchImage(ctx, id); err != nil {
			return nil, fmt.Errorf("ramdisk: %w", err)
		}
	}
	return boot, nil
}

// fetchImage makes sure the host has the image's bytes, downloaded once
// per checksum and verified, and says where they are.
func (a *Agent) fetchImage(ctx context.Context, id string) (*hypervisor.Image, error) {
	if a.cfg.Image == nil {
		return nil, errors.New("this compute host has no image service configured")
	}
	var meta struct {
		Status    string `json:"status"`
		Checksum  string `json:"checksum"`
		HashAlgo  string `json:"os_hash_algo"`
		HashValue string `json:"os_hash_value"`
	}
	if _, err := a.cfg.Image.Get(ctx, a.cfg.Image.ServiceURL("images", url.PathEscape(id)), &meta, nil); err != nil {
		if isNotFound(err) {
			return nil, &imageError{fmt.Errorf("Image %s could not be found.", id), http.StatusNotFound}
		}
		return nil, fmt.Errorf("look up image: %w", err)
	}
	if meta.Status != "active" {
		return nil, &imageError{fmt.Errorf("Image %s is unacceptable: status is %s, not active", id, meta.Status), http.StatusBadRequest}
	}
	algo, sum := meta.HashAlgo, meta.HashValue
	if newHash(algo) == nil || sum == "" {
		algo, sum = "md5", meta.Checksum
	}
	sum = strings.ToLower(sum)
	if sum == "" || !isHexString(sum) {
		return nil, &imageError{fmt.Errorf("Image %s is unacceptable: it has no checksum", id), http.StatusBadRequest}
	}
	img := &hypervisor.Image{ID: id, Path: filepath.Join(a.cfg.ImageCacheDir, algo+"-"+sum), Checksum: sum, Algorithm: algo}

	lock := a.imageLock(img.Path)
	lock.Lock()
	defer lock.Unlock()
	if _, err := os.Stat(img.Path); err == nil {
		return img, nil // verified when it was downloaded
	}
	if err := os.MkdirAll(a.cfg.ImageCacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	resp, err := a.cfg.Image.Get(ctx, a.cfg.Image.ServiceURL("images", url.PathEscape(id), "file"), nil,
		&gophercloud.RequestOpts{KeepResponseBody: true, OkCodes: []int{http.StatusOK}})
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(a.cfg.ImageCacheDir, ".download-*")
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	h := newHash(algo)
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("download: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return nil, &imageError{fmt.Errorf("Image %s is unacceptable: %s checksum %s does not match the expected %s", id, algo, got, sum), http.StatusBadRequest}
	}
	if err := os.Rename(tmp.Name(), img.Path); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	return img, nil
}

func (a *Agent) imageLock(path string) *sync.Mutex {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.images[path]
	if l == nil {
		l = &sync.Mutex{}
		a.images[path] = l
	}
	return l
}

func newHash(algo string) hash.Hash {
	switch algo {
	case "sha256":
		return sha256.New()
	case "sha512":
		return sha512.New()
	case "md5":
		return md5.New()
	}
	return nil
}

func isHexString(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
