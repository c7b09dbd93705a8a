package compute

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"golang.org/x/crypto/ssh"
)

type keypair struct {
	ID          int
	UserID      string
	Name        string
	Type        string
	PublicKey   string
	Fingerprint string
	CreatedAt   string
}

const keypairCols = `id, user_id, name, type, public_key, fingerprint, created_at`

func scanKeypair(row store.Scanner) (keypair, error) {
	var k keypair
	err := row.Scan(&k.ID, &k.UserID, &k.Name, &k.Type, &k.PublicKey, &k.Fingerprint, &k.CreatedAt)
	return k, err
}

// keypairName is Nova's keypair name rule before 2.92: letters, digits,
// '.', '_', '-' and spaces, without leading or trailing space.
var keypairName = regexp.MustCompile(`^[a-zA-Z0-9 ._-]+$`)

// sshFingerprint is Nova's fingerprint of an OpenSSH public key: the MD5
// of the key blob, as colon-separated hex pairs.
func sshFingerprint(public string) (string, error) {
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(public))
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(ssh.FingerprintLegacyMD5(pk), "MD5:"), nil
}

// x509Fingerprint is Nova's fingerprint of a certificate: the SHA-1 of
// its DER encoding, as colon-separated hex pairs.
func x509Fingerprint(public string) (string, error) {
	block, _ := pem.Decode([]byte(public))
	if block == nil {
		return "", errors.New("no PEM block")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "", err
	}
	sum := sha1.Sum(block.Bytes)
	return colonHex(sum[:]), nil
}

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	parts := make([]string, 0, len(b))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// generateSSH makes an RSA key pair as Nova does, returning the private
// key in PEM (PKCS#1) and the OpenSSH public key.
func generateSSH(comment string) (private, public string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("generate rsa key: %w", err)
	}
	pub, err := ssh.NewPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("encode public key: %w", err)
	}
	private = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	public = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment
	return private, public, nil
}

// generateX509 makes a self-signed certificate for x509 keypairs, with
// the user as subject, as Nova's generator does.
func generateX509(user string) (private, public string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("generate rsa key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: user},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("create certificate: %w", err)
	}
	private = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(key)}))
	public = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return private, public, nil
}

func mustPKCS8(key any) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	return b
}

// keypairUser is the user whose keypairs a request addresses: the caller,
// or with 2.10 an admin may name another via user_id.
func (s *Service) keypairUser(r *http.Request, fromBody string) (string, error) {
	c := s.caller(r)
	user := c.user
	if at(r, 10) {
		if q := r.URL.Query().Get("user_id"); q != "" {
			user = q
		}
		if fromBody != "" {
			user = fromBody
		}
	}
	return user, nil
}

func (s *Service) keypairView(r *http.Request, k keypair, full bool) map[string]any {
	out := map[string]any{"name": k.Name, "public_key": k.PublicKey, "fingerprint": k.Fingerprint}
	if at(r, 2) {
		out["type"] = k.Type
	}
	if full {
		out["user_id"] = k.UserID
		out["created_at"] = isoMicro(parseTime(k.CreatedAt))
		out["deleted"] = false
		out["deleted_at"] = nil
		out["updated_at"] = nil
		out["id"] = k.ID
	}
	return out
}

func (s *Service) listKeypairs(r *http.Request) (*api.Response, error) {
	user, _ := s.keypairUser(r, "")
	if err := s.authorize(r, "os_compute_api:os-keypairs:index", map[string]any{"user_id": user}); err != nil {
		return nil, err
	}
	var p api.Page
	if at(r, 35) {
		var err error
		if p, err = page(r); err != nil {
			return nil, err
		}
	}
	keys, err := store.QueryAll(r.Context(), s.db, scanKeypair, `SELECT `+keypairCols+` FROM compute_keypairs WHERE user_id = ? ORDER BY name`, user)
	if err != nil {
		return nil, fmt.Errorf("list keypairs: %w", err)
	}
	if at(r, 35) {
		sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
		if keys, _, err = paginate(keys, p, func(k keypair) string { return k.Name }); err != nil {
			return nil, err
		}
	}
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, map[string]any{"keypair": s.keypairView(r, k, false)})
	}
	body := map[string]any{"keypairs": out}
	if at(r, 35) && len(keys) > 0 {
		if l := s.nextLinks(r, p, len(keys), keys[len(keys)-1].Name); l != nil {
			body["keypairs_links"] = l
		}
	}
	return api.JSON(http.StatusOK, body), nil
}

func (s *Service) getKeypair(r *http.Request, user, name string) (keypair, error) {
	k, err := store.QueryOne(r.Context(), s.db, scanKeypair, `SELECT `+keypairCols+` FROM compute_keypairs WHERE user_id = ? AND name = ?`, user, name)
	if errors.Is(err, store.ErrNotFound) {
		return k, api.NotFound("Keypair %s not found for user %s", name, user)
	}
	if err != nil {
		return k, fmt.Errorf("get keypair %s: %w", name, err)
	}
	return k, nil
}

