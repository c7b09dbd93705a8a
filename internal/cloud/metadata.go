package cloud

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/metadata"
)

// startMetadata serves the metadata role (Nova's nova-metadata-api): it
// answers only requests a networking agent signed with the shared secret.
func (c *Cloud) startMetadata(_ context.Context, ln net.Listener, _ *api.Metrics) error {
	if err := c.Config.ValidateMetadata(); err != nil {
		return err
	}
	secret, err := c.metadataSecret()
	if err != nil {
		return err
	}
	lazy := &lazyNetworkClient{c: c}
	srv := metadata.NewServer(metadata.ServerConfig{
		Secret: secret,
		Guest: func(ctx context.Context, id string) (compute.GuestInfo, error) {
			return compute.LookupGuest(ctx, c.DB, id)
		},
		Network: &metadata.Neutron{Client: lazy.get},
		Log:     c.log.With("service", "metadata"),
	})
	c.serve(ln, srv)
	// Log in ahead of the first guest: a login (a password check and a
	// token) is seconds on a busy host, and a booting guest's first
	// metadata request should not wait for it.
	go lazy.warm(c.runCtx)
	return nil
}

// warm gets the client once, retrying until it succeeds or ctx ends.
func (l *lazyNetworkClient) warm(ctx context.Context) {
	for delay := 500 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
		if _, err := l.get(ctx); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// lazyNetworkClient logs the metadata role in to the networking API as
// the compute service user (as Nova's metadata API uses its [neutron]
// credentials) on first use, not at start: in `nimbus serve` the role may
// come up before identity answers. A failed login is retried next time.
type lazyNetworkClient struct {
	c      *Cloud
	mu     sync.Mutex
	client *gophercloud.ServiceClient // guarded by mu
}

func (l *lazyNetworkClient) get(ctx context.Context) (*gophercloud.ServiceClient, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client != nil {
		return l.client, nil
	}
	provider, err := l.c.serviceProvider(ctx, l.c.Config.Compute.Auth)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	client, err := openstack.NewNetworkV2(provider, gophercloud.EndpointOpts{Region: l.c.Config.Region})
	if err != nil {
		return nil, fmt.Errorf("metadata: networking endpoint: %w", err)
	}
	l.client = client
	return client, nil
}

// metadataProxy is the networking agent's handler for guests' metadata
// requests (neutron-metadata-agent): it finds the instance through the
// agent's networking client and forwards, signed, to compute.metadata.url
// or this process's metadata role. Without either it returns nil and
// guests get no metadata service.
func (c *Cloud) metadataProxy(client *gophercloud.ServiceClient) (http.Handler, error) {
	if err := c.Config.ValidateMetadata(); err != nil {
		return nil, err
	}
	target := c.Config.Compute.Metadata.URL
	if target == "" {
		target = c.MetadataURL
	}
	if target == "" {
		c.log.Warn("no metadata service for guests: set compute.metadata.url or run the metadata role here")
		return nil, nil
	}
	secret, err := c.metadataSecret()
	if err != nil {
		return nil, err
	}
	p, err := metadata.NewProxy(metadata.ProxyConfig{
		Secret: secret, URL: target, Log: c.log.With("service", "metadata-proxy"),
		Finder: &metadata.Neutron{Client: func(context.Context) (*gophercloud.ServiceClient, error) { return client, nil }},
	})
	if err != nil {
		return nil, fmt.Errorf("config: compute.metadata.url: %w", err)
	}
	return p, nil
}

// metadataSecret is compute.metadata.shared_secret, or the one generated
// on first start and kept in the data dir.
func (c *Cloud) metadataSecret() ([]byte, error) {
	if s := c.Config.Compute.Metadata.SharedSecret; s != "" {
		return []byte(s), nil
	}
	s, err := loadOrCreateSecret(filepath.Join(c.Config.DataDir, "metadata-secret"))
	if err != nil {
		return nil, fmt.Errorf("metadata shared secret: %w", err)
	}
	return []byte(s), nil
}

// loadOrCreateSecret reads a generated secret from path, or generates one
// and puts it there (mode 0600). The file appears whole and only once (a
// hard link of a written temporary file), so that two processes sharing a
// data dir agree on one secret.
func loadOrCreateSecret(path string) (string, error) {
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			return strings.TrimSpace(string(data)), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
		var raw [18]byte
		_, _ = rand.Read(raw[:])
		s := base64.RawURLEncoding.EncodeToString(raw[:])
		tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
		if err != nil {
			return "", fmt.Errorf("create %s: %w", path, err)
		}
		_, werr := tmp.WriteString(s + "\n")
		if err := errors.Join(werr, tmp.Close()); err != nil {
			os.Remove(tmp.Name())
			return "", fmt.Errorf("write %s: %w", path, err)
		}
		err = os.Link(tmp.Name(), path)
		os.Remove(tmp.Name())
		switch {
		case err == nil:
			return s, nil
		case !errors.Is(err, fs.ErrExist):
			return "", fmt.Errorf("create %s: %w", path, err)
		}
		// Another process got there first: read its secret.
	}
}
