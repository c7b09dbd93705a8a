package cloud

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/identity"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/containersync"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/node"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/proxy"
)

// startObject serves the Swift proxy (the object role). In the
// one-machine layout (config.LocalObjectStorage) it first starts a
// storage node on device directories in the data dir, building its rings
// on first start, so `nimbus up` has working object storage with no
// operator step; otherwise the rings come from object.ring_dir, built
// with `nimbus ring` for the cluster's `nimbus storage` hosts.
func (c *Cloud) startObject(ctx context.Context, ln net.Listener, _ *api.Metrics) error {
	cfg := &c.Config
	if err := cfg.ValidateObject(); err != nil {
		return err
	}
	tokens, authURI, err := c.serviceTokens("object", cfg.Object.Auth)
	if err != nil {
		return err
	}
	prefix, suffix, err := ObjectHashPath(cfg, cfg.LocalObjectStorage())
	if err != nil {
		return err
	}
	log := c.log.With("service", "object")
	localProxy := ""
	if cfg.LocalObjectStorage() {
		localProxy = localProxyURL(cfg, ln)
	}
	realms, current, err := SyncRealms(cfg, localProxy)
	if err != nil {
		return err
	}
	var n *node.Node
	if cfg.LocalObjectStorage() {
		if n, err = c.startLocalStorage(prefix, suffix, realms); err != nil {
			return err
		}
	}
	dir := cfg.ObjectRingDir()
	// Requests for this process's own storage servers skip the loopback
	// HTTP hop.
	var local func(http.RoundTripper) http.RoundTripper
	if n != nil {
		local = n.Transport
	}
	policies, err := cfg.ObjectPolicies()
	if err != nil {
		if n != nil {
			n.Close(ctx)
		}
		return err
	}
	p, err := proxy.New(proxy.Config{
		LocalTransport: local, Policies: policies,
		AccountRing:    filepath.Join(dir, node.AccountRing),
		ContainerRing:  filepath.Join(dir, node.ContainerRing),
		ObjectRing:     filepath.Join(dir, node.ObjectRing),
		HashPathPrefix: prefix, HashPathSuffix: suffix,
		Tokens: tokens, AuthURL: authURI, Logger: log,
		SyncRealms: realms, SyncCluster: current, AllowedSyncHosts: cfg.Object.ContainerSync.AllowedSyncHosts,
		Middlewares:            ProxyMiddlewares(cfg),
		AllowAccountManagement: cfg.Object.AllowAccountManagement,
	})
	if err != nil {
		if n != nil {
			n.Close(ctx)
		}
		return err
	}
	// The proxy and node outlive Start; they stop after the listeners,
	// when Close cancels runCtx.
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		<-c.runCtx.Done()
		p.Close()
		if n != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.Close(sctx); err != nil {
				c.log.Warn("close storage node", "err", err)
			}
		}
	}()
	c.serve(ln, p)
	return nil
}

// ProxyMiddlewares is the object proxy's optional middleware settings
// from cfg; those left unset keep the proxy's (Swift's) defaults.
func ProxyMiddlewares(cfg *config.Config) proxy.Middlewares {
	dr := cfg.Object.DomainRemap
	return proxy.Middlewares{DomainRemap: proxy.DomainRemap{
		StorageDomains: dr.StorageDomain, PathRoot: dr.PathRoot, ResellerPrefixes: dr.ResellerPrefixes,
		DefaultResellerPrefix: dr.DefaultResellerPrefix, MangleClientPaths: dr.MangleClientPaths,
	}}
}

// startLocalStorage runs the one-machine storage node: its devices under
// the devices root, its rings in the ring dir, built with the real ports
// on first start. Its container sync runs every 10 s unless configured,
// so that syncs between containers of this cloud (Tempest waits for
// them) land within seconds.
func (c *Cloud) startLocalStorage(prefix, suffix string, realms *containersync.Realms) (*node.Node, error) {
	ncfg, err := StorageNodeConfig(&c.Config, prefix, suffix)
	if err != nil {
		return nil, err
	}
	ncfg.Logger = c.log
	ncfg.SyncRealms = realms
	if ncfg.ContainerSyncInterval == 0 {
		ncfg.ContainerSyncInterval = 10 * time.Second
	}
	if err := ensureDirs(ncfg.DevicesRoot, c.Config.Object.Storage.Devices); err != nil {
		return nil, err
	}
	ls, err := node.Listen(ncfg)
	if err != nil {
		return nil, err
	}
	op, cp, ap := ls.Ports()
	st := c.Config.Object.Storage
	err = node.EnsureLocalRings(node.LocalRings{Dir: ncfg.RingDir, IP: ncfg.IP, ObjectPort: op, ContainerPort: cp,
		AccountPort: ap, Devices: st.Devices, PartPower: st.PartPower, Replicas: min(3, len(st.Devices)),
		Policies: ncfg.Policies.All()})
	if err != nil {
		ls.Close()
		return nil, fmt.Errorf("object rings: %w", err)
	}
	return node.Start(ncfg, ls)
}

