package vpcroute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// metadataTimeout bounds each request to the metadata service, which
// answers in milliseconds on an instance and not at all elsewhere.
const metadataTimeout = 5 * time.Second

// metadataService reads this instance's metadata. AWS (IMDSv2) and
// Alibaba Cloud (security hardening mode) share one protocol: PUT
// /latest/api/token with a TTL header returns a token, sent back in a
// header with every read; they differ in the header names only. Where no
// token is issued (IMDSv1-only, hardening off) reads go without one.
// instanceMetadata is how one cloud's instance metadata service tells
// this host its instance id and region.
type instanceMetadata struct {
	defaultURL             string
	ttlHeader, tokenHeader string
	regionPath             string
}

var (
	alibabaMetadata = instanceMetadata{defaultURL: "http://100.100.100.200",
		ttlHeader: "X-aliyun-ecs-metadata-token-ttl-seconds", tokenHeader: "X-aliyun-ecs-metadata-token",
		regionPath: "/latest/meta-data/region-id"}
	awsMetadata = instanceMetadata{defaultURL: "http://169.254.169.254",
		ttlHeader: "X-aws-ec2-metadata-token-ttl-seconds", tokenHeader: "X-aws-ec2-metadata-token",
		regionPath: "/latest/meta-data/placement/region"}
)

// fill completes cfg's instance id and region from the metadata service
// (cfg.MetadataURL, or the cloud's own address) when they are not set.
func (im instanceMetadata) fill(ctx context.Context, cfg *Config) error {
	base := cfg.MetadataURL
	if base == "" {
		base = im.defaultURL
	}
	md := metadataService{base: strings.TrimSuffix(base, "/"), ttlHeader: im.ttlHeader, tokenHeader: im.tokenHeader, client: cfg.HTTPClient}
	return discover(ctx, cfg, md, "/latest/meta-data/instance-id", im.regionPath)
}

type metadataService struct {
	base        string // e.g. http://169.254.169.254
	ttlHeader   string // asks for a token of that many seconds
	tokenHeader string // carries the token
	client      *http.Client
}

// read returns the values at paths (e.g. /latest/meta-data/instance-id),
// using one session token for all of them.
func (m metadataService) read(ctx context.Context, paths ...string) ([]string, error) {
	token, err := m.token(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		v, err := m.get(ctx, p, token)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// token asks for a session token; "" when the service issues none.
func (m metadataService) token(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.base+"/latest/api/token", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(m.ttlHeader, "300")
	resp, err := m.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("instance metadata service at %s unreachable (not on a cloud instance? then configure region and instance id): %w", m.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("read metadata token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		// A service without session tokens answers 404 or 405 here;
		// try reading without one, which says clearly if that is refused.
		return "", nil
	}
	return strings.TrimSpace(string(b)), nil
}

func (m metadataService) get(ctx context.Context, path, token string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+path, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set(m.tokenHeader, token)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("instance metadata %s: status %d", path, resp.StatusCode)
	}
	v := strings.TrimSpace(string(b))
	if v == "" || strings.ContainsAny(v, " \n\r\t/") {
		return "", fmt.Errorf("instance metadata %s: unexpected value %q", path, v)
	}
	return v, nil
}

// discover fills in the instance id and region that cfg lacks.
func discover(ctx context.Context, cfg *Config, m metadataService, instancePath, regionPath string) error {
	var paths []string
	if cfg.InstanceID == "" {
		paths = append(paths, instancePath)
	}
	if cfg.Region == "" {
		paths = append(paths, regionPath)
	}
	if len(paths) == 0 {
		return nil
	}
	vals, err := m.read(ctx, paths...)
	if err != nil {
		return fmt.Errorf("discover instance id and region: %w", err)
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID, vals = vals[0], vals[1:]
	}
	if cfg.Region == "" {
		cfg.Region = vals[0]
	}
	if cfg.InstanceID == "" || cfg.Region == "" {
		return errors.New("discover instance id and region: empty answer")
	}
	return nil
}
