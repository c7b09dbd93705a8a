package consoleproxy

// The server side of RFC 6455, only as much as a byte pipe needs: the
// opening handshake, reading masked client frames (fragments and control
// frames included), writing unmasked binary frames and the closing
// handshake. No extensions are negotiated, so every RSV bit must be zero.

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Frame opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close status codes (RFC 6455 section 7.4.1).
const (
	closeNormal        = 1000
	closeGoingAway     = 1001
	closeProtocolError = 1002
	closeTooBig        = 1009
)

// maxFramePayload bounds one client frame held in memory. RFB and serial
// input are keystrokes and pointer moves; only a pasted clipboard is
// large, and 4 MiB is far more than noVNC sends.
const maxFramePayload = 4 << 20

// wsGUID is the fixed key suffix of the accept hash (section 1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// frame is one websocket frame with its payload unmasked.
type frame struct {
	fin     bool
	opcode  byte
	payload []byte
}

// closeError is a violation by the peer that ends the connection with a
// close frame carrying code.
type closeError struct {
	code   uint16
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("websocket: %s (close %d)", e.reason, e.code)
}

func protocolError(format string, args ...any) error {
	return &closeError{code: closeProtocolError, reason: fmt.Sprintf(format, args...)}
}

// readFrame reads one frame sent by a client. Clients must mask every
// frame (section 5.1); control frames must be whole and at most 125
// bytes (section 5.5). A payload over limit is refused before it is
// read, so a peer cannot make the proxy buffer gigabytes.
func readFrame(r io.Reader, limit int) (frame, error) {
	var hdr [14]byte
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		return frame{}, err
	}
	f := frame{fin: hdr[0]&0x80 != 0, opcode: hdr[0] & 0x0f}
	if hdr[0]&0x70 != 0 {
		return frame{}, protocolError("reserved bits set without an extension")
	}
	switch f.opcode {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return frame{}, protocolError("reserved opcode %#x", f.opcode)
	}
	if hdr[1]&0x80 == 0 {
		return frame{}, protocolError("unmasked client frame")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, hdr[2:4]); err != nil {
			return frame{}, unexpectedEOF(err)
		}
		n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
	case 127:
		if _, err := io.ReadFull(r, hdr[2:10]); err != nil {
			return frame{}, unexpectedEOF(err)
		}
		n = binary.BigEndian.Uint64(hdr[2:10])
		if n>>63 != 0 {
			return frame{}, protocolError("payload length has its most significant bit set")
		}
	}
	if f.opcode >= opClose && (n > 125 || !f.fin) {
		return frame{}, protocolError("fragmented or oversized control frame")
	}
	if n > uint64(limit) {
		return frame{}, &closeError{code: closeTooBig, reason: fmt.Sprintf("frame of %d bytes exceeds %d", n, limit)}
	}
	var key [4]byte
	if _, err := io.ReadFull(r, key[:]); err != nil {
		return frame{}, unexpectedEOF(err)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, unexpectedEOF(err)
	}
	mask(f.payload, key)
	return f, nil
}

// unexpectedEOF reports a connection that ended inside a frame as
// io.ErrUnexpectedEOF rather than a clean io.EOF.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// mask applies (and, being XOR, removes) a masking key.
func mask(b []byte, key [4]byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// appendFrame appends a frame with FIN set, masked with key when masked
// is true (clients mask, servers do not).
func appendFrame(dst []byte, opcode byte, payload []byte, masked bool, key [4]byte) []byte {
	dst = append(dst, 0x80|opcode)
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, m|byte(n))
	case n <= 0xffff:
		dst = append(dst, m|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, m|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if masked {
		dst = append(dst, key[:]...)
		start := len(dst)
		dst = append(dst, payload...)
		mask(dst[start:], key)
		return dst
	}
	return append(dst, payload...)
}

// acceptKey is Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// isUpgrade tells a websocket opening handshake from a plain request (a
// browser fetching noVNC's pages).
func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// headerHasToken reports whether a comma-separated header lists token,
// ignoring case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// handshakeError is an opening handshake the server refuses with status.
type handshakeError struct {
	status int
	msg    string
}

func (e *handshakeError) Error() string { return e.msg }

// checkHandshake validates the client's opening handshake (section
// 4.2.1) before anything else is done for it; nil when it is valid.
func checkHandshake(r *http.Request) *handshakeError {
	if r.Method != http.MethodGet {
		return &handshakeError{http.StatusMethodNotAllowed, "websocket handshake must be a GET"}
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return &handshakeError{http.StatusUpgradeRequired, "unsupported websocket version (13 is)"}
	}
	if k, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key")); err != nil || len(k) != 16 {
		return &handshakeError{http.StatusBadRequest, "invalid Sec-WebSocket-Key"}
	}
	return nil
}

