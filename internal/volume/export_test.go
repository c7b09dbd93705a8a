package volume

import "github.com/nimbus-cloud/nimbus/internal/api"

// WithMaxVersion makes a service accept microversions up to 3.minor, so
// tests reach behaviour written for versions past MaxVersion.
func WithMaxVersion(minor int) func(*Config) {
	return func(c *Config) { c.maxVersion = api.Version{Major: 3, Minor: minor} }
}
