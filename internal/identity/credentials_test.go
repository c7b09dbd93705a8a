package identity

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCredentialsCRUD(t *testing.T) {
	c := newTestCloud(t)
	body := map[string]any{"credential": map[string]any{
		"type": "cert", "user_id": c.adminUser, "blob": "-----BEGIN CERT-----", "project_id": c.adminProj, "color": "blue"}}
	created := c.do("POST", "/v3/credentials", c.adminToken, body).want(http.StatusCreated)
	id := created.str("credential.id")
	if created.str("credential.blob") != "-----BEGIN CERT-----" || created.str("credential.color") != "blue" {
		t.Fatalf("created %s", created.Body)
	}
	if !strings.HasSuffix(created.str("credential.links.self"), "/v3/credentials/"+id) {
		t.Fatalf("links %s", created.Body)
	}

	got := c.do("GET", "/v3/credentials/"+id, c.adminToken, nil).want(http.StatusOK)
	if got.str("credential.type") != "cert" || got.str("credential.project_id") != c.adminProj {
		t.Fatalf("got %s", got.Body)
	}

	upd := c.do("PATCH", "/v3/credentials/"+id, c.adminToken, map[string]any{"credential": map[string]any{"blob": "new", "type": "totp"}}).want(http.StatusOK)
	if upd.str("credential.blob") != "new" || upd.str("credential.type") != "totp" || upd.str("credential.color") != "blue" {
		t.Fatalf("updated %s", upd.Body)
	}

	list := c.do("GET", "/v3/credentials?type=totp", c.adminToken, nil).want(http.StatusOK).list("credentials")
	if len(list) != 1 {
		t.Fatalf("list by type: %v", list)
	}
	if l := c.do("GET", "/v3/credentials?type=cert", c.adminToken, nil).want(http.StatusOK).list("credentials"); len(l) != 0 {
		t.Fatalf("list by other type: %v", l)
	}
	if l := c.do("GET", "/v3/credentials?user_id="+c.adminUser, c.adminToken, nil).list("credentials"); len(l) != 1 {
		t.Fatalf("list by user: %v", l)
	}

	c.do("DELETE", "/v3/credentials/"+id, c.adminToken, nil).want(http.StatusNoContent)
	c.do("GET", "/v3/credentials/"+id, c.adminToken, nil).wantError(http.StatusNotFound, "Could not find credential: "+id)
	c.do("DELETE", "/v3/credentials/"+id, c.adminToken, nil).wantError(http.StatusNotFound, "Could not find credential")
}