// StorageNodeConfig is the storage node of cfg, for `nimbus up` and
// `nimbus storage`.
func StorageNodeConfig(cfg *config.Config, prefix, suffix string) (node.Config, error) {
	st := cfg.Object.Storage
	ip := st.IP
	if ip == "" {
		ip = cfg.Bind
	}
	if ip == "" || net.ParseIP(ip).IsUnspecified() {
		return node.Config{}, fmt.Errorf("config: object.storage.ip is required when binding %q: the rings need this node's address", cfg.Bind)
	}
	realms, _, err := SyncRealms(cfg, "")
	if err != nil {
		return node.Config{}, err
	}
	policies, err := cfg.ObjectPolicies()
	if err != nil {
		return node.Config{}, err
	}
	return node.Config{
		Policies:    policies,
		DevicesRoot: cfg.ObjectDevicesRoot(), RingDir: cfg.ObjectRingDir(),
		HashPathPrefix: prefix, HashPathSuffix: suffix, Bind: cfg.Bind, IP: ip,
		ObjectPort: st.ObjectPort, ContainerPort: st.ContainerPort, AccountPort: st.AccountPort, MountCheck: st.MountCheck,
		ReplicationInterval: st.ReplicationInterval, ExpirerInterval: st.ExpirerInterval,
		UpdaterInterval: st.UpdaterInterval, AuditorInterval: st.AuditorInterval,
		ContainerSyncInterval: st.ContainerSyncInterval, AllowedSyncHosts: cfg.Object.ContainerSync.AllowedSyncHosts,
		ReaperInterval: st.ReaperInterval, ReaperDelay: st.ReaperDelay,
		SyncRealms: realms,
	}, nil
}

// Default sync realm of a one-machine cloud: Tempest's realm_name and
// cluster_name defaults, so its container sync test needs no settings.
const (
	defaultSyncRealm   = "realm1"
	defaultSyncCluster = "name1"
)

// SyncRealms returns the container sync realms of cfg and this cluster's
// "//realm/cluster". Without configured realms, a one-machine cloud
// (localProxy, its proxy's /v1/ URL, set) gets one realm whose only
// cluster is itself, keyed with a secret kept in the data dir; other
// processes get none, and only full-URL targets to allowed hosts work.
func SyncRealms(cfg *config.Config, localProxy string) (*containersync.Realms, string, error) {
	cs := cfg.Object.ContainerSync
	if len(cs.Realms) > 0 {
		in := map[string]containersync.Realm{}
		for name, r := range cs.Realms {
			in[name] = containersync.Realm{Key: r.Key, Key2: r.Key2, Clusters: r.Clusters}
		}
		realms, err := containersync.NewRealms(in)
		if err != nil {
			return nil, "", fmt.Errorf("config: object.container_sync: %w", err)
		}
		return realms, cs.Current, nil
	}
	if localProxy == "" {
		realms, err := containersync.NewRealms(nil)
		return realms, "", err
	}
	key, err := loadOrCreateSecret(filepath.Join(cfg.DataDir, "container-sync-realm-key"))
	if err != nil {
		return nil, "", fmt.Errorf("container sync realm key: %w", err)
	}
	realms, err := containersync.NewRealms(map[string]containersync.Realm{
		defaultSyncRealm: {Key: key, Clusters: map[string]string{defaultSyncCluster: localProxy}},
	})
	if err != nil {
		return nil, "", err
	}
	return realms, "//" + defaultSyncRealm + "/" + defaultSyncCluster, nil
}

// localProxyURL is the /v1/ endpoint of the proxy listening on ln, as the
// storage node of the same machine reaches it.
func localProxyURL(cfg *config.Config, ln net.Listener) string {
	host := cfg.Object.Storage.IP
	if host == "" {
		host = cfg.Bind
	}
	if host == "" || net.ParseIP(host).IsUnspecified() {
		host = "127.0.0.1"
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/v1/"
}

// ObjectHashPath returns the cluster's hash path prefix and suffix: the
// configured ones, else those kept in the data dir, which are generated
// on first use only when generate is set (a one-machine cloud); a node of
// a real cluster must be given the cluster's.
func ObjectHashPath(cfg *config.Config, generate bool) (prefix, suffix string, err error) {
	o := cfg.Object
	if o.HashPathPrefix != "" || o.HashPathSuffix != "" {
		return o.HashPathPrefix, o.HashPathSuffix, nil
	}
	pp, sp := filepath.Join(cfg.DataDir, "swift-hash-path-prefix"), filepath.Join(cfg.DataDir, "swift-hash-path-suffix")
	if !generate && !(fileExists(pp) && fileExists(sp)) {
		return "", "", fmt.Errorf("config: object.hash_path_prefix and hash_path_suffix are required (the same on every proxy and storage node)")
	}
	if prefix, err = loadOrCreateSecret(pp); err != nil {
		return "", "", fmt.Errorf("object hash path prefix: %w", err)
	}
	if suffix, err = loadOrCreateSecret(sp); err != nil {
		return "", "", fmt.Errorf("object hash path suffix: %w", err)
	}
	return prefix, suffix, nil
}

// ensureDirs creates the device directories of a one-machine node.
func ensureDirs(root string, devices []string) error {
	for _, d := range devices {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			return fmt.Errorf("storage device %s: %w", d, err)
		}
	}
	return nil
}

// objectCatalogEntry is Swift's catalog entry: the account of the token's
// project is part of the URL, which identity fills in per token.
func objectCatalogEntry(base string) identity.CatalogEntry {
	u := base + "/v1/AUTH_%(project_id)s"
	return identity.CatalogEntry{Type: "object-store", Name: "swift", Description: "Nimbus Object Storage",
		URLs: map[string]string{"public": u, "internal": u, "admin": base + "/v1"}}
}
