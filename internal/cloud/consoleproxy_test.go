package cloud_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// TestConsoleProxyRole: `nimbus up` runs both console proxies; a token the
// compute API stored leads through them to the console it names (here a
// fake VNC server), an unknown token is refused before the upgrade, and
// the noVNC listener serves noVNC's pages.
func TestConsoleProxyRole(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	web := t.TempDir()
	os.WriteFile(filepath.Join(web, "vnc_lite.html"), []byte("<title>noVNC</title>"), 0o644)
	cfg.Compute.Console.NoVNCDir = web
	c := start(t, cfg)
	if c.NoVNCProxyURL == "" || c.SerialProxyURL == "" {
		t.Fatalf("proxy URLs %q %q", c.NoVNCProxyURL, c.SerialProxyURL)
	}
	resp, err := http.Get(c.NoVNCProxyURL + "/vnc_lite.html")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("vnc_lite.html: %s", resp.Status)
	}

	vnc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vnc.Close()
	go func() {
		for {
			conn, err := vnc.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte("RFB 003.008\n"))
			defer conn.Close()
		}
	}()
	// A token as the compute API stores it (remote consoles need a
	// running guest, which this test has none of).
	port := vnc.Addr().(*net.TCPAddr).Port
	for _, tok := range []struct{ token, typ string }{{"vnc-token", "novnc"}, {"serial-token", "serial"}} {
		sum := sha256.Sum256([]byte(tok.token))
		if _, err := c.DB.Exec(context.Background(), `INSERT INTO compute_console_tokens (token_hash, instance_id, console_type, host, port, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			hex.EncodeToString(sum[:]), "00000000-0000-4000-8000-000000000001", tok.typ, "127.0.0.1", port, store.FormatTime(time.Now().Add(time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		base, token string
		status      int
	}{
		{c.NoVNCProxyURL, "vnc-token", 101},
		{c.SerialProxyURL, "serial-token", 101},
		{c.NoVNCProxyURL, "serial-token", 401},
		{c.SerialProxyURL, "nope", 401},
	} {
		status, first := wsFirstMessage(t, tc.base+"/?token="+tc.token)
		if status != tc.status || (status == 101 && first != "RFB 003.008\n") {
			t.Errorf("%s with %s: %d %q, want %d", tc.base, tc.token, status, first, tc.status)
		}
	}
}

// wsFirstMessage opens a websocket and returns the handshake's status and,
// after a 101, the payload of the first (small, unfragmented) frame.
func wsFirstMessage(t *testing.T, rawURL string) (int, string) {
	t.Helper()
	u, _ := url.Parse(rawURL)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET "+u.RequestURI()+" HTTP/1.1\r\nHost: "+u.Host+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatalf("first frame: %v", err)
	}
	payload := make([]byte, hdr[1]&0x7f)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatalf("first frame: %v", err)
	}
	return resp.StatusCode, string(payload)
}