func (s *Service) showKeypair(r *http.Request) (*api.Response, error) {
	user, _ := s.keypairUser(r, "")
	if err := s.authorize(r, "os_compute_api:os-keypairs:show", map[string]any{"user_id": user}); err != nil {
		return nil, err
	}
	k, err := s.getKeypair(r, user, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"keypair": s.keypairView(r, k, true)}), nil
}

func (s *Service) deleteKeypair(r *http.Request) (*api.Response, error) {
	user, _ := s.keypairUser(r, "")
	if err := s.authorize(r, "os_compute_api:os-keypairs:delete", map[string]any{"user_id": user}); err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	res, err := s.db.Exec(r.Context(), `DELETE FROM compute_keypairs WHERE user_id = ? AND name = ?`, user, name)
	if err != nil {
		return nil, fmt.Errorf("delete keypair %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, api.NotFound("Keypair %s not found for user %s", name, user)
	}
	if at(r, 2) {
		return api.NoContent(), nil
	}
	return accepted(), nil
}

func (s *Service) createKeypair(r *http.Request) (*api.Response, error) {
	var body struct {
		Keypair *struct {
			Name      *string `json:"name"`
			PublicKey *string `json:"public_key"`
			Type      *string `json:"type"`
			UserID    *string `json:"user_id"`
		} `json:"keypair"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Keypair
	if in == nil {
		return nil, api.BadRequest("Invalid input for field/attribute keypair. 'keypair' is a required property")
	}
	if in.Type != nil && !at(r, 2) {
		return nil, api.BadRequest("Invalid input for field/attribute keypair. Additional properties are not allowed ('type' was unexpected)")
	}
	if in.UserID != nil && !at(r, 10) {
		return nil, api.BadRequest("Invalid input for field/attribute keypair. Additional properties are not allowed ('user_id' was unexpected)")
	}
	if in.Name == nil {
		return nil, api.BadRequest("Invalid input for field/attribute keypair. 'name' is a required property")
	}
	name := *in.Name
	if name == "" || len(name) > 255 || !keypairName.MatchString(name) || strings.TrimSpace(name) != name {
		return nil, api.BadRequest("Invalid input for field/attribute name. Value: %s. Keypair name contains unsafe characters", name)
	}
	typ := "ssh"
	if in.Type != nil {
		typ = *in.Type
		if typ != "ssh" && typ != "x509" {
			return nil, api.BadRequest("Invalid input for field/attribute type. Value: %s. '%s' is not one of ['ssh', 'x509']", typ, typ)
		}
	}
	userBody := ""
	if in.UserID != nil {
		userBody = *in.UserID
	}
	user, _ := s.keypairUser(r, userBody)
	if err := s.authorize(r, "os_compute_api:os-keypairs:create", map[string]any{"user_id": user}); err != nil {
		return nil, err
	}
	k := keypair{UserID: user, Name: name, Type: typ, CreatedAt: store.FormatTime(now())}
	private := ""
	var err error
	if in.PublicKey != nil {
		k.PublicKey = *in.PublicKey
		if typ == "x509" {
			k.Fingerprint, err = x509Fingerprint(k.PublicKey)
		} else {
			k.Fingerprint, err = sshFingerprint(k.PublicKey)
		}
		if err != nil {
			return nil, api.BadRequest("Keypair data is invalid: failed to generate fingerprint")
		}
	} else {
		if typ == "x509" {
			private, k.PublicKey, err = generateX509(user)
			if err == nil {
				k.Fingerprint, err = x509Fingerprint(k.PublicKey)
			}
		} else {
			private, k.PublicKey, err = generateSSH("Generated-by-Nova")
			if err == nil {
				k.Fingerprint, err = sshFingerprint(k.PublicKey)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("generate keypair: %w", err)
		}
	}
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		if err := store.LockKey(r.Context(), tx, "keypairs:"+user); err != nil {
			return err
		}
		// Key pairs count per user against the default limit, as Nova's
		// user quota does.
		defaults, err := s.defaultsFor(r.Context(), tx)
		if err != nil {
			return err
		}
		limit := defaults["key_pairs"]
		var n int
		if err := tx.QueryRow(r.Context(), `SELECT COUNT(*) FROM compute_keypairs WHERE user_id = ?`, user).Scan(&n); err != nil {
			return err
		}
		if limit >= 0 && n+1 > limit {
			return api.Forbidden("Quota exceeded, too many key pairs.")
		}
		if err := tx.QueryRow(r.Context(), `SELECT COUNT(*) FROM compute_keypairs WHERE user_id = ? AND name = ?`, user, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return api.Conflict("Key pair '%s' already exists.", name)
		}
		if err := tx.QueryRow(r.Context(), `SELECT COALESCE(MAX(id), 0) + 1 FROM compute_keypairs`).Scan(&k.ID); err != nil {
			return err
		}
		_, err = tx.Exec(r.Context(), `INSERT INTO compute_keypairs (`+keypairCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.UserID, k.Name, k.Type, k.PublicKey, k.Fingerprint, k.CreatedAt)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := s.keypairView(r, k, false)
	out["user_id"] = k.UserID
	if private != "" {
		out["private_key"] = private
	}
	status := http.StatusOK
	if at(r, 2) {
		status = http.StatusCreated
	}
	return api.JSON(status, map[string]any{"keypair": out}), nil
}
