package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"time"
)

const (
	hexUser    = "0123456789abcdef0123456789abcdef"
	hexProject = "fedcba9876543210fedcba9876543210"
	hexTrust   = "00000000000000000000000000000001"
	hexAppCred = "ffffffffffffffffffffffffffffffff"
)

// auditID returns a well-formed audit id: 16 bytes, URL-safe base64.
func auditID(fill byte) string {
	return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{fill}, 16))
}

// issued has nanoseconds, which the format drops.
var issued = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

func TestTokenPayloadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    tokenPayload
	}{
		{"project scoped, hex ids", tokenPayload{
			UserID: hexUser, ProjectID: hexProject, Methods: []string{"password"},
			IssuedAt: issued, ExpiresAt: issued.Add(time.Hour), AuditIDs: []string{auditID(1)},
		}},
		{"domain scoped, non-hex domain", tokenPayload{
			UserID: hexUser, DomainID: "default", Methods: []string{"password"},
			IssuedAt: issued, ExpiresAt: issued.Add(time.Hour), AuditIDs: []string{auditID(2)},
		}},
		{"system scoped rescope keeps audit chain", tokenPayload{
			UserID: "admin", System: true, Methods: []string{"password", "token"},
			IssuedAt: issued, ExpiresAt: issued.Add(2 * time.Hour), AuditIDs: []string{auditID(3), auditID(4)},
		}},
		{"unscoped", tokenPayload{
			UserID: hexUser, Methods: []string{"password"}, IssuedAt: issued, ExpiresAt: issued.Add(time.Minute),
		}},
		{"trust", tokenPayload{
			UserID: hexUser, ProjectID: hexProject, TrustID: hexTrust, Methods: []string{"token"},
			IssuedAt: issued, ExpiresAt: issued.Add(time.Hour), AuditIDs: []string{auditID(5)},
		}},
		{"application credential", tokenPayload{
			UserID: hexUser, ProjectID: hexProject, AppCredID: hexAppCred, Methods: []string{"application_credential"},
			IssuedAt: issued, ExpiresAt: issued.Add(time.Hour), AuditIDs: []string{auditID(6)},
		}},
		{"oauth1", tokenPayload{
			UserID: hexUser, ProjectID: hexProject, AccessTokenID: "access-token-1", Methods: []string{"oauth1"},
			IssuedAt: issued, ExpiresAt: issued.Add(time.Hour),
		}},
		{"every method", tokenPayload{
			UserID: hexUser, Methods: append([]string(nil), authMethods...),
			IssuedAt: issued, ExpiresAt: issued.Add(time.Hour),
		}},
		{"ids that only look hex", tokenPayload{
			UserID:    "0123456789ABCDEF0123456789ABCDEF",  // upper case: kept as text
			ProjectID: "0123456789abcdef0123456789abcdeg",  // 32 chars, not hex
			DomainID:  "0123456789abcdef0123456789abcde",   // 31 hex digits
			TrustID:   "0123456789abcdef0123456789abcdef0", // 33 hex digits
			IssuedAt:  issued, ExpiresAt: issued.Add(time.Hour),
		}},
		{"federated and unicode ids", tokenPayload{
			UserID: "ユーザー@idp", ProjectID: "p r/o:j", DomainID: "Default",
			Methods: []string{"mapped"}, IssuedAt: issued, ExpiresAt: issued.Add(time.Hour),
		}},
		{"long text id", tokenPayload{
			UserID: string(bytes.Repeat([]byte("u"), 255)), IssuedAt: issued, ExpiresAt: issued,
		}},
		{"before 1970", tokenPayload{
			UserID:   hexUser,
			IssuedAt: time.Date(1969, 12, 31, 23, 59, 59, 999999500, time.UTC), ExpiresAt: time.Unix(0, 0).UTC(),
		}},
		{"far future", tokenPayload{
			UserID: hexUser, IssuedAt: issued, ExpiresAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		}},
		{"many audit ids", tokenPayload{
			UserID: hexUser, IssuedAt: issued, ExpiresAt: issued,
			AuditIDs: []string{auditID(0), auditID(0xff), auditID(0x3e), auditID(0xfb)},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.p.marshal()
			got, err := unmarshalPayload(raw)
			if err != nil {
				t.Fatalf("unmarshal(marshal(p)): %v", err)
			}
			want := tc.p
			want.IssuedAt = tc.p.IssuedAt.Truncate(time.Microsecond)
			want.ExpiresAt = tc.p.ExpiresAt.Truncate(time.Microsecond)
			if !got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("times = %v, %v; want %v, %v", got.IssuedAt, got.ExpiresAt, want.IssuedAt, want.ExpiresAt)
			}
			if got.IssuedAt.Location() != time.UTC || got.ExpiresAt.Location() != time.UTC {
				t.Errorf("times not in UTC: %v", got.IssuedAt.Location())
			}
			got.IssuedAt, got.ExpiresAt = want.IssuedAt, want.ExpiresAt
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, want)
			}
			if again := got.marshal(); !bytes.Equal(again, raw) {
				t.Errorf("re-marshal differs:\n%x\n%x", again, raw)
			}
		})
	}
}

