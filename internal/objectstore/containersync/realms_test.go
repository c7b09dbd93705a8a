package containersync

import (
	"strings"
	"testing"
)

func testRealms(t *testing.T) *Realms {
	t.Helper()
	r, err := NewRealms(map[string]Realm{"realm1": {Key: "k1", Key2: "k2", Clusters: map[string]string{"name1": "http://127.0.0.1:8080/v1/"}}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestValidateSyncTo(t *testing.T) {
	realms := testRealms(t)
	allowed := []string{"127.0.0.1"}
	for _, c := range []struct {
		in, url, realm, err string
	}{
		{in: "", url: ""},
		{in: "//Realm1/NAME1/AUTH_a/c", url: "http://127.0.0.1:8080/v1/AUTH_a/c", realm: "REALM1"},
		{in: "//realm1/name1/AUTH_a/c/", url: "http://127.0.0.1:8080/v1/AUTH_a/c", realm: "REALM1"},
		{in: "//realm1/name1/AUTH_a", err: "Invalid X-Container-Sync-To format"},
		{in: "//realm9/name1/AUTH_a/c", err: "No realm key"},
		{in: "//realm1/name9/AUTH_a/c", err: "No cluster endpoint"},
		{in: "http://127.0.0.1/v1/AUTH_a/c", url: "http://127.0.0.1/v1/AUTH_a/c"},
		{in: "http://10.0.0.1/v1/AUTH_a/c", err: "Invalid host"},
		{in: "ftp://127.0.0.1/v1/AUTH_a/c", err: "Invalid scheme"},
		{in: "http://127.0.0.1", err: "Path required"},
		{in: "http://127.0.0.1/v1/a/c?x=1", err: "Params, queries, and fragments"},
	} {
		got, err := ValidateSyncTo(c.in, allowed, realms)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got.URL != c.url || got.Realm != c.realm {
			t.Errorf("%q: %+v, %v; want %s realm %q", c.in, got, err, c.url, c.realm)
		}
	}
	if got := realms.Keys("REALM1"); len(got) != 2 || got[0] != "k1" || got[1] != "k2" {
		t.Errorf("keys %v", got)
	}
	info := realms.Info("//realm1/name1")
	if c := info["REALM1"].(map[string]any)["clusters"].(map[string]any)["NAME1"].(map[string]any); c["current"] != true {
		t.Errorf("info %v", info)
	}
}

// The signature must match Swift's get_sig byte for byte, or syncs
// between Nimbus and Swift clusters fail (value from Python's hmac).
func TestSignatureMatchesSwift(t *testing.T) {
	got := Signature("PUT", "/v1/AUTH_a/c/"+Quote("o x"), "1700000000.00000", "nonce", "realmkey", "userkey")
	if want := "445a5966c37a1b1d4a52176936552ca4a23aa309"; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	realm, nonce, sig, ok := ParseAuthHeader(AuthHeader("R", "n", got))
	if !ok || realm != "R" || nonce != "n" || sig != got {
		t.Fatalf("auth header round trip: %q %q %q %v", realm, nonce, sig, ok)
	}
}
