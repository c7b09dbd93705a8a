package config

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
)

// ObjectConfig configures object storage: the Swift proxy (the object
// role) and the storage node (`nimbus storage`, or the one `nimbus up`
// runs in its data dir).
type ObjectConfig struct {
	// Port is the proxy's port (0: any free port, for tests).
	Port int `yaml:"port"`
	// RingDir holds account.ring.gz, container.ring.gz and
	// object.ring.gz. Empty: <data_dir>/objects/rings, built by this
	// process on first start for its own storage node.
	RingDir string `yaml:"ring_dir"`
	// HashPathPrefix and HashPathSuffix are the cluster secret that salts
	// placement (swift.conf's swift_hash_path_*); the same on every proxy
	// and storage node, forever. Empty: generated on first start and kept
	// in <data_dir>/swift-hash-path-prefix and -suffix, which only a one-machine cloud can
	// share; set both on every host of a real cluster.
	HashPathPrefix string `yaml:"hash_path_prefix"`
	HashPathSuffix string `yaml:"hash_path_suffix"`
	// Policies are the storage policies (Swift's [storage-policy:N]
	// sections), the same on every proxy and storage node. Unset, a
	// one-machine cloud (LocalObjectStorage, which builds its own rings)
	// has two replicated policies, as Swift's all-in-one development
	// cluster: 0 "gold" (the default, also answering to its old name
	// Policy-0, and where containers made before policies live) and 1
	// "silver"; a cluster with operator-built rings (ring_dir) keeps
	// Swift's lone Policy-0 until the operator lists policies and builds
	// their object-N rings, so an upgrade never needs a ring it lacks.
	Policies []StoragePolicyConfig `yaml:"policies"`
	// Auth is the swift service user (token validation without identity
	// in this process).
	Auth ServiceAuth `yaml:"auth"`
	// Storage is this host's storage node.
	Storage StorageConfig `yaml:"storage"`
	// ContainerSync configures container sync; proxies and storage nodes
	// need the same settings.
	ContainerSync ContainerSyncConfig `yaml:"container_sync"`
	// DomainRemap configures the proxy's domain_remap middleware.
	DomainRemap DomainRemapConfig `yaml:"domain_remap"`
	// AllowAccountManagement lets users with the reseller admin role
	// create and delete accounts through the proxy (Swift's
	// allow_account_management, off by default there too); a deleted
	// account is emptied by the storage nodes' account reaper.
	AllowAccountManagement bool `yaml:"allow_account_management"`
}

// StoragePolicyConfig is one storage policy (see policy.Policy).
type StoragePolicyConfig struct {
	// Index is the policy's number; never change or reuse one.
	Index int `yaml:"index"`
	// Name and Aliases are what clients send in X-Storage-Policy.
	Name    string   `yaml:"name"`
	Aliases []string `yaml:"aliases"`
	// Default takes containers created without X-Storage-Policy; exactly
	// one policy is the default.
	Default bool `yaml:"default"`
	// Deprecated keeps serving existing containers but refuses new ones.
	Deprecated bool `yaml:"deprecated"`
	// Replicas is the replica count of the object ring a one-machine
	// cloud builds for the policy (0: as many as devices, at most 3).
	// Clusters set it with `nimbus ring create object-N.builder`.
	Replicas int `yaml:"replicas"`
}

// DomainRemapConfig is Swift's [filter:domain_remap]: hosts named
// <container>.<account>.<storage domain> are served as that container's
// /v1 path (for static web sites on their own host names). It is off
// while StorageDomain is empty, unlike Swift's example.com default: a
// proxy should not remap names it was never told it owns.
type DomainRemapConfig struct {
	// StorageDomain are the domains remapped (Swift's storage_domain;
	// NIMBUS_OBJECT_STORAGE_DOMAIN, comma separated).
	StorageDomain []string `yaml:"storage_domain"`
	// PathRoot is the version prefix of rewritten paths ("v1").
	PathRoot string `yaml:"path_root"`
	// ResellerPrefixes are the account prefixes recognised in host names,
	// without "_" (the proxy's reseller prefix, "AUTH", when unset; an
	// explicit empty list uses the account label as is).
	ResellerPrefixes []string `yaml:"reseller_prefixes"`
	// DefaultResellerPrefix is added to account labels without a known
	// prefix; unset, such hosts are not remapped.
	DefaultResellerPrefix string `yaml:"default_reseller_prefix"`
	// MangleClientPaths drops a leading /v1 from paths on remapped hosts.
	MangleClientPaths bool `yaml:"mangle_client_paths"`
}

