// Package metadata is Nimbus's metadata service, split as OpenStack splits
// it so that the same guests and tools work:
//
//   - [Server] is the metadata role (Nova's nova-metadata-api, port 8775).
//     It trusts only requests signed with the shared secret: X-Instance-ID,
//     X-Tenant-ID and X-Instance-ID-Signature, the hex HMAC-SHA256 of the
//     instance id — the contract between Neutron's metadata agent and Nova.
//   - [Proxy] is the networking agent's side (neutron-metadata-agent). The
//     data plane hands it guests' requests to 169.254.169.254 with the
//     guest's address and router; it finds the instance through the
//     networking API, signs, and forwards to the role.
//   - [Content] renders an instance's metadata in the OpenStack and EC2
//     formats, for the role and for the config drive alike, so a guest sees
//     the same answers from either.
package metadata
