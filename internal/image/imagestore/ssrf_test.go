package imagestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeResolver answers from a fixed table so that tests need no DNS.
func fakeResolver(table map[string][]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		ips, ok := table[strings.TrimSuffix(strings.ToLower(host), ".")]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []netip.Addr
		for _, ip := range ips {
			out = append(out, netip.MustParseAddr(ip))
		}
		return out, nil
	}
}

func TestSSRFGuardCheck(t *testing.T) {
	resolve := fakeResolver(map[string][]string{
		"images.example.com": {"203.0.113.10"},
		"evil.example.com":   {"127.0.0.1"},
		"mixed.example.com":  {"203.0.113.10", "10.0.0.5"},
		"v6.example.com":     {"2001:db8::1"},
		"meta.example.com":   {"169.254.169.254"},
		"trusted.internal":   {"10.1.2.3"},
	})
	strict := &SSRFGuard{Resolve: resolve}
	private := &SSRFGuard{AllowPrivate: true, Resolve: resolve}
	allowList := &SSRFGuard{Resolve: resolve, AllowedHosts: []string{"trusted.internal", "169.254.169.254", "192.168.7.0/24"}}

	tests := []struct {
		guard *SSRFGuard
		url   string
		ok    bool
	}{
		{strict, "http://images.example.com/cirros.img", true},
		{strict, "https://images.example.com:8443/cirros.img", true},
		{strict, "http://203.0.113.10/x", true},
		{strict, "http://[2001:db8::1]/x", true},
		{strict, "http://v6.example.com/x", true},

		{strict, "ftp://images.example.com/x", false},
		{strict, "file:///etc/passwd", false},
		{strict, "gopher://127.0.0.1/", false},
		{strict, "http:///nohost", false},
		{strict, "http://images.example.com:0/x", false},
		{strict, "http://images.example.com:70000/x", false},
		{strict, "http://unknown.example.com/x", false},

		{strict, "http://127.0.0.1/", false},
		{strict, "http://127.1.2.3/", false},
		{strict, "http://localhost/", false}, // not in the table: resolve fails
		{strict, "http://[::1]/", false},
		{strict, "http://[::ffff:127.0.0.1]/", false},
		{strict, "http://[::ffff:7f00:1]/", false},
		{strict, "http://[::127.0.0.1]/", false},
		{strict, "http://[64:ff9b::a00:1]/", false},
		{strict, "http://[2002:7f00:1::]/", false},
		{strict, "http://2130706433/", false},
		{strict, "http://0x7f.1/", false},
		{strict, "http://0x7f000001/", false},
		{strict, "http://0177.0.0.1/", false},
		{strict, "http://017700000001/", false},
		{strict, "http://127.1/", false},
		{strict, "http://0x7f.0.0.1.1/", false},
		{strict, "http://evil@127.0.0.1/", false},
		{strict, "http://images.example.com@127.0.0.1/", false},
		{strict, "http://evil.example.com/", false},
		{strict, "http://mixed.example.com/", false},
		{strict, "http://10.0.0.1/", false},
		{strict, "http://172.16.0.1/", false},
		{strict, "http://172.31.255.255/", false},
		{strict, "http://192.168.1.1/", false},
		{strict, "http://100.64.0.1/", false},
		{strict, "http://169.254.1.1/", false},
		{strict, "http://[fe80::1%25eth0]/", false},
		{strict, "http://[fd00::1]/", false},
		{strict, "http://0.0.0.0/", false},
		{strict, "http://0/", false},
		{strict, "http://[::]/", false},
		{strict, "http://224.0.0.1/", false},
		{strict, "http://255.255.255.255/", false},
		{strict, "http://[ff02::1]/", false},
		{strict, "http://169.254.169.254/latest/meta-data/", false},
		{strict, "http://100.100.100.200/", false},

		{private, "http://127.0.0.1/", true},
		{private, "http://10.0.0.1/", true},
		{private, "http://evil.example.com/", true},
		{private, "http://[fd00::1]/", true},
		{private, "http://169.254.1.1/", true},
		{private, "http://169.254.169.254/", false},
		{private, "http://[::ffff:169.254.169.254]/", false},
		{private, "http://0xa9fea9fe/", false},
		{private, "http://100.100.100.200/", false},
		{private, "http://[fd00:ec2::254]/", false},
		{private, "http://meta.example.com/", false},
		{private, "http://0.0.0.0/", false},
		{private, "http://224.0.0.1/", false},

		{allowList, "http://trusted.internal/x", true},
		{allowList, "http://TRUSTED.internal./x", true},
		{allowList, "http://169.254.169.254/", true},
		{allowList, "http://192.168.7.9/", true},
		{allowList, "http://192.168.8.9/", false},
		{allowList, "http://10.1.2.3/", false},
	}
	for _, tt := range tests {
		name := tt.url
		if tt.guard == private {
			name = "private " + name
		} else if tt.guard == allowList {
			name = "allowlist " + name
		}
		t.Run(name, func(t *testing.T) {
			err := tt.guard.Check(context.Background(), tt.url)
			if tt.ok && err != nil {
				t.Fatalf("Check(%q) = %v, want allowed", tt.url, err)
			}
			if !tt.ok && err == nil {
				t.Fatalf("Check(%q) allowed, want refused", tt.url)
			}
		})
	}
}

