package server

import (
	"errors"
	"fmt"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"log/slog"
	"net/http"
	"os"
	"time"
)

// Swift's default constraints (swift.conf [swift-constraints]).
const (
	// MaxAccountNameLength is the longest account name in bytes.
	MaxAccountNameLength = 256
	// MaxContainerNameLength is the longest container name in bytes.
	MaxContainerNameLength = 256
	// MaxObjectNameLength is the longest object name in bytes.
	MaxObjectNameLength = 1024
	// DefaultMaxFileSize is the largest single object (5 GiB + 2 B as Swift).
	DefaultMaxFileSize = 5*1024*1024*1024 + 2
	// MaxMetaNameLength is the longest custom metadata name.
	MaxMetaNameLength = 128
	// MaxMetaValueLength is the longest custom metadata value.
	MaxMetaValueLength = 256
	// MaxMetaCount is the most custom metadata items on one resource.
	MaxMetaCount = 90
	// MaxMetaOverallSize is the most bytes of custom metadata (names + values).
	MaxMetaOverallSize = 4096
	// ListingLimit is the default and maximum listing page size.
	ListingLimit = 10000
)

// Config configures the storage servers of one node. The zero value of every
// field except DevicesRoot has a sensible default.
type Config struct {
	// DevicesRoot holds one directory per device (Swift's "devices", e.g.
	// /srv/node); requests name the device, never a path.
	DevicesRoot string
	// MountCheck refuses devices that are not mount points (Swift's
	// mount_check), so a missing disk is never silently written to the root
	// filesystem.
	MountCheck bool
	// HashPathPrefix and HashPathSuffix salt the name hashes; they must be
	// the same on every node of a cluster and never change.
	HashPathPrefix string
	HashPathSuffix string
	// MaxFileSize bounds a single object; larger PUTs get 413.
	MaxFileSize int64
	// ReclaimAge is how long tombstones and deleted rows are kept.
	ReclaimAge time.Duration
	// UpdateTimeout bounds one container or account update.
	UpdateTimeout time.Duration
	// UpdaterInterval is the pause between passes of the updater loops.
	UpdaterInterval time.Duration
	// AuditorInterval is the pause between auditor passes.
	AuditorInterval time.Duration
	// AuditorBytesPerSecond and AuditorFilesPerSecond rate-limit the auditor
	// so it never starves client traffic; zero means the defaults.
	AuditorBytesPerSecond int64
	AuditorFilesPerSecond int
	// TmpMaxAge is the age after which files left in a device's tmp dir (a
	// crash mid-write) are removed.
	TmpMaxAge time.Duration
	// Policies are the cluster's storage policies: the object server
	// keeps each in its own objects-N dir and refuses an unknown
	// X-Backend-Storage-Policy-Index with 503, and the account server
	// names them in its per-policy usage headers. Nil is Swift's lone
	// Policy-0.
	Policies *policy.Policies
	// Client sends container and account updates.
	Client *http.Client
	// Logger receives operational logs.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.DevicesRoot == "" {
		return c, errors.New("storage server config: devices root is required")
	}
	if c.Policies == nil {
		c.Policies = policy.Legacy()
	}
	if c.HashPathPrefix == "" && c.HashPathSuffix == "" {
		// As Swift: unsalted hashes let anyone aim names at one partition.
		return c, errors.New("storage server config: hash path prefix or suffix is required")
	}
	st, err := os.Stat(c.DevicesRoot)
	if err != nil {
		return c, fmt.Errorf("storage server config: devices root: %w", err)
	}
	if !st.IsDir() {
		return c, fmt.Errorf("storage server config: devices root %s is not a directory", c.DevicesRoot)
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.ReclaimAge <= 0 {
		c.ReclaimAge = 7 * 24 * time.Hour
	}
	if c.UpdateTimeout <= 0 {
		c.UpdateTimeout = 2 * time.Second
	}
	if c.UpdaterInterval <= 0 {
		c.UpdaterInterval = 30 * time.Second
	}
	if c.AuditorInterval <= 0 {
		c.AuditorInterval = 5 * time.Minute
	}
	if c.AuditorBytesPerSecond <= 0 {
		c.AuditorBytesPerSecond = 10 * 1024 * 1024
	}
	if c.AuditorFilesPerSecond <= 0 {
		c.AuditorFilesPerSecond = 20
	}
	if c.TmpMaxAge <= 0 {
		c.TmpMaxAge = 24 * time.Hour
	}
	if c.Client == nil {
		c.Client = NewClient()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// NewClient is the default Config.Client.
func NewClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		// Every object write sends its container update at once, and a
		// node's devices share one container server address: a smaller
		// idle pool than the writes in flight closes and re-dials a
		// connection per update under load.
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}}
}
