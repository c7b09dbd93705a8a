package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ImageConfig configures the image service. Its stores are Glance's
// enabled_backends: every store images may live in, one of them the
// default that uploads go to.
type ImageConfig struct {
	// Port is the image API's port (0: any free port, for tests).
	Port int `yaml:"port"`
	// Dir is where the default filesystem store "file" keeps image data
	// when Stores is empty; DataDir/images when empty too.
	Dir string `yaml:"dir"`
	// Stores lists the stores. Empty means Glance's default, stores =
	// file,http: a filesystem store "file" in Dir and a read-only "http"
	// store for images registered by URL.
	Stores []ImageStoreConfig `yaml:"stores"`
	// DefaultStore is the id of the store uploads and imports go to
	// (Glance's default_backend). It may be empty when exactly one
	// writable store is configured, and is "file" with the default stores.
	DefaultStore string `yaml:"default_store"`
	// MaxImageSize caps one image's data (Glance's image_size_cap); the
	// image service's default, 1 TiB, when 0.
	MaxImageSize ByteSize `yaml:"max_image_size"`
	// StagingDir holds data staged for the glance-direct import until it is
	// imported; DataDir/images-staging when empty.
	StagingDir string `yaml:"staging_dir"`
	// Quota bounds each project's images; zero fields are unlimited.
	Quota ImageQuota `yaml:"quota"`
	// ConvertTo, "raw" or "qcow2", makes imports convert image data to that
	// disk format (Glance's image_conversion plugin); empty keeps it as is.
	ConvertTo string `yaml:"convert_to"`
	// ShowMultipleLocations exposes the locations API and the "locations"
	// image attribute, as Glance's option of the same name. Locations reveal
	// where data is kept, so it is off by default.
	ShowMultipleLocations bool `yaml:"show_multiple_locations"`
	// RequireFormatMatch refuses image data that is not in its declared
	// disk format (Glance's require_image_format_match). Data that would
	// make a hypervisor read host files (a qcow2 backing file, say) is
	// refused either way.
	RequireFormatMatch bool `yaml:"require_format_match"`
	// Cache keeps copies of image data on this node (Glance's image
	// cache), for images in remote stores; off unless a dir is set.
	Cache ImageCacheConfig `yaml:"cache"`
	// WebDownload configures the web-download import method and, because
	// both fetch URLs that users choose, which hosts the read-only http
	// stores may read from.
	WebDownload WebDownloadConfig `yaml:"web_download"`
	// Auth is the service user the image API validates tokens with when
	// the identity role runs in another process. With a password set, the
	// identity process's bootstrap creates this user.
	Auth ServiceAuth `yaml:"auth"`
}

// ImageCacheConfig is the image cache of one image API node.
type ImageCacheConfig struct {
	// Dir holds the cached copies; the cache and the /v2/cache API are
	// off when empty.
	Dir string `yaml:"dir"`
	// MaxSize bounds the cache (least recently used copies go first);
	// 10GiB when 0.
	MaxSize ByteSize `yaml:"max_size"`
	// PrefetchInterval is how often images queued through /v2/cache are
	// fetched (Glance's cache_prefetcher_interval); 30s when 0.
	PrefetchInterval time.Duration `yaml:"prefetch_interval"`
}

// Image store types.
const (
	StoreFilesystem = "filesystem"
	StoreS3         = "s3"
	StoreHTTP       = "http"
	StoreSwift      = "swift"
)

// ImageStoreConfig is one image store.
type ImageStoreConfig struct {
	// ID names the store in /v2/info/stores, in image locations and in
	// the X-Image-Meta-Store header that picks a store for an upload.
	ID string `yaml:"id"`
	// Type is filesystem, s3, swift or http (read-only).
	Type string `yaml:"type"`
	// Description is shown in /v2/info/stores; the store describes itself
	// when empty.
	Description string                 `yaml:"description"`
	Filesystem  *FilesystemStoreConfig `yaml:"filesystem"`
	S3          *S3StoreConfig         `yaml:"s3"`
	Swift       *SwiftStoreConfig      `yaml:"swift"`
}

// FilesystemStoreConfig configures a filesystem store.
type FilesystemStoreConfig struct {
	// Dir holds one file per image. It defaults to DataDir/images for the
	// store "file" and to DataDir/images-<id> for others.
	Dir string `yaml:"dir"`
}

