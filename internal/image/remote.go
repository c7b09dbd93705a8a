package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// copiedProperties are the extra properties glance-download takes over
// from the remote image (Glance's default [glance_download_properties]
// extra_properties): hardware and scheduling hints, not arbitrary data.
var copiedProperties = []string{"hw_*", "trait:*", "os_distro", "os_secure_boot", "os_type"}

func copiedProperty(key string) bool {
	return slices.ContainsFunc(copiedProperties, func(p string) bool {
		ok, _ := path.Match(p, key)
		return ok
	})
}

// glanceDownload opens the data of an image in another region's image
// service, found through the catalog and read with the caller's token,
// and first takes over its formats and hardware properties.
func (s *Service) glanceDownload(ctx context.Context, job *importJob) (io.ReadCloser, error) {
	m := job.req.Method
	iface := m.GlanceServiceInterface
	if iface == "" {
		iface = "public"
	}
	base, err := s.cfg.Endpoints(ctx, m.GlanceRegion, iface)
	if err != nil {
		return nil, fmt.Errorf("glance-download: image endpoint of region %q (%s): %w", m.GlanceRegion, iface, err)
	}
	base = strings.TrimSuffix(base, "/")
	resp, err := s.remoteGet(ctx, base+"/v2/images/"+m.GlanceImageID, job.token)
	if err != nil {
		return nil, err
	}
	var remote map[string]any
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&remote)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("glance-download: remote image %s: %w", m.GlanceImageID, err)
	}
	if remote["status"] != "active" {
		return nil, fmt.Errorf("glance-download: remote image %s is %v, not active", m.GlanceImageID, remote["status"])
	}
	if err := s.adoptRemote(ctx, job, remote); err != nil {
		return nil, err
	}
	resp, err = s.remoteGet(ctx, base+"/v2/images/"+m.GlanceImageID+"/file", job.token)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (s *Service) remoteGet(ctx context.Context, url, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("glance-download: %w", err)
	}
	req.Header.Set("X-Auth-Token", token)
	resp, err := s.peerClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("glance-download: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("glance-download: GET %s: HTTP %s", url, resp.Status)
	}
	return resp, nil
}

// adoptRemote copies the remote image's formats and copiable properties
// onto the image being imported.
func (s *Service) adoptRemote(ctx context.Context, job *importJob, remote map[string]any) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		im, err := store.QueryOne(ctx, tx, scanImage, `SELECT `+imageColumns+` FROM images WHERE id = ?`, job.imageID)
		if err != nil {
			return fmt.Errorf("glance-download: %w", err)
		}
		for k, v := range remote {
			if sv, ok := v.(string); ok && !coreAttrs[k] && copiedProperty(k) {
				im.Properties[k] = sv
			}
		}
		disk, _ := remote["disk_format"].(string)
		container, _ := remote["container_format"].(string)
		if !slices.Contains(diskFormats, disk) || !slices.Contains(containerFormats, container) {
			return fmt.Errorf("glance-download: remote image has formats %q/%q", disk, container)
		}
		job.diskFmt = disk
		_, err = tx.Exec(ctx, `UPDATE images SET disk_format = ?, container_format = ?, properties = ?, updated_at = ? WHERE id = ?`,
			disk, container, jsonText(im.Properties), store.FormatTime(time.Now()), job.imageID)
		return err
	})
}