func TestCredentialsBadInput(t *testing.T) {
	c := newTestCloud(t)
	post := func(cred map[string]any) *testResponse {
		return c.do("POST", "/v3/credentials", c.adminToken, map[string]any{"credential": cred})
	}
	post(map[string]any{"type": "cert", "user_id": c.adminUser}).wantError(http.StatusBadRequest, "credential.blob")
	post(map[string]any{"blob": "x", "user_id": c.adminUser}).wantError(http.StatusBadRequest, "credential.type")
	post(map[string]any{"blob": "x", "type": "cert"}).wantError(http.StatusBadRequest, "credential.user_id")
	post(map[string]any{"blob": map[string]any{"a": 1}, "type": "cert", "user_id": c.adminUser}).wantError(http.StatusBadRequest, "credential.blob")
	post(map[string]any{"blob": "x", "type": 7, "user_id": c.adminUser}).wantError(http.StatusBadRequest, "credential.type")
	c.do("POST", "/v3/credentials", c.adminToken, `{"credential": `).wantError(http.StatusBadRequest, "Malformed")
	c.do("POST", "/v3/credentials", c.adminToken, map[string]any{"nope": 1}).wantError(http.StatusBadRequest, "credential")
	// ec2 needs a project and a blob with an access key.
	post(map[string]any{"blob": `{"access":"a","secret":"s"}`, "type": "ec2", "user_id": c.adminUser}).wantError(http.StatusBadRequest, "credential.project_id")
	post(map[string]any{"blob": `not json`, "type": "ec2", "user_id": c.adminUser, "project_id": c.adminProj}).wantError(http.StatusBadRequest, "Invalid blob")
	post(map[string]any{"blob": `{"secret":"s"}`, "type": "ec2", "user_id": c.adminUser, "project_id": c.adminProj}).wantError(http.StatusBadRequest, "access")
	post(map[string]any{"blob": "x", "type": "cert", "user_id": "nobody"}).wantError(http.StatusNotFound, "Could not find user: nobody")
	post(map[string]any{"blob": "x", "type": "cert", "user_id": c.adminUser, "project_id": "nowhere"}).wantError(http.StatusNotFound, "Could not find project: nowhere")
	post(map[string]any{"blob": strings.Repeat("x", maxCredentialBlob+1), "type": "cert", "user_id": c.adminUser}).wantError(http.StatusBadRequest, "credential.blob")

	id := post(map[string]any{"blob": "x", "type": "cert", "user_id": c.adminUser}).want(http.StatusCreated).str("credential.id")
	c.do("PATCH", "/v3/credentials/"+id, c.adminToken, map[string]any{"credential": map[string]any{}}).wantError(http.StatusBadRequest, "at least one")
	c.do("PATCH", "/v3/credentials/"+id, c.adminToken, map[string]any{"credential": map[string]any{"id": "other"}}).want(http.StatusBadRequest)
	c.do("PATCH", "/v3/credentials/"+id, c.adminToken, map[string]any{"credential": map[string]any{"type": nil}}).wantError(http.StatusBadRequest, "credential.type")
	c.do("PATCH", "/v3/credentials/missing", c.adminToken, map[string]any{"credential": map[string]any{"blob": "y"}}).wantError(http.StatusNotFound, "Could not find credential: missing")
	// Nothing was half-applied by the failed updates.
	if got := c.do("GET", "/v3/credentials/"+id, c.adminToken, nil).str("credential.blob"); got != "x" {
		t.Fatalf("blob after failed updates: %q", got)
	}
}

func TestEC2CredentialIDIsHashOfAccess(t *testing.T) {
	c := newTestCloud(t)
	resp := c.do("POST", "/v3/credentials", c.adminToken, map[string]any{"credential": map[string]any{
		"type": "ec2", "user_id": c.adminUser, "project_id": c.adminProj, "blob": `{"access":"AKID","secret":"s3cr3t"}`}}).want(http.StatusCreated)
	// hashlib.sha256(b"AKID").hexdigest(), as Keystone computes it.
	if got, want := resp.str("credential.id"), "2c8a2a08ad81dddf7e7830cbc75310f731a1381431bb29afb55a76ee07e81721"; got != want {
		t.Fatalf("id %s, want %s", got, want)
	}
	// The same access key twice is a conflict.
	c.do("POST", "/v3/credentials", c.adminToken, map[string]any{"credential": map[string]any{
		"type": "ec2", "user_id": c.adminUser, "project_id": c.adminProj, "blob": `{"access":"AKID","secret":"other"}`}}).
		wantError(http.StatusConflict, "Duplicate entry")
}