// S3StoreConfig configures a store in an S3 bucket (AWS, Ceph RGW,
// MinIO…). Buckets are addressed path-style, which every S3-compatible
// service supports, so there is no path-style switch.
type S3StoreConfig struct {
	// Endpoint is the service's base URL, e.g. https://s3.eu-west-1.amazonaws.com.
	Endpoint string `yaml:"endpoint"`
	// Region is signed into requests; us-east-1 when empty.
	Region string `yaml:"region"`
	// Bucket holds the images; it must exist.
	Bucket string `yaml:"bucket"`
	// Prefix is put before the image id to make the object key.
	Prefix    string `yaml:"prefix"`
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// PartSize is the multipart upload part size (5 MiB to 5 GiB), which is
	// also the memory one upload uses; 16 MiB when 0.
	PartSize ByteSize `yaml:"part_size"`
}

// SwiftStoreConfig configures a store in object storage through the
// Swift API, as Glance's swift store in single-tenant mode: images are
// objects in one account, the image service user's (image.auth), large
// ones SLO segments in <container>_segments.
type SwiftStoreConfig struct {
	// URL is the storage URL of the account, e.g.
	// http://controller:8080/v1/AUTH_<project id>; when empty, the
	// object-store endpoint in the image service user's catalog.
	URL string `yaml:"url"`
	// Region and Interface pick the catalog endpoint; the cloud's region
	// and "public" (Glance's swift_store_region and
	// swift_store_endpoint_type) when empty.
	Region    string `yaml:"region"`
	Interface string `yaml:"interface"`
	// Container holds the images; "glance" when empty. It is created on
	// first upload.
	Container string `yaml:"container"`
	// MultipleContainersSeed, 0 to 32, spreads images over containers
	// <container>_<first N characters of the image id> (Glance's
	// swift_store_multiple_containers_seed).
	MultipleContainersSeed int `yaml:"multiple_containers_seed"`
	// SegmentSize is the largest image stored as one object; larger
	// images are SLO segments of this size (Glance's
	// swift_store_large_object_chunk_size), at most 1000 of them. 1 MiB to
	// 5 GiB; 200 MiB when 0.
	SegmentSize ByteSize `yaml:"segment_size"`
}

// ImageQuota bounds each project's images, as Glance's unified-limits
// resources image_count_total, image_size_total, image_stage_total and
// image_count_uploading. Zero is unlimited.
type ImageQuota struct {
	Images       int64    `yaml:"images"`
	Bytes        ByteSize `yaml:"bytes"`
	StagingBytes ByteSize `yaml:"staging_bytes"`
	Uploading    int64    `yaml:"uploading"`
}

