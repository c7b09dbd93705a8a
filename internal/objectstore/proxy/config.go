package proxy

import (
	"errors"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/containersync"
)

// Constraints are Swift's [swift-constraints]: the limits the proxy
// enforces and publishes in GET /info. Zero fields take Swift's defaults.
type Constraints struct {
	MaxFileSize            int64 `json:"max_file_size"`
	MaxMetaNameLength      int   `json:"max_meta_name_length"`
	MaxMetaValueLength     int   `json:"max_meta_value_length"`
	MaxMetaCount           int   `json:"max_meta_count"`
	MaxMetaOverallSize     int   `json:"max_meta_overall_size"`
	MaxHeaderSize          int   `json:"max_header_size"`
	MaxObjectNameLength    int   `json:"max_object_name_length"`
	ContainerListingLimit  int   `json:"container_listing_limit"`
	AccountListingLimit    int   `json:"account_listing_limit"`
	MaxAccountNameLength   int   `json:"max_account_name_length"`
	MaxContainerNameLength int   `json:"max_container_name_length"`
}

// DefaultConstraints are Swift's defaults; the storage servers enforce the
// same values, so raising one here alone has no effect past them.
var DefaultConstraints = Constraints{
	MaxFileSize:            5*1024*1024*1024 + 2,
	MaxMetaNameLength:      128,
	MaxMetaValueLength:     256,
	MaxMetaCount:           90,
	MaxMetaOverallSize:     4096,
	MaxHeaderSize:          8192,
	MaxObjectNameLength:    1024,
	ContainerListingLimit:  10000,
	AccountListingLimit:    10000,
	MaxAccountNameLength:   256,
	MaxContainerNameLength: 256,
}

func (c Constraints) withDefaults() Constraints {
	d := DefaultConstraints
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = d.MaxFileSize
	}
	set(&c.MaxMetaNameLength, d.MaxMetaNameLength)
	set(&c.MaxMetaValueLength, d.MaxMetaValueLength)
	set(&c.MaxMetaCount, d.MaxMetaCount)
	set(&c.MaxMetaOverallSize, d.MaxMetaOverallSize)
	set(&c.MaxHeaderSize, d.MaxHeaderSize)
	set(&c.MaxObjectNameLength, d.MaxObjectNameLength)
	set(&c.ContainerListingLimit, d.ContainerListingLimit)
	set(&c.AccountListingLimit, d.AccountListingLimit)
	set(&c.MaxAccountNameLength, d.MaxAccountNameLength)
	set(&c.MaxContainerNameLength, d.MaxContainerNameLength)
	return c
}

