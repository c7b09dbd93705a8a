package computeagent

import (
	"errors"
	"net"
	"testing"
)

func TestHostIP(t *testing.T) {
	ipnet := func(s string) net.Addr {
		ip, n, _ := net.ParseCIDR(s)
		n.IP = ip
		return n
	}
	cases := []struct {
		addrs []net.Addr
		err   error
		want  string
	}{
		{[]net.Addr{ipnet("127.0.0.1/8"), ipnet("fe80::1/64"), ipnet("2001:db8::5/64"), ipnet("10.1.2.3/24")}, nil, "10.1.2.3"},
		{[]net.Addr{ipnet("127.0.0.1/8"), ipnet("2001:db8::5/64")}, nil, "2001:db8::5"},
		{[]net.Addr{ipnet("127.0.0.1/8")}, nil, "127.0.0.1"},
		{nil, errors.New("no"), "127.0.0.1"},
	}
	for _, c := range cases {
		if got := hostIP(func() ([]net.Addr, error) { return c.addrs, c.err }); got != c.want {
			t.Errorf("hostIP(%v) = %q, want %q", c.addrs, got, c.want)
		}
	}
}
