package compute_test

import (
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// A fixed ed25519 key and the fingerprint Nova computes for it (MD5 of
// the key blob), checked against ssh-keygen -l -E md5.
const (
	edKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzXw4rR0G9gJ7gX2mQ9xD6Tj5b1o9hXj4kzq9vL0W5B test@nimbus"
)

func TestKeypairs(t *testing.T) {
	h := newHarness(t)
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(edKey))
	if err != nil {
		t.Fatal(err)
	}
	wantFP := strings.TrimPrefix(ssh.FingerprintLegacyMD5(pk), "MD5:")

	// Import at 2.1: 200, no type.
	kp := h.json("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "k1", "public_key": edKey}}, 200)["keypair"].(map[string]any)
	if kp["fingerprint"] != wantFP || kp["user_id"] != "u-a" || kp["private_key"] != nil {
		t.Fatalf("imported: %v", kp)
	}
	if _, ok := kp["type"]; ok {
		t.Fatalf("type at 2.1: %v", kp)
	}
	if len(strings.Split(wantFP, ":")) != 16 {
		t.Fatalf("fingerprint form %q", wantFP)
	}
	if msg := h.fail("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "k1", "public_key": edKey}}, 409); msg != "Key pair 'k1' already exists." {
		t.Fatalf("duplicate: %q", msg)
	}
	h.fail("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "bad", "public_key": "ssh-rsa garbage"}}, 400)
	h.fail("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "bad/name"}}, 400)
	h.fail("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "t", "type": "ssh"}}, 400)

	// Generate at 2.2: 201 with a private key and a type.
	gen := h.json("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "gen", "type": "ssh"}}, 201, mv("2.2"))["keypair"].(map[string]any)
	priv, _ := gen["private_key"].(string)
	signer, err := ssh.ParsePrivateKey([]byte(priv))
	if err != nil {
		t.Fatalf("generated private key: %v", err)
	}
	if got := strings.TrimPrefix(ssh.FingerprintLegacyMD5(signer.PublicKey()), "MD5:"); got != gen["fingerprint"] || gen["type"] != "ssh" {
		t.Fatalf("generated key fingerprint %s, listed %v", got, gen)
	}
	x := h.json("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "cert", "type": "x509"}}, 201, mv("2.2"))["keypair"].(map[string]any)
	if !strings.Contains(x["public_key"].(string), "BEGIN CERTIFICATE") || len(strings.Split(x["fingerprint"].(string), ":")) != 20 {
		t.Fatalf("x509: %v", x)
	}

	// Show carries Nova's bookkeeping fields.
	show := h.json("a", "GET", "/v2.1/os-keypairs/k1", nil, 200)["keypair"].(map[string]any)
	for _, k := range []string{"id", "created_at", "deleted", "deleted_at", "updated_at", "user_id", "public_key", "fingerprint", "name"} {
		if _, ok := show[k]; !ok {
			t.Fatalf("show lacks %s: %v", k, show)
		}
	}
	// Keypairs are per user: another user of the same project sees none.
	h.fail("a2", "GET", "/v2.1/os-keypairs/k1", nil, 404)
	if n := len(h.json("a2", "GET", "/v2.1/os-keypairs", nil, 200)["keypairs"].([]any)); n != 0 {
		t.Fatalf("a2 sees %d keypairs", n)
	}
	// Admins address other users' keypairs with user_id (2.10).
	h.json("admin", "GET", "/v2.1/os-keypairs/k1?user_id=u-a", nil, 200, mv("2.10"))
	h.fail("a2", "GET", "/v2.1/os-keypairs/k1?user_id=u-a", nil, 403, mv("2.10"))
	h.json("admin", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "for-a2", "user_id": "u-a2", "public_key": edKey}}, 201, mv("2.10"))
	h.json("a2", "GET", "/v2.1/os-keypairs/for-a2", nil, 200)

	// Pagination by name (2.35).
	list := h.json("a", "GET", "/v2.1/os-keypairs?limit=2", nil, 200, mv("2.35"))
	if len(list["keypairs"].([]any)) != 2 || list["keypairs_links"] == nil {
		t.Fatalf("page: %v", list)
	}
	rest := h.json("a", "GET", "/v2.1/os-keypairs?marker=gen", nil, 200, mv("2.35"))["keypairs"].([]any)
	if len(rest) != 1 || rest[0].(map[string]any)["keypair"].(map[string]any)["name"] != "k1" {
		t.Fatalf("after marker: %v", rest)
	}

	// Delete: 202 at 2.1, 204 from 2.2.
	h.json("a", "DELETE", "/v2.1/os-keypairs/cert", nil, 202)
	h.json("a", "DELETE", "/v2.1/os-keypairs/gen", nil, 204, mv("2.2"))
	h.fail("a", "DELETE", "/v2.1/os-keypairs/gen", nil, 404)
}

func TestKeypairQuota(t *testing.T) {
	h := newHarness(t, func(c *computeConfig) { c.Quotas = map[string]int{"key_pairs": 1} })
	h.json("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "one", "public_key": edKey}}, 200)
	if msg := h.fail("a", "POST", "/v2.1/os-keypairs", map[string]any{"keypair": map[string]any{"name": "two", "public_key": edKey}}, 403); msg != "Quota exceeded, too many key pairs." {
		t.Fatalf("quota message %q", msg)
	}
}