// Config configures a proxy. Ring paths, the hash path secret and Tokens
// are required; every other zero field takes Swift's default.
type Config struct {
	// AccountRing, ContainerRing and ObjectRing are ring files written by
	// `nimbus ring rebalance` (account.ring.gz, ...). They are re-read when
	// they change on disk, every RingCheckInterval.
	AccountRing, ContainerRing, ObjectRing string
	// Policies are the cluster's storage policies, the same as the storage
	// nodes'. Policy N's object ring is object-N.ring.gz in ObjectRing's
	// directory. Nil is Swift's lone Policy-0.
	Policies *policy.Policies
	// HashPathPrefix and HashPathSuffix are the cluster secret the storage
	// servers use too (swift.conf's swift_hash_path_prefix/suffix).
	HashPathPrefix, HashPathSuffix string
	// RingCheckInterval is how often ring files are checked for changes
	// (Swift's 15 s).
	RingCheckInterval time.Duration

	// Tokens validates X-Auth-Token: the identity service in process, or
	// an api.RemoteValidator.
	Tokens api.TokenValidator
	// AuthURL is advertised in WWW-Authenticate on 401, as keystonemiddleware
	// does ("Keystone uri='<AuthURL>'"); optional.
	AuthURL string
	// ResellerPrefix prefixes project ids to make account names ("AUTH_").
	ResellerPrefix string
	// OperatorRoles own the account of the project they are scoped to
	// (keystoneauth's operator_roles; default admin, member, swiftoperator).
	OperatorRoles []string
	// ResellerAdminRole may act on every account ("ResellerAdmin").
	ResellerAdminRole string

	// DisableAccountAutocreate turns off Swift's account_autocreate:
	// accounts then exist only after a reseller PUTs them.
	DisableAccountAutocreate bool
	// AllowAccountManagement lets reseller admins PUT and DELETE accounts
	// (Swift's allow_account_management).
	AllowAccountManagement bool

	// Constraints are the limits of GET /info; zero fields are defaults.
	Constraints Constraints

	// ConnTimeout bounds connecting to a storage server (Swift's
	// conn_timeout, 0.5 s); NodeTimeout bounds waiting for its answer
	// (node_timeout, 10 s).
	ConnTimeout, NodeTimeout time.Duration
	// ErrorSuppressionLimit errors within ErrorSuppressionInterval take a
	// node out of use until the interval has passed without errors
	// (Swift's error_suppression_limit 10, error_suppression_interval 60 s).
	ErrorSuppressionLimit    int
	ErrorSuppressionInterval time.Duration
	// RequestNodeCount bounds how many nodes (primaries and handoffs) a
	// request tries; default twice the replica count, as Swift.
	RequestNodeCount int
	// InfoCacheTTL is how long account and container existence and ACLs
	// are cached (Swift keeps them in memcache for recheck_*_existence,
	// 60 s; the default here is 10 s). Writes through this proxy drop the
	// entry at once.
	InfoCacheTTL time.Duration
	// ExpiringObjectsDivisor groups X-Delete-At times into the expirer's
	// queue containers (86400 s).
	ExpiringObjectsDivisor int64

	// SyncRealms are the container sync realms (Swift's
	// container-sync-realms.conf): X-Container-Sync-To values of the form
	// //realm/cluster/account/container must name one of their clusters,
	// and incoming sync requests are checked with their keys.
	SyncRealms *containersync.Realms
	// SyncCluster is this cluster, "//realm/cluster", marked current in
	// /info (Swift's container_sync "current").
	SyncCluster string
	// AllowedSyncHosts are the hosts a full-URL X-Container-Sync-To may
	// name (Swift's allowed_sync_hosts; 127.0.0.1 when nil).
	AllowedSyncHosts []string

	// Middlewares configures SLO, temp URLs, form posts, static web,
	// bulk operations, versioning, quotas, crossdomain and healthcheck;
	// all are on by default.
	Middlewares Middlewares

	// Client talks to the storage servers; the default uses the timeouts.
	Client *http.Client
	// LocalTransport, if set, wraps the default Client's transport. A
	// storage node running in the same process (`nimbus up`) passes its
	// node.(*Node).Transport here, so that requests for its own servers
	// skip the loopback HTTP hop.
	LocalTransport func(http.RoundTripper) http.RoundTripper
	// Logger receives operational logs.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.AccountRing == "" || c.ContainerRing == "" || c.ObjectRing == "" {
		return c, errors.New("object proxy config: account, container and object ring paths are required")
	}
	if c.HashPathPrefix == "" && c.HashPathSuffix == "" {
		return c, errors.New("object proxy config: hash path prefix or suffix is required")
	}
	if c.Tokens == nil {
		return c, errors.New("object proxy config: a token validator is required")
	}
	if c.Policies == nil {
		c.Policies = policy.Legacy()
	}
	if c.RingCheckInterval <= 0 {
		c.RingCheckInterval = 15 * time.Second
	}
	if c.ResellerPrefix == "" {
		c.ResellerPrefix = "AUTH_"
	}
	if len(c.OperatorRoles) == 0 {
		c.OperatorRoles = []string{"admin", "member", "swiftoperator"}
	}
	if c.ResellerAdminRole == "" {
		c.ResellerAdminRole = "ResellerAdmin"
	}
	if c.AllowedSyncHosts == nil {
		c.AllowedSyncHosts = []string{"127.0.0.1"}
	}
	c.Constraints = c.Constraints.withDefaults()
	c.Middlewares = c.Middlewares.withDefaults()
	c.Middlewares.DomainRemap = c.Middlewares.DomainRemap.withDefaults(c.ResellerPrefix)
	if c.ConnTimeout <= 0 {
		c.ConnTimeout = 500 * time.Millisecond
	}
	if c.NodeTimeout <= 0 {
		c.NodeTimeout = 10 * time.Second
	}
	if c.ErrorSuppressionLimit <= 0 {
		c.ErrorSuppressionLimit = 10
	}
	if c.ErrorSuppressionInterval <= 0 {
		c.ErrorSuppressionInterval = 60 * time.Second
	}
	if c.InfoCacheTTL <= 0 {
		c.InfoCacheTTL = 10 * time.Second
	}
	if c.ExpiringObjectsDivisor <= 0 {
		c.ExpiringObjectsDivisor = 86400
	}
	if c.Client == nil {
		c.Client = &http.Client{Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: c.ConnTimeout}).DialContext,
			ResponseHeaderTimeout: c.NodeTimeout,
			// Object PUTs wait for 100 Continue so that a node that
			// refuses the write is replaced by a handoff before any body
			// byte is sent.
			ExpectContinueTimeout: c.NodeTimeout,
			// A storage host serves all its devices on one address, so
			// each client request in flight holds up to a replica count
			// of connections to it; an idle pool below that re-dials
			// (one TCP connection per object PUT at 16 clients and 3
			// replicas with the old 32).
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}}
		if c.LocalTransport != nil {
			c.Client.Transport = c.LocalTransport(c.Client.Transport)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