// WebDownloadConfig configures fetching image data from URLs on users'
// behalf. Without allowances, loopback, private, link-local and cloud
// metadata addresses are refused, so that users cannot make the service
// read the management network.
type WebDownloadConfig struct {
	// Enabled offers the web-download import method.
	Enabled bool `yaml:"enabled"`
	// AllowPrivate permits loopback, private (RFC 1918, fc00::/7),
	// link-local and CGNAT addresses; metadata addresses stay refused
	// unless listed in AllowedHosts.
	AllowPrivate bool `yaml:"allow_private"`
	// AllowedHosts are host names, addresses or CIDR prefixes that are
	// always permitted, e.g. an internal mirror.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// ServiceAuth is a service's own identity: the credentials it validates
// users' tokens with when identity runs elsewhere, as keystonemiddleware's
// [keystone_authtoken] section. The names follow that section's options.
type ServiceAuth struct {
	// AuthURL is the identity endpoint with its version, e.g.
	// http://controller:5000/v3; when empty, the local public_host and
	// identity.port.
	AuthURL           string `yaml:"auth_url"`
	Username          string `yaml:"username"`
	Password          string `yaml:"password"`
	ProjectName       string `yaml:"project_name"`
	UserDomainName    string `yaml:"user_domain_name"`
	ProjectDomainName string `yaml:"project_domain_name"`
	// TokenCacheTime is how long a validation answer is reused; a revoked
	// token may be accepted for this long.
	TokenCacheTime time.Duration `yaml:"token_cache_time"`
}

// defaultImageConfig is the image section's embedded defaults.
func defaultImageConfig() ImageConfig {
	return ImageConfig{
		Port:        9292,
		WebDownload: WebDownloadConfig{Enabled: true},
		Auth: ServiceAuth{
			Username: "glance", ProjectName: "service",
			UserDomainName: "Default", ProjectDomainName: "Default",
			TokenCacheTime: 5 * time.Minute,
		},
	}
}

// ImageStores returns the stores to build, with defaults resolved against
// the data dir: Glance's file,http when none are configured, and default
// directories for filesystem stores that name none.
func (c *Config) ImageStores() []ImageStoreConfig {
	stores := c.Image.Stores
	if len(stores) == 0 {
		stores = []ImageStoreConfig{
			{ID: "file", Type: StoreFilesystem, Filesystem: &FilesystemStoreConfig{Dir: c.Image.Dir}},
			{ID: "http", Type: StoreHTTP},
		}
	}
	out := make([]ImageStoreConfig, len(stores))
	for i, s := range stores {
		if s.Type == StoreFilesystem {
			fs := FilesystemStoreConfig{}
			if s.Filesystem != nil {
				fs = *s.Filesystem
			}
			if fs.Dir == "" {
				fs.Dir = c.defaultStoreDir(s.ID)
			}
			s.Filesystem = &fs
		}
		out[i] = s
	}
	return out
}

func (c *Config) defaultStoreDir(id string) string {
	if id == "file" {
		if c.Image.Dir != "" {
			return c.Image.Dir
		}
		return filepath.Join(c.DataDir, "images")
	}
	return filepath.Join(c.DataDir, "images-"+id)
}

// ImageDefaultStore returns the id of the store uploads go to: the
// configured one, or the only writable store.
func (c *Config) ImageDefaultStore() string {
	if c.Image.DefaultStore != "" {
		return c.Image.DefaultStore
	}
	var writable []string
	for _, s := range c.ImageStores() {
		if s.Type != StoreHTTP {
			writable = append(writable, s.ID)
		}
	}
	if len(writable) == 1 {
		return writable[0]
	}
	return ""
}

// ImageStagingDir returns where staged image data is kept.
func (c *Config) ImageStagingDir() string {
	if c.Image.StagingDir != "" {
		return c.Image.StagingDir
	}
	return filepath.Join(c.DataDir, "images-staging")
}

// ServiceAuthURL returns the identity endpoint a service user
// authenticates against: its auth_url, or this config's identity.
func (c *Config) ServiceAuthURL(a ServiceAuth) string {
	if a.AuthURL != "" {
		return a.AuthURL
	}
	return "http://" + joinHostPort(c.PublicHost, c.Identity.Port) + "/v3"
}

// storeIDPattern is what Glance accepts as a backend name in practice:
// it appears in URLs and headers, so keep it to a safe alphabet.
var storeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidateImage rejects image settings that cannot work, naming the YAML
// key at fault. Validate calls it; so does the image role at start, for
// configs built in code.
func (c *Config) ValidateImage() error {
	im := &c.Image
	seen := map[string]int{}
	dirs := map[string]string{}
	for i, s := range im.Stores {
		key := fmt.Sprintf("image.stores[%d]", i)
		if s.ID == "" {
			return fmt.Errorf("config: %s.id is required", key)
		}
		if !storeIDPattern.MatchString(s.ID) {
			return fmt.Errorf("config: %s.id %q must be 1-64 letters, digits, '_', '.' or '-'", key, s.ID)
		}
		if strings.HasPrefix(s.ID, "os_glance_") {
			return fmt.Errorf("config: %s.id %q: the os_glance_ prefix is reserved", key, s.ID)
		}
		if j, dup := seen[s.ID]; dup {
			return fmt.Errorf("config: %s.id %q is already used by image.stores[%d]", key, s.ID, j)
		}
		seen[s.ID] = i
		switch s.Type {
		case StoreFilesystem, StoreS3, StoreSwift:
			if other := s.foreignSettings(); other != "" {
				return fmt.Errorf("config: %s (%s): %s settings given for a %s store", key, s.ID, other, s.Type)
			}
			if s.Type == StoreS3 {
				if err := s.S3.validate(key + ".s3"); err != nil {
					return err
				}
			}
			if err := s.Swift.validate(key + ".swift"); err != nil {
				return err
			}
		case StoreHTTP:
			if s.Filesystem != nil || s.S3 != nil || s.Swift != nil {
				return fmt.Errorf("config: %s (%s): an http store takes no filesystem, s3 or swift settings", key, s.ID)
			}
		case "":
			return fmt.Errorf("config: %s.type is required (filesystem, s3, swift or http)", key)
		default:
			return fmt.Errorf("config: %s.type %q is not a store type (filesystem, s3, swift or http)", key, s.Type)
		}
	}
	for i, s := range c.ImageStores() {
		if s.Type != StoreFilesystem {
			continue
		}
		dir := filepath.Clean(s.Filesystem.Dir)
		if other, dup := dirs[dir]; dup {
			return fmt.Errorf("config: image.stores[%d].filesystem.dir %s is also the directory of store %q", i, dir, other)
		}
		dirs[dir] = s.ID
	}
	if other, dup := dirs[filepath.Clean(c.ImageStagingDir())]; dup {
		return fmt.Errorf("config: image.staging_dir %s is also the directory of store %q", c.ImageStagingDir(), other)
	}
	if err := c.validateDefaultStore(); err != nil {
		return err
	}
	if im.MaxImageSize < 0 {
		return fmt.Errorf("config: image.max_image_size must not be negative")
	}
	q := im.Quota
	for _, f := range []struct {
		key string
		v   int64
	}{{"images", q.Images}, {"bytes", int64(q.Bytes)}, {"staging_bytes", int64(q.StagingBytes)}, {"uploading", q.Uploading}} {
		if f.v < 0 {
			return fmt.Errorf("config: image.quota.%s must not be negative (0 is unlimited)", f.key)
		}
	}
	switch im.ConvertTo {
	case "", "raw", "qcow2":
	default:
		return fmt.Errorf("config: image.convert_to %q must be raw, qcow2 or empty", im.ConvertTo)
	}
	for i, h := range im.WebDownload.AllowedHosts {
		if strings.TrimSpace(h) == "" {
			return fmt.Errorf("config: image.web_download.allowed_hosts[%d] is empty", i)
		}
	}
	if u := im.Auth.AuthURL; u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("config: image.auth.auth_url %q is not an http(s) URL", u)
		}
	}
	if im.Auth.Password != "" && (im.Auth.Username == "" || im.Auth.ProjectName == "") {
		return fmt.Errorf("config: image.auth needs username and project_name with its password")
	}
	if im.Auth.TokenCacheTime < 0 {
		return fmt.Errorf("config: image.auth.token_cache_time must not be negative")
	}
	return nil
}