func TestSSRFGuardErrorsWrapSentinel(t *testing.T) {
	g := &SSRFGuard{}
	for _, u := range []string{"http://127.0.0.1/", "ftp://x/", "http://2130706433/", "::bad"} {
		if err := g.Check(context.Background(), u); !errors.Is(err, ErrForbiddenTarget) {
			t.Errorf("Check(%q) = %v, want ErrForbiddenTarget", u, err)
		}
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	tests := map[string]string{
		"2130706433":   "127.0.0.1",
		"0x7f.1":       "127.0.0.1",
		"0177.0.0.1":   "127.0.0.1",
		"127.1":        "127.0.0.1",
		"10.1.0x101":   "10.1.1.1",
		"0xA9FEA9FE":   "169.254.169.254",
		"1.2.3.4":      "1.2.3.4",
		"0":            "0.0.0.0",
		"4294967295":   "255.255.255.255",
		"4294967296":   "",
		"1.2.3.256":    "",
		"256.1":        "",
		"1.2.3.4.5":    "",
		"09.1.1.1":     "",
		"example.com":  "",
		"1..2":         "",
		"0x":           "0.0.0.0",
		"1.2.0x10000":  "",
		"1.0xffff":     "1.0.255.255",
		"1.2.3.0xff":   "1.2.3.255",
		"0x7f.0.0.1.1": "",
	}
	for in, want := range tests {
		got, ok := parseLegacyIPv4(in)
		if want == "" {
			if ok {
				t.Errorf("parseLegacyIPv4(%q) = %v, want invalid", in, got)
			}
			continue
		}
		if !ok || got.String() != want {
			t.Errorf("parseLegacyIPv4(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
}

// TestSSRFGuardDialRebinding resolves a name to a public address at Check
// time and to loopback at dial time: the dialer must refuse.
func TestSSRFGuardDialRebinding(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "secret")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	var calls atomic.Int32
	g := &SSRFGuard{Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
		if host != "rebind.example.com" {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		if calls.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("203.0.113.10")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}}
	u := "http://rebind.example.com:" + port + "/"
	if err := g.Check(context.Background(), u); err != nil {
		t.Fatalf("first Check: %v", err)
	}
	_, err := g.Client().Get(u)
	if !errors.Is(err, ErrForbiddenTarget) {
		t.Fatalf("Get after rebinding = %v, want ErrForbiddenTarget", err)
	}
}

func TestSSRFGuardDialAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	g := &SSRFGuard{
		AllowedHosts: []string{"mirror.test"},
		Resolve:      fakeResolver(map[string][]string{"mirror.test": {"127.0.0.1"}}),
	}
	resp, err := g.Client().Get("http://mirror.test:" + port + "/")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "hello" {
		t.Fatalf("body = %q", body)
	}

	// Without the allow-list entry the same server is refused at dial time,
	// even when the caller skipped Check.
	strict := &SSRFGuard{Resolve: g.Resolve}
	if _, err := strict.Client().Get("http://mirror.test:" + port + "/"); !errors.Is(err, ErrForbiddenTarget) {
		t.Fatalf("strict Get = %v, want ErrForbiddenTarget", err)
	}
	if _, err := strict.DialContext(context.Background(), "udp", "127.0.0.1:53"); !errors.Is(err, ErrForbiddenTarget) {
		t.Fatalf("udp dial = %v, want ErrForbiddenTarget", err)
	}
}

// TestSSRFGuardRedirect serves an allowed URL that redirects to a refused
// one; the client must not follow it.
func TestSSRFGuardRedirect(t *testing.T) {
	var secretHits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/image":
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		case "/secret":
			secretHits.Add(1)
			fmt.Fprint(w, "secret")
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	g := &SSRFGuard{
		AllowedHosts: []string{"mirror.test"},
		Resolve:      fakeResolver(map[string][]string{"mirror.test": {"127.0.0.1"}}),
	}
	for _, to := range []string{
		"http://127.0.0.1:" + port + "/secret",
		"http://2130706433:" + port + "/secret",
		"http://[::ffff:127.0.0.1]:" + port + "/secret",
		"file:///etc/passwd",
	} {
		u := "http://mirror.test:" + port + "/image?to=" + url.QueryEscape(to)
		resp, err := g.Client().Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("redirect to %s followed", to)
			continue
		}
		if !errors.Is(err, ErrForbiddenTarget) {
			t.Errorf("redirect to %s: %v, want ErrForbiddenTarget", to, err)
		}
	}
	if n := secretHits.Load(); n != 0 {
		t.Fatalf("secret endpoint hit %d times", n)
	}
}
