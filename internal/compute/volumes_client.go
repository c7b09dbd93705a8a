package compute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// VolumeClient is the VolumeService over the volume service's Cinder v3
// REST API: the user's token within a request, the compute service
// user's otherwise.
type VolumeClient struct {
	// URL is the volume service's base URL (http://host:8776), without
	// /v3.
	URL    string
	Client *http.Client
	// ServiceToken returns the compute service user's token, a fresh one
	// when renew is set (after a 401). Calls with an empty
	// VolumeAuth.Token fail without it.
	ServiceToken func(ctx context.Context, renew bool) (string, error)
}

var _ VolumeService = (*VolumeClient)(nil)

// NewVolumeClient returns a VolumeService for the volume service at url.
func NewVolumeClient(url string, serviceToken func(ctx context.Context, renew bool) (string, error)) *VolumeClient {
	return &VolumeClient{URL: strings.TrimSuffix(url, "/"), Client: &http.Client{Timeout: 60 * time.Second}, ServiceToken: serviceToken}
}

// cinderVolume is the part of Cinder's volume body the compute API reads.
type cinderVolume struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Status           string `json:"status"`
	Size             int    `json:"size"`
	AvailabilityZone string `json:"availability_zone"`
	Bootable         string `json:"bootable"`
	Multiattach      bool   `json:"multiattach"`
	Attachments      []struct {
		AttachmentID string `json:"attachment_id"`
		ServerID     string `json:"server_id"`
		Device       string `json:"device"`
		HostName     string `json:"host_name"`
	} `json:"attachments"`
	ImageMetadata map[string]any    `json:"volume_image_metadata"`
	Description   string            `json:"description"`
	VolumeType    string            `json:"volume_type"`
	SnapshotID    string            `json:"snapshot_id"`
	Metadata      map[string]string `json:"metadata"`
	CreatedAt     string            `json:"created_at"`
}

