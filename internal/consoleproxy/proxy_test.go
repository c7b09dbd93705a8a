package consoleproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/bus"
)

const rfbBanner = "RFB 003.008\n"

// fakeVNC is a TCP endpoint standing in for a guest's VNC server: it sends
// the RFB banner to each connection and hands the connection to the test.
func fakeVNC(t *testing.T) (addr *net.TCPAddr, conns <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(rfbBanner))
			ch <- c
		}
	}()
	return ln.Addr().(*net.TCPAddr), ch
}

// testProxy serves a proxy of typ whose tokens are in tokens.
func testProxy(t *testing.T, ctx context.Context, typ string, tokens map[string]Target, mod func(*Config)) *httptest.Server {
	t.Helper()
	cfg := Config{
		Type: typ,
		Resolver: ResolverFunc(func(_ context.Context, token string) (Target, error) {
			if token == "broken" {
				return Target{}, errors.New("database is down")
			}
			if tg, ok := tokens[token]; ok {
				return tg, nil
			}
			return Target{}, ErrInvalidToken
		}),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

func target(typ string, addr *net.TCPAddr) Target {
	return Target{InstanceID: "i-1", Type: typ, Host: addr.IP.String(), Port: addr.Port}
}

func accept(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy never connected to the target")
		return nil
	}
}

func TestAcceptKey(t *testing.T) {
	// The example of RFC 6455 section 1.3.
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("acceptKey = %q", got)
	}
}

// TestPipeBothWays: noVNC's handshake (binary subprotocol, token in the
// query) gets the banner from the target, and what the client sends in
// any framing (fragments with a ping between them, text or binary)
// reaches the target as the bytes they carry.
func TestPipeBothWays(t *testing.T) {
	addr, conns := fakeVNC(t)
	srv := testProxy(t, context.Background(), "novnc", map[string]Target{"tok": target("novnc", addr)}, nil)
	c, resp := dialWS(t, srv.URL+"/?token=tok", http.Header{"Sec-Websocket-Protocol": {"binary, base64"}})
	if c == nil {
		t.Fatalf("handshake: %s", resp.Status)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "binary" {
		t.Fatalf("subprotocol %q, want binary", p)
	}
	vnc := accept(t, conns)
	if got := c.readData(len(rfbBanner)); string(got) != rfbBanner {
		t.Fatalf("banner %q", got)
	}

	c.send(opBinary, []byte(rfbBanner), true)
	c.send(opText, []byte("frag"), false)
	c.send(opPing, []byte("are you there"), true)
	c.send(opContinuation, []byte("ment"), false)
	c.send(opContinuation, nil, false)
	c.send(opContinuation, []byte("ed"), true)
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 64-bit length form
	c.send(opBinary, big, true)
	want := rfbBanner + "fragmented" + string(big)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(vnc, got); err != nil || string(got) != want {
		t.Fatalf("target got %d bytes (%v), want %d", len(got), err, len(want))
	}
	if f := c.read(); f.opcode != opPong || string(f.payload) != "are you there" {
		t.Fatalf("answer to ping: %#x %q", f.opcode, f.payload)
	}

	// Bytes from the target arrive as binary frames.
	mid := bytes.Repeat([]byte{0xff, 0x00}, 200) // 16-bit length form
	vnc.Write(mid)
	if got := c.readData(len(mid)); !bytes.Equal(got, mid) {
		t.Fatalf("client got %x", got)
	}
}

// TestSubprotocol: a client that offers no subprotocol gets none (serial
// clients), and binary is chosen among several offers.
func TestSubprotocol(t *testing.T) {
	addr, _ := fakeVNC(t)
	srv := testProxy(t, context.Background(), "serial", map[string]Target{"tok": target("serial", addr)}, nil)
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{nil, ""},
		{[]string{"base64"}, ""},
		{[]string{"chat", "binary"}, "binary"},
	} {
		h := http.Header{}
		if tc.offer != nil {
			h["Sec-Websocket-Protocol"] = tc.offer
		}
		c, resp := dialWS(t, srv.URL+"/?token=tok", h)
		if c == nil {
			t.Fatalf("offer %v: %s", tc.offer, resp.Status)
		}
		if _, ok := resp.Header["Sec-Websocket-Protocol"]; got(resp) != tc.want || (tc.want == "" && ok) {
			t.Errorf("offer %v: protocol %q, want %q", tc.offer, got(resp), tc.want)
		}
		c.conn.Close()
	}
}