// Ids of 32 lower-case hex digits, which Keystone generates, take 16 bytes
// so that tokens stay short; anything else is kept as text.
func TestTokenPayloadIDEncoding(t *testing.T) {
	base := tokenPayload{UserID: "u", IssuedAt: issued, ExpiresAt: issued}
	emptyLen := len(base.marshal())
	for _, tc := range []struct {
		id    string
		extra int // bytes over an empty project id (which takes one)
	}{
		{hexProject, 16},
		{"default", 1 + 7},
		{"0123456789ABCDEF0123456789ABCDEF", 1 + 32},
	} {
		p := base
		p.ProjectID = tc.id
		raw := p.marshal()
		if got := len(raw) - emptyLen; got != tc.extra {
			t.Errorf("project %q costs %d bytes, want %d", tc.id, got, tc.extra)
		}
		if tc.extra == 16 {
			bin, _ := hex.DecodeString(tc.id)
			if !bytes.Contains(raw, append([]byte{1}, bin...)) {
				t.Errorf("project %q not stored as tag 1 + 16 raw bytes: %x", tc.id, raw)
			}
		}
	}
}

func TestTokenPayloadMethods(t *testing.T) {
	p := tokenPayload{UserID: "u", Methods: []string{"token", "password", "password", "kerberos", "totp"}}
	got, err := unmarshalPayload(p.marshal())
	if err != nil {
		t.Fatal(err)
	}
	// Methods come back in wire order, once each; unknown names are not
	// representable and are dropped.
	if want := []string{"password", "token", "totp"}; !reflect.DeepEqual(got.Methods, want) {
		t.Errorf("methods = %v, want %v", got.Methods, want)
	}
	// The bit order is the wire format: changing it would invalidate
	// every token in flight.
	raw := (&tokenPayload{UserID: "u", Methods: []string{"application_credential"}}).marshal()
	if mask := binary.BigEndian.Uint16(raw[2:4]); mask != 1<<2 {
		t.Errorf("application_credential mask = %#x, want 0x4", mask)
	}
}

func TestTokenPayloadSystemFlag(t *testing.T) {
	for _, system := range []bool{false, true} {
		raw := (&tokenPayload{UserID: "u", System: system}).marshal()
		if raw[0] != payloadVersion || (raw[1]&1 != 0) != system {
			t.Errorf("system=%v: header %x", system, raw[:2])
		}
		got, err := unmarshalPayload(raw)
		if err != nil || got.System != system {
			t.Errorf("system=%v: got %+v, %v", system, got, err)
		}
	}
}

