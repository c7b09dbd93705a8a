// Package consoleproxy is Nimbus's console proxy role, what Nova's
// nova-novncproxy (:6080) and nova-serialproxy (:6083) are: a browser (or
// any websocket client) presents the one-time token the compute API put
// in a console URL, the proxy redeems it for the guest's VNC server or
// serial console on its hypervisor host and pipes bytes both ways between
// the websocket and that TCP endpoint. The noVNC proxy also serves
// noVNC's pages, so the URL the API returns opens a working console.
//
// Guests' consoles listen on their hypervisor's loopback and are never
// exposed themselves; the token, checked before the websocket upgrade, is
// what authorises a connection.
package consoleproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config configures one proxy listener.
type Config struct {
	// Type is the console type this proxy serves, "novnc" or "serial";
	// tokens issued for another type are refused.
	Type string
	// Resolver redeems tokens.
	Resolver Resolver
	// WebDir holds noVNC's pages (Debian's novnc package installs them
	// in /usr/share/novnc); plain requests are served from it. Empty or
	// missing, they get 404.
	WebDir string
	// Scheme is the scheme of the console URLs the compute API hands
	// out (http, https, ws or wss). A browser's Origin must use it or its
	// websocket twin, as Nova checks.
	Scheme string
	// AllowedOrigins are host names a browser's Origin may name besides
	// the proxy's own (Nova's [console] allowed_origins).
	AllowedOrigins []string
	// Dial connects to targets; a net.Dialer with a 5 s timeout when nil.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Log  *slog.Logger
}

// Proxy is an http.Handler that serves one console type.
type Proxy struct {
	cfg Config
	// ctx ends every console session when the proxy's owner stops.
	ctx context.Context
	log *slog.Logger
}

// closeWait bounds the closing handshake once either side has ended.
const closeWait = 2 * time.Second