func (c *Config) validateDefaultStore() error {
	stores := c.ImageStores()
	id := c.Image.DefaultStore
	if id == "" {
		if c.ImageDefaultStore() == "" {
			return fmt.Errorf("config: image.default_store is required: more than one, or no, writable store is configured")
		}
		return nil
	}
	for _, s := range stores {
		if s.ID != id {
			continue
		}
		if s.Type == StoreHTTP {
			return fmt.Errorf("config: image.default_store %q is an http store, which is read-only", id)
		}
		return nil
	}
	return fmt.Errorf("config: image.default_store %q is not one of image.stores", id)
}

func (s *S3StoreConfig) validate(key string) error {
	if s == nil {
		return fmt.Errorf("config: %s is required for an s3 store (endpoint, bucket, access_key, secret_key)", key)
	}
	for _, f := range [][2]string{{"endpoint", s.Endpoint}, {"bucket", s.Bucket}, {"access_key", s.AccessKey}, {"secret_key", s.SecretKey}} {
		if f[1] == "" {
			return fmt.Errorf("config: %s.%s is required", key, f[0])
		}
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config: %s.endpoint %q is not an http(s) URL", key, s.Endpoint)
	}
	if s.PartSize != 0 && (s.PartSize < 5<<20 || s.PartSize > 5<<30) {
		return fmt.Errorf("config: %s.part_size %d is outside 5MiB..5GiB", key, s.PartSize)
	}
	return nil
}

// foreignSettings names a settings section given for another type of
// store than s, or is empty.
func (s *ImageStoreConfig) foreignSettings() string {
	for _, f := range []struct {
		typ string
		set bool
	}{{StoreFilesystem, s.Filesystem != nil}, {StoreS3, s.S3 != nil}, {StoreSwift, s.Swift != nil}} {
		if f.set && f.typ != s.Type {
			return f.typ
		}
	}
	return ""
}

// validate checks a swift store's settings; all are optional.
func (s *SwiftStoreConfig) validate(key string) error {
	if s == nil {
		return nil
	}
	if s.URL != "" {
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: %s.url %q is not an http(s) URL", key, s.URL)
		}
	}
	switch s.Interface {
	case "", "public", "internal", "admin":
	default:
		return fmt.Errorf("config: %s.interface %q must be public, internal or admin", key, s.Interface)
	}
	if strings.Contains(s.Container, "/") {
		return fmt.Errorf("config: %s.container %q must not contain '/'", key, s.Container)
	}
	if s.MultipleContainersSeed < 0 || s.MultipleContainersSeed > 32 {
		return fmt.Errorf("config: %s.multiple_containers_seed %d is outside 0..32", key, s.MultipleContainersSeed)
	}
	if s.SegmentSize != 0 && (s.SegmentSize < 1<<20 || s.SegmentSize > 5<<30) {
		return fmt.Errorf("config: %s.segment_size %d is outside 1MiB..5GiB", key, s.SegmentSize)
	}
	return nil
}

// ByteSize is a size in bytes, written in YAML and the environment as a
// plain number of bytes or with a unit: 512MiB, 10GiB, 1TiB (powers of
// 1024) or 500MB, 10GB (powers of 1000).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseByteSize parses a ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want bytes or a number with KiB, MiB, GiB, TiB, KB, MB, GB or TB", s)
	}
	if n > (1<<63-1)/mult || n < -(1<<63-1)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a size must be a number or a string such as 10GiB", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}