// ContainerSyncConfig is Swift's container-sync-realms.conf with the
// container_sync middleware's and container server's settings.
type ContainerSyncConfig struct {
	// Realms by name: clusters that agreed to sync with each other, which
	// users name in X-Container-Sync-To as //realm/cluster/account/container.
	// Empty in a one-machine cloud: realm "realm1" with this cluster as
	// "name1" (Tempest's defaults) and a key generated in the data dir.
	Realms map[string]SyncRealmConfig `yaml:"realms"`
	// Current is this cluster as "//realm/cluster", marked in /info.
	Current string `yaml:"current"`
	// AllowedSyncHosts are the hosts full-URL X-Container-Sync-To values
	// may name (Swift's allowed_sync_hosts; 127.0.0.1 when empty).
	AllowedSyncHosts []string `yaml:"allowed_sync_hosts"`
}

// SyncRealmConfig is one sync realm.
type SyncRealmConfig struct {
	// Key signs sync requests; Key2 is accepted too, for key rotation.
	Key  string `yaml:"key"`
	Key2 string `yaml:"key2"`
	// Clusters maps cluster names to proxy endpoints ("https://host/v1/").
	Clusters map[string]string `yaml:"clusters"`
}

// StorageConfig configures a storage node.
type StorageConfig struct {
	// Enabled runs a storage node next to the proxy. Unset, it runs when
	// RingDir is empty: the one-machine layout of `nimbus up`.
	Enabled Switch `yaml:"enabled"`
	// DevicesRoot holds one directory (mount point) per device
	// (<data_dir>/objects/devices when empty).
	DevicesRoot string `yaml:"devices_root"`
	// Devices are created under DevicesRoot for a one-machine cloud and
	// put in the rings it builds (d1, d2, d3).
	Devices []string `yaml:"devices"`
	// IP is this node's address in the rings (the bind address when
	// empty).
	IP string `yaml:"ip"`
	// ObjectPort, ContainerPort and AccountPort are the storage servers'
	// ports (6200, 6201, 6202; 0: any free port on first start, then the
	// one the ring records).
	ObjectPort    int `yaml:"object_port"`
	ContainerPort int `yaml:"container_port"`
	AccountPort   int `yaml:"account_port"`
	// MountCheck refuses devices that are not mount points, so a missing
	// disk never fills the root filesystem.
	MountCheck bool `yaml:"mount_check"`
	// PartPower sizes the rings a one-machine cloud builds (2^10).
	PartPower int `yaml:"part_power"`
	// Intervals of the consistency daemons.
	ReplicationInterval time.Duration `yaml:"replication_interval"`
	ExpirerInterval     time.Duration `yaml:"expirer_interval"`
	UpdaterInterval     time.Duration `yaml:"updater_interval"`
	AuditorInterval     time.Duration `yaml:"auditor_interval"`
	// ContainerSyncInterval is the pause between container sync passes
	// (0: 10 s in a one-machine cloud, else Swift's 5 min).
	ContainerSyncInterval time.Duration `yaml:"container_sync_interval"`
	// ReaperInterval is the pause between account reaper passes (1 h),
	// and ReaperDelay how long a deleted account keeps its data before
	// the reaper empties it (Swift's delay_reaping, 0).
	ReaperInterval time.Duration `yaml:"reaper_interval"`
	ReaperDelay    time.Duration `yaml:"reaper_delay"`
}

func defaultObjectConfig() ObjectConfig {
	return ObjectConfig{
		Port: 8080,
		Auth: ServiceAuth{Username: "swift", ProjectName: "service", UserDomainName: "Default", ProjectDomainName: "Default",
			TokenCacheTime: 5 * time.Minute},
		Storage: StorageConfig{
			Devices: []string{"d1", "d2", "d3"}, ObjectPort: 6200, ContainerPort: 6201, AccountPort: 6202, PartPower: 10,
			ReplicationInterval: 30 * time.Second, ExpirerInterval: 5 * time.Minute,
			UpdaterInterval: 30 * time.Second, AuditorInterval: 5 * time.Minute, ReaperInterval: time.Hour,
		},
	}
}