func TestUnmarshalPayloadRejects(t *testing.T) {
	good := (&tokenPayload{
		UserID: hexUser, ProjectID: "default", IssuedAt: issued, ExpiresAt: issued,
		AuditIDs: []string{auditID(9)},
	}).marshal()
	mutate := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	// The user id follows 4 header bytes and the two time varints.
	userAt := 4 + 2*len(binary.AppendVarint(nil, issued.UnixMicro()))
	if good[userAt] != 1 {
		t.Fatalf("layout assumption broken: %x", good)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", []byte{payloadVersion, 0, 0}},
		{"wrong version", mutate(func(b []byte) []byte { b[0] = 2; return b })},
		{"version zero", mutate(func(b []byte) []byte { b[0] = 0; return b })},
		{"no times", good[:4]},
		{"truncated varint", append(bytes.Clone(good[:4]), 0x80)},
		{"overlong varint", append(bytes.Clone(good[:4]), bytes.Repeat([]byte{0xff}, 11)...)},
		{"missing ids", good[:userAt]},
		{"unknown id tag", mutate(func(b []byte) []byte { b[userAt] = 3; return b })},
		{"truncated hex id", good[:userAt+10]},
		{"text id longer than payload", append(bytes.Clone(good[:userAt]), 2, 50, 'a')},
		{"text id over 255", append(append(bytes.Clone(good[:userAt]), 2, 0x80, 0x02), bytes.Repeat([]byte{'a'}, 256)...)},
		{"missing audit count", good[:len(good)-17]},
		{"audit count too high", mutate(func(b []byte) []byte { b[len(b)-17] = 2; return b })},
		{"audit count too low", mutate(func(b []byte) []byte { b[len(b)-17] = 0; return b })},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"no user", (&tokenPayload{ProjectID: hexProject}).marshal()},
	} {
		p, err := unmarshalPayload(tc.b)
		if !errors.Is(err, errBadPayload) || p != nil {
			t.Errorf("%s: got %+v, %v; want errBadPayload", tc.name, p, err)
		}
	}
	if _, err := unmarshalPayload(good); err != nil {
		t.Errorf("the unmutated payload fails: %v", err)
	}
}

// FuzzUnmarshalPayload checks that unmarshalPayload never panics, fails
// only with errBadPayload, and that whatever it accepts re-encodes to a
// canonical form that decodes to the same payload. Plain `go test` runs
// only the seeds.
func FuzzUnmarshalPayload(f *testing.F) {
	seeds := []tokenPayload{
		{UserID: hexUser, ProjectID: hexProject, Methods: []string{"password"}, IssuedAt: issued, ExpiresAt: issued.Add(time.Hour), AuditIDs: []string{auditID(1)}},
		{UserID: "admin", DomainID: "default", System: true, Methods: []string{"password", "token"}, IssuedAt: issued, ExpiresAt: issued, AuditIDs: []string{auditID(2), auditID(3)}},
		{UserID: hexUser, TrustID: hexTrust, AppCredID: hexAppCred, AccessTokenID: "x", IssuedAt: time.Unix(-1, 0), ExpiresAt: time.Unix(1<<40, 0)},
	}
	for _, p := range seeds {
		f.Add(p.marshal())
	}
	f.Add([]byte{})
	f.Add([]byte{payloadVersion, 0xff, 0xff, 0xff})
	// A text id that spells 32 hex digits, and non-minimal varints.
	f.Add(append([]byte{payloadVersion, 0, 0, 0, 0x80, 0x00, 0, 2, 32}, append([]byte(hexUser), 0, 0, 0, 0, 0, 0)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := unmarshalPayload(b)
		if err != nil {
			if !errors.Is(err, errBadPayload) || p != nil {
				t.Fatalf("unmarshalPayload(%x) = %+v, %v", b, p, err)
			}
			return
		}
		if p.UserID == "" {
			t.Fatal("accepted a payload without a user")
		}
		canonical := p.marshal()
		if len(canonical) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(canonical))
		}
		p2, err := unmarshalPayload(canonical)
		if err != nil {
			t.Fatalf("re-encoded payload %x of %+v does not decode: %v", canonical, p, err)
		}
		if !reflect.DeepEqual(p, p2) {
			t.Fatalf("round trip changed the payload:\n%+v\n%+v", p, p2)
		}
		if again := p2.marshal(); !bytes.Equal(again, canonical) {
			t.Fatalf("canonical form not stable:\n%x\n%x", canonical, again)
		}
	})
}
