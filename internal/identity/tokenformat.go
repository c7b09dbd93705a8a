package identity

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"
)

// tokenPayload is what a token carries inside its Fernet envelope. It is
// encoded compactly (ids that are 32 hex digits take 16 bytes) so that
// tokens stay well under the 255 characters some clients store them in.
type tokenPayload struct {
	UserID    string
	Methods   []string
	ProjectID string
	DomainID  string
	System    bool
	TrustID   string
	AppCredID string
	// AccessTokenID is the OAuth1 access token a token was issued for.
	AccessTokenID string
	IssuedAt      time.Time
	ExpiresAt     time.Time
	// AuditIDs: the token's own id first, then the id of the token it was
	// rescoped from (its audit chain), as Keystone keeps them.
	AuditIDs []string
}

const payloadVersion = 1

// authMethods maps method names to bits; the order is the wire format.
var authMethods = []string{"password", "token", "application_credential", "oauth1", "totp", "mapped", "external", "ec2credential"}

var errBadPayload = errors.New("malformed token payload")

func (p *tokenPayload) marshal() []byte {
	b := make([]byte, 0, 96)
	b = append(b, payloadVersion)
	var flags byte
	if p.System {
		flags |= 1
	}
	b = append(b, flags)
	var mask uint16
	for _, m := range p.Methods {
		for i, name := range authMethods {
			if m == name {
				mask |= 1 << i
			}
		}
	}
	b = binary.BigEndian.AppendUint16(b, mask)
	b = binary.AppendVarint(b, p.IssuedAt.UnixMicro())
	b = binary.AppendVarint(b, p.ExpiresAt.UnixMicro())
	for _, id := range []string{p.UserID, p.ProjectID, p.DomainID, p.TrustID, p.AppCredID, p.AccessTokenID} {
		b = appendID(b, id)
	}
	b = append(b, byte(len(p.AuditIDs)))
	for _, a := range p.AuditIDs {
		raw, err := base64.RawURLEncoding.DecodeString(a)
		if err != nil || len(raw) != 16 {
			raw = make([]byte, 16)
		}
		b = append(b, raw...)
	}
	return b
}

func unmarshalPayload(b []byte) (*tokenPayload, error) {
	if len(b) < 4 || b[0] != payloadVersion {
		return nil, errBadPayload
	}
	p := &tokenPayload{System: b[1]&1 != 0}
	mask := binary.BigEndian.Uint16(b[2:4])
	for i, name := range authMethods {
		if mask&(1<<i) != 0 {
			p.Methods = append(p.Methods, name)
		}
	}
	b = b[4:]
	issued, n := binary.Varint(b)
	if n <= 0 {
		return nil, errBadPayload
	}
	b = b[n:]
	expires, n := binary.Varint(b)
	if n <= 0 {
		return nil, errBadPayload
	}
	b = b[n:]
	p.IssuedAt, p.ExpiresAt = time.UnixMicro(issued).UTC(), time.UnixMicro(expires).UTC()
	for _, dst := range []*string{&p.UserID, &p.ProjectID, &p.DomainID, &p.TrustID, &p.AppCredID, &p.AccessTokenID} {
		var err error
		if *dst, b, err = readID(b); err != nil {
			return nil, err
		}
	}
	if len(b) < 1 {
		return nil, errBadPayload
	}
	count := int(b[0])
	b = b[1:]
	if len(b) != count*16 {
		return nil, errBadPayload
	}
	for i := range count {
		p.AuditIDs = append(p.AuditIDs, base64.RawURLEncoding.EncodeToString(b[i*16:(i+1)*16]))
	}
	if p.UserID == "" {
		return nil, errBadPayload
	}
	return p, nil
}

// Id encodings: 0 empty, 1 a 32-hex-digit id as 16 bytes, 2 a length-
// prefixed string (ids such as "default").
func appendID(b []byte, id string) []byte {
	switch {
	case id == "":
		return append(b, 0)
	case len(id) == 32 && isLowerHex(id):
		raw, _ := hex.DecodeString(id)
		return append(append(b, 1), raw...)
	default:
		b = append(b, 2)
		b = binary.AppendUvarint(b, uint64(len(id)))
		return append(b, id...)
	}
}

func readID(b []byte) (string, []byte, error) {
	if len(b) < 1 {
		return "", nil, errBadPayload
	}
	switch b[0] {
	case 0:
		return "", b[1:], nil
	case 1:
		if len(b) < 17 {
			return "", nil, errBadPayload
		}
		return hex.EncodeToString(b[1:17]), b[17:], nil
	case 2:
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || n > 255 || uint64(len(b)-1-k) < n {
			return "", nil, errBadPayload
		}
		start := 1 + k
		return string(b[start : start+int(n)]), b[start+int(n):], nil
	}
	return "", nil, errBadPayload
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