func got(resp *http.Response) string { return resp.Header.Get("Sec-WebSocket-Protocol") }

// TestTokenForms: the token is found in the query, in noVNC's path
// parameter and in a cookie; anything else is refused before the
// upgrade, as is a token for another console type.
func TestTokenForms(t *testing.T) {
	addr, _ := fakeVNC(t)
	tokens := map[string]Target{"tok": target("novnc", addr), "serial-tok": target("serial", addr),
		"gone": {Type: "novnc", Host: "127.0.0.1", Port: closedPort(t)}}
	srv := testProxy(t, context.Background(), "novnc", tokens, nil)
	for _, tc := range []struct {
		name   string
		path   string
		hdr    http.Header
		status int
	}{
		{"query", "/?token=tok", nil, 101},
		{"websockify path", "/websockify?token=tok", nil, 101},
		{"noVNC path parameter", "/?path=%3Ftoken%3Dtok", nil, 101},
		{"cookie", "/", http.Header{"Cookie": {"other=1; token=tok"}}, 101},
		{"no token", "/", nil, 401},
		{"unknown token", "/?token=nope", nil, 401},
		{"cookie with unknown token", "/", http.Header{"Cookie": {"token=nope"}}, 401},
		{"token of another console type", "/?token=serial-tok", nil, 401},
		{"token lookup failing", "/?token=broken", nil, 503},
		{"console not listening", "/?token=gone", nil, 502},
	} {
		c, resp := dialWS(t, srv.URL+tc.path, tc.hdr)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.status)
		}
		if c != nil {
			c.conn.Close()
		}
	}
}

// closedPort is a localhost port nothing listens on.
func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// TestOrigin: browsers' cross-origin websockets are refused, as Nova
// refuses them; same-origin, allowed origins and non-browser clients (no
// Origin) are let through.
func TestOrigin(t *testing.T) {
	addr, _ := fakeVNC(t)
	srv := testProxy(t, context.Background(), "novnc", map[string]Target{"tok": target("novnc", addr)},
		func(c *Config) { c.AllowedOrigins = []string{"console.example.com"} })
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		origin, forwarded string
		status            int
	}{
		{"", "", 101},
		{"http://127.0.0.1:" + strconv.Itoa(port), "", 101},
		{"http://127.0.0.1", "", 101},
		{"ws://127.0.0.1:" + strconv.Itoa(port), "", 101},
		{"https://console.example.com", "http", 101},
		{"http://console.example.com", "", 101},
		{"http://evil.example.com", "", 403},
		{"https://127.0.0.1:" + strconv.Itoa(port), "", 403},
		{"http://127.0.0.1", "https", 403},
		{"null", "", 403},
		{"127.0.0.1", "", 403},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		if tc.forwarded != "" {
			h.Set("X-Forwarded-Proto", tc.forwarded)
		}
		c, resp := dialWS(t, srv.URL+"/?token=tok", h)
		if resp.StatusCode != tc.status {
			t.Errorf("origin %q (forwarded %q): %s, want %d", tc.origin, tc.forwarded, resp.Status, tc.status)
		}
		if c != nil {
			c.conn.Close()
		}
	}
}

