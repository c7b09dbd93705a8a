package volumeagent

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// imageMeta is an image as the image API shows it: the core fields and
// every other top-level member, which are the custom properties.
type imageMeta struct {
	fields map[string]any
}

// coreImageFields are the image API's own members; the rest are custom
// properties, which a volume made from the image inherits.
var coreImageFields = map[string]bool{
	"id": true, "name": true, "status": true, "visibility": true, "protected": true, "os_hidden": true,
	"checksum": true, "os_hash_algo": true, "os_hash_value": true, "owner": true, "size": true,
	"virtual_size": true, "min_ram": true, "min_disk": true, "container_format": true, "disk_format": true,
	"created_at": true, "updated_at": true, "tags": true, "self": true, "file": true, "schema": true,
	"direct_url": true, "locations": true, "stores": true,
}

func (m imageMeta) str(k string) string {
	switch v := m.fields[k].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// volumeImageMetadata is Cinder's volume_image_metadata of a volume made
// from the image: the image's identity, formats, sizes and checksum,
// and every custom property (kernel_id, ramdisk_id, os_command_line,
// hw_disk_bus, ...), all as strings.
func (m imageMeta) volumeImageMetadata() map[string]string {
	md := map[string]string{"image_id": m.str("id"), "image_name": m.str("name")}
	for _, k := range []string{"checksum", "container_format", "disk_format", "min_disk", "min_ram", "size"} {
		if m.fields[k] != nil {
			md[k] = m.str(k)
		}
	}
	for k := range m.fields {
		if !coreImageFields[k] {
			md[k] = m.str(k)
		}
	}
	return md
}

// imageMeta reads an image's record through the image API.
func (a *Agent) imageMeta(ctx context.Context, id string) (imageMeta, error) {
	if a.cfg.Image == nil {
		return imageMeta{}, errNoImageService
	}
	var fields map[string]any
	if _, err := a.cfg.Image.Get(ctx, a.cfg.Image.ServiceURL("images", url.PathEscape(id)), &fields, nil); err != nil {
		if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return imageMeta{}, faultf("Image %s could not be found.", id)
		}
		return imageMeta{}, fmt.Errorf("look up image %s: %w", id, err)
	}
	return imageMeta{fields: fields}, nil
}

// fromImage writes image id into the qcow2 file part: it downloads the
// bytes, verifies their hash, checks that the image fits the volume and
// converts it. It returns the volume's image metadata.
func (a *Agent) fromImage(ctx context.Context, id, part string, size int64) (map[string]string, error) {
	meta, err := a.imageMeta(ctx, id)
	if err != nil {
		return nil, err
	}
	if st := meta.str("status"); st != "active" {
		return nil, faultf("Image %s is not active (status %s)", id, st)
	}
	algo, sum := meta.str("os_hash_algo"), strings.ToLower(meta.str("os_hash_value"))
	if newHash(algo) == nil || sum == "" {
		algo, sum = "md5", strings.ToLower(meta.str("checksum"))
	}
	if sum == "" {
		return nil, faultf("Image %s has no checksum", id)
	}
	format := qemuFormat(meta.str("disk_format"))
	if format == "" {
		return nil, faultf("Image %s has disk_format %q, which cannot be written to a volume", id, meta.str("disk_format"))
	}
	dl := partPath(a.volumePath("download-" + id))
	defer removeFile(dl)
	if err := a.download(ctx, id, dl, algo, sum); err != nil {
		return nil, err
	}
	ii, err := info(ctx, dl, format)
	if err != nil {
		return nil, faultf("Image %s is unreadable as %s: %v", id, format, err)
	}
	if ii.VirtualSize > size {
		return nil, faultf("Image %s is %d bytes (virtual), larger than the volume's %d GiB", id, ii.VirtualSize, size/gib)
	}
	if err := convert(ctx, dl, format, part, "qcow2"); err != nil {
		return nil, fmt.Errorf("write image %s: %w", id, err)
	}
	return meta.volumeImageMetadata(), nil
}

// download stores the image's bytes at path, verifying their digest.
func (a *Agent) download(ctx context.Context, id, path, algo, sum string) error {
	resp, err := a.cfg.Image.Get(ctx, a.cfg.Image.ServiceURL("images", url.PathEscape(id), "file"), nil,
		&gophercloud.RequestOpts{KeepResponseBody: true, OkCodes: []int{http.StatusOK}})
	if err != nil {
		return fmt.Errorf("download image %s: %w", id, err)
	}
	defer resp.Body.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("download image %s: %w", id, err)
	}
	h := newHash(algo)
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download image %s: %w", id, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return faultf("Image %s is corrupt: %s checksum %s does not match the expected %s", id, algo, got, sum)
	}
	return nil
}

// upload converts the volume to the image's disk format and sends it as
// the image's bytes. The volume is read through the storage daemon's
// consistent copy when a guest has it open.
func (a *Agent) upload(ctx context.Context, cmd agentproto.Command, rep *agentproto.Report) error {
	rep.Status = returnStatus(cmd)
	if cmd.Upload == nil || !validID(cmd.Upload.ImageID) {
		return faultf("upload: no target image")
	}
	if a.cfg.Image == nil {
		return errNoImageService
	}
	format := qemuFormat(cmd.Upload.DiskFormat)
	if format == "" || format == "raw" && cmd.Upload.DiskFormat != "raw" {
		return faultf("upload: disk_format %q is not supported", cmd.Upload.DiskFormat)
	}
	src := a.volumePath(cmd.VolumeID)
	if !exists(src) {
		return faultf("volume %s is not on this host", cmd.VolumeID)
	}
	busy, err := a.exported(ctx, cmd.VolumeID)
	if err != nil {
		return err
	}
	if busy {
		snap := partPath(a.volumePath("upload-src-" + cmd.Upload.ImageID))
		defer removeFile(snap)
		if err := a.copyVolume(ctx, cmd.VolumeID, snap); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		src = snap
	}
	out := partPath(a.volumePath("upload-" + cmd.Upload.ImageID))
	defer removeFile(out)
	if err := convert(ctx, src, "qcow2", out, format); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	f, err := os.Open(out)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	_, err = a.cfg.Image.Request(ctx, http.MethodPut, a.cfg.Image.ServiceURL("images", url.PathEscape(cmd.Upload.ImageID), "file"),
		&gophercloud.RequestOpts{RawBody: f, MoreHeaders: map[string]string{"Content-Type": "application/octet-stream"},
			OkCodes: []int{http.StatusNoContent, http.StatusOK, http.StatusCreated}})
	if err != nil {
		return fmt.Errorf("upload to image %s: %w", cmd.Upload.ImageID, err)
	}
	return a.reportSize(a.volumePath(cmd.VolumeID), rep, rep.Status)
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
