package cloud

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/image"
	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/policy"
)

// startImage serves the image API with the stores, quotas and import
// settings of the image config section. Tokens are validated by the
// identity service in this process when there is one, otherwise through
// the identity API with the image service user's credentials, as Glance's
// keystonemiddleware does; policy is always decided here.
func (c *Cloud) startImage(ctx context.Context, ln net.Listener, metrics *api.Metrics) error {
	cfg := &c.Config
	if err := cfg.ValidateImage(); err != nil {
		return err
	}
	tokens, authURI, err := c.serviceTokens("image", c.Config.Image.Auth)
	if err != nil {
		return err
	}
	enforcer, err := policy.NewEnforcer(image.DefaultPolicy)
	if err != nil {
		return fmt.Errorf("image policy defaults: %w", err)
	}
	guard := &imagestore.SSRFGuard{
		AllowPrivate: cfg.Image.WebDownload.AllowPrivate,
		AllowedHosts: cfg.Image.WebDownload.AllowedHosts,
	}
	catalog := c.catalogFinder()
	stores, err := buildImageStores(cfg.ImageStores(), guard, func(sc config.SwiftStoreConfig) imagestore.SwiftAuth {
		return catalog.swiftAuth(sc, cfg.Region)
	})
	if err != nil {
		return err
	}
	staging := cfg.ImageStagingDir()
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return fmt.Errorf("image staging dir: %w", err)
	}
	var webDownload *imagestore.SSRFGuard
	if cfg.Image.WebDownload.Enabled {
		webDownload = guard
	}
	q := cfg.Image.Quota
	log := c.log.With("service", "image")
	svc := &api.Service{Name: "image", Errors: image.Errors, ErrorsFor: image.ErrorsFor, Tokens: tokens,
		Policy: api.PolicyAuthorizer{Enforcer: enforcer}, AuthURI: authURI, Log: log, Metrics: metrics}
	img, err := image.New(ctx, image.Config{
		PublicURL:    c.ImageURL,
		Stores:       stores,
		DefaultStore: cfg.ImageDefaultStore(),
		Descriptions: storeDescriptions(cfg.ImageStores()),
		MaxImageSize: int64(cfg.Image.MaxImageSize),
		StagingDir:   staging,
		WebDownload:  webDownload,
		Quota: image.Quota{
			Images: q.Images, Bytes: int64(q.Bytes), Staging: int64(q.StagingBytes), Uploading: q.Uploading,
		},
		Endpoints: func(ctx context.Context, region, iface string) (string, error) {
			return catalog.endpoint(ctx, "image", region, iface)
		},
		ConvertTo:             cfg.Image.ConvertTo,
		ShowMultipleLocations: cfg.Image.ShowMultipleLocations,
		RequireFormatMatch:    cfg.Image.RequireFormatMatch,
		CacheDir:              cfg.Image.Cache.Dir,
		CacheMaxSize:          int64(cfg.Image.Cache.MaxSize),
		CachePrefetchInterval: cfg.Image.Cache.PrefetchInterval,
	}, c.DB, svc, log)
	if err != nil {
		return err
	}
	c.Image = img
	// Handler adds the streaming download route to the API's routes.
	c.serve(ln, img.Handler())
	return nil
}

// serviceTokens returns what validates a service role's tokens, and the
// identity endpoint advertised to clients that fail to authenticate: the
// identity service in this process when there is one, otherwise the
// identity API asked as the role's service user, as keystonemiddleware
// does.
func (c *Cloud) serviceTokens(role string, a config.ServiceAuth) (api.TokenValidator, string, error) {
	if c.Identity != nil {
		return c.Identity, c.IdentityURL, nil
	}
	if a.Password == "" {
		return nil, "", fmt.Errorf("the %s role without the identity role in this process needs %s.auth.password "+
			"(the %s service user's credentials for validating tokens)", role, role, role)
	}
	authURL := c.Config.ServiceAuthURL(a)
	c.log.Info("service validates tokens remotely", "service", role, "auth_url", authURL, "username", a.Username)
	return &api.RemoteValidator{
		AuthURL: authURL, Username: a.Username, Password: a.Password, Project: a.ProjectName,
		UserDomain: a.UserDomainName, ProjectDomain: a.ProjectDomainName, CacheTTL: a.TokenCacheTime,
		// Bounded, so that an unreachable identity service fails requests
		// instead of piling them up.
		Client: &http.Client{Timeout: 30 * time.Second},
	}, strings.TrimSuffix(strings.TrimSuffix(authURL, "/"), "/v3"), nil
}