func TestBadHandshakes(t *testing.T) {
	srv := testProxy(t, context.Background(), "novnc", nil, nil)
	for _, tc := range []struct {
		name   string
		hdr    http.Header
		status int
	}{
		{"old version", http.Header{"Sec-Websocket-Version": {"8"}}, 426},
		{"bad key", http.Header{"Sec-Websocket-Key": {"c2hvcnQ="}}, 400},
	} {
		_, resp := dialWS(t, srv.URL+"/?token=x", tc.hdr)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.status)
		}
		if tc.status == 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("426 without Sec-WebSocket-Version: 13")
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/?token=x", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST handshake: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestClose: the closing handshake in both directions, and protocol
// violations answered with a 1002 close.
func TestClose(t *testing.T) {
	addr, conns := fakeVNC(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := testProxy(t, ctx, "novnc", map[string]Target{"tok": target("novnc", addr)}, nil)
	open := func() (*wsClient, net.Conn) {
		c, resp := dialWS(t, srv.URL+"/?token=tok", nil)
		if c == nil {
			t.Fatalf("handshake: %s", resp.Status)
		}
		vnc := accept(t, conns)
		c.readData(len(rfbBanner))
		return c, vnc
	}

	// The client closes: its code is echoed, the target sees EOF.
	c, vnc := open()
	c.send(opClose, binary.BigEndian.AppendUint16(nil, 4001), true)
	if code := c.readClose(); code != 4001 {
		t.Errorf("close echoed with %d, want 4001", code)
	}
	if n, err := vnc.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("target read after client close: %d, %v; want EOF", n, err)
	}

	// The target goes away: the client gets a normal closure.
	c, vnc = open()
	vnc.Close()
	if code := c.readClose(); code != closeNormal {
		t.Errorf("close after target EOF: %d", code)
	}
	c.send(opClose, binary.BigEndian.AppendUint16(nil, closeNormal), true)

	// Violations end the session with 1002 (or 1009 when too big).
	for _, tc := range []struct {
		name string
		raw  []byte
		code uint16
	}{
		{"unmasked frame", []byte{0x82, 0x01, 'x'}, closeProtocolError},
		{"reserved bit", []byte{0xc2, 0x80, 0, 0, 0, 0}, closeProtocolError},
		{"reserved opcode", []byte{0x83, 0x80, 0, 0, 0, 0}, closeProtocolError},
		{"continuation without a start", []byte{0x80, 0x80, 0, 0, 0, 0}, closeProtocolError},
		{"fragmented ping", []byte{0x09, 0x80, 0, 0, 0, 0}, closeProtocolError},
		{"invalid close code", []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed}, closeProtocolError},
		{"one-byte close", []byte{0x88, 0x81, 0, 0, 0, 0, 0x03}, closeProtocolError},
		{"too big", []byte{0x82, 0xff, 0, 0, 0, 0, 0x7f, 0, 0, 0}, closeTooBig},
	} {
		c, _ := open()
		c.sendRaw(tc.raw)
		if code := c.readClose(); code != tc.code {
			t.Errorf("%s: close %d, want %d", tc.name, code, tc.code)
		}
	}
	// A new message while a fragmented one is open is a violation too.
	c, _ = open()
	c.send(opBinary, []byte("a"), false)
	c.send(opBinary, []byte("b"), true)
	if code := c.readClose(); code != closeProtocolError {
		t.Errorf("interleaved messages: close %d", code)
	}

	// Stopping the proxy ends sessions with "going away".
	c, _ = open()
	cancel()
	if code := c.readClose(); code != closeGoingAway {
		t.Errorf("close on proxy stop: %d", code)
	}
}

// TestStaticFiles: plain requests get noVNC's files from WebDir, or a 404
// that says what to install.
func TestStaticFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vnc_lite.html"), []byte("<title>noVNC</title>"), 0o644)
	srv := testProxy(t, context.Background(), "novnc", nil, func(c *Config) { c.WebDir = dir })
	resp, err := http.Get(srv.URL + "/vnc_lite.html?path=%3Ftoken%3Dx")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "noVNC") {
		t.Fatalf("vnc_lite.html: %s %q", resp.Status, body)
	}
	missing := testProxy(t, context.Background(), "novnc", nil, func(c *Config) { c.WebDir = filepath.Join(dir, "none") })
	resp, err = http.Get(missing.URL + "/vnc_lite.html")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "novnc") {
		t.Fatalf("without noVNC: %s %q", resp.Status, body)
	}
}

// TestBusResolver: a proxy in another process redeems tokens through the
// compute API's ServeTokens, invalid ones included.
func TestBusResolver(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := bus.StartServer(bus.ServerConfig{Port: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	b, err := bus.Connect(context.Background(), bus.Config{Server: srv, Name: "consoleproxy-test", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	r := BusResolver{Bus: b}
	if _, err := r.Resolve(ctx, "tok"); err == nil || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("resolve with no compute API: %v, want a failure that is not an invalid token", err)
	}
	want := Target{InstanceID: "i-1", Type: "serial", Host: "127.0.0.1", Port: 10001}
	if _, err := ServeTokens(b, ResolverFunc(func(_ context.Context, token string) (Target, error) {
		if token == "tok" {
			return want, nil
		}
		return Target{}, ErrInvalidToken
	})); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Resolve(ctx, "tok"); err != nil || got != want {
		t.Fatalf("resolve: %+v, %v", got, err)
	}
	if _, err := r.Resolve(ctx, "nope"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("resolve unknown token: %v", err)
	}
}
