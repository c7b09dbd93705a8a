package api

// VersionDoc is one entry of a version discovery document, the shape every
// OpenStack service answers at its root so that keystoneauth can find the
// endpoint for the major version it wants. Services wrap entries in their
// own envelope ({"versions": {"values": [...]}} for Keystone,
// {"versions": [...]} for Nova, Glance and Neutron).
type VersionDoc struct {
	ID         string      `json:"id"`
	Status     string      `json:"status"`
	Updated    string      `json:"updated,omitempty"`
	Links      []Link      `json:"links"`
	MediaTypes []MediaType `json:"media-types,omitempty"`
	// Version and MinVersion advertise the microversion range; empty for
	// services without microversions.
	Version    string `json:"version,omitempty"`
	MinVersion string `json:"min_version,omitempty"`
}

// MediaType is an entry of a version document's media-types list.
type MediaType struct {
	Base string `json:"base"`
	Type string `json:"type"`
}
