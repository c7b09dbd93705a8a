// Package cloud is Nimbus's composition root: it turns a config.Config into
// a running process — store, bus, the selected service roles and their
// HTTP listeners — and tears it down again. Only cmd/nimbus and tests
// import it; services never do, so the wiring stays in one place.
//
// Start brings a whole cloud up in-process, which is also how the
// integration tests run a real Nimbus on temp dirs and free ports (as etcd's
// embed package does).
package cloud

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/identity"
	"github.com/nimbus-cloud/nimbus/internal/image"
	"github.com/nimbus-cloud/nimbus/internal/network"
	"github.com/nimbus-cloud/nimbus/internal/policy"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume"
)

// AllRoles are the control-plane roles this build implements.
var AllRoles = []string{"identity", "image", "network", "compute", "metadata", "volume", "object", "console-proxy"}

// Cloud is a running Nimbus process.
type Cloud struct {
	Config config.Config
	DB     *store.DB
	Bus    *bus.Bus
	// Identity is the identity service when this process runs it.
	Identity *identity.Service
	// IdentityURL is the identity endpoint clients use.
	IdentityURL string
	// Image is the image service when this process runs it.
	Image *image.Service
	// ImageURL is the image endpoint clients use.
	ImageURL string
	// Network is the networking service when this process runs it.
	Network *network.Service
	// NetworkURL is the networking endpoint clients use.
	NetworkURL string
	// Compute is the compute API when this process runs it.
	Compute *compute.Service
	// ComputeURL is the compute endpoint's base (the catalog adds /v2.1).
	ComputeURL string
	// MetadataURL is the metadata role's base URL when this process runs
	// it (not in the catalog, as Nova's is not).
	MetadataURL string
	// NoVNCProxyURL and SerialProxyURL are the console-proxy role's
	// listeners when this process runs it (not in the catalog, as Nova's
	// proxies are not; console URLs come from the compute API).
	NoVNCProxyURL  string
	SerialProxyURL string
	// Volume is the block storage API when this process runs it.
	Volume *volume.Service
	// VolumeURL is the block storage (Cinder v3) endpoint's base (the
	// catalog adds /v3/$(project_id)s).
	VolumeURL string
	// ObjectURL is the object storage (Swift proxy) endpoint's base (the
	// catalog adds /v1/AUTH_<project>).
	ObjectURL string
	// AdminPassword is the bootstrap admin's password.
	AdminPassword string

	// identityHandler serves the identity API in memory when this process
	// runs identity, for services that need to call it.
	identityHandler http.Handler
	natsServer      *bus.Server
	servers         []*http.Server
	log             *slog.Logger
	// runCtx lives as long as the cloud; background work hangs off it.
	runCtx context.Context
	cancel context.CancelFunc
	// background tracks goroutines that must end before Close returns
	// (agents in the middle of changing the host).
	background sync.WaitGroup
}