// New returns a proxy whose sessions all end when ctx is done (http.Server
// Shutdown does not track connections taken over for websockets).
func New(ctx context.Context, cfg Config) (*Proxy, error) {
	if cfg.Type != "novnc" && cfg.Type != "serial" {
		return nil, fmt.Errorf("console proxy: unknown console type %q", cfg.Type)
	}
	if cfg.Resolver == nil {
		return nil, errors.New("console proxy: a token resolver is required")
	}
	if cfg.Scheme == "" {
		cfg.Scheme = "http"
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		cfg.Dial = d.DialContext
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Proxy{cfg: cfg, ctx: ctx, log: cfg.Log.With("console", cfg.Type)}, nil
}

// ServeHTTP answers websocket handshakes with a console session and other
// requests with noVNC's files. Every check (handshake, Origin, token,
// reaching the target) happens before the upgrade, so a refused client
// gets an HTTP status rather than a websocket that closes at once.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		p.serveFiles(w, r)
		return
	}
	if he := checkHandshake(r); he != nil {
		if he.status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		http.Error(w, he.msg, he.status)
		return
	}
	if err := p.checkOrigin(r); err != nil {
		p.log.Warn("console connection refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	token := tokenOf(r)
	if token == "" {
		http.Error(w, "A console token is required.", http.StatusUnauthorized)
		return
	}
	t, err := p.cfg.Resolver.Resolve(r.Context(), token)
	switch {
	case errors.Is(err, ErrInvalidToken) || (err == nil && t.Type != p.cfg.Type):
		// The token itself is a credential: never logged.
		p.log.Info("console token refused", "remote", r.RemoteAddr, "instance", t.InstanceID)
		http.Error(w, "The token is invalid or has expired.", http.StatusUnauthorized)
		return
	case err != nil:
		p.log.Error("console token lookup", "err", err)
		http.Error(w, "Console tokens cannot be checked now.", http.StatusServiceUnavailable)
		return
	}
	addr := net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	target, err := p.cfg.Dial(r.Context(), "tcp", addr)
	if err != nil {
		p.log.Warn("console target unreachable", "instance", t.InstanceID, "addr", addr, "err", err)
		http.Error(w, "The console of this server cannot be reached.", http.StatusBadGateway)
		return
	}
	ws, err := upgrade(w, r, selectProtocol(r))
	if err != nil {
		target.Close()
		p.log.Warn("console upgrade", "instance", t.InstanceID, "err", err)
		return
	}
	p.log.Info("console session", "instance", t.InstanceID, "remote", r.RemoteAddr, "target", addr)
	start := time.Now()
	p.pipe(ws, target)
	p.log.Info("console session ended", "instance", t.InstanceID, "remote", r.RemoteAddr, "duration", time.Since(start).Round(time.Millisecond))
}

// pipe copies bytes both ways until either side ends or the proxy stops,
// then finishes the closing handshake (bounded by closeWait) and closes
// both connections.
func (p *Proxy) pipe(ws *wsConn, target net.Conn) {
	done := make(chan struct{}, 2)
	go func() {
		ws.copyTo(target)
		done <- struct{}{}
	}()
	go func() {
		io.Copy(ws, target)
		// The guest's end went away (guest stopped, or the client's
		// close stopped the copy): say so with a normal closure.
		ws.sendClose(closeNormal, "target closed")
		done <- struct{}{}
	}()
	pending := 2
	select {
	case <-done:
		pending--
	case <-p.ctx.Done():
		ws.sendClose(closeGoingAway, "console proxy stopping")
	}
	target.Close()
	// Lets the client's close frame arrive, or gives up on it.
	ws.conn.SetReadDeadline(time.Now().Add(closeWait))
	for ; pending > 0; pending-- {
		<-done
	}
	ws.conn.Close()
}

// tokenOf finds the token where clients put it: ?token= (Nova's URLs and
// noVNC's websocket URL built from them), the path parameter of a noVNC
// page URL (?path=%3Ftoken%3D...) when a client passes that through, or
// a token cookie, which older noVNC pages set.
func tokenOf(r *http.Request) string {
	q := r.URL.Query()
	if t := q.Get("token"); t != "" {
		return t
	}
	if p := q.Get("path"); p != "" {
		if u, err := url.Parse(p); err == nil {
			if t := u.Query().Get("token"); t != "" {
				return t
			}
		}
	}
	if c, err := r.Cookie("token"); err == nil {
		return c.Value
	}
	return ""
}

// checkOrigin refuses cross-origin websockets as Nova's proxy does: a
// browser's Origin must name the host the client connected to (or an
// allowed origin) with the scheme of the console URLs. A request without
// Origin comes from no browser and is let through; the token still
// applies.
func (p *Proxy) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Hostname() == "" || u.Scheme == "" {
		return errors.New("origin header not valid")
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !strings.EqualFold(u.Hostname(), host) && !slices.ContainsFunc(p.cfg.AllowedOrigins, func(a string) bool { return strings.EqualFold(a, u.Hostname()) }) {
		return errors.New("origin header does not match this host")
	}
	scheme := u.Scheme
	// Behind a TLS-terminating load balancer, the scheme the browser
	// used is the forwarded one.
	if fp := r.Header.Get("X-Forwarded-Proto"); fp != "" {
		scheme = fp
	}
	if !slices.Contains(schemeFamily(p.cfg.Scheme), strings.ToLower(scheme)) {
		return errors.New("origin header protocol does not match this host")
	}
	return nil
}

// schemeFamily is a URL scheme with its websocket (or HTTP) twin.
func schemeFamily(s string) []string {
	switch strings.ToLower(s) {
	case "https", "wss":
		return []string{"https", "wss"}
	}
	return []string{"http", "ws"}
}

// serveFiles serves noVNC's pages and scripts from WebDir.
func (p *Proxy) serveFiles(w http.ResponseWriter, r *http.Request) {
	if p.cfg.WebDir == "" {
		http.Error(w, "This is a console proxy: connect with a websocket and a console token.", http.StatusNotFound)
		return
	}
	if _, err := os.Stat(p.cfg.WebDir); err != nil {
		http.Error(w, "noVNC is not installed on the console proxy host (Debian package novnc).", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
		return
	}
	http.FileServer(http.Dir(p.cfg.WebDir)).ServeHTTP(w, r)
}
