package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawRequest sends path byte for byte, bypassing any client-side cleaning.
func rawRequest(t *testing.T, base, method, path string, hdr map[string]string, body string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n", method, path, len(body))
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n" + body)
	io.WriteString(conn, b.String())
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %q: %v", method, path, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestPathTraversal throws crafted names at all three servers and then
// proves nothing was written outside the device directory.
func TestPathTraversal(t *testing.T) {
	n := newNode(t)
	outside := t.TempDir()
	// A device that is a symlink to elsewhere must be refused.
	if err := os.Symlink(outside, filepath.Join(n.root, "evil")); err != nil {
		t.Fatal(err)
	}
	h := func() map[string]string { return map[string]string{"X-Timestamp": n.ts(), "Content-Type": "x/y"} }
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/../0/a/c/o", 400},
		{"/%2e%2e/0/a/c/o", 400},
		{"/sda/../a/c/o", 400},
		{"/sda/%2e%2e/a/c/o", 400},
		{"/sda%2f..%2f../0/a/c/o", 400},
		{"//etc/0/a/c/o", 400},
		{"/sda/-1/a/c/o", 400},
		{"/sda/99999999999/a/c/o", 400},
		{"/sda%00/0/a/c/o", 400},
		{"/evil/0/a/c/o", 507},
		{"/nodev/0/a/c/o", 507},
		{"/sda/0/a%00/c/o", 412},
		{"/sda/0/a/c%ff/o", 412},
		{"/sda/0/a/c/o%00", 412},
		{"/sda/0/a/c/" + strings.Repeat("o", 1025), 400},
		{"/sda/0/a/" + strings.Repeat("c", 257) + "/o", 400},
		{"/sda/0/" + strings.Repeat("a", 257) + "/c/o", 400},
		{"/sda/0/a//o", 400},
		{"/sda/0/a/c", 400},
		{"/sda/0/a/c/", 400},
		// Names made of dots are legal Swift names: they are hashed, never
		// used as path components, and land inside the device.
		{"/sda/0/../../../etc/passwd", 201},
		{"/sda/0/%2e%2e/%2e%2e/%2e%2e%2f%2e%2e%2fescape", 201},
		{"/sda/0/a/c//etc/passwd", 201},
		{"/sda/0%2f..%2f../a/c/o", 201}, // partition 0, account "..", container "..", object "a/c/o"
	} {
		if got := rawRequest(t, n.objURL, "PUT", tc.path, h(), "data"); got != tc.want {
			t.Errorf("object PUT %q: %d, want %d", tc.path, got, tc.want)
		}
	}
	for _, tc := range []struct {
		base, method, path string
		want               int
	}{
		{n.contURL, "PUT", "/sda/1/a/c/with/slash", 404}, // an object row, container missing
		{n.contURL, "PUT", "/sda/1/..", 400},
		{n.contURL, "PUT", "/sda/1/a/c%00", 412},
		{n.contURL, "PUT", "/../1/a/c", 400},
		{n.contURL, "PUT", "/sda/1/%2e%2e/%2e%2e", 201},
		{n.acctURL, "PUT", "/sda/2/a/c/o", 400},
		{n.acctURL, "PUT", "/sda/2/" + strings.Repeat("a", 257), 400},
		{n.acctURL, "PUT", "/sda/2/%ff", 412},
		{n.acctURL, "PUT", "/sda/2/%2e%2e", 201},
		{n.acctURL, "PUT", "/evil/2/a", 507},
	} {
		if got := rawRequest(t, tc.base, tc.method, tc.path, map[string]string{"X-Timestamp": n.ts(), "X-Size": "1", "X-Content-Type": "x"}, ""); got != tc.want {
			t.Errorf("%s %s %q: %d, want %d", tc.base, tc.method, tc.path, got, tc.want)
		}
	}
	// Nothing outside the device: the symlink target is empty and every
	// file under the root is under root/sda.
	if ents := listDir(t, outside); len(ents) != 0 {
		t.Fatalf("files escaped to %s: %v", outside, ents)
	}
	filepath.WalkDir(n.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == n.root || p == filepath.Join(n.root, "evil") {
			return nil
		}
		if !strings.HasPrefix(p, n.dev) {
			t.Errorf("file outside the device: %s", p)
		}
		return nil
	})
	// The dotted names were stored, under their hashes.
	g := do(t, "GET", n.objURL+"/sda/0/../../../etc/passwd", nil, "")
	expectStatus(t, g, 200, "get dotted name")
	if _, err := os.Stat(n.objDir("0", "..", "..", "../etc/passwd")); err != nil {
		t.Fatal(err)
	}
}

// FuzzParsePath checks that whatever the path, an accepted request maps to
// directories strictly inside root/<device>, and accepted names meet the
// constraints.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/sda/0/a/c/o", "/sda/0/../../..", "/../0/a/c/o", "/sda/0/a/c/../../../x", "//0/a/c/o",
		"/sda/0/a\x00/c/o", "/sda/0/a/c\xff/o", "/sda/1/a/c", "/sda/2/a", "/sda/0/a/c/o/p/q",
		"/./0/a/c/o", "/sda/00/a/c/o", "/sda/0//c/o", "/sda\\..\\/0/a/c/o",
	} {
		f.Add(s)
	}
	root := "/srv/node"
	f.Fuzz(func(t *testing.T, p string) {
		for _, mm := range [][2]int{{3, 3}, {2, 3}, {1, 2}} {
			rp, err := parsePath(p, mm[0], mm[1])
			if err != nil {
				continue
			}
			dev := filepath.Join(root, rp.Device)
			if filepath.Dir(dev) != root || filepath.Base(dev) != rp.Device {
				t.Fatalf("%q: device %q escapes the root", p, rp.Device)
			}
			for _, name := range []string{rp.Account, rp.Container, rp.Object} {
				if strings.IndexByte(name, 0) >= 0 || !isValidUTF8(name) {
					t.Fatalf("%q: bad name %q accepted", p, name)
				}
			}
			if rp.Account == "" || len(rp.Account) > MaxAccountNameLength || len(rp.Container) > MaxContainerNameLength ||
				len(rp.Object) > MaxObjectNameLength || strings.Contains(rp.Container, "/") {
				t.Fatalf("%q: constraint violated: %+v", p, rp)
			}
			h := hashPath("p", "s", rp.Account, rp.Container, rp.Object)
			for _, datadir := range []string{objectsDir, containersDir, accountsDir} {
				d := hashDir(dev, datadir, rp.Partition, h)
				if filepath.Clean(d) != d || !strings.HasPrefix(d, dev+"/"+datadir+"/") || strings.Count(d[len(dev):], "/") != 4 {
					t.Fatalf("%q: %s is not a hash dir inside %s", p, d, dev)
				}
			}
		}
	})
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
