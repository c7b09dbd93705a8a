package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ConsoleConfig configures the console-proxy role (Nova's
// nova-novncproxy and nova-serialproxy) and the console URLs the compute
// API hands out.
type ConsoleConfig struct {
	// NoVNCProxyPort serves noVNC's pages and VNC websockets (Nova's
	// novncproxy_port, 6080); 0: any free port, for tests.
	NoVNCProxyPort int `yaml:"novncproxy_port"`
	// SerialProxyPort serves serial console websockets (Nova's
	// serialproxy_port, 6083); 0: any free port, for tests.
	SerialProxyPort int `yaml:"serialproxy_port"`
	// NoVNCProxyBaseURL is the noVNC page console URLs start with
	// (Nova's novncproxy_base_url), for a proxy elsewhere or behind a
	// load balancer; empty: vnc_lite.html on this process's proxy.
	NoVNCProxyBaseURL string `yaml:"novncproxy_base_url"`
	// SerialProxyBaseURL is the same for serial consoles (Nova's
	// [serial_console] base_url); empty: ws:// on this process's proxy.
	SerialProxyBaseURL string `yaml:"serialproxy_base_url"`
	// NoVNCDir holds noVNC's pages (Debian's novnc package).
	NoVNCDir string `yaml:"novnc_dir"`
	// AllowedOrigins are host names besides the proxy's own that browsers
	// may open consoles from (Nova's [console] allowed_origins).
	AllowedOrigins []string `yaml:"allowed_origins"`
}

func defaultConsoleConfig() ConsoleConfig {
	return ConsoleConfig{NoVNCProxyPort: 6080, SerialProxyPort: 6083, NoVNCDir: "/usr/share/novnc"}
}

// applyConsoleEnv overrides the console settings from NIMBUS_NOVNCPROXY_*,
// NIMBUS_SERIALPROXY_* and NIMBUS_CONSOLE_ALLOWED_ORIGINS.
func (c *Config) applyConsoleEnv(lookup func(string) (string, bool)) error {
	cc := &c.Compute.Console
	for k, dst := range map[string]*int{
		"NIMBUS_NOVNCPROXY_PORT":  &cc.NoVNCProxyPort,
		"NIMBUS_SERIALPROXY_PORT": &cc.SerialProxyPort,
	} {
		if v, ok := lookup(k); ok {
			p, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s=%q: not a number", k, v)
			}
			*dst = p
		}
	}
	for k, dst := range map[string]*string{
		"NIMBUS_NOVNCPROXY_BASE_URL":  &cc.NoVNCProxyBaseURL,
		"NIMBUS_SERIALPROXY_BASE_URL": &cc.SerialProxyBaseURL,
		"NIMBUS_NOVNC_DIR":            &cc.NoVNCDir,
	} {
		if v, ok := lookup(k); ok {
			*dst = v
		}
	}
	if v, ok := lookup("NIMBUS_CONSOLE_ALLOWED_ORIGINS"); ok {
		cc.AllowedOrigins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				cc.AllowedOrigins = append(cc.AllowedOrigins, o)
			}
		}
	}
	return nil
}

// ValidateConsole rejects console settings that cannot work.
func (c *Config) ValidateConsole() error {
	cc := c.Compute.Console
	for name, p := range map[string]int{"novncproxy_port": cc.NoVNCProxyPort, "serialproxy_port": cc.SerialProxyPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("config: compute.console.%s %d is not a port", name, p)
		}
	}
	for name, check := range map[string]struct {
		url     string
		schemes []string
	}{
		"novncproxy_base_url":  {cc.NoVNCProxyBaseURL, []string{"http", "https"}},
		"serialproxy_base_url": {cc.SerialProxyBaseURL, []string{"ws", "wss"}},
	} {
		if check.url == "" {
			continue
		}
		u, err := url.Parse(check.url)
		if err != nil || u.Host == "" || (u.Scheme != check.schemes[0] && u.Scheme != check.schemes[1]) {
			return fmt.Errorf("config: compute.console.%s %q is not a %s URL", name, check.url, strings.Join(check.schemes, "/"))
		}
	}
	return nil
}
