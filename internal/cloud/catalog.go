package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// catalogTTL is how long a fetched service catalog is reused.
const catalogTTL = 5 * time.Minute

// catalogFinder looks endpoints up in the service catalog that comes with
// a token of its own user, as OpenStack services find each other. The
// image service uses it to reach other regions' image APIs for
// glance-download imports, and its swift store the object service with
// the token that came with the catalog.
type catalogFinder struct {
	authURL                                         string
	user, password, project, userDomain, projDomain string
	client                                          *http.Client

	mu      sync.Mutex
	catalog []catalogService // guarded by mu
	fetched time.Time        // guarded by mu
	token   string           // the catalog's token; guarded by mu
	expires time.Time        // when token expires; guarded by mu
}

type catalogService struct {
	Type      string `json:"type"`
	Endpoints []struct {
		Interface string `json:"interface"`
		RegionID  string `json:"region_id"`
		URL       string `json:"url"`
	} `json:"endpoints"`
}

// endpoint returns the URL of the typ service in region for iface.
func (f *catalogFinder) endpoint(ctx context.Context, typ, region, iface string) (string, error) {
	cat, _, err := f.load(ctx, false)
	if err != nil {
		return "", err
	}
	return findEndpoint(cat, typ, region, iface)
}

// tokenAndEndpoint returns the user's token and the URL of the typ
// service in region for iface; renew logs in again first, for a token
// that was refused.
func (f *catalogFinder) tokenAndEndpoint(ctx context.Context, typ, region, iface string, renew bool) (token, url string, err error) {
	cat, token, err := f.load(ctx, renew)
	if err != nil {
		return "", "", err
	}
	url, err = findEndpoint(cat, typ, region, iface)
	return token, url, err
}

func findEndpoint(cat []catalogService, typ, region, iface string) (string, error) {
	for _, s := range cat {
		if s.Type != typ {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Interface == iface && (region == "" || e.RegionID == region) {
				return e.URL, nil
			}
		}
	}
	return "", fmt.Errorf("no %s endpoint for interface %s in region %q in the catalog", typ, iface, region)
}

// load returns the catalog and its token, logging in again when they are
// old, the token is about to expire, or renew is set.
func (f *catalogFinder) load(ctx context.Context, renew bool) ([]catalogService, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !renew && f.catalog != nil && time.Since(f.fetched) < catalogTTL && time.Until(f.expires) > time.Minute {
		return f.catalog, f.token, nil
	}
	body, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": f.user, "password": f.password, "domain": map[string]any{"name": f.userDomain}}}},
		"scope": map[string]any{"project": map[string]any{"name": f.project, "domain": map[string]any{"name": f.projDomain}}},
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(f.authURL, "/")+"/auth/tokens", bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fetch catalog: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return nil, "", fmt.Errorf("fetch catalog: log in as %s: status %d", f.user, resp.StatusCode)
	}
	var tok struct {
		Token struct {
			Catalog   []catalogService `json:"catalog"`
			ExpiresAt time.Time        `json:"expires_at"`
		} `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&tok); err != nil {
		return nil, "", fmt.Errorf("fetch catalog: %w", err)
	}
	f.catalog, f.fetched = tok.Token.Catalog, time.Now()
	f.token, f.expires = resp.Header.Get("X-Subject-Token"), tok.Token.ExpiresAt
	return f.catalog, f.token, nil
}

// handlerTransport serves requests with a handler in this process, so
// that in-process clients of the identity API need no network.
type handlerTransport struct{ h http.Handler }

// RoundTrip implements http.RoundTripper.
func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	r = r.Clone(r.Context())
	r.RemoteAddr = "127.0.0.1:0"
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}