func TestCredentialOwnership(t *testing.T) {
	c := newTestCloud(t)
	alice, aliceProj, aliceTok := c.member("alice")
	bob, _, bobTok := c.member("bob")

	// Alice may create her own credential, not one for Bob.
	mine := c.do("POST", "/v3/credentials", aliceTok, map[string]any{"credential": map[string]any{
		"type": "cert", "user_id": alice, "blob": "alice's", "project_id": aliceProj}}).want(http.StatusCreated).str("credential.id")
	c.do("POST", "/v3/credentials", aliceTok, map[string]any{"credential": map[string]any{
		"type": "cert", "user_id": bob, "blob": "forged"}}).want(http.StatusForbidden)
	bobs := c.do("POST", "/v3/credentials", bobTok, map[string]any{"credential": map[string]any{
		"type": "cert", "user_id": bob, "blob": "bob's"}}).want(http.StatusCreated).str("credential.id")

	// Each sees only their own.
	for _, tc := range []struct {
		tok, own, other string
	}{{aliceTok, mine, bobs}, {bobTok, bobs, mine}} {
		list := c.do("GET", "/v3/credentials", tc.tok, nil).want(http.StatusOK).list("credentials")
		if len(list) != 1 || list[0].(map[string]any)["id"] != tc.own {
			t.Fatalf("list: %v", list)
		}
		c.do("GET", "/v3/credentials/"+tc.own, tc.tok, nil).want(http.StatusOK)
		c.do("GET", "/v3/credentials/"+tc.other, tc.tok, nil).want(http.StatusForbidden)
		c.do("PATCH", "/v3/credentials/"+tc.other, tc.tok, map[string]any{"credential": map[string]any{"blob": "x"}}).want(http.StatusForbidden)
		c.do("DELETE", "/v3/credentials/"+tc.other, tc.tok, nil).want(http.StatusForbidden)
		// A missing id answers 403 too, so nothing is learnt from probing.
		c.do("GET", "/v3/credentials/doesnotexist", tc.tok, nil).want(http.StatusForbidden)
	}
	// Alice cannot give her credential to Bob.
	c.do("PATCH", "/v3/credentials/"+mine, aliceTok, map[string]any{"credential": map[string]any{"user_id": bob}}).want(http.StatusForbidden)
	// The admin sees both.
	if l := c.do("GET", "/v3/credentials", c.adminToken, nil).list("credentials"); len(l) != 2 {
		t.Fatalf("admin list: %v", l)
	}
	c.do("DELETE", "/v3/credentials/"+mine, aliceTok, nil).want(http.StatusNoContent)
}

func TestCredentialBlobsEncryptedAtRest(t *testing.T) {
	c := newTestCloud(t)
	c.do("POST", "/v3/credentials", c.adminToken, map[string]any{"credential": map[string]any{
		"type": "cert", "user_id": c.adminUser, "blob": "TOP-SECRET-BLOB"}}).want(http.StatusCreated)
	var stored string
	if err := c.svc.db.QueryRow(context.Background(), `SELECT blob FROM credentials`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, "TOP-SECRET") {
		t.Fatalf("blob stored in the clear: %q", stored)
	}
	dir := c.svc.credentialKeyDir()
	if filepath.Dir(dir) != filepath.Dir(c.svc.cfg.KeyDir) {
		t.Fatalf("key dir %s not beside %s", dir, c.svc.cfg.KeyDir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("credential keys: %v %v", entries, err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().IsRegular() && info.Mode().Perm()&0o077 != 0 {
			t.Fatalf("key file %s mode %v", e.Name(), info.Mode())
		}
	}
}

func TestCredentialsCleanedUpWithProjectAndUser(t *testing.T) {
	c := newTestCloud(t)
	user, proj, _ := c.member("carol")
	mk := func(project string) string {
		cred := map[string]any{"type": "cert", "user_id": user, "blob": "b"}
		if project != "" {
			cred["project_id"] = project
		}
		return c.do("POST", "/v3/credentials", c.adminToken, map[string]any{"credential": cred}).want(http.StatusCreated).str("credential.id")
	}
	onProject, userOnly := mk(proj), mk("")
	c.do("DELETE", "/v3/projects/"+proj, c.adminToken, nil).want(http.StatusNoContent)
	c.do("GET", "/v3/credentials/"+onProject, c.adminToken, nil).want(http.StatusNotFound)
	c.do("GET", "/v3/credentials/"+userOnly, c.adminToken, nil).want(http.StatusOK)
	c.do("DELETE", "/v3/users/"+user, c.adminToken, nil).want(http.StatusNoContent)
	c.do("GET", "/v3/credentials/"+userOnly, c.adminToken, nil).want(http.StatusNotFound)
}
