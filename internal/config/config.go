// Package config holds Nimbus's configuration: embedded defaults good for
// a whole cloud on one machine, optionally overridden by a YAML file and
// NIMBUS_* environment variables.
package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of a Nimbus process.
type Config struct {
	// DataDir holds the SQLite database, key repositories, generated
	// credentials and logs.
	DataDir string `yaml:"data_dir"`
	// Bind is the address services listen on (127.0.0.1 unless the
	// operator opens them up).
	Bind string `yaml:"bind"`
	// PublicHost is the host name or address put in catalog URLs.
	PublicHost string `yaml:"public_host"`
	// Database is a DSN: empty for SQLite in DataDir, or postgres://...
	Database string `yaml:"database"`
	// NATS is the URL of an external NATS cluster; empty runs one embedded.
	NATS string `yaml:"nats"`
	// NATSPort is the embedded server's client port (0: any free port).
	NATSPort int `yaml:"nats_port"`
	// Region is the region bootstrap registers and clients use.
	Region string `yaml:"region"`
	// Roles lists the control-plane roles `nimbus serve` runs.
	Roles []string `yaml:"roles"`
	// Seed creates, on the first `nimbus up` of a data dir, the guest
	// image, the networks public and private and router1 (default on for
	// `nimbus up`, off elsewhere; NIMBUS_SEED).
	Seed Switch `yaml:"seed"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// DebugAddr, when set, serves Go's net/http/pprof profiles there. It
	// must be a loopback address: profiles reveal memory contents.
	DebugAddr string `yaml:"debug_addr"`

	Identity IdentityConfig `yaml:"identity"`
	Image    ImageConfig    `yaml:"image"`
	Network  NetworkConfig  `yaml:"network"`
	Compute  ComputeConfig  `yaml:"compute"`
	Volume   VolumeConfig   `yaml:"volume"`
	Object   ObjectConfig   `yaml:"object"`
}

// IdentityConfig configures the identity service.
type IdentityConfig struct {
	// Port is the identity API's port (0: any free port, for tests).
	Port int `yaml:"port"`
	// TokenLifetime is how long tokens live.
	TokenLifetime time.Duration `yaml:"token_lifetime"`
	// LockoutFailures locks a user out after this many consecutive failed
	// logins (0: never), for LockoutDuration.
	LockoutFailures int           `yaml:"lockout_failures"`
	LockoutDuration time.Duration `yaml:"lockout_duration"`
	// UniqueLastPasswordCount refuses a self-service password change to
	// any of the user's last N passwords (0: off), as Keystone's
	// security_compliance.unique_last_password_count.
	UniqueLastPasswordCount int `yaml:"unique_last_password_count"`
	// BcryptCost is the password KDF cost (Keystone's is 12).
	BcryptCost int `yaml:"bcrypt_cost"`
	// PolicyFile overrides default policy rules (oslo.policy YAML).
	PolicyFile string `yaml:"policy_file"`
	// MaxActiveKeys bounds the Fernet key repository on rotation.
	MaxActiveKeys int `yaml:"max_active_keys"`
	// AdminPassword is the bootstrap admin's password; empty generates one
	// on first start and keeps it in DataDir/admin-password.
	AdminPassword string `yaml:"admin_password"`
}

// Default returns the embedded defaults.
func Default() Config {
	return Config{
		DataDir:    defaultDataDir(),
		Bind:       "127.0.0.1",
		PublicHost: "127.0.0.1",
		Region:     "RegionOne",
		LogLevel:   "info",
		Identity: IdentityConfig{
			Port:            5000,
			TokenLifetime:   time.Hour,
			LockoutDuration: 30 * time.Minute,
			BcryptCost:      12,
			MaxActiveKeys:   3,
		},
		Image:   defaultImageConfig(),
		Network: defaultNetworkConfig(),
		Compute: defaultComputeConfig(),
		Volume:  defaultVolumeConfig(),
		Object:  defaultObjectConfig(),
	}
}

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/nimbus"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "nimbus")
	}
	return "nimbus-data"
}

// Load returns the defaults overridden by the YAML file at path (if path is
// not empty) and then by the environment.
func Load(path string) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("parse config %s: %w", path, err)
		}
	}
	if err := cfg.applyEnv(os.LookupEnv); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// applyEnv overrides settings from NIMBUS_* variables.
func (c *Config) applyEnv(lookup func(string) (string, bool)) error {
	str := map[string]*string{
		"NIMBUS_DATA_DIR":       &c.DataDir,
		"NIMBUS_BIND":           &c.Bind,
		"NIMBUS_PUBLIC_HOST":    &c.PublicHost,
		"NIMBUS_DATABASE":       &c.Database,
		"NIMBUS_NATS":           &c.NATS,
		"NIMBUS_REGION":         &c.Region,
		"NIMBUS_LOG_LEVEL":      &c.LogLevel,
		"NIMBUS_DEBUG_ADDR":     &c.DebugAddr,
		"NIMBUS_ADMIN_PASSWORD": &c.Identity.AdminPassword,
		"NIMBUS_POLICY_FILE":    &c.Identity.PolicyFile,

		"NIMBUS_IMAGE_DIR":           &c.Image.Dir,
		"NIMBUS_IMAGE_DEFAULT_STORE": &c.Image.DefaultStore,
		"NIMBUS_IMAGE_STAGING_DIR":   &c.Image.StagingDir,
		"NIMBUS_IMAGE_CONVERT_TO":    &c.Image.ConvertTo,
		"NIMBUS_IMAGE_AUTH_URL":      &c.Image.Auth.AuthURL,
		"NIMBUS_IMAGE_AUTH_USERNAME": &c.Image.Auth.Username,
		"NIMBUS_IMAGE_AUTH_PASSWORD": &c.Image.Auth.Password,
		"NIMBUS_IMAGE_AUTH_PROJECT":  &c.Image.Auth.ProjectName,
		"NIMBUS_IMAGE_CACHE_DIR":     &c.Image.Cache.Dir,

		"NIMBUS_NETWORK_AUTH_PASSWORD":         &c.Network.Auth.Password,
		"NIMBUS_COMPUTE_AUTH_PASSWORD":         &c.Compute.Auth.Password,
		"NIMBUS_VOLUME_AUTH_PASSWORD":          &c.Volume.Auth.Password,
		"NIMBUS_VOLUME_AGENT_HOST":             &c.Volume.Agent.Host,
		"NIMBUS_VOLUME_AGENT_STATE_DIR":        &c.Volume.Agent.StateDir,
		"NIMBUS_VOLUME_AGENT_NBD_ADDRESS":      &c.Volume.Agent.NBDAddress,
		"NIMBUS_COMPUTE_SCHEDULER":             &c.Compute.Scheduler,
		"NIMBUS_COMPUTE_AGENT_DRIVER":          &c.Compute.Agent.Driver,
		"NIMBUS_COMPUTE_AGENT_VIRT_TYPE":       &c.Compute.Agent.VirtType,
		"NIMBUS_NETWORK_AGENT_HOST":            &c.Network.Agent.Host,
		"NIMBUS_NETWORK_AGENT_PREFIX":          &c.Network.Agent.Prefix,
		"NIMBUS_NETWORK_AGENT_VTEP":            &c.Network.Agent.VTEP,
		"NIMBUS_NETWORK_AGENT_EXTERNAL_MODE":   &c.Network.Agent.ExternalMode,
		"NIMBUS_NETWORK_AGENT_UPLINK":          &c.Network.Agent.Uplink,
		"NIMBUS_NETWORK_AGENT_UNDERLAY_DEVICE": &c.Network.Agent.UnderlayDevice,
		"NIMBUS_ROUTE_ACCESS_KEY_ID":           &c.Network.Agent.RouteController.AccessKeyID,
		"NIMBUS_ROUTE_ACCESS_KEY_SECRET":       &c.Network.Agent.RouteController.AccessKeySecret,
		"NIMBUS_ROUTE_SESSION_TOKEN":           &c.Network.Agent.RouteController.SessionToken,
	}
	for k, dst := range str {
		if v, ok := lookup(k); ok {
			*dst = v
		}
	}
	ints := map[string]*int{
		"NIMBUS_IDENTITY_PORT":              &c.Identity.Port,
		"NIMBUS_BCRYPT_COST":                &c.Identity.BcryptCost,
		"NIMBUS_LOCKOUT_FAILURES":           &c.Identity.LockoutFailures,
		"NIMBUS_NATS_PORT":                  &c.NATSPort,
		"NIMBUS_IMAGE_PORT":                 &c.Image.Port,
		"NIMBUS_NETWORK_PORT":               &c.Network.Port,
		"NIMBUS_COMPUTE_PORT":               &c.Compute.Port,
		"NIMBUS_VOLUME_PORT":                &c.Volume.Port,
		"NIMBUS_VOLUME_AGENT_NBD_PORT":      &c.Volume.Agent.NBDPort,
		"NIMBUS_UNIQUE_LAST_PASSWORD_COUNT": &c.Identity.UniqueLastPasswordCount,
	}
	for k, dst := range ints {
		if v, ok := lookup(k); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s=%q: not an integer", k, v)
			}
			*dst = n
		}
	}
	counts := map[string]*int64{
		"NIMBUS_IMAGE_QUOTA_IMAGES":    &c.Image.Quota.Images,
		"NIMBUS_IMAGE_QUOTA_UPLOADING": &c.Image.Quota.Uploading,
	}
	for k, dst := range counts {
		if v, ok := lookup(k); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%s=%q: not an integer", k, v)
			}
			*dst = n
		}
	}
	sizes := map[string]*ByteSize{
		"NIMBUS_IMAGE_CACHE_MAX_SIZE":      &c.Image.Cache.MaxSize,
		"NIMBUS_IMAGE_MAX_IMAGE_SIZE":      &c.Image.MaxImageSize,
		"NIMBUS_IMAGE_QUOTA_BYTES":         &c.Image.Quota.Bytes,
		"NIMBUS_IMAGE_QUOTA_STAGING_BYTES": &c.Image.Quota.StagingBytes,
	}
	for k, dst := range sizes {
		if v, ok := lookup(k); ok {
			n, err := ParseByteSize(v)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			*dst = n
		}
	}
	bools := map[string]*bool{
		"NIMBUS_IMAGE_SHOW_MULTIPLE_LOCATIONS":    &c.Image.ShowMultipleLocations,
		"NIMBUS_IMAGE_REQUIRE_FORMAT_MATCH":       &c.Image.RequireFormatMatch,
		"NIMBUS_IMAGE_WEB_DOWNLOAD":               &c.Image.WebDownload.Enabled,
		"NIMBUS_IMAGE_WEB_DOWNLOAD_ALLOW_PRIVATE": &c.Image.WebDownload.AllowPrivate,
	}
	for k, dst := range bools {
		if v, ok := lookup(k); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s=%q: not a boolean", k, v)
			}
			*dst = b
		}
	}
	switches := map[string]*Switch{
		"NIMBUS_NETWORK_AGENT": &c.Network.Agent.Enabled,
		"NIMBUS_COMPUTE_AGENT": &c.Compute.Agent.Enabled,
		"NIMBUS_VOLUME_AGENT":  &c.Volume.Agent.Enabled,
		"NIMBUS_SEED":          &c.Seed,
	}
	for k, dst := range switches {
		if v, ok := lookup(k); ok {
			if err := dst.Parse(v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	// Lists are comma separated.
	if v, ok := lookup("NIMBUS_IMAGE_WEB_DOWNLOAD_ALLOWED_HOSTS"); ok {
		c.Image.WebDownload.AllowedHosts = nil
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.Image.WebDownload.AllowedHosts = append(c.Image.WebDownload.AllowedHosts, h)
			}
		}
	}
	durations := map[string]*time.Duration{
		"NIMBUS_TOKEN_LIFETIME":                &c.Identity.TokenLifetime,
		"NIMBUS_LOCKOUT_DURATION":              &c.Identity.LockoutDuration,
		"NIMBUS_IMAGE_AUTH_TOKEN_CACHE_TIME":   &c.Image.Auth.TokenCacheTime,
		"NIMBUS_IMAGE_CACHE_PREFETCH_INTERVAL": &c.Image.Cache.PrefetchInterval,
	}
	for k, dst := range durations {
		if v, ok := lookup(k); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s=%q: %w", k, v, err)
			}
			*dst = d
		}
	}
	if err := c.applyObjectEnv(lookup); err != nil {
		return err
	}
	if err := c.applyConsoleEnv(lookup); err != nil {
		return err
	}
	return c.applyMetadataEnv(lookup)
}

// Validate rejects settings that cannot work.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("config: data_dir is required")
	}
	if c.Identity.BcryptCost < 4 || c.Identity.BcryptCost > 31 {
		return fmt.Errorf("config: identity.bcrypt_cost %d is outside 4..31", c.Identity.BcryptCost)
	}
	if c.Identity.TokenLifetime < time.Minute {
		return fmt.Errorf("config: identity.token_lifetime %s is shorter than a minute", c.Identity.TokenLifetime)
	}
	if c.DebugAddr != "" {
		host, _, err := net.SplitHostPort(c.DebugAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("config: debug_addr %q must be a loopback address with a port", c.DebugAddr)
		}
	}
	if c.Identity.MaxActiveKeys < 3 {
		return fmt.Errorf("config: identity.max_active_keys must be at least 3")
	}
	if err := c.ValidateImage(); err != nil {
		return err
	}
	if err := c.ValidateNetwork(); err != nil {
		return err
	}
	if err := c.ValidateObject(); err != nil {
		return err
	}
	if err := c.ValidateVolume(); err != nil {
		return err
	}
	return c.ValidateCompute()
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// DSN returns the database DSN, defaulting to SQLite in the data dir.
func (c *Config) DSN() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, "nimbus.db")
}