// selectProtocol picks the subprotocol: "binary", which noVNC (and
// websockify's other clients) offer, or none. Like websockify, the proxy
// only speaks binary frames; a client that offers only base64 gets no
// protocol and its browser gives up.
func selectProtocol(r *http.Request) string {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if strings.TrimSpace(p) == "binary" {
				return "binary"
			}
		}
	}
	return ""
}

// wsConn is an accepted websocket connection.
type wsConn struct {
	conn net.Conn
	br   *bufio.Reader // reads conn; may hold bytes sent with the handshake

	wmu       sync.Mutex // guards writes to conn and closeSent
	closeSent bool
}

// upgrade completes a handshake that passed checkHandshake: it takes the
// connection over from net/http and answers 101 with protocol.
func upgrade(w http.ResponseWriter, r *http.Request, protocol string) (*wsConn, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, errors.New("websocket: connection cannot be taken over")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("websocket: take over connection: %w", err)
	}
	// net/http may have left its header read deadline on the connection.
	conn.SetDeadline(time.Time{})
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n"
	if protocol != "" {
		resp += "Sec-WebSocket-Protocol: " + protocol + "\r\n"
	}
	if _, err := io.WriteString(conn, resp+"\r\n"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket: handshake: %w", err)
	}
	return &wsConn{conn: conn, br: brw.Reader}, nil
}

// writeFrame sends one unmasked frame; it is safe for concurrent use.
// Nothing is sent after a close frame (section 5.5.1).
func (c *wsConn) writeFrame(opcode byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if opcode == opClose {
		c.closeSent = true
	}
	_, err := c.conn.Write(appendFrame(make([]byte, 0, len(payload)+10), opcode, payload, false, [4]byte{}))
	return err
}

// sendClose starts (or answers) the closing handshake; later calls do
// nothing.
func (c *wsConn) sendClose(code uint16, reason string) {
	p := binary.BigEndian.AppendUint16(nil, code)
	if len(reason) > 123 {
		reason = reason[:123]
	}
	_ = c.writeFrame(opClose, append(p, reason...))
}

// Write sends p as one binary frame, so io.Copy can feed the websocket.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.writeFrame(opBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// errPeerClosed ends copyTo when the client sent a close frame.
var errPeerClosed = errors.New("websocket: closed by peer")

// copyTo writes the payload of every data frame the client sends to dst
// until the client closes, breaks the protocol or the connection fails.
// Text and binary frames alike are console input: the pipe carries
// bytes. Pings are answered; a close is answered with the same code.
func (c *wsConn) copyTo(dst io.Writer) error {
	inMessage := false // a fragmented message awaits continuation frames
	for {
		f, err := readFrame(c.br, maxFramePayload)
		if err != nil {
			if ce, ok := errors.AsType[*closeError](err); ok {
				c.sendClose(ce.code, ce.reason)
			}
			return err
		}
		switch f.opcode {
		case opPing:
			if err := c.writeFrame(opPong, f.payload); err != nil && !errors.Is(err, net.ErrClosed) {
				return err
			}
		case opPong: // unsolicited pongs are allowed and mean nothing
		case opClose:
			code, err := closeCode(f.payload)
			if err != nil {
				c.sendClose(closeProtocolError, err.Error())
				return err
			}
			c.sendClose(code, "")
			return errPeerClosed
		case opText, opBinary, opContinuation:
			if (f.opcode == opContinuation) != inMessage {
				err := protocolError("frame opcode %#x out of sequence", f.opcode)
				c.sendClose(closeProtocolError, err.Error())
				return err
			}
			inMessage = !f.fin
			if _, err := dst.Write(f.payload); err != nil {
				return err
			}
		}
	}
}

// closeCode is the status of a received close frame, the code to echo:
// normal closure when the frame has none. Codes a peer must not send are
// a protocol error (section 7.4).
func closeCode(payload []byte) (uint16, error) {
	switch {
	case len(payload) == 0:
		return closeNormal, nil
	case len(payload) == 1:
		return 0, protocolError("close frame with a one-byte payload")
	}
	code := binary.BigEndian.Uint16(payload)
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return code, nil
	}
	return 0, protocolError("invalid close code %d", code)
}