func (v cinderVolume) info() *VolumeInfo {
	out := &VolumeInfo{ID: v.ID, Name: v.Name, Status: v.Status, Size: v.Size, AvailabilityZone: v.AvailabilityZone,
		Bootable: strings.EqualFold(v.Bootable, "true"), Multiattach: v.Multiattach, ImageMetadata: map[string]string{},
		Description: v.Description, VolumeType: v.VolumeType, SnapshotID: v.SnapshotID, Metadata: map[string]string{}, CreatedAt: v.CreatedAt}
	for k, val := range v.Metadata {
		out.Metadata[k] = val
	}
	for _, a := range v.Attachments {
		out.Attachments = append(out.Attachments, VolumeAttachmentInfo{AttachmentID: a.AttachmentID, ServerID: a.ServerID, Device: a.Device, HostName: a.HostName})
	}
	for k, val := range v.ImageMetadata {
		switch x := val.(type) {
		case string:
			out.ImageMetadata[k] = x
		case float64:
			out.ImageMetadata[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			out.ImageMetadata[k] = strconv.FormatBool(x)
		}
	}
	return out
}

// Volume implements VolumeService.
func (c *VolumeClient) Volume(ctx context.Context, auth VolumeAuth, id string) (*VolumeInfo, error) {
	var out struct {
		Volume cinderVolume `json:"volume"`
	}
	if err := c.call(ctx, auth, "GET", "/volumes/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, fmt.Errorf("volume %s: %w", id, err)
	}
	return out.Volume.info(), nil
}

// CreateVolume implements VolumeService.
func (c *VolumeClient) CreateVolume(ctx context.Context, auth VolumeAuth, req VolumeCreate) (*VolumeInfo, error) {
	body := map[string]any{"size": req.Size}
	if req.Name != "" {
		body["name"] = req.Name
	}
	if req.ImageRef != "" {
		body["imageRef"] = req.ImageRef
	}
	if req.SnapshotID != "" {
		body["snapshot_id"] = req.SnapshotID
	}
	if req.AvailabilityZone != "" {
		body["availability_zone"] = req.AvailabilityZone
	}
	if req.Description != "" {
		body["description"] = req.Description
	}
	if req.VolumeType != "" {
		body["volume_type"] = req.VolumeType
	}
	if len(req.Metadata) > 0 {
		body["metadata"] = req.Metadata
	}
	var out struct {
		Volume cinderVolume `json:"volume"`
	}
	if err := c.call(ctx, auth, "POST", "/volumes", map[string]any{"volume": body}, &out); err != nil {
		return nil, fmt.Errorf("create volume: %w", err)
	}
	return out.Volume.info(), nil
}

// DeleteVolume implements VolumeService.
func (c *VolumeClient) DeleteVolume(ctx context.Context, auth VolumeAuth, id string) error {
	if err := c.call(ctx, auth, "DELETE", "/volumes/"+url.PathEscape(id), nil, nil); err != nil {
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	return nil
}

// action posts one volume action.
func (c *VolumeClient) action(ctx context.Context, auth VolumeAuth, id, name string, arg any, out any) error {
	if arg == nil {
		arg = map[string]any{}
	}
	if err := c.call(ctx, auth, "POST", "/volumes/"+url.PathEscape(id)+"/action", map[string]any{name: arg}, out); err != nil {
		return fmt.Errorf("volume %s: %s: %w", id, name, err)
	}
	return nil
}

// Reserve implements VolumeService.
func (c *VolumeClient) Reserve(ctx context.Context, auth VolumeAuth, id string) error {
	return c.action(ctx, auth, id, "os-reserve", nil, nil)
}

// Unreserve implements VolumeService.
func (c *VolumeClient) Unreserve(ctx context.Context, auth VolumeAuth, id string) error {
	return c.action(ctx, auth, id, "os-unreserve", nil, nil)
}

// InitializeConnection implements VolumeService.
func (c *VolumeClient) InitializeConnection(ctx context.Context, auth VolumeAuth, id, host string) (hypervisor.VolumeConn, error) {
	var out struct {
		ConnectionInfo struct {
			DriverVolumeType string                `json:"driver_volume_type"`
			Data             hypervisor.VolumeConn `json:"data"`
		} `json:"connection_info"`
	}
	if err := c.action(ctx, auth, id, "os-initialize_connection", map[string]any{"connector": map[string]any{"host": host}}, &out); err != nil {
		return hypervisor.VolumeConn{}, err
	}
	ci := out.ConnectionInfo
	if ci.DriverVolumeType != "nbd" {
		return hypervisor.VolumeConn{}, fmt.Errorf("volume %s: connection type %q is not nbd", id, ci.DriverVolumeType)
	}
	if err := ci.Data.Validate(); err != nil {
		return hypervisor.VolumeConn{}, err
	}
	return ci.Data, nil
}

// TerminateConnection implements VolumeService.
func (c *VolumeClient) TerminateConnection(ctx context.Context, auth VolumeAuth, id, host string) error {
	return c.action(ctx, auth, id, "os-terminate_connection", map[string]any{"connector": map[string]any{"host": host}}, nil)
}

// Attach implements VolumeService.
func (c *VolumeClient) Attach(ctx context.Context, auth VolumeAuth, id, instanceID, mountpoint, hostName string) error {
	return c.action(ctx, auth, id, "os-attach", map[string]any{"instance_uuid": instanceID, "mountpoint": mountpoint, "mode": "rw", "host_name": hostName}, nil)
}

// Detach implements VolumeService.
func (c *VolumeClient) Detach(ctx context.Context, auth VolumeAuth, id, attachmentID string) error {
	arg := map[string]any{}
	if attachmentID != "" {
		arg["attachment_id"] = attachmentID
	}
	return c.action(ctx, auth, id, "os-detach", arg, nil)
}

// BeginDetaching implements VolumeService.
func (c *VolumeClient) BeginDetaching(ctx context.Context, auth VolumeAuth, id string) error {
	return c.action(ctx, auth, id, "os-begin_detaching", nil, nil)
}

// RollDetaching implements VolumeService.
func (c *VolumeClient) RollDetaching(ctx context.Context, auth VolumeAuth, id string) error {
	return c.action(ctx, auth, id, "os-roll_detaching", nil, nil)
}

// call makes one request under /v3/{project}; with a service token it
// logs in again once after a 401. Cinder's 404 becomes ErrNotFound and
// any other failure status a *VolumeError with Cinder's message.
func (c *VolumeClient) call(ctx context.Context, auth VolumeAuth, method, path string, body, out any) error {
	if auth.Project == "" {
		return errors.New("no project for the volume service's URL")
	}
	u := c.URL + "/v3/" + url.PathEscape(auth.Project) + path
	for attempt := 0; ; attempt++ {
		token := auth.Token
		if token == "" {
			if c.ServiceToken == nil {
				return errors.New("no compute service credentials for the volume service")
			}
			var err error
			if token, err = c.ServiceToken(ctx, attempt > 0); err != nil {
				return fmt.Errorf("service token: %w", err)
			}
		}
		var raw json.RawMessage
		status, err := doJSONErr(ctx, c.Client, token, method, u, body, out, &raw)
		if err != nil {
			return err
		}
		switch {
		case status/100 == 2:
			return nil
		case status == http.StatusUnauthorized && auth.Token == "" && attempt == 0:
			continue
		case status == http.StatusNotFound:
			return ErrNotFound
		}
		return &VolumeError{Status: status, Message: cinderMessage(raw, status)}
	}
}

// cinderMessage takes the message out of an OpenStack error body
// ({"badRequest":{"code":400,"message":"..."}}).
func cinderMessage(raw json.RawMessage, status int) string {
	var m map[string]struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &m) == nil {
		for _, v := range m {
			if v.Message != "" {
				return v.Message
			}
		}
	}
	return http.StatusText(status)
}
