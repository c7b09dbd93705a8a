package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/consoleproxy"
)

// noVNCPage is the page console URLs open. Debian's novnc ships
// vnc_lite.html, which connects at once using the path parameter of the
// URL; its vnc_auto.html is the full vnc.html, which waits for a click.
const noVNCPage = "/vnc_lite.html"

// startNoVNCProxy serves the console-proxy role's noVNC listener (Nova's
// nova-novncproxy): noVNC's pages and VNC websockets.
func (c *Cloud) startNoVNCProxy(_ context.Context, ln net.Listener, _ *api.Metrics) error {
	return c.startConsoleProxy(ln, "novnc")
}

// startSerialProxy serves the console-proxy role's serial listener
// (Nova's nova-serialproxy).
func (c *Cloud) startSerialProxy(_ context.Context, ln net.Listener, _ *api.Metrics) error {
	return c.startConsoleProxy(ln, "serial")
}

func (c *Cloud) startConsoleProxy(ln net.Listener, typ string) error {
	if err := c.Config.ValidateConsole(); err != nil {
		return err
	}
	cc := c.Config.Compute.Console
	novnc, serial := c.consoleURLs()
	base, webDir := novnc, cc.NoVNCDir
	if typ == "serial" {
		base, webDir = serial, ""
	}
	scheme := "http"
	if u, err := url.Parse(base); err == nil && u.Scheme != "" {
		scheme = u.Scheme
	}
	p, err := consoleproxy.New(c.runCtx, consoleproxy.Config{
		Type: typ, Resolver: c.consoleResolver(), WebDir: webDir, Scheme: scheme,
		AllowedOrigins: cc.AllowedOrigins, Log: c.log.With("service", "console-proxy"),
	})
	if err != nil {
		return err
	}
	c.serve(ln, p)
	c.log.Info("console proxy listening", "type", typ, "addr", ln.Addr().String())
	return nil
}

// consoleURLs are the bases of the console URLs the compute API hands
// out: the configured ones, else this process's proxy listeners (empty
// when it runs no console proxy, and the API then refuses consoles).
func (c *Cloud) consoleURLs() (novnc, serial string) {
	cc := c.Config.Compute.Console
	novnc, serial = cc.NoVNCProxyBaseURL, cc.SerialProxyBaseURL
	if novnc == "" && c.NoVNCProxyURL != "" {
		novnc = c.NoVNCProxyURL + noVNCPage
	}
	if serial == "" && c.SerialProxyURL != "" {
		serial = "ws" + strings.TrimPrefix(c.SerialProxyURL, "http") + "/"
	}
	return novnc, serial
}

// consoleResolver redeems tokens with the compute API of this process
// when it runs one, else over the bus with whichever compute API process
// answers (serveConsoleTokens).
func (c *Cloud) consoleResolver() consoleproxy.Resolver {
	if c.Compute != nil {
		return computeConsoles{c.Compute}
	}
	return consoleproxy.BusResolver{Bus: c.Bus}
}

// serveConsoleTokens lets console proxies in other processes redeem the
// tokens this compute API issues.
func (c *Cloud) serveConsoleTokens(svc *compute.Service) error {
	if _, err := consoleproxy.ServeTokens(c.Bus, computeConsoles{svc}); err != nil {
		return fmt.Errorf("compute: %w", err)
	}
	return nil
}

// computeConsoles is a consoleproxy.Resolver over the compute API.
type computeConsoles struct{ svc *compute.Service }

func (r computeConsoles) Resolve(ctx context.Context, token string) (consoleproxy.Target, error) {
	id, typ, host, port, err := r.svc.ConsoleTarget(ctx, token)
	if ae, ok := errors.AsType[*api.Error](err); ok && ae.Status == http.StatusNotFound {
		return consoleproxy.Target{}, consoleproxy.ErrInvalidToken
	}
	if err != nil {
		return consoleproxy.Target{}, err
	}
	return consoleproxy.Target{InstanceID: id, Type: typ, Host: host, Port: port}, nil
}
