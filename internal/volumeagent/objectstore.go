package volumeagent

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// errNoObjectStore fails backup operations on a host configured without
// object storage.
var errNoObjectStore = errors.New("this storage host has no object storage configured for backups")

// errObjectNotFound is a 404 from object storage.
var errObjectNotFound = errors.New("object not found")

// swift is the Swift API of one backup's container, reached with the
// requester's token (Cinder's per-user auth) or, without one, with the
// agent's service credentials, which re-authenticate when they expire.
type swift struct {
	svc       *gophercloud.ServiceClient
	account   string
	container string
	token     string // the requester's; "" for the service's
}

func (a *Agent) swiftFor(b *agentproto.Backup) (*swift, error) {
	if a.cfg.ObjectStore == nil {
		return nil, errNoObjectStore
	}
	return &swift{svc: a.cfg.ObjectStore, account: b.Account, container: b.Container, token: b.Token}, nil
}

// url is the URL of the container, or of an object in it.
func (s *swift) url(object string) string {
	base := s.svc.Endpoint
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	u := base + url.PathEscape(s.account) + "/" + url.PathEscape(s.container)
	if object != "" {
		parts := strings.Split(object, "/")
		for i, p := range parts {
			parts[i] = url.PathEscape(p)
		}
		u += "/" + strings.Join(parts, "/")
	}
	return u
}

// do sends one request. body is re-read from the start when the service
// token must be renewed, so it must be a *bytes.Reader or nil. A status
// outside ok is an error; 404 is errObjectNotFound.
func (s *swift) do(ctx context.Context, method, u string, body *bytes.Reader, hdr http.Header, ok ...int) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, err
		}
		if body != nil {
			if _, err := body.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			req.Body, req.ContentLength = io.NopCloser(body), body.Size()
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		token := s.token
		if token == "" {
			token = s.svc.ProviderClient.Token()
		}
		req.Header.Set("X-Auth-Token", token)
		client := &s.svc.ProviderClient.HTTPClient
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, u, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && s.token == "" && attempt == 0 && s.svc.ProviderClient.ReauthFunc != nil {
			drain(resp)
			if err := s.svc.ProviderClient.Reauthenticate(ctx, token); err != nil {
				return nil, fmt.Errorf("%s %s: re-authenticate: %w", method, u, err)
			}
			continue
		}
		for _, code := range ok {
			if resp.StatusCode == code {
				return resp, nil
			}
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s %s: %w", method, u, errObjectNotFound)
		}
		return nil, fmt.Errorf("%s %s: object storage answered %d: %s", method, u, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// ensureContainer creates the container unless it exists.
func (s *swift) ensureContainer(ctx context.Context) error {
	resp, err := s.do(ctx, http.MethodPut, s.url(""), nil, nil, http.StatusCreated, http.StatusAccepted, http.StatusNoContent)
	if err != nil {
		return fmt.Errorf("create container %s: %w", s.container, err)
	}
	drain(resp)
	return nil
}

// put stores an object; Swift checks the ETag, so a corrupted upload is
// refused rather than stored.
func (s *swift) put(ctx context.Context, object string, data []byte, contentType string) error {
	sum := md5.Sum(data)
	hdr := http.Header{"Etag": {hex.EncodeToString(sum[:])}, "Content-Type": {contentType}}
	resp, err := s.do(ctx, http.MethodPut, s.url(object), bytes.NewReader(data), hdr, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("store %s: %w", object, err)
	}
	drain(resp)
	return nil
}

// get reads an object of at most limit bytes.
func (s *swift) get(ctx context.Context, object string, limit int64) ([]byte, error) {
	resp, err := s.do(ctx, http.MethodGet, s.url(object), nil, nil, http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", object, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", object, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", object, limit)
	}
	return data, nil
}

// delete removes an object; one already gone is fine.
func (s *swift) delete(ctx context.Context, object string) error {
	resp, err := s.do(ctx, http.MethodDelete, s.url(object), nil, nil, http.StatusNoContent, http.StatusOK)
	if errors.Is(err, errObjectNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", object, err)
	}
	drain(resp)
	return nil
}

// list names the container's objects under prefix, every page of them;
// a missing container holds none.
func (s *swift) list(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	marker := ""
	for {
		q := url.Values{"format": {"json"}, "prefix": {prefix}}
		if marker != "" {
			q.Set("marker", marker)
		}
		resp, err := s.do(ctx, http.MethodGet, s.url("")+"?"+q.Encode(), nil, nil, http.StatusOK, http.StatusNoContent)
		if errors.Is(err, errObjectNotFound) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		var page []struct {
			Name string `json:"name"`
		}
		if resp.StatusCode == http.StatusOK {
			err = json.NewDecoder(resp.Body).Decode(&page)
		}
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		if len(page) == 0 {
			return names, nil
		}
		for _, o := range page {
			names = append(names, o.Name)
		}
		marker = page[len(page)-1].Name
	}
}
