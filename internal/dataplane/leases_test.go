package dataplane

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// TestStaleLeases: an IPv4 lease is stale when its address now belongs to
// another MAC or to no port; the client id is kept for dhcp_release;
// IPv6 leases and the duid line are left alone; dropping matches by
// address and MAC, so a lease whose expiry moved since is still dropped.
func TestStaleLeases(t *testing.T) {
	file := filepath.Join(t.TempDir(), "leases")
	content := "1700000000 fa:16:3e:00:00:01 10.0.0.3 vm1 01:fa:16:3e:00:00:01\n" +
		"1700000000 fa:16:3e:00:00:02 10.0.0.4 vm2 *\n" +
		"1700000000 fa:16:3e:00:00:03 10.0.0.5 * *\n" +
		"duid 00:01:00:01:2c:00:00:00:02:00:00:00:00:01\n" +
		"1700000000 1234 fd00::5 * 00:01:00:01\n"
	if err := os.WriteFile(file, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	owner := map[netip.Addr]string{
		addr("10.0.0.3"): "fa:16:3e:00:00:09", // given to a new port
		addr("10.0.0.5"): "FA:16:3E:00:00:03", // still its own (case differs)
	}
	stale, err := staleLeases(file, owner)
	if err != nil {
		t.Fatal(err)
	}
	want := []dhcpLeaseLine{
		{mac: "fa:16:3e:00:00:01", ip: addr("10.0.0.3"), clientID: "01:fa:16:3e:00:00:01"},
		{mac: "fa:16:3e:00:00:02", ip: addr("10.0.0.4")},
	}
	if len(stale) != len(want) || stale[0] != want[0] || stale[1] != want[1] {
		t.Fatalf("stale %+v, want %+v", stale, want)
	}
	// dnsmasq renewed one of them meanwhile.
	renewed := "1700009999 fa:16:3e:00:00:01 10.0.0.3 vm1 01:fa:16:3e:00:00:01\n" + content[len("1700000000 fa:16:3e:00:00:01 10.0.0.3 vm1 01:fa:16:3e:00:00:01\n"):]
	if err := os.WriteFile(file, []byte(renewed), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := dropLeases(file, stale); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	wantLeft := "1700000000 fa:16:3e:00:00:03 10.0.0.5 * *\n" +
		"duid 00:01:00:01:2c:00:00:00:02:00:00:00:00:01\n" +
		"1700000000 1234 fd00::5 * 00:01:00:01\n"
	if string(got) != wantLeft {
		t.Errorf("after dropping:\n%s\nwant:\n%s", got, wantLeft)
	}
}
