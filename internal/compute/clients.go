package compute

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ImageClient is the ImageService over the image service's Glance v2
// API, called with the user's token so the image service decides what
// the user may see.
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

// glanceCore are the image attributes that are not properties.
var glanceCore = map[string]bool{
	"id": true, "name": true, "status": true, "visibility": true, "protected": true, "checksum": true, "owner": true,
	"size": true, "min_ram": true, "min_disk": true, "disk_format": true, "container_format": true, "created_at": true,
	"updated_at": true, "tags": true, "self": true, "file": true, "schema": true, "virtual_size": true, "os_hidden": true,
	"os_hash_algo": true, "os_hash_value": true, "direct_url": true, "locations": true, "stores": true,
}

// Image implements ImageService.
func (c *ImageClient) Image(ctx context.Context, token, id string) (*ImageInfo, error) {
	var raw map[string]any
	status, err := c.call(ctx, token, "GET", "/v2/images/"+id, nil, &raw)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound {
		return nil, ErrNotFound
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("image %s: image service answered %d", id, status)
	}
	num := func(k string) float64 { f, _ := raw[k].(float64); return f }
	str := func(k string) string { s, _ := raw[k].(string); return s }
	info := &ImageInfo{ID: str("id"), Name: str("name"), Status: str("status"), MinDiskGB: int(num("min_disk")),
		MinRAMMB: int(num("min_ram")), SizeBytes: int64(num("size")), Properties: map[string]string{}}
	for k, v := range raw {
		if s, ok := v.(string); ok && !glanceCore[k] {
			info.Properties[k] = s
		}
	}
	return info, nil
}

// CreateSnapshot implements ImageService.
func (c *ImageClient) CreateSnapshot(ctx context.Context, token, name string, props map[string]string) (string, error) {
	body := map[string]any{"name": name, "container_format": "bare", "disk_format": "qcow2"}
	for k, v := range props {
		if !glanceCore[k] {
			body[k] = v
		}
	}
	var out struct {
		ID string `json:"id"`
	}
	status, err := c.call(ctx, token, "POST", "/v2/images", body, &out)
	if err != nil {
		return "", err
	}
	if status != http.StatusCreated || out.ID == "" {
		return "", fmt.Errorf("create snapshot image: image service answered %d", status)
	}
	return out.ID, nil
}

func (c *ImageClient) call(ctx context.Context, token, method, path string, body, out any) (int, error) {
	return doJSON(ctx, c.Client, token, method, c.URL+path, body, out)
}

// NetworkClient is the NetworkService over the Neutron v2.0 API.
type NetworkClient struct {
	// URL is the networking service's base URL (http://host:9696).
	URL    string
	Client *http.Client
}

var _ NetworkService = (*NetworkClient)(nil)

// NewNetworkClient returns a NetworkService for the networking service at url.
func NewNetworkClient(url string) *NetworkClient {
	return &NetworkClient{URL: strings.TrimSuffix(url, "/"), Client: &http.Client{Timeout: 30 * time.Second}}
}

// NetworkExists implements NetworkService.
func (c *NetworkClient) NetworkExists(ctx context.Context, token, id string) (bool, error) {
	status, err := doJSON(ctx, c.Client, token, "GET", c.URL+"/v2.0/networks/"+id, nil, nil)
	if err != nil {
		return false, err
	}
	switch status {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("network %s: networking service answered %d", id, status)
}

// PortUsable implements NetworkService.
func (c *NetworkClient) PortUsable(ctx context.Context, token, id string) (bool, bool, error) {
	var out struct {
		Port struct {
			DeviceID string `json:"device_id"`
		} `json:"port"`
	}
	status, err := doJSON(ctx, c.Client, token, "GET", c.URL+"/v2.0/ports/"+id, nil, &out)
	if err != nil {
		return false, false, err
	}
	switch status {
	case http.StatusOK:
		return true, out.Port.DeviceID != "", nil
	case http.StatusNotFound:
		return false, false, nil
	}
	return false, false, fmt.Errorf("port %s: networking service answered %d", id, status)
}

// doJSON makes one call with the user's token and decodes a 2xx answer.
func doJSON(ctx context.Context, client *http.Client, token, method, url string, body, out any) (int, error) {
	return doJSONErr(ctx, client, token, method, url, body, out, nil)
}

// doJSONErr is doJSON that also keeps a failure's body in errBody (when
// not nil), for the message of the service that refused.
func doJSONErr(ctx context.Context, client *http.Client, token, method, url string, body, out any, errBody *json.RawMessage) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if id := RequestIDFrom(ctx); id != "" {
		req.Header.Set("X-Openstack-Request-Id", id)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if errBody != nil && resp.StatusCode/100 != 2 {
		*errBody = data
	}
	if out != nil && resp.StatusCode/100 == 2 && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}
