package config

import (
	"strings"
	"testing"
)

func TestConsoleEnv(t *testing.T) {
	env := map[string]string{
		"NIMBUS_NOVNCPROXY_PORT":         "0",
		"NIMBUS_SERIALPROXY_PORT":        "16083",
		"NIMBUS_NOVNCPROXY_BASE_URL":     "https://console.example.com/vnc_lite.html",
		"NIMBUS_CONSOLE_ALLOWED_ORIGINS": "a.example.com, ,b.example.com",
	}
	c := Default()
	if c.Compute.Console.NoVNCProxyPort != 6080 || c.Compute.Console.SerialProxyPort != 6083 {
		t.Fatalf("default ports %+v", c.Compute.Console)
	}
	if err := c.applyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	cc := c.Compute.Console
	if cc.NoVNCProxyPort != 0 || cc.SerialProxyPort != 16083 || cc.NoVNCProxyBaseURL != "https://console.example.com/vnc_lite.html" ||
		strings.Join(cc.AllowedOrigins, " ") != "a.example.com b.example.com" {
		t.Fatalf("console config %+v", cc)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// A serial base URL must be a websocket URL, a noVNC one a page.
	for _, bad := range []func(*ConsoleConfig){
		func(cc *ConsoleConfig) { cc.SerialProxyBaseURL = "http://h:6083/" },
		func(cc *ConsoleConfig) { cc.NoVNCProxyBaseURL = "ws://h:6080/" },
		func(cc *ConsoleConfig) { cc.NoVNCProxyPort = 70000 },
	} {
		c := Default()
		bad(&c.Compute.Console)
		if err := c.ValidateConsole(); err == nil {
			t.Errorf("accepted %+v", c.Compute.Console)
		}
	}
}