// Start opens the store, starts (or connects to) the bus, bootstraps the
// cloud on first start and serves every role in cfg.Roles (all of them
// when empty). It returns once every listener accepts connections.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Cloud, err error) {
	if log == nil {
		log = slog.Default()
	}
	roles := cfg.Roles
	if len(roles) == 0 {
		roles = AllRoles
	}
	for _, r := range roles {
		if !slices.Contains(AllRoles, r) {
			return nil, fmt.Errorf("unknown role %q (this build has %s)", r, strings.Join(AllRoles, ", "))
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c := &Cloud{Config: cfg, log: log, runCtx: runCtx, cancel: cancel}
	defer func() {
		if err != nil {
			c.Close(context.Background())
		}
	}()

	if c.DB, err = store.Open(ctx, cfg.DSN()); err != nil {
		return nil, err
	}
	if err := c.startBus(ctx); err != nil {
		return nil, err
	}
	metrics := api.NewMetrics()
	if cfg.DebugAddr != "" {
		if err := c.startDebug(cfg.DebugAddr); err != nil {
			return nil, err
		}
	}

	// Listen for every role first, so that bootstrap registers each
	// endpoint's real address in the catalog.
	type role struct {
		name  string
		port  int
		url   *string
		start func(context.Context, net.Listener, *api.Metrics) error
		ln    net.Listener
	}
	services := []*role{
		{name: "image", port: cfg.Image.Port, url: &c.ImageURL, start: c.startImage},
		{name: "network", port: cfg.Network.Port, url: &c.NetworkURL, start: c.startNetwork},
		{name: "compute", port: cfg.Compute.Port, url: &c.ComputeURL, start: c.startCompute},
		{name: "metadata", port: cfg.Compute.Metadata.Port, url: &c.MetadataURL, start: c.startMetadata},
		{name: "volume", port: cfg.Volume.Port, url: &c.VolumeURL, start: c.startVolume},
		{name: "object", port: cfg.Object.Port, url: &c.ObjectURL, start: c.startObject},
		// After compute, so that a proxy beside it redeems tokens in
		// process; compute knows both listeners' URLs from the start.
		{name: "console-proxy", port: cfg.Compute.Console.NoVNCProxyPort, url: &c.NoVNCProxyURL, start: c.startNoVNCProxy},
		{name: "console-proxy", port: cfg.Compute.Console.SerialProxyPort, url: &c.SerialProxyURL, start: c.startSerialProxy},
	}
	closeListeners := func() {
		for _, r := range services {
			if r.ln != nil {
				r.ln.Close()
			}
		}
	}
	for _, r := range services {
		if !slices.Contains(roles, r.name) {
			continue
		}
		if r.ln, *r.url, err = c.listen(r.port); err != nil {
			closeListeners()
			return nil, fmt.Errorf("%s listener: %w", r.name, err)
		}
	}
	if slices.Contains(roles, "identity") {
		if err := c.startIdentity(ctx, runCtx, metrics); err != nil {
			closeListeners()
			return nil, err
		}
	}
	for _, r := range services {
		if r.ln == nil {
			continue
		}
		if err := r.start(ctx, r.ln, metrics); err != nil {
			closeListeners()
			return nil, err
		}
		r.ln = nil // served now; Close shuts it down
	}
	if err := c.startNetworkAgent(ctx); err != nil {
		return nil, err
	}
	if err := c.startComputeAgent(ctx); err != nil {
		return nil, err
	}
	if err := c.startVolumeAgent(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cloud) startBus(ctx context.Context) error {
	url := c.Config.NATS
	if url == "" {
		srv, err := bus.StartServer(bus.ServerConfig{
			Host: c.Config.Bind, Port: c.Config.NATSPort,
			StoreDir: filepath.Join(c.Config.DataDir, "bus"), Logger: c.log,
		})
		if err != nil {
			return fmt.Errorf("start embedded bus: %w", err)
		}
		c.natsServer = srv
		url = srv.ClientURL()
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := bus.Connect(cctx, bus.Config{URL: url, Name: "nimbus", Logger: c.log})
	if err != nil {
		return fmt.Errorf("connect to bus %s: %w", url, err)
	}
	c.Bus = b
	return nil
}

func (c *Cloud) startIdentity(ctx, runCtx context.Context, metrics *api.Metrics) error {
	cfg := c.Config
	svc, err := IdentityAPI(cfg)
	if err != nil {
		return err
	}
	ln, url, err := c.listen(cfg.Identity.Port)
	if err != nil {
		return fmt.Errorf("identity listener: %w", err)
	}
	c.IdentityURL = url
	svc.AuthURI, svc.Log, svc.Metrics = c.IdentityURL, c.log.With("service", "identity"), metrics
	ident, err := identity.New(ctx, identity.Config{
		KeyDir:                  filepath.Join(cfg.DataDir, "fernet-keys"),
		TokenLifetime:           cfg.Identity.TokenLifetime,
		LockoutFailures:         cfg.Identity.LockoutFailures,
		LockoutDuration:         cfg.Identity.LockoutDuration,
		UniqueLastPasswordCount: cfg.Identity.UniqueLastPasswordCount,
		BcryptCost:              cfg.Identity.BcryptCost,
		MaxActiveKeys:           cfg.Identity.MaxActiveKeys,
	}, c.DB, svc, c.log.With("service", "identity"))
	if err != nil {
		ln.Close()
		return err
	}
	svc.Tokens = ident
	c.Identity = ident
	if err := c.shareIdentityChanges(runCtx, ident); err != nil {
		ln.Close()
		return err
	}
	h := svc.Handler(ident.Routes())
	c.identityHandler = h
	if err := c.bootstrap(ctx, h); err != nil {
		ln.Close()
		return err
	}
	// A rotation by `nimbus manage fernet-rotate` in another process is
	// picked up within this interval.
	go ident.Keys().Watch(runCtx, 30*time.Second, func(err error) { c.log.Warn("reload fernet keys", "err", err) })
	c.serve(ln, h)
	return nil
}

// IdentityAPI returns the identity service's shared API settings: Keystone
// error bodies and the default policy overridden by identity.policy_file.
// Set Tokens to the identity service once it is made.
func IdentityAPI(cfg config.Config) (*api.Service, error) {
	enforcer, err := policy.NewEnforcer(identity.DefaultPolicy)
	if err != nil {
		return nil, fmt.Errorf("identity policy defaults: %w", err)
	}
	if cfg.Identity.PolicyFile != "" {
		if err := enforcer.LoadFile(cfg.Identity.PolicyFile); err != nil {
			return nil, fmt.Errorf("identity policy: %w", err)
		}
	}
	return &api.Service{Name: "identity", Errors: api.KeystoneErrors, Policy: api.PolicyAuthorizer{Enforcer: enforcer}}, nil
}

// listen opens a role's listener on the bind address and returns it with
// the public URL clients reach it at.
func (c *Cloud) listen(port int) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(c.Config.Bind, strconv.Itoa(port)))
	if err != nil {
		return nil, "", err
	}
	p := ln.Addr().(*net.TCPAddr).Port
	return ln, "http://" + net.JoinHostPort(c.Config.PublicHost, strconv.Itoa(p)), nil
}

// identityChanged is broadcast after every identity write, so that every
// identity process sharing the database drops its caches: validation stays
// free of database round trips without serving stale roles or revocations.
type identityChanged struct {
	Origin string `json:"origin"`
}

const identityChangedSubject = "nimbus.identity.changed"

func (c *Cloud) shareIdentityChanges(ctx context.Context, ident *identity.Service) error {
	origin := api.NewRequestID()
	_, err := bus.Subscribe(c.Bus, identityChangedSubject, "", func(ctx context.Context, ev identityChanged) error {
		if ev.Origin == origin {
			return nil
		}
		return ident.Invalidate(ctx)
	})
	if err != nil {
		return fmt.Errorf("subscribe to identity changes: %w", err)
	}
	ident.OnChange(func() {
		if err := bus.Publish(ctx, c.Bus, identityChangedSubject, identityChanged{Origin: origin}); err != nil {
			c.log.Warn("broadcast identity change", "err", err)
		}
	})
	return nil
}

// BusURL is the client URL of the embedded bus, or the configured one.
func (c *Cloud) BusURL() string {
	if c.natsServer != nil {
		return c.natsServer.ClientURL()
	}
	return c.Config.NATS
}

// bootstrap makes sure the cloud has its admin, roles, catalog and the
// service users the config gives passwords for. The admin password comes
// from the config or, on first start, is generated and kept (mode 0600)
// in the data dir. h is the identity API, through which service users are
// made.
func (c *Cloud) bootstrap(ctx context.Context, h http.Handler) error {
	pw := c.Config.Identity.AdminPassword
	pwFile := filepath.Join(c.Config.DataDir, "admin-password")
	if pw == "" {
		data, err := os.ReadFile(pwFile)
		switch {
		case err == nil:
			pw = strings.TrimSpace(string(data))
		case errors.Is(err, os.ErrNotExist):
			var raw [18]byte
			_, _ = rand.Read(raw[:])
			pw = base64.RawURLEncoding.EncodeToString(raw[:])
			if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
				return fmt.Errorf("save admin password: %w", err)
			}
		default:
			return fmt.Errorf("read admin password: %w", err)
		}
	}
	c.AdminPassword = pw
	if err := c.Identity.Bootstrap(ctx, identity.BootstrapOptions{
		AdminPassword: pw, Region: c.Config.Region, Catalog: c.catalog(),
	}); err != nil {
		return err
	}
	// A failure here (say, the admin's password was changed through the
	// API since) must not keep identity down: services on other hosts
	// report their failed logins, and `nimbus manage bootstrap` fixes it.
	if err := EnsureServiceUsers(ctx, h, AdminLogin{Password: pw}, ServiceUsers(c.Config), false); err != nil {
		c.log.Error("bootstrap service users; run `nimbus manage bootstrap` to retry", "err", err)
	}
	return nil
}

