package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"time"
)

// RouterHeader carries the router a guest's request came through. The
// data plane sets it (dataplane.MetadataRouterHeader; a test in
// internal/cloud keeps the two equal). It is not imported from there so
// that the config drive renderer does not pull in the Linux data plane.
const RouterHeader = "X-Nimbus-Router-ID"

// ProxyConfig configures the networking agent's side of the metadata
// service.
type ProxyConfig struct {
	// Secret is shared with the metadata role.
	Secret []byte
	// URL is the metadata role's base URL (http://host:8775).
	URL string
	// Finder names the instance behind a router with an address
	// (*Neutron in production).
	Finder interface {
		FindInstance(ctx context.Context, routerID, ip string) (instanceID, projectID string, err error)
	}
	// CacheTTL keeps an address's instance this long (Neutron's metadata
	// agent caches for 5s); negative disables the cache.
	CacheTTL time.Duration
	// Transport reaches the role; http.DefaultTransport when nil.
	Transport http.RoundTripper
	Log       *slog.Logger
}

// Proxy is the handler the data plane serves in each router namespace
// (dataplane.Config.MetadataHandler). The data plane sets
// X-Forwarded-For to the guest's address and X-Nimbus-Router-ID to the
// router, replacing whatever the guest sent.
type Proxy struct {
	cfg   ProxyConfig
	cache *ttlCache[guestKey, guestID]
	rp    *httputil.ReverseProxy
}

type guestKey struct{ router, ip string }
type guestID struct{ instance, project string }

var _ http.Handler = (*Proxy)(nil)

// NewProxy returns the agent-side handler.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 5 * time.Second
	}
	target, err := url.Parse(cfg.URL)
	if err != nil || target.Scheme == "" || target.Host == "" {
		return nil, fmt.Errorf("metadata URL %q is not an absolute URL", cfg.URL)
	}
	p := &Proxy{cfg: cfg, cache: newTTLCache[guestKey, guestID](cfg.CacheTTL)}
	p.rp = &httputil.ReverseProxy{
		Transport: cfg.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Only what the contract names goes to the role: the guest's
			// own headers could claim to be anyone.
			g := pr.In.Context().Value(guestCtxKey{}).(guestID)
			h := http.Header{}
			h.Set(HeaderForwarded, pr.In.Header.Get(HeaderForwarded))
			h.Set(HeaderInstanceID, g.instance)
			h.Set(HeaderTenantID, g.project)
			h.Set(HeaderSignature, Sign(cfg.Secret, g.instance))
			if ct := pr.In.Header.Get("Content-Type"); ct != "" {
				h.Set("Content-Type", ct)
			}
			pr.Out.Header = h
			pr.Out.Host = target.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusForbidden {
				cfg.Log.Warn("the metadata service refused a signed request; the shared secrets of the agent and the metadata role probably differ",
					"url", cfg.URL)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cfg.Log.Error("reach the metadata service", "url", cfg.URL, "err", err)
			http.Error(w, "An unknown error has occurred.", http.StatusInternalServerError)
		},
	}
	return p, nil
}

// guestCtxKey carries the identified guest from ServeHTTP to Rewrite.
type guestCtxKey struct{}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip, router := r.Header.Get(HeaderForwarded), r.Header.Get(RouterHeader)
	if _, err := netip.ParseAddr(ip); err != nil || router == "" {
		// The data plane always sets both; anything else did not come
		// through a router namespace.
		http.Error(w, "The request did not come through a router.", http.StatusBadRequest)
		return
	}
	g, err := p.identify(r.Context(), router, ip)
	if errors.Is(err, ErrNoInstance) {
		p.cfg.Log.Info("metadata request from an unknown address", "router", router, "ip", ip)
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	if err != nil {
		p.cfg.Log.Error("identify metadata requester", "router", router, "ip", ip, "err", err)
		http.Error(w, "An unknown error has occurred.", http.StatusInternalServerError)
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), guestCtxKey{}, g)))
}

// identify finds the instance behind router with ip, through the cache.
// Misses are not cached: a guest that asks before its port is visible
// gets an answer as soon as it is.
func (p *Proxy) identify(ctx context.Context, router, ip string) (guestID, error) {
	k := guestKey{router, ip}
	if g, ok := p.cache.get(k); ok {
		return g, nil
	}
	inst, project, err := p.cfg.Finder.FindInstance(ctx, router, ip)
	if err != nil {
		return guestID{}, err
	}
	g := guestID{inst, project}
	p.cache.put(k, g)
	return g, nil
}
