package metadata

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Headers of the proxy → metadata role contract, as Neutron sends them.
const (
	HeaderInstanceID = "X-Instance-ID"
	HeaderTenantID   = "X-Tenant-ID"
	HeaderSignature  = "X-Instance-ID-Signature"
	HeaderForwarded  = "X-Forwarded-For"
)

// Sign is the X-Instance-ID-Signature of instanceID: hex HMAC-SHA256 with
// the shared secret, as Neutron's metadata agent computes it, so that a
// Neutron agent and Nimbus's role (or the reverse) interoperate.
func Sign(secret []byte, instanceID string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(instanceID))
	return hex.EncodeToString(m.Sum(nil))
}

// validSignature compares in constant time, so the answer's timing does
// not reveal how much of a forged signature was right.
func validSignature(secret []byte, instanceID, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, instanceID)), []byte(sig))
}