// applyObjectEnv overrides the object storage settings from NIMBUS_OBJECT_*
// and NIMBUS_STORAGE_*.
func (c *Config) applyObjectEnv(lookup func(string) (string, bool)) error {
	o := &c.Object
	for k, dst := range map[string]*int{
		"NIMBUS_OBJECT_PORT":            &o.Port,
		"NIMBUS_STORAGE_OBJECT_PORT":    &o.Storage.ObjectPort,
		"NIMBUS_STORAGE_CONTAINER_PORT": &o.Storage.ContainerPort,
		"NIMBUS_STORAGE_ACCOUNT_PORT":   &o.Storage.AccountPort,
	} {
		if v, ok := lookup(k); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s=%q: not a number", k, v)
			}
			*dst = n
		}
	}
	for k, dst := range map[string]*string{
		"NIMBUS_OBJECT_RING_DIR":         &o.RingDir,
		"NIMBUS_OBJECT_AUTH_PASSWORD":    &o.Auth.Password,
		"NIMBUS_STORAGE_DEVICES_ROOT":    &o.Storage.DevicesRoot,
		"NIMBUS_STORAGE_IP":              &o.Storage.IP,
		"NIMBUS_OBJECT_HASH_PATH_PREFIX": &o.HashPathPrefix,
		"NIMBUS_OBJECT_HASH_PATH_SUFFIX": &o.HashPathSuffix,
	} {
		if v, ok := lookup(k); ok {
			*dst = v
		}
	}
	// Lists are comma separated, as Swift's storage_domain.
	if v, ok := lookup("NIMBUS_OBJECT_STORAGE_DOMAIN"); ok {
		o.DomainRemap.StorageDomain = nil
		for _, d := range strings.Split(v, ",") {
			if d = strings.TrimSpace(d); d != "" {
				o.DomainRemap.StorageDomain = append(o.DomainRemap.StorageDomain, d)
			}
		}
	}
	if v, ok := lookup("NIMBUS_STORAGE"); ok {
		if err := o.Storage.Enabled.Parse(v); err != nil {
			return fmt.Errorf("NIMBUS_STORAGE: %w", err)
		}
	}
	return nil
}

// ValidateObject rejects object storage settings that cannot work.
func (c *Config) ValidateObject() error {
	o := c.Object
	s := o.Storage
	for name, p := range map[string]int{"object.port": o.Port, "object.storage.object_port": s.ObjectPort,
		"object.storage.container_port": s.ContainerPort, "object.storage.account_port": s.AccountPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("config: %s %d is not a port", name, p)
		}
	}
	if s.PartPower < 1 || s.PartPower > 24 {
		return fmt.Errorf("config: object.storage.part_power %d is outside 1..24", s.PartPower)
	}
	if _, err := c.ObjectPolicies(); err != nil {
		return err
	}
	return nil
}

// localPolicies are the storage policies of a one-machine cloud whose
// config lists none (see ObjectConfig.Policies).
var localPolicies = []StoragePolicyConfig{
	{Index: 0, Name: "gold", Aliases: []string{policy.LegacyName}, Default: true},
	{Index: 1, Name: "silver"},
}

// ObjectPolicies is the validated set of storage policies (see
// ObjectConfig.Policies for the defaults).
func (c *Config) ObjectPolicies() (*policy.Policies, error) {
	conf := c.Object.Policies
	if len(conf) == 0 && c.LocalObjectStorage() {
		conf = localPolicies
	}
	list := make([]policy.Policy, 0, len(conf))
	for _, p := range conf {
		list = append(list, policy.Policy{Index: p.Index, Name: p.Name, Aliases: p.Aliases, Default: p.Default,
			Deprecated: p.Deprecated, Replicas: p.Replicas})
	}
	ps, err := policy.New(list)
	if err != nil {
		return nil, fmt.Errorf("config: object.policies: %w", err)
	}
	return ps, nil
}

// ObjectRingDir is where the proxy and storage nodes read rings.
func (c *Config) ObjectRingDir() string {
	if c.Object.RingDir != "" {
		return c.Object.RingDir
	}
	return filepath.Join(c.DataDir, "objects", "rings")
}

// ObjectDevicesRoot is the storage node's devices root.
func (c *Config) ObjectDevicesRoot() string {
	if c.Object.Storage.DevicesRoot != "" {
		return c.Object.Storage.DevicesRoot
	}
	return filepath.Join(c.DataDir, "objects", "devices")
}

// LocalObjectStorage reports whether this process runs its own storage
// node next to the proxy (see StorageConfig.Enabled).
func (c *Config) LocalObjectStorage() bool {
	if c.Object.Storage.Enabled.IsSet() {
		return c.Object.Storage.Enabled.Enabled()
	}
	return c.Object.RingDir == ""
}
