package volume

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// ImageInfo is what the volume API needs to know about an image.
type ImageInfo struct {
	ID, Name, Status string
	MinDiskGB        int
	// SizeBytes and VirtualSizeBytes are 0 when the image service does
	// not know them yet.
	SizeBytes, VirtualSizeBytes int64
}

// NewImage is an image to create for os-volume_upload_image.
type NewImage struct {
	Name, DiskFormat, ContainerFormat, Visibility string
	Protected                                     bool
}

// ImageService is the image service as the volume API uses it, always
// with the caller's token, so visibility is the image service's to decide.
type ImageService interface {
	// Image returns the image, or ErrImageNotFound.
	Image(ctx context.Context, token, id string) (*ImageInfo, error)
	// CreateImage registers a queued image and returns its id.
	CreateImage(ctx context.Context, token string, img NewImage) (string, error)
}

// ErrImageNotFound is what an ImageService answers for a missing image.
var ErrImageNotFound = errors.New("image not found")

// ImageClient is the ImageService over the Glance v2 API.
type ImageClient struct {
	// URL is the image service's base URL (http://host:9292).
	URL    string
	Client *http.Client
}

var _ ImageService = (*ImageClient)(nil)

// NewImageClient returns an ImageService for the image service at url.
func NewImageClient(url string) *ImageClient {
	return &ImageClient{URL: strings.TrimSuffix(url, "/"), Client: &http.Client{Timeout: 30 * time.Second}}
}

// Image implements ImageService.
func (c *ImageClient) Image(ctx context.Context, token, id string) (*ImageInfo, error) {
	var raw struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Status      string `json:"status"`
		MinDisk     int    `json:"min_disk"`
		Size        *int64 `json:"size"`
		VirtualSize *int64 `json:"virtual_size"`
	}
	status, err := c.call(ctx, token, "GET", "/v2/images/"+id, nil, &raw)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound {
		return nil, ErrImageNotFound
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("image %s: image service answered %d", id, status)
	}
	info := &ImageInfo{ID: raw.ID, Name: raw.Name, Status: raw.Status, MinDiskGB: raw.MinDisk}
	if raw.Size != nil {
		info.SizeBytes = *raw.Size
	}
	if raw.VirtualSize != nil {
		info.VirtualSizeBytes = *raw.VirtualSize
	}
	return info, nil
}

// CreateImage implements ImageService.
func (c *ImageClient) CreateImage(ctx context.Context, token string, img NewImage) (string, error) {
	body := map[string]any{"name": img.Name, "disk_format": img.DiskFormat, "container_format": img.ContainerFormat,
		"protected": img.Protected}
	if img.Visibility != "" {
		body["visibility"] = img.Visibility
	}
	var out struct {
		ID string `json:"id"`
	}
	status, err := c.call(ctx, token, "POST", "/v2/images", body, &out)
	if err != nil {
		return "", err
	}
	switch {
	case status == http.StatusCreated && out.ID != "":
		return out.ID, nil
	case status == http.StatusForbidden:
		return "", api.Forbidden("The image service refused to create the image.")
	case status == http.StatusBadRequest || status == http.StatusConflict:
		return "", api.BadRequest("The image service refused the image: it answered %d.", status)
	case status == http.StatusRequestEntityTooLarge:
		return "", api.Errorf(http.StatusRequestEntityTooLarge, "Image quota exceeded.")
	}
	return "", fmt.Errorf("create image: image service answered %d", status)
}

func (c *ImageClient) call(ctx context.Context, token, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if id := api.RequestID(ctx); id != "" {
		req.Header.Set(api.RequestIDHeader, id)
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out != nil && resp.StatusCode/100 == 2 && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}