// catalog lists the endpoints of the services this process serves.
func (c *Cloud) catalog() []identity.CatalogEntry {
	var out []identity.CatalogEntry
	if c.IdentityURL != "" {
		u := c.IdentityURL + "/v3"
		out = append(out, identity.CatalogEntry{Type: "identity", Name: "keystone", Description: "Nimbus Identity",
			URLs: map[string]string{"public": u, "internal": u, "admin": u}})
	}
	if c.ImageURL != "" {
		u := c.ImageURL
		out = append(out, identity.CatalogEntry{Type: "image", Name: "glance", Description: "Nimbus Image",
			URLs: map[string]string{"public": u, "internal": u, "admin": u}})
	}
	if c.NetworkURL != "" {
		u := c.NetworkURL
		out = append(out, identity.CatalogEntry{Type: "network", Name: "neutron", Description: "Nimbus Networking",
			URLs: map[string]string{"public": u, "internal": u, "admin": u}})
	}
	if c.ComputeURL != "" {
		u := c.ComputeURL + "/v2.1"
		out = append(out, identity.CatalogEntry{Type: "compute", Name: "nova", Description: "Nimbus Compute",
			URLs: map[string]string{"public": u, "internal": u, "admin": u}})
	}
	if c.VolumeURL != "" {
		// Cinder registers v3 under two types: Tempest and cinderclient
		// look for volumev3, openstacksdk for block-storage.
		u := c.VolumeURL + "/v3/$(project_id)s"
		urls := map[string]string{"public": u, "internal": u, "admin": u}
		out = append(out,
			identity.CatalogEntry{Type: "volumev3", Name: "cinderv3", Description: "Nimbus Block Storage", URLs: urls},
			identity.CatalogEntry{Type: "block-storage", Name: "cinder", Description: "Nimbus Block Storage", URLs: urls})
	}
	if c.ObjectURL != "" {
		out = append(out, objectCatalogEntry(c.ObjectURL))
	}
	return out
}

// startDebug serves net/http/pprof on a loopback address, for profiling a
// running cloud with `go tool pprof`.
func (c *Cloud) startDebug(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	c.serve(ln, mux)
	c.log.Info("pprof listening", "addr", ln.Addr().String())
	return nil
}

func (c *Cloud) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
	}
	c.servers = append(c.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// Close stops listeners (letting requests in flight finish until ctx is
// done), then the bus and the store.
func (c *Cloud) Close(ctx context.Context) error {
	var errs []error
	for _, s := range c.servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if c.cancel != nil {
		c.cancel()
	}
	c.background.Wait()
	if c.Image != nil {
		// Background imports stop (and revert) before the database goes.
		c.Image.Close()
	}
	if c.Compute != nil {
		if err := c.Compute.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Bus != nil {
		if err := c.Bus.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.natsServer != nil {
		c.natsServer.Shutdown()
	}
	if c.DB != nil {
		if err := c.DB.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
