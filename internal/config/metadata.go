package config

import (
	"fmt"
	"net/url"
	"strconv"
)

// MetadataConfig configures the metadata service guests reach at
// 169.254.169.254: the metadata role (Nova's nova-metadata-api) and the
// networking agents' proxy to it (neutron-metadata-agent).
type MetadataConfig struct {
	// Port is the metadata role's port (0: any free port, for tests).
	Port int `yaml:"port"`
	// URL is where networking agents send guests' requests. Nova's
	// metadata API is not in the catalog, so agents on other hosts must be
	// told; empty uses the metadata role of this process.
	URL string `yaml:"url"`
	// SharedSecret signs the instance ids agents vouch for (Neutron's
	// metadata_proxy_shared_secret). Empty: generated on first start and
	// kept in <data_dir>/metadata-secret, which only works when the agents
	// and the role share the data dir; set it on every host otherwise.
	SharedSecret string `yaml:"shared_secret"`
}

func defaultMetadataConfig() MetadataConfig {
	return MetadataConfig{Port: 8775}
}

// applyMetadataEnv overrides the metadata settings from NIMBUS_METADATA_*.
func (c *Config) applyMetadataEnv(lookup func(string) (string, bool)) error {
	m := &c.Compute.Metadata
	if v, ok := lookup("NIMBUS_METADATA_PORT"); ok {
		p, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("NIMBUS_METADATA_PORT=%q: not a number", v)
		}
		m.Port = p
	}
	if v, ok := lookup("NIMBUS_METADATA_URL"); ok {
		m.URL = v
	}
	if v, ok := lookup("NIMBUS_METADATA_SHARED_SECRET"); ok {
		m.SharedSecret = v
	}
	return nil
}

// ValidateMetadata rejects metadata settings that cannot work.
func (c *Config) ValidateMetadata() error {
	m := c.Compute.Metadata
	if m.Port < 0 || m.Port > 65535 {
		return fmt.Errorf("config: compute.metadata.port %d is not a port", m.Port)
	}
	if m.URL != "" {
		u, err := url.Parse(m.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: compute.metadata.url %q is not an http(s) URL", m.URL)
		}
	}
	return nil
}