// buildImageStores makes the configured stores; swiftAuth gives swift
// stores their credentials. None holds resources that need closing, so a
// failure part-way leaves nothing behind but created directories.
func buildImageStores(list []config.ImageStoreConfig, guard *imagestore.SSRFGuard,
	swiftAuth func(config.SwiftStoreConfig) imagestore.SwiftAuth) (map[string]imagestore.Store, error) {
	stores := make(map[string]imagestore.Store, len(list))
	for i, sc := range list {
		var (
			st  imagestore.Store
			err error
		)
		switch sc.Type {
		case config.StoreFilesystem:
			st, err = imagestore.NewFilesystem(sc.ID, sc.Filesystem.Dir)
		case config.StoreS3:
			s3 := sc.S3
			st, err = imagestore.NewS3(imagestore.S3Config{
				ID: sc.ID, Endpoint: s3.Endpoint, Region: s3.Region, Bucket: s3.Bucket, Prefix: s3.Prefix,
				AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PartSize: int64(s3.PartSize),
			})
		case config.StoreSwift:
			sw := config.SwiftStoreConfig{}
			if sc.Swift != nil {
				sw = *sc.Swift
			}
			st, err = imagestore.NewSwift(imagestore.SwiftConfig{
				ID: sc.ID, Auth: swiftAuth(sw), Container: sw.Container,
				MultipleContainersSeed: sw.MultipleContainersSeed, SegmentSize: int64(sw.SegmentSize),
			})
		case config.StoreHTTP:
			st = imagestore.NewHTTP(sc.ID, nil, guard)
		default:
			err = fmt.Errorf("unknown type %q", sc.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("image.stores[%d] (%s): %w", i, sc.ID, err)
		}
		stores[sc.ID] = st
	}
	return stores, nil
}

// storeDescriptions are the operator's store descriptions, by store id.
func storeDescriptions(list []config.ImageStoreConfig) map[string]string {
	out := make(map[string]string)
	for _, sc := range list {
		if sc.Description != "" {
			out[sc.ID] = sc.Description
		}
	}
	return out
}

// swiftAuth is a swift store's credentials: the token of the catalog's
// user (the image service user, as Glance's single-tenant swift store
// uses its own account) and the store's URL, or else the object-store
// endpoint of that user's catalog, which is the user's project's account.
func (f *catalogFinder) swiftAuth(sc config.SwiftStoreConfig, region string) imagestore.SwiftAuth {
	if sc.Region != "" {
		region = sc.Region
	}
	iface := sc.Interface
	if iface == "" {
		iface = "public"
	}
	return imagestore.SwiftAuthFunc(func(ctx context.Context, renew bool) (string, string, error) {
		token, url, err := f.tokenAndEndpoint(ctx, "object-store", region, iface, renew)
		if sc.URL != "" && token != "" {
			return token, sc.URL, nil
		}
		return token, url, err
	})
}

// catalogFinder returns a catalog reader logged in as the image service
// user, or, when it has no password and identity is in this process, as
// the bootstrap admin through the in-memory identity API.
func (c *Cloud) catalogFinder() *catalogFinder {
	a := c.Config.Image.Auth
	f := &catalogFinder{
		authURL: c.Config.ServiceAuthURL(a), user: a.Username, password: a.Password, project: a.ProjectName,
		userDomain: a.UserDomainName, projDomain: a.ProjectDomainName,
		client: &http.Client{Timeout: 30 * time.Second},
	}
	if c.identityHandler != nil {
		f.authURL, f.client = "http://identity.internal/v3", &http.Client{Transport: handlerTransport{c.identityHandler}}
		if a.Password == "" {
			f.user, f.password, f.project, f.userDomain, f.projDomain = "admin", c.AdminPassword, "admin", "Default", "Default"
		}
	}
	return f
}
