package consoleproxy

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// wsClient is a minimal websocket client for the tests: it sends masked
// frames (optionally fragmented or malformed) and reads the server's.
type wsClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// dialWS performs the opening handshake with the headers in hdr (which
// may override the standard ones). It returns the response; the client is
// nil unless the server answered 101 with the right accept hash.
func dialWS(t testing.TB, rawURL string, hdr http.Header) (*wsClient, *http.Response) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var raw [16]byte
	rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	req, _ := http.NewRequest(http.MethodGet, "http://"+u.Host+u.RequestURI(), nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		io.Copy(io.Discard, resp.Body)
		conn.Close()
		return nil, resp
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != acceptKey(req.Header.Get("Sec-WebSocket-Key")) {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	c := &wsClient{t: t, conn: conn, br: br, resp: resp}
	t.Cleanup(func() { conn.Close() })
	return c, resp
}

// send writes one masked frame; fin false leaves a message open.
func (c *wsClient) send(opcode byte, payload []byte, fin bool) {
	c.t.Helper()
	var key [4]byte
	rand.Read(key[:])
	b := appendFrame(nil, opcode, payload, true, key)
	if !fin {
		b[0] &^= 0x80
	}
	c.sendRaw(b)
}

func (c *wsClient) sendRaw(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read returns the next server frame, which must be unmasked and whole.
func (c *wsClient) read() frame {
	c.t.Helper()
	f, err := c.tryRead()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

func (c *wsClient) tryRead() (frame, error) {
	var hdr [10]byte
	if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
		return frame{}, err
	}
	if hdr[0]&0x80 == 0 || hdr[1]&0x80 != 0 {
		return frame{}, fmt.Errorf("server frame %x: want FIN set and no mask", hdr[:2])
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		io.ReadFull(c.br, hdr[2:4])
		n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
	case 127:
		io.ReadFull(c.br, hdr[2:10])
		n = binary.BigEndian.Uint64(hdr[2:10])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return frame{}, err
	}
	return frame{fin: true, opcode: hdr[0] & 0x0f, payload: p}, nil
}

// readData reads binary frames until it has n bytes of console data.
func (c *wsClient) readData(n int) []byte {
	c.t.Helper()
	var out []byte
	for len(out) < n {
		f := c.read()
		if f.opcode != opBinary {
			c.t.Fatalf("frame opcode %#x (%q) after %q, want binary", f.opcode, f.payload, out)
		}
		out = append(out, f.payload...)
	}
	return out
}

// readClose reads frames until a close frame and returns its code.
func (c *wsClient) readClose() uint16 {
	c.t.Helper()
	for {
		f := c.read()
		if f.opcode == opClose {
			if len(f.payload) < 2 {
				return 0
			}
			return binary.BigEndian.Uint16(f.payload)
		}
	}
}
